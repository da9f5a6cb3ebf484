"""The terminal labeller behind ``label.py annotate`` (its keys: ``label.py annotate --help``).

Every answer rewrites the output file atomically, so Ctrl-C, a crash or a kill loses
nothing, and the same command continues with the first sentence not yet answered.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from negstance.model.errors import NegstanceError
from negstance.model.io import check_input_file, check_writable_directory, file_format, read_records
from negstance.model.labels import DEFINITIONS, LABELS
from negstance.train.labeling import read_annotations, write_jsonl

LABEL_KEYS = {"f": "favor", "a": "against", "n": "none"}
AMBIGUOUS, SKIP, BACK, QUIT = "?", "s", "b", "q"
KEYS_LINE = (
    "keys: f favor, a against, n none, ? ambiguous (toggle), s skip, b back, q quit; "
    "every answer is saved at once"
)
# What an answer row carries from its sentence, besides the answer.
CARRIED_FIELDS = ("doc", "index", "text")


@dataclass
class Progress:
    """Where a session stopped: answered (skips included) of total, and why it stopped."""

    answered: int
    total: int
    finished: bool
    output: Path


def read_items(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The sentences to label: JSON Lines with ``id`` and ``text`` (other fields are shown or kept).

    Example:
        >>> read_items("runs/label/suggested.jsonl")[0]["id"]  # doctest: +SKIP
        '004_b00dc54cc08a93fa-13'
    """
    location = check_input_file(path)
    file_format(location, ("jsonl",))
    items: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for record in read_records(location, text_field="text"):
        where = f"{location}, line {record.line_number}"
        identifier = record.fields.get("id")
        if not isinstance(identifier, str) or not identifier.strip():
            raise NegstanceError(
                f"{where}: no 'id' string: annotate reads sentences with id and text, "
                "as `label.py suggest` writes them"
            )
        if identifier in first_line:
            raise NegstanceError(
                f"{where}: duplicate id {identifier!r} (first on line {first_line[identifier]})"
            )
        if not record.text.strip():
            raise NegstanceError(f"{where}: empty text")
        first_line[identifier] = record.line_number
        items.append({**record.fields, "text": record.text})
    return items


def read_saved_answers(
    output: Path, items: list[dict[str, Any]], annotator: str
) -> dict[str, dict[str, Any]]:
    """The answers an earlier session saved in ``output``, by id (empty if there is none)."""
    if not output.exists() or not output.read_text(encoding="utf-8").strip():
        return {}
    saved = read_annotations(output)
    if saved.annotator != annotator:
        raise NegstanceError(
            f"{output} holds the answers of {saved.annotator!r}, not {annotator!r}: "
            "every annotator needs an own --output file"
        )
    known = {item["id"] for item in items}
    stray = [key for key in saved.rows if key not in known]
    if stray:
        raise NegstanceError(
            f"{output} has answers to sentences that are not in the input ({', '.join(stray[:3])}"
            f"{', ...' if len(stray) > 3 else ''}): it belongs to another file of sentences; "
            "choose another --output"
        )
    by_id = {item["id"]: item for item in items}
    return {
        key: answer_row(by_id[key], answer.label, answer.ambiguous, annotator)
        for key, answer in saved.rows.items()
    }


def answer_row(
    item: dict[str, Any], label: str | None, ambiguous: bool, annotator: str
) -> dict[str, Any]:
    """One saved answer: the shape of ``data/annotation/pass_a.jsonl`` plus extras.

    Example:
        >>> answer_row({"id": "d-01", "text": "Talks resumed."}, "favor", False, "ann")
        {'id': 'd-01', 'label': 'favor', 'ambiguous': False, 'annotator': 'ann', \
'skipped': False, 'text': 'Talks resumed.'}
    """
    row = {
        "id": item["id"],
        "label": label,
        "ambiguous": ambiguous and label is not None,
        "annotator": annotator,
        "skipped": label is None,
    }
    row.update({name: item[name] for name in CARRIED_FIELDS if name in item})
    return row


def pipe_keys(stream: TextIO) -> Iterator[tuple[str, str]]:
    """``(where, key)`` per non-blank line of ``stream``; ``where`` names the line for errors."""
    for line_number, line in enumerate(iter(stream.readline, ""), start=1):
        if line.strip():
            yield f"stdin, line {line_number}", line.strip().lower()


@contextlib.contextmanager
def terminal_keys(stream: TextIO) -> Iterator[Iterator[tuple[str, str]]]:
    """Keys as pressed, without Enter: ``(where, key)`` pairs; Ctrl-D ends them like a pipe's end.

    The terminal is switched to single keys on entry (before anything is shown)
    and restored on exit, however the session ends.
    """
    import termios
    import tty

    descriptor = stream.fileno()
    saved = termios.tcgetattr(descriptor)
    tty.setcbreak(descriptor)  # keys arrive one by one; Ctrl-C still interrupts
    try:
        yield _pressed_keys(descriptor)
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def _pressed_keys(descriptor: int) -> Iterator[tuple[str, str]]:
    while True:
        data = os.read(descriptor, 16).decode("utf-8", errors="replace")
        if not data or "\x04" in data:
            return
        if data.startswith("\x1b"):  # arrow and function keys: escape sequences
            yield "key", data
            continue
        for char in data:
            if char not in "\r\n":
                yield "key", char.lower()


def show_item(
    item: dict[str, Any], position: int, total: int, answered: int, current: dict | None
) -> str:
    """The screen for one sentence: where it is, its context, and any earlier answer."""
    where = " · ".join(
        str(part)
        for part in (
            f"sentence {position + 1} of {total}",
            f"{answered} answered",
            item.get("doc") and f"doc {item['doc']}",
            item.get("index") is not None and f"#{item['index']}",
        )
        if part
    )
    lines = ["", f"[{where}]"]
    if item.get("previous"):
        lines.append(f"  before: {item['previous']}")
    lines.append(f">> {item['text']}")
    if item.get("next"):
        lines.append(f"  after:  {item['next']}")
    if isinstance(item.get("labels"), dict):  # a disagreement file, for adjudication
        answers = ", ".join(
            f"{name} {label or 'skipped'}" for name, label in item["labels"].items()
        )
        flagged = item.get("flagged_ambiguous") or []
        lines.append(
            f"  annotators: {answers}"
            + (f"; flagged ambiguous: {', '.join(flagged)}" if flagged else "")
        )
    if current is not None:
        saved = "skipped" if current["label"] is None else current["label"]
        lines.append(f"  saved answer: {saved}" + (" (ambiguous)" if current["ambiguous"] else ""))
    return "\n".join(lines)


def annotate(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    annotator: str,
    keys: Iterator[tuple[str, str]],
    say: Callable[[str], None] = print,
    stop_on_unknown_key: bool = True,
) -> Progress:
    """Label the sentences of ``input_path`` into ``output_path`` from ``keys``; resumable.

    ``keys`` yields ``(where, key)`` pairs (:func:`pipe_keys` or
    :func:`terminal_keys`); ``say`` shows text to the annotator. With
    ``stop_on_unknown_key`` (pipes), a key that means nothing is an error.

    Example:
        >>> import io
        >>> keys = pipe_keys(io.StringIO("f\\nn\\n"))
        >>> annotate("suggested.jsonl", "ann.jsonl", "ann", keys)  # doctest: +SKIP
        Progress(answered=2, total=50, finished=False, output=PosixPath('ann.jsonl'))
    """
    if not annotator.strip():
        raise NegstanceError("--annotator needs a name")
    output = Path(output_path)
    if output.suffix.lower() != ".jsonl":
        raise NegstanceError(f"{output}: the output is JSON Lines; name it .jsonl")
    if output.is_dir():
        raise NegstanceError(f"output path is a directory: {output}")
    items = read_items(input_path)
    if output.exists() and os.path.samefile(output, input_path):
        raise NegstanceError(f"--output {output} is the input file: write to another file")
    check_writable_directory(output.parent, f"cannot write {output}")
    answers = read_saved_answers(output, items, annotator)
    total = len(items)

    def save() -> None:
        write_jsonl(output, [answers[item["id"]] for item in items if item["id"] in answers])

    def next_open(after: int) -> int | None:
        """The first unanswered sentence after ``after``, else the first anywhere."""
        for position in [*range(after + 1, total), *range(0, after + 1)]:
            if items[position]["id"] not in answers:
                return position
        return None

    position = next_open(-1)
    if position is None:
        say(f"all {total} sentences are answered in {output}; nothing left to do")
        return Progress(total, total, True, output)
    say(f"annotator {annotator}: {len(answers)} of {total} answered, saved in {output}")
    for label in LABELS:
        say(f"  {label:8} {DEFINITIONS[label]}")
    say(KEYS_LINE)

    def show(at: int) -> bool:
        """Put sentence ``at`` on screen; returns its saved ambiguous flag, the toggle's start."""
        current = answers.get(items[at]["id"])
        say(show_item(items[at], at, total, len(answers), current))
        return bool(current and current["ambiguous"])

    ambiguous = show(position)
    for where, key in keys:
        item = items[position]
        if key in LABEL_KEYS or key == SKIP:
            answers[item["id"]] = answer_row(item, LABEL_KEYS.get(key), ambiguous, annotator)
            save()
            following = next_open(position)
            if following is None:
                say(_summary(answers, total, output, finished=True))
                return Progress(total, total, True, output)
            position = following
            ambiguous = show(position)
        elif key == AMBIGUOUS:
            ambiguous = not ambiguous
            say(f"  ambiguous: {'on' if ambiguous else 'off'}")
        elif key == BACK:
            if position == 0:
                say("  this is the first sentence")
            else:
                position -= 1
                ambiguous = show(position)
        elif key == QUIT:
            break
        elif stop_on_unknown_key:
            raise NegstanceError(
                f"{where}: unknown key {key!r} ({KEYS_LINE.split(';')[0]}); the "
                f"{len(answers)} answers before it are saved in {output}"
            )
        else:
            say(f"  unknown key {key!r}: {KEYS_LINE.split(';')[0]}")
    say(_summary(answers, total, output, finished=False))
    return Progress(len(answers), total, False, output)


def _summary(answers: dict[str, dict[str, Any]], total: int, output: Path, finished: bool) -> str:
    counts = Counter(row["label"] for row in answers.values())
    flagged = sum(row["ambiguous"] for row in answers.values())
    tally = ", ".join(f"{label} {counts[label]}" for label in LABELS)
    state = (
        f"done: all {total} answered"
        if finished
        else f"stopped: {len(answers)} of {total} answered; run the same command to continue"
    )
    return (
        f"{state} ({tally}, skipped {counts[None]}; {flagged} flagged ambiguous), saved in {output}"
    )


def run(input_path: str, output_path: str, annotator: str) -> Progress:
    """``label.py annotate``, keys from stdin: single keys on a terminal, a key a line on a pipe.

    The end of input quits, every answer saved. An unknown key on a pipe stops with a
    one-line error (the answers before it saved); on a terminal it is only pointed out.
    """
    stream = sys.stdin
    source: contextlib.AbstractContextManager[Iterator[tuple[str, str]]]
    source = contextlib.nullcontext(pipe_keys(stream))
    if stream.isatty():
        # termios is POSIX only: elsewhere a terminal gives a key a line, as a pipe does.
        with contextlib.suppress(ImportError):
            import termios  # noqa: F401

            source = terminal_keys(stream)
    with source as keys:
        return annotate(
            input_path,
            output_path,
            annotator,
            keys,
            say=lambda text: print(text, flush=True),
            stop_on_unknown_key=not stream.isatty(),
        )
