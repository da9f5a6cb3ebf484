"""The model card (README.md) of every checkpoint, rendered as setfit does, by
``huggingface_hub.ModelCard.from_template`` from ``templates/model_card.md``. It quotes the
evaluation at ``config.evaluation_report``, and says so when that was of another
configuration, or when there is none.

Example: ``render_model_card(load_config(), {}, load_seed_dataset())`` (the card's text)
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import jinja2
from datasets import Dataset
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from negstance.model.errors import NegstanceError
from negstance.model.labels import DEFINITIONS, LABELS
from negstance.train.config import TrainConfig, config_diff
from negstance.train.report import MODEL, PER_RUN_KEYS, TEMPLATES, load_report, templates

TAGS = "text-classification stance-detection negstance russia-ukraine-war peace-negotiations news"
# (metric type, report key, name) of the model-index results.
CARD_METRICS = (
    ("f1", "macro_f1", "macro-F1"),
    ("f1", "f_avg", "F_avg favor/against"),
    ("accuracy", "accuracy", "accuracy"),
)


def card_data(config: TrainConfig, report: dict[str, Any] | None) -> ModelCardData:
    """The card's metadata, with a ``model-index`` of ``report``'s pooled model scores."""
    results = []
    # huggingface_hub merges the results of one (task, dataset type, split): one split each.
    parts = [
        (dev, f"negstance dev set {dev['data']['path']} (trained on the seed set)", f"dev-{i}")
        for i, dev in enumerate((report or {}).get("dev", []), 1)
    ]
    parts.append((report, "negstance seed set, leave-one-article-out CV", "seed-cv"))
    for part, name, split in parts:
        if pooled := (part or {}).get("systems", {}).get(MODEL, {}).get("pooled"):
            results += [
                EvalResult(
                    task_type="text-classification",
                    task_name="Stance detection",
                    dataset_type="negstance",
                    dataset_name=name,
                    dataset_split=split,
                    metric_type=kind,
                    metric_name=f"{title} (pooled, mean of {len(report['seeds'])} seeds)",
                    metric_value=round(pooled[key]["mean"], 4),
                )
                for kind, key, title in CARD_METRICS
            ]
    return ModelCardData(
        pipeline_tag="text-classification",
        library_name="transformers",
        base_model=config.model_name_or_path,
        language="en",
        license="mit",
        tags=TAGS.split(),
        metrics=["f1", "accuracy"],
        model_name="negstance",
        eval_results=results or None,
    )


def evaluation_section(config: TrainConfig, source: str) -> tuple[str, dict[str, Any] | None]:
    """The card's evaluation prose, and the report whose scores its metadata may carry: one of
    this very configuration (tools read those numbers without the card's caveats)."""
    section = templates().get_template("sections.md").module.card_evaluation
    problem = ""  # why a report given could not be used
    try:
        if report := load_report(source) if source else None:
            asdict = dataclasses.asdict(config)
            differences = config_diff(report.get("config", {}), asdict, ignore=PER_RUN_KEYS)
            own, others = Path(source).resolve(), []
            for path in sorted(own.parent.parent.glob("*/report.json")):  # other recipes
                with contextlib.suppress(NegstanceError):
                    if path != own:
                        others.append((f"`{path.parent.name}`", load_report(path)))
            text = section(report, source, "", differences, others)
            return str(text).strip(), None if differences else report
    except NegstanceError as error:
        problem = str(error)
    except (jinja2.UndefinedError, KeyError, TypeError, ValueError, AttributeError) as error:
        # An older or hand-edited report must not cost a finished training its checkpoint.
        problem = (
            f"`{source}` is not a complete evaluation report ({type(error).__name__}: "
            f"{error}); re-run scripts/evaluate.py"
        )
    return str(section(None, source, problem, {}, [])).strip(), None


def render_model_card(config: TrainConfig, metrics: dict[str, Any], train_dataset: Dataset) -> str:
    """README.md of a checkpoint: Hugging Face front matter, then the card's sections."""
    evaluation, report = evaluation_section(config, str(config.evaluation_report))
    documents = train_dataset.unique("doc") if "doc" in train_dataset.column_names else []
    card = ModelCard.from_template(
        card_data(config, report),
        template_path=TEMPLATES / "model_card.md",
        config=config,
        train_metrics=metrics,
        evaluation=evaluation,
        labels=LABELS,
        definitions=DEFINITIONS,
        label_ids=list(train_dataset["label"]),
        documents=len(documents),
        data_files=[config.data_path] if isinstance(config.data_path, str) else config.data_path,
    )
    return card.content
