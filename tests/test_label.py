"""The labelling loop: scripts/label.py suggest, annotate, agree, merge; data_path lists."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SEED_DATA, error_line, load_script

from negstance.model.errors import NegstanceError
from negstance.train import load_config, load_seed_dataset

PASS_A = REPO / "data" / "annotation" / "pass_a.jsonl"
PASS_B = REPO / "data" / "annotation" / "pass_b.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def train_script():
    return load_script("train")


# --------------------------------------------------------------------------- #
# Training on several data_path files
# --------------------------------------------------------------------------- #
def test_data_path_takes_a_comma_separated_list_or_a_yaml_list(tmp_path: Path) -> None:
    assert load_config(None, ["--data_path=a.jsonl,b.jsonl"]).data_path == ["a.jsonl", "b.jsonl"]
    # One path stays a string, verbatim (YAML would read 2025 as a number).
    assert load_config(None, ["--data_path=2025"]).data_path == "2025"
    config_file = tmp_path / "c.yaml"
    config_file.write_text("data_path:\n  - data/seed_sentences.jsonl\n  - new.jsonl\n")
    config = load_config(config_file)
    assert config.data_path == ["data/seed_sentences.jsonl", "new.jsonl"]
    assert "- new.jsonl" in config.to_yaml()  # the resolved config records both
    with pytest.raises(NegstanceError, match=r"data_path must be str \| list\[str\], got list"):
        load_config(None, {"data_path": [1, 2]})


def test_load_seed_dataset_concatenates_files_and_checks_ids_across_them(
    tmp_path: Path, seed_sentences: list[dict]
) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", seed_sentences[:100])
    second = write_jsonl(tmp_path / "second.jsonl", seed_sentences[100:])
    both = load_seed_dataset([first, second])
    assert both["id"] == [row["id"] for row in seed_sentences]
    assert both.features == load_seed_dataset(SEED_DATA).features
    with pytest.raises(NegstanceError, match=r"id '000-00' is also in .*first\.jsonl"):
        load_seed_dataset([first, write_jsonl(tmp_path / "again.jsonl", seed_sentences[:3])])
    # Rows without ids are numbered per file, so two such files do not collide.
    no_ids = [{"text": row["text"], "label": row["label"]} for row in seed_sentences[:4]]
    one = write_jsonl(tmp_path / "one.jsonl", no_ids[:2])
    two = write_jsonl(tmp_path / "two.jsonl", no_ids[2:])
    assert len(set(load_seed_dataset([one, two])["id"])) == 4
    assert load_seed_dataset(one)["id"] == ["line-1", "line-2"]  # one file: as before
    with pytest.raises(NegstanceError, match="data_path lists no files"):
        load_seed_dataset([])


def test_training_reads_several_data_path_files(
    train_script, tiny_train_args: list[str], tmp_path: Path, seed_sentences: list[dict]
) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", seed_sentences[:30])
    second = write_jsonl(tmp_path / "second.jsonl", seed_sentences[30:50])
    assert train_script.main([*tiny_train_args, f"--data_path={first},{second}"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["train_sentences"] == 50
    card = (run / "README.md").read_text(encoding="utf-8")
    assert f"`{first}`, `{second}`: 50" in card


def test_a_repeated_id_across_data_path_files_is_one_line_error(
    train_script, tiny_train_args: list[str], capsys
) -> None:
    line = error_line(
        train_script.main, [*tiny_train_args, f"--data_path={SEED_DATA},{SEED_DATA}"], capsys
    )
    assert f"id '000-00' is also in {SEED_DATA}" in line


# --------------------------------------------------------------------------- #
# StanceClassifier.embed: the sentence vectors behind "diverse"
# --------------------------------------------------------------------------- #
def test_embed_gives_the_heads_mean_pooled_vectors_in_input_order(tiny_checkpoint_dir) -> None:
    import numpy as np
    import torch
    from conftest import tiny_bert_config, tiny_tokenizer
    from transformers import BertForSequenceClassification

    from negstance.model import StanceClassifier

    classifier = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu")
    texts = ["Talks resumed.", "Oil prices fell sharply on Monday after the report.", "Hi"]
    vectors = classifier.embed(texts, batch_size=2)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    one_by_one = np.stack([classifier.embed([text])[0] for text in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    np.testing.assert_allclose(classifier.embed(texts[::-1]), vectors[::-1], atol=1e-5)
    encoded = classifier.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        expected = classifier.model.embed(**encoded).numpy()
    np.testing.assert_allclose(vectors[:1], expected, atol=1e-5)
    assert classifier.embed([]).shape == (0, 32)
    # A stock [CLS]-head model has no embed(): the mean of its last hidden states.
    stock = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
    fallback = StanceClassifier(stock, tiny_tokenizer(), device="cpu")
    assert fallback.embed(texts).shape == (3, 32)
    assert not np.allclose(fallback.embed(texts)[0], fallback.embed(texts)[1])


# --------------------------------------------------------------------------- #
# suggest
# --------------------------------------------------------------------------- #
HELD_OUT = "004_b00dc54cc08a93fa"
RAW = REPO / "data" / "raw"
SUGGESTION_FIELDS = {"id", "doc", "index", "text", "previous", "next", "rank"}


@pytest.fixture(scope="module")
def label_script():
    return load_script("label")


@pytest.fixture()
def four_articles(tmp_path: Path, seed_sentences: list[dict]) -> Path:
    """The labelled sentences of every article but 004, plus a near copy of one of 004's."""
    rows = [row for row in seed_sentences if row["doc"] != HELD_OUT]
    near = next(row for row in seed_sentences if row["id"] == "004-05")
    rows.append({**near, "id": "near", "text": near["text"].replace("The", "Today the", 1)})
    return write_jsonl(tmp_path / "labelled.jsonl", rows)


def suggest(label_script, checkpoint, output: Path, *extra: str) -> int:
    return label_script.main(
        [
            "suggest",
            "--model",
            str(checkpoint),
            "--input",
            str(RAW),
            "--output",
            str(output),
            *extra,
        ]
    )


def test_suggest_drops_labelled_sentences_and_writes_n_rows_with_context_and_no_label(
    label_script, tiny_checkpoint_dir, tmp_path, four_articles, seed_sentences, capsys
) -> None:
    output = tmp_path / "suggested.jsonl"
    assert (
        suggest(
            label_script, tiny_checkpoint_dir, output, "-n", "7", "--labelled", str(four_articles)
        )
        == 0
    )
    # 124 sentences of the other four articles, and 004-05 by its near copy.
    assert "from 28 candidates (5 documents, 153 sentences; dropped 125 already labelled" in (
        capsys.readouterr().out
    )
    rows = read_jsonl(output)
    assert len(rows) == 7 and [row["rank"] for row in rows] == list(range(1, 8))
    seed_by_index = {row["index"]: row for row in seed_sentences if row["doc"] == HELD_OUT}
    for row in rows:
        assert set(row) == SUGGESTION_FIELDS  # no label, score or probability
        assert row["doc"] == HELD_OUT and row["index"] != 5
        assert row["id"] == f"{HELD_OUT}-{row['index']:02d}"
        assert row["text"] == seed_by_index[row["index"]]["text"]
        before, after = seed_by_index.get(row["index"] - 1), seed_by_index.get(row["index"] + 1)
        assert row["previous"] == (before["text"] if before else None)
        assert row["next"] == (after["text"] if after else None)
    assert len({row["id"] for row in rows}) == 7


def test_suggest_drops_repeats_within_the_input(tmp_path: Path) -> None:
    from negstance.train.suggest import candidate_pool, read_documents, sentence_rows

    pool = candidate_pool(sentence_rows(read_documents(RAW)))
    # Article 003 repeats its headline (003-01, 003-02): the second is not suggested.
    assert (pool.sentences, pool.repeats, len(pool.rows)) == (153, 1, 152)
    assert "003_c0e182945c587c67-02" not in {row["id"] for row in pool.rows}
    articles = tmp_path / "docs.jsonl"
    write_jsonl(
        articles,
        [{"id": "x", "text": "Talks resumed. Oil fell."}, {"id": "y", "text": "Talks resumed!"}],
    )
    pool = candidate_pool(sentence_rows(read_documents(articles)), ["Oil fell"])
    assert [row["id"] for row in pool.rows] == ["x-00"]
    assert (pool.already_labelled, pool.repeats) == (1, 1)


def test_near_duplicate_threshold_separates_edits_from_distinct_seed_sentences(
    seed_sentences: list[dict],
) -> None:
    from negstance.train.suggest import find_duplicates, find_repeats, normalise_text

    texts = [row["text"] for row in seed_sentences]
    # Only the exact repeat of 003-01 is a repeat among the 153 distinct sentences.
    ids = [row["id"] for row in seed_sentences]
    repeats = find_repeats(texts)
    assert {
        ids[index]: ids[repeat] for index, repeat in enumerate(repeats) if repeat is not None
    } == {"003-02": "003-01"}
    edited = texts[10].replace("rhetoric", "recent rhetoric", 1)
    assert edited != texts[10]
    assert find_duplicates([edited, "Oil prices fell on Monday."], texts) == [10, None]
    assert normalise_text("“Very  GOOD talks,” he said.") == "very good talks he said"


def test_strategies_rank_differently_and_runs_are_deterministic(
    label_script, tiny_checkpoint_dir, tmp_path, capsys
) -> None:
    runs = 0

    def ids(strategy: str, seed: int = 0) -> list[str]:
        nonlocal runs
        runs += 1
        output = tmp_path / f"{runs}.jsonl"
        argv = ["-n", "10", "--strategy", strategy, "--seed", str(seed)]
        assert suggest(label_script, tiny_checkpoint_dir, output, *argv) == 0
        return [row["id"] for row in read_jsonl(output)]

    uncertainty, diverse, random = ids("uncertainty"), ids("diverse"), ids("random", 1)
    assert ids("uncertainty") == uncertainty
    assert ids("diverse") == diverse
    assert ids("random", 1) == random
    assert ids("random", 2) != random
    assert len({tuple(uncertainty), tuple(diverse), tuple(random)}) == 3
    assert diverse[0] == uncertainty[0]  # both start with the least sure sentence


def test_uncertainty_measures_and_diverse_selection_on_known_numbers() -> None:
    import numpy as np

    from negstance.train.suggest import rank_for_labelling, select_diverse, uncertainty_scores

    probabilities = np.array([[0.34, 0.33, 0.33], [0.6, 0.3, 0.1], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(uncertainty_scores(probabilities, "margin"), [0.99, 0.7, 0.0])
    entropy = uncertainty_scores(probabilities, "entropy")
    assert entropy[0] == pytest.approx(1.0, abs=1e-3) and entropy[2] == pytest.approx(0.0)
    assert 0 < entropy[1] < 1
    # Three near copies of one very uncertain sentence, and two others: "uncertainty" takes
    # the copies, "diverse" one of them and then the others.
    vectors = np.array([[1, 0, 0], [0.99, 0.01, 0], [0.98, 0.02, 0], [0, 1, 0], [0, 0, 1]], float)
    uncertainty = np.array([0.95, 0.94, 0.93, 0.6, 0.5])
    assert select_diverse(uncertainty, vectors, 3) == [0, 3, 4]
    margins = 1 - uncertainty
    probabilities = np.stack([(1 + margins) / 2, (1 - margins) / 2, np.zeros(5)], axis=1)
    assert rank_for_labelling(probabilities, 3, "uncertainty") == [0, 1, 2]
    assert rank_for_labelling(
        probabilities, 3, "diverse", vectors_of=lambda rows: vectors[rows]
    ) == [0, 3, 4]
    assert sorted(rank_for_labelling(probabilities, 9, "random", seed=3)) == [0, 1, 2, 3, 4]
    # "diverse" picks only among the 2 x N least sure: a far-off sentence that is less unsure
    # than those (here 0.45) is not taken, though uncertainty x distance would favour it.
    vectors = np.vstack([vectors, [[-1, -1, -1]]])
    probabilities = np.vstack([probabilities, [[0.775, 0.225, 0.0]]])
    assert select_diverse(uncertainty_scores(probabilities), vectors, 2) == [0, 5]
    assert rank_for_labelling(
        probabilities, 2, "diverse", vectors_of=lambda rows: vectors[rows]
    ) == [0, 3]


def test_bench_suggest_counts_errors_per_held_out_article(tiny_backbone_dir, capsys) -> None:
    bench = load_script("bench_suggest")
    argv = [
        "--random_seeds",
        "2",
        f"--model_name_or_path={tiny_backbone_dir}",
        "--num_train_epochs=1",
    ]
    assert bench.main(argv) == 0
    table = capsys.readouterr().out.split("\n\n")[-1].strip().splitlines()
    assert table[0].startswith("| held-out article | candidates | model errors | uncertainty")
    rows = [line.split("|")[1:-1] for line in table[2:]]
    assert [row[0].strip() for row in rows[:-1]] == sorted(path.stem for path in RAW.glob("*.txt"))
    # 152 candidates: 003 repeats its headline; every count is at most the 10 picks.
    assert rows[-1][1].strip() == "152"
    for row in rows[:-1]:
        assert all(0 <= float(cell.strip("* ")) <= 10 for cell in row[3:6])


# --------------------------------------------------------------------------- #
# annotate
# --------------------------------------------------------------------------- #
@pytest.fixture()
def sentences_file(tmp_path: Path) -> Path:
    """Six sentences of article 004 in suggest's format."""
    from negstance.train.suggest import read_documents, sentence_rows

    rows = sentence_rows(read_documents(RAW / f"{HELD_OUT}.txt"))[3:9]
    return write_jsonl(tmp_path / "suggested.jsonl", [{**row, "rank": 1} for row in rows])


def annotate_from(text: str, sentences: Path, output: Path, annotator: str = "alice"):
    import io

    from negstance.train.annotate import annotate, pipe_keys

    shown: list[str] = []
    progress = annotate(sentences, output, annotator, pipe_keys(io.StringIO(text)), shown.append)
    return progress, "\n".join(shown)


def test_annotate_saves_every_answer_with_toggle_skip_and_back(
    sentences_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "alice.jsonl"
    # 1 favor; 2 ambiguous against; 3 skipped; back to 3, back to 2: the flag starts from its
    # saved value, so "?" clears it and "n" relabels 2 (none, not ambiguous); then on to 4.
    progress, shown = annotate_from("f\n?\na\ns\nb\nb\n?\nn\n\nF\nq\n", sentences_file, output)
    assert (progress.answered, progress.total, progress.finished) == (4, 6, False)
    assert "f favor, a against, n none, ? ambiguous" in shown  # the keys, on start
    assert "readiness to talk" in shown  # the codebook's definitions
    assert "before:" in shown and "after:" in shown
    assert "saved answer: against (ambiguous)" in shown
    rows = read_jsonl(output)
    items = read_jsonl(sentences_file)
    assert [row["id"] for row in rows] == [item["id"] for item in items[:4]]
    assert [row["label"] for row in rows] == ["favor", "none", None, "favor"]
    assert [row["ambiguous"] for row in rows] == [False, False, False, False]
    assert [row["skipped"] for row in rows] == [False, False, True, False]
    assert {row["annotator"] for row in rows} == {"alice"}
    assert [row["text"] for row in rows] == [item["text"] for item in items[:4]]
    assert {"id", "label", "ambiguous", "annotator", "doc", "index", "text"} <= set(rows[0])
    # A rerun starts at the first sentence without an answer; the end of input quits.
    progress, shown = annotate_from("?\nn\n", sentences_file, output)
    assert progress.answered == 5 and "4 of 6 answered" in shown
    assert read_jsonl(output)[4] == {**rows[0], **read_jsonl(output)[4]}  # same shape
    assert read_jsonl(output)[4]["label"] == "none" and read_jsonl(output)[4]["ambiguous"]
    progress, shown = annotate_from("a\n", sentences_file, output)
    assert progress.finished and "done: all 6 answered" in shown
    progress, shown = annotate_from("f\n", sentences_file, output)
    assert progress.finished and "nothing left to do" in shown
    assert len(read_jsonl(output)) == 6


def annotate_command(sentences: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "scripts" / "label.py"),
        "annotate",
        "--input",
        str(sentences),
        "--output",
        str(output),
        "--annotator",
        "alice",
    ]


def wait_for_rows(output: Path, count: int, process: subprocess.Popen) -> None:
    """Until ``output`` holds ``count`` answers (it is rewritten atomically, so never torn)."""
    deadline = time.monotonic() + 300  # a guard against a hang, not a timing assertion
    while time.monotonic() < deadline:
        if output.exists() and len(read_jsonl(output)) == count:
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.1)
    raise AssertionError(f"{output} never reached {count} answers")


def test_annotate_killed_then_interrupted_then_resumed_loses_and_repeats_nothing(
    sentences_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "alice.jsonl"
    command = annotate_command(sentences_file, output)
    items = [row["id"] for row in read_jsonl(sentences_file)]

    # Killed (SIGKILL) while waiting for the third answer.
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    process.stdin.write("f\n?\na\n")
    process.stdin.flush()
    wait_for_rows(output, 2, process)
    process.kill()
    process.wait()
    assert [row["id"] for row in read_jsonl(output)] == items[:2]

    # Ctrl-C (SIGINT) while waiting for the fifth: exit 130, the answers kept. A shell
    # that starts jobs in the background passes SIGINT on ignored: undo that for the child.
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    process.stdin.write("n\ns\n")
    process.stdin.flush()
    wait_for_rows(output, 4, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=300) == 130
    assert "interrupted: every answer given is saved" in process.stderr.read()

    finished = subprocess.run(command, input="f\nn\n", capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "done: all 6 answered" in finished.stdout
    rows = read_jsonl(output)
    assert [row["id"] for row in rows] == items  # each sentence once, in input order
    assert [row["label"] for row in rows] == ["favor", "against", "none", None, "favor", "none"]
    assert [row["ambiguous"] for row in rows] == [False, True, False, False, False, False]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left beside it


def test_annotate_whose_screen_is_closed_stops_without_a_traceback(
    sentences_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "alice.jsonl"
    command = annotate_command(sentences_file, output)
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # as `label.py annotate ... | head -1` does once head has its line
    _, err = process.communicate("f\n", timeout=300)
    assert process.returncode == 141, err
    assert "Traceback" not in err and "stopped: the output was closed" in err


def test_annotate_on_a_terminal_takes_single_keys(sentences_file: Path, tmp_path: Path) -> None:
    import pty

    output = tmp_path / "alice.jsonl"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        annotate_command(sentences_file, output),
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    try:
        seen = b""
        deadline = time.monotonic() + 300
        while b">> " not in seen:  # the first sentence is on screen: keys are read singly now
            assert time.monotonic() < deadline and process.poll() is None
            if select.select([process.stdout], [], [], 1)[0]:
                seen += os.read(process.stdout.fileno(), 4096)
        os.write(controller, b"f?ax")  # no Enter; x is pointed out, not an error, here
        wait_for_rows(output, 2, process)
        os.write(controller, b"q")
        out, err = process.communicate(timeout=300)
    finally:
        os.close(controller)
    assert process.returncode == 0, err
    assert b"unknown key 'x'" in seen + out
    assert [row["label"] for row in read_jsonl(output)] == ["favor", "against"]
    assert [row["ambiguous"] for row in read_jsonl(output)] == [False, True]


# --------------------------------------------------------------------------- #
# agree
# --------------------------------------------------------------------------- #
def test_agree_reproduces_the_datasheets_kappa_and_writes_the_disagreements(
    label_script, tmp_path: Path, capsys
) -> None:
    from sklearn.metrics import cohen_kappa_score

    output = tmp_path / "disagreements.jsonl"
    argv = ["agree", str(PASS_A), str(PASS_B), "--output", str(output)]
    assert label_script.main([*argv, "--sentences", str(SEED_DATA)]) == 0
    printed = capsys.readouterr().out
    a, b = ([row["label"] for row in read_jsonl(path)] for path in (PASS_A, PASS_B))
    expected = cohen_kappa_score(a, b)
    assert round(expected, 3) == 0.905  # the datasheet's figure
    assert f"Cohen's kappa: {expected:.3f}" in printed
    assert "raw agreement: 144 / 153 (94.1 %)" in printed
    assert "flagged ambiguous: pass_a 37, pass_b 33" in printed
    # The datasheet's confusion table (rows: pass A, columns: pass B).
    assert "| favor | 50 | 0 | 4 |\n| against | 0 | 25 | 1 |\n| none | 1 | 3 | 69 |" in printed
    rows = read_jsonl(output)
    assert len(rows) == 9 and "9 disagreements written" in printed
    seed = {row["id"]: row for row in read_jsonl(SEED_DATA)}
    for row in rows:
        assert row["labels"]["pass_a"] != row["labels"]["pass_b"]
        assert row["text"] == seed[row["id"]]["text"] and row["doc"] == seed[row["id"]]["doc"]
        assert "label" not in row  # the adjudicator is not anchored either
    # Without --sentences the files carry no text, and agree says how to add it.
    assert label_script.main([*argv, "--overwrite"]) == 0
    assert "pass --sentences FILE" in capsys.readouterr().out
    assert "text" not in read_jsonl(output)[0]


def test_fleiss_kappa_matches_a_published_example_and_scotts_pi_for_two() -> None:
    from negstance.train.labeling import fleiss_kappa

    # Fleiss' kappa's worked example on Wikipedia: 10 items, 14 raters, 5 categories: 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    ratings = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(ratings, labels=[str(c) for c in range(5)]) == pytest.approx(
        0.2099, abs=1e-4
    )
    # With two raters Fleiss' kappa is Scott's pi, computed here from its definition.
    a, b = ([row["label"] for row in read_jsonl(path)] for path in (PASS_A, PASS_B))
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    chance = sum(((a.count(label) + b.count(label)) / (2 * len(a))) ** 2 for label in set(a + b))
    assert fleiss_kappa(list(zip(a, b, strict=True))) == pytest.approx(
        (observed - chance) / (1 - chance)
    )
    # Everyone gave one label: chance agreement is 1 and kappa undefined, not a crash.
    assert fleiss_kappa([["none", "none"]] * 2) != fleiss_kappa([["none", "none"]] * 2)  # nan


def test_agree_on_three_files_reports_fleiss_and_every_pair(
    label_script, tmp_path: Path, capsys
) -> None:
    from negstance.train.labeling import fleiss_kappa

    third = write_jsonl(
        tmp_path / "pass_c.jsonl",
        [
            {
                "id": row["id"],
                "label": row["label"],
                "ambiguous": row["ambiguous"],
                "annotator": "carol",
            }
            for row in read_jsonl(SEED_DATA)
        ],
    )
    output = tmp_path / "d.jsonl"
    assert (
        label_script.main(["agree", str(PASS_A), str(PASS_B), str(third), "--output", str(output)])
        == 0
    )
    printed = capsys.readouterr().out
    labels = [[row["label"] for row in read_jsonl(path)] for path in (PASS_A, PASS_B, third)]
    expected = fleiss_kappa(list(zip(*labels, strict=True)))
    assert f"Fleiss' kappa: {expected:.3f}" in printed
    assert "annotators: pass_a, pass_b, carol" in printed
    for pair in ("pass_a vs pass_b", "pass_a vs carol", "pass_b vs carol"):
        assert f"Cohen's kappa {pair}: " in printed
    assert "| pass_b \\ carol | favor | against | none |" in printed
    rows = read_jsonl(output)
    assert len(rows) == 9 and set(rows[0]["labels"]) == {"pass_a", "pass_b", "carol"}


# --------------------------------------------------------------------------- #
# merge
# --------------------------------------------------------------------------- #
def adjudications(tmp_path: Path, skip_ids: set[str] = frozenset()) -> Path:
    """The seed set's decisions on the 9 disagreements, as `annotate` would save them."""
    a = {row["id"]: row["label"] for row in read_jsonl(PASS_A)}
    b = {row["id"]: row["label"] for row in read_jsonl(PASS_B)}
    rows = [
        {"id": row["id"], "label": row["label"], "ambiguous": False, "annotator": "adjudicator"}
        for row in read_jsonl(SEED_DATA)
        if a[row["id"]] != b[row["id"]] and row["id"] not in skip_ids
    ]
    assert len(rows) == 9 - len(skip_ids)
    return write_jsonl(tmp_path / "adjudicated.jsonl", rows)


def without(path: Path, tmp_path: Path, ids: set[str]) -> Path:
    return write_jsonl(
        tmp_path / path.name, [row for row in read_jsonl(path) if row["id"] not in ids]
    )


def test_merge_rebuilds_the_seed_set_from_the_two_passes_and_the_adjudications(
    label_script, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "merged.jsonl"
    argv = [
        "--adjudicated",
        str(adjudications(tmp_path)),
        "--sentences",
        str(SEED_DATA),
        "--output",
        str(output),
    ]
    # The seed set keeps its article's repeated headline; merge refuses repeated texts.
    line = error_line(label_script.main, ["merge", str(PASS_A), str(PASS_B), *argv], capsys)
    assert "sentences '003-01' and '003-02' have the same text" in line
    assert not output.exists()
    passes = [str(without(path, tmp_path, {"003-02"})) for path in (PASS_A, PASS_B)]
    assert label_script.main(["merge", *passes, *argv]) == 0
    assert (
        "152 labelled sentences (favor 53, against 28, none 71; 28 ambiguous; 9 adjudicated)"
        in capsys.readouterr().out
    )
    # Byte for byte the seed set without 003-02: labels, the ambiguous rule, format.
    seed_lines = SEED_DATA.read_text(encoding="utf-8").splitlines(keepends=True)
    assert output.read_text(encoding="utf-8") == "".join(
        line for line in seed_lines if '"003-02"' not in line
    )
    assert len(load_seed_dataset([output])) == 152


def test_merge_decides_by_agreement_adjudication_and_skips(tmp_path: Path) -> None:
    from negstance.train.labeling import merge_annotations, read_annotations

    def answers(name: str, labels: list, flags: list) -> Path:
        rows = [
            {
                "id": f"s{i}",
                "label": label,
                "ambiguous": flag,
                "annotator": name,
                "text": f"Sentence number {i} is here.",
            }
            for i, (label, flag) in enumerate(zip(labels, flags, strict=True))
        ]
        return write_jsonl(tmp_path / f"{name}.jsonl", rows)

    alice = answers(
        "alice",
        ["favor", "none", None, "against", None, "none"],
        [True, True, False, False, False, False],
    )
    bob = answers(
        "bob",
        ["favor", "none", None, "favor", "none", "none"],
        [True, False, False, False, False, False],
    )
    decided = write_jsonl(
        tmp_path / "decided.jsonl",
        [
            {"id": "s3", "label": "against", "ambiguous": False},
            {"id": "s4", "label": None, "ambiguous": False, "skipped": True},
            {"id": "s5", "label": "favor", "ambiguous": True},
        ],
    )
    files = [read_annotations(alice), read_annotations(bob)]
    with pytest.raises(NegstanceError, match=r"2 sentence\(s\) with neither .* \(s3, s4\)"):
        merge_annotations(files)
    merged = merge_annotations(files, read_annotations(decided))
    assert [(row["id"], row["label"], row["ambiguous"]) for row in merged.rows] == [
        ("s0", "favor", True),  # both flagged it
        ("s1", "none", False),  # one flag is not enough
        ("s3", "against", True),  # they disagreed: adjudicated, and ambiguous
        ("s5", "favor", True),  # the adjudicator overrules and flags
    ]
    assert merged.dropped == {
        "s2": "skipped by every annotator",
        "s4": "skipped by the adjudicator",
    }
    assert merged.rows[0] == {
        "id": "s0",
        "doc": "",
        "index": 0,
        "text": "Sentence number 0 is here.",
        "label": "favor",
        "ambiguous": True,
    }


# --------------------------------------------------------------------------- #
# Bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------- #
@pytest.fixture()
def bad_inputs(tmp_path: Path, tiny_checkpoint_dir: Path, sentences_file: Path) -> dict[str, Path]:
    import shutil

    broken = tmp_path / "broken_checkpoint"
    shutil.copytree(tiny_checkpoint_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    seed = read_jsonl(SEED_DATA)
    answers = [{"id": row["id"], "label": row["label"], "ambiguous": False} for row in seed]
    pdf = tmp_path / "article.pdf"
    pdf.write_text("not text")
    (tmp_path / "empty_folder").mkdir()
    return {
        "checkpoint": tiny_checkpoint_dir,
        "broken": broken,
        "not_checkpoint": tmp_path / "empty_folder",
        "pdf": pdf,
        "no_text": write_jsonl(tmp_path / "no_text.jsonl", [{"body": "Talks resumed."}]),
        "sentences": sentences_file,
        "no_ids": write_jsonl(tmp_path / "no_ids.jsonl", [{"text": "Talks resumed."}]),
        "favour": write_jsonl(
            tmp_path / "favour.jsonl", [{**answers[0], "label": "favour"}, *answers[1:]]
        ),
        "shorter": write_jsonl(tmp_path / "shorter.jsonl", answers[:-1]),
        "other_text": write_jsonl(
            tmp_path / "other_text.jsonl", [{**row, "text": "Something else."} for row in answers]
        ),
        "with_text": write_jsonl(
            tmp_path / "with_text.jsonl",
            [
                {**row, "text": seed_row["text"]}
                for row, seed_row in zip(answers, seed, strict=True)
            ],
        ),
        "unique": write_jsonl(
            tmp_path / "unique.jsonl",
            [
                {**row, "text": seed_row["text"]}
                for row, seed_row in zip(answers, seed, strict=True)
                if row["id"] != "003-02"
            ],
        ),
        "maybe": write_jsonl(tmp_path / "maybe.jsonl", [{**answers[0], "ambiguous": "maybe"}]),
        "twice": write_jsonl(tmp_path / "twice.jsonl", [answers[0], answers[0]]),
        "dev": write_jsonl(
            tmp_path / "dev.jsonl", [{"text": "Today, " + seed[40]["text"], "label": "none"}]
        ),
        "stray": write_jsonl(tmp_path / "stray.jsonl", [{"id": "nowhere", "label": "none"}]),
        "bob": write_jsonl(
            tmp_path / "bob.jsonl",
            [{"id": read_jsonl(sentences_file)[0]["id"], "label": "none", "annotator": "bob"}],
        ),
        "elsewhere": write_jsonl(
            tmp_path / "elsewhere.jsonl", [{"id": "000-00", "label": "none", "annotator": "alice"}]
        ),
        "out": tmp_path / "out.jsonl",
    }


BAD_INPUTS = {
    # suggest
    "checkpoint missing config": (
        ["suggest", "--model", "{not_checkpoint}", "--input", str(RAW), "--output", "{out}"],
        "not a checkpoint (no config.json)",
    ),
    "checkpoint corrupt": (
        ["suggest", "--model", "{broken}", "--input", str(RAW), "--output", "{out}"],
        "cannot load checkpoint",
    ),
    "input of another type": (
        ["suggest", "--model", "{checkpoint}", "--input", "{pdf}", "--output", "{out}"],
        "unsupported file type '.pdf'",
    ),
    "documents without text": (
        ["suggest", "--model", "{checkpoint}", "--input", "{no_text}", "--output", "{out}"],
        "no_text.jsonl, line 1: no 'text' field",
    ),
    "folder without articles": (
        ["suggest", "--model", "{checkpoint}", "--input", "{not_checkpoint}", "--output", "{out}"],
        "no .txt articles in the folder",
    ),
    "labelled file without text": (
        [
            "suggest",
            "--model",
            "{checkpoint}",
            "--input",
            str(RAW),
            "--output",
            "{out}",
            "--labelled",
            str(PASS_A),
        ],
        "pass_a.jsonl, line 1: no 'text' field",
    ),
    "everything labelled": (
        [
            "suggest",
            "--model",
            "{checkpoint}",
            "--input",
            str(RAW),
            "--output",
            "{out}",
            "--labelled",
            str(SEED_DATA),
        ],
        "no sentences left to suggest: all 153 sentences",
    ),
    "output not jsonl": (
        ["suggest", "--model", "{checkpoint}", "--input", str(RAW), "--output", "{pdf}.csv"],
        "the output is JSON Lines; name it .jsonl",
    ),
    "unknown strategy": (
        [
            "suggest",
            "--model",
            "{checkpoint}",
            "--input",
            str(RAW),
            "--output",
            "{out}",
            "--strategy",
            "best",
        ],
        "command line: strategy must be one of diverse, uncertainty, random, not 'best'",
    ),
    "no command": ([], "the following arguments are required: COMMAND (see --help)"),
    # annotate
    "sentences without ids": (
        ["annotate", "--input", "{no_ids}", "--output", "{out}", "--annotator", "alice"],
        "no_ids.jsonl, line 1: no 'id' string",
    ),
    "sentences of another type": (
        ["annotate", "--input", "{pdf}", "--output", "{out}", "--annotator", "alice"],
        "unsupported file type '.pdf'; use one of: .jsonl",
    ),
    "answers of another annotator": (
        ["annotate", "--input", "{sentences}", "--output", "{bob}", "--annotator", "alice"],
        "holds the answers of 'bob', not 'alice'",
    ),
    "answers to another file": (
        ["annotate", "--input", "{sentences}", "--output", "{elsewhere}", "--annotator", "alice"],
        "has answers to sentences that are not in the input (000-00)",
    ),
    "output is the input": (
        ["annotate", "--input", "{sentences}", "--output", "{sentences}", "--annotator", "alice"],
        "is the input file",
    ),
    # agree
    "unknown label": (
        ["agree", "{favour}", str(PASS_B), "--output", "{out}"],
        "favour.jsonl, line 1: unknown label 'favour'; labels are favor, against, none",
    ),
    "different sentences": (
        ["agree", str(PASS_A), "{shorter}", "--output", "{out}"],
        "are answers to different sentences (1 only in",
    ),
    "same ids, other texts": (
        ["agree", "{with_text}", "{other_text}", "--output", "{out}"],
        "sentence '000-00' has another text",
    ),
    "not an annotation file": (
        ["agree", str(PASS_A), "{sentences}", "--output", "{out}"],
        "no 'label' field: not an annotation file",
    ),
    "one file": (["agree", str(PASS_A), "--output", "{out}"], "agree needs two or more"),
    "a file twice": (["agree", str(PASS_A), str(PASS_A), "--output", "{out}"], "is given twice"),
    "ambiguous not a bool": (
        ["agree", "{maybe}", str(PASS_B), "--output", "{out}"],
        "'ambiguous' must be true or false, got 'maybe'",
    ),
    "repeated id": (
        ["agree", "{twice}", str(PASS_B), "--output", "{out}"],
        "line 2: duplicate id '000-00'",
    ),
    "output is an input": (
        ["agree", "{with_text}", str(PASS_B), "--output", "{with_text}", "--overwrite"],
        "is an input file",
    ),
    # merge
    "merge unknown label": (["merge", "{favour}", "--output", "{out}"], "unknown label 'favour'"),
    "merge undecided": (
        ["merge", "{with_text}", str(PASS_B), "--output", "{out}"],
        "2 sentence(s) with neither an agreed label nor an adjudicated one",
    ),
    "merge no text at all": (
        ["merge", str(PASS_A), "--output", "{out}"],
        "no text for sentence '000-00'",
    ),
    "merge dev overlap": (
        ["merge", "{unique}", "--dev", "{dev}", "--output", "{out}"],
        "1 sentence(s) equal or nearly equal sentences of",
    ),
    "merge stray adjudication": (
        ["merge", "{unique}", "--adjudicated", "{stray}", "--output", "{out}"],
        "adjudicates 1 sentence(s) that no annotation file has (nowhere)",
    ),
    "merge different sentences": (
        ["merge", "{with_text}", "{shorter}", "--output", "{out}"],
        "answers to different sentences",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    label_script, bad_inputs, case, capsys
) -> None:
    argv, phrase = BAD_INPUTS[case]
    argv = [argument.format(**bad_inputs) for argument in argv]
    before = {path: path.read_bytes() for path in bad_inputs.values() if path.is_file()}
    assert phrase in error_line(label_script.main, argv, capsys)
    assert not bad_inputs["out"].exists()
    assert {path: path.read_bytes() for path in before} == before  # inputs untouched


def test_an_unknown_key_on_a_pipe_stops_with_the_answers_before_it_saved(
    label_script, sentences_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import io

    output = tmp_path / "alice.jsonl"
    monkeypatch.setattr("sys.stdin", io.StringIO("f\nfavour\n"))
    argv = [
        "annotate",
        "--input",
        str(sentences_file),
        "--output",
        str(output),
        "--annotator",
        "alice",
    ]
    line = error_line(label_script.main, argv, capsys)
    assert "stdin, line 2: unknown key 'favour'" in line
    assert f"the 1 answers before it are saved in {output}" in line
    assert [row["label"] for row in read_jsonl(output)] == ["favor"]


def test_existing_outputs_are_refused_without_overwrite(
    label_script, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "d.jsonl"
    output.write_text("keep me\n")
    argv = ["agree", str(PASS_A), str(PASS_B), "--output", str(output)]
    assert "output exists" in error_line(label_script.main, argv, capsys)
    assert output.read_text() == "keep me\n"
    assert label_script.main([*argv, "--overwrite"]) == 0
    assert len(read_jsonl(output)) == 9


# --------------------------------------------------------------------------- #
# The README's walk through the loop
# --------------------------------------------------------------------------- #
def readme_label_commands() -> list[list[str]]:
    """The label.py and train.py commands of the README's "Label more data", as argv lists."""
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Label more data\n", 1)[1].split("\n## ", 1)[0]
    lines = section.replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        line = line.removeprefix("$ ").split(" # ")[0].split(" | ")[-1].strip()
        if line.startswith(("python scripts/label.py", "python scripts/train.py")):
            commands.append(shlex.split(line)[1:])
    return commands


def test_readme_label_commands_parse_and_name_files_that_exist() -> None:
    from negstance.train.cli import parse_label_command

    commands = readme_label_commands()
    assert {argv[1] for argv in commands if argv[0] == "scripts/label.py"} == {
        "suggest",
        "annotate",
        "agree",
        "merge",
    }
    for argv in commands:
        for argument in argv:
            for path in argument.replace(",", "=").split("="):
                if path.startswith(("data/", "configs/")):
                    assert (REPO / path).exists(), path
        if argv[0] == "scripts/label.py":
            parse_label_command(argv[1:])
        else:
            config = load_config(REPO / argv[2], argv[3:])
            assert config.num_train_epochs == 5
