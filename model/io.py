"""Reading input files and writing output files, for every script.

One reader serves training data and prediction inputs alike, so a malformed
line, a missing field or bad bytes get the same one-line message everywhere.
Output goes to a ``.partial`` file beside the target with a small progress
record, and is renamed into place only when complete, so an interrupted run
never leaves a half-written output and can be resumed.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from negstance.model.errors import NegstanceError

INPUT_FORMATS = ("txt", "jsonl", "csv")
OUTPUT_FORMATS = ("jsonl", "csv")


@dataclass
class Record:
    """One input row: its 1-based line number, its text and any other fields."""

    line_number: int
    text: str
    fields: dict[str, Any] = field(default_factory=dict)


def file_format(path: str | os.PathLike[str], allowed: tuple[str, ...]) -> str:
    """The format implied by the file extension (``.json`` lines count as jsonl)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = {"json": "jsonl", "ndjson": "jsonl", "tsv": "csv"}.get(suffix, suffix)
    if suffix not in allowed:
        raise NegstanceError(
            f"{path}: unsupported file type {Path(path).suffix or '(none)'!r}; "
            f"use one of: {', '.join('.' + name for name in allowed)}"
        )
    return suffix


def check_input_file(path: str | os.PathLike[str]) -> Path:
    location = Path(path)
    if not location.exists():
        raise NegstanceError(f"input file not found: {location}")
    if location.is_dir():
        raise NegstanceError(f"input is a directory, not a file: {location}")
    return location


def _decoded_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Lines decoded one by one, so a bad byte is reported with its line number."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise NegstanceError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                yield line_number, raw.decode(encoding)
            except UnicodeDecodeError:
                raise NegstanceError(
                    f"{path}, line {line_number}: not valid {encoding} text "
                    "(pass --encoding to read it in another encoding)"
                ) from None
            except LookupError:
                raise NegstanceError(f"unknown encoding {encoding!r}") from None


def read_records(
    path: str | os.PathLike[str],
    text_field: str = "text",
    encoding: str = "utf-8",
) -> Iterator[Record]:
    """Stream the records of a ``.txt``, ``.jsonl`` or ``.csv`` file.

    * ``.txt``: every line is a record (blank lines too, so output rows match
      input lines one for one).
    * ``.jsonl``: one JSON object per line; blank lines are skipped;
      ``text_field`` holds the text and the other fields are carried along.
    * ``.csv``: a header row naming ``text_field``; other columns are carried.

    Raises ``NegstanceError`` naming the line for anything malformed, and for a
    file with no non-blank text at all.
    """
    location = check_input_file(path)
    kind = file_format(location, INPUT_FORMATS)
    lines = _decoded_lines(location, encoding)
    if kind == "txt":
        records = _txt_records(lines)
    elif kind == "jsonl":
        records = _jsonl_records(lines, location, text_field)
    else:
        records = _csv_records(lines, location, text_field)
    seen_text = False
    for record in records:
        seen_text = seen_text or bool(record.text.strip())
        yield record
    if not seen_text:
        raise NegstanceError(f"{location}: no text to read (the file is empty or blank)")


def _txt_records(lines: Iterable[tuple[int, str]]) -> Iterator[Record]:
    for line_number, line in lines:
        yield Record(line_number, line.rstrip("\r\n"))


def _jsonl_records(
    lines: Iterable[tuple[int, str]], path: Path, text_field: str
) -> Iterator[Record]:
    for line_number, line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise NegstanceError(
                f"{path}, line {line_number}: invalid JSON ({error.msg})"
            ) from None
        if not isinstance(value, dict):
            raise NegstanceError(f"{path}, line {line_number}: expected a JSON object")
        if text_field not in value:
            raise NegstanceError(f"{path}, line {line_number}: no {text_field!r} field")
        text = value.pop(text_field)
        if not isinstance(text, str):
            raise NegstanceError(
                f"{path}, line {line_number}: {text_field!r} must be a string, "
                f"not {type(text).__name__}"
            )
        yield Record(line_number, text, value)


def _csv_records(lines: Iterable[tuple[int, str]], path: Path, text_field: str) -> Iterator[Record]:
    # csv needs whole logical rows (a quoted field may span lines): feed it the
    # decoded lines and read the physical line number back from the reader.
    line_iter = (line for _, line in lines)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(line_iter, delimiter=delimiter)
    try:
        header = reader.fieldnames
    except csv.Error as error:
        raise NegstanceError(f"{path}, line 1: unreadable CSV header ({error})") from None
    if not header:
        raise NegstanceError(f"{path}: no text to read (the file is empty or blank)")
    if text_field not in header:
        raise NegstanceError(
            f"{path}: no {text_field!r} column (columns: {', '.join(header)}); "
            "pass --text_column to choose one"
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise NegstanceError(f"{path}, line {reader.line_num}: bad CSV ({error})") from None
        text = row.pop(text_field)
        if text is None:
            raise NegstanceError(f"{path}, line {reader.line_num}: missing {text_field!r} value")
        extra = row.pop(None, None)  # type: ignore[call-overload]
        if extra:
            raise NegstanceError(f"{path}, line {reader.line_num}: more values than columns")
        yield Record(reader.line_num, text, row)


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #
class OutputWriter:
    """Write rows to ``<output>.partial``; rename to ``<output>`` on ``commit()``.

    After every ``checkpoint()`` a ``<output>.partial.progress`` file records how
    many rows and bytes are safely on disk. ``resume=True`` truncates the partial
    file to that point and reports the row count, so the caller skips exactly
    those input rows: no duplicates, no gaps.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: list[str] | None = None,
        overwrite: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.format = file_format(self.path, OUTPUT_FORMATS)
        self.columns = columns
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.progress = self.path.with_name(self.path.name + ".partial.progress")
        if self.path.is_dir():
            raise NegstanceError(f"output path is a directory: {self.path}")
        if self.path.exists() and not overwrite:
            raise NegstanceError(f"output exists: {self.path} (pass --overwrite to replace it)")
        directory = self.path.parent
        if not directory.is_dir():
            raise NegstanceError(f"output directory does not exist: {directory}")
        if not os.access(directory, os.W_OK):
            raise NegstanceError(f"output directory is not writable: {directory}")
        self.rows_done = 0
        bytes_done = 0
        if resume and self.partial.exists() and self.progress.exists():
            self.rows_done, bytes_done = self._read_progress()
        elif resume:
            raise NegstanceError(f"nothing to resume: no {self.partial.name} beside {self.path}")
        self._handle: TextIO = self.partial.open(
            "a+" if self.rows_done else "w", encoding="utf-8", newline=""
        )
        if self.rows_done:
            self._handle.truncate(bytes_done)
            self._handle.seek(bytes_done)
        self._csv: Any = None

    def _read_progress(self) -> tuple[int, int]:
        try:
            state = json.loads(self.progress.read_text(encoding="utf-8"))
            return int(state["rows"]), int(state["bytes"])
        except (ValueError, KeyError, TypeError):
            raise NegstanceError(f"cannot resume: {self.progress} is damaged") from None

    def write(self, row: dict[str, Any]) -> None:
        if self.format == "jsonl":
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        if self._csv is None:
            self.columns = self.columns or list(row)
            self._csv = csv.DictWriter(self._handle, fieldnames=self.columns, extrasaction="ignore")
            if self._handle.tell() == 0:
                self._csv.writeheader()
        self._csv.writerow({key: _csv_value(value) for key, value in row.items()})

    def checkpoint(self, rows_done: int) -> None:
        """Record that the first ``rows_done`` rows are durably written."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows_done = rows_done
        state = json.dumps({"rows": rows_done, "bytes": self._handle.tell()})
        temporary = self.progress.with_name(self.progress.name + ".tmp")
        temporary.write_text(state, encoding="utf-8")
        os.replace(temporary, self.progress)

    def commit(self) -> Path:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.partial, self.path)
        self.progress.unlink(missing_ok=True)
        return self.path

    def close(self) -> None:
        """Stop without committing: the partial file stays for ``--resume``."""
        if not self._handle.closed:
            self._handle.close()


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole small file so readers never see it half-written."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
