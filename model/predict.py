"""Batch inference over files: streaming, in input order, sharded over processes.

The input is read in chunks of ``chunk_size`` records. Inside a chunk the
classifier sorts by length (little padding); rows are written back in input
order as each chunk finishes, so memory stays flat however large the file.

Under ``accelerate launch`` every process reads the same chunk, classifies its
own contiguous slice of it, and the main process gathers the slices in rank
order and writes them: the output is the same as a single-process run.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from negstance.model.io import OutputWriter, Record, read_records
from negstance.model.modeling import StanceClassifier
from negstance.model.text import split_sentences


@dataclass
class PredictionSummary:
    """What a ``predict_file`` run did, for the final report line."""

    rows: int = 0
    classified: int = 0
    empty: int = 0
    truncated: int = 0
    resumed_from: int = 0
    documents: int = 0
    label_counts: Counter[str] = field(default_factory=Counter)
    output: Path | None = None

    def describe(self) -> str:
        counts = ", ".join(f"{label} {count}" for label, count in sorted(self.label_counts.items()))
        parts = [f"{self.rows} rows", f"{self.classified} classified ({counts})"]
        if self.documents:
            parts.append(f"{self.documents} documents")
        if self.empty:
            parts.append(f"{self.empty} empty rows left unlabelled")
        if self.truncated:
            parts.append(f"{self.truncated} texts truncated to the model's maximum length")
        if self.resumed_from:
            parts.append(f"resumed after row {self.resumed_from}")
        return "; ".join(parts)


class _SingleProcess:
    """The few ``Accelerator`` members used here, for runs without accelerate."""

    num_processes = 1
    process_index = 0
    is_main_process = True


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def _shard_bounds(length: int, processes: int, index: int) -> tuple[int, int]:
    per_process = -(-length // processes)
    return min(index * per_process, length), min((index + 1) * per_process, length)


def _classify_texts(
    classifier: StanceClassifier, texts: list[str], batch_size: int, accelerator: Any
) -> tuple[np.ndarray, int]:
    """Probabilities for ``texts`` (non-empty), split over the processes and gathered back."""
    start, end = _shard_bounds(len(texts), accelerator.num_processes, accelerator.process_index)
    probabilities, truncated = classifier.probabilities_and_truncation(
        texts[start:end], batch_size=batch_size
    )
    if accelerator.num_processes == 1:
        return probabilities, truncated
    from accelerate.utils import gather_object

    # gather_object returns the per-process lists concatenated in rank order,
    # which is input order because each rank holds a contiguous slice.
    gathered = gather_object([(probabilities, truncated)])
    merged = np.concatenate([part for part, _ in gathered]) if gathered else probabilities
    return merged, sum(count for _, count in gathered)


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


def _sentence_rows(
    chunk: list[Record], text_field: str, documents: bool, first_row: int
) -> list[tuple[int, Record, str, int | None]]:
    """``(row_number, record, text, sentence_index)`` for each thing to classify."""
    rows = []
    for offset, record in enumerate(chunk):
        if documents:
            for sentence_index, sentence in enumerate(split_sentences(record.text)):
                rows.append((first_row + offset, record, sentence, sentence_index))
        else:
            rows.append((first_row + offset, record, record.text, None))
    return rows


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

    Sentence mode (default): one output row per input row, with the text, ``label``,
    ``score`` and ``prob_<label>`` columns; empty rows get empty predictions.
    ``documents=True``: every record is a whole article; it is split into
    sentences, and each sentence gets a row (``doc_row``, ``sentence_index``),
    followed by a per-document summary row (``kind: "document"``) with counts,
    shares and the overall stance.

    Example:
        >>> summary = predict_file(classifier, "news.txt", "stance.jsonl")  # doctest: +SKIP
    """
    accelerator = accelerator or _SingleProcess()
    labels = classifier.labels
    summary = PredictionSummary()
    writer = None
    if accelerator.is_main_process:
        writer = OutputWriter(output_path, overwrite=overwrite, resume=resume)
        summary.resumed_from = writer.rows_done
    skip = _broadcast_int(summary.resumed_from, accelerator)
    records = read_records(input_path, text_field=text_field, encoding=encoding)
    total = _count_lines(Path(input_path)) if show_progress else None
    progress = tqdm(
        total=total,
        initial=skip,
        unit=" rows",
        desc="predict",
        disable=not (show_progress and accelerator.is_main_process),
        dynamic_ncols=True,
    )
    try:
        rows_done = 0
        for chunk in _chunks(records, chunk_size):
            if rows_done + len(chunk) <= skip:
                rows_done += len(chunk)
                continue
            if rows_done < skip:
                chunk = chunk[skip - rows_done :]
                rows_done = skip
            items = _sentence_rows(chunk, text_field, documents, rows_done)
            wanted = [index for index, item in enumerate(items) if item[2].strip()]
            probabilities, truncated = _classify_texts(
                classifier, [items[index][2] for index in wanted], batch_size, accelerator
            )
            by_item = dict(zip(wanted, probabilities, strict=True))
            summary.truncated += truncated
            summary.classified += len(wanted)
            summary.empty += len(items) - len(wanted)
            summary.rows = rows_done
            if writer is not None:
                _write_chunk(writer, chunk, items, by_item, labels, text_field, documents, summary)
            rows_done += len(chunk)
            summary.rows = rows_done
            if writer is not None:
                writer.checkpoint(rows_done)
            progress.update(len(chunk))
        if writer is not None:
            summary.output = writer.commit()
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    return summary


def _write_chunk(
    writer: OutputWriter,
    chunk: list[Record],
    items: list[tuple[int, Record, str, int | None]],
    by_item: dict[int, np.ndarray],
    labels: list[str],
    text_field: str,
    documents: bool,
    summary: PredictionSummary,
) -> None:
    if not documents:
        for index, (_, record, text, _) in enumerate(items):
            prediction = _prediction_fields(labels, by_item.get(index))
            summary.label_counts[prediction["label"] or "(empty)"] += 1
            writer.write({**record.fields, text_field: text, **prediction})
        return
    sentences_of: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        sentences_of.setdefault(item[0], []).append(index)
    first_row = summary.rows
    for offset, record in enumerate(chunk):
        document_row = first_row + offset
        document_counts: Counter[str] = Counter()
        for index in sentences_of.get(document_row, []):
            _, _, text, sentence_index = items[index]
            prediction = _prediction_fields(labels, by_item.get(index))
            if prediction["label"] is not None:
                document_counts[prediction["label"]] += 1
                summary.label_counts[prediction["label"]] += 1
            writer.write(
                {
                    "kind": "sentence",
                    "doc_row": document_row,
                    "sentence_index": sentence_index,
                    **record.fields,
                    text_field: text,
                    **prediction,
                }
            )
        writer.write(
            {
                "kind": "document",
                "doc_row": document_row,
                **record.fields,
                **document_stance(document_counts, labels),
            }
        )
        summary.documents += 1


def document_stance(counts: Counter[str], labels: list[str]) -> dict[str, Any]:
    """Counts, shares and the overall stance of one document's sentences.

    The overall stance is the more frequent of ``favor`` and ``against`` among
    the sentences that take a side (``none`` sentences carry no stance); a tie,
    or no stance-taking sentence at all, is ``none``.
    """
    total = sum(counts.values())
    favor, against = counts.get("favor", 0), counts.get("against", 0)
    overall = "favor" if favor > against else "against" if against > favor else "none"
    return {
        "sentences": total,
        **{f"count_{label}": counts.get(label, 0) for label in labels},
        **{
            f"share_{label}": round(counts.get(label, 0) / total, 4) if total else 0.0
            for label in labels
        },
        "label": overall,
    }


def _broadcast_int(value: int, accelerator: Any) -> int:
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return int(broadcast_object_list([value])[0])
