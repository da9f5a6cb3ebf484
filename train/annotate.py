"""``label.py annotate``: each answer is saved at once (atomically); a rerun continues."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from negstance.model.errors import NegstanceError
from negstance.model.labels import DEFINITIONS, LABELS
from negstance.train.data import read_labelled_records
from negstance.train.labeling import check_jsonl_output, read_annotations, write_jsonl

LABEL_KEYS = {"f": "favor", "a": "against", "n": "none"}
KEYS = "f favor, a against, n none, ? ambiguous (toggle), s skip, b back, q quit"


class Progress(NamedTuple):
    answered: int  # skips included
    total: int
    finished: bool


def answer_row(item: dict, label: str | None, ambiguous: bool, annotator: str) -> dict[str, Any]:
    """One saved answer, as in ``data/annotation/pass_a.jsonl`` (plus ``skipped`` and text)."""
    row = {"id": item["id"], "label": label, "ambiguous": ambiguous and label is not None}
    row |= {"annotator": annotator, "skipped": label is None}
    return row | {name: item[name] for name in ("doc", "index", "text") if name in item}


def pipe_keys(stream: TextIO) -> Iterator[tuple[str, str]]:
    """``(where, key)`` per non-blank line of ``stream``."""
    for number, line in enumerate(iter(stream.readline, ""), start=1):
        if line.strip():
            yield f"stdin, line {number}", line.strip().lower()


def _pressed_keys(descriptor: int) -> Iterator[tuple[str, str]]:
    """Keys pressed on a terminal in cbreak mode, without Enter; Ctrl-D ends them."""
    while (data := os.read(descriptor, 16).decode(errors="replace")) and "\x04" not in data:
        if data.startswith("\x1b"):  # an arrow or function key: one escape sequence
            yield "key", data
        else:
            yield from (("key", char.lower()) for char in data if char not in "\r\n")


def show_item(item: dict, position: int, total: int, answered: int, saved: dict | None) -> str:
    """The screen for one sentence: where it is, its context, and any earlier answer."""
    where = [f"sentence {position + 1} of {total}", f"{answered} answered"]
    where += [f"doc {item['doc']}"] * bool(item.get("doc"))
    where += [f"#{item['index']}"] * (item.get("index") is not None)
    lines = ["", f"[{' · '.join(where)}]"]
    lines += [f"  before: {item['previous']}"] * bool(item.get("previous"))
    lines += [f">> {item['text']}"]
    lines += [f"  after:  {item['next']}"] * bool(item.get("next"))
    if isinstance(item.get("labels"), dict):  # a disagreements file, to adjudicate
        answers = ", ".join(f"{n} {label or 'skipped'}" for n, label in item["labels"].items())
        flagged = ", ".join(item.get("flagged_ambiguous") or [])
        lines.append(f"  annotators: {answers}" + f"; flagged ambiguous: {flagged}" * bool(flagged))
    if saved is not None:
        label = saved["label"] or "skipped"
        lines.append(f"  saved answer: {label}" + " (ambiguous)" * saved["ambiguous"])
    return "\n".join(lines)


class Session:
    """The sentences, the answers so far (saved at once, in input order) and the cursor."""

    def __init__(self, input_path: Any, output: Path, annotator: str, say: Callable) -> None:
        if not annotator.strip():
            raise NegstanceError("--annotator needs a name")
        check_jsonl_output(output, overwrite=True, inputs=[input_path])  # it is continued
        self.items = read_labelled_records(input_path, require=("id", "text"))
        self.output, self.annotator, self.say = output, annotator, say
        self.answers: dict[str, dict] = {}
        if output.exists() and output.read_text(encoding="utf-8").strip():
            self.resume()
        self.position, self.ambiguous = self.next_open(-1), False

    def resume(self) -> None:
        """Take the answers of an earlier session: this annotator's, to these sentences."""
        saved = read_annotations(self.output)
        if saved.annotator != self.annotator:
            raise NegstanceError(
                f"{self.output} holds the answers of {saved.annotator!r}, not "
                f"{self.annotator!r}: every annotator needs an own --output file"
            )
        items = {item["id"]: item for item in self.items}
        if stray := [key for key in saved.rows if key not in items]:
            raise NegstanceError(
                f"{self.output} answers sentences not in the input ({', '.join(stray[:3])}): "
                "choose another --output"
            )
        for key, r in saved.rows.items():
            self.answers[key] = answer_row(items[key], r["label"], r["ambiguous"], self.annotator)

    def next_open(self, after: int) -> int | None:
        """The first unanswered sentence after ``after``, else the first anywhere."""
        positions = [*range(after + 1, len(self.items)), *range(after + 1)]
        return next((i for i in positions if self.items[i]["id"] not in self.answers), None)

    def show(self, position: int) -> None:
        """Sentence ``position`` on screen; the ambiguous toggle starts from its saved flag."""
        self.position, item = position, self.items[position]
        saved = self.answers.get(item["id"])
        self.say(show_item(item, position, len(self.items), len(self.answers), saved))
        self.ambiguous = bool(saved and saved["ambiguous"])

    def answer(self, label: str | None) -> None:
        item = self.items[self.position]
        self.answers[item["id"]] = answer_row(item, label, self.ambiguous, self.annotator)
        write_jsonl(
            self.output, [self.answers[i["id"]] for i in self.items if i["id"] in self.answers]
        )

    def saved_in(self) -> str:
        count = len(self.answers)
        return f"{count} answer(s) saved in {self.output}" if count else "nothing saved"

    def summary(self) -> str:
        counts = Counter(row["label"] for row in self.answers.values())
        tally = ", ".join(f"{label} {counts[label]}" for label in LABELS)
        flagged = sum(row["ambiguous"] for row in self.answers.values())
        done, total = len(self.answers), len(self.items)
        state = f"done: all {total}" if done == total else f"stopped: {done} of {total}"
        state += " answered" + "; run the same command to continue" * (done < total)
        return f"{state} ({tally}, skipped {counts[None]}; {flagged} ambiguous); {self.saved_in()}"


def annotate(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    annotator: str,
    keys: Iterator[tuple[str, str]],
    say: Callable[[str], None] = print,
    stop_on_unknown_key: bool = True,
) -> Progress:
    """Label ``input_path``'s sentences into ``output_path`` from ``(where, key)`` pairs; an
    unknown key stops (``stop_on_unknown_key``, for pipes) or is pointed out. Example:
    ``annotate("s.jsonl", "ann.jsonl", "ann", pipe_keys(io.StringIO("f\\nn\\n")))``."""
    session = Session(input_path, Path(output_path), annotator, say)
    total = len(session.items)
    if session.position is None:
        say(f"all {total} sentences are answered in {session.output}; nothing left to do")
        return Progress(total, total, True)
    say(f"{annotator}: {len(session.answers)} of {total} answered; answers go to {output_path}")
    say("\n".join(f"  {label:8} {DEFINITIONS[label]}" for label in LABELS))
    say(f"keys: {KEYS}; every answer is saved at once")
    session.show(session.position)
    for where, key in keys:
        if key in LABEL_KEYS or key == "s":
            session.answer(LABEL_KEYS.get(key))
            if (following := session.next_open(session.position)) is None:
                break
            session.show(following)
        elif key == "?":
            session.ambiguous = not session.ambiguous
            say(f"  ambiguous: {'on' if session.ambiguous else 'off'}")
        elif key == "b" and session.position > 0:
            session.show(session.position - 1)
        elif key == "b":
            say("  this is the first sentence")
        elif key == "q":
            break
        elif stop_on_unknown_key:
            raise NegstanceError(f"{where}: unknown key {key!r} ({KEYS}); {session.saved_in()}")
        else:
            say(f"  unknown key {key!r}: {KEYS}")
    say(session.summary())
    return Progress(len(session.answers), total, len(session.answers) == total)


def run(input_path: str, output_path: str, annotator: str) -> Progress:
    """``label.py annotate``: single keys on a terminal, a key a line from a pipe."""
    stream, say = sys.stdin, lambda text: print(text, flush=True)
    arguments = (input_path, output_path, annotator)
    try:
        import termios
        import tty
    except ImportError:  # not POSIX: a terminal gives a key a line, as a pipe does
        return annotate(*arguments, pipe_keys(stream), say, not stream.isatty())
    if not stream.isatty():
        return annotate(*arguments, pipe_keys(stream), say)
    saved = termios.tcgetattr(stream.fileno())
    tty.setcbreak(stream.fileno())  # keys arrive one by one; Ctrl-C still interrupts
    try:
        return annotate(*arguments, _pressed_keys(stream.fileno()), say, False)
    finally:  # the terminal as it was, however the session ends
        termios.tcsetattr(stream.fileno(), termios.TCSADRAIN, saved)
