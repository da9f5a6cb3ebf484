"""Evaluation on the external dev set and by leave-one-article-out cross-validation.

Every system (the fine-tuned model, the baselines of :mod:`negstance.train.baselines`) has one
``fit_predict(train, test, seed)``: a protocol is a loop over seeds × folds × systems.
**folds**: each held-out article's score, mean ± std over folds × seeds; **pooled**: each
seed's held-out predictions scored together, mean ± std over seeds.

Example: ``cross_validate(load_config("configs/default.yaml"), [42])["systems"]["model"]``
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch
import transformers
from sklearn.model_selection import LeaveOneGroupOut
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from negstance.model.checkpoint import quiet_transformers_loading
from negstance.model.classifier import StanceClassifier, resolve_device
from negstance.model.errors import NegstanceError
from negstance.model.labels import LABELS
from negstance.train import baselines, training
from negstance.train.config import TrainConfig, config_diff
from negstance.train.data import load_seed_dataset
from negstance.train.metrics import LABEL_IDS, classification_metrics
from negstance.train.report import ENSEMBLE, MODEL, PER_RUN_KEYS, SETFIT, strongest_baseline
from negstance.train.suggest import find_duplicates

HEADLINE_METRICS = ("macro_f1", "f_avg", "accuracy")


class Fold(NamedTuple):
    """One held-out article: the row indices to train on and to test on."""

    document: str
    train_indices: list[int]
    test_indices: list[int]


def grouped_folds(documents: Sequence[str], max_folds: int | None = None) -> list[Fold]:
    """Leave-one-document-out folds, in sorted document order.

    Example: ``grouped_folds(["a", "b", "a", "c"])[0] == Fold("a", [1, 3], [0, 2])``
    """
    # Three: the tuned baselines' inner grouped CV needs two documents of its own.
    if len(set(documents)) < 3:
        raise NegstanceError(
            "grouped cross-validation needs sentences from at least three documents "
            f"(the data's `doc` field); found {len(set(documents))}"
        )
    groups = np.asarray(documents)
    splits = LeaveOneGroupOut().split(groups, groups=groups)
    folds = [Fold(str(groups[test[0]]), train.tolist(), test.tolist()) for train, test in splits]
    return folds[:max_folds] if max_folds else folds


@dataclass
class FineTunedModel:
    """The system under test: ``config`` trained on the training rows with each seed."""

    config: TrainConfig
    dataset: datasets.Dataset
    device: Any
    name = MODEL
    seeded = True

    @property
    def description(self) -> str:
        return f"fine-tuned {self.config.model_name_or_path} (head={self.config.head})"

    def fit_predict(self, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        """The test rows' class probabilities, shape ``(len(test), 3)``."""
        config = replace(self.config, seed=seed, no_progress=True)
        # Looked up on the module at each call, so a patched training.train is used.
        result = training.train(config, train_dataset=self.dataset.select(train), save=False)
        classifier = StanceClassifier(result.model, result.tokenizer, device=self.device)
        return classifier.predict_proba(self.dataset.select(test)["text"])


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for a single value) and count."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": len(array)}


def summarize_system(runs: list[dict], pooled: list[dict], folds: list[Fold], seeds: list) -> dict:
    """Summaries of one system's metrics per seed and fold (``runs``) and per seed (``pooled``)."""

    def flat(metrics: dict) -> dict[str, float]:
        return {name: metrics[name] for name in HEADLINE_METRICS} | {
            f"{label}_{name}": scores[name]
            for label, scores in metrics["per_label"].items()
            for name in ("precision", "recall", "f1")
        }

    def summaries(metrics: list[dict], names: Sequence[str] | None = None) -> dict[str, Any]:
        scores = [flat(m) for m in metrics]
        return {name: summarize([s[name] for s in scores]) for name in names or scores[0]}

    def matrix(metrics: list[dict]) -> list[list[int]]:
        return np.sum([m["confusion_matrix"] for m in metrics], axis=0).tolist()

    by_fold = {fold.document: runs[index :: len(folds)] for index, fold in enumerate(folds)}
    return {
        "folds": summaries(runs),
        "pooled": summaries(pooled),
        "pooled_by_seed": {str(s): flat(m) for s, m in zip(seeds, pooled, strict=True)},
        "confusion_matrix": matrix(pooled),
        "per_fold": {
            document: summaries(metrics, HEADLINE_METRICS) | {"confusion_matrix": matrix(metrics)}
            for document, metrics in by_fold.items()
        },
    }


def paired_differences(runs: list[dict], baseline_runs: list[dict]) -> dict[str, dict]:
    """The model's minus a baseline's metrics on the same (seed, article) runs: mean, std, wins."""
    result = {}
    for name in ("macro_f1", "f_avg"):
        values = np.array([a[name] - b[name] for a, b in zip(runs, baseline_runs, strict=True)])
        wins, ties = int(np.sum(values > 0)), int(np.sum(values == 0))
        result[name] = summarize(values) | {"wins": wins, "ties": ties}
    return result


def bootstrap_intervals(
    labels: np.ndarray, systems: dict[str, Any], baseline: str, resamples: int
) -> dict[str, Any]:
    """95 % intervals over resampled sentences: each system's pooled macro-F1 (``systems``),
    and model − ``baseline`` macro-F1 and F_avg, all on the same resamples. A system's
    predictions are one array or one per seed; its F1 is the mean over its seeds."""
    rows = np.random.default_rng(0).integers(0, len(labels), (resamples, len(labels)))
    truth = labels[rows][..., None] == LABEL_IDS  # (resample, sentence, label)

    def mean_f1(by_seed: Any) -> np.ndarray:  # per resample and label, mean over the seeds
        scores = []
        for predictions in np.atleast_2d(by_seed):
            predicted = predictions[rows][..., None] == LABEL_IDS
            # scikit-learn's F1, 2 tp / (true + predicted), 0 where a label is in neither
            total = (truth.sum(1) + predicted.sum(1)).astype(float)
            both = 2.0 * (truth & predicted).sum(1)
            scores.append(np.divide(both, total, out=np.zeros_like(total), where=total > 0))
        return np.mean(scores, axis=0)

    def interval(values: np.ndarray) -> dict[str, float]:
        low, high = np.percentile(values, [2.5, 97.5]).tolist()
        return {"low": low, "high": high}

    f1 = {name: mean_f1(predictions) for name, predictions in systems.items()}
    differences = f1[MODEL] - f1[baseline]
    intervals: dict[str, Any] = {"systems": {name: interval(s.mean(1)) for name, s in f1.items()}}
    for name, values in (("macro_f1", differences.mean(1)), ("f_avg", differences[:, :2].mean(1))):
        intervals[name] = interval(values) | {"share_above_zero": float(np.mean(values > 0))}
    return intervals


def load_protocols(config: TrainConfig, dev_paths: Sequence[str], max_folds: int | None, cv: bool):
    """``{protocol: (data, folds, scored)}``, ``scored`` the ``(path, folds)`` each reported
    part covers; refused where a fold lacks a label or a dev set leaked into the training data."""
    dataset = load_seed_dataset(config.data_path, exclude_ambiguous=config.exclude_ambiguous)
    protocols = {}
    if cv:
        folds = grouped_folds(list(dataset["doc"]), max_folds)
        labels = np.asarray(dataset["label"])
        for fold in folds:
            if missing := sorted(set(LABEL_IDS) - set(labels[fold.train_indices])):
                raise NegstanceError(
                    f"every {', '.join(repr(LABELS[i]) for i in missing)} sentence is in "
                    f"document {fold.document!r}: holding it out leaves no example of that "
                    "label to train on; label some in another document"
                )
        protocols["cv"] = (dataset, folds, [(config.data_path, folds)])
    if dev_paths:  # one training per seed, scored on every dev set
        devs, trained, scored = [], list(range(len(dataset))), []
        for path in dev_paths:
            dev = load_seed_dataset(path)
            # A dev sentence merged into the training data would inflate every dev score.
            matches = find_duplicates(dev["text"], dataset["text"])
            if leaked := [dev["id"][i] for i, match in enumerate(matches) if match is not None]:
                raise NegstanceError(
                    f"{len(leaked)} sentence(s) of {path} are in the training data "
                    f"{config.data_path} (e.g. {leaked[0]}): a dev set must never be trained "
                    "on; drop them there"
                )
            start = len(dataset) + sum(map(len, devs))
            scored.append((path, [Fold("dev", trained, list(range(start, start + len(dev))))]))
            devs.append(dev)
        tested = [i for _, folds in scored for i in folds[0].test_indices]
        data = datasets.concatenate_datasets([dataset, *devs])
        protocols["dev"] = (data, [Fold("dev", trained, tested)], scored)
    return protocols


def cross_validate(
    config: TrainConfig,
    seeds: Sequence[int],
    max_folds: int | None = None,
    device: str = "auto",
    show_progress: bool = True,
    bootstrap_resamples: int = 1000,
    setfit_iterations: int | None = None,
    include_setfit: bool = True,
    dev_paths: Sequence[str] = (),
    run_cv: bool = True,
) -> dict[str, Any]:
    """Train and score the model and the baselines: the report dict. CV on the seed set
    (``run_cv``) fills the top-level keys; each dev set of ``dev_paths`` (all scored by the same
    trainings on every seed sentence) one part of the list ``report["dev"]``;
    ``report["predictions"]``: every held-out sentence's labels and the model's probabilities."""
    config.validate()  # a field may have been set since the config was made
    if config.resume_from:
        raise NegstanceError("resume_from cannot be used in evaluation: every run starts fresh")
    if not seeds or not (run_cv or dev_paths):
        raise NegstanceError("nothing to evaluate: no seed, or no cross-validation and no dev set")
    resolved_device = resolve_device(device)  # a bad --device fails now, not after a training
    started = time.perf_counter()
    protocols = load_protocols(config, dev_paths, max_folds, run_cv)
    fits = len(seeds) * sum(len(folds) for _, folds, _ in protocols.values())
    skipped = setfit_skipped(include_setfit, setfit_iterations, fits)
    changes = config_diff(asdict(TrainConfig()), asdict(config), ignore=PER_RUN_KEYS)
    report: dict[str, Any] = {
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "config": asdict(config),
        "config_changes": {key: value for key, (_, value) in changes.items()},
        "seeds": list(seeds),
        "predictions": [],
    }
    for protocol, (data, folds, scored) in protocols.items():
        protocol_started = time.perf_counter()
        systems = [FineTunedModel(config, data, resolved_device)]
        systems += baselines.sklearn_baselines(data, config)
        if not skipped:
            device_name = str(resolved_device)
            systems.append(baselines.SetFitBaseline(data, config, setfit_iterations, device_name))
        title = "cross-validation" if protocol == "cv" else "dev sets"
        predicted, probabilities, seconds = run_protocol(
            systems, data, folds, seeds, title, show_progress
        )
        parts = []
        for path, part_folds in scored:
            part = protocol_report(
                systems, data, part_folds, predicted, seconds, bootstrap_resamples
            )
            part["data"] |= {"path": path, "train_path": config.data_path}
            parts.append(part | {"skipped": skipped})
            rows = prediction_rows(protocol, data, part_folds, predicted, probabilities, seeds)
            report["predictions"] += [{"dataset": path, **row} for row in rows]
        for part in parts:  # one figure for all the dev sets' trainings
            part["timing"]["total_seconds"] = round(time.perf_counter() - protocol_started, 1)
        report |= {"dev": parts} if protocol == "dev" else parts[0]
    report["environment"] = environment(config, resolved_device)
    return report | {"total_seconds": round(time.perf_counter() - started, 1)}


def environment(config: TrainConfig, device: Any) -> dict[str, Any]:
    """What the report's numbers were measured with."""
    return {
        "train_mixed_precision": training.resolve_mixed_precision(config.mixed_precision),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "cpu_count": os.cpu_count(),
    }


def setfit_skipped(include: bool, iterations: int | None, fits: int) -> dict[str, str]:
    """Why the SetFit baseline is left out; ``{}`` when it runs."""
    if not include or not baselines.setfit_available():
        why = 'setfit is not installed or does not import (optional: pip install -e ".[setfit]")'
        return {SETFIT: why if include else "left out (--no_setfit)"}
    if iterations is None:  # with its default pair sampling it can take hours on a CPU
        print(
            f"setfit is installed: the SetFit baseline is included, {fits} fits of about 10 "
            "minutes each on one CPU thread; --setfit_iterations 20 halves that, --no_setfit "
            "leaves it out",
            file=sys.stderr,
        )
    return {}


@quiet_transformers_loading()  # load reports, once per training, would drown the bars here
def run_protocol(
    systems: list, dataset: Any, folds: list[Fold], seeds: Sequence[int], title: str, bars: bool
) -> tuple[dict[str, dict[int, np.ndarray]], np.ndarray, dict[str, list[float]]]:
    """Label ids per system and seed (the seed ensemble's under seed 0), the model's
    probabilities (seed, sentence, label) and fit seconds per system; a system that is not
    ``seeded`` is fitted once per fold and reused for every seed."""
    labels = np.asarray(dataset["label"])
    predicted = {s.name: {seed: np.full(len(labels), -1) for seed in seeds} for s in systems}
    probabilities = np.zeros((len(seeds), len(labels), len(LABELS)))
    seconds: dict[str, list[float]] = defaultdict(list)
    cache: dict[tuple[str, str], np.ndarray] = {}
    with tqdm(total=len(seeds) * len(folds), desc=title, disable=not bars) as bar:
        for index, seed in enumerate(seeds):
            for fold in folds:
                train, test = np.asarray(fold.train_indices), np.asarray(fold.test_indices)
                for system in systems:
                    key = (system.name, fold.document)
                    if system.seeded or key not in cache:
                        bar.set_postfix(seed=seed, held_out=fold.document[:3], fit=system.name)
                        fit_started = time.perf_counter()
                        cache[key] = system.fit_predict(train, test, seed)
                        seconds[system.name].append(time.perf_counter() - fit_started)
                    output = cache[key]
                    if output.ndim == 2:  # the model's probabilities, kept for the ensemble
                        probabilities[index, test], output = output, output.argmax(axis=1)
                    predicted[system.name][seed][test] = output
                bar.update(1)
    if len(seeds) > 1:  # a free look at what a seed ensemble would give: one value per fold
        predicted[ENSEMBLE] = {0: probabilities.mean(axis=0).argmax(axis=1)}
    return predicted, probabilities, seconds


def protocol_report(systems, dataset, folds, predicted, seconds, resamples: int) -> dict[str, Any]:
    """One protocol's part of the report: data, summaries, paired differences, bootstrap."""
    labels = np.asarray(dataset["label"])
    tested = np.sort(np.concatenate([fold.test_indices for fold in folds])).astype(int)
    trained = np.unique(np.concatenate([fold.train_indices for fold in folds])).astype(int)
    runs, summaries = {}, {}
    for name, by_seed in predicted.items():
        runs[name] = [
            classification_metrics(labels[fold.test_indices], p[fold.test_indices])
            for p in by_seed.values()
            for fold in folds
        ]
        pooled = [classification_metrics(labels[tested], p[tested]) for p in by_seed.values()]
        summaries[name] = summarize_system(runs[name], pooled, folds, list(by_seed))
    names = [system.name for system in systems if system.name != MODEL]
    part = {"folds": [fold.document for fold in folds], "baselines": names, "systems": summaries}
    strongest, seeds = strongest_baseline(part, "pooled", "macro_f1"), list(predicted[MODEL])
    descriptions = {system.name: system.description for system in systems}
    descriptions[ENSEMBLE] = f"mean probabilities of the {len(seeds)} seeds' models per fold"

    def counts(rows: Any) -> dict[str, int]:
        return dict(zip(LABELS, np.bincount(labels[rows], minlength=3).tolist(), strict=True))

    # Every system's predictions on the tested rows (one array per seed where it has seeds).
    scored = {name: [p[tested] for p in by_seed.values()] for name, by_seed in predicted.items()}
    return {
        "data": {
            "sentences": len(labels),
            "train_sentences": len(trained),
            "tested_sentences": len(tested),
            "label_counts": counts(trained),
            "documents": {
                fold.document: {"sentences": len(fold.test_indices)}
                | {"label_counts": counts(fold.test_indices)}
                for fold in folds
            },
        },
        **part,
        "descriptions": {n: descriptions[n] for n in (MODEL, ENSEMBLE, *names) if n in predicted},
        "comparisons": {name: paired_differences(runs[MODEL], runs[name]) for name in names},
        "bootstrap": {"baseline": strongest, "resamples": resamples, "sentences": len(tested)}
        | bootstrap_intervals(labels[tested], scored, strongest, resamples),
        "timing": {  # per system: how many fits, of how many seconds on average
            "fits": {name: len(times) for name, times in seconds.items()},
            "fit_seconds": {name: round(float(np.mean(t)), 1) for name, t in seconds.items()},
        },
    }


def prediction_rows(protocol: str, dataset, folds, predicted, probabilities, seeds) -> list[dict]:
    """One row per seed and held-out sentence: its truth, every system's label and the
    model's probabilities."""
    tested = [i for fold in folds for i in fold.test_indices]
    rows = dataset.select(tested).select_columns(["id", "doc", "text", "label"]).to_list()
    return [
        {"protocol": protocol, "seed": seed, **row, "label": LABELS[row["label"]]}
        | {"predicted": {name: LABELS[p.get(seed, p.get(0))[i]] for name, p in predicted.items()}}
        | {
            "probabilities": dict(
                zip(LABELS, probabilities[index, i].round(5).tolist(), strict=True)
            )
        }
        for index, seed in enumerate(seeds)
        for i, row in zip(tested, rows, strict=True)
    ]


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Limit torch's and the BLAS/OpenMP pools' threads for the block (None: unchanged)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
