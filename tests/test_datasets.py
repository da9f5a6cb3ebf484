"""The shipped data sets: the real-news dev set's promises, and no sentence in two data files."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import REPO, read_jsonl

RESERVED = REPO.parent / "shared" / "reserved_sources.txt"
DATA_FILES = ["data/seed_sentences.jsonl", "data/dev/dev.jsonl", "data/realnews/dev.jsonl"]


def rows(path: str) -> list[dict]:
    return read_jsonl(REPO / path)


def folded(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def test_real_news_dev_set_has_its_size_spread_dates_and_labels() -> None:
    news = rows("data/realnews/dev.jsonl")
    assert len({row["id"] for row in news}) == len(news) >= 400
    assert len({row["doc"] for row in news}) >= 80
    assert len({row["outlet"] for row in news}) >= 40
    assert min(row["date"] for row in news) >= "2024-11-01"
    assert all(row["url"].startswith("http") for row in news)
    assert set(Counter(row["label"] for row in news)) == {"favor", "against", "none"}


@pytest.mark.skipif(not RESERVED.is_file(), reason="no shared/reserved_sources.txt beside the repo")
def test_no_real_news_sentence_comes_from_a_reserved_page() -> None:
    def address(url: str) -> str:
        return re.sub(r"^https?://(www\.)?", "", url.strip()).rstrip("/").replace(":443", "")

    reserved = {address(line) for line in RESERVED.read_text().splitlines() if "://" in line}
    assert not {address(row["url"]) for row in rows("data/realnews/dev.jsonl")} & reserved


def test_no_sentence_is_in_two_data_files() -> None:
    seen: dict[str, str] = {}
    for path in DATA_FILES:
        for text in {folded(row["text"]) for row in rows(path)}:
            assert text not in seen, f"{text!r} is in {seen.get(text)} and {path}"
            seen[text] = path


@pytest.mark.parametrize(
    "labelled, annotation",
    [
        ("data/seed_sentences.jsonl", "data/annotation/v2"),
        ("data/realnews/dev.jsonl", "data/realnews/annotation"),
    ],
)
def test_labels_are_the_two_passes_where_they_agree_and_the_adjudication_elsewhere(
    labelled: str, annotation: str
) -> None:
    passes = [
        {row["id"]: row["label"] for row in rows(f"{annotation}/{name}.jsonl")}
        for name in ("pass_a", "pass_b")
    ]
    adjudicated = {row["id"]: row["label"] for row in rows(f"{annotation}/adjudicated.jsonl")}
    for row in rows(labelled):
        a, b = (labels[row["id"]] for labels in passes)
        assert row["label"] == (a if a == b else adjudicated[row["id"]]), row["id"]
