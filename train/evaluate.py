"""Honest evaluation: leave-one-article-out cross-validation, repeated over seeds.

Each of the five articles is held out in turn (``LeaveOneGroupOut`` on the
``doc`` column): no sentence of the test article is seen in training, and
anything tuned (the baselines' regularisation) is tuned inside the training
articles only. The fine-tuned model and every baseline see the same folds and
seeds; SetFit, the one seed-dependent baseline (and optional), is fitted anew
for every seed. ``scripts/evaluate.py`` wraps :func:`evaluate_main`; the report
lands in ``<output_dir>/report.json``, ``report.md`` and ``confusion_matrix.png``.

Two kinds of summary are reported, and always labelled:

* **fold scores**: the metric on each held-out article, mean ± sample std over
  folds × seeds. The spread is dominated by how different the articles are.
* **pooled scores**: each seed's predictions on every held-out sentence scored
  together, mean ± sample std over seeds. With 1-3 ``against`` sentences in
  four of the five articles, per-article F1 for that label is very noisy, so
  the pooled figures are the steadier estimate.

Example:
    >>> from negstance.train.config import load_config
    >>> from negstance.train.evaluate import cross_validate
    >>> report = cross_validate(load_config("configs/default.yaml"), seeds=[42])  # doctest: +SKIP
    >>> report["systems"]["model"]["pooled"]["macro_f1"]["mean"]  # doctest: +SKIP
    0.6...
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import difflib
import io
import json
import os
import platform
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import LeaveOneGroupOut

from negstance.model.cli import (
    ArgumentParser,
    add_debug_option,
    positive_int,
    user_errors_exit_cleanly,
)
from negstance.model.errors import NegstanceError
from negstance.model.io import check_writable_directory, write_text_atomic
from negstance.model.modeling import LABELS
from negstance.train.baselines import (
    ALL_BASELINES,
    BASELINE_DESCRIPTIONS,
    BASELINE_INPUTS,
    MINILM_PREFIX,
    SETFIT,
    fit_predict_baseline,
    fit_predict_setfit,
    frozen_embeddings,
    setfit_available,
)
from negstance.train.config import TrainConfig, load_config, parse_overrides
from negstance.train.metrics import LABEL_IDS, classification_metrics

MODEL = "model"
ENSEMBLE = "model_seed_ensemble"
HEADLINE_METRICS = ("macro_f1", "f_avg", "accuracy")
METRIC_NAMES = {"macro_f1": "macro-F1", "f_avg": "F_avg", "accuracy": "accuracy"}
DEFAULT_OUTPUT_DIR = "reports/evaluation"
DEFAULT_DEV_PATH = "data/dev/dev.jsonl"
# A smoke test must never overwrite the real report that model cards quote.
QUICK_OUTPUT_DIR = "runs/evaluation-quick"
REPORT_FILES = ("report.json", "report.md", "confusion_matrix.png")
# Keys of TrainConfig that do not change what is learned, left out of config comparisons.
RUN_ONLY_KEYS = (
    "output_dir",
    "show_progress",
    "seed",
    "evaluation_report",
    "overwrite",
    "save_state_every_epoch",
    "resume_from",
    "validation_docs",  # cross-validation holds out its own documents
)


@dataclass(frozen=True)
class Fold:
    """One held-out article: the row indices to train on and to test on."""

    document: str
    train_indices: list[int]
    test_indices: list[int]


def grouped_folds(documents: Sequence[str], max_folds: int | None = None) -> list[Fold]:
    """Leave-one-document-out folds, in sorted document order.

    Example:
        >>> [fold.document for fold in grouped_folds(["a", "b", "a", "c"])]
        ['a', 'b', 'c']
        >>> grouped_folds(["a", "b", "a", "c"])[0].test_indices
        [0, 2]
    """
    groups = np.asarray(documents)
    # Three, because the tuned baselines run a second leave-one-document-out CV
    # inside each training fold, which needs two documents of its own.
    if len(set(documents)) < 3:
        raise NegstanceError(
            "grouped cross-validation needs sentences from at least three documents "
            f"(the data's `doc` field); found {len(set(documents))}"
        )
    folds = [
        Fold(str(groups[test[0]]), train.tolist(), test.tolist())
        for train, test in LeaveOneGroupOut().split(np.zeros(len(groups)), groups=groups)
    ]
    return folds[:max_folds] if max_folds else folds


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for a single value) and count."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "n": len(array),
    }


def flat_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """Headline and per-label scores of one ``classification_metrics`` result, flattened."""
    scores = {name: metrics[name] for name in HEADLINE_METRICS}
    for label, values in metrics["per_label"].items():
        for name in ("precision", "recall", "f1"):
            scores[f"{label}_{name}"] = values[name]
    return scores


def summarize_system(
    runs: list[dict[str, Any]],
    predictions: dict[int, np.ndarray],
    labels: np.ndarray,
    tested: np.ndarray,
) -> dict[str, Any]:
    """Fold-level and pooled summaries of one system's runs (see the module docstring)."""
    fold_scores = [flat_scores(run["metrics"]) for run in runs]
    pooled_by_seed = {
        seed: classification_metrics(labels[tested].tolist(), predicted[tested].tolist())
        for seed, predicted in predictions.items()
    }
    pooled_scores = [flat_scores(metrics) for metrics in pooled_by_seed.values()]
    per_fold: dict[str, Any] = {}
    for document in dict.fromkeys(run["document"] for run in runs):
        document_runs = [run for run in runs if run["document"] == document]
        per_fold[document] = {
            name: summarize([run["metrics"][name] for run in document_runs])
            for name in HEADLINE_METRICS
        } | {
            "confusion_matrix": np.sum(
                [run["metrics"]["confusion_matrix"] for run in document_runs], axis=0
            ).tolist()
        }
    return {
        "folds": {name: summarize([s[name] for s in fold_scores]) for name in fold_scores[0]},
        "pooled": {name: summarize([s[name] for s in pooled_scores]) for name in pooled_scores[0]},
        "pooled_by_seed": {str(seed): flat_scores(m) for seed, m in pooled_by_seed.items()},
        "confusion_matrix": np.sum(
            [metrics["confusion_matrix"] for metrics in pooled_by_seed.values()], axis=0
        ).tolist(),
        "per_fold": per_fold,
    }


def paired_differences(
    runs: list[dict[str, Any]], system: str, baseline: str
) -> dict[str, dict[str, float]]:
    """``system`` minus ``baseline`` on the same (seed, article) runs: mean, std, wins."""
    by_key = {(run["system"], run["seed"], run["document"]): run["metrics"] for run in runs}
    keys = [(run["seed"], run["document"]) for run in runs if run["system"] == system]
    result = {}
    for name in ("macro_f1", "f_avg"):
        differences = [
            by_key[(system, *key)][name] - by_key[(baseline, *key)][name] for key in keys
        ]
        result[name] = summarize(differences) | {
            "wins": int(sum(value > 0 for value in differences)),
            "ties": int(sum(value == 0 for value in differences)),
        }
    return result


def bootstrap_difference(
    labels: np.ndarray,
    model_predictions: Sequence[np.ndarray],
    baseline_predictions: np.ndarray | Sequence[np.ndarray],
    resamples: int,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """95 % interval of (model − baseline) pooled macro-F1 and F_avg, resampling sentences.

    The seeds' spread says nothing about how much the scores would move with other
    sentences; with 153 of them, that uncertainty is the larger one. Paired: each
    resample scores the model and the baseline on the same rows, each averaged over
    its seeds (``baseline_predictions``: one array, or one per seed as for SetFit).
    """
    baseline_by_seed = np.atleast_2d(np.asarray(baseline_predictions))
    generator = np.random.default_rng(seed)
    differences: dict[str, list[float]] = {"macro_f1": [], "f_avg": []}
    for _ in range(resamples):
        rows = generator.integers(0, len(labels), len(labels))

        def per_label_f1(predicted: np.ndarray, rows: np.ndarray = rows) -> np.ndarray:
            return f1_score(
                labels[rows], predicted[rows], labels=LABEL_IDS, average=None, zero_division=0
            )

        model = np.mean([per_label_f1(predicted) for predicted in model_predictions], axis=0)
        baseline = np.mean([per_label_f1(predicted) for predicted in baseline_by_seed], axis=0)
        difference = model - baseline
        differences["macro_f1"].append(float(difference.mean()))
        differences["f_avg"].append(float(difference[:2].mean()))
    return {
        name: {
            "low": float(np.percentile(values, 2.5)),
            "high": float(np.percentile(values, 97.5)),
            "share_above_zero": float(np.mean(np.asarray(values) > 0)),
        }
        for name, values in differences.items()
    }


def label_counts(labels: Sequence[int]) -> dict[str, int]:
    counts = Counter(int(label) for label in labels)
    return {label: counts.get(index, 0) for index, label in enumerate(LABELS)}


def cross_validate(
    config: TrainConfig,
    seeds: Sequence[int],
    max_folds: int | None = None,
    device: str = "auto",
    show_progress: bool = True,
    bootstrap_resamples: int = 1000,
    setfit_iterations: int | None = None,
    include_setfit: bool = True,
    dev_path: str | None = None,
    run_cv: bool = True,
) -> dict[str, Any]:
    """Train and test the model and the baselines; the report dict.

    Two protocols, each on the same seeds with the same baselines:

    * leave-one-article-out CV on the seed set (``run_cv``): the top-level keys;
    * train on every seed sentence, score on the external dev set at ``dev_path``
      (never trained on): ``report["dev"]``, the same keys for a single "fold".

    ``config`` is the model's training config; each run uses it with ``seed``
    replaced. Its ``validation_docs`` are ignored: the protocol decides what is held
    out. SetFit runs only where it is installed and ``include_setfit``;
    ``setfit_iterations`` is its ``num_iterations`` (None: SetFit's default pair
    sampling, see :func:`~negstance.train.baselines.fit_predict_setfit`).
    """
    import torch
    import transformers

    from negstance.model.modeling import resolve_device
    from negstance.train.data import load_seed_dataset

    config.validate()
    if getattr(config, "resume_from", ""):
        raise NegstanceError(
            "resume_from cannot be used in cross-validation: every run starts fresh"
        )
    if not seeds:
        raise NegstanceError("at least one seed is needed")
    if not run_cv and not dev_path:
        raise NegstanceError("nothing to evaluate: no cross-validation and no dev set")
    resolved_device = resolve_device(device)  # a bad --device fails now, not after a training
    started = time.perf_counter()
    dataset = load_seed_dataset(config.data_path, exclude_ambiguous=config.exclude_ambiguous)
    if dev_path and not Path(dev_path).is_file():
        raise NegstanceError(
            f"dev set not found: {dev_path} (--dev_path=FILE, or --dev_path= to leave it out)"
        )
    dev = load_seed_dataset(dev_path) if dev_path else None
    if dev is not None:
        from negstance.train.labeling import find_duplicates

        # A dev sentence merged into the training data would inflate every dev score.
        leaked = [
            dev["id"][index]
            for index, match in enumerate(find_duplicates(dev["text"], dataset["text"]))
            if match is not None
        ]
        if leaked:
            raise NegstanceError(
                f"{len(leaked)} dev sentence(s) are in the training data {config.data_path} "
                f"(e.g. {leaked[0]}): the dev set must never be trained on; drop them there"
            )
    run_setfit = include_setfit and setfit_available()
    if run_setfit and setfit_iterations is None:
        # Said up front: with its default pair sampling this baseline can take hours
        # on a CPU, far longer than the model.
        fits = len(seeds) * ((len(set(dataset["doc"])) if run_cv else 0) + bool(dev))
        print(
            f"setfit is installed: the SetFit baseline is included, {fits} fits of about "
            "10 minutes each on one CPU thread; --setfit_iterations 20 halves that, "
            "--no_setfit leaves it out",
            file=sys.stderr,
        )
    options = {
        "skipped_setfit": None
        if run_setfit
        else "left out (--no_setfit)"
        if not include_setfit
        else 'setfit is not installed or does not import (optional: pip install -e ".[setfit]")',
        "seeds": seeds,
        "device": resolved_device,
        "show_progress": show_progress,
        "bootstrap_resamples": bootstrap_resamples,
        "setfit_iterations": setfit_iterations,
        "run_setfit": run_setfit,
    }
    report: dict[str, Any] = {
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "config": dataclasses.asdict(config),
        "config_changes": config_changes(config),
        "seeds": list(seeds),
    }
    if run_cv:
        folds = grouped_folds(list(dataset["doc"]), max_folds)
        labels = np.asarray(dataset["label"])
        for fold in folds:
            missing = set(range(len(LABELS))) - set(labels[fold.train_indices].tolist())
            if missing:
                names = ", ".join(repr(LABELS[label]) for label in sorted(missing))
                raise NegstanceError(
                    f"every {names} sentence is in document {fold.document!r}: holding it "
                    "out leaves no example of that label to train on; label some in "
                    "another document"
                )
        report |= run_protocol(config, dataset, folds, "cross-validation", **options)
    if dev is not None:
        import datasets

        combined = datasets.concatenate_datasets([dataset, dev])
        fold = Fold("dev", list(range(len(dataset))), list(range(len(dataset), len(combined))))
        report["dev"] = run_protocol(config, combined, [fold], "dev set", **options)
        report["dev"]["data"]["path"] = dev_path
        report["dev"]["data"]["train_path"] = config.data_path
    from negstance.train.training import resolve_mixed_precision

    report["environment"] = {
        "train_mixed_precision": resolve_mixed_precision(config.mixed_precision),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(resolved_device),
        "cpu_count": os.cpu_count(),
    }
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return report


def run_protocol(
    config: TrainConfig,
    dataset: Any,
    folds: list[Fold],
    title: str,
    seeds: Sequence[int],
    device: Any,
    show_progress: bool,
    bootstrap_resamples: int,
    setfit_iterations: int | None,
    run_setfit: bool,
    skipped_setfit: str | None,
) -> dict[str, Any]:
    """Every system on every fold and seed of one protocol; its part of the report."""
    import datasets
    import transformers
    from tqdm.auto import tqdm

    from negstance.model.backbones import MINILM, resolve_model_path
    from negstance.model.modeling import StanceClassifier
    from negstance.train.training import train

    started = time.perf_counter()
    texts = list(dataset["text"])
    labels = np.asarray(dataset["label"])
    documents = list(dataset["doc"])
    identifiers = list(dataset["id"])
    tested = np.zeros(len(labels), dtype=bool)
    for fold in folds:
        tested[fold.test_indices] = True
    # (system, baseline kind, input) for every deterministic baseline.
    plain = [(name, name, source) for name, source in BASELINE_INPUTS.items()]
    extra_minilm = resolve_model_path(MINILM) != resolve_model_path(config.model_name_or_path)
    if extra_minilm:
        plain += [
            (MINILM_PREFIX + name, name, "embedding_minilm")
            for name, source in BASELINE_INPUTS.items()
            if source == "embedding"
        ]
    baselines = [system for system, _, _ in plain] + ([SETFIT] if run_setfit else [])

    # Load reports and per-call progress bars, once per training, would drown the
    # progress bars that matter here.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets_bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        baseline_inputs = {
            "text": np.asarray(texts, dtype=object),
            "embedding": frozen_embeddings(
                texts, config.model_name_or_path, config.max_length, head=config.head
            ),
        }
        if extra_minilm:
            baseline_inputs["embedding_minilm"] = frozen_embeddings(
                texts, MINILM, config.max_length
            )
        systems = [MODEL, *baselines]
        runs: list[dict[str, Any]] = []
        predictions = {
            system: {seed: np.full(len(labels), -1) for seed in seeds} for system in systems
        }
        probabilities = {seed: np.zeros((len(labels), len(LABELS))) for seed in seeds}
        train_seconds: list[float] = []
        setfit_seconds: list[float] = []
        baseline_cache: dict[tuple[str, str], np.ndarray] = {}
        # A bar for each system trained per seed, moved as soon as its fit is done:
        # SetFit can take longer per fold than the model.
        bar_titles = {MODEL: title} | ({SETFIT: "setfit baseline"} if run_setfit else {})
        progress = {
            system: tqdm(
                total=len(seeds) * len(folds),
                desc=bar_title,
                disable=not show_progress,
                position=position,
            )
            for position, (system, bar_title) in enumerate(bar_titles.items())
        }

        def score(system: str, seed: int, fold: Fold) -> None:
            """Record ``system``'s metrics on the held-out rows of ``fold``; move its bar."""
            test_rows = fold.test_indices
            metrics = classification_metrics(
                labels[test_rows].tolist(), predictions[system][seed][test_rows].tolist()
            )
            runs.append(
                {"system": system, "seed": seed, "document": fold.document, "metrics": metrics}
            )
            if system in progress:
                progress[system].set_postfix(
                    seed=seed, held_out=fold.document[:3], macro_f1=f"{metrics['macro_f1']:.3f}"
                )
                progress[system].update(1)

        for seed in seeds:
            run_config = dataclasses.replace(config, seed=seed, show_progress=False)
            for fold in folds:
                train_rows, test_rows = fold.train_indices, fold.test_indices
                result = train(run_config, train_dataset=dataset.select(train_rows), save=False)
                train_seconds.append(result.metrics["train_seconds"])
                classifier = StanceClassifier(result.model, result.tokenizer, device=device)
                fold_probabilities = classifier.predict_proba([texts[i] for i in test_rows])
                probabilities[seed][test_rows] = fold_probabilities
                predictions[MODEL][seed][test_rows] = fold_probabilities.argmax(axis=1)
                score(MODEL, seed, fold)
                for system, kind, source in plain:
                    # The baselines are deterministic (no seed changes them): fitted
                    # once per fold, scored alongside every seed's model.
                    if (system, fold.document) not in baseline_cache:
                        inputs = baseline_inputs[source]
                        baseline_cache[(system, fold.document)] = fit_predict_baseline(
                            kind,
                            inputs[train_rows],
                            labels[train_rows],
                            [documents[i] for i in train_rows],
                            inputs[test_rows],
                            seed,
                        )
                    predictions[system][seed][test_rows] = baseline_cache[(system, fold.document)]
                    score(system, seed, fold)
                if run_setfit:
                    # Seed-dependent like the model: fitted anew for every seed and fold.
                    setfit_started = time.perf_counter()
                    predictions[SETFIT][seed][test_rows] = fit_predict_setfit(
                        [texts[i] for i in train_rows],
                        labels[train_rows],
                        [texts[i] for i in test_rows],
                        config.model_name_or_path,
                        seed,
                        max_length=config.max_length,
                        num_iterations=setfit_iterations,
                        device=str(device),
                    )
                    setfit_seconds.append(time.perf_counter() - setfit_started)
                    score(SETFIT, seed, fold)
        for bar in progress.values():
            bar.close()
    finally:
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.enable_progress_bar()
        if datasets_bars_were_on:
            datasets.enable_progress_bars()

    summaries = {
        system: summarize_system(
            [run for run in runs if run["system"] == system], predictions[system], labels, tested
        )
        for system in systems
    }
    if len(seeds) > 1:
        # Averaging the seeds' probabilities costs no extra training: a free look at
        # what an ensemble would give. One value per fold, so no seed spread.
        ensemble = np.mean([probabilities[seed] for seed in seeds], axis=0).argmax(axis=1)
        ensemble_runs = [
            {"system": ENSEMBLE, "seed": 0, "document": fold.document}
            | {
                "metrics": classification_metrics(
                    labels[fold.test_indices].tolist(), ensemble[fold.test_indices].tolist()
                )
            }
            for fold in folds
        ]
        summaries[ENSEMBLE] = summarize_system(ensemble_runs, {0: ensemble}, labels, tested)
        runs.extend(ensemble_runs)
        predictions[ENSEMBLE] = {0: ensemble}
    comparisons = {baseline: paired_differences(runs, MODEL, baseline) for baseline in baselines}
    strongest = strongest_baseline(summaries, baselines, "pooled", "macro_f1")
    bootstrap = {
        "baseline": strongest,
        "resamples": bootstrap_resamples,
        "sentences": int(tested.sum()),
    } | bootstrap_difference(
        labels[tested],
        [predictions[MODEL][seed][tested] for seed in seeds],
        [predictions[strongest][seed][tested] for seed in seeds],
        bootstrap_resamples,
    )
    skipped = {}
    descriptions = {
        system: BASELINE_DESCRIPTIONS[kind]
        + (" (on all-MiniLM-L6-v2)" if system.startswith(MINILM_PREFIX) else "")
        for system, kind, _ in plain
    }
    timing: dict[str, Any] = {}
    if run_setfit:
        descriptions[SETFIT] = (
            BASELINE_DESCRIPTIONS[SETFIT]
            + "; pairs: "
            + (
                "SetFit's default oversampling"
                if setfit_iterations is None
                else f"num_iterations={setfit_iterations}"
            )
        )
        timing = {
            "setfit_fit_seconds_mean": round(float(np.mean(setfit_seconds)), 1),
            "setfit_fits": len(setfit_seconds),
        }
    else:
        skipped[SETFIT] = skipped_setfit
    train_set = np.unique(np.concatenate([fold.train_indices for fold in folds]))
    return {
        "data": {
            "path": config.data_path,
            "sentences": len(labels),
            "train_sentences": len(train_set),
            "tested_sentences": int(tested.sum()),
            "label_counts": label_counts(labels[train_set]),
            "documents": {
                fold.document: {
                    "sentences": len(fold.test_indices),
                    "label_counts": label_counts(labels[fold.test_indices]),
                }
                for fold in folds
            },
        },
        "folds": [fold.document for fold in folds],
        "baselines": baselines,
        "systems": summaries,
        "descriptions": {
            MODEL: f"fine-tuned {config.model_name_or_path} (head={config.head})",
            ENSEMBLE: f"mean probabilities of the {len(seeds)} seeds' models per fold",
        }
        | descriptions,
        "comparisons": comparisons,
        "bootstrap": bootstrap,
        "skipped": skipped,
        "runs": runs,
        "predictions": {
            system: {
                str(seed): {
                    identifiers[index]: LABELS[int(value)]
                    for index, value in enumerate(predicted)
                    if tested[index]
                }
                for seed, predicted in by_seed.items()
            }
            for system, by_seed in predictions.items()
        },
        "timing": {
            "total_seconds": round(time.perf_counter() - started, 1),
            "model_train_seconds_mean": round(float(np.mean(train_seconds)), 1),
            "trainings": len(train_seconds),
        }
        | timing,
    }


def config_changes(config: TrainConfig) -> dict[str, Any]:
    """The fields that differ from ``TrainConfig()``'s defaults (run-only keys left out)."""
    defaults = dataclasses.asdict(TrainConfig())
    return {
        key: value
        for key, value in dataclasses.asdict(config).items()
        if key not in RUN_ONLY_KEYS and defaults.get(key) != value
    }


# --------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------- #
def format_summary(summary: dict[str, float]) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def baseline_names(report: dict[str, Any]) -> list[str]:
    """The baselines that ran, in their fixed order (SetFit only where it was installed)."""
    if "baselines" in report:
        return list(report["baselines"])
    return [name for name in ALL_BASELINES if name in report["systems"]]


def system_order(report: dict[str, Any]) -> list[str]:
    """The model, its seed ensemble, then the baselines: the order of every table."""
    return [name for name in (MODEL, ENSEMBLE) if name in report["systems"]] + baseline_names(
        report
    )


def headline_table(report: dict[str, Any]) -> str:
    """Markdown table: every system, fold and pooled macro-F1, F_avg and accuracy."""
    header = (
        "| system | "
        + " | ".join(f"{METRIC_NAMES[m]} (folds)" for m in HEADLINE_METRICS)
        + " | "
        + " | ".join(f"{METRIC_NAMES[m]} (pooled)" for m in HEADLINE_METRICS)
        + " |"
    )
    lines = [header, "|---" + "|---:" * (2 * len(HEADLINE_METRICS)) + "|"]
    for system in system_order(report):
        summary = report["systems"][system]
        folds = [format_summary(summary["folds"][m]) for m in HEADLINE_METRICS]
        pooled = [format_summary(summary["pooled"][m]) for m in HEADLINE_METRICS]
        if system == ENSEMBLE:  # one ensemble per fold: the pooled value has no spread
            pooled = [f"{summary['pooled'][m]['mean']:.3f}" for m in HEADLINE_METRICS]
        name = f"**{system}**" if system == MODEL else system
        lines.append(f"| {name} | " + " | ".join(folds + pooled) + " |")
    return "\n".join(lines)


def confusion_table(matrix: list[list[int]]) -> str:
    lines = ["| true \\ predicted | " + " | ".join(LABELS) + " |", "|---" + "|---:" * 3 + "|"]
    for label, row in zip(LABELS, matrix, strict=True):
        lines.append(f"| {label} | " + " | ".join(str(value) for value in row) + " |")
    return "\n".join(lines)


def strongest_baseline(
    systems: dict[str, Any], baselines: Sequence[str], scope: str, metric: str
) -> str:
    """The baseline with the highest mean ``metric`` in ``scope`` (``folds`` or ``pooled``)."""
    return max(baselines, key=lambda name: systems[name][scope][metric]["mean"])


def verdict_lines(report: dict[str, Any], in_report: bool = True) -> list[str]:
    """Model against the strongest baseline per headline measure, in plain words.

    A margin counts as clear only when it exceeds twice the model's seed-to-seed
    std of the pooled score (with one seed there is no such spread: said so).
    Per article, the line gives the fold means and how many paired runs the model won.
    """
    model = report["systems"][MODEL]
    seeds = len(report["seeds"])
    lines = ["**Model vs the strongest baseline** (pooled scores, then per article):", ""]
    for name in ("macro_f1", "f_avg"):
        best = strongest_baseline(report["systems"], baseline_names(report), "pooled", name)
        baseline_score = report["systems"][best]["pooled"][name]["mean"]
        score, spread = model["pooled"][name]["mean"], model["pooled"][name]["std"]
        difference = score - baseline_score
        if seeds < 2:
            judgement = "one seed only: no seed spread to judge the margin by"
        elif difference > 2 * spread:
            judgement = f"better by more than twice the seed std ({spread:.3f})"
        elif difference < -2 * spread:
            judgement = f"worse by more than twice the seed std ({spread:.3f})"
        else:
            judgement = f"within twice the seed std ({spread:.3f}): no clear difference"
        lines.append(
            f"- {METRIC_NAMES[name]}: model {score:.3f} vs `{best}` {baseline_score:.3f} "
            f"({difference:+.3f}); {judgement}."
        )
    # Per article too: the pooled scores alone can flatter a model that loses on most articles.
    for name in ("macro_f1", "f_avg"):
        best = strongest_baseline(report["systems"], baseline_names(report), "folds", name)
        score = model["folds"][name]["mean"]
        baseline_score = report["systems"][best]["folds"][name]["mean"]
        paired = report["comparisons"][best][name]
        lines.append(
            f"- {METRIC_NAMES[name]} per article (mean over folds × seeds): model {score:.3f} "
            f"vs `{best}` {baseline_score:.3f} ({score - baseline_score:+.3f}); the model is "
            f"better in {paired['wins']} of {paired['n']} runs paired by article and seed."
        )
    bootstrap = report.get("bootstrap")
    if bootstrap:
        intervals = ", ".join(
            f"{METRIC_NAMES[name]} [{bootstrap[name]['low']:+.3f}, {bootstrap[name]['high']:+.3f}]"
            for name in ("macro_f1", "f_avg")
        )
        lines += [
            f"- 95 % paired bootstrap interval of model − `{bootstrap['baseline']}` over the "
            f"{bootstrap['sentences']} held-out sentences ({bootstrap['resamples']} resamples, "
            f"model averaged over seeds): {intervals}. An interval that contains 0 means the "
            "data cannot tell the two apart.",
        ]
    where = "in the next section" if in_report else "in the report's `report.md`"
    lines += [
        "",
        f"Fold-level differences, paired by article and seed, are {where}; the "
        "spread between articles is far larger than between seeds.",
    ]
    return lines


def dev_table(dev: dict[str, Any]) -> str:
    """Markdown table of the dev-set protocol: every system, mean ± std over seeds."""
    columns = [*HEADLINE_METRICS, *(f"{label}_f1" for label in LABELS)]
    titles = [METRIC_NAMES[m] for m in HEADLINE_METRICS] + [f"F1 {label}" for label in LABELS]
    lines = ["| system | " + " | ".join(titles) + " |", "|---" + "|---:" * len(columns) + "|"]
    for system in system_order(dev):
        pooled = dev["systems"][system]["pooled"]
        cells = [
            f"{pooled[c]['mean']:.3f}" if system == ENSEMBLE else format_summary(pooled[c])
            for c in columns
        ]
        name = f"**{system}**" if system == MODEL else system
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dev_verdict_lines(dev: dict[str, Any]) -> list[str]:
    """Model against the strongest baseline on the dev set, with the bootstrap interval."""
    model = dev["systems"][MODEL]["pooled"]
    lines = []
    for name in ("macro_f1", "f_avg"):
        best = strongest_baseline(dev["systems"], baseline_names(dev), "pooled", name)
        baseline_score = dev["systems"][best]["pooled"][name]["mean"]
        score, spread = model[name]["mean"], model[name]["std"]
        lines.append(
            f"- {METRIC_NAMES[name]}: model {score:.3f} ± {spread:.3f} vs the strongest "
            f"baseline `{best}` {baseline_score:.3f} ({score - baseline_score:+.3f})."
        )
    bootstrap = dev["bootstrap"]
    intervals = ", ".join(
        f"{METRIC_NAMES[name]} [{bootstrap[name]['low']:+.3f}, {bootstrap[name]['high']:+.3f}]"
        for name in ("macro_f1", "f_avg")
    )
    lines.append(
        f"- 95 % paired bootstrap interval of model − `{bootstrap['baseline']}` over the "
        f"{bootstrap['sentences']} dev sentences ({bootstrap['resamples']} resamples, model "
        f"averaged over seeds): {intervals}."
    )
    return lines


def dev_section(report: dict[str, Any]) -> list[str]:
    dev = report["dev"]
    seeds = report["seeds"]
    data = dev["data"]
    return [
        "## External dev set (the signal the recipe is chosen by)",
        "",
        f"Trained on all {data['train_sentences']} sentences of `{data['train_path']}`, "
        f"scored on the {data['tested_sentences']} sentences of `{data['path']}` (never "
        f"trained on; see its datasheet). Mean ± sample std over {len(seeds)} seed(s); the "
        "baselines but SetFit are deterministic. F_avg = (F1 favor + F1 against) / 2.",
        "",
        dev_table(dev),
        "",
        *dev_verdict_lines(dev),
        "",
        "Systems: "
        + "; ".join(f"`{name}`: {dev['descriptions'][name]}" for name in system_order(dev))
        + ".",
        "",
        f"Confusion matrix of the model on the dev set, summed over {len(seeds)} seed(s) "
        "(each sentence once per seed):",
        "",
        confusion_table(dev["systems"][MODEL]["confusion_matrix"]),
        "",
        f"Time: {dev['timing']['total_seconds']} s; {dev['timing']['trainings']} trainings of "
        f"{dev['timing']['model_train_seconds_mean']} s on average.",
        "",
    ]


def render_markdown(report: dict[str, Any], command: str) -> str:
    """``report.md``: date and command, the dev-set protocol, then cross-validation."""
    lines = [
        "# negstance evaluation: external dev set and leave-one-article-out cross-validation",
        "",
        f"Date: {report['created']}  ",
        f"Command: `{command}`",
        "",
    ]
    if "dev" in report:
        lines += dev_section(report)
    if MODEL in report.get("systems", {}):
        lines += cv_section(report)
    lines += [
        "Model config (differences from `TrainConfig` defaults): "
        + (", ".join(f"`{k}={v}`" for k, v in report["config_changes"].items()) or "none")
        + ". Full config in `report.json`. Environment: "
        + ", ".join(f"{k} {v}" for k, v in report["environment"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def cv_section(report: dict[str, Any]) -> list[str]:
    """The leave-one-article-out part of ``report.md``."""
    seeds = report["seeds"]
    folds = report["folds"]
    runs_per_system = len(seeds) * len(folds)
    data = report["data"]
    model = report["systems"][MODEL]
    baselines = baseline_names(report)
    with_setfit = SETFIT in report["systems"]
    lines = [
        "## Leave-one-article-out cross-validation",
        "",
        "### Headline",
        "",
        headline_table(report),
        "",
        f"**folds**: score on each held-out article, mean ± sample std over {len(folds)} "
        f"folds × {len(seeds)} seed(s) = {runs_per_system} runs. "
        f"**pooled**: each seed's predictions on all {data['tested_sentences']} held-out "
        f"sentences scored together, mean ± sample std over the {len(seeds)} seed(s). "
        "F_avg = (F1 favor + F1 against) / 2 (SemEval-2016 Task 6). The baselines "
        + ("other than SetFit " if with_setfit else "")
        + "are deterministic, so their spread is the spread between articles only.",
        "",
        *verdict_lines(report),
        "",
        "Systems: "
        + "; ".join(f"`{name}`: {report['descriptions'][name]}" for name in system_order(report))
        + ".",
    ]
    if report["skipped"]:
        lines += [
            "",
            "Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()) + ".",
        ]
    lines += [
        "",
        "### Model minus baseline, paired by article and seed",
        "",
        "| baseline | Δ macro-F1 | model better (of runs) | Δ F_avg | model better (of runs) |",
        "|---|---:|---:|---:|---:|",
    ]
    for baseline, comparison in report["comparisons"].items():
        cells = []
        for name in ("macro_f1", "f_avg"):
            values = comparison[name]
            cells += [
                f"{values['mean']:+.3f} ± {values['std']:.3f}",
                f"{values['wins']}/{values['n']}",
            ]
        lines.append(f"| {baseline} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Per label, pooled (mean ± std over seeds)",
        "",
        "| system | label | precision | recall | F1 |",
        "|---|---|---:|---:|---:|",
    ]
    for system in system_order(report):
        pooled = report["systems"][system]["pooled"]
        for label in LABELS:
            cells = [
                format_summary(pooled[f"{label}_{name}"]) for name in ("precision", "recall", "f1")
            ]
            lines.append(f"| {system} | {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"### Confusion matrix of the model, summed over {len(folds)} folds and {len(seeds)} "
        "seed(s)",
        "",
        "Each sentence counts once per seed. Plot: `confusion_matrix.png`.",
        "",
        confusion_table(model["confusion_matrix"]),
        "",
        "### Per article (held-out fold)",
        "",
        "Model: mean ± std over seeds. Baselines: macro-F1"
        + (" (SetFit: mean over seeds)." if with_setfit else "."),
        "",
        "| article | sentences | favor/against/none | model macro-F1 | model F_avg "
        "| model accuracy | " + " | ".join(baselines) + " |",
        "|---|---:|---|---:|---:|---:|" + "---:|" * len(baselines),
    ]
    for document in folds:
        counts = data["documents"][document]["label_counts"]
        fold = model["per_fold"][document]
        cells = [format_summary(fold[name]) for name in ("macro_f1", "f_avg", "accuracy")]
        cells += [
            f"{report['systems'][name]['per_fold'][document]['macro_f1']['mean']:.3f}"
            for name in baselines
        ]
        lines.append(
            f"| {document} | {data['documents'][document]['sentences']} | "
            f"{counts['favor']}/{counts['against']}/{counts['none']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Model confusion matrix per article (summed over seeds; rows true, columns "
        "predicted, order favor/against/none):",
        "",
    ]
    for document in folds:
        matrix = model["per_fold"][document]["confusion_matrix"]
        lines.append(f"- {document}: {matrix}")
    timing = report["timing"]
    lines += [
        "",
        "### Setup",
        "",
        f"- Data: `{data['path']}`, {data['sentences']} sentences "
        f"({', '.join(f'{k} {v}' for k, v in data['label_counts'].items())}); folds: "
        f"{len(folds)} articles held out one at a time (sklearn `LeaveOneGroupOut` on `doc`).",
        f"- Seeds: {seeds}.",
        "- Baselines: the tuned logistic regressions choose C from {0.01, 0.1, 1, 10, 100} "
        "and class weights (none or balanced) by macro-F1 in leave-one-article-out CV on "
        "the training articles only; the `_default` and `_balanced` probes are untuned.",
        f"- Time: {timing['total_seconds']} s; {timing['trainings']} trainings of "
        f"{timing['model_train_seconds_mean']} s on average"
        + (
            f"; {timing['setfit_fits']} SetFit fits of {timing['setfit_fit_seconds_mean']} s "
            "on average (training and prediction)"
            if with_setfit
            else ""
        )
        + ".",
        "",
    ]
    return lines


def plot_confusion_matrices(report: dict[str, Any]) -> bytes:
    """One heat map per system (model first), summed over folds and seeds, as PNG bytes."""
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    title = "Leave-one-article-out CV, summed over {folds} folds × {seeds} seed(s)"
    if MODEL not in report.get("systems", {}):  # a dev-set-only report
        report, title = report["dev"] | {"seeds": report["seeds"]}, "Dev set, {seeds} seed(s)"
    systems = [name for name in system_order(report) if name != "majority"]
    figure = Figure(figsize=(4.2 * len(systems), 4.0), layout="constrained")
    axes = figure.subplots(1, len(systems), squeeze=False)[0]
    for axis, system in zip(axes, systems, strict=True):
        matrix = np.asarray(report["systems"][system]["confusion_matrix"])
        ConfusionMatrixDisplay(matrix, display_labels=list(LABELS)).plot(
            ax=axis, colorbar=False, cmap="Blues", values_format="d"
        )
        macro = report["systems"][system]["pooled"]["macro_f1"]["mean"]
        once = " (each sentence once)" if system == ENSEMBLE else ""
        axis.set_title(f"{system}{once}\npooled macro-F1 {macro:.3f}", fontsize=10)
    figure.suptitle(
        title.format(folds=len(report["folds"]), seeds=len(report["seeds"])), fontsize=11
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_report(
    report: dict[str, Any], output_dir: str | os.PathLike[str], command: str
) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``confusion_matrix.png`` into ``output_dir``."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    report = report | {"command": command}
    contents = [
        json.dumps(report, indent=1) + "\n",
        render_markdown(report, command),
        plot_confusion_matrices(report),
    ]
    # Everything rendered first, then each file replaced whole: an interrupted or failed
    # write leaves the previous report, never a half-written one.
    paths = [directory / name for name in REPORT_FILES]
    for path, content in zip(paths, contents, strict=True):
        write_text_atomic(path, content)
    return paths


def load_report(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A ``report.json`` written by :func:`write_report`, or None where there is none."""
    location = Path(path)
    if not location.is_file():
        return None
    try:
        report = json.loads(location.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NegstanceError(f"{location}: not a readable evaluation report (bad JSON)") from None
    if not isinstance(report, dict) or not any(
        MODEL in part.get("systems", {}) for part in (report, report.get("dev", {}))
    ):
        raise NegstanceError(f"{location}: not an evaluation report (no systems.model)")
    return report


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #
def evaluate_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="evaluate.py",
        allow_abbrev=False,  # else --seed=1 (a config key) would silently mean --seeds
        description=(
            "Scores the stance classifier and its baselines on the external dev set "
            "(trained on the whole seed set) and in leave-one-article-out cross-validation. "
            "Any other --key=value sets a TrainConfig field of the model, as in train.py."
        ),
    )
    parser.add_argument("--config", help="the model's training config (YAML)")
    parser.add_argument(
        "--seeds", type=positive_int, default=None, help="seeds per fold (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--max_folds",
        type=positive_int,
        default=None,
        help="evaluate only the first N articles as test folds (default all; --quick: 2)",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help=f"where the report goes (default {DEFAULT_OUTPUT_DIR}; --quick: "
        f"{QUICK_OUTPUT_DIR}); not the model's output_dir: no model is saved",
    )
    parser.add_argument("--device", default="auto", help="prediction device: auto, cpu, cuda")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 seed, 2 folds, 1 epoch (explicit options still win)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch and BLAS (default: as configured); on a busy machine "
        "1 avoids oversubscription, which can slow training several times over",
    )
    parser.add_argument(
        "--bootstrap_resamples",
        type=positive_int,
        default=None,
        help="resamples for the sentence bootstrap interval (default 1000; --quick: 100)",
    )
    parser.add_argument(
        "--setfit_iterations",
        type=positive_int,
        default=None,
        help="SetFit's num_iterations: 2 x N x (training sentences) pairs per fit (default: "
        "SetFit's oversampling of every pair, slow on a CPU; --quick: 1); used only where "
        "setfit is installed",
    )
    parser.add_argument(
        "--no_setfit",
        action="store_true",
        help="leave the SetFit baseline out even where setfit is installed (it takes hours "
        "on a CPU; the other systems take minutes)",
    )
    parser.add_argument(
        "--dev_path",
        default=DEFAULT_DEV_PATH,
        help=f"external dev set scored after training on the whole seed set (default "
        f"{DEFAULT_DEV_PATH}; '' leaves it out)",
    )
    parser.add_argument(
        "--no_cv",
        action="store_true",
        help="skip leave-one-article-out cross-validation: the dev set only (6x fewer trainings)",
    )
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    add_debug_option(parser)
    return parser


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Limit torch's and the BLAS/OpenMP pools' threads for the block (None: unchanged)."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def check_mistyped_options(parser: ArgumentParser, rest: Sequence[str]) -> None:
    """Name evaluate.py's own option when a leftover ``--x`` is a typo of it (--no_setfti).

    Leftovers are training overrides: a typo closest to a training key is left to the
    config's own "unknown key" message, which suggests that key.
    """
    options = [option for action in parser._actions for option in action.option_strings]
    keys = [f"--{name}" for name in TrainConfig.__dataclass_fields__]
    for argument in rest:
        name = argument.split("=", 1)[0]
        if not name.startswith("--") or name in keys:
            continue
        close = difflib.get_close_matches(name, options + keys, n=1)
        if close and close[0] in options:
            raise NegstanceError(f"unknown option {name} (did you mean {close[0]}?)")


@user_errors_exit_cleanly
def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``evaluate.py --config FILE [--seeds N] [--output_dir DIR] [--quick] [--key=value ...]``."""
    arguments = list(argv or [])
    parser = evaluate_parser()
    args, rest = parser.parse_known_args(arguments)
    check_mistyped_options(parser, rest)
    overrides: dict[str, Any] = {"num_train_epochs": 1} if args.quick else {}
    overrides |= parse_overrides(rest)
    config = load_config(args.config, overrides)
    output_dir = args.output_dir or (QUICK_OUTPUT_DIR if args.quick else DEFAULT_OUTPUT_DIR)
    # Checked now, not after an hour of cross-validation.
    check_writable_directory(Path(output_dir), "--output_dir", create=True)
    seeds_count = args.seeds or (1 if args.quick else 3)
    max_folds = args.max_folds or (2 if args.quick else None)
    with cpu_threads(args.threads):
        report = cross_validate(
            config,
            seeds=[config.seed + offset for offset in range(seeds_count)],
            max_folds=max_folds,
            device=args.device,
            show_progress=not args.no_progress,
            bootstrap_resamples=args.bootstrap_resamples or (100 if args.quick else 1000),
            setfit_iterations=args.setfit_iterations or (1 if args.quick else None),
            include_setfit=not args.no_setfit,
            dev_path=args.dev_path or None,
            run_cv=not args.no_cv,
        )
    command = shlex.join(["python", "scripts/evaluate.py", *arguments])
    paths = write_report(report, output_dir, command)
    if "dev" in report:
        print("dev set:\n" + dev_table(report["dev"]))
    if MODEL in report.get("systems", {}):
        print("leave-one-article-out CV:\n" + headline_table(report))
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0
