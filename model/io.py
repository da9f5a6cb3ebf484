"""Reading input files and writing output files, for every script.

One reader serves training data and prediction inputs alike, so a malformed
line, a missing field or bad bytes get the same one-line message everywhere.
Output goes to a ``.partial`` file beside the target with a small progress
record, and is renamed into place only when complete, so an interrupted run
never leaves a half-written output and can be resumed.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

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
    """The input as a ``Path``, or a ``NegstanceError`` saying why it cannot be read."""
    location = Path(path)
    if not location.exists():
        raise NegstanceError(f"input file not found: {location}")
    if location.is_dir():
        raise NegstanceError(f"input is a directory, not a file: {location}")
    return location


def check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise NegstanceError(
            f"unknown encoding {encoding!r} (try utf-8, utf-8-sig, latin-1 or cp1252)"
        ) from None


def is_wide_encoding(encoding: str) -> bool:
    """UTF-16 and UTF-32 spend several bytes on a newline: their lines cannot be split as bytes."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


# UTF-32's little-endian mark starts with UTF-16's, so UTF-32 is looked for first.
WIDE_BYTE_ORDER_MARKS = (
    ("utf-32", (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)),
    ("utf-16", (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)),
)


def _refuse_wide_byte_order_mark(first_line: bytes, path: Path) -> None:
    """Name the encoding of a UTF-16/32 file read with a byte-by-byte encoding.

    latin-1, the usual advice, would decode it silently into text laced with NULs.
    """
    for encoding, marks in WIDE_BYTE_ORDER_MARKS:
        if first_line.startswith(marks):
            raise NegstanceError(
                f"{path} starts with a {encoding.upper()} byte-order mark: "
                f"pass --encoding {encoding}"
            )


def _decoded_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Lines decoded one by one, so a bad byte is reported with its line number."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise NegstanceError(f"cannot read {path}: {error.strerror}") from None
    if is_wide_encoding(encoding):
        with handle:
            yield from _wide_decoded_lines(handle, path, encoding)
        return
    with handle:
        for line_number, raw in enumerate(handle, start=1):
            if line_number == 1:
                _refuse_wide_byte_order_mark(raw, path)
            try:
                line = raw.decode(encoding)
            # UnicodeError, not just its subclass UnicodeDecodeError: some codecs
            # (idna, say) raise the base class, which has no byte position.
            except UnicodeError as error:
                problem = (
                    f"byte {raw[error.start]:#04x}"
                    if isinstance(error, UnicodeDecodeError)
                    else _one_line(str(error))
                )
                raise NegstanceError(
                    f"{path}, line {line_number}: not valid {encoding} text ({problem}); "
                    "pass --encoding, e.g. --encoding latin-1"
                ) from None
            # Spreadsheet programs start UTF-8 files with a byte-order mark, which
            # would otherwise become part of the first CSV column name.
            if line_number == 1:
                line = line.removeprefix("\ufeff")
            yield line_number, line


def _one_line(text: str) -> str:
    """``text`` with its line breaks escaped: a codec's reason can quote the bad input."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _wide_decoded_lines(handle: BinaryIO, path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    text = io.TextIOWrapper(handle, encoding=encoding, newline="")
    lines_read = 0
    try:
        for line in text:
            lines_read += 1
            yield lines_read, line
    # UnicodeError, the base class: a UTF-16/32 file without a byte-order mark
    # raises it, not UnicodeDecodeError ("UTF-16 stream does not start with BOM").
    except UnicodeError as error:
        # The decoder works in blocks, so the bad byte is at or after this line.
        reason = "" if isinstance(error, UnicodeDecodeError) else f" ({_one_line(str(error))})"
        raise NegstanceError(
            f"{path}, line {lines_read + 1} or later: not valid {encoding} text{reason}; "
            "pass the file's --encoding"
        ) from None


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

    A missing or empty file, an unknown encoding and anything wrong before the
    first non-blank text are reported at once, when this is called, so callers
    fail before writing anything. Later problems raise while iterating. Every
    message is one line naming the file and, where there is one, the line.

    Example:
        >>> [record.text for record in read_records("news.txt")]  # doctest: +SKIP
        ['Talks resumed.', '', 'Oil prices fell.']
    """
    location = check_input_file(path)
    kind = file_format(location, INPUT_FORMATS)
    check_encoding(encoding)
    lines = _decoded_lines(location, encoding)
    if kind == "txt":
        records = _txt_records(lines)
    elif kind == "jsonl":
        records = _jsonl_records(lines, location, text_field)
    else:
        records = _csv_records(lines, location, text_field)
    leading: list[Record] = []
    for record in records:
        leading.append(record)
        if record.text.strip():
            return itertools.chain(leading, records)
    raise NegstanceError(f"{location}: no text to read (the file is empty or blank)")


def _txt_records(lines: Iterable[tuple[int, str]]) -> Iterator[Record]:
    for line_number, line in lines:
        yield Record(line_number, line.rstrip("\r\n"))


def _jsonl_records(
    lines: Iterable[tuple[int, str]], path: Path, text_field: str
) -> Iterator[Record]:
    first_content = True
    for line_number, line in lines:
        if not line.strip():
            continue
        # A .json file is often one JSON array, not JSON Lines: say so, or the
        # message about its first line alone leaves the user guessing.
        array_hint = ""
        if first_content and line.lstrip().startswith("["):
            array_hint = (
                "; the file looks like a JSON array, but the input must be JSON Lines: "
                "one JSON object per line"
            )
        first_content = False
        try:
            value = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            problem = error.msg.removesuffix(" at")
            raise NegstanceError(
                f"{path}, line {line_number}: invalid JSON ({problem} at column {error.pos + 1})"
                + array_hint
            ) from None
        if not isinstance(value, dict):
            raise NegstanceError(f"{path}, line {line_number}: expected a JSON object{array_hint}")
        if text_field not in value:
            raise NegstanceError(f"{path}, line {line_number}: no {text_field!r} field")
        text = value.pop(text_field)
        if not isinstance(text, str):
            raise NegstanceError(
                f"{path}, line {line_number}: {text_field!r} must be a string, "
                f"not {type(text).__name__}"
            )
        yield Record(line_number, text, value)


def csv_delimiter(path: str | os.PathLike[str]) -> str:
    """Tab for ``.tsv`` files, comma for ``.csv``: the same rule for reading and writing."""
    return "\t" if Path(path).suffix.lower() == ".tsv" else ","


def _csv_records(lines: Iterable[tuple[int, str]], path: Path, text_field: str) -> Iterator[Record]:
    # csv needs whole logical rows (a quoted field may span lines): feed it the
    # decoded lines and read the physical line number back from the reader.
    row_start = _RowStart()
    # strict: without it a quote that is never closed silently swallows the rest
    # of the file into one field, and text after a closing quote is glued on.
    reader = csv.DictReader(row_start.track(lines), delimiter=csv_delimiter(path), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as error:
        raise NegstanceError(f"{path}, line 1: unreadable CSV header ({error})") from None
    if not header:
        raise NegstanceError(f"{path}: no text to read (the file is empty or blank)")
    # DictReader keeps only the last of two same-named columns, dropping the others unseen.
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise NegstanceError(
            f"{path}: the header repeats column names ({', '.join(map(repr, repeated))}); "
            "give every column its own name"
        )
    if text_field not in header:
        raise NegstanceError(
            f"{path}: no {text_field!r} column (columns: {', '.join(header)}); "
            "pass --text_column to choose one"
        )
    rows_read = 0
    while True:
        row_start.next_row()
        try:
            row = next(reader)
        except StopIteration:
            if rows_read == 0:
                raise NegstanceError(
                    f"{path}: the file has a header ({', '.join(header)}) but no rows"
                ) from None
            return
        except csv.Error as error:
            # strict csv reports a quote left open as "unexpected end of data", at
            # the file's last line: name the line the row began on instead.
            if str(error) == "unexpected end of data":
                raise NegstanceError(
                    f"{path}, line {row_start.line_number}: a quoted field in the row "
                    "starting on this line is never closed"
                ) from None
            # DictReader updates its line_num only after a row parses: ask its reader.
            raise NegstanceError(
                f"{path}, line {reader.reader.line_num}: bad CSV ({error})"
            ) from None
        rows_read += 1
        text = row.pop(text_field)
        if text is None:
            raise NegstanceError(f"{path}, line {reader.line_num}: missing {text_field!r} value")
        extra = row.pop(None, None)  # type: ignore[call-overload]
        if extra:
            raise NegstanceError(f"{path}, line {reader.line_num}: more values than columns")
        yield Record(reader.line_num, text, row)


class _RowStart:
    """The line a CSV row starts on (csv's ``line_num`` is its last: for a quote
    left open, the end of the file)."""

    def __init__(self) -> None:
        self.line_number = 0
        self._seen_content = False

    def track(self, lines: Iterable[tuple[int, str]]) -> Iterator[str]:
        for line_number, line in lines:
            if not self._seen_content and line.strip():
                self.line_number, self._seen_content = line_number, True
            yield line

    def next_row(self) -> None:
        self._seen_content = False


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #
def check_output_path(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    resume: bool = False,
    input_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Refuse an output file that cannot be written, or that would replace work.

    An existing output needs ``overwrite``; the ``.partial`` of an interrupted
    run needs ``resume`` (continue it) or ``overwrite`` (start over), not both.
    The output may not be ``input_path`` itself, under any name.

    Example:
        >>> check_output_path("stance.jsonl")  # doctest: +SKIP
        PosixPath('stance.jsonl')
    """
    if resume and overwrite:
        raise NegstanceError(
            "--resume and --overwrite contradict each other: --resume continues an "
            "interrupted run, --overwrite starts over; pass one of them"
        )
    target = Path(path)
    # Before the extension check: a directory named without one is still a directory.
    if target.is_dir():
        raise NegstanceError(f"output path is a directory: {target}")
    if target.suffix.lower() == ".json":
        # .json input is read as JSON Lines too, but a file named .json is
        # expected to hold one JSON document, which JSON Lines output is not.
        raise NegstanceError(
            f"{target}: predictions are written as JSON Lines (one JSON object per line), "
            "not as one JSON document; name the output .jsonl"
        )
    file_format(target, OUTPUT_FORMATS)
    # samefile also catches another spelling of the path, a symlink or a hard link.
    if (
        input_path is not None
        and target.exists()
        and Path(input_path).exists()
        and os.path.samefile(target, input_path)
    ):
        raise NegstanceError(
            f"--output {target} is the input file: write the predictions to another file"
        )
    if target.exists() and not overwrite:
        raise NegstanceError(f"output exists: {target} (pass --overwrite to replace it)")
    check_writable_directory(target.parent, f"cannot write {target}")
    partial = partial_path(target)
    if resume and not partial.exists():
        raise NegstanceError(
            f"nothing to resume: no {partial.name} beside {target} (run without --resume)"
        )
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


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an output is written until it is complete."""
    target = Path(path)
    return target.with_name(target.name + ".partial")


class OutputWriter:
    """Write rows to ``<output>.partial``; rename to ``<output>`` on ``commit()``.

    ``checkpoint()`` records in ``<output>.partial.progress`` the rows and bytes on
    disk and ``command`` (what identifies the run). ``resume=True`` refuses another
    command's partial file, else truncates it to that point and sets ``rows_done``
    for the caller to skip. Nothing is created before the first row; ``.tsv`` is
    tab-separated.

    Example:
        >>> writer = OutputWriter("stance.jsonl")  # doctest: +SKIP
        >>> writer.write({"text": "Talks resumed.", "label": "favor"})  # doctest: +SKIP
        >>> writer.checkpoint(rows_done=1)  # doctest: +SKIP
        >>> writer.commit()  # doctest: +SKIP
        PosixPath('stance.jsonl')
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        resume: bool = False,
        input_path: str | os.PathLike[str] | None = None,
        command: dict[str, Any] | None = None,
    ) -> None:
        self.path = check_output_path(
            path, overwrite=overwrite, resume=resume, input_path=input_path
        )
        self.format = file_format(self.path, OUTPUT_FORMATS)
        self.delimiter = csv_delimiter(self.path)
        self.columns: list[str] | None = None
        self.command = command or {}
        self.partial = partial_path(self.path)
        self.progress = self.path.with_name(self.path.name + ".partial.progress")
        self.rows_done = 0
        self._bytes_done = 0
        if resume and self.progress.exists():
            self.rows_done, self._bytes_done = self._read_progress()
            if self.format == "csv" and self._bytes_done > 0:
                # The header already on disk fixes the columns; rebuilding them from the
                # first resumed row could put values under the wrong names.
                with self.partial.open(encoding="utf-8", newline="") as handle:
                    self.columns = next(csv.reader(handle, delimiter=self.delimiter), None)
        self._resume = resume
        self._handle: TextIO | None = None
        self._csv: Any = None

    def _read_progress(self) -> tuple[int, int]:
        try:
            state = json.loads(self.progress.read_text(encoding="utf-8"))
            rows, size = int(state["rows"]), int(state["bytes"])
        except (ValueError, KeyError, TypeError):
            raise NegstanceError(
                f"cannot resume: {self.progress} is damaged (pass --overwrite to start over)"
            ) from None
        if not isinstance(state.get("command"), dict):
            raise NegstanceError(
                f"cannot resume: {self.progress} does not record the command that wrote it "
                "(an older negstance); pass --overwrite instead of --resume to start over"
            )
        differences = _command_differences(state["command"], self.command)
        if differences:
            # Continuing would append this command's rows to another command's.
            raise NegstanceError(
                f"cannot resume: {self.partial} was written by another command "
                f"({'; '.join(differences)}); resume with the interrupted command "
                "unchanged, or pass --overwrite instead of --resume to start over"
            )
        if size > self.partial.stat().st_size:
            raise NegstanceError(
                f"cannot resume: {self.partial} is shorter than {self.progress} records "
                "(pass --overwrite to start over)"
            )
        return rows, size

    def _open(self) -> TextIO:
        if self._handle is None:
            if self._resume:
                # Bytes after the last checkpoint belong to rows that will be redone.
                self._handle = self.partial.open("r+", encoding="utf-8", newline="")
                self._handle.truncate(self._bytes_done)
                self._handle.seek(self._bytes_done)
            else:
                self.progress.unlink(missing_ok=True)  # it described an older partial file
                self._handle = self.partial.open("w", encoding="utf-8", newline="")
        return self._handle

    def write(self, row: dict[str, Any]) -> None:
        handle = self._open()
        if self.format == "jsonl":
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        if self._csv is None:
            self.columns = self.columns or list(row)
            self._csv = csv.DictWriter(
                handle, fieldnames=self.columns, extrasaction="ignore", delimiter=self.delimiter
            )
            if handle.tell() == 0:
                self._csv.writeheader()
        self._csv.writerow({key: _csv_value(value) for key, value in row.items()})

    def checkpoint(self, rows_done: int) -> None:
        """Record that the first ``rows_done`` rows are durably written."""
        handle = self._open()
        handle.flush()
        os.fsync(handle.fileno())
        self.rows_done = rows_done
        state = json.dumps({"rows": rows_done, "bytes": handle.tell(), "command": self.command})
        write_text_atomic(self.progress, state)

    def commit(self) -> Path:
        """Rename the finished ``.partial`` into place; returns the output path."""
        handle = self._open()
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(self.partial, self.path)
        self.progress.unlink(missing_ok=True)
        return self.path

    def close(self) -> None:
        """Stop without committing: the partial file stays for ``--resume``."""
        if self._handle is not None and not self._handle.closed:
            self._handle.close()


def _command_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"<what> <then> then, <now> now"`` for each part of the command that changed."""

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return "(not recorded)" if value is None else str(value)

    return [
        f"{name} {shown(recorded.get(name))} then, {shown(current.get(name))} now"
        for name in {**recorded, **current}
        if recorded.get(name) != current.get(name)
    ]


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def write_text_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write a whole small file (text, or bytes as they are) so readers never see it
    half-written."""
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
