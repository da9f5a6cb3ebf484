"""Reading input files and writing output files, for every script: the codecs, ``json`` and
``csv`` raise, and their errors are wrapped once into one line naming the file and line."""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from negstance.model.errors import NegstanceError


@dataclass
class Record:
    """One input row: its 1-based line number, its text and any other fields."""

    line_number: int
    text: str
    fields: dict[str, Any] = field(default_factory=dict)


def file_format(
    path: str | os.PathLike[str], allowed: tuple[str, ...] = ("txt", "jsonl", "csv")
) -> str:
    """The format implied by the extension: ``.json``/``.ndjson`` are jsonl, ``.tsv`` is csv."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = {"json": "jsonl", "ndjson": "jsonl", "tsv": "csv"}.get(suffix, suffix)
    if suffix not in allowed:
        raise NegstanceError(f"{path}: unsupported file type; use .{', .'.join(allowed)}")
    return suffix


def check_input_file(path: str | os.PathLike[str]) -> Path:
    """The input as a ``Path``, or a ``NegstanceError`` saying why it cannot be read."""
    location = Path(path)
    if not location.is_file():
        problem = "is a directory, not a file" if location.is_dir() else "not found"
        raise NegstanceError(f"input file {problem}: {location}")
    return location


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _lines(path: Path, encoding: str) -> Iterator[str]:
    """The lines of ``path``, split at ``\\n`` only, decoded incrementally so that a bad byte
    is named with its line; a UTF-8 byte-order mark (spreadsheets write one) is dropped."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise NegstanceError(f"unknown encoding {encoding!r} (try utf-8 or latin-1)") from None
    decoder = codecs.getincrementaldecoder("utf-8-sig" if name == "utf-8" else name)()
    number, text = 1, ""
    with path.open("rb") as handle:
        for raw in itertools.chain(handle, [b""]):  # b"": the end, where decoding is final
            try:
                text += decoder.decode(raw, final=not raw)
            except UnicodeError as error:
                raise NegstanceError(
                    f"{path}, line {number}: not valid {encoding} text ({error}); "
                    "pass --encoding, e.g. --encoding latin-1"
                ) from None
            *complete, text = text.split("\n")
            number += len(complete)
            yield from (line + "\n" for line in complete)
    if text:
        yield text


def read_records(
    path: str | os.PathLike[str], text_field: str = "text", encoding: str = "utf-8"
) -> Iterator[Record]:
    """Stream the records of a ``.txt`` (every line, blank ones too), ``.jsonl`` (a JSON
    object per line) or ``.csv``/``.tsv`` (a header row): ``text_field`` is the text, other
    fields are carried along. A problem before the first text raises at once.

    Example: ``[r.text for r in read_records("news.txt")]`` is ``['Talks.', '', 'Oil fell.']``.
    """
    location = check_input_file(path)
    kind = file_format(location)
    lines = _lines(location, encoding)
    if kind == "txt":
        records = (Record(number, line.rstrip("\r\n")) for number, line in enumerate(lines, 1))
    else:
        reader = _jsonl_records if kind == "jsonl" else _csv_records
        records = reader(lines, location, text_field)
    leading: list[Record] = []
    for record in records:
        leading.append(record)
        if record.text.strip():
            return itertools.chain(leading, records)
    raise NegstanceError(f"{location}: no text to read (the file is empty or blank)")


def _jsonl_records(lines: Iterator[str], path: Path, text_field: str) -> Iterator[Record]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.rstrip("\r\n"))  # else an error's column is on line 2
        except json.JSONDecodeError as error:
            problem = error.msg.removesuffix(" at")
            raise NegstanceError(
                f"{path}, line {number}: invalid JSON ({problem} at column {error.colno})"
            ) from None
        if not isinstance(value, dict) or not isinstance(value.get(text_field), str):
            raise NegstanceError(
                f"{path}, line {number}: no {text_field!r} field with a string "
                "(expected one JSON object per line)"
            )
        yield Record(number, value.pop(text_field), value)


def _csv_records(lines: Iterator[str], path: Path, text_field: str) -> Iterator[Record]:
    # strict: else a quote left open swallows the rest of the file into one field.
    reader = csv.DictReader(lines, delimiter=_delimiter(path), strict=True)
    try:
        if reader.fieldnames is not None and text_field not in reader.fieldnames:
            raise NegstanceError(
                f"{path}: no {text_field!r} column (columns: {', '.join(reader.fieldnames)}); "
                "pass --text_column to choose one"
            )
        for row in reader:
            text = row.pop(text_field)
            # DictReader files extra values under the key None, and None for missing ones.
            if None in row or None in row.values() or text is None:
                raise NegstanceError(
                    f"{path}, line {reader.line_num}: the row does not have one value per "
                    "column (an unquoted comma in the text?)"
                )
            yield Record(reader.line_num, text, row)
    except csv.Error as error:  # DictReader counts a row's lines once it parses: ask its reader
        raise NegstanceError(f"{path}, line {reader.reader.line_num}: bad CSV ({error})") from None


def check_output_path(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    resume: bool = False,
    input_path: str | os.PathLike[str] | None = None,
) -> Path:
    """``path``, checked: an existing output needs ``overwrite``, an interrupted run's ``.partial``
    ``resume`` or ``overwrite``. Example: ``check_output_path("out.jsonl")``."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    if resume and overwrite:
        raise NegstanceError("--resume continues an interrupted run, --overwrite starts over")
    if target.is_dir():
        raise NegstanceError(f"output path is a directory: {target}")
    if target.suffix.lower() not in (".jsonl", ".ndjson", ".csv", ".tsv"):
        raise NegstanceError(f"{target}: unsupported output type; use .jsonl, .csv or .tsv")
    if input_path is not None and target.exists() and os.path.samefile(target, input_path):
        raise NegstanceError(f"--output {target} is the input file: write to another file")
    if target.exists() and not overwrite:
        raise NegstanceError(f"output exists: {target} (pass --overwrite to replace it)")
    check_writable_directory(target.parent, f"cannot write {target}")
    if resume and not partial.exists():
        raise NegstanceError(f"nothing to resume: no {partial.name} beside {target}")
    if partial.exists() and not (resume or overwrite):
        raise NegstanceError(
            f"an interrupted run left {partial}: pass --resume to continue it "
            "or --overwrite to start over"
        )
    return target


def check_writable_directory(directory: Path, context: str, create: bool = False) -> None:
    """``directory`` is (or, with ``create``, can become) a writable directory."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NegstanceError(f"{context}: {existing} is a file, not a directory")
    if existing != directory and not create:
        raise NegstanceError(f"{context}: directory {directory} does not exist (create it first)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NegstanceError(f"{context}: directory {existing} is not writable")
    if create:  # os.access says yes to root everywhere: creating it is the real test
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise NegstanceError(f"{context}: {error.strerror}") from None


class OutputWriter:
    """Rows go to ``<output>.partial``, renamed to ``<output>`` on ``commit()``; ``checkpoint()``
    records the rows and bytes on disk, the ``command`` and the caller's ``pending`` state in
    ``<output>.partial.progress``, read back on ``resume`` (refused for another command).
    Example: ``writer.write([{"text": "Talks."}], ["text"]); writer.commit()``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        overwrite: bool,
        resume: bool,
        input_path: str | os.PathLike[str],
        command: dict[str, Any],
    ) -> None:
        self.path = check_output_path(path, overwrite, resume, input_path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.progress, self.command = Path(f"{self.partial}.progress"), command
        state = {"rows": 0, "bytes": None, "pending": None, "columns": None, "command": command}
        if resume and self.progress.exists():
            state = json.loads(self.progress.read_text(encoding="utf-8"))
        old = state["command"]  # resuming another command would mix its rows with this one's
        changed = [f"{k} {old.get(k)} then, {v} now" for k, v in command.items() if v != old.get(k)]
        if changed:
            raise NegstanceError(
                f"cannot resume: {self.partial} was written by another command "
                f"({'; '.join(changed)}); resume with the same command or --overwrite to start over"
            )
        self.rows_done, self.pending = state["rows"], state["pending"]
        self.columns, self._resume_at = state["columns"], state["bytes"]
        self._handle: TextIO | None = None

    def write(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        """Append ``rows``; a CSV's header is ``columns``, those of the first write."""
        if self._handle is None:
            if self._resume_at is None:
                self.progress.unlink(missing_ok=True)  # it described an older partial file
                self._handle = self.partial.open("w", encoding="utf-8", newline="")
            else:  # rows written after the last checkpoint are written again
                self._handle = self.partial.open("r+", encoding="utf-8", newline="")
                self._handle.truncate(self._resume_at)
                self._handle.seek(self._resume_at)
        if self.path.suffix.lower() not in (".csv", ".tsv"):
            self._handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            return
        self.columns = self.columns or columns
        writer = csv.DictWriter(
            self._handle, self.columns, extrasaction="ignore", delimiter=_delimiter(self.path)
        )
        if self._handle.tell() == 0:
            writer.writeheader()
        writer.writerows({key: _csv_value(value) for key, value in row.items()} for row in rows)

    def _sync(self) -> int:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._handle.tell()

    def checkpoint(self, rows_done: int, pending: Any = None) -> None:
        """Record that the first ``rows_done`` rows are durably written, and ``pending``."""
        state = {"rows": rows_done, "bytes": self._sync(), "command": self.command}
        state |= {"pending": pending, "columns": self.columns}
        write_text_atomic(self.progress, json.dumps(state))

    def commit(self) -> Path:
        """Rename the finished ``.partial`` into place; returns the output path."""
        self._sync()
        self.close()
        os.replace(self.partial, self.path)
        self.progress.unlink(missing_ok=True)
        return self.path

    def close(self) -> None:
        """Stop without committing: the partial file stays for ``--resume``."""
        if self._handle is not None:
            self._handle.close()


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def write_text_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write a whole file (text, or bytes as they are) so readers never see it half-written."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
