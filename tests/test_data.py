"""The seed dataset: faithful to its raw articles, and loaded with the right label ids."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from datasets import ClassLabel

from negstance.model.errors import NegstanceError
from negstance.model.labels import LABEL2ID, LABELS
from negstance.model.text import sentence_spans
from negstance.train.data import (
    check_trainable,
    load_seed_dataset,
    read_labelled_records,
    segment_articles,
    split_by_documents,
)

REPO = Path(__file__).resolve().parents[1]
RAW_DIR = REPO / "data" / "raw"
SEED_DATA = REPO / "data" / "seed_sentences.jsonl"


def raw_article(doc: str) -> str:
    return (RAW_DIR / f"{doc}.txt").read_text(encoding="utf-8")


def test_every_sentence_occurs_in_its_raw_article(seed_sentences: list[dict]) -> None:
    missing = [row["id"] for row in seed_sentences if row["text"] not in raw_article(row["doc"])]
    assert missing == []


def test_dataset_is_exactly_the_segmentation_of_the_raw_articles(
    seed_sentences: list[dict],
) -> None:
    keys = ("id", "doc", "index", "text")
    segmented = [tuple(row[key] for key in keys) for row in segment_articles(RAW_DIR)]
    in_dataset = [tuple(row[key] for key in keys) for row in seed_sentences]
    assert in_dataset == segmented


def test_sentences_cover_every_non_whitespace_character_of_every_article(
    seed_sentences: list[dict],
) -> None:
    by_doc: dict[str, list[str]] = defaultdict(list)
    for row in seed_sentences:
        by_doc[row["doc"]].append(row["text"])
    assert sorted(by_doc) == sorted(path.stem for path in RAW_DIR.glob("*.txt"))
    for doc, sentences in by_doc.items():
        article = raw_article(doc)
        spans = sentence_spans(article)
        assert [article[start:end] for start, end in spans] == sentences, doc
        covered = {position for start, end in spans for position in range(start, end)}
        uncovered = "".join(
            char for position, char in enumerate(article) if position not in covered
        )
        assert uncovered.strip() == "", f"{doc}: text left out of every sentence: {uncovered!r}"
        # A sentence never spans two lines: headlines stay apart from body text.
        assert not any("\n" in sentence for sentence in sentences), doc


def test_ids_are_unique_and_indices_count_up_within_each_doc(seed_sentences: list[dict]) -> None:
    ids = [row["id"] for row in seed_sentences]
    assert len(ids) == len(set(ids))
    indices: dict[str, list[int]] = defaultdict(list)
    for row in seed_sentences:
        indices[row["doc"]].append(row["index"])
        assert row["id"] == f"{row['doc'][:3]}-{row['index']:02d}"
    for doc, found in indices.items():
        assert found == list(range(len(found))), doc


def test_labels_are_the_three_names_and_each_occurs(seed_sentences: list[dict]) -> None:
    assert {row["label"] for row in seed_sentences} == set(LABELS)
    assert all(isinstance(row["ambiguous"], bool) for row in seed_sentences)
    assert all(row["text"] == row["text"].strip() and row["text"] for row in seed_sentences)


def test_load_seed_dataset_declares_label_order_favor_against_none(
    seed_sentences: list[dict],
) -> None:
    dataset = load_seed_dataset(SEED_DATA)
    assert dataset.features["label"] == ClassLabel(names=["favor", "against", "none"])
    assert dataset.features["label"].str2int(["favor", "against", "none"]) == [0, 1, 2]
    assert "doc" in dataset.column_names
    assert len(dataset) == len(seed_sentences)
    assert dataset["label"] == [LABEL2ID[row["label"]] for row in seed_sentences]
    assert dataset["doc"] == [row["doc"] for row in seed_sentences]
    assert dataset["id"] == [row["id"] for row in seed_sentences]


def test_exclude_ambiguous_drops_exactly_the_ambiguous_rows(seed_sentences: list[dict]) -> None:
    dataset = load_seed_dataset(SEED_DATA, exclude_ambiguous=True)
    assert dataset["id"] == [row["id"] for row in seed_sentences if not row["ambiguous"]]
    assert len(dataset) < len(seed_sentences)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_unknown_label_is_rejected_naming_the_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "a", "text": "Talks began.", "label": "favor"},
            {"id": "b", "text": "Talks ended.", "label": "pro"},
        ],
    )
    with pytest.raises(NegstanceError, match=r"bad\.jsonl, line 2: .*'pro'"):
        read_labelled_records(path)


def test_duplicate_id_is_rejected_naming_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "dup.jsonl",
        [
            {"id": "a", "text": "Talks began.", "label": "favor"},
            {"id": "a", "text": "Talks ended.", "label": "none"},
        ],
    )
    with pytest.raises(NegstanceError, match=r"line 2: duplicate id 'a' \(first on line 1\)"):
        read_labelled_records(path)


def test_split_by_documents_holds_out_whole_documents() -> None:
    dataset = load_seed_dataset(SEED_DATA)
    held_doc = dataset["doc"][-1]
    train_part, held_out = split_by_documents(dataset, [held_doc])
    assert set(held_out["doc"]) == {held_doc}
    assert held_doc not in set(train_part["doc"])
    assert len(train_part) + len(held_out) == len(dataset)
    with pytest.raises(NegstanceError, match="validation_docs not in the data: nope"):
        split_by_documents(dataset, ["nope"])


def test_check_trainable_needs_rows_and_two_labels() -> None:
    dataset = load_seed_dataset(SEED_DATA)
    check_trainable(dataset)
    only_none = dataset.filter(lambda label: label == LABEL2ID["none"], input_columns="label")
    with pytest.raises(NegstanceError, match="only one label \\('none'\\)"):
        check_trainable(only_none)
    with pytest.raises(NegstanceError, match="is empty"):
        check_trainable(dataset.select([]))
