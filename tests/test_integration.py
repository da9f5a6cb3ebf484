"""The real packaged all-MiniLM-L6-v2 (the fast option): a short training run, then three
ways to predict. The default mpnet backbone is assembled for real in test_backbones.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from negstance.model import LABELS, StanceClassifier
from negstance.model.backbones import MINILM
from negstance.train import load_config, train

REPO = Path(__file__).resolve().parents[1]

SENTENCES = [
    "The Kremlin said Putin is ready for talks with Trump without preconditions.",
    "Kyiv will never accept a deal that rewards the aggressor.",
    "Oil prices fell on Tuesday.",
    "Read also:",
    "Both sides agreed to meet in Riyadh next week to discuss a ceasefire along the current "
    "front line, officials said, though neither expects a quick breakthrough.",
]


@pytest.mark.integration
def test_short_minilm_training_and_three_prediction_routes_agree(tmp_path: Path) -> None:
    config = load_config(
        REPO / "configs" / "minilm.yaml",
        [
            f"--data_path={REPO / 'data' / 'seed_sentences.jsonl'}",
            f"--output_dir={tmp_path / 'run'}",
            "--num_train_epochs=1",
            "--no_progress",
        ],
    )
    assert config.model_name_or_path == MINILM  # the packaged copy, no network
    result = train(config)
    assert result.output_dir is not None
    assert result.metrics["train_sentences"] == 153
    assert np.isfinite(result.metrics["final_train_loss"])

    classifier = StanceClassifier.from_pretrained(result.output_dir, device="cpu", precision="fp32")
    assert classifier.labels == list(LABELS)
    probabilities = classifier.predict_proba(SENTENCES, batch_size=2)
    labels = classifier.predict(SENTENCES)

    auto_model = AutoModelForSequenceClassification.from_pretrained(result.output_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    with torch.inference_mode():
        logits = auto_model(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).logits
    np.testing.assert_allclose(
        torch.softmax(logits, dim=-1).numpy(), probabilities, rtol=0, atol=1e-4
    )
    assert [auto_model.config.id2label[int(i)] for i in logits.argmax(dim=-1)] == labels

    classify = pipeline("text-classification", model=str(result.output_dir), device="cpu")
    scored = classify(SENTENCES, top_k=None)
    pipeline_probabilities = np.array(
        [[{e["label"]: e["score"] for e in row}[label] for label in LABELS] for row in scored]
    )
    np.testing.assert_allclose(pipeline_probabilities, probabilities, rtol=0, atol=1e-4)
    assert [row["label"] for row in classify(SENTENCES)] == labels
