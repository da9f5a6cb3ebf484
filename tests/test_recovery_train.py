"""Nothing is lost and nothing unsafe is loaded.

* checkpoints are replaced whole or not at all, even when the save is killed;
* an interrupted predict.py continues with ``--resume`` to the very bytes an
  uninterrupted run writes;
* an interrupted train.py continues with ``--resume_from`` to the very weights
  an uninterrupted run reaches;
* weights load from safetensors only, without remote code or network.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import load_script

from negstance.model.backbones import MINILM
from negstance.model.checkpoint import (
    build_model,
    check_checkpoint_dir,
    load_checkpoint,
    remove_interrupted_saves,
    save_checkpoint,
)
from negstance.model.classifier import StanceClassifier

REPO = Path(__file__).resolve().parents[1]


predict_script = load_script("predict")
train_script = load_script("train")


def weights_of(directory: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(directory)
    return model.state_dict()


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=1e-6, rtol=0, msg=name)


# --------------------------------------------------------------------------- #
# Atomic checkpoints
# --------------------------------------------------------------------------- #
@pytest.fixture()
def saved_twice(tiny_checkpoint_dir, tmp_path):
    """A checkpoint at ``tmp_path/checkpoint``, and a different model to save over it."""
    target = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint_dir, target)
    model, tokenizer = load_checkpoint(target)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    return target, model, tokenizer


def test_failed_save_keeps_previous_checkpoint(saved_twice, monkeypatch):
    target, model, tokenizer = saved_twice
    before = weights_of(target)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokenizer, "save_pretrained", fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(model, tokenizer, target)
    assert_same_weights(weights_of(target), before)
    assert [path.name for path in target.parent.iterdir()] == ["checkpoint"]


def test_failed_rename_puts_previous_checkpoint_back(saved_twice, monkeypatch):
    target, model, tokenizer = saved_twice
    before = weights_of(target)
    real_replace = __import__("os").replace

    def replace(source, destination):
        # The old checkpoint has been moved aside; the new one fails to move in.
        if Path(destination) == target and ".saving-" in str(source):
            raise OSError(5, "Input/output error")
        real_replace(source, destination)

    monkeypatch.setattr("negstance.model.checkpoint.os.replace", replace)
    with pytest.raises(OSError, match="Input/output error"):
        save_checkpoint(model, tokenizer, target)
    monkeypatch.undo()
    assert_same_weights(weights_of(target), before)
    assert [path.name for path in target.parent.iterdir()] == ["checkpoint"]


def test_save_killed_with_sigkill_keeps_previous_checkpoint(saved_twice):
    target, model, tokenizer = saved_twice
    before = weights_of(target)
    script = textwrap.dedent(
        f"""
        import os, signal
        from negstance.model.checkpoint import load_checkpoint, save_checkpoint
        model, tokenizer = load_checkpoint({str(target)!r})
        # Killed after the weights are written, before the tokenizer is.
        tokenizer.save_pretrained = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        save_checkpoint(model, tokenizer, {str(target)!r})
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert_same_weights(weights_of(target), before)
    leftovers = [path for path in target.parent.iterdir() if path != target]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".checkpoint.saving-")
    assert (leftovers[0] / "model.safetensors").exists()

    save_checkpoint(model, tokenizer, target)  # the next save clears the dead process's files
    assert [path.name for path in target.parent.iterdir()] == ["checkpoint"]
    assert_same_weights(weights_of(target), model.state_dict())


def test_crash_between_renames_is_recoverable(tiny_checkpoint_dir, tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(finished.stdout)
    target = tmp_path / "checkpoint"
    retired = tmp_path / f".checkpoint.old-{dead_pid}-abc123" / "checkpoint"
    shutil.copytree(tiny_checkpoint_dir, retired)
    with pytest.raises(ValueError) as raised:
        check_checkpoint_dir(target)
    assert str(raised.value) == (
        f"model directory not found: {target}; an interrupted save left the previous "
        f"checkpoint at {retired} (move it back to {target})"
    )
    remove_interrupted_saves(target)
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint"]
    assert_same_weights(weights_of(target), weights_of(tiny_checkpoint_dir))


# --------------------------------------------------------------------------- #
# train.py --resume_from
# --------------------------------------------------------------------------- #
def test_interrupted_training_resumes_to_the_same_weights(
    tiny_train_args, seed_sentences, tmp_path, monkeypatch, capsys
):
    import negstance.train.training as training

    # A third of the seed set in batches of 8: several shuffled batches per epoch
    # with dropout on, so data order, RNG and optimiser state all have to survive.
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in seed_sentences[::3]), "utf-8")
    argv = [*tiny_train_args, f"--data_path={data}", "--per_device_train_batch_size=8"]
    uninterrupted = tmp_path / "uninterrupted"
    assert train_script.main([*argv, f"--output_dir={uninterrupted}"]) == 0
    assert not (tmp_path / "uninterrupted.state").exists()  # removed once the run completed

    resumed = tmp_path / "resumed"
    state = tmp_path / "resumed.state"
    save_state = training.save_training_state

    def killed_during_epoch_2(directory, *, epoch, **kwargs):
        if epoch == 2:
            raise KeyboardInterrupt
        return save_state(directory, epoch=epoch, **kwargs)

    monkeypatch.setattr(training, "save_training_state", killed_during_epoch_2)
    capsys.readouterr()
    assert train_script.main([*argv, f"--output_dir={resumed}"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted: rerun the same command with --resume_from={state}"
    )
    monkeypatch.undo()
    assert not resumed.exists()
    assert json.loads((state / "state.json").read_text(encoding="utf-8"))["epoch"] == 1

    # Starting over by mistake, or resuming with other settings, is refused.
    assert train_script.main([*argv, f"--output_dir={resumed}"]) == 2
    assert capsys.readouterr().err == (
        f"error: an interrupted run left its training state in {state}: pass "
        f"--resume_from={state} to continue it, or --overwrite to start over\n"
    )
    changed = [
        *argv,
        f"--output_dir={resumed}",
        "--learning_rate=1e-3",
        "--resume_from",
        str(state),
    ]
    assert train_script.main(changed) == 2
    assert capsys.readouterr().err == (
        f"error: resume_from: {state} was saved by a run with learning_rate=5e-05, but this "
        "run has learning_rate=0.001; resume with the same settings\n"
    )

    assert train_script.main([*argv, f"--output_dir={resumed}", "--resume_from", str(state)]) == 0
    assert not state.exists()
    assert_same_weights(weights_of(resumed), weights_of(uninterrupted))
    history = [
        json.loads((run / "metrics.json").read_text())["epochs"] for run in (uninterrupted, resumed)
    ]
    assert history[0] == history[1]
    assert [record["epoch"] for record in history[1]] == [1, 2]


def test_damaged_training_state_is_refused(tiny_train_args, tmp_path, capsys):
    state = tmp_path / "run.state"
    state.mkdir()
    (state / "state.json").write_text('{"format": 1, "epoch": ', encoding="utf-8")
    argv = [*tiny_train_args, f"--resume_from={state}"]
    assert train_script.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: resume_from: damaged or incomplete training state in {state} (")
    assert len(err.splitlines()) == 1


# --------------------------------------------------------------------------- #
# Safe loading
# --------------------------------------------------------------------------- #
def test_weights_never_come_from_pickle_or_remote_code(tiny_checkpoint_dir, tmp_path, monkeypatch):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint_dir, checkpoint)
    marker = tmp_path / "code-ran"
    # A pickle and remote code beside the safetensors weights: neither may run.
    (checkpoint / "pytorch_model.bin").write_bytes(b"not even a valid pickle")
    (checkpoint / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from negstance.model.network import NegstanceForSequenceClassification as Evil\n",
        encoding="utf-8",
    )
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.Evil"}
    (checkpoint / "config.json").write_text(json.dumps(config), encoding="utf-8")

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_torch_load)
    classifier = StanceClassifier.from_pretrained(checkpoint, device="cpu")
    assert classifier.predict("Talks resumed.") in ("favor", "against", "none")
    assert not marker.exists()


def test_only_pickled_weights_are_refused(tiny_checkpoint_dir, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint_dir, checkpoint)
    (checkpoint / "model.safetensors").rename(checkpoint / "pytorch_model.bin")
    with pytest.raises(ValueError, match="only pickled weights"):
        load_checkpoint(checkpoint)


def test_backbone_with_only_pickled_weights_is_refused(tiny_backbone_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_backbone_dir, backbone)
    weights = load_file(backbone / "model.safetensors")
    (backbone / "model.safetensors").unlink()
    torch.save(weights, backbone / "pytorch_model.bin")

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_torch_load)
    for head in ("mean", "cls"):
        with pytest.raises(ValueError) as raised:
            build_model(str(backbone), head=head)
        assert str(raised.value) == (
            f"cannot load backbone '{backbone}': it has no safetensors weights; pickled weights "
            "(pytorch_model.bin) are refused because loading them can run arbitrary code: "
            "convert them to safetensors first"
        )


@pytest.mark.integration
def test_loading_needs_no_network(tiny_checkpoint_dir, monkeypatch):
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("huggingface.co", 443), timeout=1)

    model, _tokenizer = load_checkpoint(tiny_checkpoint_dir)
    assert model.config.label2id == {"favor": 0, "against": 1, "none": 2}
    backbone, backbone_tokenizer = build_model(MINILM)
    assert backbone.config.hidden_size == 384
    assert backbone_tokenizer("Talks resumed.")["input_ids"][0] == backbone_tokenizer.cls_token_id
