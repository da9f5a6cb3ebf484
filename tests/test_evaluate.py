"""evaluate.py: the dev set and leave-one-article-out CV, its report, the model card quoting it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, SEED_DATA, error_line, load_script, read_jsonl, write_jsonl
from sklearn.metrics import confusion_matrix, f1_score

import negstance.train.baselines as baselines
import negstance.train.training as training
from negstance.model.errors import NegstanceError
from negstance.model.labels import LABEL2ID
from negstance.train.config import load_config
from negstance.train.data import load_seed_dataset
from negstance.train.evaluation import (
    bootstrap_intervals,
    grouped_folds,
    paired_differences,
    summarize,
)
from negstance.train.metrics import classification_metrics
from negstance.train.model_card import render_model_card
from negstance.train.report import MODEL, SETFIT, load_report, render_markdown, write_report

DEV_DATA = REPO / "data" / "dev" / "dev.jsonl"
REALNEWS_DATA = REPO / "data" / "realnews" / "dev.jsonl"
DOC_OF = {row["text"]: row["doc"] for row in read_jsonl(SEED_DATA)}
evaluate = load_script("evaluate").main


def quick_argv(backbone: Path, *extra: str) -> list[str]:
    # --threads=1: tests may share the CPU with other jobs.
    return ["--quick", f"--model_name_or_path={backbone}", "--no_progress", "--threads=1", *extra]


def run(tmp_path_factory, argv: list[str], patches: dict) -> dict:
    """``evaluate.py argv`` with ``patches`` (object, name: value); its files and trainings."""
    output_dir = tmp_path_factory.mktemp("evaluation")
    trained_on: list[set[str]] = []
    real_train = training.train

    def recording_train(config, train_dataset=None, **kwargs):
        trained_on.append(set(train_dataset["doc"]))
        return real_train(config, train_dataset=train_dataset, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "train", recording_train)
        for (owner, name), value in patches.items():
            patch.setattr(owner, name, value)
        status = evaluate([*argv, "--output_dir", str(output_dir)])
    return {
        "status": status,
        "dir": output_dir,
        "report": json.loads((output_dir / "report.json").read_text(encoding="utf-8")),
        "predictions": read_jsonl(output_dir / "predictions.jsonl"),
        "trained_on": trained_on,
    }


def only_majority(data, config):
    """The majority baseline alone: a run that tests something else needs no embeddings."""
    rows = np.arange(len(data))
    return [baselines.SklearnBaseline("majority", rows, np.asarray(data["label"]), data["doc"])]


@pytest.fixture(scope="module")
def quick_run(tiny_backbone_dir, tmp_path_factory):
    """``evaluate.py --quick`` on the tiny backbone, setfit made to look uninstalled. A copy of
    the backbone stands in for MiniLM: another backbone, so its frozen probes run too."""
    other_backbone = tmp_path_factory.mktemp("other") / "backbone"
    shutil.copytree(tiny_backbone_dir, other_backbone)
    patches = {
        (baselines, "setfit_available"): lambda: False,
        (baselines, "MINILM"): str(other_backbone),
    }
    return run(tmp_path_factory, quick_argv(tiny_backbone_dir), patches)


@pytest.fixture(scope="module")
def setfit_run(tiny_backbone_dir, tmp_path_factory):
    """``--quick`` CV with the real SetFit baseline (1 pair iteration), every fit recorded,
    run from an empty working directory to see that SetFit leaves nothing there."""
    pytest.importorskip("setfit")
    fits, real_fit = [], baselines.SetFitBaseline.fit_predict
    working_dir = tmp_path_factory.mktemp("working_dir")

    def recording_fit(self, train, test, seed):
        texts = self.dataset["text"]
        fits.append(
            {"train": {DOC_OF[texts[i]] for i in train}, "seed": seed}
            | {"test": {DOC_OF[texts[i]] for i in test}, "iterations": self.num_iterations}
        )
        return real_fit(self, train, test, seed)

    patches = {
        (baselines.SetFitBaseline, "fit_predict"): recording_fit,
        (baselines, "sklearn_baselines"): only_majority,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(working_dir)
        argv = quick_argv(tiny_backbone_dir, f"--data_path={SEED_DATA}", "--dev_path=")
        result = run(tmp_path_factory, argv, patches)
    return result | {"fits": fits, "left_in_working_dir": list(working_dir.iterdir())}


def assert_pooled_scores_match_scikit_learn(result: dict, protocol: str, systems) -> None:
    """Rescore every system's saved predictions (predictions.jsonl) with scikit-learn."""
    report = result["report"]
    for part in [report] if protocol == "cv" else report["dev"]:
        rows = [row for row in result["predictions"] if row["dataset"] == part["data"]["path"]]
        for seed in report["seeds"]:
            seed_rows = [row for row in rows if row["seed"] == seed]
            assert len(seed_rows) == part["data"]["tested_sentences"]
            assert {row["protocol"] for row in seed_rows} == {protocol}
            truth = [LABEL2ID[row["label"]] for row in seed_rows]
            for system in systems:
                predicted = [LABEL2ID[row["predicted"][system]] for row in seed_rows]
                scores = part["systems"][system]["pooled_by_seed"][str(seed)]
                per_label = f1_score(
                    truth, predicted, labels=[0, 1, 2], average=None, zero_division=0
                )
                assert scores["macro_f1"] == pytest.approx(per_label.mean())
                assert scores["f_avg"] == pytest.approx(per_label[:2].mean())
                matrix = confusion_matrix(truth, predicted, labels=[0, 1, 2])
                assert part["systems"][system]["confusion_matrix"] == matrix.tolist()
            for row in seed_rows:  # the model's label is its most probable one
                probabilities = row["probabilities"]
                assert max(probabilities, key=probabilities.get) == row["predicted"][MODEL]


def test_quick_run_writes_a_compact_report_and_the_predictions_apart(quick_run):
    assert quick_run["status"] == 0
    directory, report = quick_run["dir"], quick_run["report"]
    assert (directory / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert render_markdown(report, report["command"]) == (directory / "report.md").read_text()
    assert report["seeds"] == [42] and len(report["folds"]) == 2  # --quick
    for part in (report, *report["dev"]):
        assert "predictions" not in part and "runs" not in part  # those are predictions.jsonl's
        # The backbone is not "MiniLM": the frozen probes run on "MiniLM" too.
        assert "minilm_frozen_embedding_logreg_balanced" in part["baselines"]
        assert SETFIT not in part["systems"] and SETFIT in part["skipped"]
        assert set(part["comparisons"]) == set(part["baselines"])
        for system in (MODEL, *part["baselines"]):
            for scope in ("folds", "pooled"):
                assert set(part["systems"][system][scope]["against_f1"]) == {"mean", "std", "n"}
        assert part["bootstrap"]["baseline"] in part["baselines"]
        assert part["bootstrap"]["resamples"] == 100  # --quick
        assert part["bootstrap"]["sentences"] == part["data"]["tested_sentences"]
        for metric in ("macro_f1", "f_avg"):
            assert part["bootstrap"][metric]["low"] <= part["bootstrap"][metric]["high"]
        intervals = part["bootstrap"]["systems"]
        assert set(intervals) == set(part["systems"])
        assert all(0 <= ci["low"] <= ci["high"] <= 1 for ci in intervals.values())


def test_no_fold_trains_on_its_own_held_out_article(quick_run):
    folds, trained_on = quick_run["report"]["folds"], quick_run["trained_on"]
    assert len(trained_on) == len(folds) + 1  # the folds' trainings, then the dev set's
    for held_out, documents in zip(folds, trained_on, strict=False):
        assert held_out not in documents and len(documents) == 4  # all the other articles
    assert trained_on[-1] == set(DOC_OF.values())


def test_one_training_per_seed_scores_every_sentence_of_each_dev_set(quick_run):
    devs = quick_run["report"]["dev"]
    assert [dev["data"]["path"] for dev in devs] == [
        "data/realnews/dev.jsonl",
        "data/dev/dev.jsonl",
    ]  # the defaults, in their order
    assert len(quick_run["trained_on"]) == len(quick_run["report"]["folds"]) + 1
    for dev, path in zip(devs, (REALNEWS_DATA, DEV_DATA), strict=True):
        assert dev["data"]["train_sentences"] == len(read_jsonl(SEED_DATA))
        scored = [row for row in quick_run["predictions"] if row["dataset"] == dev["data"]["path"]]
        assert sorted(row["id"] for row in scored) == sorted(row["id"] for row in read_jsonl(path))
    assert_pooled_scores_match_scikit_learn(quick_run, "dev", (MODEL, *devs[0]["baselines"]))


def test_pooled_scores_match_scikit_learn_on_the_saved_predictions(quick_run):
    report = quick_run["report"]
    assert_pooled_scores_match_scikit_learn(quick_run, "cv", (MODEL, *report["baselines"]))
    scored = [row for row in quick_run["predictions"] if row["protocol"] == "cv"]
    assert {DOC_OF[row["text"]] for row in scored} == set(report["folds"])
    assert {row["predicted"]["majority"] for row in scored} == {"none"}  # the most frequent


def test_setfit_is_fitted_per_fold_and_seed_on_the_training_articles_only(setfit_run):
    report, fits = setfit_run["report"], setfit_run["fits"]
    assert setfit_run["status"] == 0 and report["baselines"][-1] == SETFIT
    assert len(fits) == len(report["folds"]) == 2
    for held_out, fit in zip(report["folds"], fits, strict=True):
        assert fit["test"] == {held_out} and held_out not in fit["train"]
        assert len(fit["train"]) == 4 and fit["seed"] == 42 and fit["iterations"] == 1
    assert report["comparisons"][SETFIT]["macro_f1"]["n"] == 2
    assert_pooled_scores_match_scikit_learn(setfit_run, "cv", (SETFIT,))
    assert setfit_run["left_in_working_dir"] == []  # no ./checkpoints


def test_setfit_wraps_a_plain_bert_with_mean_pooling_and_is_seeded(tiny_backbone_dir, tmp_path):
    pytest.importorskip("setfit")
    import datasets

    texts = [f"{words} {i}" for i in range(8) for words in ("peace talks", "no deal", "rain")]
    data = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 2] * 8})
    config = load_config(None, {"model_name_or_path": str(tiny_backbone_dir), "max_length": 32})
    system = baselines.SetFitBaseline(data, config, num_iterations=2, device="cpu")
    body = system.load_model().model_body
    assert [type(module).__name__ for module in body] == ["Transformer", "Pooling"]
    assert body[1].get_config_dict()["pooling_mode"] == "mean" and body.max_seq_length == 32
    rows = np.arange(len(texts))
    predicted = system.fit_predict(rows, rows, seed=3)
    assert np.mean(predicted == data["label"]) >= 0.9  # three easy templates, seen in training
    assert np.array_equal(system.fit_predict(rows, rows, seed=3), predicted)
    system.config = load_config(
        None, {"model_name_or_path": str(tiny_backbone_dir), "max_length": 256}
    )
    with pytest.raises(NegstanceError, match="128"):
        system.load_model()


def test_dev_only_without_setfit_gives_a_report_a_model_card_can_quote(
    tiny_backbone_dir, tmp_path_factory
):
    def must_not_run(*args, **kwargs):
        raise AssertionError("SetFit was fitted despite --no_setfit")

    patches = {
        (baselines, "setfit_available"): lambda: True,
        (baselines.SetFitBaseline, "fit_predict"): must_not_run,
        (baselines, "sklearn_baselines"): only_majority,
    }
    argv = quick_argv(tiny_backbone_dir, "--no_cv", "--no_setfit")
    result = run(tmp_path_factory, argv, patches)
    report = result["report"]
    assert "systems" not in report and MODEL in report["dev"][0]["systems"]
    assert SETFIT not in report["dev"][0]["systems"] and SETFIT in report["dev"][0]["skipped"]
    assert (result["dir"] / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    card = render_card(report["config"], result["dir"] / "report.json")
    results = front_matter(card)["model-index"][0]["results"]
    assert [result["dataset"]["split"] for result in results] == ["dev-1", "dev-2"]


def render_card(config: dict, report_path: Path, metrics: dict | None = None) -> str:
    config = load_config(None, config | {"evaluation_report": str(report_path)})
    return render_model_card(config, metrics or {}, load_seed_dataset(SEED_DATA))


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_model_card_quotes_the_attached_evaluation_and_its_configuration(quick_run):
    report, path = quick_run["report"], quick_run["dir"] / "report.json"
    card = render_card(report["config"], path)
    results = front_matter(card)["model-index"][0]["results"]
    # The dev sets first (the figures that matter for unseen news), then the CV.
    assert [result["dataset"]["split"] for result in results] == ["dev-1", "dev-2", "seed-cv"]
    for result, part in zip(results, (*report["dev"], report), strict=True):
        pooled = part["systems"][MODEL]["pooled"]["macro_f1"]["mean"]
        assert result["metrics"][0]["value"] == pytest.approx(pooled, abs=1e-4)
    assert str(path) in card and f"{pooled:.3f}" in card
    # Another configuration (10 epochs, not --quick's 1): named, and no scores in the metadata.
    backbone = {"model_name_or_path": report["config"]["model_name_or_path"]}
    other = render_card(backbone, path, {"train_seconds": 1.0})
    assert "model-index" not in front_matter(other) and "`num_train_epochs`" in other
    assert front_matter(other)["base_model"] == report["config"]["model_name_or_path"]


OLD_FORMAT = '{"systems": {"model": {"pooled": {}}}, "dev": {"systems": {"model": {}}}}'


@pytest.mark.parametrize(
    "content", [None, '{"systems": {"model": {"pooled": {}}}}', "{oops", OLD_FORMAT]
)
def test_a_card_without_a_usable_evaluation_says_so(tmp_path, content):
    # The card is written after training: a missing, incomplete or broken report must not
    # cost the checkpoint; the card names the report and carries no scores.
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    card = render_card({}, path)
    assert "model-index" not in front_matter(card) and str(path) in card


def test_model_card_lists_the_other_recipes_evaluated_beside_its_report(quick_run, tmp_path):
    report = quick_run["report"]
    other = json.loads(json.dumps(report))
    other["config"]["model_name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
    other["dev"][0]["systems"][MODEL]["pooled"]["macro_f1"]["mean"] = 0.6789
    old_format = json.loads(OLD_FORMAT)  # dev as one dict: skipped, not fatal to the card
    siblings = [("evaluation", report), ("evaluation-minilm", other), ("junk", {})]
    for name, content in [*siblings, ("evaluation-old", old_format)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(content), encoding="utf-8")
    card = render_card(report["config"], tmp_path / "evaluation" / "report.json")
    (row,) = [line for line in card.splitlines() if "evaluation-minilm" in line]
    assert "all-MiniLM-L6-v2" in row and "0.679" in row


def test_the_tracked_report_md_is_what_the_compact_report_json_renders():
    for directory in sorted((REPO / "reports").glob("evaluation*/")):
        report = load_report(directory / "report.json")
        markdown = render_markdown(report, report["command"])
        assert markdown == (directory / "report.md").read_text(encoding="utf-8"), directory


def test_a_failed_report_write_leaves_the_previous_report_whole(quick_run, tmp_path, monkeypatch):
    import negstance.train.report as report_module

    report = quick_run["report"] | {"predictions": quick_run["predictions"]}
    write_report(report, tmp_path, "first command")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert len(before) == 4

    def broken_plot(report):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "plot_confusion_matrices", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(report, tmp_path, "second command")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_grouped_folds_put_each_document_on_one_side_and_need_three():
    documents = list(load_seed_dataset(SEED_DATA)["doc"])
    folds = grouped_folds(documents)
    assert [fold.document for fold in folds] == sorted(set(documents))
    for fold in folds:
        assert {documents[i] for i in fold.test_indices} == {fold.document}
        assert fold.document not in {documents[i] for i in fold.train_indices}
    assert sorted(i for fold in folds for i in fold.test_indices) == list(range(len(documents)))
    assert len(grouped_folds(documents, max_folds=2)) == 2
    # Two are too few: the tuned baselines need two documents inside each training fold.
    with pytest.raises(NegstanceError, match="three"):
        grouped_folds(["a", "b", "a", "b"])


def test_metrics_summaries_and_pairing():
    truth, predicted = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1], [0, 1, 2, 1, 2, 2, 2, 0, 2, 1]
    metrics = classification_metrics(truth, predicted)
    per_label = f1_score(truth, predicted, average=None)
    assert metrics["macro_f1"] == pytest.approx(per_label.mean())
    assert metrics["f_avg"] == pytest.approx(per_label[:2].mean())
    assert summarize([0.5, 0.7, 0.9]) == pytest.approx({"mean": 0.7, "std": 0.2, "n": 3})
    assert summarize([0.4])["std"] == 0.0
    model = [{"macro_f1": 0.8, "f_avg": 0.8}, {"macro_f1": 0.5, "f_avg": 0.5}]
    base = [{"macro_f1": 0.6, "f_avg": 0.6}, {"macro_f1": 0.6, "f_avg": 0.6}]
    differences = paired_differences(model, base)["macro_f1"]
    assert differences["mean"] == pytest.approx(0.05) and differences["wins"] == 1


def test_bootstrap_interval_is_zero_for_equal_predictions_and_positive_for_a_better_model():
    labels, guesses = np.array([0, 1, 2] * 20), np.array([2] * 60)

    def intervals(model, baseline, resamples=20):
        return bootstrap_intervals(labels, {MODEL: model, "b": baseline}, "b", resamples)

    same = intervals([guesses, guesses], guesses)
    assert same["macro_f1"]["low"] == same["macro_f1"]["high"] == 0.0
    # One array per seed (SetFit) is averaged like the model's seeds.
    per_seed = intervals([labels], [guesses, guesses])
    assert per_seed == intervals([labels], guesses)
    swapped = intervals([labels, guesses], [guesses, labels])
    assert swapped["macro_f1"]["low"] == pytest.approx(0.0) == swapped["macro_f1"]["high"]
    better = intervals([labels], guesses)
    assert better["macro_f1"]["low"] > 0.5 and better["f_avg"]["low"] == pytest.approx(1.0)
    assert better["f_avg"]["share_above_zero"] == 1.0
    # Each system's own macro-F1: always right is [1, 1]; always `none`, 1/3 of F1 0.5 each time.
    assert better["systems"][MODEL] == {"low": 1.0, "high": 1.0}
    assert 0.1 < better["systems"]["b"]["low"] <= better["systems"]["b"]["high"] < 0.25


def test_inner_tuning_scores_all_three_labels_even_where_one_is_absent():
    from sklearn.neighbors import KNeighborsClassifier

    scorer = baselines.make_baseline("frozen_embedding_logreg", seed=0).scoring
    # An inner fold without `none`, every sentence right: F1 1, 1 and 0 (the absent label).
    features, truth = np.arange(4.0).reshape(-1, 1), np.array([0, 0, 1, 1])
    memoriser = KNeighborsClassifier(n_neighbors=1).fit(features, truth)
    assert scorer(memoriser, features, truth) == pytest.approx(2 / 3)


def test_a_setfit_that_fails_to_import_counts_as_unavailable(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "setfit", None)  # `import setfit` raises ImportError
    assert baselines.setfit_available() is False


def refused_before_training(monkeypatch, capsys, argv: list[str], *nouns: str) -> None:
    """``evaluate.py argv`` ends in one ``error:`` line naming ``nouns``, before any training."""

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(training, "train", must_not_train)
    line = error_line(evaluate, argv, capsys)
    assert all(noun in line for noun in nouns), line


def test_a_dev_sentence_in_the_training_data_is_refused(
    tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    dev_row = read_jsonl(DEV_DATA)[5]
    near_copy = {"id": "x-1", "doc": "x", "text": dev_row["text"] + "!", "label": "none"}
    leaked = write_jsonl(tmp_path / "leaked.jsonl", [*read_jsonl(SEED_DATA), near_copy])
    argv = quick_argv(
        tiny_backbone_dir, f"--data_path={leaked}", "--output_dir", str(tmp_path / "o")
    )
    refused_before_training(monkeypatch, capsys, argv, "leaked.jsonl", dev_row["id"])
    assert not (tmp_path / "o" / "report.json").exists()


def test_a_label_found_in_one_document_only_is_refused(tmp_path, monkeypatch, capsys):
    rows = [
        {"text": f"Sentence {doc} {label} {i}.", "label": label, "doc": doc}
        for doc in "abc"
        for label in ("favor", "none")
        for i in range(2)
    ] + [{"text": "Only here: no talks.", "label": "against", "doc": "a"}]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    argv = ["--quick", f"--data_path={data}", "--output_dir", str(tmp_path / "r")]
    refused_before_training(monkeypatch, capsys, argv, "'against'", "'a'")


@pytest.mark.parametrize(
    ("argv", "noun"),
    [
        (["--seeds", "0"], "seeds"),
        (["--quick", "--no_such_key=1"], "--no_such_key"),
        (["--quick", "--no_setfti"], "--no_setfit"),  # a typo of evaluate.py's own option
        (["--quick", "--max_lenght=64"], "--max_length"),  # ... and of a training key
        (["--config", "absent.yaml"], "absent.yaml"),
        (["--config", str(REPO / "configs")], "configs"),
        (["--quick", "--no_setfit", "--model_name_or_path=/no/such/backbone"], "/no/such/backbone"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(tmp_path, monkeypatch, capsys, argv, noun):
    argv = [*argv, "--output_dir", str(tmp_path / "report")]
    refused_before_training(monkeypatch, capsys, argv, noun)
    assert not (tmp_path / "report" / "report.json").exists()


def test_a_pickled_backbone_is_refused_before_any_training(
    tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    # The frozen-embedding baseline loads the backbone as training does, with its checks.
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (pickled / name).write_bytes((tiny_backbone_dir / name).read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"pickle would run code")
    argv = ["--quick", "--no_setfit", f"--model_name_or_path={pickled}"]
    refused_before_training(
        monkeypatch, capsys, [*argv, "--output_dir", str(tmp_path / "r")], str(pickled)
    )


def test_an_unwritable_output_dir_or_a_missing_gpu_is_refused_before_any_training(
    tmp_path, monkeypatch, capsys
):
    import torch

    blocker = tmp_path / "a_file"
    blocker.write_text("", encoding="utf-8")
    refused_before_training(
        monkeypatch, capsys, ["--quick", "--output_dir", str(blocker / "r")], "--output_dir"
    )
    if not torch.cuda.is_available():
        argv = ["--quick", "--no_setfit", "--device", "cuda", "--output_dir", str(tmp_path / "r")]
        refused_before_training(monkeypatch, capsys, argv, "cuda")
