"""Two training processes on the CPU (gloo), launched the way a user would.

``accelerate launch --cpu --num_processes 2`` silently starts one process, so the
launch is ``--multi_gpu`` with ``ACCELERATE_USE_CPU=1``: two ranks on the CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEARNING_RATE = 1e-3
HELD_OUT_DOC = "004_b00dc54cc08a93fa"  # 29 sentences: an odd count, so ranks get padded


def free_port() -> int:
    # Other test runs on the same machine may hold accelerate's default port 29500.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tiny_backbone_dir: Path, tmp_path_factory) -> tuple[Path, str]:
    output_dir = tmp_path_factory.mktemp("two_processes") / "run"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(REPO / "scripts" / "train.py"),
        f"--model_name_or_path={tiny_backbone_dir}",
        f"--output_dir={output_dir}",
        f"--data_path={REPO / 'data' / 'seed_sentences.jsonl'}",
        "--num_train_epochs=2",
        "--per_device_train_batch_size=16",
        f"--learning_rate={LEARNING_RATE}",
        "--warmup_ratio=0",
        f"--validation_docs={HELD_OUT_DOC}",
        "--no_progress",
    ]
    environment = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    completed = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=180
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return output_dir, completed.stdout


def test_two_processes_train_and_only_the_main_one_saves(two_process_run: tuple[Path, str]) -> None:
    output_dir, stdout = two_process_run
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_processes"] == 2
    assert "2 process(es)" in (output_dir / "train.log").read_text(encoding="utf-8")
    # Only rank 0 saves, and so only rank 0 reports a checkpoint.
    assert stdout.count("checkpoint saved to") == 1
    assert sorted(path.name for path in output_dir.parent.iterdir()) == ["run"]
    assert (output_dir / "model.safetensors").is_file()


def test_learning_rate_schedule_spans_the_whole_two_process_run(
    two_process_run: tuple[Path, str],
) -> None:
    # accelerate steps the scheduler once per process per update; a schedule sized
    # for one process would reach zero halfway and train the second epoch at lr 0.
    metrics = json.loads((two_process_run[0] / "metrics.json").read_text(encoding="utf-8"))
    rates = [epoch["learning_rate"] for epoch in metrics["epochs"]]
    assert rates == pytest.approx([LEARNING_RATE / 2, 0.0], abs=1e-12)
    losses = [epoch["train_loss"] for epoch in metrics["epochs"]]
    assert all(loss == loss and loss < 2.0 for loss in losses)  # finite, not diverged


def test_two_process_checkpoint_predicts(two_process_run: tuple[Path, str]) -> None:
    from negstance.model import LABELS, StanceClassifier

    classifier = StanceClassifier.from_pretrained(two_process_run[0], device="cpu")
    assert classifier.labels == list(LABELS)
    assert classifier.predict_proba(["Talks resumed.", "Kyiv said no."]).shape == (2, 3)


def test_validation_is_gathered_once_per_sentence_across_processes(
    two_process_run: tuple[Path, str],
) -> None:
    metrics = json.loads((two_process_run[0] / "metrics.json").read_text(encoding="utf-8"))
    seed_rows = (REPO / "data" / "seed_sentences.jsonl").read_text(encoding="utf-8").splitlines()
    held_out = sum(json.loads(row)["doc"] == HELD_OUT_DOC for row in seed_rows)
    assert metrics["validation_sentences"] == held_out
    assert metrics["train_sentences"] == len(seed_rows) - held_out
    # gather_for_metrics must drop the rows padded onto the shorter shard.
    confusion = metrics["validation"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == held_out
