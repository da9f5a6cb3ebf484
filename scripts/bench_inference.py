"""Inference throughput: negstance at each precision against the transformers pipeline.

    python scripts/bench_inference.py                      # MiniLM + random head, 2000 sentences
    python scripts/bench_inference.py --model runs/default --output reports/inference.md
    python scripts/bench_inference.py --quick              # tiny model, seconds (smoke test)

Targets (2 CPU cores, MiniLM): the default precision at least 3x the pipeline
with at least 99.5% label agreement with fp32; the fastest opt-in mode at least
5x. They are checked and printed here, never in the test suite.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from negstance.model.benchmark import (
    BenchReport,
    build_tiny_checkpoint,
    build_untrained_checkpoint,
    news_like_sentences,
    run_benchmark,
)
from negstance.model.cli import ArgumentParser, positive_int, user_errors_exit_cleanly
from negstance.model.errors import NegstanceError
from negstance.model.io import check_writable_directory, read_records, write_text_atomic
from negstance.model.modeling import PRECISIONS

SEED_SENTENCES = Path(__file__).resolve().parents[1] / "data" / "seed_sentences.jsonl"
DEFAULT_TARGET = 3.0
FASTEST_TARGET = 5.0
AGREEMENT_TARGET = 0.995


def parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="bench_inference.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help="checkpoint directory (default: the packaged MiniLM with a random head, "
        "built in a temporary directory; its speed is the trained model's)",
    )
    parser.add_argument("--sentences", type=positive_int, default=2000)
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed rounds per method")
    parser.add_argument("--batch_size", type=positive_int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument(
        "--precisions", default="fp32,bf16,int8,auto", help="comma-separated (default: all)"
    )
    parser.add_argument(
        "--emulated_bf16_sentences",
        type=positive_int,
        default=128,
        help="bf16 without native CPU support is slow: time it on this many sentences",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads for every method (default: torch's, one per core)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sentence sampling seed")
    parser.add_argument("--quick", action="store_true", help="tiny model, 64 sentences, 1 round")
    parser.add_argument("--output", help="also write the results: .json or .md")
    return parser


def check_targets(report: BenchReport) -> list[str]:
    """One line per target: met or not, with the numbers."""
    by_key = {(row.method, row.precision): row for row in report.rows}
    default = by_key.get(("negstance", "auto"))
    negstance = [row for row in report.rows if row.method == "negstance"]
    lines = []
    if default is not None:
        met = (
            default.ratio_to_pipeline >= DEFAULT_TARGET
            and default.agreement_with_fp32 >= AGREEMENT_TARGET
        )
        lines.append(
            f"default precision ({default.note}): {default.ratio_to_pipeline:.2f}x pipeline, "
            f"{default.agreement_with_fp32:.2%} agreement -> target >= {DEFAULT_TARGET:.0f}x "
            f"and >= {AGREEMENT_TARGET:.1%}: {'met' if met else 'NOT met'}"
        )
    if negstance:
        fastest = max(negstance, key=lambda row: row.sentences_per_second)
        lines.append(
            f"fastest mode ({fastest.precision}): {fastest.ratio_to_pipeline:.2f}x pipeline, "
            f"{fastest.agreement_with_fp32:.2%} agreement -> target >= {FASTEST_TARGET:.0f}x: "
            f"{'met' if fastest.ratio_to_pipeline >= FASTEST_TARGET else 'NOT met'}"
        )
    return lines


@user_errors_exit_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    count, repeats = (64, 1) if args.quick else (args.sentences, args.repeats)
    seeds = [record.text for record in read_records(SEED_SENTENCES)]
    texts = news_like_sentences(seeds, count, seed=args.seed)
    precisions = [name.strip() for name in args.precisions.split(",") if name.strip()]
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or not precisions:
        raise NegstanceError(
            f"--precisions: precision must be one of {', '.join(PRECISIONS)}, not {unknown}"
        )
    if args.output:
        # Checked now, not after minutes of timing.
        if Path(args.output).suffix not in (".json", ".md"):
            raise NegstanceError(f"--output must end in .json or .md, not {args.output!r}")
        check_writable_directory(Path(args.output).resolve().parent, "--output")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="negstance-bench-model-") as scratch:
        model_dir = args.model
        if model_dir is None:
            build = build_tiny_checkpoint if args.quick else build_untrained_checkpoint
            model_dir = build(Path(scratch) / "checkpoint")
        report = run_benchmark(
            model_dir,
            texts,
            precisions=precisions,
            batch_size=args.batch_size,
            repeats=repeats,
            device=args.device,
            emulated_bf16_sentences=args.emulated_bf16_sentences,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    report.command = shlex.join(["python", "scripts/bench_inference.py", *(argv or sys.argv[1:])])
    if args.model is None:
        report.model = "tiny random model (--quick)" if args.quick else "MiniLM + random head"
    markdown = report.to_markdown()
    targets = check_targets(report)
    print(markdown)
    print("\n".join(targets))
    if args.output:
        text = report.to_json() if args.output.endswith(".json") else markdown
        if not args.output.endswith(".json"):
            text += "\n" + "\n".join(f"- {line}" for line in targets) + "\n"
        write_text_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
