"""The labelling loop: scripts/label.py suggest, annotate, agree, merge; data_path lists."""

from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SEED_DATA, error_line, load_script, read_jsonl, write_jsonl

from negstance.model.errors import NegstanceError
from negstance.train import load_config
from negstance.train.annotate import annotate, pipe_keys
from negstance.train.labeling import fleiss_kappa, merge_annotations, read_annotations
from negstance.train.suggest import (
    candidate_pool,
    find_duplicates,
    find_repeats,
    rank_for_labelling,
    read_documents,
    select_diverse,
    sentence_rows,
    uncertainty_scores,
)

# The two passes behind the seed set's current (codebook v2) labels.
PASS_A = REPO / "data" / "annotation" / "v2" / "pass_a.jsonl"
PASS_B = REPO / "data" / "annotation" / "v2" / "pass_b.jsonl"
RAW = REPO / "data" / "raw"
HELD_OUT = "004_b00dc54cc08a93fa"


@pytest.fixture(scope="module")
def label_script():
    return load_script("label")


def test_embed_gives_mean_pooled_vectors_in_input_order(tiny_checkpoint_dir) -> None:
    import torch

    from negstance.model import StanceClassifier

    classifier = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu")
    texts = ["Talks resumed.", "Oil prices fell sharply on Monday after the report.", "Hi"]
    vectors = classifier.embed(texts, batch_size=2)
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(classifier.embed(texts[::-1]), vectors[::-1], atol=1e-5)
    with torch.no_grad():
        expected = classifier.model.embed(**classifier.tokenizer(texts[:1], return_tensors="pt"))
    np.testing.assert_allclose(vectors[:1], expected.numpy(), atol=1e-5)


def suggest(label_script, checkpoint: Path, output: Path, *extra: str) -> int:
    argv = ["--model", str(checkpoint), "--input", str(RAW), "--output", str(output)]
    return label_script.main(["suggest", *argv, *extra])


def test_suggest_drops_labelled_sentences_and_near_copies_and_gives_context_not_labels(
    label_script, tiny_checkpoint_dir, tmp_path, seed_sentences
) -> None:
    # Labelled: every article but 004, and a near copy of 004-05.
    labelled = [row for row in seed_sentences if row["doc"] != HELD_OUT]
    near = next(row for row in seed_sentences if row["id"] == "004-05")
    labelled.append({**near, "id": "near", "text": near["text"].replace("The", "Today the", 1)})
    output = tmp_path / "suggested.jsonl"
    extra = ["-n", "7", "--labelled", str(write_jsonl(tmp_path / "labelled.jsonl", labelled))]
    assert suggest(label_script, tiny_checkpoint_dir, output, *extra) == 0
    rows = read_jsonl(output)
    assert [row["rank"] for row in rows] == list(range(1, 8))
    seed = {row["index"]: row for row in seed_sentences if row["doc"] == HELD_OUT}
    for row in rows:
        assert set(row) == {"id", "doc", "index", "text", "previous", "next", "rank"}
        assert row["doc"] == HELD_OUT and row["index"] != 5
        assert row["text"] == seed[row["index"]]["text"]
        assert row["previous"] == seed.get(row["index"] - 1, {}).get("text")
        assert row["next"] == seed.get(row["index"] + 1, {}).get("text")
    assert len({row["id"] for row in rows}) == 7


def test_candidates_drop_repeats_and_near_copies(tmp_path, seed_sentences) -> None:
    pool = candidate_pool(sentence_rows(read_documents(RAW)))
    # Article 003 repeats its headline (003-01, 003-02): the second is not suggested.
    assert (pool.sentences, pool.repeats, len(pool.rows)) == (153, 1, 152)
    assert "003_c0e182945c587c67-02" not in {row["id"] for row in pool.rows}
    documents = [{"id": "x", "text": "Talks resumed. Oil fell."}, {"text": "Talks resumed!"}]
    rows = sentence_rows(read_documents(write_jsonl(tmp_path / "d.jsonl", documents)))
    pool = candidate_pool(rows, ["Oil fell"])
    assert [row["id"] for row in pool.rows] == ["x-00"]
    assert (pool.already_labelled, pool.repeats) == (1, 1)
    # The threshold: the only repeat among the 153 distinct seed sentences is 003-02, and
    # a one-word edit is a near copy.
    texts = [row["text"] for row in seed_sentences]
    repeats = [(i, repeat) for i, repeat in enumerate(find_repeats(texts)) if repeat is not None]
    assert [(seed_sentences[i]["id"], seed_sentences[j]["id"]) for i, j in repeats] == [
        ("003-02", "003-01")
    ]
    edited = texts[10].replace("rhetoric", "recent rhetoric", 1)
    assert find_duplicates([edited, "Oil prices fell.", texts[3].upper()], texts) == [10, None, 3]


def test_a_txt_file_is_one_document_per_line_as_for_predict_documents() -> None:
    per_line = read_documents(RAW / f"{HELD_OUT}.txt")
    assert per_line[0].name == f"{HELD_OUT}-1" and len(per_line) > 1
    # The same sentences as the article's (no sentence spans two lines).
    article = [row["text"] for row in sentence_rows(read_documents(RAW)) if row["doc"] == HELD_OUT]
    assert [row["text"] for row in sentence_rows(per_line)] == article


def test_strategies_rank_differently_and_runs_are_deterministic(
    label_script, tiny_checkpoint_dir, tmp_path
) -> None:
    def ids(strategy: str, seed: int = 0) -> list[str]:
        output = tmp_path / f"{len(list(tmp_path.iterdir()))}.jsonl"
        argv = ["-n", "10", "--strategy", strategy, "--seed", str(seed)]
        assert suggest(label_script, tiny_checkpoint_dir, output, *argv) == 0
        return [row["id"] for row in read_jsonl(output)]

    uncertainty, diverse, random = ids("uncertainty"), ids("diverse"), ids("random", 1)
    assert (ids("uncertainty"), ids("diverse"), ids("random", 1)) == (uncertainty, diverse, random)
    assert ids("random", 2) != random
    assert len({tuple(uncertainty), tuple(diverse), tuple(random)}) == 3
    assert diverse[0] == uncertainty[0]  # both start with the least sure sentence


def test_uncertainty_measures_and_diverse_selection_on_known_numbers() -> None:
    probabilities = np.array([[0.34, 0.33, 0.33], [0.6, 0.3, 0.1], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(uncertainty_scores(probabilities, "margin"), [0.99, 0.7, 0.0])
    entropy = uncertainty_scores(probabilities, "entropy")
    np.testing.assert_allclose(entropy, [1, 0.818, 0], atol=1e-3)
    # Three near copies of one very uncertain sentence, and two others: "uncertainty" takes
    # the copies, "diverse" one of them and then the others.
    vectors = np.array([[1, 0, 0], [0.99, 0.01, 0], [0.98, 0.02, 0], [0, 1, 0], [0, 0, 1]], float)
    uncertainty = np.array([0.95, 0.94, 0.93, 0.6, 0.5])
    margins = 1 - uncertainty
    probabilities = np.stack([(1 + margins) / 2, (1 - margins) / 2, np.zeros(5)], axis=1)
    assert rank_for_labelling(probabilities, 3, "uncertainty") == [0, 1, 2]
    vectors_of = lambda rows: vectors[rows]  # noqa: E731
    assert rank_for_labelling(probabilities, 3, "diverse", vectors_of=vectors_of) == [0, 3, 4]
    assert sorted(rank_for_labelling(probabilities, 9, "random", seed=3)) == [0, 1, 2, 3, 4]
    # "diverse" picks only among the 2 x N least sure: a far-off sentence less unsure than
    # those (0.45) is not taken, though uncertainty x distance would favour it.
    vectors = np.vstack([vectors, [[-1, -1, -1]]])
    probabilities = np.vstack([probabilities, [[0.775, 0.225, 0.0]]])
    assert select_diverse(uncertainty_scores(probabilities), vectors, 2) == [0, 5]
    assert rank_for_labelling(probabilities, 2, "diverse", vectors_of=vectors_of) == [0, 3]


def test_bench_suggest_counts_errors_per_held_out_article(tiny_backbone_dir, capsys) -> None:
    bench = load_script("bench_suggest")
    argv = ["--random_seeds", "2", f"--model_name_or_path={tiny_backbone_dir}"]
    assert bench.main([*argv, "--num_train_epochs=1"]) == 0
    table = capsys.readouterr().out.split("\n\n")[-1].strip().splitlines()
    rows = [line.split("|")[1:-1] for line in table[2:]]
    assert [row[0].strip() for row in rows[:-1]] == sorted(path.stem for path in RAW.glob("*.txt"))
    assert rows[-1][1].strip() == "152"  # 003 repeats its headline
    for row in rows[:-1]:
        assert all(0 <= float(cell.strip("* ")) <= 10 for cell in row[3:6])


@pytest.fixture()
def sentences_file(tmp_path: Path) -> Path:
    """Six sentences of article 004 in suggest's format."""
    rows = [row for row in sentence_rows(read_documents(RAW)) if row["doc"] == HELD_OUT][3:9]
    return write_jsonl(tmp_path / "suggested.jsonl", [{**row, "rank": 1} for row in rows])


def annotate_from(text: str, sentences: Path, output: Path):
    shown: list[str] = []
    progress = annotate(sentences, output, "alice", pipe_keys(io.StringIO(text)), shown.append)
    return progress, "\n".join(shown)


def test_annotate_saves_every_answer_with_toggle_skip_and_back(sentences_file, tmp_path) -> None:
    output = tmp_path / "alice.jsonl"
    # 1 favor; 2 ambiguous against; 3 skipped; back to 3, back to 2: the flag starts from its
    # saved value, so "?" clears it and "n" relabels 2 (none, not ambiguous); then on to 4.
    progress, shown = annotate_from("f\n?\na\ns\nb\nb\n?\nn\n\nF\nq\n", sentences_file, output)
    assert (progress.answered, progress.total, progress.finished) == (4, 6, False)
    assert "before:" in shown and "after:" in shown  # the context
    rows, items = read_jsonl(output), read_jsonl(sentences_file)[:4]
    assert [(row["id"], row["text"]) for row in rows] == [(i["id"], i["text"]) for i in items]
    assert [row["label"] for row in rows] == ["favor", "none", None, "favor"]
    assert all(row["skipped"] == (row["label"] is None) for row in rows)
    assert {(row["annotator"], row["ambiguous"]) for row in rows} == {("alice", False)}
    # A rerun starts at the first sentence without an answer; the end of input quits.
    progress, _ = annotate_from("?\nn\n", sentences_file, output)
    assert progress.answered == 5
    fifth = read_jsonl(output)[4]
    assert fifth.keys() == rows[0].keys() and (fifth["label"], fifth["ambiguous"]) == ("none", True)
    assert annotate_from("a\n", sentences_file, output)[0].finished
    assert annotate_from("f\n", sentences_file, output)[0].finished
    assert len(read_jsonl(output)) == 6


def annotate_command(sentences: Path, output: Path) -> list[str]:
    argv = f"annotate --input {sentences} --output {output} --annotator alice".split()
    return [sys.executable, str(REPO / "scripts" / "label.py"), *argv]


def wait_for_rows(output: Path, count: int, process: subprocess.Popen) -> None:
    """Until ``output`` holds ``count`` answers (it is rewritten atomically, so never torn)."""
    deadline = time.monotonic() + 300  # a guard against a hang, not a timing assertion
    while not (output.exists() and len(read_jsonl(output)) == count):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{output} never reached {count} answers"
        time.sleep(0.1)


def test_annotate_killed_then_interrupted_then_resumed_loses_and_repeats_nothing(
    sentences_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "alice.jsonl"
    command = annotate_command(sentences_file, output)
    items = [row["id"] for row in read_jsonl(sentences_file)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}

    process = subprocess.Popen(command, text=True, **pipes)  # SIGKILL waiting for answer 3
    process.stdin.write("f\n?\na\n")
    process.stdin.flush()
    wait_for_rows(output, 2, process)
    process.kill()
    process.wait()
    assert [row["id"] for row in read_jsonl(output)] == items[:2]

    # Ctrl-C (SIGINT) waiting for the fifth: exit 130, the answers kept. A shell that starts
    # jobs in the background passes SIGINT on ignored: undo that for the child.
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(command, text=True, preexec_fn=default_sigint, **pipes)
    process.stdin.write("n\ns\n")
    process.stdin.flush()
    wait_for_rows(output, 4, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=300) == 130
    assert str(output) in process.stderr.read()

    finished = subprocess.run(command, input="f\nn\n", capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    rows = read_jsonl(output)
    assert [row["id"] for row in rows] == items  # each sentence once, in input order
    assert [row["label"] for row in rows] == ["favor", "against", "none", None, "favor", "none"]
    assert [row["ambiguous"] for row in rows] == [False, True, False, False, False, False]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["alice.jsonl", "suggested.jsonl"]


def test_annotate_whose_screen_is_closed_stops_without_a_traceback_or_a_false_claim(
    sentences_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "alice.jsonl"
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    process = subprocess.Popen(annotate_command(sentences_file, output), text=True, **pipes)
    process.stdout.close()  # as `label.py annotate ... | head -1` does once head has its line
    _, err = process.communicate("f\n", timeout=300)
    assert process.returncode == 141, err
    # Stopped on the first screen: no answer, no file, and no message naming one.
    assert "Traceback" not in err and not output.exists() and str(output) not in err


def test_annotate_on_a_terminal_takes_single_keys(sentences_file: Path, tmp_path: Path) -> None:
    import pty

    output = tmp_path / "alice.jsonl"
    controller, terminal = pty.openpty()
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    process = subprocess.Popen(annotate_command(sentences_file, output), stdin=terminal, **pipes)
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
    assert b"'x'" in seen + out
    labels = [(row["label"], row["ambiguous"]) for row in read_jsonl(output)]
    assert labels == [("favor", False), ("against", True)]


@pytest.mark.parametrize("keys", ["favour\n", "f\nfavour\n"])
def test_an_unknown_key_on_a_pipe_stops_and_says_truly_what_is_saved(
    keys, label_script, sentences_file, tmp_path, monkeypatch, capsys
) -> None:
    output = tmp_path / "alice.jsonl"
    monkeypatch.setattr("sys.stdin", io.StringIO(keys))
    argv = ["annotate", "--input", str(sentences_file), "--output", str(output)]
    line = error_line(label_script.main, [*argv, "--annotator", "alice"], capsys)
    answers = keys.count("\n") - 1
    assert f"line {answers + 1}" in line and "'favour'" in line
    assert (str(output) in line) == output.exists() == (answers > 0)
    assert not answers or [row["label"] for row in read_jsonl(output)] == ["favor"]


def test_agree_reproduces_the_datasheets_kappa_and_writes_the_disagreements_on_request(
    label_script, tmp_path: Path, capsys
) -> None:
    argv = ["agree", str(PASS_A), str(PASS_B), "--sentences", str(SEED_DATA)]
    assert label_script.main(argv) == 0  # no --output: the figures only, nothing written
    assert "0.914" in capsys.readouterr().out and list(tmp_path.iterdir()) == []  # datasheet's
    output = tmp_path / "disagreements.jsonl"
    assert label_script.main([*argv, "--output", str(output)]) == 0
    seed = {row["id"]: row for row in read_jsonl(SEED_DATA)}
    rows = read_jsonl(output)
    assert len(rows) == 8
    for row in rows:
        assert row["labels"]["pass_a"] != row["labels"]["pass_b"]
        assert row["text"] == seed[row["id"]]["text"] and row["doc"] == seed[row["id"]]["doc"]
        assert "label" not in row  # the adjudicator is not anchored either
    # Without --sentences the files carry no text.
    assert label_script.main([*argv[:3], "--output", str(output), "--overwrite"]) == 0
    assert "text" not in read_jsonl(output)[0]


def test_fleiss_kappa_matches_a_published_example_and_scotts_pi_for_two() -> None:
    # Fleiss' kappa's worked example on Wikipedia: 10 items, 14 raters, 5 categories: 0.210.
    table = "0 0 0 0 14|0 2 6 4 2|0 0 3 5 6|0 3 9 2 0|2 2 8 1 1|7 7 0 0 0|3 2 6 3 0|2 5 3 2 2"
    table = [[int(n) for n in row.split()] for row in (table + "|6 5 2 1 0|0 2 2 3 7").split("|")]
    ratings = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(ratings, labels="01234") == pytest.approx(0.2099, abs=1e-4)
    # With two raters Fleiss' kappa is Scott's pi, computed here from its definition.
    a, b = ([row["label"] for row in read_jsonl(path)] for path in (PASS_A, PASS_B))
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    chance = sum(((a.count(label) + b.count(label)) / (2 * len(a))) ** 2 for label in set(a + b))
    expected = (observed - chance) / (1 - chance)
    assert fleiss_kappa(list(zip(a, b, strict=True))) == pytest.approx(expected)
    assert np.isnan(fleiss_kappa([["none", "none"]] * 2))  # one label: undefined, no crash


def test_agree_on_three_files_reports_fleiss_and_every_pair(label_script, tmp_path, capsys) -> None:
    rows = [{"id": row["id"], "label": row["label"]} for row in read_jsonl(SEED_DATA)]
    third, output = write_jsonl(tmp_path / "carol.jsonl", rows), tmp_path / "d.jsonl"
    argv = ["agree", str(PASS_A), str(PASS_B), str(third), "--output", str(output)]
    assert label_script.main(argv) == 0
    printed = capsys.readouterr().out
    labels = [[row["label"] for row in read_jsonl(path)] for path in (PASS_A, PASS_B, third)]
    assert f"{fleiss_kappa(list(zip(*labels, strict=True))):.3f}" in printed
    for pair in ("pass_a vs pass_b", "pass_a vs carol", "pass_b vs carol"):
        assert pair in printed
    rows = read_jsonl(output)
    assert len(rows) == 8 and set(rows[0]["labels"]) == {"pass_a", "pass_b", "carol"}


def test_merge_rebuilds_the_seed_set_from_the_two_passes_and_the_adjudications(
    label_script, tmp_path: Path, capsys
) -> None:
    a = {row["id"]: row["label"] for row in read_jsonl(PASS_A)}
    b = {row["id"]: row["label"] for row in read_jsonl(PASS_B)}
    decided = [
        {"id": row["id"], "label": row["label"], "ambiguous": False, "annotator": "adjudicator"}
        for row in read_jsonl(SEED_DATA)
        if a[row["id"]] != b[row["id"]]
    ]
    output = tmp_path / "merged.jsonl"
    argv = ["--sentences", str(SEED_DATA), "--output", str(output)]
    argv += ["--adjudicated", str(write_jsonl(tmp_path / "adjudicated.jsonl", decided))]
    # The seed set keeps its article's repeated headline; merge refuses repeated texts.
    line = error_line(label_script.main, ["merge", str(PASS_A), str(PASS_B), *argv], capsys)
    assert "'003-01'" in line and "'003-02'" in line and not output.exists()
    passes = [
        str(write_jsonl(tmp_path / path.name, [r for r in read_jsonl(path) if r["id"] != "003-02"]))
        for path in (PASS_A, PASS_B)
    ]
    assert label_script.main(["merge", *passes, *argv]) == 0
    # Byte for byte the seed set without 003-02: labels, the ambiguous rule, format.
    seed_lines = SEED_DATA.read_text(encoding="utf-8").splitlines(keepends=True)
    expected = "".join(line for line in seed_lines if '"003-02"' not in line)
    assert output.read_text(encoding="utf-8") == expected


def test_merge_decides_by_agreement_adjudication_and_skips(tmp_path: Path) -> None:
    def answers(name: str, labels: str, flagged: str = "") -> Path:
        rows = [
            {"id": f"s{i}", "label": None if label == "-" else label, "text": f"Sentence {i}."}
            | {"ambiguous": str(i) in flagged}
            for i, label in enumerate(labels.split())
        ]
        return write_jsonl(tmp_path / f"{name}.jsonl", rows)

    alice = answers("alice", "favor none - against - none", flagged="01")
    bob = answers("bob", "favor none - favor none none", flagged="0")
    files = [read_annotations(alice), read_annotations(bob)]
    with pytest.raises(NegstanceError, match=r"\(s3, s4\)"):
        merge_annotations(files)
    decided = [{"id": "s3", "label": "against"}, {"id": "s4", "label": None}]
    decided.append({"id": "s5", "label": "favor", "ambiguous": True})
    decided = write_jsonl(tmp_path / "decided.jsonl", decided)
    merged = merge_annotations(files, read_annotations(decided))
    assert [(row["id"], row["label"], row["ambiguous"]) for row in merged.rows] == [
        ("s0", "favor", True),  # both flagged it
        ("s1", "none", False),  # one flag is not enough
        ("s3", "against", True),  # they disagreed: adjudicated, and ambiguous
        ("s5", "favor", True),  # the adjudicator overrules and flags
    ]
    assert set(merged.dropped) == {"s2", "s4"}  # everyone skipped; the adjudicator skipped
    assert list(merged.rows[0]) == ["id", "doc", "index", "text", "label", "ambiguous"]


@pytest.fixture()
def bad_inputs(tmp_path: Path, tiny_checkpoint_dir: Path, sentences_file: Path) -> dict[str, Path]:
    seed = read_jsonl(SEED_DATA)
    answers = [{"id": row["id"], "label": row["label"], "ambiguous": False} for row in seed]
    with_text = [{**a, "text": row["text"]} for a, row in zip(answers, seed, strict=True)]
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "article.pdf").write_text("not text")
    files = {
        "no_text": [{"body": "Talks resumed."}],
        "no_ids": [{"text": "Talks resumed."}],
        "favour": [{**answers[0], "label": "favour"}, *answers[1:]],
        "shorter": answers[:-1],
        "other_text": [{**row, "text": "Something else."} for row in answers],
        "with_text": with_text,
        "unique": [row for row in with_text if row["id"] != "003-02"],
        "dev": [{"text": "Today, " + seed[40]["text"], "label": "none"}],
        "stray": [{"id": "nowhere", "label": "none"}],
        "bob": [{"id": read_jsonl(sentences_file)[0]["id"], "label": "none", "annotator": "bob"}],
        "elsewhere": [{"id": "000-00", "label": "none", "annotator": "alice"}],
    }
    paths = {name: write_jsonl(tmp_path / f"{name}.jsonl", rows) for name, rows in files.items()}
    return paths | {
        "ckpt": tiny_checkpoint_dir,
        "empty": tmp_path / "empty_folder",
        "pdf": tmp_path / "article.pdf",
        "sentences": sentences_file,
        "out": tmp_path / "out.jsonl",
    }


# A command line => the nouns its one error line names (bad rows of any file: test_data.py).
BAD_INPUTS = """
suggest --model {empty} --input {raw} --output {out} => empty
suggest --model {ckpt} --input {pdf} --output {out} => article.pdf
suggest --model {ckpt} --input {no_text} --output {out} => no_text.jsonl; line 1; 'text'
suggest --model {ckpt} --input {empty} --output {out} => empty
suggest --model {ckpt} --input {raw} --output {out} --labelled {A} => pass_a.jsonl; line 1; 'text'
suggest --model {ckpt} --input {raw} --output {out} --labelled {seed} => {raw}
suggest --model {ckpt} --input {raw} --output {pdf}.csv => article.pdf.csv
suggest --model {ckpt} --input {raw} --output {out} --strategy best => strategy; best
annotate --input {no_ids} --output {out} --annotator alice => no_ids.jsonl; line 1; 'id'
annotate --input {pdf} --output {out} --annotator alice => article.pdf; line 1
annotate --input {sentences} --output {bob} --annotator alice => bob.jsonl; 'bob'; 'alice'
annotate --input {sentences} --output {elsewhere} --annotator alice => elsewhere.jsonl; 000-00
annotate --input {sentences} --output {sentences} --annotator alice => suggested.jsonl
agree {favour} {B} --output {out} => favour.jsonl; line 1; 'favour'
agree {A} {shorter} --output {out} => shorter.jsonl; pass_a.jsonl
agree {with_text} {other_text} --output {out} => other_text.jsonl; '000-00'
agree {A} {sentences} --output {out} => suggested.jsonl; line 1; 'label'
agree {A} --output {out} => annotation files
agree {A} {A} --output {out} => pass_a.jsonl
agree {with_text} {B} --output {with_text} --overwrite => with_text.jsonl
agree {A} {B} --output {sentences} => suggested.jsonl; --overwrite
merge {with_text} {B} --output {out} => --adjudicated
merge {A} --output {out} => '000-00'; --sentences
merge {unique} --dev {dev} --output {out} => dev.jsonl
merge {unique} --adjudicated {stray} --output {out} => stray.jsonl; nowhere
merge {with_text} {shorter} --output {out} => shorter.jsonl
""".strip().splitlines()


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(label_script, bad_inputs, case, capsys):
    names = {name: str(path) for name, path in bad_inputs.items()}
    names |= {"raw": str(RAW), "A": str(PASS_A), "B": str(PASS_B), "seed": str(SEED_DATA)}
    command, nouns = case.format(**names).split(" => ")
    before = {path: path.read_bytes() for path in bad_inputs.values() if path.is_file()}
    line = error_line(label_script.main, command.split(), capsys)
    assert all(noun in line for noun in nouns.split("; ")), line
    assert not bad_inputs["out"].exists()
    assert {path: path.read_bytes() for path in before} == before  # inputs untouched


def test_readme_label_commands_parse_and_name_files_that_exist() -> None:
    import shlex

    from negstance.model.options import parse_subcommand
    from negstance.train.cli import LABEL_COMMANDS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Label more data\n")[1].split("\n## ", 1)[0]
    scripts = ("python scripts/label.py", "python scripts/train.py")
    lines = section.replace("\\\n", " ").splitlines()
    lines = [line.split(" # ")[0].split(" | ")[-1].removeprefix("$ ").strip() for line in lines]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith(scripts)]
    assert {argv[1] for argv in commands if argv[0] == "scripts/label.py"} == set(LABEL_COMMANDS)
    label_commands = {name: entry[:2] for name, entry in LABEL_COMMANDS.items()}
    for argv in commands:
        paths = [path for arg in argv for path in arg.replace(",", "=").split("=")]
        assert all((REPO / path).exists() for path in paths if path.startswith(("data/", "conf")))
        if argv[0] == "scripts/label.py":
            parse_subcommand(label_commands, argv[1:])
        else:
            load_config(REPO / argv[2], argv[3:])
