"""Labels from several annotators: annotation files, agreement, merging into training data.

The bookkeeping behind ``label.py agree`` and ``merge`` (``suggest`` is in
:mod:`negstance.train.suggest`, the terminal labeller in :mod:`negstance.train.annotate`):

* ``agree``: Cohen's (two annotators) or Fleiss' (more) kappa, raw agreement,
  confusion tables, and the disagreements as a file to adjudicate.
* ``merge``: the annotations and adjudications as a labelled JSONL in the seed
  set's format, which training reads next to the seed set (``data_path`` list).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from negstance.model.errors import NegstanceError
from negstance.model.io import (
    check_input_file,
    check_output_path,
    file_format,
    read_records,
    write_text_atomic,
)
from negstance.model.labels import LABELS
from negstance.train.report import confusion_table
from negstance.train.suggest import find_duplicates, normalise_text

# Fields that describe a sentence (not an answer), carried from file to file.
SENTENCE_FIELDS = ("doc", "index", "text", "previous", "next")


@dataclass
class Annotation:
    """One answer: ``label`` is ``None`` for a skipped sentence."""

    id: str
    label: str | None
    ambiguous: bool
    line_number: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnnotationFile:
    """An annotator's answers, by sentence id, in file order."""

    path: Path
    annotator: str
    rows: dict[str, Annotation]


def read_annotations(path: str | os.PathLike[str]) -> AnnotationFile:
    """Read a JSONL of answers: ``id``, ``label`` (favor/against/none, or null when skipped).

    ``ambiguous`` (bool) and ``annotator`` are optional; without an ``annotator``
    field the file's stem names the annotator. Other fields (``text``, ``doc``,
    ``index``...) are kept.

    Example:
        >>> annotations = read_annotations("data/annotation/pass_a.jsonl")  # doctest: +SKIP
        >>> annotations.annotator, annotations.rows["000-00"].label  # doctest: +SKIP
        ('pass_a', 'favor')
    """
    location = check_input_file(path)
    file_format(location, ("jsonl",))
    rows: dict[str, Annotation] = {}
    annotators: set[str] = set()
    # Every answer has an id, and not every file has a text: read the id as the record's text.
    for record in read_records(location, text_field="id"):
        where = f"{location}, line {record.line_number}"
        fields = record.fields
        if not record.text.strip():
            raise NegstanceError(f"{where}: empty id")
        if "label" not in fields:
            raise NegstanceError(
                f"{where}: no 'label' field: not an annotation file (expected rows with id "
                "and label, as `label.py annotate` writes)"
            )
        label = fields.pop("label")
        if label is not None and label not in LABELS:
            raise NegstanceError(
                f"{where}: unknown label {label!r}; labels are {', '.join(LABELS)} "
                "(or null for a skipped sentence)"
            )
        ambiguous = fields.pop("ambiguous", False)
        if not isinstance(ambiguous, bool):
            raise NegstanceError(f"{where}: 'ambiguous' must be true or false, got {ambiguous!r}")
        annotator = fields.pop("annotator", None)
        if annotator is not None:
            if not isinstance(annotator, str) or not annotator.strip():
                raise NegstanceError(f"{where}: 'annotator' must be a name, got {annotator!r}")
            annotators.add(annotator)
        if record.text in rows:
            first = rows[record.text].line_number
            raise NegstanceError(f"{where}: duplicate id {record.text!r} (first on line {first})")
        rows[record.text] = Annotation(record.text, label, ambiguous, record.line_number, fields)
    if len(annotators) > 1:
        raise NegstanceError(
            f"{location}: answers by more than one annotator ({', '.join(sorted(annotators))}); "
            "keep one file per annotator"
        )
    return AnnotationFile(location, annotators.pop() if annotators else location.stem, rows)


def read_sentences(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Sentence fields (``text``, ``doc``, ``index``, ``previous``, ``next``) by ``id``.

    For annotation files that carry ids only (such as ``data/annotation/*.jsonl``):
    any JSONL with ``id`` and ``text``, e.g. the seed set or a suggestions file.
    Labels in it are ignored.

    Example:
        >>> read_sentences("data/seed_sentences.jsonl")["000-00"]["doc"]  # doctest: +SKIP
        '000_e4c9a8a69fdb53e2'
    """
    location = check_input_file(path)
    file_format(location, ("jsonl",))
    sentences: dict[str, dict[str, Any]] = {}
    for record in read_records(location, text_field="text"):
        identifier = record.fields.get("id")
        if not isinstance(identifier, str) or not identifier:
            raise NegstanceError(f"{location}, line {record.line_number}: no 'id' string")
        fields = {name: record.fields[name] for name in SENTENCE_FIELDS if name in record.fields}
        sentences[identifier] = {**fields, "text": record.text}
    return sentences


def annotator_names(files: Sequence[AnnotationFile]) -> list[str]:
    """One distinct name per file: its annotator, with the file name added where two clash.

    Example:
        >>> annotator_names([read_annotations(p) for p in ("a.jsonl", "b.jsonl")])  # doctest: +SKIP
        ['alice', 'bob']
    """
    names = [file.annotator for file in files]
    clashing = {name for name, count in Counter(names).items() if count > 1}
    return [
        f"{name} ({file.path.name})" if name in clashing else name
        for name, file in zip(names, files, strict=True)
    ]


def check_same_sentences(files: Sequence[AnnotationFile]) -> None:
    """Refuse files that are not answers to the same sentences (the same ids, the same texts)."""
    for one, other in itertools.combinations(files, 2):
        if one.path.exists() and other.path.exists() and os.path.samefile(one.path, other.path):
            raise NegstanceError(f"{other.path} is given twice")
    first = files[0]
    for other in files[1:]:
        only_first = [key for key in first.rows if key not in other.rows]
        only_other = [key for key in other.rows if key not in first.rows]
        if only_first or only_other:
            parts = [
                f"{len(ids)} only in {file.path}" + (f" ({_some(ids)})" if ids else "")
                for ids, file in ((only_first, first), (only_other, other))
            ]
            raise NegstanceError(
                f"{first.path} and {other.path} are answers to different sentences "
                f"({'; '.join(parts)}): compare annotations of the same file of suggestions, "
                "each finished"
            )
        for key, answer in first.rows.items():
            text, other_text = answer.fields.get("text"), other.rows[key].fields.get("text")
            if text is not None and other_text is not None and text != other_text:
                raise NegstanceError(
                    f"sentence {key!r} has another text in {other.path} than in {first.path}: "
                    "the files answer different sentences under the same ids"
                )


def _some(ids: Sequence[str], shown: int = 3) -> str:
    return ", ".join(ids[:shown]) + (", ..." if len(ids) > shown else "")


def sentence_fields(
    key: str, files: Sequence[AnnotationFile], sentences: Mapping[str, dict[str, Any]] | None
) -> dict[str, Any]:
    """What is known of sentence ``key``: each field from ``files``, else from ``sentences``."""
    found: dict[str, Any] = {}
    sources = [file.rows[key].fields for file in files if key in file.rows]
    sources.append((sentences or {}).get(key, {}))
    for name in SENTENCE_FIELDS:
        for source in sources:
            if source.get(name) is not None:
                found[name] = source[name]
                break
    return found


def fleiss_kappa(ratings: Sequence[Sequence[str]], labels: Sequence[str] = LABELS) -> float:
    """Fleiss' kappa: ``ratings[i]`` holds every annotator's label of item ``i`` (same count each).

    ``nan`` when every answer is the same label (chance agreement is then 1).

    Example:
        >>> round(fleiss_kappa([["favor"] * 3, ["none"] * 3, ["favor", "favor", "none"]]), 3)
        0.55
    """
    counts = np.array([[row.count(label) for label in labels] for row in ratings], dtype=float)
    raters = counts.sum(axis=1)
    if len(counts) == 0 or raters.min() < 2 or raters.min() != raters.max():
        raise ValueError("Fleiss' kappa needs the same number (at least 2) of labels per item")
    per_item = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / counts.sum()
    chance = float((shares**2).sum())
    if chance >= 1.0:
        return float("nan")
    return float((per_item.mean() - chance) / (1.0 - chance))


@dataclass
class Agreement:
    """Agreement of two or more annotation files over the sentences all of them labelled."""

    annotators: list[str]
    compared: int
    left_out: list[str]
    agreeing: int
    kappa: float
    kappa_name: str
    pairwise_kappa: dict[tuple[str, str], float]
    confusion: dict[tuple[str, str], np.ndarray]
    flagged: dict[str, int]
    disagreements: list[dict[str, Any]]

    @property
    def raw_agreement(self) -> float:
        return self.agreeing / self.compared if self.compared else float("nan")


def agreement(
    files: Sequence[AnnotationFile], sentences: Mapping[str, dict[str, Any]] | None = None
) -> Agreement:
    """Kappa (Cohen's for two files, Fleiss' for more), raw agreement, confusion, disagreements.

    A sentence skipped by anyone is left out of the figures; one that the
    annotators answered differently (a skip included, unless everyone skipped)
    is a disagreement, carrying its text and context (from the files, else
    ``sentences``), every label and who flagged it ambiguous.

    Example:
        >>> paths = ["data/annotation/pass_a.jsonl", "data/annotation/pass_b.jsonl"]
        >>> files = [read_annotations(path) for path in paths]  # doctest: +SKIP
        >>> round(agreement(files).kappa, 3)  # doctest: +SKIP
        0.905
    """
    if len(files) < 2:
        raise NegstanceError("agreement needs at least two annotation files")
    check_same_sentences(files)
    names = annotator_names(files)
    keys = list(files[0].rows)
    labels_of = {key: [file.rows[key].label for file in files] for key in keys}
    compared = [key for key in keys if None not in labels_of[key]]
    if not compared:
        raise NegstanceError("no sentence was labelled by every annotator: nothing to compare")
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    columns = [[labels_of[key][position] for key in compared] for position in range(len(files))]
    pairwise: dict[tuple[str, str], float] = {}
    confusion: dict[tuple[str, str], np.ndarray] = {}
    for i, j in itertools.combinations(range(len(files)), 2):
        pair = (names[i], names[j])
        pairwise[pair] = float(cohen_kappa_score(columns[i], columns[j], labels=list(LABELS)))
        confusion[pair] = confusion_matrix(columns[i], columns[j], labels=list(LABELS))
    if len(files) == 2:
        kappa, kappa_name = next(iter(pairwise.values())), "Cohen's kappa"
    else:
        kappa, kappa_name = fleiss_kappa([labels_of[key] for key in compared]), "Fleiss' kappa"
    disagreements = []
    for key in keys:
        labels = labels_of[key]
        if len(set(labels)) > 1:
            disagreements.append(
                {
                    "id": key,
                    **sentence_fields(key, files, sentences),
                    "labels": dict(zip(names, labels, strict=True)),
                    "flagged_ambiguous": [
                        name
                        for name, file in zip(names, files, strict=True)
                        if file.rows[key].ambiguous
                    ],
                }
            )
    return Agreement(
        annotators=names,
        compared=len(compared),
        left_out=[key for key in keys if None in labels_of[key]],
        agreeing=sum(len(set(labels_of[key])) == 1 for key in compared),
        kappa=kappa,
        kappa_name=kappa_name,
        pairwise_kappa=pairwise,
        confusion=confusion,
        flagged={
            name: sum(answer.ambiguous for answer in file.rows.values())
            for name, file in zip(names, files, strict=True)
        },
        disagreements=disagreements,
    )


def render_agreement(result: Agreement) -> str:
    """The agreement report printed by ``label.py agree`` (plain text, tables in Markdown).

    Example:
        >>> print(render_agreement(agreement(files)))  # doctest: +SKIP
        annotators: pass_a, pass_b
        ...
    """
    lines = [f"annotators: {', '.join(result.annotators)}"]
    left_out = (
        f" ({len(result.left_out)} skipped by someone, left out: {_some(result.left_out)})"
        if result.left_out
        else ""
    )
    lines.append(f"sentences compared: {result.compared}{left_out}")
    lines.append(
        f"raw agreement: {result.agreeing} / {result.compared} ({100 * result.raw_agreement:.1f} %)"
        + (" (all annotators the same label)" if len(result.annotators) > 2 else "")
    )
    lines.append(f"{result.kappa_name}: {_kappa_text(result.kappa)}")
    if len(result.pairwise_kappa) > 1:
        for (one, other), value in result.pairwise_kappa.items():
            lines.append(f"  Cohen's kappa {one} vs {other}: {_kappa_text(value)}")
    lines.append(
        "flagged ambiguous: "
        + ", ".join(f"{name} {count}" for name, count in result.flagged.items())
    )
    for (one, other), matrix in result.confusion.items():
        lines += ["", confusion_table(matrix.tolist(), corner=f"{one} \\ {other}")]
    return "\n".join(lines)


def _kappa_text(value: float) -> str:
    return "undefined (every answer is the same label)" if np.isnan(value) else f"{value:.3f}"


@dataclass
class Merged:
    """The labelled rows (seed-set format) and the ids dropped, with why."""

    rows: list[dict[str, Any]]
    dropped: dict[str, str]
    adjudicated: int


def merge_annotations(
    files: Sequence[AnnotationFile],
    adjudicated: AnnotationFile | None = None,
    sentences: Mapping[str, dict[str, Any]] | None = None,
    dev_texts: Sequence[str] = (),
    dev_name: str = "the dev set",
) -> Merged:
    """One labelled row per sentence, validated: the seed set's format, ready to train on.

    The label: the adjudicator's where there is one (an adjudicator's skip drops
    the sentence), else the annotators' when all gave the same one (a sentence
    everyone skipped is dropped); any other sentence is refused until it is
    adjudicated. ``ambiguous``: the annotators disagreed, all of them flagged it,
    or the adjudicator did (the rule the seed set was built with). Refused too:
    a sentence without text, two with the same normalised text, and any that
    equals or nearly equals a text of ``dev_texts``.

    Example:
        >>> files = [read_annotations(f"{name}.jsonl") for name in ("ann", "bob")]  # doctest: +SKIP
        >>> merged = merge_annotations(files, read_annotations("decided.jsonl"))  # doctest: +SKIP
        >>> list(merged.rows[0])  # doctest: +SKIP
        ['id', 'doc', 'index', 'text', 'label', 'ambiguous']
    """
    check_same_sentences(files)
    keys = list(files[0].rows)
    decided = adjudicated.rows if adjudicated is not None else {}
    stray = [key for key in decided if key not in files[0].rows]
    if stray:
        raise NegstanceError(
            f"{adjudicated.path} adjudicates {len(stray)} sentence(s) that no annotation file has "
            f"({_some(stray)}): pass the annotation files it was made from"
        )
    rows: list[dict[str, Any]] = []
    dropped: dict[str, str] = {}
    undecided: list[str] = []
    for key in keys:
        answers = [file.rows[key] for file in files]
        labels = [answer.label for answer in answers]
        ambiguous = len(set(labels)) > 1 or all(answer.ambiguous for answer in answers)
        if key in decided:
            if decided[key].label is None:
                dropped[key] = "skipped by the adjudicator"
                continue
            label = decided[key].label
            ambiguous = ambiguous or decided[key].ambiguous
        elif all(value is None for value in labels):
            dropped[key] = "skipped by every annotator"
            continue
        elif len(set(labels)) == 1:
            label = labels[0]
        else:
            undecided.append(key)
            continue
        known = sentence_fields(key, [*files, *([adjudicated] if adjudicated else [])], sentences)
        if not isinstance(known.get("text"), str) or not known["text"].strip():
            raise NegstanceError(
                f"no text for sentence {key!r}: its annotation files carry none; pass --sentences "
                "FILE (a JSONL with its id and text, such as the suggestions file)"
            )
        index = known.get("index")
        rows.append(
            {
                "id": key,
                "doc": str(known.get("doc", "")),
                "index": index
                if isinstance(index, int) and not isinstance(index, bool)
                else len(rows),
                "text": known["text"],
                "label": label,
                "ambiguous": ambiguous,
            }
        )
    if undecided:
        raise NegstanceError(
            f"{len(undecided)} sentence(s) with neither an agreed label nor an adjudicated one "
            f"({_some(undecided)}): run `label.py agree`, adjudicate its disagreements file "
            "(`label.py annotate`), and pass the result as --adjudicated"
        )
    first_with_text: dict[str, str] = {}
    for row in rows:
        normalised = normalise_text(row["text"])
        if normalised in first_with_text:
            raise NegstanceError(
                f"sentences {first_with_text[normalised]!r} and {row['id']!r} have the same text "
                f"({_shorten(row['text'])}): keep one (skip the other when adjudicating)"
            )
        first_with_text[normalised] = row["id"]
    overlap = find_duplicates([row["text"] for row in rows], dev_texts)
    in_dev = [row["id"] for row, match in zip(rows, overlap, strict=True) if match is not None]
    if in_dev:
        raise NegstanceError(
            f"{len(in_dev)} sentence(s) equal or nearly equal sentences of {dev_name} "
            f"({_some(in_dev)}); a dev sentence must not be trained on: skip them when "
            "adjudicating (and pass the dev set to suggest with --labelled)"
        )
    return Merged(rows, dropped, sum(key in decided for key in keys))


def _shorten(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def check_jsonl_output(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Refuse an output not named ``.jsonl``, one of ``inputs``, or existing (unless ``overwrite``).

    Example:
        >>> check_jsonl_output("runs/label/suggested.jsonl")  # doctest: +SKIP
        PosixPath('runs/label/suggested.jsonl')
    """
    target = Path(path)
    if not target.is_dir() and target.suffix.lower() != ".jsonl":
        raise NegstanceError(f"{target}: the output is JSON Lines; name it .jsonl")
    for source in inputs:
        if target.exists() and Path(source).exists() and os.path.samefile(target, source):
            raise NegstanceError(f"--output {target} is an input file: write to another file")
    return check_output_path(target, overwrite=overwrite)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines, atomically (a temporary file beside it, then a rename).

    Example:
        >>> write_jsonl("runs/label/merged.jsonl", merged.rows)  # doctest: +SKIP
        PosixPath('runs/label/merged.jsonl')
    """
    target = Path(path)
    write_text_atomic(target, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return target


def label_counts(rows: Iterable[Mapping[str, Any]]) -> str:
    """``favor 3, against 1, none 5``.

    Example:
        >>> label_counts([{"label": "none"}, {"label": "favor"}])
        'favor 1, against 0, none 1'
    """
    counts = Counter(row["label"] for row in rows)
    return ", ".join(f"{label} {counts.get(label, 0)}" for label in LABELS)
