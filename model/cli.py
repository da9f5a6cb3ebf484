"""Command-line entry points of ``negstance.model`` (``scripts/predict.py`` wraps these)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence

from negstance.model.errors import NegstanceError

EXIT_USER_ERROR = 2


def user_errors_exit_cleanly(
    main: Callable[[Sequence[str] | None], int],
) -> Callable[[Sequence[str] | None], int]:
    """Turn ``NegstanceError`` into ``error: <message>`` on stderr and exit status 2.

    ``--debug`` anywhere in argv keeps the traceback, for bug reports.
    """

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        arguments = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in arguments
        try:
            return main([argument for argument in arguments if argument != "--debug"])
        except NegstanceError as error:
            if debug:
                raise
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            if debug:
                raise
            print(
                "interrupted: partial output kept; rerun with --resume to continue", file=sys.stderr
            )
            return 130

    return wrapper


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise NegstanceError(f"{message} (see --help)")


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def predict_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="predict.py",
        description="Classify the stance toward negotiation of every sentence in a file.",
    )
    parser.add_argument("--model", required=True, help="checkpoint directory (from train.py)")
    parser.add_argument("--input", required=True, help="input .txt, .jsonl or .csv")
    parser.add_argument("--output", required=True, help="output .jsonl or .csv")
    parser.add_argument("--text_column", default="text", help="text field/column (default: text)")
    parser.add_argument("--encoding", default="utf-8", help="input encoding (default: utf-8)")
    parser.add_argument(
        "--batch_size",
        type=positive_int,
        default=None,
        help="sentences per forward pass (default: 32 on CPU, 256 on GPU)",
    )
    parser.add_argument(
        "--chunk_size",
        type=positive_int,
        default=4096,
        help="records read, sorted and written at a time (default: 4096)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8"],
        help="auto (default): bf16 where the hardware runs it natively (CUDA, CPUs with "
        "AVX-512 BF16 or AMX), else fp32; int8: dynamic quantisation, CPU only, fastest, "
        "slightly less exact",
    )
    parser.add_argument(
        "--documents",
        action="store_true",
        help="each record is a whole article: split, classify, summarise",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its .partial file"
    )
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    add_debug_option(parser)
    return parser


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """List ``--debug`` in ``--help``; ``user_errors_exit_cleanly`` takes it out of argv."""
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (for bug reports)"
    )


@user_errors_exit_cleanly
def predict_main(argv: Sequence[str] | None = None) -> int:
    """``predict.py --model DIR --input FILE --output FILE [options]``."""
    args = predict_parser().parse_args(argv)
    from negstance.model.io import check_input_file, check_output_path

    # Path mistakes are reported before the model spends seconds loading.
    check_input_file(args.input)
    check_output_path(
        args.output, overwrite=args.overwrite, resume=args.resume, input_path=args.input
    )
    from negstance.model.modeling import StanceClassifier
    from negstance.model.predict import predict_file

    accelerator = None
    world_size = os.environ.get("WORLD_SIZE", "1")
    if not world_size.isdigit():
        raise NegstanceError(f"WORLD_SIZE must be a process count, got {world_size!r}")
    if int(world_size) > 1:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        # Launched by `accelerate launch`: one process per device, each its shard.
        # PartialState reads no ACCELERATE_USE_CPU: without cpu=True a CPU-only
        # launch would leave every process thinking it is alone.
        use_cpu = (
            parse_flag_from_env("ACCELERATE_USE_CPU")
            or args.device == "cpu"
            or not _cuda_available()
        )
        accelerator = PartialState(cpu=use_cpu)
        device = accelerator.device if args.device == "auto" else args.device
    else:
        device = args.device
    classifier = StanceClassifier.from_pretrained(
        args.model, device=device, precision=args.precision
    )
    batch_size = args.batch_size or (256 if classifier.device.type == "cuda" else 32)
    summary = predict_file(
        classifier,
        args.input,
        args.output,
        text_field=args.text_column,
        encoding=args.encoding,
        batch_size=batch_size,
        chunk_size=args.chunk_size,
        documents=args.documents,
        overwrite=args.overwrite,
        resume=args.resume,
        accelerator=accelerator,
        show_progress=not args.no_progress,
    )
    if accelerator is None or accelerator.is_main_process:
        where = f"{classifier.precision} on {classifier.device}"
        if accelerator is not None:
            where += f" x {accelerator.num_processes} processes"
        print(f"wrote {summary.output}: {summary.describe()} ({where})")
    return 0


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
