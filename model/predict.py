"""Batch inference over files, ``chunk_size`` records at a time, longest texts first in a chunk.
Ctrl-C or SIGTERM stops after the current batch: finished rows go to ``<output>.partial``, the
probabilities of texts classified beyond them to its progress record, for ``--resume``."""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from negstance.model.classifier import StanceClassifier
from negstance.model.io import OutputWriter, Record, read_records
from negstance.model.text import split_sentences


@dataclass
class PredictionSummary:
    """What a ``predict_file`` run did, for the final report line."""

    rows: int = 0
    classified: int = 0
    empty: int = 0  # blank rows (blank documents in documents mode), left unlabelled
    truncated: int = 0
    resumed_from: int = 0
    documents_mode: bool = False
    seconds: float = 0.0
    label_counts: Counter[str] = field(default_factory=Counter)
    output: Path | None = None

    def describe(self) -> str:
        counts = ", ".join(f"{label} {count}" for label, count in sorted(self.label_counts.items()))
        unit = "document" if self.documents_mode else "row"
        parts = [f"{self.rows} {unit}{'s' * (self.rows != 1)}", f"{self.classified} classified"]
        parts[1] += f" ({counts})" if counts else ""
        if self.empty:
            parts.append(f"{self.empty} empty {unit}{'s' * (self.empty != 1)} left unlabelled")
        if self.truncated:
            parts.append(f"{self.truncated} texts truncated to the model's maximum length")
        if self.resumed_from:
            parts.append(f"resumed after row {self.resumed_from}")
        if self.seconds > 0 and self.classified:
            parts.append(f"{self.classified / self.seconds:.0f} sentences/s")
        return "; ".join(parts)


class PredictionInterrupted(KeyboardInterrupt):
    """``predict_file`` stopped by Ctrl-C or SIGTERM, once every finished row was saved."""


def document_stance(counts: Counter[str], labels: list[str]) -> dict[str, Any]:
    """Counts, shares and stance of a document's sentences: the more frequent of ``favor``
    and ``against`` (a tie is ``none``; a blank document has ``None``). Example:
    ``document_stance(Counter(favor=2, none=5), ["favor", "against", "none"])["label"]``."""
    total = sum(counts.values())
    favor, against = counts.get("favor", 0), counts.get("against", 0)
    overall = "favor" if favor > against else "against" if against > favor else "none"
    shares = {f"share_{x}": round(counts[x] / total, 4) if total else None for x in labels}
    counted = {f"count_{label}": counts.get(label, 0) for label in labels}
    return {"sentences": total, **counted, **shares, "label": overall if total else None}


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
    """Classify every record of ``input_path`` into ``output_path``, in input order: its
    fields, text, ``label``, ``score``, ``prob_<label>`` (empty for a blank row); with
    ``documents`` a row per sentence and a summary row per record. ``accelerator``: a
    ``PartialState`` under ``accelerate launch``. Ctrl-C raises ``PredictionInterrupted``.
    Example: ``predict_file(classifier, "news.txt", "stance.jsonl").describe()``."""
    records = read_records(input_path, text_field=text_field, encoding=encoding)  # checks now
    source, model = Path(input_path).resolve(), classifier.model.config.name_or_path
    model = str(Path(model).resolve()) if Path(model).exists() else model
    command = {"input": str(source), "input size": source.stat().st_size, "--model": model}
    command |= {"input modified": source.stat().st_mtime, "--documents": documents}
    command |= {"--encoding": codecs.lookup(encoding).name, "--text_column": text_field}
    command |= {"--precision": classifier.precision, "--batch_size": batch_size}
    command |= {"--chunk_size": chunk_size}  # all that makes outputs differ: --resume checks it
    writer = OutputWriter(output_path, overwrite, resume, input_path, command)
    done, main = writer.rows_done, accelerator is None or accelerator.is_main_process
    summary = PredictionSummary(done, resumed_from=done, documents_mode=documents)
    total = None  # for the ETA: an upper bound for .jsonl and .csv, whose header is no record
    if show_progress and main:
        with open(input_path, "rb") as handle:
            total = sum(1 for _ in handle) - (Path(input_path).suffix.lower() in (".csv", ".tsv"))
    unit = " documents" if documents else " sentences"
    bar = tqdm(total=total, initial=done, unit=unit, desc="predict", disable=not total)
    run = _Run(classifier, writer, main, summary, bar, text_field, batch_size, accelerator)
    pending, started = writer.pending, time.perf_counter()
    first = pending["start"] if pending else done
    rest = itertools.islice(records, first, None)
    with bar, _stop_on_signals(run.stop), contextlib.closing(writer):
        while chunk := list(itertools.islice(rest, chunk_size)):
            run.chunk(first, chunk, pending)
            first, pending = first + len(chunk), None
        summary.seconds = time.perf_counter() - started
        summary.output = writer.commit() if main else None
    return summary


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM sets ``stop``; a second one stops at once."""

    def request_stop(number: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    main = threading.current_thread() is threading.main_thread()  # the one signals reach
    previous = {n: signal.signal(n, request_stop) for n in (signal.SIGINT, signal.SIGTERM) if main}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass
class _Run:
    """One ``predict_file`` run: classifies a chunk, then (main process) writes it."""

    classifier: StanceClassifier
    writer: OutputWriter
    main: bool  # the process that writes
    summary: PredictionSummary
    bar: tqdm
    text_field: str
    batch_size: int
    accelerator: Any = None  # a PartialState under `accelerate launch`
    stop: threading.Event = field(default_factory=threading.Event)
    span: tuple[int, int] = (0, 1)  # the chunk's first record and its size

    def chunk(self, first: int, records: list[Record], pending: dict[str, Any] | None) -> None:
        """Classify and write the records from ``first``, those of ``pending`` known; raise
        ``PredictionInterrupted`` when stopped before the end."""
        documents = self.summary.documents_mode
        pieces = [split_sentences(r.text) if documents else [r.text] for r in records]
        texts = [t for ts in pieces for t in ts if t.strip()]  # blank ones stay unlabelled
        owner = np.array([n for n, ts in enumerate(pieces) for t in ts if t.strip()], dtype=int)
        self.span = (first, len(records))
        probabilities, known = self.classify(texts, pending)
        finished = int(owner[~known].min(initial=len(records)))
        stopped = finished < len(records)
        if self.main:
            start = self.summary.rows - first  # the first record not yet written
            values = iter(probabilities[np.searchsorted(owner, start) :])
            rows = (first + start, records[start:finished], pieces[start:finished], values)
            self.write(*rows, header=records[0])
            done = np.flatnonzero(known).tolist()
            kept = {"start": first, "done": done, "probabilities": probabilities[done].tolist()}
            self.writer.checkpoint(first + finished, kept if stopped else None)
        self.summary.rows = first + finished
        self.advance(finished / len(records))
        if stopped:
            unit = "documents" if documents else "rows"
            message = f"{self.summary.rows} {unit} written to {self.writer.partial}"
            if held := int(known[owner >= finished].sum()):
                message += f" ({held} sentences classified beyond them are kept with it)"
            raise PredictionInterrupted(message)

    def classify(self, texts: list[str], pending: dict[str, Any] | None) -> tuple[Any, Any]:
        """Probabilities of ``texts`` and which are known: ``pending`` ones, then batch by
        batch (each process its share) until all are or the run is stopped."""
        sharded = self.accelerator is not None and self.accelerator.num_processes > 1
        split = self.accelerator.split_between_processes if sharded else contextlib.nullcontext
        with split(texts) as share:
            encoded = self.classifier.encode(share, self.batch_size)
        probabilities = np.zeros((len(share), len(self.classifier.labels)), dtype=np.float32)
        known, truncated = np.zeros(len(share), dtype=bool), 0
        if pending and not sharded:
            probabilities[pending["done"]] = pending["probabilities"] or 0
            known[pending["done"]] = True
        for number, batch in enumerate(encoded.batches, 1):
            if known[batch[0]]:  # classified before an interrupt
                continue
            if self.stop.is_set():
                break
            probabilities[batch] = self.classifier.classify_batch(encoded, batch)
            known[batch], truncated = True, truncated + sum(encoded.truncated[i] for i in batch)
            self.advance(number / len(encoded.batches))
        if sharded:  # every process gets every share, in order, or none when stopped
            from accelerate.utils import gather_object

            if not known.all():
                return probabilities, np.zeros(len(texts), dtype=bool)
            shares = gather_object([(probabilities, truncated)])
            probabilities = np.concatenate([probabilities for probabilities, _ in shares])
            known, truncated = np.ones(len(texts), dtype=bool), sum(t for _, t in shares)
        self.summary.truncated += truncated
        return probabilities, known

    def advance(self, fraction: float) -> None:
        """Move the bar to ``fraction`` of the chunk: per batch, as a chunk can take minutes."""
        first, size = self.span
        self.bar.update(max(first + int(size * fraction) - self.bar.n, 0))

    def write(self, first: int, records: list, pieces: list, values: Iterator, header: Record):
        """Write ``records`` from row ``first``: their texts ``pieces``, probabilities ``values``
        of the non-blank ones in turn; ``header``'s fields name a CSV's columns."""
        labels, text_field, summary = self.classifier.labels, self.text_field, self.summary
        documents = summary.documents_mode
        scores = [f"prob_{label}" for label in labels]
        added = ["label", "score", *scores]
        if documents:
            counted = [f"{kind}_{label}" for kind in ("count", "share") for label in labels]
            added = ["kind", "doc_row", "sentence_index", *added, "sentences", *counted]
        named = {text_field, *added}  # an input field of an output column's name is renamed

        def carried(record: Record) -> dict[str, Any]:
            return {(f"input_{k}" if k in named else k): v for k, v in record.fields.items()}

        rows: list[dict[str, Any]] = []
        for number, record, texts in zip(itertools.count(first), records, pieces):
            counts: Counter[str] = Counter()
            for index, text in enumerate(texts):
                prediction = dict.fromkeys(["label", "score", *scores])  # blank: unlabelled
                if text.strip():
                    probabilities = next(values)
                    rounded = [round(float(probability), 6) for probability in probabilities]
                    best = int(probabilities.argmax())
                    prediction = {"label": labels[best], "score": rounded[best]}
                    prediction |= dict(zip(scores, rounded, strict=True))
                    counts[labels[best]] += 1
                row = {**carried(record), text_field: text, **prediction}
                where = {"kind": "sentence", "doc_row": number, "sentence_index": index}
                rows.append({**where, **row} if documents else row)
            if documents:
                stance = document_stance(counts, labels)
                rows.append({"kind": "document", "doc_row": number, **carried(record), **stance})
            summary.label_counts.update(counts)
            summary.classified += counts.total()
            summary.empty += not record.text.strip()
        fields = [*carried(header), text_field]  # in documents mode, summary rows add columns
        columns = [*added[:3], *fields, *added[3:]] if documents else [*fields, *added]
        self.writer.write(rows, columns)
