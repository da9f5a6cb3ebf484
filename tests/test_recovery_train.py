"""Nothing is lost: a checkpoint is replaced whole or not at all, even when the save is killed,
and an interrupted train.py resumes to the very weights an uninterrupted run reaches."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SEED_DATA, error_line, load_script

from negstance.model.checkpoint import load_checkpoint, save_checkpoint

train_script = load_script("train")


def weights_of(directory: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(directory)[0].state_dict()


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=0, rtol=0, msg=name)


def test_a_failed_or_killed_save_keeps_the_previous_checkpoint(tiny_checkpoint_dir, tmp_path):
    target = shutil.copytree(tiny_checkpoint_dir, tmp_path / "checkpoint")
    model, tokenizer = load_checkpoint(target)
    before = weights_of(target)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    # Killed (or failing) after the weights are written, before the tokenizer is.
    script = f"""import os, signal
from negstance.model.checkpoint import load_checkpoint, save_checkpoint
model, tokenizer = load_checkpoint({str(target)!r})
tokenizer.save_pretrained = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
save_checkpoint(model, tokenizer, {str(target)!r})"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert_same_weights(weights_of(target), before)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"), pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenizer, "save_pretrained", full_disk)
        save_checkpoint(model, tokenizer, target)
    assert_same_weights(weights_of(target), before)
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint"]  # nothing left beside it
    save_checkpoint(model, tokenizer, target)
    assert_same_weights(weights_of(target), model.state_dict())


@pytest.fixture(scope="module")
def resumable(tiny_backbone_dir, tmp_path_factory) -> tuple[list[str], Path]:
    """train.py arguments for 2 epochs of 7 shuffled batches with dropout (so that data order,
    RNGs and optimiser state all have to survive), and their uninterrupted run."""
    root = tmp_path_factory.mktemp("resume")
    rows = SEED_DATA.read_text(encoding="utf-8").splitlines()
    (root / "data.jsonl").write_text("\n".join(rows[::3]) + "\n", encoding="utf-8")
    argv = [f"--model_name_or_path={tiny_backbone_dir}", f"--data_path={root / 'data.jsonl'}"]
    argv += ["--num_train_epochs=2", "--per_device_train_batch_size=8", "--no_progress"]
    assert train_script.main([*argv, f"--output_dir={root / 'uninterrupted'}"]) == 0
    return argv, root / "uninterrupted"


def stop_at_update(monkeypatch, update: int, stop) -> None:
    """Call ``stop()`` after the optimiser's ``update``-th step."""
    real_step, calls = torch.optim.AdamW.step, []

    def step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == update:
            stop()
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step)


def crash() -> None:
    raise RuntimeError("power cut")


@pytest.mark.parametrize(
    ("stop", "extra", "saved_at"),
    [
        (lambda: os.kill(os.getpid(), signal.SIGINT), [], (2, 3)),  # at update 10
        (crash, ["--save_state_steps=4"], (2, 1)),  # at update 8
    ],
    ids=["ctrl-c", "crash-after-periodic-save"],
)
def test_interrupted_training_resumes_to_the_same_weights(
    resumable, stop, extra, saved_at, tmp_path, monkeypatch, capsys
):
    argv, uninterrupted = resumable
    argv = [*argv, f"--output_dir={tmp_path / 'run'}", *extra]
    state = tmp_path / "run.state"
    stop_at_update(monkeypatch, 10, stop)
    if stop is crash:
        with pytest.raises(RuntimeError, match="power cut"):
            train_script.main(argv)
    else:
        assert train_script.main(argv) == 130
        assert f"--resume_from={state}" in capsys.readouterr().err
    monkeypatch.undo()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run.state"]
    progress = json.loads((state / "progress.json").read_text(encoding="utf-8"))
    assert (progress["epoch"], progress["batches"]) == saved_at  # epoch 2, batch N of 7

    # Starting over by mistake, resuming with other settings or from a damaged state: refused.
    damaged = shutil.copytree(state, tmp_path / "damaged")
    (damaged / "optimizer.bin").write_bytes(b"truncated")
    capsys.readouterr()
    for more, noun in [
        ([], str(state)),
        (["--learning_rate=1e-3", f"--resume_from={state}"], "learning_rate"),
        ([f"--resume_from={damaged}", "--overwrite"], str(damaged)),
    ]:
        assert noun in error_line(train_script.main, [*argv, *more], capsys)
    shutil.rmtree(damaged)

    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    assert train_script.main([*argv, f"--resume_from={state}"]) == 0
    assert loads and all(k.get("weights_only") for k in loads)  # no pickled code can run
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    runs = (uninterrupted, tmp_path / "run")
    assert_same_weights(*map(weights_of, runs))
    history = [json.loads((run / "metrics.json").read_text())["epochs"] for run in runs]
    assert history[0] == history[1]
