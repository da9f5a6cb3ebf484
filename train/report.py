"""The evaluation report: rendering ``report.md`` and its plot, reading and writing it.

:func:`~negstance.train.evaluation.cross_validate` builds the report dict;
:func:`write_report` puts it in ``<output_dir>/report.json``, ``report.md`` and
``confusion_matrix.png``, and :func:`load_report` reads ``report.json`` back (the
model card quotes it). Everything here works on the report dict alone: no training,
no baselines fitted, so the model card can render a report without them.

Example:
    >>> from negstance.train.report import load_report, systems_table
    >>> report = load_report("reports/evaluation/report.json")  # doctest: +SKIP
    >>> print(systems_table(report))  # doctest: +SKIP
    | system | macro-F1 (folds) | ...
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from negstance.model.errors import NegstanceError
from negstance.model.io import write_text_atomic
from negstance.model.labels import LABELS

# Systems the report treats apart: the fine-tuned model, its seed ensemble, and the
# SetFit baseline (seed-dependent, optional; negstance.train.baselines reads its name here).
MODEL = "model"
ENSEMBLE = "model_seed_ensemble"
SETFIT = "setfit"
HEADLINE_METRICS = ("macro_f1", "f_avg", "accuracy")
METRIC_NAMES = {"macro_f1": "macro-F1", "f_avg": "F_avg", "accuracy": "accuracy"}
REPORT_FILES = ("report.json", "report.md", "confusion_matrix.png")
# TrainConfig keys the evaluation sets itself for each run (the seeds, the held-out
# articles): left out, besides the run-only keys, wherever a report's config is compared.
PER_RUN_KEYS = ("seed", "validation_docs")


def format_summary(summary: dict[str, float]) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def baseline_names(report: dict[str, Any]) -> list[str]:
    """The baselines that ran, in their fixed order (SetFit only where it was installed)."""
    if "baselines" in report:
        return list(report["baselines"])
    # A report that predates the "baselines" key lists its systems in that order too:
    # the model, the baselines, then the seed ensemble.
    return [name for name in report["systems"] if name not in (MODEL, ENSEMBLE)]


def system_order(report: dict[str, Any]) -> list[str]:
    """The model, its seed ensemble, then the baselines: the order of every table."""
    return [name for name in (MODEL, ENSEMBLE) if name in report["systems"]] + baseline_names(
        report
    )


def systems_table(report: dict[str, Any], dev: bool = False) -> str:
    """Markdown table, one row per system: fold and pooled macro-F1, F_avg and accuracy.

    ``dev``: the dev-set protocol's columns instead, the pooled scores and per-label F1.
    """
    if dev:
        columns = [(METRIC_NAMES[m], "pooled", m) for m in HEADLINE_METRICS]
        columns += [(f"F1 {label}", "pooled", f"{label}_f1") for label in LABELS]
    else:
        columns = [
            (f"{METRIC_NAMES[m]} ({scope})", scope, m)
            for scope in ("folds", "pooled")
            for m in HEADLINE_METRICS
        ]
    lines = [
        "| system | " + " | ".join(title for title, _, _ in columns) + " |",
        "|---" + "|---:" * len(columns) + "|",
    ]
    for system in system_order(report):
        summary = report["systems"][system]
        # One ensemble per fold: its pooled value has no spread.
        cells = [
            f"{summary[scope][m]['mean']:.3f}"
            if system == ENSEMBLE and scope == "pooled"
            else format_summary(summary[scope][m])
            for _, scope, m in columns
        ]
        name = f"**{system}**" if system == MODEL else system
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def confusion_table(matrix: list[list[int]], corner: str = "true \\ predicted") -> str:
    lines = [f"| {corner} | " + " | ".join(LABELS) + " |", "|---" + "|---:" * 3 + "|"]
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
        lines.append(
            bootstrap_line(bootstrap, "held-out")
            + " An interval that contains 0 means the data cannot tell the two apart."
        )
    where = "in the next section" if in_report else "in the report's `report.md`"
    lines += [
        "",
        f"Fold-level differences, paired by article and seed, are {where}; the "
        "spread between articles is far larger than between seeds.",
    ]
    return lines


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
    lines.append(bootstrap_line(dev["bootstrap"], "dev"))
    return lines


def bootstrap_line(bootstrap: dict[str, Any], sentences: str) -> str:
    """The bootstrap interval of model − strongest baseline, as one bullet."""
    intervals = ", ".join(
        f"{METRIC_NAMES[name]} [{bootstrap[name]['low']:+.3f}, {bootstrap[name]['high']:+.3f}]"
        for name in ("macro_f1", "f_avg")
    )
    return (
        f"- 95 % paired bootstrap interval of model − `{bootstrap['baseline']}` over the "
        f"{bootstrap['sentences']} {sentences} sentences ({bootstrap['resamples']} resamples, "
        f"model averaged over seeds): {intervals}."
    )


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
        systems_table(dev, dev=True),
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
        systems_table(report),
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
