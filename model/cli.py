"""``predict.py`` (console command ``negstance-predict``): classify every sentence of a file.
Options and paths are checked before torch loads, so mistakes answer at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from negstance.model.options import option, parse_options, script_main


@dataclass
class CheckpointOnFileOptions:
    """The options of every command that runs a checkpoint over an input file."""

    model: str = option(help="checkpoint directory (from train.py)")
    input: str = option(help="input .txt (a record a line), .jsonl (an object a line), .csv/.tsv")
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
        "auto", choices=("auto", "fp32", "bf16", "int8"), help="auto: bf16 where native; int8: CPU"
    )
    documents: bool = option(False, help="a record is an article: split, classify, summarise")
    resume: bool = option(False, help="continue an interrupted run from its .partial file")
    no_progress: bool = option(False, help="hide the progress bar")


@script_main
def predict_main(argv: Sequence[str] | None = None) -> int:
    """``predict.py --model DIR --input FILE --output FILE [options]``; Ctrl-C or SIGTERM
    stops after the current batch, keeping every finished row for ``--resume`` (exit 130)."""
    args = parse_options(PredictOptions, argv, description="Classify the stance of a file.")
    from negstance.model.io import check_input_file, check_output_path

    check_input_file(args.input)  # before the model spends seconds loading
    check_output_path(args.output, args.overwrite, args.resume, args.input)
    import torch

    from negstance.model.classifier import StanceClassifier
    from negstance.model.predict import PredictionInterrupted, predict_file

    accelerator, device = None, args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under `accelerate launch`: shard the input
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        # PartialState reads no ACCELERATE_USE_CPU: without cpu=True, CPU processes would not shard.
        cpu = args.device == "cpu" or not torch.cuda.is_available()
        accelerator = PartialState(cpu=cpu or parse_flag_from_env("ACCELERATE_USE_CPU"))
        device = accelerator.device if args.device == "auto" else args.device
    classifier = StanceClassifier.from_pretrained(args.model, device, args.precision)
    main = accelerator is None or accelerator.is_main_process
    try:
        summary = predict_file(
            classifier,
            args.input,
            args.output,
            text_field=args.text_column,
            encoding=args.encoding,
            batch_size=args.batch_size or (256 if classifier.device.type == "cuda" else 32),
            chunk_size=args.chunk_size,
            documents=args.documents,
            overwrite=args.overwrite,
            resume=args.resume,
            accelerator=accelerator,
            show_progress=not args.no_progress,
        )
    except PredictionInterrupted as stopped:
        if main:
            print(f"interrupted: {stopped}; rerun with --resume to continue", file=sys.stderr)
        return 130
    if main:
        where = f"{classifier.precision} on {classifier.device}"
        where += f" x {accelerator.num_processes} processes" if accelerator else ""
        print(f"wrote {summary.output}: {summary.describe()} ({where})")
    return 0
