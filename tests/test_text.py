"""The sentence splitter the seed set was segmented with (``negstance.model.text``)."""

from __future__ import annotations

import itertools

import pytest

from negstance.model.text import sentence_spans, split_sentences

UNSPLIT = [
    "U.S. officials were hopeful about the talks.",
    "Former U.S. Ambassador William B. Taylor spoke in Kyiv.",
    "Mr. Peskov and Gen. Kellogg did not comment.",
    "The summit is set for Jan. 20 in Riyadh.",
    "The U.K. and the E.U. backed Kyiv.",
    "Talks went on. and on.",  # a full stop before a lower-case word
]
SPLIT = [
    ("Talks resumed. Both sides came.", ["Talks resumed.", "Both sides came."]),
    ("Is it over? Yes! It is.", ["Is it over?", "Yes!", "It is."]),
    ("The war began in 2014. 2022 saw more.", ["The war began in 2014.", "2022 saw more."]),
    ('"It is over." He left.', ['"It is over."', "He left."]),
    ("Ends with dots... Next one.", ["Ends with dots...", "Next one."]),
    (
        "He said the Russian president “wants to meet.” The Kremlin confirmed it.",
        ["He said the Russian president “wants to meet.”", "The Kremlin confirmed it."],
    ),
    # Every line is a sentence; line endings and surrounding whitespace are not part of one.
    (
        "Trump's Diplomatic Strategy\nThu 13th Feb, 2025\nTrump spoke to Putin. He called it "
        "productive.\n\nRead also:\nAdd a comment",
        "Trump's Diplomatic Strategy|Thu 13th Feb, 2025|Trump spoke to Putin.|He called it "
        "productive.|Read also:|Add a comment".split("|"),
    ),
    ("  One.\r\nTwo?  \r\n\r\n\tThree! Four.   ", ["One.", "Two?", "Three!", "Four."]),
    ("First line.\nLast words here\n", ["First line.", "Last words here"]),
    ("First line.\nLast words here", ["First line.", "Last words here"]),
    *((blank, []) for blank in ["", "   ", "\n\n", " \r\n\t\n"]),
]


@pytest.mark.parametrize("text, expected", [*((text, [text]) for text in UNSPLIT), *SPLIT])
def test_sentences_end_at_terminal_punctuation_but_not_after_abbreviations(text, expected):
    assert split_sentences(text) == expected


def test_spans_point_at_the_sentences_in_order_without_overlap() -> None:
    text = "Headline\nU.S. envoy met Putin. “Talks,” he said. Next?\n  Read also:\n"
    spans = sentence_spans(text)
    assert [text[start:end] for start, end in spans] == split_sentences(text)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    covered = {position for start, end in spans for position in range(start, end)}
    uncovered = [char for position, char in enumerate(text) if position not in covered]
    assert all(char.isspace() for char in uncovered)
