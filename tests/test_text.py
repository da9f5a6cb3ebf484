"""The sentence splitter the seed set was segmented with (``negstance.model.text``)."""

from __future__ import annotations

import itertools

import pytest

from negstance.model.text import sentence_spans, split_sentences


@pytest.mark.parametrize(
    "text",
    [
        "U.S. officials were hopeful about the talks.",
        "Former U.S. Ambassador William B. Taylor spoke in Kyiv.",
        "Mr. Peskov and Gen. Kellogg did not comment.",
        "The summit is set for Jan. 20 in Riyadh.",
        "The U.K. and the E.U. backed Kyiv.",
    ],
)
def test_abbreviations_and_initials_do_not_end_a_sentence(text: str) -> None:
    assert split_sentences(text) == [text]


def test_closing_quote_ends_the_sentence_before_the_next_one() -> None:
    text = "He said the Russian president “wants to meet.” The Kremlin confirmed it."
    assert split_sentences(text) == [
        "He said the Russian president “wants to meet.”",
        "The Kremlin confirmed it.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Talks resumed. Both sides came.", ["Talks resumed.", "Both sides came."]),
        ("Is it over? Yes! It is.", ["Is it over?", "Yes!", "It is."]),
        ("The war began in 2014. 2022 saw more.", ["The war began in 2014.", "2022 saw more."]),
        ('"It is over." He left.', ['"It is over."', "He left."]),
        ("Ends with dots... Next one.", ["Ends with dots...", "Next one."]),
    ],
)
def test_terminal_punctuation_before_a_capital_or_digit_splits(
    text: str, expected: list[str]
) -> None:
    assert split_sentences(text) == expected


def test_a_full_stop_before_a_lower_case_word_does_not_split() -> None:
    assert split_sentences("Talks went on. and on.") == ["Talks went on. and on."]


def test_every_line_is_its_own_sentence() -> None:
    article = (
        "Trump's Diplomatic Strategy\n"
        "Thu 13th Feb, 2025\n"
        "Trump spoke to Putin. He called it productive.\n"
        "\n"
        "Read also:\n"
        "Add a comment"
    )
    assert split_sentences(article) == [
        "Trump's Diplomatic Strategy",
        "Thu 13th Feb, 2025",
        "Trump spoke to Putin.",
        "He called it productive.",
        "Read also:",
        "Add a comment",
    ]


def test_text_without_final_newline_keeps_its_last_sentence() -> None:
    with_newline = split_sentences("First line.\nLast words here\n")
    without_newline = split_sentences("First line.\nLast words here")
    assert without_newline == with_newline == ["First line.", "Last words here"]


def test_windows_line_endings_and_surrounding_whitespace_are_not_part_of_sentences() -> None:
    text = "  One.\r\nTwo?  \r\n\r\n\tThree! Four.   "
    assert split_sentences(text) == ["One.", "Two?", "Three!", "Four."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", " \r\n\t\n"])
def test_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


def test_spans_point_at_the_sentences_in_order_without_overlap() -> None:
    text = "Headline\nU.S. envoy met Putin. “Talks,” he said. Next?\n  Read also:\n"
    spans = sentence_spans(text)
    assert [text[start:end] for start, end in spans] == split_sentences(text)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    covered = {position for start, end in spans for position in range(start, end)}
    uncovered = [char for position, char in enumerate(text) if position not in covered]
    assert all(char.isspace() for char in uncovered)
