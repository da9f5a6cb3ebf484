"""Labelled JSONL files (seed, dev, annotations...) read and checked in one place, as a Dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from negstance.model.errors import NegstanceError
from negstance.model.io import check_input_file
from negstance.model.labels import LABELS
from negstance.model.text import split_sentences

if TYPE_CHECKING:
    from datasets import Dataset

PathLike = str | os.PathLike[str]
# The type a field must have wherever a row has it, and how an error names it.
FIELD_TYPES = {
    "id": ((str, int), "a string"),
    "text": (str, "a string"),
    "index": (int, "an integer"),
    "ambiguous": (bool, "true or false"),
    "annotator": (str, "a name"),
}


def segment_articles(raw_dir: PathLike) -> list[dict[str, Any]]:
    """Every sentence of the ``*.txt`` articles in ``raw_dir``, as the seed set was segmented."""
    rows = []
    for path in sorted(Path(raw_dir).glob("*.txt")):
        for index, text in enumerate(split_sentences(path.read_text(encoding="utf-8"))):
            rows.append({"id": f"{path.stem[:3]}-{index:02d}", "doc": path.stem, "index": index})
            rows[-1]["text"] = text
    return rows


def read_labelled_records(
    paths: PathLike | Sequence[PathLike],
    require: Collection[str] = ("text", "label"),
    null_label: bool = False,
) -> list[dict[str, Any]]:
    """The checked rows of JSONL file(s): each with the ``require`` fields, a label of ``LABELS``
    (or null, with ``null_label``) and an ``id`` unique across the files (else ``line-N``).
    Example: ``read_labelled_records("data/seed_sentences.jsonl")[0]["label"]`` is ``'favor'``."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    rows: list[dict[str, Any]] = []
    first_at: dict[str, tuple[PathLike, int]] = {}
    for path in paths:
        lines = check_input_file(path).read_bytes().splitlines()
        if not any(line.strip() for line in lines):
            raise NegstanceError(f"{path}: no rows (the file is empty)")
        for number, line in enumerate(lines, start=1):
            where = f"{path}, line {number}"
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError alike
                raise NegstanceError(f"{where}: not a JSON line ({error})") from None
            if row is None:
                continue
            _check_row(row, where, require, null_label)
            default = f"line-{number}" if len(paths) == 1 else f"{path}:line-{number}"
            row["id"] = key = str(row.get("id", default))
            if key in first_at:
                first_path, first_line = first_at[key]
                first = f"{first_path}, " * (first_path != path) + f"line {first_line}"
                raise NegstanceError(f"{where}: duplicate id {key!r} (first on {first})")
            first_at[key] = (path, number)
            rows.append(row)
    return rows


def _check_row(row: Any, where: str, require: Collection[str], null_label: bool) -> None:
    if not isinstance(row, dict):
        raise NegstanceError(f"{where}: expected a JSON object")
    for name in require:
        if name not in row or (row[name] is None and not (name == "label" and null_label)):
            raise NegstanceError(f"{where}: no {name!r} field")
    for name, (kinds, kind_name) in FIELD_TYPES.items():
        value = row.get(name)
        # bool is an int to Python, not to a user: true is no index.
        wrong = not isinstance(value, kinds) or isinstance(value, bool) != (kinds is bool)
        if name in row and wrong:
            raise NegstanceError(f"{where}: {name!r} must be {kind_name}, got {value!r}")
        if isinstance(value, str) and not value.strip():
            raise NegstanceError(f"{where}: empty {name}")
    if "label" in require and row["label"] not in (*LABELS, *[None] * null_label):
        raise NegstanceError(f"{where}: unknown label {row['label']!r}; use {'/'.join(LABELS)}")


def load_seed_dataset(
    path: PathLike | Sequence[PathLike] = "data/seed_sentences.jsonl",
    exclude_ambiguous: bool = False,
) -> Dataset:
    """Labelled JSONL file(s), concatenated, with a ``ClassLabel(LABELS)`` label column.
    Example: ``load_seed_dataset(["data/seed_sentences.jsonl", "b.jsonl"])["label"][0]`` is 0."""
    if not isinstance(path, (str, os.PathLike)) and not path:
        raise NegstanceError("no training data: data_path lists no files")
    rows = [
        {"doc": "", "index": position, "ambiguous": False} | row
        for position, row in enumerate(read_labelled_records(path))
    ]
    rows = [row for row in rows if not (exclude_ambiguous and row["ambiguous"])]
    # Imported here: the label.py commands read these files without datasets (0.7 s).
    from datasets import ClassLabel, Dataset, Features, Value

    # Declared, not inferred: class_encode_column would sort the names alphabetically
    # and silently disagree with the checkpoint's id2label.
    string, label = Value("string"), ClassLabel(names=list(LABELS))
    features = {"id": string, "doc": string, "index": Value("int32"), "text": string}
    features = Features(features | {"label": label, "ambiguous": Value("bool")})
    columns = {name: [row[name] for row in rows] for name in features}
    columns["doc"] = list(map(str, columns["doc"]))
    return Dataset.from_dict(columns, features=features)


def split_by_documents(dataset: Dataset, held_out_docs: list[str]) -> tuple[Dataset, Dataset]:
    """``(train, held_out)``: every sentence of a held-out document goes to ``held_out``."""
    documents, held = dataset["doc"], set(held_out_docs)
    if unknown := sorted(held - set(documents)):
        raise NegstanceError(
            f"validation_docs not in the data: {', '.join(unknown)} "
            f"(documents: {', '.join(sorted(set(documents)))})"
        )
    if held >= set(documents):
        raise NegstanceError("validation_docs hold out every document: nothing left to train on")
    # select, not filter: filter prints a progress bar even for 153 rows.
    train = dataset.select([i for i, doc in enumerate(documents) if doc not in held])
    return train, dataset.select([i for i, doc in enumerate(documents) if doc in held])


def check_trainable(dataset: Dataset, name: str = "training data") -> None:
    """A split must have rows and at least two labels to learn anything."""
    if len(dataset) == 0:
        raise NegstanceError(f"{name} is empty: no labelled sentences to learn from")
    if len(present := set(dataset["label"])) < 2:
        only = dataset.features["label"].int2str(next(iter(present)))
        raise NegstanceError(f"{name} has only one label ({only!r}); at least two are needed")
