"""The training configuration: one dataclass, filled by defaults < a YAML file < ``--key value``.

Keys marked ``run_only`` do not change the trained weights; :func:`config_diff` skips them
when resuming, and when the model card and evaluation compare configs.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from negstance.model.backbones import DEFAULT_BACKBONE
from negstance.model.errors import NegstanceError
from negstance.model.options import build, build_parser, check_values, option, parse_command_line

T = TypeVar("T")
CONFIG_HELP = "a YAML file of training keys (configs/*.yaml); --key=value wins"


@dataclass
class TrainConfig:
    """Everything a training run depends on. YAML files list only what differs."""

    # Data and model
    data_path: str | list[str] = option(
        "data/seed_sentences.jsonl", help="labelled JSONL file(s): a YAML list or a,b.jsonl"
    )
    output_dir: str = option("runs/default", help="where the checkpoint goes", run_only=True)
    model_name_or_path: str = option(DEFAULT_BACKBONE, help="backbone: packaged id or local path")
    head: str = option("mean", help="mean pooling + linear, or cls", choices=("mean", "cls"))
    max_length: int = option(128, help="tokens per sentence (longer: truncated)", minimum=1)
    exclude_ambiguous: bool = option(False, help="drop sentences marked ambiguous")
    validation_docs: list[str] = option([], help="documents held out for per-epoch validation")
    evaluation_report: str = option(
        "reports/evaluation/report.json", help="report quoted in the model card", run_only=True
    )

    # Optimisation
    num_train_epochs: int = option(10, help="passes over the training sentences", minimum=1)
    per_device_train_batch_size: int = option(16, help="sentences per step and process", minimum=1)
    per_device_eval_batch_size: int = option(64, help="sentences per probe batch", minimum=1)
    gradient_accumulation_steps: int = option(1, help="steps per optimiser update", minimum=1)
    learning_rate: float = option(5e-5, help="peak AdamW learning rate (warm-up, linear decay)")
    weight_decay: float = option(0.01, help="AdamW weight decay (not on biases and LayerNorm)")
    warmup_ratio: float = option(0.1, help="share of updates spent warming up")
    max_grad_norm: float = option(1.0, help="gradient clipping; 0 turns it off")
    classifier_dropout: float = option(0.1, help="dropout before the classification layer")
    class_weighting: str = option(
        "none", help="balanced: inverse label frequency", choices=("none", "balanced")
    )
    head_init: str = option(
        "random", help="linear_probe: LP-FT", choices=("random", "linear_probe")
    )
    head_refit: bool = option(False, help="refit the head on the fine-tuned vectors")

    # Run
    seed: int = option(42, help="seeds Python, NumPy, torch and the data order")
    mixed_precision: str = option(
        "auto", help="auto: bf16 where native", choices=("auto", "no", "bf16", "fp16")
    )
    no_progress: bool = option(False, help="hide the progress bar", run_only=True)
    overwrite: bool = option(False, help="replace an existing output_dir", run_only=True)
    save_state_steps: int = option(
        0,
        help="save the training state in <output_dir>.state/ every N optimiser updates, for "
        "resume_from (0: only when interrupted by Ctrl-C or SIGTERM)",
        minimum=0,
        run_only=True,
    )
    resume_from: str = option(
        "", help="continue an interrupted run from its <output_dir>.state/", run_only=True
    )

    def __post_init__(self) -> None:
        self.validate()  # a TrainConfig that exists is one a run can use

    def validate(self) -> TrainConfig:
        """Refuse values no run could use (one line naming the key); returns ``self``."""
        check_values(self)  # the minimum and choices declared on the fields
        ranges = {  # name: (within range, the range)
            "seed": (0 <= self.seed < 2**32, "[0, 2**32)"),  # numpy's seed range
            "learning_rate": (0 < self.learning_rate < math.inf, "(0, inf)"),
            "warmup_ratio": (0 <= self.warmup_ratio < 1, "[0, 1)"),
            "classifier_dropout": (0 <= self.classifier_dropout < 1, "[0, 1)"),
            "weight_decay": (0 <= self.weight_decay < math.inf, "[0, inf)"),
            "max_grad_norm": (0 <= self.max_grad_norm < math.inf, "[0, inf)"),
        }
        for name, (within, bounds) in ranges.items():
            if not within:
                raise NegstanceError(
                    f"config: {name} must be in {bounds}, got {getattr(self, name)}"
                )
        if self.head != "mean" and (self.head_init == "linear_probe" or self.head_refit):
            # Said before any loading: the probe is fitted on the mean-pooled vectors.
            raise NegstanceError("config: head_init=linear_probe and head_refit need head=mean")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def config_diff(
    first: Mapping[str, Any], second: Mapping[str, Any], ignore: Iterable[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """``{key: (first value, second value)}`` for the keys that change the trained weights.

    A key missing on one side (a config saved before the key existed) counts as
    its default; keys of neither ``TrainConfig`` nor the other side are skipped.

    Example:
        >>> config_diff({"learning_rate": 2e-5, "output_dir": "a"}, {"output_dir": "b"})
        {'learning_rate': (2e-05, 5e-05)}
    """
    defaults = dataclasses.asdict(TrainConfig())
    skipped = set(ignore) | {
        item.name for item in dataclasses.fields(TrainConfig) if item.metadata["run_only"]
    }
    return {
        key: (first.get(key, default), second.get(key, default))
        for key, default in defaults.items()
        if key not in skipped and first.get(key, default) != second.get(key, default)
    }


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML file's mapping of config keys; a missing or broken file is one line naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except OSError as error:
        raise NegstanceError(f"cannot read config {path}: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not UTF-8 text"
        raise NegstanceError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(loaded, dict | None):
        raise NegstanceError(f"{path}: expected a mapping of config keys")
    return loaded or {}


def load_config(
    config_path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> TrainConfig:
    """Defaults, then the YAML file, then overrides (``--key=value`` strings or a dict); checked.

    Example:
        >>> load_config(None, ["--learning_rate=3e-5"]).learning_rate
        3e-05
    """
    if not isinstance(overrides, Mapping):
        overrides = parse_command_line(build_parser([TrainConfig]), overrides)
    layers = []
    if config_path is not None:
        values = read_yaml(config_path)
        if "show_progress" in values:  # the key's name before #15, in saved config.yaml files
            values.setdefault("no_progress", not values.pop("show_progress"))
        values.pop("save_state_every_epoch", None)  # before #22: the state was saved each epoch
        layers.append((values, str(config_path)))
    return build(TrainConfig, [*layers, (overrides, "command line")])


def parse_options_and_config(
    cls: type[T],
    argv: Sequence[str],
    prog: str | None = None,
    description: str = "",
    default_config: str | os.PathLike[str] | None = None,
    skip: Sequence[str] = (),
    presets: Callable[[T], Mapping[str, Any]] = lambda options: {},
) -> tuple[T, TrainConfig]:
    """A script's own options (``cls``) and a training config, from one command line.

    It takes ``cls``'s options, ``--config FILE.yaml`` (else ``default_config``) and every
    ``TrainConfig`` key but ``skip``; ``presets(options)`` sets training keys above the YAML
    and below the command line.

    Example:
        >>> options, config = parse_options_and_config(Bench, ["--repeats=2"])  # doctest: +SKIP
    """
    parser = build_parser([cls, TrainConfig], prog, description, CONFIG_HELP)
    given = parse_command_line(parser, argv)
    if not_here := sorted(set(given) & set(skip)):
        raise NegstanceError(f"--{not_here[0]} does not apply to this command (see --help)")
    config_path = given.pop("config", None) or default_config
    own = {item.name for item in dataclasses.fields(cls)}
    options = build(cls, [({k: v for k, v in given.items() if k in own}, "command line")])
    overrides = {k: v for k, v in given.items() if k not in own}
    return options, load_config(config_path, {**presets(options), **overrides})
