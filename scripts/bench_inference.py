"""Inference throughput: negstance at each precision against the transformers pipeline.

    python scripts/bench_inference.py                      # MiniLM + random head, 2000 sentences
    python scripts/bench_inference.py --model runs/default --output reports/inference.md
    python scripts/bench_inference.py --quick              # tiny model, seconds (smoke test)

Targets (2 CPU cores, MiniLM): the default precision at least 3x the pipeline
with at least 99.5% label agreement with fp32; the fastest opt-in mode at least
5x. They are checked and printed here, never in the test suite.
"""

# No `from __future__ import annotations`: the options dataclass needs real types, since
# tests load this file without registering it in sys.modules (dataclasses look it up).

import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negstance.model.errors import NegstanceError
from negstance.model.io import check_writable_directory, read_records, write_text_atomic
from negstance.model.options import option, parse_options, script_main

SEED_SENTENCES = Path(__file__).resolve().parents[1] / "data" / "seed_sentences.jsonl"
DEFAULT_TARGET, FASTEST_TARGET, AGREEMENT_TARGET = 3.0, 5.0, 0.995
# negstance.model.classifier.PRECISIONS, which imports torch: checked before it loads.
PRECISIONS = ("auto", "fp32", "bf16", "int8")


@dataclass
class BenchInferenceOptions:
    model: str | None = option(
        None,
        help="checkpoint directory (default: the packaged MiniLM with a random head, "
        "built in a temporary directory; its speed is the trained model's)",
    )
    sentences: int = option(2000, help="news-like sentences to classify", minimum=1)
    repeats: int = option(3, help="timed rounds per method", minimum=1)
    batch_size: int = option(32, help="sentences per forward pass", minimum=1)
    device: str = option("cpu", help="cpu, cuda or auto")
    precisions: list[str] = option(
        ["fp32", "bf16", "int8", "auto"], help="negstance precisions to time, comma-separated"
    )
    emulated_bf16_sentences: int = option(
        128, help="bf16 without native CPU support is slow: time it on this many", minimum=1
    )
    threads: int | None = option(None, help="torch threads (default: one per core)", minimum=1)
    seed: int = option(0, help="sentence sampling seed")
    quick: bool = option(False, help="tiny model, 64 sentences, 1 round, a small peak measure")
    output: str | None = option(None, help="also write the results: .json or .md")


def run_benchmark(*args: Any, **kwargs: Any) -> Any:
    """``benchmarking.run_benchmark``, imported on first use: torch loads after parsing."""
    from benchmarking import run_benchmark

    return run_benchmark(*args, **kwargs)


def check_targets(rows: list[Any]) -> list[str]:
    """One line per target: met or not, with the numbers."""
    negstance = [row for row in rows if row.method == "negstance"]
    lines = []
    for row in negstance:
        if row.precision == "auto":
            met = row.ratio_to_pipeline >= DEFAULT_TARGET
            met = met and row.agreement_with_fp32 >= AGREEMENT_TARGET
            lines.append(
                f"default precision ({row.note}): {row.ratio_to_pipeline:.2f}x pipeline, "
                f"{row.agreement_with_fp32:.2%} agreement -> target >= {DEFAULT_TARGET:.0f}x "
                f"and >= {AGREEMENT_TARGET:.1%}: {'met' if met else 'NOT met'}"
            )
    if negstance:
        fastest = max(negstance, key=lambda row: row.sentences_per_second)
        met = fastest.ratio_to_pipeline >= FASTEST_TARGET
        lines.append(
            f"fastest mode ({fastest.precision}): {fastest.ratio_to_pipeline:.2f}x pipeline, "
            f"{fastest.agreement_with_fp32:.2%} agreement -> target >= {FASTEST_TARGET:.0f}x: "
            f"{'met' if met else 'NOT met'}"
        )
    return lines


@script_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(
        BenchInferenceOptions, argv, prog="bench_inference.py", description=__doc__.split("\n\n")[0]
    )
    unknown = sorted(set(args.precisions) - set(PRECISIONS))
    if unknown or not args.precisions:
        raise NegstanceError(f"--precisions: each one of {', '.join(PRECISIONS)}, not {unknown}")
    if args.output:  # checked now, not after minutes of timing
        if Path(args.output).suffix not in (".json", ".md"):
            raise NegstanceError(f"--output must end in .json or .md, not {args.output!r}")
        check_writable_directory(Path(args.output).resolve().parent, "--output")
    import torch
    from benchmarking import build_tiny_checkpoint, build_untrained_checkpoint, news_like_sentences

    seeds = [record.text for record in read_records(SEED_SENTENCES)]
    texts = news_like_sentences(seeds, 64 if args.quick else args.sentences, seed=args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="negstance-bench-model-") as scratch:
        build = build_tiny_checkpoint if args.quick else build_untrained_checkpoint
        report = run_benchmark(
            args.model or build(Path(scratch) / "checkpoint"),
            texts,
            precisions=args.precisions,
            batch_size=args.batch_size,
            repeats=1 if args.quick else args.repeats,
            device=args.device,
            emulated_bf16_sentences=args.emulated_bf16_sentences,
            peak_size=256 if args.quick else 2048,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    report.command = shlex.join(["python", "scripts/bench_inference.py", *(argv or sys.argv[1:])])
    if args.model is None:
        report.model = "tiny random model (--quick)" if args.quick else "MiniLM + random head"
    markdown, targets = report.to_markdown(), check_targets(report.rows)
    print(markdown + "\n".join(targets))
    if args.output:
        targets_text = "".join(f"- {line}\n" for line in targets)
        json_output = args.output.endswith(".json")
        write_text_atomic(
            args.output, report.to_json() if json_output else f"{markdown}\n{targets_text}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
