"""The labelled seed set as a ``datasets.Dataset``, and the segmentation it came from."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, Features, Value

from negstance.model.errors import NegstanceError
from negstance.model.io import read_records
from negstance.model.labels import LABELS
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
    path: str | os.PathLike[str], default_id_prefix: str = "line-"
) -> list[dict[str, Any]]:
    """Labelled sentences from a JSONL file (``text`` and ``label``; ``id``, ``doc`` optional).

    Rejects missing or unknown labels, empty text, badly typed optional fields
    and duplicate ids, naming the line. A row without ``id`` gets
    ``<default_id_prefix><line number>``.

    Example:
        >>> read_labelled_records("data/seed_sentences.jsonl")[0]["label"]  # doctest: +SKIP
        'favor'
    """
    if not Path(path).exists():
        raise NegstanceError(
            f"training data not found: {path} (set data_path in the config or --data_path=FILE)"
        )
    rows: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    for record in read_records(path, text_field="text"):
        fields = record.fields
        where = f"{path}, line {record.line_number}"
        if "label" not in fields:
            raise NegstanceError(f"{where}: no 'label' field")
        label = fields["label"]
        if label not in LABELS:
            raise NegstanceError(
                f"{where}: unknown label {label!r}; labels are {', '.join(LABELS)}"
            )
        if not record.text.strip():
            raise NegstanceError(f"{where}: empty text")
        index = _as_int(fields.get("index", len(rows)))
        if index is None:
            raise NegstanceError(f"{where}: 'index' must be an integer, got {fields['index']!r}")
        ambiguous = _as_bool(fields.get("ambiguous", False))
        if ambiguous is None:
            raise NegstanceError(
                f"{where}: 'ambiguous' must be true or false, got {fields['ambiguous']!r}"
            )
        identifier = str(fields.get("id", f"{default_id_prefix}{record.line_number}"))
        if identifier in seen_ids:
            raise NegstanceError(
                f"{where}: duplicate id {identifier!r} (first on line {seen_ids[identifier]})"
            )
        seen_ids[identifier] = record.line_number
        rows.append(
            {
                "id": identifier,
                "doc": str(fields.get("doc", "")),
                "index": index,
                "text": record.text,
                "label": label,
                "ambiguous": ambiguous,
            }
        )
    return rows


def _as_int(value: Any) -> int | None:
    """An int from JSON, or from the digits of a CSV cell."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _as_bool(value: Any) -> bool | None:
    """A bool from JSON, or from a CSV cell such as ``true``, ``False``, ``1`` or empty."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False, "": False}.get(
            value.strip().lower()
        )
    return None


def load_seed_dataset(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "data/seed_sentences.jsonl",
    exclude_ambiguous: bool = False,
) -> Dataset:
    """The labelled sentences with a ``ClassLabel(["favor", "against", "none"])`` column.

    ``path`` is one labelled JSONL or a list of them, concatenated in order; ids
    must be unique across the files. The ``doc`` column names the source article,
    for grouped (per-article) splits.

    Example:
        >>> dataset = load_seed_dataset()  # doctest: +SKIP
        >>> dataset.features["label"].names  # doctest: +SKIP
        ['favor', 'against', 'none']
        >>> both = load_seed_dataset(["data/seed_sentences.jsonl", "new.jsonl"])  # doctest: +SKIP
        >>> len(both)  # doctest: +SKIP
        203
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise NegstanceError("no training data: data_path lists no files")
    rows: list[dict[str, Any]] = []
    first_file_of: dict[str, str | os.PathLike[str]] = {}
    for one_path in paths:
        # Rows without ids get ids naming their file, so two such files do not collide.
        prefix = "line-" if len(paths) == 1 else f"{one_path}:line-"
        for row in read_labelled_records(one_path, default_id_prefix=prefix):
            if row["id"] in first_file_of:
                raise NegstanceError(
                    f"{one_path}: id {row['id']!r} is also in {first_file_of[row['id']]}; "
                    "ids must be unique across the data_path files"
                )
            first_file_of[row["id"]] = one_path
            rows.append(row)
    if exclude_ambiguous:
        rows = [row for row in rows if not row["ambiguous"]]
    return Dataset.from_list(rows, features=FEATURES)


def split_by_documents(dataset: Dataset, held_out_docs: list[str]) -> tuple[Dataset, Dataset]:
    """``(train, held_out)``: every sentence of a held-out document goes to ``held_out``."""
    unknown = sorted(set(held_out_docs) - set(dataset["doc"]))
    if unknown:
        raise NegstanceError(
            f"validation_docs not in the data: {', '.join(unknown)} "
            f"(documents: {', '.join(sorted(set(dataset['doc'])))})"
        )
    held = set(held_out_docs)
    if held >= set(dataset["doc"]):
        raise NegstanceError(
            f"validation_docs hold out every document ({len(held)}): nothing is left to "
            "train on; leave at least one document out of validation_docs"
        )
    # select, not filter: filter prints a progress bar even for 153 rows.
    documents = dataset["doc"]
    train = dataset.select([i for i, doc in enumerate(documents) if doc not in held])
    held_out = dataset.select([i for i, doc in enumerate(documents) if doc in held])
    return train, held_out


def check_trainable(dataset: Dataset, name: str = "training data") -> None:
    """A split must have rows and at least two labels to learn anything."""
    if len(dataset) == 0:
        raise NegstanceError(f"{name} is empty: no labelled sentences to learn from")
    present = set(dataset["label"])
    if len(present) < 2:
        only = dataset.features["label"].int2str(next(iter(present)))
        raise NegstanceError(f"{name} has only one label ({only!r}); at least two are needed")
