"""``label.py suggest``: new sentences most worth labelling, minus labelled ones and repeats."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from negstance.model.errors import NegstanceError
from negstance.model.io import read_records
from negstance.model.text import split_sentences

STRATEGIES = ("diverse", "uncertainty", "random")
UNCERTAINTY_MEASURES = ("margin", "entropy")
# Same sentence at 3-gram Jaccard >= 0.7: distinct seed sentences reach 0.53, a 1-word edit ~0.85
NEAR_DUPLICATE_JACCARD = 0.7
# "diverse" picks N among the 2 x N least sure: every pick stays among the least sure.
SHORTLIST_FACTOR = 2
JACCARD_CHUNK = 512  # texts compared at a time: bounds the dense block to 512 x references


def normalise_text(text: str) -> str:
    """NFKC, case-folded, no punctuation or extra spaces: ``Putin’s READY!`` → ``putin s ready``"""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def _jaccard_blocks(texts: list[str], references: list[str]) -> Iterable[tuple[int, np.ndarray]]:
    """``(i, 3-gram Jaccard similarities of texts[i] to every reference)``, in blocks."""
    if not texts or not references:
        return
    from sklearn.feature_extraction.text import HashingVectorizer

    options = dict(analyzer="char", ngram_range=(3, 3), n_features=2**20, alternate_sign=False)
    vectorizer = HashingVectorizer(**options, norm=None, binary=True, lowercase=False)
    rows, columns = (vectorizer.transform([f" {t} " for t in x]) for x in (texts, references))
    column_sizes = np.asarray(columns.sum(axis=1)).T
    for start in range(0, len(texts), JACCARD_CHUNK):
        block = rows[start : start + JACCARD_CHUNK]
        shared = (block @ columns.T).toarray()
        union = np.asarray(block.sum(axis=1)) + column_sizes - shared
        similarity = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
        yield from enumerate(similarity, start=start)


def find_duplicates(texts: Sequence[str], references: Sequence[str]) -> list[int | None]:
    """Per text, the index of a reference with the same normalised text or a 3-gram Jaccard
    >= ``NEAR_DUPLICATE_JACCARD``, else None: ``(["Talks resumed!", "Oil."], ["talks resumed"])``
    gives ``[0, None]``."""
    normalised, known = ([normalise_text(t) for t in x] for x in (texts, references))
    exact: dict[str, int] = {}
    for index, text in enumerate(known):
        exact.setdefault(text, index)
    found: list[int | None] = [exact.get(text) for text in normalised]
    for index, row in _jaccard_blocks(normalised, known):
        if found[index] is None and row.max() >= NEAR_DUPLICATE_JACCARD:
            found[index] = int(row.argmax())
    return found


def find_repeats(texts: Sequence[str]) -> list[int | None]:
    """Per text, the earlier kept text it (nearly) repeats: ``[A, B, A]`` → ``[None, None, 0]``"""
    normalised = [normalise_text(text) for text in texts]
    first: dict[str, int] = {}
    kept, repeats = np.zeros(len(texts), dtype=bool), []
    for index, row in _jaccard_blocks(normalised, normalised):
        exact = first.setdefault(normalised[index], index)
        near = np.flatnonzero((row[:index] >= NEAR_DUPLICATE_JACCARD) & kept[:index])
        repeats.append(exact if exact != index else int(near[0]) if near.size else None)
        kept[index] = repeats[-1] is None
    return repeats


class Document(NamedTuple):
    name: str
    text: str


def read_documents(
    source: str | os.PathLike[str], text_field: str = "text", encoding: str = "utf-8"
) -> list[Document]:
    """A folder of ``.txt`` files, an article each; or a ``.txt``/``.jsonl``/``.csv`` read as
    ``predict.py --documents`` reads it: a document per line or record, named by its ``doc`` or
    ``id`` field, else ``<file stem>-<line>``."""
    location = Path(source)
    if location.is_dir():
        if not (articles := sorted(location.glob("*.txt"))):
            raise NegstanceError(f"no .txt articles in the folder {location}")
        # read_records: the decoding and the one-line errors of every other input.
        lines = ([line.text for line in read_records(path, "text", encoding)] for path in articles)
        return [Document(path.stem, "\n".join(next(lines))) for path in articles]
    documents: list[Document] = []
    first_line: dict[str, int] = {}
    for record in read_records(location, text_field=text_field, encoding=encoding):
        name = record.fields.get("doc") or record.fields.get("id")
        name = str(name) if name not in (None, "") else f"{location.stem}-{record.line_number}"
        if name in first_line:
            raise NegstanceError(
                f"{location}, line {record.line_number}: document {name!r} again "
                f"(first on line {first_line[name]}); give every document its own doc or id"
            )
        first_line[name] = record.line_number
        documents += [Document(name, record.text)] if record.text.strip() else []
    return documents


def sentence_rows(documents: Iterable[Document]) -> list[dict[str, Any]]:
    """Every sentence of every document, with the sentences before and after it."""
    rows = []
    for document in documents:
        sentences = split_sentences(document.text)
        for index, text in enumerate(sentences):
            rows.append({"id": f"{document.name}-{index:02d}", "doc": document.name})
            rows[-1] |= {"index": index, "text": text}
            rows[-1]["previous"] = sentences[index - 1] if index > 0 else None
            rows[-1]["next"] = sentences[index + 1] if index + 1 < len(sentences) else None
    return rows


@dataclass
class CandidatePool:
    rows: list[dict[str, Any]]
    sentences: int
    already_labelled: int
    repeats: int


def candidate_pool(rows: Sequence[dict[str, Any]], labelled: Sequence[str] = ()) -> CandidatePool:
    """``rows`` minus the sentences of ``labelled`` (or near copies) and repeats within ``rows``."""
    candidates = [row for row in rows if row["text"].strip()]
    matches = find_duplicates([row["text"] for row in candidates], labelled)
    new = [row for row, match in zip(candidates, matches, strict=True) if match is None]
    repeats = find_repeats([row["text"] for row in new])
    kept = [row for row, repeat in zip(new, repeats, strict=True) if repeat is None]
    return CandidatePool(kept, len(rows), len(candidates) - len(new), len(new) - len(kept))


def uncertainty_scores(probabilities: np.ndarray, measure: str = "margin") -> np.ndarray:
    """Per row, in [0, 1]: ``margin`` 1 − (top − second probability), or ``entropy`` /
    log(classes). Example: ``[[0.5, 0.4, 0.1]]`` has margin uncertainty 0.9."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if measure == "margin":
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        return 1.0 - (top_two[:, 1] - top_two[:, 0])
    safe = np.clip(probabilities, 1e-12, 1.0)
    return -(probabilities * np.log(safe)).sum(axis=1) / np.log(probabilities.shape[1])


def select_diverse(uncertainty: np.ndarray, vectors: np.ndarray, count: int) -> list[int]:
    """Greedy picks, each maximising uncertainty × cosine distance to the nearest earlier
    pick (an uncertainty-weighted greedy k-center): a near copy of a pick waits."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    nearest = np.full(len(unit), np.inf)
    picks: list[int] = []
    for _ in range(min(count, len(unit))):
        gain = np.where(np.isinf(nearest), 1.0, nearest) * uncertainty
        gain[picks] = -np.inf
        picks.append(int(np.argmax(gain)))
        nearest = np.minimum(nearest, np.clip(1.0 - unit @ unit[picks[-1]], 0.0, 2.0))
    return picks


def rank_for_labelling(
    probabilities: np.ndarray,
    count: int,
    strategy: str = "diverse",
    measure: str = "margin",
    vectors_of: Callable[[list[int]], np.ndarray] | None = None,
    seed: int = 0,
) -> list[int]:
    """The ``count`` rows most worth labelling, best first: ``uncertainty`` the least sure;
    ``diverse`` :func:`select_diverse` among the ``SHORTLIST_FACTOR * count`` least sure, on
    ``vectors_of(indices)``; ``random`` a sample from ``seed``. Example: of the probabilities
    ``[[0.9, 0.1, 0], [0.4, 0.35, 0.25]]``, ``uncertainty`` ranks ``[1, 0]``."""
    count = min(count, len(probabilities))
    if strategy == "random":
        return np.random.default_rng(seed).permutation(len(probabilities))[:count].tolist()
    uncertainty = uncertainty_scores(probabilities, measure)
    order = np.argsort(-uncertainty, kind="stable").tolist()
    if strategy == "uncertainty":
        return order[:count]
    shortlist = order[: SHORTLIST_FACTOR * count]
    vectors = np.asarray(vectors_of(shortlist), dtype=np.float64)
    return [shortlist[pick] for pick in select_diverse(uncertainty[shortlist], vectors, count)]
