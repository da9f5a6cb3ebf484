"""The training configuration: one dataclass, YAML files and ``--key=value`` overrides.

Precedence, lowest first: the dataclass defaults, the YAML file, the command
line. Unknown keys, wrong types and impossible values are rejected with a
one-line message; the resolved config is written next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from negstance.model.errors import NegstanceError
from negstance.model.modeling import DEFAULT_BACKBONE


@dataclass
class TrainConfig:
    """Everything a training run depends on. YAML files list only what differs."""

    # Data and model
    # One labelled JSONL, or several: a YAML list or --data_path=a.jsonl,b.jsonl
    data_path: str | list[str] = "data/seed_sentences.jsonl"
    output_dir: str = "runs/default"
    model_name_or_path: str = DEFAULT_BACKBONE  # resolved to the copy shipped on PyPI
    head: str = "mean"  # "mean": mean-pooled head (what MiniLM was trained for); "cls": stock
    max_length: int = 128  # the seed sentences are <= 49 tokens, so 128 truncates none of them
    exclude_ambiguous: bool = False  # drop sentences the annotators marked ambiguous
    validation_docs: list[str] = field(default_factory=list)  # documents held out per epoch
    # Cross-validation report (scripts/evaluate.py) quoted in the checkpoint's model
    # card; "" or a missing file: the card says no evaluation is attached.
    evaluation_report: str = "reports/evaluation/report.json"

    # Optimisation
    num_train_epochs: int = 10
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    classifier_dropout: float = 0.1
    class_weighting: str = "none"  # "balanced": weight the loss by inverse label frequency
    head_init: str = "random"  # "linear_probe": start the head from logistic regression (LP-FT)
    # After fine-tuning, refit the head as logistic regression on the fine-tuned sentence
    # vectors (SetFit's body-then-head idea), weighted as class_weighting says.
    head_refit: bool = False

    # Run
    seed: int = 42
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that supports it, else no
    show_progress: bool = True
    overwrite: bool = False  # replace an existing output_dir (otherwise refused)
    # Training state (weights, optimiser, scheduler, RNG) after each epoch, in
    # <output_dir>.state/, removed once the final checkpoint is saved.
    save_state_every_epoch: bool = True
    resume_from: str = ""  # a <output_dir>.state/ directory to continue from

    def validate(self) -> TrainConfig:
        """Reject values no run could use; returns ``self`` for chaining."""
        positive = (
            "num_train_epochs",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "max_length",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise NegstanceError(
                    f"config: {name} must be at least 1, got {getattr(self, name)}"
                )
        if not 0 <= self.seed < 2**32:  # numpy's seed range; set_seed crashes outside it
            raise NegstanceError(f"config: seed must be in [0, 2**32), got {self.seed}")
        if not 0 < self.learning_rate < float("inf"):
            raise NegstanceError(
                f"config: learning_rate must be positive and finite, got {self.learning_rate}"
            )
        for name in ("warmup_ratio", "classifier_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise NegstanceError(f"config: {name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("weight_decay", "max_grad_norm"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise NegstanceError(
                    f"config: {name} must be zero or positive, got {getattr(self, name)}"
                )
        choices = {
            "head": ("mean", "cls"),
            "class_weighting": ("none", "balanced"),
            "head_init": ("random", "linear_probe"),
            "mixed_precision": ("auto", "no", "bf16", "fp16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                value = getattr(self, name)
                raise NegstanceError(
                    f"config: {name} must be one of {', '.join(allowed)}, not {value!r}"
                )
        if self.head_init == "linear_probe" and self.head != "mean":
            # Said before any loading: the probe is fitted on the mean-pooled vectors.
            raise NegstanceError("config: head_init=linear_probe needs head=mean")
        if self.head_refit and self.head != "mean":
            raise NegstanceError("config: head_refit=true needs head=mean")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, expected: Any, source: str) -> Any:
    """Check ``value`` against the field's type; accept the few safe conversions."""
    origin = typing.get_origin(expected)
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif expected is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_type,) = typing.get_args(expected)
        if isinstance(value, str):  # --validation_docs=a,b
            value = [item for item in value.split(",") if item]
        if isinstance(value, list) and all(isinstance(item, item_type) for item in value):
            return list(value)
    elif origin in (typing.Union, types.UnionType):
        if isinstance(value, str) and "," in value and list[str] in typing.get_args(expected):
            return _coerce(name, value, list[str], source)  # --data_path=a.jsonl,b.jsonl
        for option in typing.get_args(expected):
            if option is type(None) and value is None:
                return None
            if option is not type(None):
                try:
                    return _coerce(name, value, option, source)
                except NegstanceError:
                    continue
    type_name = getattr(expected, "__name__", str(expected))
    raise NegstanceError(
        f"{source}: {name} must be {type_name}, got {type(value).__name__} {value!r}"
    )


def _apply(values: dict[str, Any], updates: dict[str, Any], source: str) -> None:
    types_by_name = _field_types()
    for name, value in updates.items():
        if name not in types_by_name:
            raise unknown_key_error(name, source)
        values[name] = _coerce(name, value, types_by_name[name], source)


def unknown_key_error(name: str, source: str) -> NegstanceError:
    """``source: unknown key 'x' (did you mean 'y'?)``, or the list of known keys."""
    types_by_name = _field_types()
    close = difflib.get_close_matches(str(name), types_by_name, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(types_by_name)}"
    return NegstanceError(f"{source}: unknown key {name!r} ({hint})")


def read_yaml_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    location = Path(path)
    if location.is_dir():
        yaml_files = sorted(location.glob("*.yaml"))
        example = f" (e.g. {yaml_files[0]})" if yaml_files else ""
        raise NegstanceError(f"config is a directory, not a YAML file: {location}{example}")
    if not location.is_file():
        raise NegstanceError(f"config file not found: {location}")
    try:
        loaded = yaml.safe_load(location.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None)
        raise NegstanceError(
            f"{location}{where}: not valid YAML" + (f" ({problem})" if problem else "")
        ) from None
    except UnicodeDecodeError:
        raise NegstanceError(f"{location}: not UTF-8 text") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise NegstanceError(f"{location}: expected a mapping of config keys")
    return loaded


def parse_overrides(arguments: Sequence[str]) -> dict[str, Any]:
    """Command-line overrides: ``--key=value``, ``--key value``, or ``--flag`` for true.

    Example:
        >>> parse_overrides(["--num_train_epochs=3", "--head", "cls", "--overwrite"])
        {'num_train_epochs': 3, 'head': 'cls', 'overwrite': True}
    """
    overrides: dict[str, Any] = {}
    pending = list(arguments)
    while pending:
        argument = pending.pop(0)
        if not argument.startswith("--") or argument == "--":
            raise NegstanceError(f"expected --key=value, got {argument!r}")
        if "=" in argument:
            key, raw = argument[2:].split("=", 1)
        elif pending and not pending[0].startswith("--"):
            key, raw = argument[2:], pending.pop(0)
        elif _field_types().get(argument[2:]) is bool:
            overrides[argument[2:]] = True
            continue
        elif argument[2:] not in _field_types():
            # A mistyped flag (--overwrit) is an unknown key, not a key missing its value.
            raise unknown_key_error(argument[2:], "command line")
        else:
            raise NegstanceError(f"{argument} needs a value: {argument}=VALUE")
        if _field_types().get(key) in (str, list[str], str | list[str]):
            # Paths, names and document ids stay verbatim: YAML reads "2025" or
            # "001" as numbers and "on" as a boolean.
            overrides[key] = raw
            continue
        try:
            overrides[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            overrides[key] = raw
    return overrides


def load_config(
    config_path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] | dict[str, Any] = (),
) -> TrainConfig:
    """Defaults, then the YAML file, then overrides; validated.

    Example:
        >>> load_config(None, ["--learning_rate=3e-5"]).learning_rate
        3e-05
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        _apply(values, read_yaml_config(config_path), str(config_path))
    if not isinstance(overrides, dict):
        overrides = parse_overrides(overrides)
    _apply(values, overrides, "command line")
    return TrainConfig(**values).validate()
