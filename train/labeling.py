"""Growing the labelled data: which sentences to label, how well annotators agree, merging.

The loop behind ``scripts/label.py``:

1. ``suggest``: split new articles into sentences (the seed set's splitter), drop
   those already labelled, and rank the rest for labelling: the ones a
   checkpoint is least sure of, spread over its sentence vectors.
2. ``annotate`` (:mod:`negstance.train.annotate`): label them in the terminal.
3. ``agree``: Cohen's (two annotators) or Fleiss' (more) kappa, raw agreement,
   confusion tables, and the disagreements as a file to adjudicate.
4. ``merge``: the annotations and adjudications as a labelled JSONL in the seed
   set's format, which training reads next to the seed set (``data_path`` list).

The functions here take rows, texts and arrays; the classifier is passed in
(anything with ``predict_proba`` and ``embed``), so nothing here imports torch.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from negstance.model.errors import NegstanceError
from negstance.model.io import (
    INPUT_FORMATS,
    check_input_file,
    check_output_path,
    file_format,
    read_records,
    write_text_atomic,
)
from negstance.model.labels import LABELS
from negstance.model.text import split_sentences

STRATEGIES = ("diverse", "uncertainty", "random")
UNCERTAINTY_MEASURES = ("margin", "entropy")
# Same sentence at 3-gram Jaccard >= 0.7: distinct seed sentences reach 0.53, a 1-word edit ~0.85
NEAR_DUPLICATE_JACCARD = 0.7
# "diverse" picks N among the 2 x N least sure candidates: every pick stays among the least
# sure, and up to half of them can give way to spread (only the shortlist is embedded).
SHORTLIST_FACTOR = 2
# Fields that describe a sentence (not an answer), carried from file to file.
SENTENCE_FIELDS = ("doc", "index", "text", "previous", "next")


# --------------------------------------------------------------------------- #
# Same sentence, or nearly
# --------------------------------------------------------------------------- #
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


def find_duplicates(
    texts: Sequence[str],
    references: Sequence[str],
    threshold: float = NEAR_DUPLICATE_JACCARD,
    chunk_size: int = 512,
) -> list[int | None]:
    """For each text, the index of a reference that is the same sentence, or ``None``.

    The same sentence: equal normalised text, or character 3-gram Jaccard
    similarity at or above ``threshold``.

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
    for start in range(0, len(texts), chunk_size):
        similarity = _jaccard(matrix[start : start + chunk_size], reference_matrix)
        for offset, row in enumerate(similarity):
            if found[start + offset] is None and row.max() >= threshold:
                found[start + offset] = int(row.argmax())
    return found


def find_repeats(
    texts: Sequence[str], threshold: float = NEAR_DUPLICATE_JACCARD, chunk_size: int = 512
) -> list[int | None]:
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
    for start in range(0, len(texts), chunk_size):
        stop = min(start + chunk_size, len(texts))
        similarity = _jaccard(matrix[start:stop], matrix[:stop])
        for offset, row in enumerate(similarity):
            index = start + offset
            if repeats[index] is not None:
                continue
            earlier = np.flatnonzero((row[:index] >= threshold) & kept[:index])
            if earlier.size:
                repeats[index] = int(earlier[0])
                kept[index] = False
    return repeats


# --------------------------------------------------------------------------- #
# Articles in, sentences out
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# Ranking
# --------------------------------------------------------------------------- #
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


class Scorer(Protocol):
    """What ranking needs from a classifier: :class:`negstance.model.StanceClassifier` has both."""

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


def suggest(
    classifier: Scorer,
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


# --------------------------------------------------------------------------- #
# Annotation files
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# Agreement
# --------------------------------------------------------------------------- #
def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa of two annotators' labels (scikit-learn's), over the three labels.

    Example:
        >>> first = ["favor", "none", "none", "against"]
        >>> round(cohen_kappa(first, ["favor", "none", "favor", "against"]), 3)
        0.636
    """
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(first, second, labels=list(LABELS)))


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
    columns = [[labels_of[key][position] for key in compared] for position in range(len(files))]
    pairwise = {
        (names[i], names[j]): cohen_kappa(columns[i], columns[j])
        for i, j in itertools.combinations(range(len(files)), 2)
    }
    confusion = {
        (names[i], names[j]): _confusion(columns[i], columns[j])
        for i, j in itertools.combinations(range(len(files)), 2)
    }
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


def _confusion(rows: Sequence[str], columns: Sequence[str]) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(rows, columns, labels=list(LABELS))


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
        lines += ["", f"| {one} \\ {other} | " + " | ".join(LABELS) + " |"]
        lines.append("|---|" + "---:|" * len(LABELS))
        for label, row in zip(LABELS, matrix, strict=True):
            lines.append(f"| {label} | " + " | ".join(str(int(value)) for value in row) + " |")
    return "\n".join(lines)


def _kappa_text(value: float) -> str:
    return "undefined (every answer is the same label)" if np.isnan(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- #
# Merge
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #
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
