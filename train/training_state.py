"""Resumable training: the state after each epoch, written without pickle.

Tensors go to safetensors files, everything else to JSON, so loading a state never runs
code (unlike ``torch.load`` or ``accelerator.save_state``). A state lives in
``<output_dir>.state/``, is replaced atomically after each epoch and removed once the
checkpoint is saved. A resumed single-process run reproduces the uninterrupted one (model,
optimiser, scheduler, RNGs, data order); an fp16 run resumes with a fresh loss scaler.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from negstance.model.checkpoint import check_replaceable, named_directory, staged_directory
from negstance.model.errors import NegstanceError
from negstance.model.io import check_writable_directory
from negstance.train.config import TrainConfig, config_diff

STATE_FORMAT = 1


@dataclass
class TrainingProgress:
    """What a resumed run takes over: the last finished epoch, its history and log."""

    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)


def state_dir_for(output_dir: str | os.PathLike[str]) -> Path:
    """``runs/default`` → ``runs/default.state``."""
    target = named_directory(Path(output_dir))
    return target.with_name(target.name + ".state")


def check_output_dir(config: TrainConfig) -> None:
    """Before any work: refuse to replace a finished run or orphan an interrupted one.

    Example:
        >>> check_output_dir(load_config(None, ["--output_dir=runs/new"]))  # doctest: +SKIP
    """
    target = Path(config.output_dir)
    check_writable_directory(target.parent, f"cannot write output_dir {target}", create=True)
    if target.exists() and not target.is_dir():
        raise NegstanceError(f"output_dir is a file: {target}")
    if target.exists() and not config.overwrite:
        raise NegstanceError(
            f"output_dir exists: {target} (pass --overwrite to replace it, "
            "or choose another --output_dir)"
        )
    check_replaceable(target)  # now, not after training: --overwrite replaces only a checkpoint
    state = state_dir_for(target)
    resuming_it = config.resume_from and Path(config.resume_from).resolve() == state.resolve()
    if state.exists() and not (resuming_it or config.overwrite):
        raise NegstanceError(
            f"an interrupted run left its training state in {state}: pass "
            f"--resume_from={state} to continue it, or --overwrite to start over"
        )
    if config.resume_from and not Path(config.resume_from).is_dir():
        raise NegstanceError(
            f"resume_from: no training state at {config.resume_from} (expected the "
            "<output_dir>.state directory of an interrupted run)"
        )


def save_training_state(
    directory: str | os.PathLike[str],
    *,
    config: TrainConfig,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    shuffle_generator: torch.Generator,
    history: list[dict[str, Any]],
    log_lines: list[str],
) -> Path:
    """Write the state after ``epoch`` to ``directory``, replacing the previous one whole.

    Example:
        >>> save_training_state("runs/default.state", config=config, epoch=3, ...)  # doctest: +SKIP
    """
    target = Path(directory)
    with staged_directory(target) as staging:
        save_model(model, str(staging / "model.safetensors"))
        optimizer_state = optimizer.state_dict()
        moments: dict[str, torch.Tensor] = {}
        scalars: dict[str, Any] = {}
        for parameter, values in optimizer_state["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    moments[f"{parameter}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{parameter}.{name}"] = value
        save_file(moments, str(staging / "optimizer.safetensors"))
        save_file(_rng_states(shuffle_generator), str(staging / "rng.safetensors"))
        document = {
            "format": STATE_FORMAT,
            "epoch": epoch,
            "config": dataclasses.asdict(config),
            "optimizer_param_groups": optimizer_state["param_groups"],
            "optimizer_scalars": scalars,
            "scheduler": scheduler.state_dict(),
            "history": history,
            "log_lines": log_lines,
        }
        (staging / "state.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    return target


@dataclass
class SavedTrainingState:
    """A training state read from disk and checked, ready to restore."""

    directory: Path
    document: dict[str, Any]
    moments: dict[str, torch.Tensor]
    rng: dict[str, torch.Tensor]


def read_training_state(
    directory: str | os.PathLike[str], config: TrainConfig
) -> SavedTrainingState:
    """Read and check a state before any work starts, so a bad one fails fast.

    Refuses damaged files and a state written with settings that change the
    computation (learning rate, epochs, data, seed, ...), naming the first
    difference.

    Example:
        >>> saved = read_training_state("runs/default.state", config)  # doctest: +SKIP
    """
    location = Path(directory)
    try:
        document = json.loads((location / "state.json").read_text(encoding="utf-8"))
        if document.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        with safe_open(str(location / "model.safetensors"), framework="pt"):
            pass  # the header names every tensor: a truncated file fails here
        moments = load_file(str(location / "optimizer.safetensors"))
        rng = load_file(str(location / "rng.safetensors"))
    except (OSError, ValueError, AttributeError, SafetensorError) as error:
        raise NegstanceError(
            f"resume_from: damaged or incomplete training state in {location} ({error})"
        ) from None
    _check_same_settings(document["config"], config, location)
    return SavedTrainingState(location, document, moments, rng)


def restore_training_state(
    saved: SavedTrainingState,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    shuffle_generator: torch.Generator,
) -> TrainingProgress:
    """Put back everything ``save_training_state`` wrote; returns the epoch reached."""
    document = saved.document
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*saved.moments.items(), *document["optimizer_scalars"].items()]:
        parameter, name = key.split(".", 1)
        state.setdefault(int(parameter), {})[name] = value
    # JSON turned tuples such as AdamW's betas into lists.
    groups = [
        {
            key: tuple(value) if isinstance(value, list) and key != "params" else value
            for key, value in group.items()
        }
        for group in document["optimizer_param_groups"]
    ]
    try:
        load_model(model, str(saved.directory / "model.safetensors"))
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (OSError, RuntimeError, ValueError, SafetensorError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise NegstanceError(f"resume_from: cannot restore {saved.directory} ({message})") from None
    scheduler.load_state_dict(document["scheduler"])
    torch.set_rng_state(saved.rng["torch"])
    shuffle_generator.set_state(saved.rng["shuffle"])
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if f"cuda.{index}" in saved.rng:
                torch.cuda.set_rng_state(saved.rng[f"cuda.{index}"], index)
    return TrainingProgress(document["epoch"], document["history"], document["log_lines"])


def _rng_states(shuffle_generator: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "shuffle": shuffle_generator.get_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda.{index}"] = cuda_state
    return states


def _check_same_settings(saved: dict[str, Any], config: TrainConfig, location: Path) -> None:
    for name, (value, current) in config_diff(saved, dataclasses.asdict(config)).items():
        raise NegstanceError(
            f"resume_from: {location} was saved by a run with {name}={value!r}, but this "
            f"run has {name}={current!r}; resume with the same settings"
        )
