"""The ``main`` of ``train.py``, ``evaluate.py`` and ``label.py`` (and their console commands);
heavy modules are imported after the options are parsed, so ``--help`` answers at once."""

from __future__ import annotations

import os
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negstance.model.cli import CheckpointOnFileOptions
from negstance.model.errors import NegstanceError
from negstance.model.options import (
    build_parser,
    option,
    parse_command_line,
    parse_subcommand,
    script_main,
)
from negstance.train.config import (
    CONFIG_HELP,
    TrainConfig,
    load_config,
    parse_options_and_config,
)
from negstance.train.suggest import STRATEGIES, UNCERTAINTY_MEASURES

# Training keys that mean nothing in an evaluation: no model is saved, every run starts fresh.
NOT_FOR_EVALUATION = ("overwrite", "resume_from", "save_state_steps", "evaluation_report")
DEFAULT_REPORT_DIR = "reports/evaluation"
# A smoke test must never overwrite the real report that model cards quote.
QUICK_REPORT_DIR = "runs/evaluation-quick"


@script_main
def train_main(argv: Sequence[str] | None = None) -> int:
    """``train.py [--config FILE.yaml] [--key=value ...]``; prints where the checkpoint went."""
    parser = build_parser([TrainConfig], None, "Fine-tune the stance classifier.", CONFIG_HELP)
    given = parse_command_line(parser, argv or [])
    config = load_config(given.pop("config", None), given)
    from negstance.train.training import state_dir_for, train

    try:
        result = train(config)
    except KeyboardInterrupt:
        state = state_dir_for(config.output_dir)
        hint = f"rerun the same command with --resume_from={state}"
        if os.environ.get("RANK", "0") == "0":  # under accelerate launch, one line in all
            print(f"interrupted: {hint if state.exists() else 'no state saved'}", file=sys.stderr)
        return 130
    if result.output_dir is not None:
        seconds = result.metrics["train_seconds"]
        print(f"checkpoint saved to {result.output_dir} ({seconds:.1f} s)")
    return 0


@dataclass
class EvaluateOptions:
    seeds: int | None = option(None, help="seeds per fold (default: 3; --quick: 1)", minimum=1)
    max_folds: int | None = option(
        None,
        help="evaluate only the first N articles as test folds (default: all; --quick: 2)",
        minimum=1,
    )
    output_dir: str | None = option(
        None,
        help=f"where the report goes (default: {DEFAULT_REPORT_DIR}; --quick: "
        f"{QUICK_REPORT_DIR}); no model is saved",
    )
    device: str = option("auto", help="prediction device: auto, cpu, cuda or cuda:N")
    quick: bool = option(
        False, help="smoke test: 1 seed, 2 folds, 1 epoch (explicit options still win)"
    )
    threads: int | None = option(
        None,
        help="CPU threads for torch and BLAS (default: as configured); on a busy machine 1 "
        "avoids oversubscription",
        minimum=1,
    )
    bootstrap_resamples: int | None = option(
        None, help="resamples of the sentence bootstrap (default: 1000; --quick: 100)", minimum=1
    )
    setfit_iterations: int | None = option(
        None,
        help="SetFit's num_iterations (default: its slow pair oversampling; --quick: 1); "
        "only where setfit is installed",
        minimum=1,
    )
    no_setfit: bool = option(
        False, help="leave the SetFit baseline out even where setfit is installed (hours on a CPU)"
    )
    dev_path: list[str] = option(
        ["data/realnews/dev.jsonl", "data/dev/dev.jsonl"],
        help="external dev sets, each scored after training on the whole seed set; '' leaves "
        "them out",
    )
    no_cv: bool = option(
        False, help="skip leave-one-article-out cross-validation: the dev sets only"
    )


@script_main
def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``evaluate.py --config FILE [--seeds N] [--output_dir DIR] [--quick] [--key=value ...]``."""
    arguments = list(argv or [])
    args, config = parse_options_and_config(
        EvaluateOptions,
        arguments,
        description="Score the stance classifier and its baselines on the external dev sets "
        "(trained on the whole seed set) and in leave-one-article-out cross-validation. The "
        "training keys set the model's config, as in train.py.",
        skip=NOT_FOR_EVALUATION,
        presets=lambda options: {"num_train_epochs": "1"} if options.quick else {},
    )
    output_dir = args.output_dir or (QUICK_REPORT_DIR if args.quick else DEFAULT_REPORT_DIR)
    from negstance.model.io import check_writable_directory

    # Checked now, not after an hour of cross-validation.
    check_writable_directory(Path(output_dir), "--output_dir", create=True)
    from negstance.train.evaluation import cpu_threads, cross_validate
    from negstance.train.report import MODEL, systems_table, write_report

    seeds_count = args.seeds or (1 if args.quick else 3)
    with cpu_threads(args.threads):
        report = cross_validate(
            config,
            seeds=[config.seed + offset for offset in range(seeds_count)],
            max_folds=args.max_folds or (2 if args.quick else None),
            device=args.device,
            show_progress=not config.no_progress,
            bootstrap_resamples=args.bootstrap_resamples or (100 if args.quick else 1000),
            setfit_iterations=args.setfit_iterations or (1 if args.quick else None),
            include_setfit=not args.no_setfit,
            dev_paths=args.dev_path,
            run_cv=not args.no_cv,
        )
    command = shlex.join(["python", "scripts/evaluate.py", *arguments])
    paths = write_report(report, output_dir, command)
    for part in report.get("dev", []):
        print(f"dev set {part['data']['path']}:\n" + systems_table(part, dev=True))
    if MODEL in report.get("systems", {}):
        print("leave-one-article-out CV:\n" + systems_table(report))
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


@dataclass
class SuggestOptions(CheckpointOnFileOptions):
    input: str = option(help="folder of .txt articles, or a .txt/.jsonl/.csv of a document a line")
    output: str = option(help="suggestions .jsonl")
    number: int = option(50, help="sentences to suggest", minimum=1, short="-n")
    strategy: str = option(
        "diverse",
        help="diverse: the 2N least sure, spread out; uncertainty: the least sure; random",
        choices=STRATEGIES,
    )
    uncertainty: str = option("margin", help="margin or entropy", choices=UNCERTAINTY_MEASURES)
    labelled: list[str] = option(
        [], help="labelled/dev .jsonl (a,b): their near copies are skipped"
    )
    seed: int = option(0, help="seed of --strategy random")
    batch_size: int = option(32, help="sentences per forward pass", minimum=1)


@dataclass
class AnnotateOptions:
    input: str = option(help="sentences .jsonl (id, text)")
    output: str = option(help="answers .jsonl (created or continued)")
    annotator: str = option(help="your name, saved with the answers")


@dataclass
class AgreeOptions:
    files: list[str] = option(help="annotation .jsonl files", positional=True)
    output: str = option("", help="disagreements .jsonl, to adjudicate (default: not written)")
    sentences: str = option("", help="id and text of the sentences, for files that carry ids only")
    overwrite: bool = option(False, help="replace an existing output")


@dataclass
class MergeOptions(AgreeOptions):
    output: str = option(help="labelled .jsonl")
    adjudicated: str = option("", help="annotate's answers to agree's disagreements file")
    dev: str = option("", help="a dev set (text field): none of its sentences may be merged")


@script_main
def label_main(argv: Sequence[str] | None = None) -> int:
    """``label.py COMMAND ...``: suggest, annotate, agree or merge (see ``--help``)."""
    commands = {name: (cls, summary) for name, (cls, summary, _) in LABEL_COMMANDS.items()}
    description = (
        "Grow the labelled data: suggest sentences to label, annotate them in the terminal, "
        "measure agreement, merge them into a labelled JSONL for training."
    )
    command, args = parse_subcommand(commands, list(argv or []), description=description)
    return LABEL_COMMANDS[command][2](args)


def _suggest_command(args: Any) -> int:
    import numpy as np

    from negstance.model.checkpoint import check_checkpoint_dir
    from negstance.model.classifier import StanceClassifier
    from negstance.train import labeling, suggest
    from negstance.train.data import read_labelled_records

    output = labeling.check_jsonl_output(args.output, args.overwrite, [args.input, *args.labelled])
    check_checkpoint_dir(args.model)  # before reading: a wrong --model is said at once
    documents = suggest.read_documents(args.input, args.text_column, args.encoding)
    # One file at a time: a round's suggestions and its merged labels share ids.
    labelled = [r["text"] for path in args.labelled for r in read_labelled_records(path, ["text"])]
    pool = suggest.candidate_pool(suggest.sentence_rows(documents), labelled)
    if not pool.rows:
        raise NegstanceError(f"nothing left to suggest in {args.input}: all labelled or repeats")
    classifier = StanceClassifier.from_pretrained(args.model, device=args.device)
    texts = [row["text"] for row in pool.rows]
    probabilities = np.zeros((len(texts), 3))  # random needs no network
    if args.strategy != "random":
        probabilities = classifier.predict_proba(texts, batch_size=args.batch_size)

    def vectors_of(rows: list[int]) -> Any:
        return classifier.embed([texts[i] for i in rows], batch_size=args.batch_size)

    options = {"measure": args.uncertainty, "vectors_of": vectors_of, "seed": args.seed}
    order = suggest.rank_for_labelling(probabilities, args.number, args.strategy, **options)
    # No model label or probability: the annotator is not anchored.
    rows = [{**pool.rows[index], "rank": rank} for rank, index in enumerate(order, start=1)]
    labeling.write_jsonl(output, rows)
    print(
        f"wrote {output}: {len(rows)} sentences to label ({args.strategy}), from "
        f"{len(pool.rows)} candidates ({len(documents)} documents, {pool.sentences} sentences; "
        f"dropped {pool.already_labelled} already labelled, {pool.repeats} repeats)"
    )
    return 0


def _annotate_command(args: Any) -> int:
    from negstance.train.annotate import run

    def kept() -> str:
        if not Path(args.output).exists():
            return "no answer was given, nothing saved"
        return f"every answer given is saved in {args.output}; run the same command to continue"

    try:
        run(args.input, args.output, args.annotator)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept()}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout was closed (`| head`): point it at /dev/null, or Python's flush at exit fails.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"stopped: the output was closed; {kept()}", file=sys.stderr)
        return 141  # 128 + SIGPIPE, as the shell reports a process killed by a closed pipe
    return 0


def _agree_command(args: Any) -> int:
    from negstance.train import labeling

    inputs = [*args.files, args.sentences]
    output = args.output and labeling.check_jsonl_output(args.output, args.overwrite, inputs)
    files = [labeling.read_annotations(path) for path in args.files]
    sentences = labeling.read_sentences(args.sentences) if args.sentences else None
    report, disagreements = labeling.agreement(files, sentences)
    if output:
        labeling.write_jsonl(output, disagreements)
    count = f"{len(disagreements)} disagreement{'s' * (len(disagreements) != 1)}"
    print(f"{report}\n\n{count} " + (f"written to {output}" if output else "(--output FILE.jsonl)"))
    if output and any("text" not in row for row in disagreements):
        print("  (they carry no text: pass --sentences FILE to include it)")
    elif output and disagreements:
        command = f"{Path(sys.argv[0]).name} annotate --input {output}"
        print(f"  adjudicate them: {command} --output FILE.jsonl --annotator NAME")
    return 0


def _merge_command(args: Any) -> int:
    from negstance.model.labels import LABELS
    from negstance.train import labeling
    from negstance.train.data import read_labelled_records

    inputs = [*args.files, args.adjudicated, args.sentences, args.dev]
    output = labeling.check_jsonl_output(args.output, args.overwrite, inputs)
    files = [labeling.read_annotations(path) for path in args.files]
    sentences = labeling.read_sentences(args.sentences) if args.sentences else None
    adjudicated = labeling.read_annotations(args.adjudicated) if args.adjudicated else None
    dev = [row["text"] for row in read_labelled_records(args.dev, ["text"])] if args.dev else []
    merged = labeling.merge_annotations(files, adjudicated, sentences, dev, str(args.dev))
    if not merged.rows:
        raise NegstanceError(f"nothing to merge: all {len(merged.dropped)} sentences were skipped")
    labeling.write_jsonl(output, merged.rows)
    labels = Counter(row["label"] for row in merged.rows)
    dropped = "; ".join(f"{n} {why}" for why, n in Counter(merged.dropped.values()).items())
    print(
        f"wrote {output}: {len(merged.rows)} labelled sentences ("
        + ", ".join(f"{label} {labels[label]}" for label in LABELS)
        + f"; {sum(row['ambiguous'] for row in merged.rows)} ambiguous; "
        f"{merged.adjudicated} adjudicated)" + f"; dropped {dropped}" * bool(dropped)
    )
    return 0


LABEL_COMMANDS: dict[str, tuple[type, str, Callable[[Any], int]]] = {
    "suggest": (
        SuggestOptions,
        "rank the sentences of new articles for labelling, best first, without model labels",
        _suggest_command,
    ),
    "annotate": (
        AnnotateOptions,
        "label sentences in the terminal (f favor, a against, n none, ? ambiguous, s skip, "
        "b back, q quit); every answer is saved at once, a rerun continues",
        _annotate_command,
    ),
    "agree": (
        AgreeOptions,
        "Cohen's or Fleiss' kappa of two or more annotators, and their disagreements",
        _agree_command,
    ),
    "merge": (
        MergeOptions,
        "annotations and adjudications into a labelled .jsonl for training (validated)",
        _merge_command,
    ),
}
