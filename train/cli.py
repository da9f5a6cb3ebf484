"""Command-line entry points of ``negstance.train``: ``scripts/train.py``, ``scripts/label.py``."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence

from negstance.model.cli import (
    ArgumentParser,
    add_debug_option,
    positive_int,
    user_errors_exit_cleanly,
)
from negstance.model.errors import NegstanceError
from negstance.train.labeling import STRATEGIES, UNCERTAINTY_MEASURES


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


def label_parser() -> ArgumentParser:
    """``label.py suggest|annotate|agree|merge``: the labelling loop's subcommands."""
    parser = ArgumentParser(
        prog="label.py",
        description="Grow the labelled data: suggest sentences to label, annotate them in the "
        "terminal, measure agreement, merge into a labelled JSONL for training.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    suggest = commands.add_parser(
        "suggest",
        help="rank the sentences of new articles for labelling",
        description="Split articles into sentences, drop those already labelled (exact and near "
        "duplicates) and write the N most useful to label, best first, without model labels.",
    )
    suggest.add_argument("--model", required=True, help="checkpoint directory (from train.py)")
    suggest.add_argument(
        "--input",
        required=True,
        help="a folder of .txt articles, one .txt article, or a .jsonl/.csv with one document "
        "per record",
    )
    suggest.add_argument("--output", required=True, help="suggestions .jsonl")
    suggest.add_argument(
        "-n", "--number", type=positive_int, default=50, help="sentences to suggest (default: 50)"
    )
    suggest.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="diverse",
        help="diverse (default): among the 2N least sure, spread over the model's sentence "
        "vectors; uncertainty: the least sure first; random: for comparison",
    )
    suggest.add_argument(
        "--uncertainty",
        choices=UNCERTAINTY_MEASURES,
        default="margin",
        help="margin (default): 1 - (top - second probability); entropy",
    )
    suggest.add_argument(
        "--labelled",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="labelled data (and a dev set): their sentences, or near copies, are never "
        "suggested; .jsonl/.csv with a text field, or .txt",
    )
    suggest.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    suggest.add_argument("--text_column", default="text", help="document text field/column")
    suggest.add_argument("--encoding", default="utf-8", help="input encoding (default: utf-8)")
    suggest.add_argument("--batch_size", type=positive_int, default=32, help="default: 32")
    suggest.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    suggest.add_argument("--overwrite", action="store_true", help="replace an existing output")

    annotate = commands.add_parser(
        "annotate",
        help="label sentences in the terminal (resumable)",
        description="Label a file of sentences (suggest's output, or agree's disagreements to "
        "adjudicate). Keys: f favor, a against, n none, ? ambiguous, s skip, b back, q quit. "
        "Every answer is saved at once; the same command continues where it stopped. On a "
        "pipe, one key per line.",
    )
    annotate.add_argument("--input", required=True, help="sentences .jsonl (id, text)")
    annotate.add_argument("--output", required=True, help="answers .jsonl (created or continued)")
    annotate.add_argument("--annotator", required=True, help="your name, saved with the answers")

    agree = commands.add_parser(
        "agree",
        help="agreement of two or more annotators, and their disagreements",
        description="Cohen's kappa (two files) or Fleiss' kappa (more), raw agreement and "
        "confusion tables; the disagreements go to --output, to adjudicate with annotate.",
    )
    agree.add_argument("files", nargs="+", metavar="ANSWERS", help="annotation .jsonl files")
    agree.add_argument("--output", required=True, help="disagreements .jsonl")
    agree.add_argument(
        "--sentences",
        metavar="FILE",
        help="id and text of the sentences, for files that carry ids only (e.g. "
        "data/seed_sentences.jsonl for data/annotation/)",
    )
    agree.add_argument("--overwrite", action="store_true", help="replace an existing output")

    merge = commands.add_parser(
        "merge",
        help="annotations and adjudications into a labelled .jsonl for training",
        description="One labelled row per sentence, in the seed set's format: the adjudicated "
        "label, else the annotators' common one. Validated: labels, unique ids, no repeated "
        "texts, no (near) copy of a --dev sentence.",
    )
    merge.add_argument("files", nargs="+", metavar="ANSWERS", help="annotation .jsonl files")
    merge.add_argument("--output", required=True, help="labelled .jsonl")
    merge.add_argument(
        "--adjudicated", metavar="FILE", help="annotate's answers to agree's disagreements file"
    )
    merge.add_argument("--sentences", metavar="FILE", help="id and text, as for agree")
    merge.add_argument(
        "--dev", metavar="FILE", help="a dev set (text field): none of its sentences may be merged"
    )
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output")
    for subparser in (suggest, annotate, agree, merge):
        add_debug_option(subparser)
    return parser


@user_errors_exit_cleanly
def label_main(argv: Sequence[str] | None = None) -> int:
    """``label.py COMMAND ...``: suggest, annotate, agree or merge (see ``--help``)."""
    args = label_parser().parse_args(argv)
    command = {
        "suggest": _suggest_command,
        "annotate": _annotate_command,
        "agree": _agree_command,
        "merge": _merge_command,
    }[args.command]
    return command(args)


def _suggest_command(args: argparse.Namespace) -> int:
    from negstance.model.modeling import StanceClassifier, check_checkpoint_dir
    from negstance.train import labeling

    output = labeling.check_jsonl_output(
        args.output, args.overwrite, inputs=[args.input, *args.labelled]
    )
    check_checkpoint_dir(args.model)  # before reading: a wrong --model is said at once
    documents = labeling.read_documents(args.input, args.text_column, args.encoding)
    labelled = [text for path in args.labelled for text in labeling.read_texts(path)]
    pool = labeling.candidate_pool(labeling.sentence_rows(documents), labelled)
    if not pool.rows:
        raise NegstanceError(
            f"no sentences left to suggest: all {pool.sentences} sentences of {args.input} are "
            "already labelled or repeat one another"
        )
    classifier = StanceClassifier.from_pretrained(args.model, device=args.device)
    rows = labeling.suggest(
        classifier,
        pool,
        args.number,
        strategy=args.strategy,
        measure=args.uncertainty,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    labeling.write_jsonl(output, rows)
    print(
        f"wrote {output}: {len(rows)} sentences to label ({args.strategy}), from "
        f"{len(pool.rows)} candidates ({len(documents)} document{'s' * (len(documents) != 1)}, "
        f"{pool.sentences} sentences; "
        f"dropped {pool.already_labelled} already labelled, {pool.repeats} repeats)"
    )
    return 0


def _annotate_command(args: argparse.Namespace) -> int:
    from negstance.train.annotate import run

    try:
        run(args.input, args.output, args.annotator)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: every answer given is saved in {args.output}; "
            "run the same command to continue",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        # stdout was closed (`| head`): no sentence can be shown any more. Point it at
        # /dev/null, or Python's own flush at exit fails again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(
            f"stopped: the output was closed; every answer given is saved in {args.output}",
            file=sys.stderr,
        )
        return 141  # 128 + SIGPIPE, as the shell reports a process killed by a closed pipe
    return 0


def _agree_command(args: argparse.Namespace) -> int:
    from negstance.train import labeling

    if len(args.files) < 2:
        raise NegstanceError("agree needs two or more annotation files")
    extra = [args.sentences] if args.sentences else []
    output = labeling.check_jsonl_output(args.output, args.overwrite, [*args.files, *extra])
    files = [labeling.read_annotations(path) for path in args.files]
    sentences = labeling.read_sentences(args.sentences) if args.sentences else None
    result = labeling.agreement(files, sentences)
    labeling.write_jsonl(output, result.disagreements)
    print(labeling.render_agreement(result))
    count = len(result.disagreements)
    print(f"\n{count} disagreement{'s' * (count != 1)} written to {output}")
    if result.disagreements and any("text" not in row for row in result.disagreements):
        print("  (they carry no text: pass --sentences FILE to include it)")
    elif result.disagreements:
        print(
            f"  adjudicate them: label.py annotate --input {output} "
            "--output ADJUDICATED.jsonl --annotator NAME"
        )
    return 0


def _merge_command(args: argparse.Namespace) -> int:
    from negstance.train import labeling

    extra = [path for path in (args.adjudicated, args.sentences, args.dev) if path]
    output = labeling.check_jsonl_output(args.output, args.overwrite, [*args.files, *extra])
    files = [labeling.read_annotations(path) for path in args.files]
    adjudicated = labeling.read_annotations(args.adjudicated) if args.adjudicated else None
    sentences = labeling.read_sentences(args.sentences) if args.sentences else None
    dev_texts = labeling.read_texts(args.dev) if args.dev else ()
    merged = labeling.merge_annotations(
        files, adjudicated, sentences, dev_texts, dev_name=str(args.dev)
    )
    if not merged.rows:
        raise NegstanceError(f"nothing to merge: all {len(merged.dropped)} sentences were skipped")
    labeling.write_jsonl(output, merged.rows)
    reasons = Counter(merged.dropped.values())
    dropped = "; ".join(f"{count} {reason}" for reason, count in reasons.items())
    print(
        f"wrote {output}: {len(merged.rows)} labelled sentences "
        f"({labeling.label_counts(merged.rows)}; "
        f"{sum(row['ambiguous'] for row in merged.rows)} ambiguous; "
        f"{merged.adjudicated} adjudicated)" + (f"; dropped {dropped}" if dropped else "")
    )
    return 0
