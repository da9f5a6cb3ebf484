"""``predict.py`` (console command ``negstance-predict``): classify every sentence of a file.

Options are parsed, and paths checked, before torch is imported: ``--help`` and
mistakes answer at once, not after the model has loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from negstance.model.errors import NegstanceError
from negstance.model.options import option, parse_options, script_main


@dataclass
class CheckpointOnFileOptions:
    """The options of every command that runs a checkpoint over an input file."""

    model: str = option(help="checkpoint directory (from train.py)")
    input: str = option(
        help="input .txt (a sentence or document per line), .jsonl/.json/.ndjson (one JSON "
        "object per line) or .csv/.tsv (a header row)"
    )
    output: str = option(help="output .jsonl, .csv or .tsv, written whole or not at all")
    text_column: str = option("text", help="text field of a .jsonl, column of a .csv")
    encoding: str = option("utf-8", help="input encoding (e.g. latin-1, utf-16)")
    device: str = option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    overwrite: bool = option(False, help="replace an existing output")


@dataclass
class PredictOptions(CheckpointOnFileOptions):
    batch_size: int | None = option(
        None, help="sentences per forward pass (default: 32 on a CPU, 256 on a GPU)", minimum=1
    )
    chunk_size: int = option(4096, help="records read, sorted and written at a time", minimum=1)
    precision: str = option(
        "auto",
        help="auto: bf16 where the hardware runs it natively, else fp32; int8: CPU dynamic "
        "quantisation, faster, less exact (unusable on mpnet)",
        choices=("auto", "fp32", "bf16", "int8"),
    )
    documents: bool = option(
        False, help="each record is a whole article: split it, classify, summarise"
    )
    resume: bool = option(False, help="continue an interrupted run from its .partial file")
    no_progress: bool = option(False, help="hide the progress bar")


@script_main(interrupted="partial output kept; rerun with --resume to continue")
def predict_main(argv: Sequence[str] | None = None) -> int:
    """``predict.py --model DIR --input FILE --output FILE [options]``."""
    args = parse_options(
        PredictOptions,
        argv,
        description="Classify the stance toward negotiation of every sentence in a file.",
    )
    from negstance.model.io import check_input_file, check_output_path

    # Path mistakes are reported before the model spends seconds loading.
    check_input_file(args.input)
    check_output_path(
        args.output, overwrite=args.overwrite, resume=args.resume, input_path=args.input
    )
    import torch

    from negstance.model.classifier import StanceClassifier
    from negstance.model.predict import predict_file

    accelerator = None
    world_size = os.environ.get("WORLD_SIZE", "1")
    if not world_size.isdigit():
        raise NegstanceError(f"WORLD_SIZE must be a process count, got {world_size!r}")
    device = args.device
    if int(world_size) > 1:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        # Launched by `accelerate launch`: one process per device, each its shard.
        # PartialState reads no ACCELERATE_USE_CPU: without cpu=True a CPU-only
        # launch would leave every process thinking it is alone.
        use_cpu = (
            parse_flag_from_env("ACCELERATE_USE_CPU")
            or args.device == "cpu"
            or not torch.cuda.is_available()
        )
        accelerator = PartialState(cpu=use_cpu)
        device = accelerator.device if args.device == "auto" else args.device
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
