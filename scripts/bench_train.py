"""Time the full default training run: ``python scripts/bench_train.py [--repeats N]``.

Budget: the default training (``configs/default.yaml``: all-mpnet-base-v2, seed
set, 5 epochs, head refit) takes at most 3 minutes of wall time on a 2-core CPU;
``--config configs/minilm.yaml`` times the fast option. Each repeat
trains into a temporary directory; only the ``train()`` call is timed (the
imports before it are not). Extra ``--key=value`` arguments override the config.
"""

# No `from __future__ import annotations`: the options dataclass needs real types, since
# tests load this file without registering it in sys.modules (dataclasses look it up).

import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from negstance.model.options import option, script_main
from negstance.train.config import parse_options_and_config

BUDGET_SECONDS = 180.0
REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "default.yaml"


@dataclass
class BenchTrainOptions:
    repeats: int = option(1, help="timed training runs; the best is reported", minimum=1)


@script_main
def main(argv: Sequence[str] | None = None) -> int:
    # Mistakes in the options or the config are reported here, before torch loads.
    args, config = parse_options_and_config(
        BenchTrainOptions,
        list(argv or []),
        prog="bench_train.py",
        description=__doc__.split("\n\n")[0] + " --config defaults to configs/default.yaml.",
        default_config=DEFAULT_CONFIG,
    )

    import torch

    from negstance.train import train

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
        f"CUDA {'yes' if torch.cuda.is_available() else 'no'}, load average {load} "
        "(other work on the machine slows the run down)"
    )
    timings = []
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="bench_train_") as scratch:
            run = dataclasses.replace(
                config, output_dir=str(Path(scratch) / "run"), no_progress=True
            )
            started = time.perf_counter()
            result = train(run)
            seconds = time.perf_counter() - started
        sentences = result.metrics["train_sentences"] * config.num_train_epochs
        timings.append(seconds)
        print(
            f"repeat {repeat}: {seconds:.1f} s wall for train() ({config.num_train_epochs} epochs "
            f"x {result.metrics['train_sentences']} sentences = {sentences / seconds:.1f} "
            f"sentences/s), final train loss {result.metrics['final_train_loss']:.4f}"
        )
    best = min(timings)
    verdict = "met" if best <= BUDGET_SECONDS else "NOT met"
    print(
        f"best of {len(timings)}: {best:.1f} s; budget <= {BUDGET_SECONDS:.0f} s on a 2-core "
        f"CPU: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
