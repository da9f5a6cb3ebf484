"""Batch inference over files: streaming, in input order, sharded over processes.

The input is read and written back in chunks of ``chunk_size`` records, so memory
stays flat however large the file. Under ``accelerate launch`` every process
classifies its slice of each chunk and the main process writes them in rank order.
"""

from __future__ import annotations

import codecs
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from negstance.model.classifier import StanceClassifier
from negstance.model.errors import NegstanceError
from negstance.model.io import OutputWriter, Record, is_wide_encoding, read_records
from negstance.model.text import split_sentences


@dataclass
class PredictionSummary:
    """What a ``predict_file`` run did, for the final report line."""

    rows: int = 0
    classified: int = 0
    empty: int = 0  # blank input rows (blank documents in documents mode), left unlabelled
    truncated: int = 0
    resumed_from: int = 0
    documents: int = 0
    documents_mode: bool = False
    seconds: float = 0.0
    label_counts: Counter[str] = field(default_factory=Counter)
    output: Path | None = None

    def describe(self) -> str:
        counts = ", ".join(f"{label} {count}" for label, count in sorted(self.label_counts.items()))
        # A resumed run can find every row already written: no counts, no "()".
        classified = f"{self.classified} classified" + (f" ({counts})" if counts else "")
        # In documents mode an input row is a document, written as its sentences + a summary.
        unit = "document" if self.documents_mode else "row"
        parts = [f"{self.rows} {unit}{'s' * (self.rows != 1)}", classified]
        if self.empty:
            parts.append(f"{self.empty} empty {unit}{'s' * (self.empty != 1)} left unlabelled")
        if self.truncated:
            parts.append(f"{self.truncated} texts truncated to the model's maximum length")
        if self.resumed_from:
            parts.append(f"resumed after row {self.resumed_from}")
        if self.seconds > 0 and self.classified:
            parts.append(f"{self.classified / self.seconds:.0f} sentences/s")
        return "; ".join(parts)


class _SingleProcess:
    """The few ``PartialState`` members used here, for runs without accelerate."""

    num_processes = 1
    process_index = 0
    is_main_process = True
    device = torch.device("cpu")


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def count_records(path: str | os.PathLike[str]) -> int:
    """Records in an input file, counted from its line breaks, for the progress bar's ETA.

    Exact for ``.txt``; an upper bound for ``.jsonl`` (blank lines) and ``.csv``
    (multi-line fields).

    Example:
        >>> count_records("news.txt")  # doctest: +SKIP
        10000
    """
    location = Path(path)
    lines, last_byte = 0, b"\n"
    with location.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last_byte = block[-1:]
    if last_byte != b"\n":
        lines += 1  # a last line without a line break is a record too
    if location.suffix.lower() in (".csv", ".tsv"):
        lines -= 1
    return max(lines, 0)


def _shard_bounds(length: int, processes: int, index: int) -> tuple[int, int]:
    per_process = -(-length // processes)
    return min(index * per_process, length), min((index + 1) * per_process, length)


def _classify_texts(
    classifier: StanceClassifier,
    texts: list[str],
    batch_size: int,
    accelerator: Any,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Probabilities for ``texts`` (the non-blank rows), split over the processes and gathered.

    ``on_progress`` gets the fraction done after every batch (of this process's shard).
    """
    processes = accelerator.num_processes
    start, end = _shard_bounds(len(texts), processes, accelerator.process_index)
    on_batch = None
    if on_progress is not None and end > start:
        on_batch = lambda done: on_progress(done / (end - start))  # noqa: E731
    if processes == 1:
        return classifier.probabilities_and_truncation(
            texts, batch_size=batch_size, on_batch=on_batch
        )
    if not texts:  # every process sees the same chunk, so all of them skip together
        return np.zeros((0, len(classifier.labels)), dtype=np.float32), 0
    from accelerate.utils import gather

    probabilities, truncated = classifier.probabilities_and_truncation(
        texts[start:end], batch_size=batch_size, on_batch=on_batch
    )
    # Equal-sized slots make it one tensor all-gather; the bounds of every
    # slice are known everywhere, so the padding rows are simply dropped.
    per_process = -(-len(texts) // processes)
    slot = torch.zeros((per_process, probabilities.shape[1]), dtype=torch.float32)
    slot[: end - start] = torch.from_numpy(probabilities)
    gathered = gather(slot.to(accelerator.device)).cpu().numpy()
    counts = gather(torch.tensor([truncated], device=accelerator.device)).cpu()
    parts = []
    for rank in range(processes):
        rank_start, rank_end = _shard_bounds(len(texts), processes, rank)
        offset = rank * per_process
        parts.append(gathered[offset : offset + rank_end - rank_start])
    return np.concatenate(parts), int(counts.sum())


def _prediction_fields(labels: list[str], probabilities: np.ndarray | None) -> dict[str, Any]:
    if probabilities is None:
        return {"label": None, "score": None, **{f"prob_{label}": None for label in labels}}
    best = int(probabilities.argmax())
    return {
        "label": labels[best],
        "score": round(float(probabilities[best]), 6),
        **{
            f"prob_{label}": round(float(p), 6)
            for label, p in zip(labels, probabilities, strict=True)
        },
    }


def output_columns(labels: list[str], documents: bool) -> list[str]:
    """The columns ``predict_file`` adds to every row (the input's own fields come first)."""
    prediction = ["label", "score", *(f"prob_{label}" for label in labels)]
    if not documents:
        return prediction
    summary = [
        "sentences",
        *(f"count_{label}" for label in labels),
        *(f"share_{label}" for label in labels),
    ]
    return ["kind", "doc_row", "sentence_index", *prediction, *summary]


def _carried_fields(fields: dict[str, Any], reserved: set[str]) -> dict[str, Any]:
    """The input's other fields, renamed ``input_<name>`` where an output column has the name.

    An input that already has a ``label`` (gold labels, say) keeps it as
    ``input_label`` instead of having it overwritten by the prediction.
    """
    return {(f"input_{key}" if key in reserved else key): value for key, value in fields.items()}


def predict_file(
    classifier: StanceClassifier,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    text_field: str = "text",
    encoding: str = "utf-8",
    batch_size: int = 32,
    chunk_size: int = 4096,
    documents: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    accelerator: Any = None,
    show_progress: bool = True,
) -> PredictionSummary:
    """Classify every record of ``input_path`` and write ``output_path`` in input order.

    Sentence mode (default): one output row per input row, with the input's
    fields, the text, ``label``, ``score`` and ``prob_<label>``; blank rows get
    empty predictions. ``documents=True``: every record is an article, written as
    one row per sentence (``kind: "sentence"``, ``doc_row``, ``sentence_index``)
    and a summary row (``kind: "document"``: counts, shares, overall stance). An
    input field named like an output column is kept as ``input_<name>``.

    ``resume=True`` continues the ``.partial`` output of an interrupted run of the
    same command. ``accelerator``: an ``accelerate.PartialState`` under
    ``accelerate launch``.

    Example:
        >>> classifier = StanceClassifier.from_pretrained("runs/default")  # doctest: +SKIP
        >>> predict_file(classifier, "news.txt", "stance.jsonl").describe()  # doctest: +SKIP
        '3 rows; 2 classified (favor 1, none 1); 1 empty rows left unlabelled; 41 sentences/s'
    """
    accelerator = accelerator or _SingleProcess()
    labels = classifier.labels
    reserved = {text_field, *output_columns(labels, documents)}
    summary = PredictionSummary(documents_mode=documents)
    # Input problems are found before any output exists (read_records checks eagerly).
    records = read_records(input_path, text_field=text_field, encoding=encoding)
    command = _command_identity(classifier, input_path, text_field, encoding, documents)
    writer = _open_writer(output_path, input_path, command, overwrite, resume, accelerator)
    if writer is not None:
        summary.resumed_from = writer.rows_done
    skip = _broadcast_int(summary.resumed_from, accelerator)
    if skip < 0:
        raise NegstanceError("the main process could not open the output (see its error)")
    summary.resumed_from = skip
    visible = show_progress and accelerator.is_main_process
    progress = tqdm(
        # count_records counts newline bytes; unknown (no ETA) for UTF-16/32.
        total=count_records(input_path) if visible and not is_wide_encoding(encoding) else None,
        initial=skip,
        unit=" documents" if documents else " sentences",
        desc="predict",
        disable=not visible,
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    try:
        rows_done = skip
        for chunk in _chunks(itertools.islice(records, skip, None), chunk_size):
            sentences = [split_sentences(r.text) if documents else [r.text] for r in chunk]
            texts = [text for texts_of_record in sentences for text in texts_of_record]
            wanted = [index for index, text in enumerate(texts) if text.strip()]
            # The bar moves per batch, not per chunk: a chunk can take minutes.
            advanced = 0

            def show_progress_within_chunk(fraction: float, rows: int = len(chunk)) -> None:
                nonlocal advanced
                target = min(int(rows * fraction), rows)
                progress.update(target - advanced)
                advanced = target

            probabilities, truncated = _classify_texts(
                classifier,
                [texts[index] for index in wanted],
                batch_size,
                accelerator,
                on_progress=show_progress_within_chunk if visible else None,
            )
            by_text = dict(zip(wanted, probabilities, strict=True))
            summary.truncated += truncated
            summary.classified += len(wanted)
            # Blank records, not blank texts: a blank document has no sentences.
            summary.empty += sum(1 for record in chunk if not record.text.strip())
            if writer is not None:
                if writer.format == "csv" and writer.columns is None:
                    # A CSV header is fixed by its first row; in documents mode the
                    # summary rows have columns the sentence rows lack.
                    writer.columns = _csv_columns(chunk[0], text_field, labels, documents, reserved)
                _write_chunk(
                    writer,
                    chunk,
                    rows_done,
                    sentences,
                    by_text,
                    labels,
                    text_field,
                    reserved,
                    summary,
                )
            rows_done += len(chunk)
            summary.rows = rows_done
            if writer is not None:
                writer.checkpoint(rows_done)
            progress.update(len(chunk) - advanced)
            if documents:
                elapsed = max(time.perf_counter() - started, 1e-9)
                progress.set_postfix_str(f"{summary.classified / elapsed:.0f} sentences/s")
        summary.seconds = time.perf_counter() - started
        if writer is not None:
            summary.output = writer.commit()
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    return summary


def _command_identity(
    classifier: StanceClassifier,
    input_path: str | os.PathLike[str],
    text_field: str,
    encoding: str,
    documents: bool,
) -> dict[str, Any]:
    """What makes one run's output differ from another's, recorded to check ``--resume``.

    The input's size and modification time stand in for its content (cheaper than hashing).
    """
    source = Path(input_path).resolve()
    status = source.stat()
    model = str(getattr(classifier.model.config, "name_or_path", "") or "")
    if model and Path(model).exists():
        model = str(Path(model).resolve())
    return {
        "input": str(source),
        "input size": status.st_size,
        "input modified": datetime.fromtimestamp(status.st_mtime_ns / 1e9, timezone.utc)
        .isoformat()
        .replace("+00:00", "Z"),
        "--encoding": codecs.lookup(encoding).name,
        "--text_column": text_field,
        "--documents": documents,
        "--model": model,
        "--precision": classifier.precision,
    }


def _open_writer(
    output_path: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    command: dict[str, Any],
    overwrite: bool,
    resume: bool,
    accelerator: Any,
) -> OutputWriter | None:
    """The main process's writer; the others learn of a failure through the broadcast."""
    if not accelerator.is_main_process:
        return None
    try:
        return OutputWriter(
            output_path,
            overwrite=overwrite,
            resume=resume,
            input_path=input_path,
            command=command,
        )
    except NegstanceError:
        # Without this the other processes would wait in the broadcast forever.
        _broadcast_int(-1, accelerator)
        raise


def _csv_columns(
    first: Record, text_field: str, labels: list[str], documents: bool, reserved: set[str]
) -> list[str]:
    carried = list(_carried_fields(first.fields, reserved))
    if not documents:
        return [*carried, text_field, *output_columns(labels, documents=False)]
    kind, doc_row, sentence_index, *rest = output_columns(labels, documents=True)
    return [kind, doc_row, sentence_index, *carried, text_field, *rest]


def _write_chunk(
    writer: OutputWriter,
    chunk: list[Record],
    first_row: int,
    sentences: list[list[str]],
    by_text: dict[int, np.ndarray],
    labels: list[str],
    text_field: str,
    reserved: set[str],
    summary: PredictionSummary,
) -> None:
    """Write ``chunk``'s rows; ``sentences`` is one list of texts per record (one text
    per record outside documents mode), ``by_text`` their probabilities by flat index."""
    documents = summary.documents_mode
    flat = 0
    for document_row, (record, texts) in enumerate(zip(chunk, sentences, strict=True), first_row):
        carried = _carried_fields(record.fields, reserved)
        counts: Counter[str] = Counter()
        for sentence_index, text in enumerate(texts):
            prediction = _prediction_fields(labels, by_text.get(flat))
            flat += 1
            if prediction["label"] is not None:
                counts[prediction["label"]] += 1
            where = {"kind": "sentence", "doc_row": document_row, "sentence_index": sentence_index}
            row = {**carried, text_field: text, **prediction}
            writer.write({**where, **row} if documents else row)
        summary.label_counts.update(counts)
        if documents:
            stance = document_stance(counts, labels)
            writer.write({"kind": "document", "doc_row": document_row, **carried, **stance})
            summary.documents += 1


def document_stance(counts: Counter[str], labels: list[str]) -> dict[str, Any]:
    """Counts, shares and the overall stance of one document's sentences.

    The overall stance is the more frequent of ``favor`` and ``against`` (a tie
    is ``none``); a blank document's label and shares are ``None``, as a blank
    row's prediction is, so it cannot pass for one read and found neutral.

    Example:
        >>> document_stance(Counter(favor=2, none=5), ["favor", "against", "none"])["label"]
        'favor'
    """
    total = sum(counts.values())
    favor, against = counts.get("favor", 0), counts.get("against", 0)
    overall = "favor" if favor > against else "against" if against > favor else "none"
    return {
        "sentences": total,
        **{f"count_{label}": counts.get(label, 0) for label in labels},
        **{
            f"share_{label}": round(counts.get(label, 0) / total, 4) if total else None
            for label in labels
        },
        "label": overall if total else None,
    }


def _broadcast_int(value: int, accelerator: Any) -> int:
    """The main process's ``value`` on every process (a tensor broadcast, no pickling)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast

    return int(broadcast(torch.tensor([value], device=accelerator.device)).item())
