"""Several annotators' labels: ``label.py agree`` (kappa, disagreements) and ``merge``."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from negstance.model.errors import NegstanceError
from negstance.model.io import check_output_path, write_text_atomic
from negstance.model.labels import LABELS
from negstance.train.data import read_labelled_records
from negstance.train.report import confusion_table
from negstance.train.suggest import find_duplicates, normalise_text

SENTENCE_FIELDS = ("doc", "index", "text", "previous", "next")  # a sentence's, not an answer's
Rows = dict[str, dict[str, Any]]


class AnnotationFile(NamedTuple):
    """An annotator's answers by sentence id, in file order (``label`` None: skipped)."""

    path: Path
    annotator: str
    rows: Rows


def read_annotations(path: str | os.PathLike[str]) -> AnnotationFile:
    """One annotator's answers (``annotator`` field, else the file stem). Example:
    ``read_annotations("data/annotation/pass_a.jsonl").rows["000-00"]["label"]`` is ``'favor'``."""
    rows = read_labelled_records(path, require=("id", "label"), null_label=True)
    names = sorted({row["annotator"] for row in rows if "annotator" in row})
    if len(names) > 1:
        raise NegstanceError(f"{path}: answers by {', '.join(names)}; keep one file per annotator")
    name = names[0] if names else Path(path).stem
    return AnnotationFile(Path(path), name, {row["id"]: {"ambiguous": False} | row for row in rows})


def read_sentences(path: str | os.PathLike[str]) -> Rows:
    """Sentence fields by ``id`` from a JSONL with ids and texts, for files of ids only."""
    rows = read_labelled_records(path, require=("id", "text"))
    return {row["id"]: {name: row[name] for name in SENTENCE_FIELDS if name in row} for row in rows}


def check_same_sentences(files: Sequence[AnnotationFile]) -> None:
    """Refuse files that do not answer the same sentences (the same ids and texts)."""
    for one, other in itertools.combinations(files, 2):
        if os.path.samefile(one.path, other.path):
            raise NegstanceError(f"{other.path} is given twice")
    first = files[0]
    for other in files[1:]:
        if differ := sorted(first.rows.keys() ^ other.rows.keys()):
            raise NegstanceError(
                f"{first.path} and {other.path} answer different sentences ({len(differ)} "
                f"in one only: {_some(differ)}): compare answers to the same file, each finished"
            )
        for key, row in first.rows.items():
            if len({row.get("text"), other.rows[key].get("text")} - {None}) > 1:
                raise NegstanceError(f"sentence {key!r} has another text in {other.path}")


def _some(ids: Sequence[str], shown: int = 3) -> str:
    return ", ".join(ids[:shown]) + (", ..." if len(ids) > shown else "")


def sentence_fields(
    key: str, files: Sequence[AnnotationFile], sentences: Mapping[str, dict] | None
) -> dict[str, Any]:
    """What is known of sentence ``key``: each field from ``files``, else ``sentences``."""
    found: dict[str, Any] = {}
    sources = [file.rows[key] for file in files if key in file.rows][::-1]  # the first wins
    for source in [(sentences or {}).get(key, {}), *sources]:
        found |= {name: source[name] for name in SENTENCE_FIELDS if source.get(name) is not None}
    return {name: found[name] for name in SENTENCE_FIELDS if name in found}


def fleiss_kappa(ratings: Sequence[Sequence[str]], labels: Sequence[str] = LABELS) -> float:
    """Fleiss' kappa of ``ratings[item]`` (every annotator's label, as many each time); ``nan``
    when every answer is one label: ``[["favor"] * 3, ["none"] * 3, ["favor"] * 2 + ["none"]]``
    gives 0.55."""
    counts = np.array([[list(row).count(label) for label in labels] for row in ratings], float)
    raters = counts.sum(axis=1)
    observed = (((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))).mean()
    chance = float(((counts.sum(axis=0) / counts.sum()) ** 2).sum())
    return float("nan") if chance >= 1.0 else float((observed - chance) / (1.0 - chance))


def agreement(
    files: Sequence[AnnotationFile], sentences: Mapping[str, dict] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """``label.py agree``'s report (kappa over the sentences nobody skipped) and the
    disagreements (a skip counts), with text and context, every label, who flagged it.
    Example: for ``data/annotation/v2/pass_a.jsonl`` and ``pass_b``: kappa 0.914, 8 disagreements.
    """
    if len(files) < 2:
        raise NegstanceError("agree needs two or more annotation files")
    check_same_sentences(files)
    clash = Counter(file.annotator for file in files)
    names = [f.annotator + f" ({f.path.name})" * (clash[f.annotator] > 1) for f in files]
    labels_of = {key: [file.rows[key]["label"] for file in files] for key in files[0].rows}
    compared = [key for key, labels in labels_of.items() if None not in labels]
    if not compared:
        raise NegstanceError("no sentence was labelled by every annotator: nothing to compare")
    left_out = [key for key in labels_of if key not in compared]
    agreeing = sum(len(set(labels_of[key])) == 1 for key in compared)
    flagged = [sum(row["ambiguous"] for row in file.rows.values()) for file in files]
    lines = [
        f"annotators: {', '.join(names)}",
        f"sentences compared: {len(compared)}"
        + f" ({len(left_out)} skipped by someone, left out: {_some(left_out)})" * bool(left_out),
        f"raw agreement: {agreeing} / {len(compared)} ({100 * agreeing / len(compared):.1f} %)"
        + " (all annotators the same label)" * (len(files) > 2),
        *_kappa_lines(names, [labels_of[key] for key in compared], flagged),
    ]
    disagreements = []
    for key, labels in labels_of.items():
        if len(set(labels)) > 1:
            row = {"id": key, **sentence_fields(key, files, sentences)}
            row["labels"] = dict(zip(names, labels, strict=True))
            row["flagged_ambiguous"] = [
                n for n, f in zip(names, files, strict=True) if f.rows[key]["ambiguous"]
            ]
            disagreements.append(row)
    return "\n".join(lines), disagreements


def _kappa_lines(names: list[str], ratings: list[list[str]], flagged: list[int]) -> list[str]:
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    columns = list(zip(*ratings, strict=True))
    pairs = list(itertools.combinations(range(len(names)), 2))
    kappas = [cohen_kappa_score(columns[i], columns[j], labels=list(LABELS)) for i, j in pairs]
    if len(names) == 2:
        lines = [f"Cohen's kappa: {_kappa_text(kappas[0])}"]
    else:
        lines = [f"Fleiss' kappa: {_kappa_text(fleiss_kappa(ratings))}"]
        lines += [
            f"  Cohen's kappa {names[i]} vs {names[j]}: {_kappa_text(kappa)}"
            for (i, j), kappa in zip(pairs, kappas, strict=True)
        ]
    lines.append("flagged ambiguous: " + ", ".join(map("{} {}".format, names, flagged)))
    for i, j in pairs:
        matrix = confusion_matrix(columns[i], columns[j], labels=list(LABELS)).tolist()
        lines += ["", confusion_table(matrix, corner=f"{names[i]} \\ {names[j]}")]
    return lines


def _kappa_text(value: float) -> str:
    return "undefined (every answer is the same label)" if np.isnan(value) else f"{value:.3f}"


class Merged(NamedTuple):
    """The labelled rows (seed-set format), the ids dropped with why, how many adjudicated."""

    rows: list[dict[str, Any]]
    dropped: dict[str, str]
    adjudicated: int


def merge_annotations(
    files: Sequence[AnnotationFile],
    adjudicated: AnnotationFile | None = None,
    sentences: Mapping[str, dict] | None = None,
    dev_texts: Sequence[str] = (),
    dev_name: str = "the dev set",
) -> Merged:
    """One labelled row per sentence (seed-set format): the adjudicator's label, else the
    annotators' common one (a skip drops it); ``ambiguous`` if they disagreed, all flagged
    it or the adjudicator did. Refused: undecided sentences, repeated texts, dev texts.

    Example: ``merge_annotations([ann, bob], decided).rows[0]["label"]`` is ``'favor'``.
    """
    check_same_sentences(files)
    decided = adjudicated.rows if adjudicated else {}
    if stray := sorted(decided.keys() - files[0].rows.keys()):
        raise NegstanceError(
            f"{adjudicated.path} adjudicates sentences that no annotation file has "
            f"({_some(stray)}): pass the annotation files it was made from"
        )
    rows, dropped, undecided = [], {}, []
    for key in files[0].rows:
        answers = [file.rows[key] for file in files]
        labels = {answer["label"] for answer in answers}
        ambiguous = len(labels) > 1 or all(answer["ambiguous"] for answer in answers)
        if key in decided:
            label, ambiguous = decided[key]["label"], ambiguous or decided[key]["ambiguous"]
            reason = "skipped by the adjudicator"
        elif len(labels) == 1:
            label, reason = labels.pop(), "skipped by every annotator"
        else:
            undecided.append(key)
            continue
        if label is None:
            dropped[key] = reason
            continue
        known = sentence_fields(key, [*files, *[adjudicated] * bool(adjudicated)], sentences)
        if "text" not in known:
            raise NegstanceError(f"no text for sentence {key!r}: pass --sentences FILE")
        row = {"id": key, "doc": str(known.get("doc", "")), "index": known.get("index", len(rows))}
        rows.append(row | {"text": known["text"], "label": label, "ambiguous": ambiguous})
    if undecided:
        raise NegstanceError(
            f"{len(undecided)} sentence(s) with neither an agreed nor an adjudicated label "
            f"({_some(undecided)}): adjudicate `label.py agree`'s disagreements, pass --adjudicated"
        )
    _check_merged_texts(rows, dev_texts, dev_name)
    return Merged(rows, dropped, sum(key in decided for key in files[0].rows))


def _check_merged_texts(rows: list[dict], dev_texts: Sequence[str], dev_name: str) -> None:
    first_with: dict[str, str] = {}
    for row in rows:
        if (first := first_with.setdefault(normalise_text(row["text"]), row["id"])) != row["id"]:
            raise NegstanceError(
                f"sentences {first!r} and {row['id']!r} have the same text: keep one "
                "(skip the other when adjudicating)"
            )
    matches = find_duplicates([row["text"] for row in rows], dev_texts)
    if in_dev := [row["id"] for row, match in zip(rows, matches, strict=True) if match is not None]:
        raise NegstanceError(
            f"{len(in_dev)} sentence(s) equal or nearly equal sentences of {dev_name} "
            f"({_some(in_dev)}): skip them when adjudicating (and pass --labelled to suggest)"
        )


def check_jsonl_output(
    path: str | os.PathLike[str], overwrite: bool = False, inputs: Sequence[str] = ()
) -> Path:
    """Refuse an output not named .jsonl, one of ``inputs``, or existing (without overwrite)."""
    target = Path(path)
    if target.suffix.lower() != ".jsonl":
        raise NegstanceError(f"{target}: the output is JSON Lines; name it .jsonl")
    if any(target.resolve() == Path(source).resolve() for source in inputs if source):
        raise NegstanceError(f"--output {target} is an input file: write to another file")
    return check_output_path(target, overwrite=overwrite)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """``rows`` as JSON Lines, written atomically."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return Path(path)
