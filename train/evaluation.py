"""Honest evaluation: leave-one-article-out cross-validation, repeated over seeds.

Each article is held out in turn (``LeaveOneGroupOut`` on ``doc``); anything tuned is
tuned inside the training articles only, and every system sees the same folds and seeds.
``scripts/evaluate.py`` wraps :func:`negstance.train.cli.evaluate_main`.

**fold scores**: each held-out article's score, mean ± std over folds × seeds (mostly the
spread between articles). **pooled scores**: each seed's predictions on every held-out
sentence scored together, mean ± std over seeds: the steadier figure, as most articles
have only 1-3 ``against`` sentences.

Example:
    >>> from negstance.train.config import load_config
    >>> from negstance.train.evaluation import cross_validate
    >>> report = cross_validate(load_config("configs/default.yaml"), seeds=[42])  # doctest: +SKIP
    >>> report["systems"]["model"]["pooled"]["macro_f1"]["mean"]  # doctest: +SKIP
    0.6...
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import transformers
from sklearn.metrics import f1_score
from sklearn.model_selection import LeaveOneGroupOut
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from negstance.model.backbones import MINILM, resolve_model_path
from negstance.model.checkpoint import quiet_transformers_loading
from negstance.model.classifier import StanceClassifier, resolve_device
from negstance.model.errors import NegstanceError
from negstance.model.labels import LABELS
from negstance.train import training
from negstance.train.baselines import (
    BASELINE_DESCRIPTIONS,
    BASELINE_INPUTS,
    MINILM_PREFIX,
    SETFIT,
    fit_predict_baseline,
    fit_predict_setfit,
    frozen_embeddings,
    setfit_available,
)
from negstance.train.config import TrainConfig, config_diff
from negstance.train.data import load_seed_dataset
from negstance.train.metrics import LABEL_IDS, classification_metrics
from negstance.train.report import (
    ENSEMBLE,
    HEADLINE_METRICS,
    MODEL,
    PER_RUN_KEYS,
    strongest_baseline,
)
from negstance.train.suggest import find_duplicates


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
) -> dict[str, dict[str, float]]:
    """95 % interval of (model − baseline) pooled macro-F1 and F_avg, resampling sentences.

    With 153 sentences, which ones were drawn matters more than the seeds. Paired: each
    resample scores the model and the baseline on the same rows, each averaged over
    its seeds (``baseline_predictions``: one array, or one per seed as for SetFit).
    """
    baseline_by_seed = np.atleast_2d(np.asarray(baseline_predictions))
    generator = np.random.default_rng(0)
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
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(LABELS)).tolist()
    return {label: counts[index] for index, label in enumerate(LABELS)}


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

    Leave-one-article-out CV on the seed set (``run_cv``) fills the top-level keys;
    training on every seed sentence and scoring on the dev set at ``dev_path`` fills
    ``report["dev"]`` (the same keys, one "fold"). Each run uses ``config`` with its
    ``seed`` (``validation_docs`` ignored); ``setfit_iterations``: SetFit's ``num_iterations``.
    """
    config.validate()  # a field may have been set since the config was made
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
        combined = datasets.concatenate_datasets([dataset, dev])
        fold = Fold("dev", list(range(len(dataset))), list(range(len(dataset), len(combined))))
        report["dev"] = run_protocol(config, combined, [fold], "dev set", **options)
        report["dev"]["data"]["path"] = dev_path
        report["dev"]["data"]["train_path"] = config.data_path
    report["environment"] = {
        "train_mixed_precision": training.resolve_mixed_precision(config.mixed_precision),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(resolved_device),
        "cpu_count": os.cpu_count(),
    }
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return report


@quiet_transformers_loading()  # load reports, once per training, would drown the bars here
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

    baseline_inputs = {
        "text": np.asarray(texts, dtype=object),
        "embedding": frozen_embeddings(
            texts, config.model_name_or_path, config.max_length, head=config.head
        ),
    }
    if extra_minilm:
        baseline_inputs["embedding_minilm"] = frozen_embeddings(texts, MINILM, config.max_length)
    systems = [MODEL, *baselines]
    runs: list[dict[str, Any]] = []
    predictions = {system: {seed: np.full(len(labels), -1) for seed in seeds} for system in systems}
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
        runs.append({"system": system, "seed": seed, "document": fold.document, "metrics": metrics})
        if system in progress:
            progress[system].set_postfix(
                seed=seed, held_out=fold.document[:3], macro_f1=f"{metrics['macro_f1']:.3f}"
            )
            progress[system].update(1)

    for seed in seeds:
        run_config = dataclasses.replace(config, seed=seed, no_progress=True)
        for fold in folds:
            train_rows, test_rows = fold.train_indices, fold.test_indices
            # Looked up on the module at each call, so a patched training.train is used.
            result = training.train(
                run_config, train_dataset=dataset.select(train_rows), save=False
            )
            train_seconds.append(result.metrics["train_seconds"])
            classifier = StanceClassifier(result.model, result.tokenizer, device=device)
            fold_probabilities = classifier.predict_proba([texts[i] for i in test_rows])
            probabilities[seed][test_rows] = fold_probabilities
            predictions[MODEL][seed][test_rows] = fold_probabilities.argmax(axis=1)
            score(MODEL, seed, fold)
            for system, kind, source in plain:
                # The baselines are deterministic (no seed changes them): fitted
                # once per fold, scored alongside every seed's model.
                key = (system, fold.document)
                if key not in baseline_cache:
                    inputs = baseline_inputs[source]
                    baseline_cache[key] = fit_predict_baseline(
                        kind,
                        inputs[train_rows],
                        labels[train_rows],
                        [documents[i] for i in train_rows],
                        inputs[test_rows],
                        seed,
                    )
                predictions[system][seed][test_rows] = baseline_cache[key]
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

    if len(seeds) > 1:
        # Averaging the seeds' probabilities costs no extra training: a free look at
        # what an ensemble would give. One value per fold, so no seed spread.
        ensemble = np.mean([probabilities[seed] for seed in seeds], axis=0).argmax(axis=1)
        predictions[ENSEMBLE] = {0: ensemble}
        for fold in folds:
            score(ENSEMBLE, 0, fold)
    summaries = {
        system: summarize_system(
            [run for run in runs if run["system"] == system], by_seed, labels, tested
        )
        for system, by_seed in predictions.items()
    }
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
    differences = config_diff(
        dataclasses.asdict(TrainConfig()), dataclasses.asdict(config), ignore=PER_RUN_KEYS
    )
    return {key: value for key, (_, value) in differences.items()}


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Limit torch's and the BLAS/OpenMP pools' threads for the block (None: unchanged)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
