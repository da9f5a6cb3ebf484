"""Peak memory of ``scripts/predict.py`` as the input grows: it should stay flat.

    python scripts/bench_memory.py --model runs/default --lines 10000 100000
    python scripts/bench_memory.py --lines 10000,1000000   # tiny random model: the I/O path alone
    python scripts/bench_memory.py --quick                  # seconds (smoke test)

For each size, N news-like sentences are written to a .txt file and classified
by ``scripts/predict.py`` in a fresh process; its peak resident set size (the
kernel's ``ru_maxrss`` of the child) is reported. predict.py streams the input
in chunks, so the peak should not grow with N. Without ``--model`` a tiny
random checkpoint is used: what is left is the cost of reading, batching and
writing. ``--batch_size``, ``--chunk_size``, ``--device`` and ``--precision``
are passed on to predict.py.
"""

# No `from __future__ import annotations`: the options dataclass needs real types, since
# tests load this file without registering it in sys.modules (dataclasses look it up).

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negstance.model.errors import NegstanceError
from negstance.model.io import check_writable_directory, read_records, write_text_atomic
from negstance.model.options import option, parse_options, script_main

REPO = Path(__file__).resolve().parents[1]
PASSED_TO_PREDICT = ("batch_size", "chunk_size", "device", "precision")


@dataclass
class BenchMemoryOptions:
    model: str | None = option(None, help="checkpoint directory (default: a tiny random model)")
    lines: list[str] = option(["10000", "1000000"], help="input sizes in lines, comma-separated")
    quick: bool = option(False, help="tiny model, 300 and 3000 lines")
    output: str | None = option(None, help="also write the results as JSON here")
    batch_size: str | None = option(None, help="passed on to predict.py")
    chunk_size: str | None = option(None, help="passed on to predict.py")
    device: str | None = option(None, help="passed on to predict.py")
    precision: str | None = option(None, help="passed on to predict.py")


def write_sentences(path: Path, count: int) -> None:
    """``count`` news-like lines in ``path``, written in slices so this process stays small."""
    from benchmarking import news_like_sentences

    seeds = [record.text for record in read_records(REPO / "data" / "seed_sentences.jsonl")]
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, count, 100_000):
            size = min(100_000, count - start)
            handle.write("\n".join(news_like_sentences(seeds, size, seed=start)) + "\n")


# Linux carries a process's RSS high-water mark over fork and exec, so a child of
# this process (which may have torch loaded) would report at least this one's peak.
# A bare interpreter without torch starts the measured command and reports its peak.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def peak_rss_of(command: Sequence[str]) -> tuple[int, float, list[str]]:
    """Run ``command``; its exit code, its own peak RSS in MB, and its output lines.

    Example:
        >>> peak_rss_of([sys.executable, "-c", "pass"])[:1]  # doctest: +SKIP
        (0,)
    """
    completed = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    lines = completed.stdout.decode("utf-8", "replace").strip().splitlines()
    peak_kib, exit_code = (int(value) for value in lines[-1].split())  # the launcher's line
    return exit_code, peak_kib / 1024, lines[:-1]


def measure(model: str, source: Path, output: Path, extra: Sequence[str]) -> dict[str, Any]:
    """Run predict.py on ``source`` in a fresh process: its peak RSS, wall time and summary."""
    command = [sys.executable, str(REPO / "scripts" / "predict.py"), "--model", model]
    command += ["--input", str(source), "--output", str(output), "--overwrite", "--no_progress"]
    started = time.perf_counter()
    exit_code, peak_mb, messages = peak_rss_of([*command, *extra])
    seconds = time.perf_counter() - started
    last = messages[-1] if messages else ""  # predict.py's summary, or its one-line error
    if exit_code != 0:
        raise NegstanceError(f"predict.py failed (exit {exit_code}): {last}")
    with output.open("rb") as handle:
        rows = sum(1 for _ in handle)
    return {"lines": rows, "peak_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 2)} | {
        "summary": last
    }


@script_main
def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print predict.py's peak RSS for each ``--lines`` size; 0 on success."""
    args = parse_options(
        BenchMemoryOptions, argv, prog="bench_memory.py", description=__doc__.split("\n\n")[0]
    )
    if not all(value.isdigit() and int(value) > 0 for value in args.lines):
        raise NegstanceError(f"--lines must be positive integers, got {','.join(args.lines)!r}")
    sizes = [300, 3000] if args.quick else [int(value) for value in args.lines]
    extra = [f"--{name}={getattr(args, name)}" for name in PASSED_TO_PREDICT if getattr(args, name)]
    if args.output:  # checked now, not after minutes of classifying
        check_writable_directory(Path(args.output).resolve().parent, "--output")
    from benchmarking import build_tiny_checkpoint

    results = []
    with tempfile.TemporaryDirectory(prefix="negstance-bench-memory-") as scratch:
        model = args.model or str(build_tiny_checkpoint(Path(scratch) / "tiny"))
        for count in sizes:
            source = Path(scratch) / f"sentences-{count}.txt"
            write_sentences(source, count)
            result = measure(model, source, Path(scratch) / "out.jsonl", extra)
            if result["lines"] != count:
                raise NegstanceError(f"predict.py wrote {result['lines']} rows for {count} lines")
            results.append(result)
            print(f"{count:>9} lines: peak RSS {result['peak_rss_mb']:.0f} MB, "
                  f"{result['seconds']:.1f} s ({result['summary']})", flush=True)  # fmt: skip
            source.unlink()
    report = {"model": args.model or "tiny random model", "extra_arguments": extra}
    if args.output:
        write_text_atomic(args.output, json.dumps(report | {"results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
