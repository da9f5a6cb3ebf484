"""Command-line entry point of ``negstance.train`` (``scripts/train.py`` wraps it)."""

from __future__ import annotations

import sys
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
            "(see README); --key=value overrides the YAML.\n"
            "  --overwrite              replace an existing output_dir\n"
            "  --resume_from DIR.state  continue an interrupted run from its last epoch\n"
            "  --debug                  show the traceback of an error"
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
    try:
        result = train(config)
    except KeyboardInterrupt:
        from negstance.train.training_state import state_dir_for

        state = state_dir_for(config.output_dir)
        hint = (
            f"rerun the same command with --resume_from={state}"
            if state.exists()
            else "no epoch was finished, nothing to resume"
        )
        print(f"interrupted: {hint}", file=sys.stderr)
        return 130
    if result.output_dir is not None:
        seconds = result.metrics["train_seconds"]
        print(f"checkpoint saved to {result.output_dir} ({seconds:.1f} s)")
    return 0
