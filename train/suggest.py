"""Which sentences to label next: new articles in, the most useful sentences out.

``label.py suggest`` splits articles into sentences (the seed set's splitter), drops
those already labelled (exact and near copies: :func:`find_duplicates`) and ranks
the rest: the ones a checkpoint is least sure of, spread over its sentence vectors.
The classifier is passed in (anything with ``predict_proba`` and ``embed``), so
nothing here imports torch.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from negstance.model.errors import NegstanceError
from negstance.model.io import INPUT_FORMATS, check_input_file, file_format, read_records
from negstance.model.labels import LABELS
from negstance.model.text import split_sentences

if TYPE_CHECKING:
    from negstance.model.classifier import StanceClassifier

STRATEGIES = ("diverse", "uncertainty", "random")
UNCERTAINTY_MEASURES = ("margin", "entropy")
# Same sentence at 3-gram Jaccard >= 0.7: distinct seed sentences reach 0.53, a 1-word edit ~0.85
NEAR_DUPLICATE_JACCARD = 0.7
# "diverse" picks N among the 2 x N least sure candidates: every pick stays among the least
# sure, and up to half of them can give way to spread (only the shortlist is embedded).
SHORTLIST_FACTOR = 2
# Texts compared at a time: bounds the dense similarity block to JACCARD_CHUNK x references.
JACCARD_CHUNK = 512


def normalise_text(text: str) -> str:
    """Text as compared for duplicates: NFKC, case-folded, punctuation dropped, spaces collapsed.

    Example:
        >>> normalise_text("  Putin’s   READY for talks! ")
        'putin s ready for talks'
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def _trigram_matrix(normalised: Sequence[str]) -> Any:
    """Binary character 3-gram vectors (hashed, sparse), one row per text."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        analyzer="char",
        ngram_range=(3, 3),
        n_features=2**20,
        alternate_sign=False,
        norm=None,
        binary=True,
        lowercase=False,
    )
    return vectorizer.transform([f" {text} " for text in normalised])


def _jaccard(rows: Any, columns: Any) -> np.ndarray:
    """Dense Jaccard similarities between the 3-gram sets of ``rows`` and ``columns``."""
    shared = (rows @ columns.T).toarray()
    union = np.asarray(rows.sum(axis=1)) + np.asarray(columns.sum(axis=1)).T - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


def find_duplicates(texts: Sequence[str], references: Sequence[str]) -> list[int | None]:
    """For each text, the index of a reference that is the same sentence, or ``None``.

    The same sentence: equal normalised text, or character 3-gram Jaccard
    similarity at or above ``NEAR_DUPLICATE_JACCARD``.

    Example:
        >>> find_duplicates(["Talks resumed!", "Oil fell."], ["talks resumed", "Rain."])
        [0, None]
    """
    if not texts or not references:
        return [None] * len(texts)
    normalised = [normalise_text(text) for text in texts]
    reference_normalised = [normalise_text(text) for text in references]
    exact: dict[str, int] = {}
    for index, text in enumerate(reference_normalised):
        exact.setdefault(text, index)
    found: list[int | None] = [exact.get(text) for text in normalised]
    matrix, reference_matrix = _trigram_matrix(normalised), _trigram_matrix(reference_normalised)
    for start in range(0, len(texts), JACCARD_CHUNK):
        similarity = _jaccard(matrix[start : start + JACCARD_CHUNK], reference_matrix)
        for offset, row in enumerate(similarity):
            if found[start + offset] is None and row.max() >= NEAR_DUPLICATE_JACCARD:
                found[start + offset] = int(row.argmax())
    return found


def find_repeats(texts: Sequence[str]) -> list[int | None]:
    """For each text, the index of an earlier kept text it repeats (exactly or nearly), or ``None``.

    The first of a group of repeats is kept (``None``); the others point to it.

    Example:
        >>> find_repeats(["Read also:", "Talks resumed.", "Read also:"])
        [None, None, 0]
    """
    if not texts:
        return []
    normalised = [normalise_text(text) for text in texts]
    first: dict[str, int] = {}
    repeats: list[int | None] = []
    for index, text in enumerate(normalised):
        repeats.append(first.setdefault(text, index) if text in first else None)
    matrix = _trigram_matrix(normalised)
    kept = np.array([repeat is None for repeat in repeats])
    for start in range(0, len(texts), JACCARD_CHUNK):
        stop = min(start + JACCARD_CHUNK, len(texts))
        similarity = _jaccard(matrix[start:stop], matrix[:stop])
        for offset, row in enumerate(similarity):
            index = start + offset
            if repeats[index] is not None:
                continue
            earlier = np.flatnonzero((row[:index] >= NEAR_DUPLICATE_JACCARD) & kept[:index])
            if earlier.size:
                repeats[index] = int(earlier[0])
                kept[index] = False
    return repeats


@dataclass
class Document:
    """One article: a name (the file's stem, or the record's ``doc``/``id``) and its text."""

    name: str
    text: str


def read_documents(
    source: str | os.PathLike[str], text_field: str = "text", encoding: str = "utf-8"
) -> list[Document]:
    """Articles from a folder of ``.txt`` files, one ``.txt`` article, or a ``.jsonl``/``.csv``.

    In a ``.jsonl``/``.csv`` every record is one document, named by its ``doc``
    or ``id`` field, else ``<file stem>-<line>``.

    Example:
        >>> [document.name for document in read_documents("data/raw")][:2]  # doctest: +SKIP
        ['000_e4c9a8a69fdb53e2', '001_1880e0f5d78ad81b']
    """
    location = Path(source)
    if location.is_dir():
        articles = sorted(location.glob("*.txt"))
        if not articles:
            raise NegstanceError(f"no .txt articles in the folder {location}")
        return [_read_article(path, encoding) for path in articles]
    check_input_file(location)
    if file_format(location, INPUT_FORMATS) == "txt":
        return [_read_article(location, encoding)]
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
        documents.append(Document(name, record.text))
    return documents


def _read_article(path: Path, encoding: str) -> Document:
    # read_records reads a .txt line by line, with the one-line errors for bad bytes.
    lines = [record.text for record in read_records(path, encoding=encoding)]
    return Document(path.stem, "\n".join(lines))


def sentence_rows(documents: Iterable[Document]) -> list[dict[str, Any]]:
    """Every sentence of every document, with the sentences before and after it as context.

    Split with :func:`negstance.model.text.split_sentences`, as the seed set was.

    Example:
        >>> sentence_rows([Document("d1", "Talks resumed. Oil fell.")])[0]
        {'id': 'd1-00', 'doc': 'd1', 'index': 0, 'text': 'Talks resumed.', 'previous': None, \
'next': 'Oil fell.'}
    """
    rows = []
    for document in documents:
        sentences = split_sentences(document.text)
        for index, sentence in enumerate(sentences):
            rows.append(
                {
                    "id": f"{document.name}-{index:02d}",
                    "doc": document.name,
                    "index": index,
                    "text": sentence,
                    "previous": sentences[index - 1] if index > 0 else None,
                    "next": sentences[index + 1] if index + 1 < len(sentences) else None,
                }
            )
    return rows


def read_texts(path: str | os.PathLike[str], encoding: str = "utf-8") -> list[str]:
    """The texts of a file: the ``text`` field of a ``.jsonl``/``.csv``, the lines of a ``.txt``.

    No label is needed, so a dev set or an earlier round's suggestions read the same way.

    Example:
        >>> len(read_texts("data/seed_sentences.jsonl"))  # doctest: +SKIP
        153
    """
    return [record.text for record in read_records(path, encoding=encoding) if record.text.strip()]


@dataclass
class CandidatePool:
    """The sentences left to rank, and how many were dropped on the way."""

    rows: list[dict[str, Any]]
    sentences: int
    already_labelled: int
    repeats: int


def candidate_pool(
    rows: Sequence[dict[str, Any]], labelled_texts: Sequence[str] = ()
) -> CandidatePool:
    """``rows`` minus sentences already labelled and repeats within ``rows`` (exact or near).

    Example:
        >>> rows = sentence_rows([Document("d1", "Talks resumed. Oil fell. Talks resumed!")])
        >>> [row["text"] for row in candidate_pool(rows, ["Oil fell"]).rows]
        ['Talks resumed.']
    """
    candidates = [row for row in rows if row["text"].strip()]
    labelled = find_duplicates([row["text"] for row in candidates], labelled_texts)
    unlabelled = [row for row, match in zip(candidates, labelled, strict=True) if match is None]
    repeats = find_repeats([row["text"] for row in unlabelled])
    kept = [row for row, repeat in zip(unlabelled, repeats, strict=True) if repeat is None]
    return CandidatePool(
        rows=kept,
        sentences=len(rows),
        already_labelled=len(candidates) - len(unlabelled),
        repeats=len(unlabelled) - len(kept),
    )


def uncertainty_scores(probabilities: np.ndarray, measure: str = "margin") -> np.ndarray:
    """How unsure the model is of each row, in [0, 1]; higher is less sure.

    ``margin``: 1 − (top probability − second); ``entropy``: entropy / log(classes).

    Example:
        >>> uncertainty_scores(np.array([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05]])).round(2).tolist()
        [0.9, 0.15]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if measure == "margin":
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        return 1.0 - (top_two[:, 1] - top_two[:, 0])
    if measure == "entropy":
        safe = np.clip(probabilities, 1e-12, 1.0)
        return -(probabilities * np.log(safe)).sum(axis=1) / np.log(probabilities.shape[1])
    raise NegstanceError(f"uncertainty must be one of {', '.join(UNCERTAINTY_MEASURES)}")


def select_diverse(uncertainty: np.ndarray, vectors: np.ndarray, count: int) -> list[int]:
    """Greedy picks, each maximising uncertainty × cosine distance to the nearest earlier pick.

    The first pick is the most uncertain row; a near copy of an earlier pick has
    distance ~0 and waits, so the picks spread over the vector space (a greedy
    k-center weighted by uncertainty).

    Example:
        >>> vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
        >>> select_diverse(np.array([0.9, 0.85, 0.5]), vectors, 2)
        [0, 2]
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    nearest = np.full(len(unit), np.inf)
    available = np.ones(len(unit), dtype=bool)
    picks: list[int] = []
    for _ in range(min(count, len(unit))):
        gain = np.where(np.isinf(nearest), 1.0, nearest) * uncertainty
        gain[~available] = -np.inf
        pick = int(np.argmax(gain))
        picks.append(pick)
        available[pick] = False
        nearest = np.minimum(nearest, np.clip(1.0 - unit @ unit[pick], 0.0, 2.0))
    return picks


def rank_for_labelling(
    probabilities: np.ndarray,
    count: int,
    strategy: str = "diverse",
    measure: str = "margin",
    vectors_of: Callable[[list[int]], np.ndarray] | None = None,
    seed: int = 0,
) -> list[int]:
    """The indices of the ``count`` rows most worth labelling, best first.

    * ``uncertainty``: the least sure rows (by ``measure``), ties in input order;
    * ``diverse``: :func:`select_diverse` over the ``SHORTLIST_FACTOR * count``
      least sure rows, with vectors from ``vectors_of(indices)``;
    * ``random``: a uniform sample, from ``seed`` (the baseline to compare with).

    Example:
        >>> probabilities = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.3, 0.2]])
        >>> rank_for_labelling(probabilities, 2, strategy="uncertainty")
        [1, 2]
    """
    total = len(probabilities)
    count = min(count, total)
    if strategy == "random":
        return [int(index) for index in np.random.default_rng(seed).permutation(total)[:count]]
    uncertainty = uncertainty_scores(probabilities, measure)
    order = np.argsort(-uncertainty, kind="stable")
    if strategy == "uncertainty":
        return [int(index) for index in order[:count]]
    if strategy != "diverse":
        raise NegstanceError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if vectors_of is None:
        raise ValueError("strategy 'diverse' needs vectors_of, a function giving sentence vectors")
    shortlist = [int(index) for index in order[: SHORTLIST_FACTOR * count]]
    vectors = np.asarray(vectors_of(shortlist), dtype=np.float64)
    picks = select_diverse(uncertainty[shortlist], vectors, count)
    return [shortlist[pick] for pick in picks]


def suggest(
    classifier: StanceClassifier,
    pool: CandidatePool,
    count: int,
    strategy: str = "diverse",
    measure: str = "margin",
    seed: int = 0,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """The ``count`` pool rows most worth labelling, best first, each with its ``rank``.

    No model label or probability is included, so the annotator is not anchored.

    Example:
        >>> pool = candidate_pool(sentence_rows(read_documents("new_articles/")))  # doctest: +SKIP
        >>> classifier = StanceClassifier.from_pretrained("runs/default")  # doctest: +SKIP
        >>> rows = suggest(classifier, pool, 50)  # doctest: +SKIP
        >>> sorted(rows[0])  # doctest: +SKIP
        ['doc', 'id', 'index', 'next', 'previous', 'rank', 'text']
    """
    texts = [row["text"] for row in pool.rows]
    if strategy == "random":
        probabilities = np.zeros((len(texts), len(LABELS)))  # not needed: skip the network
    else:
        probabilities = classifier.predict_proba(texts, batch_size=batch_size)

    def vectors_of(indices: list[int]) -> np.ndarray:
        return classifier.embed([texts[index] for index in indices], batch_size=batch_size)

    order = rank_for_labelling(probabilities, count, strategy, measure, vectors_of, seed)
    return [{**pool.rows[index], "rank": rank} for rank, index in enumerate(order, start=1)]
