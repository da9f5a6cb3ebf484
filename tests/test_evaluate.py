"""Leave-one-article-out evaluation, its metrics, and the model card that quotes it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import error_line, load_script
from sklearn.metrics import f1_score

from negstance.model.labels import LABEL2ID, LABELS
from negstance.train.baselines import BASELINE_INPUTS, SETFIT
from negstance.train.config import load_config
from negstance.train.data import load_seed_dataset
from negstance.train.evaluation import (
    bootstrap_difference,
    grouped_folds,
    paired_differences,
    summarize,
)
from negstance.train.metrics import classification_metrics
from negstance.train.model_card import render_model_card
from negstance.train.report import MODEL

REPO = Path(__file__).resolve().parents[1]
SEED_DATA = REPO / "data" / "seed_sentences.jsonl"
DEV_DATA = REPO / "data" / "dev" / "dev.jsonl"
SYSTEMS = (MODEL, *BASELINE_INPUTS)


@pytest.fixture(scope="module")
def evaluate_script():
    """``main`` of scripts/evaluate.py, called as a user's command line would."""
    return load_script("evaluate").main


def quick_argv(backbone: Path, output_dir: Path) -> list[str]:
    return [
        "--quick",
        f"--model_name_or_path={backbone}",
        "--output_dir",
        str(output_dir),
        "--no_progress",
        "--threads=1",  # tests may share the CPU with other jobs
    ]


@pytest.fixture(scope="module")
def quick_run(evaluate_script, tiny_backbone_dir, tmp_path_factory):
    """One ``evaluate.py --quick`` run on the tiny backbone, with every training recorded.

    setfit is made to look uninstalled: this is the path without it, wherever tests run.
    """
    import negstance.train.evaluation as evaluation_module
    import negstance.train.training as training

    output_dir = tmp_path_factory.mktemp("evaluation")
    trained_on: list[set[str]] = []
    real_train = training.train

    def recording_train(config, train_dataset=None, **kwargs):
        trained_on.append(set(train_dataset["doc"]))
        return real_train(config, train_dataset=train_dataset, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "train", recording_train)
        patch.setattr(evaluation_module, "setfit_available", lambda: False)
        status = evaluate_script(quick_argv(tiny_backbone_dir, output_dir))
    report = json.loads((output_dir / "report.json").read_text(encoding="utf-8"))
    return {"status": status, "dir": output_dir, "report": report, "trained_on": trained_on}


@pytest.fixture(scope="module")
def quick_setfit_run(evaluate_script, tiny_backbone_dir, tmp_path_factory):
    """``evaluate.py --quick`` with the real SetFit baseline, every SetFit fit recorded.

    Run from an empty working directory, to see that SetFit leaves nothing there.
    """
    pytest.importorskip("setfit")
    import negstance.train.evaluation as evaluation_module

    output_dir = tmp_path_factory.mktemp("evaluation_setfit")
    working_dir = tmp_path_factory.mktemp("working_dir")
    fits: list[dict] = []
    real_fit = evaluation_module.fit_predict_setfit

    def recording_fit(train_texts, train_labels, test_texts, model_name_or_path, seed, **kwargs):
        fits.append(
            {"train": list(train_texts), "test": list(test_texts), "seed": seed}
            | {"model_name_or_path": model_name_or_path, **kwargs}
        )
        return real_fit(train_texts, train_labels, test_texts, model_name_or_path, seed, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation_module, "fit_predict_setfit", recording_fit)
        patch.chdir(working_dir)
        argv = [
            *quick_argv(tiny_backbone_dir, output_dir),
            f"--data_path={SEED_DATA}",
            "--dev_path=",  # SetFit on the dev set too would double this slow fixture
        ]
        status = evaluate_script(argv)
    report = json.loads((output_dir / "report.json").read_text(encoding="utf-8"))
    return {
        "status": status,
        "dir": output_dir,
        "report": report,
        "fits": fits,
        "left_in_working_dir": sorted(path.name for path in working_dir.iterdir()),
    }


def assert_summary_shape(report: dict, system: str) -> None:
    """Every metric of ``system`` as mean/std/n, over 2 folds × 1 seed (--quick)."""
    summary = report["systems"][system]
    for scope in ("folds", "pooled"):
        for metric in ("macro_f1", "f_avg", "accuracy", "against_f1", "none_recall"):
            assert set(summary[scope][metric]) == {"mean", "std", "n"}
    assert summary["folds"]["macro_f1"]["n"] == 2
    assert set(summary["per_fold"]) == set(report["folds"])


def test_quick_run_writes_the_three_files_with_the_expected_keys(quick_run):
    assert quick_run["status"] == 0
    directory = quick_run["dir"]
    report = quick_run["report"]
    assert (directory / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (directory / "report.md").read_text(encoding="utf-8").splitlines()
    assert markdown[0].startswith("# ")
    assert markdown[2].startswith("Date: 20")
    assert markdown[3].startswith("Command: `python scripts/evaluate.py --quick")
    assert markdown[5] == "## External dev set (the signal the recipe is chosen by)"
    assert "| system | macro-F1 (folds) | F_avg (folds) | accuracy (folds)" in "\n".join(markdown)

    assert report["seeds"] == [42]
    assert len(report["folds"]) == 2
    assert report["config"]["num_train_epochs"] == 1  # --quick
    systems = (MODEL, *report["baselines"])
    # The tiny backbone is not MiniLM: the frozen probes run on MiniLM too.
    assert set(SYSTEMS) < set(systems)
    assert "minilm_frozen_embedding_logreg_balanced" in systems
    for system in systems:
        assert_summary_shape(report, system)
    assert len(report["runs"]) == 2 * len(systems)
    assert set(report["comparisons"]) == set(systems) - {MODEL}
    assert SETFIT not in report["systems"]
    assert "setfit is not installed" in report["skipped"][SETFIT]
    assert any(line.startswith("Skipped: setfit: setfit is not installed") for line in markdown)
    assert report["bootstrap"]["baseline"] in systems
    assert report["bootstrap"]["resamples"] == 100  # --quick
    for metric in ("macro_f1", "f_avg"):
        assert report["bootstrap"][metric]["low"] <= report["bootstrap"][metric]["high"]


def test_no_setfit_leaves_setfit_out_even_where_it_is_installed(
    evaluate_script, tiny_backbone_dir, tmp_path, monkeypatch
):
    import negstance.train.evaluation as evaluation_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("SetFit was fitted despite --no_setfit")

    monkeypatch.setattr(evaluation_module, "setfit_available", lambda: True)
    monkeypatch.setattr(evaluation_module, "fit_predict_setfit", must_not_run)
    argv = [*quick_argv(tiny_backbone_dir, tmp_path), "--no_setfit", "--max_folds=1"]
    assert evaluate_script(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert SETFIT not in report["systems"]
    assert report["skipped"][SETFIT] == "left out (--no_setfit)"


def test_quick_run_never_trains_on_the_held_out_article(quick_run):
    report = quick_run["report"]
    # The folds' trainings first, then the dev set's, on every seed article.
    assert len(quick_run["trained_on"]) == len(report["folds"]) + 1
    for held_out, training_documents in zip(report["folds"], quick_run["trained_on"], strict=False):
        assert held_out not in training_documents
        assert len(training_documents) == 4  # all the other articles
    assert quick_run["trained_on"][-1] == {row["doc"] for row in map(json.loads, SEED_DATA.open())}


def test_dev_protocol_trains_on_the_seed_set_and_scores_every_dev_sentence(quick_run):
    dev = quick_run["report"]["dev"]
    dev_rows = [json.loads(line) for line in DEV_DATA.open(encoding="utf-8")]
    assert dev["folds"] == ["dev"]
    assert dev["data"]["train_sentences"] == 153
    assert dev["data"]["tested_sentences"] == len(dev_rows) == 340
    truth = {row["id"]: LABEL2ID[row["label"]] for row in dev_rows}
    for system in (MODEL, *dev["baselines"]):
        predicted = dev["predictions"][system]["42"]
        assert set(predicted) == set(truth)  # every dev sentence, and no seed sentence
        y_true = [truth[key] for key in sorted(truth)]
        y_pred = [LABEL2ID[predicted[key]] for key in sorted(truth)]
        assert dev["systems"][system]["pooled"]["macro_f1"]["mean"] == pytest.approx(
            f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0)
        )
    assert dev["bootstrap"]["sentences"] == 340


def test_a_dev_sentence_in_the_training_data_is_refused_before_any_training(
    capsys, evaluate_script, tiny_backbone_dir, tmp_path
):
    leaked = tmp_path / "leaked.jsonl"
    dev_row = json.loads(DEV_DATA.read_text(encoding="utf-8").splitlines()[5])
    leaked.write_text(
        SEED_DATA.read_text(encoding="utf-8")
        + json.dumps({"id": "x-1", "doc": "x", "text": dev_row["text"] + "!", "label": "none"})
        + "\n",
        encoding="utf-8",
    )
    argv = [*quick_argv(tiny_backbone_dir, tmp_path / "out"), f"--data_path={leaked}"]
    line = error_line(evaluate_script, argv, capsys)
    assert "dev sentence(s) are in the training data" in line and dev_row["id"] in line


def test_no_cv_gives_a_dev_only_report_that_a_model_card_can_quote(
    evaluate_script, tiny_backbone_dir, tmp_path, monkeypatch
):
    import negstance.train.evaluation as evaluation_module

    monkeypatch.setattr(evaluation_module, "setfit_available", lambda: False)
    argv = [*quick_argv(tiny_backbone_dir, tmp_path), "--no_cv"]
    assert evaluate_script(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert "systems" not in report and MODEL in report["dev"]["systems"]
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Leave-one-article-out" not in markdown.split("\n", 1)[1]
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def assert_pooled_scores_match_saved_predictions(report: dict, systems: tuple[str, ...]) -> None:
    """Rescore each system's saved held-out predictions with scikit-learn."""
    truth = {row["id"]: row["label"] for row in map(json.loads, SEED_DATA.open(encoding="utf-8"))}
    for system in systems:
        predicted = report["predictions"][system]["42"]
        identifiers = sorted(predicted)
        assert {identifier[:3] for identifier in identifiers} == {
            document[:3] for document in report["folds"]
        }
        y_true = [LABEL2ID[truth[identifier]] for identifier in identifiers]
        y_pred = [LABEL2ID[predicted[identifier]] for identifier in identifiers]
        per_label = f1_score(y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0)
        pooled = report["systems"][system]["pooled"]
        assert pooled["macro_f1"]["mean"] == pytest.approx(
            f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0)
        )
        assert pooled["f_avg"]["mean"] == pytest.approx((per_label[0] + per_label[1]) / 2)
        matrix = np.asarray(report["systems"][system]["confusion_matrix"])
        assert matrix.sum() == len(identifiers)


def test_reported_pooled_scores_match_scikit_learn_on_the_saved_predictions(quick_run):
    report = quick_run["report"]
    assert_pooled_scores_match_saved_predictions(report, SYSTEMS)
    majority = report["predictions"]["majority"]["42"]
    assert set(majority.values()) == {"none"}  # the most frequent label of every training split


def test_quick_run_with_setfit_reports_it_like_the_other_baselines(quick_setfit_run):
    assert quick_setfit_run["status"] == 0
    report = quick_setfit_run["report"]
    systems = (MODEL, *report["baselines"])
    assert systems[-1] == SETFIT
    assert SETFIT not in report["skipped"]
    assert_summary_shape(report, SETFIT)
    assert len(report["runs"]) == 2 * len(systems)
    assert {
        (run["seed"], run["document"]) for run in report["runs"] if run["system"] == SETFIT
    } == {(42, document) for document in report["folds"]}
    assert report["comparisons"][SETFIT]["macro_f1"]["n"] == 2
    assert "num_iterations=1" in report["descriptions"][SETFIT]  # --quick
    assert report["timing"]["setfit_fits"] == 2
    assert_pooled_scores_match_saved_predictions(report, (SETFIT,))
    markdown = (quick_setfit_run["dir"] / "report.md").read_text(encoding="utf-8")
    assert "\n| setfit | " in markdown  # headline and per-label tables
    assert "| model accuracy | majority | tfidf_logreg" in markdown
    assert "| minilm_frozen_embedding_logreg_balanced | setfit |" in markdown  # per-article header
    assert "Skipped:" not in markdown


def test_setfit_is_fitted_per_fold_and_seed_on_the_training_articles_only(quick_setfit_run):
    report = quick_setfit_run["report"]
    document_of = {
        row["text"]: row["doc"] for row in map(json.loads, SEED_DATA.open(encoding="utf-8"))
    }
    fits = quick_setfit_run["fits"]
    assert len(fits) == len(report["folds"])
    for held_out, fit in zip(report["folds"], fits, strict=True):
        assert {document_of[text] for text in fit["test"]} == {held_out}
        assert held_out not in {document_of[text] for text in fit["train"]}
        assert len({document_of[text] for text in fit["train"]}) == 4
        assert fit["seed"] == 42
        assert fit["num_iterations"] == 1  # --quick
        assert fit["max_length"] == report["config"]["max_length"]
        assert fit["model_name_or_path"] == report["config"]["model_name_or_path"]
    assert quick_setfit_run["left_in_working_dir"] == []  # no ./checkpoints


def test_setfit_baseline_wraps_a_plain_bert_with_mean_pooling(
    tiny_backbone_dir, tmp_path, monkeypatch
):
    setfit = pytest.importorskip("setfit")
    from negstance.model.errors import NegstanceError
    from negstance.train.baselines import fit_predict_setfit

    loaded = []
    real_from_pretrained = setfit.SetFitModel.from_pretrained

    def recording_from_pretrained(*args, **kwargs):
        loaded.append(real_from_pretrained(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(setfit.SetFitModel, "from_pretrained", recording_from_pretrained)
    monkeypatch.chdir(tmp_path)
    texts = [
        f"{words} {index}"
        for index in range(8)
        for words in ("peace talks now", "no surrender ever", "rain in the city")
    ]
    labels = [0, 1, 2] * 8

    def fit(seed: int, max_length: int = 32) -> np.ndarray:
        return fit_predict_setfit(
            texts, labels, texts, str(tiny_backbone_dir), seed, max_length, num_iterations=2
        )

    predicted = fit(seed=3)
    assert predicted.shape == (len(texts),)
    assert np.mean(predicted == labels) >= 0.9  # three easy templates, seen in training
    assert np.array_equal(fit(seed=3), predicted)  # seeded: the same run gives the same
    body = loaded[0].model_body
    assert [type(module).__name__ for module in body] == ["Transformer", "Pooling"]
    assert body[1].get_config_dict()["pooling_mode"] == "mean"
    assert body.max_seq_length == 32
    assert list(tmp_path.iterdir()) == []  # its checkpoints went to a temporary directory
    with pytest.raises(NegstanceError, match="128 token positions"):
        fit(seed=3, max_length=256)


def test_grouped_folds_put_each_document_on_one_side_only():
    dataset = load_seed_dataset(SEED_DATA)
    documents = list(dataset["doc"])
    folds = grouped_folds(documents)
    assert [fold.document for fold in folds] == sorted(set(documents))
    tested = []
    for fold in folds:
        test_documents = {documents[index] for index in fold.test_indices}
        train_documents = {documents[index] for index in fold.train_indices}
        assert test_documents == {fold.document}
        assert fold.document not in train_documents
        assert sorted(fold.train_indices + fold.test_indices) == list(range(len(documents)))
        tested += fold.test_indices
    assert sorted(tested) == list(range(len(documents)))  # every sentence tested exactly once
    assert len(grouped_folds(documents, max_folds=2)) == 2


def test_grouped_folds_refuse_fewer_than_three_documents():
    from negstance.model.errors import NegstanceError

    # Two is too few: the tuned baselines need two documents inside each training fold.
    for documents in (["a", "a", "a"], ["a", "b", "a", "b"]):
        with pytest.raises(NegstanceError, match="at least three documents"):
            grouped_folds(documents)
    assert len(grouped_folds(["a", "b", "c"])) == 3


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_label_found_in_one_document_only_is_a_one_line_error(capsys, evaluate_script, tmp_path):
    rows = [
        {"text": f"Sentence {doc} {label} {index}.", "label": label, "doc": doc}
        for doc in ("a", "b", "c")
        for label in ("favor", "none")
        for index in range(2)
    ] + [{"text": "Only here: no talks.", "label": "against", "doc": "a"}]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    code = evaluate_script(["--quick", f"--data_path={data}", "--output_dir", str(tmp_path / "r")])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error == (
        "error: every 'against' sentence is in document 'a': holding it out leaves no "
        "example of that label to train on; label some in another document"
    )


def test_an_unwritable_output_dir_is_refused_before_any_training(
    capsys, evaluate_script, tmp_path, monkeypatch
):
    import negstance.train.evaluation as evaluation_module

    def fail_if_called(*args, **kwargs):
        raise AssertionError("cross-validation ran before the output directory was checked")

    monkeypatch.setattr(evaluation_module, "cross_validate", fail_if_called)
    blocker = tmp_path / "a_file"
    blocker.write_text("", encoding="utf-8")
    assert evaluate_script(["--quick", "--output_dir", str(blocker / "report")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: --output_dir: {blocker} is a file, not a directory"
    )


def test_macro_f1_and_f_avg_match_scikit_learn_on_a_hand_made_example():
    favor, against, none = (LABEL2ID[label] for label in LABELS)
    truth = [favor, favor, favor, against, against, none, none, none, none, against]
    predicted = [favor, against, none, against, none, none, none, favor, none, against]
    metrics = classification_metrics(truth, predicted)
    per_label = f1_score(truth, predicted, labels=[0, 1, 2], average=None)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["f_avg"] == pytest.approx((per_label[favor] + per_label[against]) / 2)
    # By hand: favor P 1/2 R 1/3 → F1 0.4; against P 2/3 R 2/3 → 2/3; none P 3/5 R 3/4 → 2/3.
    assert metrics["f_avg"] == pytest.approx((0.4 + 2 / 3) / 2)
    assert metrics["macro_f1"] == pytest.approx((0.4 + 2 / 3 + 2 / 3) / 3)


def test_summaries_use_the_sample_std_and_pair_runs_by_seed_and_article():
    assert summarize([0.5, 0.7, 0.9]) == pytest.approx(
        {"mean": 0.7, "std": float(np.std([0.5, 0.7, 0.9], ddof=1)), "n": 3}
    )
    assert summarize([0.4])["std"] == 0.0
    runs = [
        {
            "system": system,
            "seed": seed,
            "document": document,
            "metrics": {"macro_f1": score, "f_avg": score},
        }
        for system, seed, document, score in [
            ("model", 1, "a", 0.8),
            ("model", 1, "b", 0.5),
            ("base", 1, "b", 0.6),
            ("base", 1, "a", 0.6),
        ]
    ]
    differences = paired_differences(runs, "model", "base")["macro_f1"]
    assert differences["mean"] == pytest.approx(((0.8 - 0.6) + (0.5 - 0.6)) / 2)
    assert differences["wins"] == 1


def test_bootstrap_interval_is_zero_for_equal_predictions_and_positive_for_a_better_model():
    labels = np.array([0, 1, 2] * 20)
    guesses = np.array([2] * 60)
    same = bootstrap_difference(labels, [guesses, guesses], guesses, resamples=50)
    assert same["macro_f1"]["low"] == same["macro_f1"]["high"] == 0.0
    # One array per seed (SetFit) is averaged like the model's seeds.
    assert bootstrap_difference(labels, [labels], [guesses, guesses], 50) == bootstrap_difference(
        labels, [labels], guesses, 50
    )
    equal = bootstrap_difference(labels, [labels, guesses], [guesses, labels], resamples=50)
    assert equal["macro_f1"]["low"] == equal["macro_f1"]["high"] == pytest.approx(0.0)
    better = bootstrap_difference(labels, [labels.copy()], guesses, resamples=50)
    assert better["macro_f1"]["low"] > 0.5
    assert better["f_avg"]["low"] == pytest.approx(1.0)  # perfect vs no favor/against at all
    assert better["f_avg"]["share_above_zero"] == 1.0


def test_bad_arguments_exit_with_a_one_line_error(capsys, evaluate_script):
    assert evaluate_script(["--seeds", "0"]) == 2
    assert evaluate_script(["--quick", "--no_such_key=1"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert all(line.startswith("error: ") for line in errors)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_model_card_quotes_the_attached_evaluation(quick_run, tiny_backbone_dir):
    dataset = load_seed_dataset(SEED_DATA)
    config = load_config(None, {"model_name_or_path": str(tiny_backbone_dir)})
    card = render_model_card(
        config, {"train_seconds": 1.0}, dataset, evaluation_report=quick_run["dir"] / "report.json"
    )
    metadata = front_matter(card)
    assert {"pipeline_tag", "base_model", "language", "license", "tags", "metrics"} <= set(metadata)
    assert metadata["pipeline_tag"] == "text-classification"
    assert metadata["license"] == "mit"
    assert metadata["base_model"] == str(tiny_backbone_dir)
    for section in ("## Intended use", "## Labels", "## Training data", "## Evaluation"):
        assert section in card
    assert "## Limitations and risks" in card and "## How to use" in card
    counts = Counter(dataset["label"])
    assert f"favor {counts[0]}, against {counts[1]}, none {counts[2]}" in card
    # The quick run trained 1 epoch; this config says 10: the card must say they differ,
    # and its machine-readable metadata must not claim the other recipe's scores.
    assert "evaluated configuration differs" in card and "`num_train_epochs`" in card
    assert "model-index" not in metadata
    assert "negstance" in card
    assert "per article (mean over folds × seeds): model" in card  # not pooled scores alone


def test_model_card_metadata_carries_the_scores_of_the_same_configuration(quick_run):
    dataset = load_seed_dataset(SEED_DATA)
    config = load_config(None, quick_run["report"]["config"])
    card = render_model_card(
        config, {}, dataset, evaluation_report=quick_run["dir"] / "report.json"
    )
    assert "evaluated configuration differs" not in card
    report = quick_run["report"]
    results = front_matter(card)["model-index"][0]["results"]
    # The dev set first (the figure that matters for unseen news), then the CV.
    assert [result["dataset"]["name"] for result in results] == [
        "negstance external dev set (trained on the seed set)",
        "negstance seed set, leave-one-article-out CV",
    ]
    for result, part in zip(results, (report["dev"], report), strict=True):
        pooled = part["systems"][MODEL]["pooled"]["macro_f1"]["mean"]
        assert result["metrics"][0]["value"] == pytest.approx(pooled, abs=1e-4)


def test_the_verdict_names_the_per_article_winner_and_the_paired_wins(quick_run):
    from negstance.train.report import verdict_lines

    report = quick_run["report"]
    lines = verdict_lines(report)
    for name, label in (("macro_f1", "macro-F1"), ("f_avg", "F_avg")):
        best = max(
            (system for system in report["comparisons"]),
            key=lambda system: report["systems"][system]["folds"][name]["mean"],
        )
        paired = report["comparisons"][best][name]
        (line,) = [line for line in lines if line.startswith(f"- {label} per article")]
        assert f"vs `{best}` " in line
        assert f"better in {paired['wins']} of {paired['n']} runs" in line
    markdown = (quick_run["dir"] / "report.md").read_text(encoding="utf-8")
    assert "macro-F1 per article (mean over folds × seeds): model " in markdown


def test_model_card_says_when_no_evaluation_is_attached(tmp_path):
    dataset = load_seed_dataset(SEED_DATA)
    config = load_config(None, {"head": "cls"})
    card = render_model_card(config, {}, dataset, evaluation_report=tmp_path / "missing.json")
    metadata = front_matter(card)
    assert "model-index" not in metadata
    assert "No cross-validated evaluation was attached" in card
    assert "loads with plain transformers" in card


def test_a_failed_report_write_leaves_the_previous_report_whole(quick_run, tmp_path, monkeypatch):
    import negstance.train.report as report_module

    report = quick_run["report"]
    report_module.write_report(report, tmp_path, "first command")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert sorted(before) == ["confusion_matrix.png", "report.json", "report.md"]
    assert before["confusion_matrix.png"].startswith(b"\x89PNG")

    def broken_plot(report):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "plot_confusion_matrices", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        report_module.write_report(report, tmp_path, "second command")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_inner_tuning_scores_all_three_labels_even_where_one_is_absent():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from negstance.train.baselines import _grouped_search

    scorer = _grouped_search(LogisticRegression()).scoring
    # An inner fold without `none` sentences, every one predicted right: F1 1 for favor and
    # against, 0 for the absent label, as the report's macro-F1 counts it (not 1.0).
    features, truth = np.arange(4.0).reshape(-1, 1), np.array([0, 0, 1, 1])
    memoriser = KNeighborsClassifier(n_neighbors=1).fit(features, truth)
    assert scorer(memoriser, features, truth) == pytest.approx(2 / 3)


def test_an_incomplete_report_gives_a_card_with_the_reason_not_a_crash(tmp_path):
    # The card is written after training; a hand-edited or older report must not lose it.
    report = tmp_path / "report.json"
    report.write_text('{"systems": {"model": {"pooled": {}}}}', encoding="utf-8")
    dataset = load_seed_dataset(SEED_DATA)
    card = render_model_card(load_config(), {}, dataset, evaluation_report=report)
    assert "model-index" not in front_matter(card)
    assert f"`{report}` is not a complete evaluation report (KeyError: " in card
    assert "re-run scripts/evaluate.py" in card


def test_a_setfit_that_fails_to_import_counts_as_unavailable(monkeypatch):
    import sys

    from negstance.train.baselines import setfit_available

    # None in sys.modules makes `import setfit` raise ImportError, as a broken install would.
    monkeypatch.setitem(sys.modules, "setfit", None)
    assert setfit_available() is False


def test_model_card_lists_the_other_recipes_evaluated_beside_its_report(quick_run, tmp_path):
    report = quick_run["report"]
    other = json.loads(json.dumps(report))
    other["config"]["model_name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
    other["dev"]["systems"][MODEL]["pooled"]["macro_f1"]["mean"] = 0.6789
    for name, content in (("evaluation", report), ("evaluation-minilm", other)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(content), encoding="utf-8")
    config = load_config(None, report["config"])
    card = render_model_card(
        config,
        {},
        load_seed_dataset(SEED_DATA),
        evaluation_report=tmp_path / "evaluation" / "report.json",
    )
    assert "**Other recipes evaluated the same way**" in card
    row = next(line for line in card.splitlines() if line.startswith("| `evaluation-minilm`"))
    assert "all-MiniLM-L6-v2" in row and "| 0.679 |" in row
