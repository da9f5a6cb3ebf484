"""The labelled seed set as a ``datasets.Dataset``, and the segmentation it came from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, Features, Value

from negstance.model.errors import NegstanceError
from negstance.model.io import read_records
from negstance.model.modeling import LABELS
from negstance.model.text import split_sentences

# Declared, not inferred: class_encode_column would sort the names alphabetically
# (against, favor, none) and silently disagree with the checkpoint's id2label.
FEATURES = Features(
    {
        "id": Value("string"),
        "doc": Value("string"),
        "index": Value("int32"),
        "text": Value("string"),
        "label": ClassLabel(names=list(LABELS)),
        "ambiguous": Value("bool"),
    }
)


def segment_articles(raw_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every sentence of every ``*.txt`` article in ``raw_dir``, in document order, unlabelled.

    This is the segmentation ``data/seed_sentences.jsonl`` was built from.
    """
    rows = []
    for path in sorted(Path(raw_dir).glob("*.txt")):
        for index, sentence in enumerate(split_sentences(path.read_text(encoding="utf-8"))):
            rows.append(
                {
                    "id": f"{path.stem[:3]}-{index:02d}",
                    "doc": path.stem,
                    "index": index,
                    "text": sentence,
                }
            )
    return rows


def read_labelled_records(
    path: str | os.PathLike[str], encoding: str = "utf-8"
) -> list[dict[str, Any]]:
    """Labelled sentences from a JSONL file (``text`` and ``label``; ``id``, ``doc`` optional).

    Rejects unknown labels and duplicate ids, naming the line.
    """
    rows: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    for record in read_records(path, text_field="text", encoding=encoding):
        fields = record.fields
        where = f"{path}, line {record.line_number}"
        label = fields.get("label")
        if label not in LABELS:
            raise NegstanceError(
                f"{where}: label must be one of {', '.join(LABELS)}, got {label!r}"
            )
        if not record.text.strip():
            raise NegstanceError(f"{where}: empty text")
        identifier = str(fields.get("id", f"line-{record.line_number}"))
        if identifier in seen_ids:
            raise NegstanceError(
                f"{where}: duplicate id {identifier!r} (first on line {seen_ids[identifier]})"
            )
        seen_ids[identifier] = record.line_number
        rows.append(
            {
                "id": identifier,
                "doc": str(fields.get("doc", "")),
                "index": int(fields.get("index", len(rows))),
                "text": record.text,
                "label": label,
                "ambiguous": bool(fields.get("ambiguous", False)),
            }
        )
    return rows


def load_seed_dataset(
    path: str | os.PathLike[str] = "data/seed_sentences.jsonl",
    exclude_ambiguous: bool = False,
) -> Dataset:
    """The labelled sentences with a ``ClassLabel(["favor", "against", "none"])`` column.

    The ``doc`` column names the source article, for grouped (per-article) splits.

    Example:
        >>> dataset = load_seed_dataset()  # doctest: +SKIP
        >>> dataset.features["label"].names  # doctest: +SKIP
        ['favor', 'against', 'none']
    """
    rows = read_labelled_records(path)
    if exclude_ambiguous:
        rows = [row for row in rows if not row["ambiguous"]]
    return Dataset.from_list(rows, features=FEATURES)


def split_by_documents(dataset: Dataset, held_out_docs: list[str]) -> tuple[Dataset, Dataset]:
    """``(train, held_out)``: every sentence of a held-out document goes to ``held_out``."""
    unknown = sorted(set(held_out_docs) - set(dataset["doc"]))
    if unknown:
        raise NegstanceError(f"validation_docs not in the data: {', '.join(unknown)}")
    held = set(held_out_docs)
    train = dataset.filter(lambda doc: doc not in held, input_columns="doc")
    held_out = dataset.filter(lambda doc: doc in held, input_columns="doc")
    return train, held_out


def check_trainable(dataset: Dataset, name: str = "training data") -> None:
    """A split must have rows and at least two labels to learn anything."""
    if len(dataset) == 0:
        raise NegstanceError(f"{name} is empty")
    present = set(dataset["label"])
    if len(present) < 2:
        only = dataset.features["label"].int2str(next(iter(present)))
        raise NegstanceError(f"{name} has only one label ({only!r}); at least two are needed")
