"""Two training processes on the CPU (gloo), launched the way a user would."""

from __future__ import annotations

import json

import pytest
from conftest import SEED_DATA, accelerate_launch, read_jsonl

HELD_OUT_DOC = "004_b00dc54cc08a93fa"  # 29 sentences: an odd count, so ranks get padded


def test_two_processes_train_and_only_the_main_one_saves(tiny_backbone_dir, tmp_path) -> None:
    from negstance.model import StanceClassifier

    output_dir = tmp_path / "run"
    arguments = [f"--model_name_or_path={tiny_backbone_dir}", f"--output_dir={output_dir}"]
    arguments += [f"--data_path={SEED_DATA}", "--num_train_epochs=2", "--warmup_ratio=0"]
    arguments += ["--learning_rate=1e-3", f"--validation_docs={HELD_OUT_DOC}", "--no_progress"]
    completed = accelerate_launch("train", arguments, timeout=300)
    assert completed.stdout.count("checkpoint saved to") == 1  # only rank 0 saves and says so
    assert [path.name for path in tmp_path.iterdir()] == ["run"]
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_processes"] == 2
    # accelerate steps the scheduler once per process per update; a schedule sized for one
    # process would reach zero halfway and train the second epoch at lr 0.
    rates = [epoch["learning_rate"] for epoch in metrics["epochs"]]
    assert rates == pytest.approx([5e-4, 0.0], abs=1e-12)
    assert all(epoch["train_loss"] < 2.0 for epoch in metrics["epochs"])  # finite, not diverged
    # gather_for_metrics drops the rows padded onto the shorter shard: each sentence once.
    rows = read_jsonl(SEED_DATA)
    held_out = sum(row["doc"] == HELD_OUT_DOC for row in rows)
    assert metrics["validation_sentences"] == held_out
    assert sum(map(sum, metrics["validation"]["confusion_matrix"])) == held_out
    assert metrics["train_sentences"] == len(rows) - held_out
    classifier = StanceClassifier.from_pretrained(output_dir, device="cpu")
    assert classifier.predict_proba(["Talks resumed.", "Kyiv said no."]).shape == (2, 3)
