"""The Hugging Face model card (README.md) written into every checkpoint."""

from __future__ import annotations

from collections import Counter
from typing import Any

from datasets import Dataset

from negstance.model.modeling import LABELS
from negstance.train.config import TrainConfig


def render_model_card(config: TrainConfig, metrics: dict[str, Any], train_dataset: Dataset) -> str:
    counts = Counter(train_dataset.features["label"].int2str(list(train_dataset["label"])))
    count_text = ", ".join(f"{label} {counts.get(label, 0)}" for label in LABELS)
    return f"""---
pipeline_tag: text-classification
base_model: {config.model_name_or_path}
language: en
license: mit
tags: [stance-detection, negstance]
---
# negstance stance classifier

Stance of a news sentence toward negotiation to end the Russia–Ukraine war:
`favor`, `against` or `none`. Trained on {len(train_dataset)} hand-labelled
sentences ({count_text}).

Load it with `negstance.model.StanceClassifier.from_pretrained(path)`.
"""
