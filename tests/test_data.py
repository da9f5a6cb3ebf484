"""The seed set (faithful to its raw articles, right label ids); the labelled-JSONL reader."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO, SEED_DATA, raises_one_line, write_jsonl
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

RAW_DIR = REPO / "data" / "raw"


def test_the_seed_set_is_the_segmentation_of_the_raw_articles_and_covers_them(
    seed_sentences: list[dict],
) -> None:
    keys = ("id", "doc", "index", "text")
    assert [tuple(row[key] for key in keys) for row in seed_sentences] == [
        tuple(row[key] for key in keys) for row in segment_articles(RAW_DIR)
    ]
    by_doc: dict[str, list[str]] = defaultdict(list)
    for row in seed_sentences:
        by_doc[row["doc"]].append(row["text"])
    assert sorted(by_doc) == sorted(path.stem for path in RAW_DIR.glob("*.txt"))
    for doc, sentences in by_doc.items():
        article = (RAW_DIR / f"{doc}.txt").read_text(encoding="utf-8")
        spans = sentence_spans(article)
        assert [article[start:end] for start, end in spans] == sentences, doc
        covered = {position for start, end in spans for position in range(start, end)}
        left_out = "".join(char for i, char in enumerate(article) if i not in covered)
        assert left_out.strip() == "", f"{doc}: text in no sentence: {left_out!r}"
        # A sentence never spans two lines: headlines stay apart from body text.
        assert not any("\n" in sentence for sentence in sentences), doc
    assert {row["label"] for row in seed_sentences} == set(LABELS)


def test_load_seed_dataset_declares_label_order_and_concatenates_files_with_unique_ids(
    tmp_path: Path, seed_sentences: list[dict]
) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", seed_sentences[:100])
    second = write_jsonl(tmp_path / "second.jsonl", seed_sentences[100:])
    dataset = load_seed_dataset([first, second])
    assert dataset.features["label"] == ClassLabel(names=["favor", "against", "none"])
    assert dataset["label"] == [LABEL2ID[row["label"]] for row in seed_sentences]
    for key in ("id", "doc", "ambiguous"):
        assert dataset[key] == [row[key] for row in seed_sentences]
    clear = load_seed_dataset(SEED_DATA, exclude_ambiguous=True)
    assert clear["id"] == [row["id"] for row in seed_sentences if not row["ambiguous"]]
    again = write_jsonl(tmp_path / "again.jsonl", seed_sentences[:3])
    with pytest.raises(NegstanceError, match=r"again\.jsonl, line 1: .*'000-00'.*first\.jsonl"):
        load_seed_dataset([first, again])
    # Rows without ids are numbered per file, so two such files do not collide.
    no_ids = [{"text": row["text"], "label": row["label"]} for row in seed_sentences[:4]]
    one = write_jsonl(tmp_path / "one.jsonl", no_ids[:2])
    two = write_jsonl(tmp_path / "two.jsonl", no_ids[2:])
    assert len(set(load_seed_dataset([one, two])["id"])) == 4
    assert load_seed_dataset(one)["id"] == ["line-1", "line-2"]
    with pytest.raises(NegstanceError, match="data_path"):
        load_seed_dataset([])


GOOD = {"id": "a", "text": "Talks began.", "label": "favor"}
BAD_ROWS = {
    "unknown label": ({**GOOD, "id": "b", "label": "pro"}, "'pro'"),
    "no label": ({"id": "b", "text": "Talks ended."}, "'label'"),
    "null label": ({**GOOD, "id": "b", "label": None}, "'label'"),
    "no text": ({"id": "b", "label": "none"}, "'text'"),
    "empty text": ({**GOOD, "id": "b", "text": "  "}, "text"),
    "text not a string": ({**GOOD, "id": "b", "text": ["a", "list"]}, "'text'"),
    "ambiguous not a bool": ({**GOOD, "id": "b", "ambiguous": "maybe"}, "'maybe'"),
    "index not a number": ({**GOOD, "id": "b", "index": True}, "'index'"),
    "duplicate id": ({**GOOD, "text": "Talks ended."}, "'a' (first on line 1)"),
    "not an object": (["a", "list"], "JSON object"),
    "not JSON": ("{oops", "JSON"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_row_is_one_line_naming_file_line_and_problem(case: str, tmp_path: Path) -> None:
    row, noun = BAD_ROWS[case]
    path = tmp_path / "bad.jsonl"
    bad_line = row if isinstance(row, str) else json.dumps(row)
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n", encoding="utf-8")
    raises_one_line(lambda: read_labelled_records(path), f"{path}, line 3", noun)


# Unusable data (one label, every or an unknown document held out): test_errors_train.py.
def test_split_by_documents_and_check_trainable() -> None:
    dataset = load_seed_dataset(SEED_DATA)
    held_doc = dataset["doc"][-1]
    train_part, held_out = split_by_documents(dataset, [held_doc])
    assert set(held_out["doc"]) == {held_doc} and held_doc not in set(train_part["doc"])
    assert len(train_part) + len(held_out) == len(dataset)
    check_trainable(dataset)
    with pytest.raises(NegstanceError, match="empty"):
        check_trainable(dataset.select([]))
