"""Command-line entry point of ``negstance.train`` (``scripts/train.py`` wraps it)."""

from __future__ import annotations

from collections.abc import Sequence

from negstance.model.cli import user_errors_exit_cleanly


@user_errors_exit_cleanly
def train_main(argv: Sequence[str] | None = None) -> int:
    """``train.py [--config FILE.yaml] [--key=value ...]``; prints where the checkpoint went."""
    from negstance.model.errors import NegstanceError
    from negstance.train.config import load_config
    from negstance.train.training import train

    arguments = list(argv or [])
    if any(argument in ("-h", "--help") for argument in arguments):
        print(
            "usage: train.py [--config FILE.yaml] [--key=value ...]\n"
            "Fine-tune the stance classifier. Keys: the fields of negstance.train.TrainConfig "
            "(see README); --key=value overrides the YAML."
        )
        return 0
    config_path = None
    overrides = []
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument == "--config":
            if index + 1 >= len(arguments):
                raise NegstanceError("--config needs a file")
            config_path = arguments[index + 1]
            index += 2
            continue
        if argument.startswith("--config="):
            config_path = argument.split("=", 1)[1]
        else:
            overrides.append(argument)
        index += 1
    config = load_config(config_path, overrides)
    result = train(config)
    if result.output_dir is not None:
        seconds = result.metrics["train_seconds"]
        print(f"checkpoint saved to {result.output_dir} ({seconds:.1f} s)")
    return 0
