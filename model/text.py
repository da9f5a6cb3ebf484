"""Sentence splitting for news text, as the seed set was cut and ``--documents`` cuts articles:
every non-empty line is at least one sentence (headlines too); inside a line, a sentence ends
at ``.``, ``!`` or ``?`` (and closing quotes or brackets) before whitespace and an upper-case
letter, a digit or an opening quote, but not after an abbreviation or initial ("U.S.")."""

from __future__ import annotations

import re

# Words that end with a full stop yet rarely end a sentence in news copy.
_ABBREVIATIONS = set(
    "mr mrs ms dr prof gen col lt sgt capt gov sen rep st jr sr vs etc no jan feb mar apr jun "
    "jul aug sep sept oct nov dec inc corp ltd co".split()
)

# A candidate end: . ! or ?, closing quotes or brackets, whitespace, then a sentence's start.
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[A-Z0-9])")


def _is_abbreviation(before: str) -> bool:
    """Whether ``before`` ends in an abbreviation or initial: "Mr", "U.S", "e.g", "B"."""
    match = re.search(r"\S+$", before)
    token = match.group().lstrip("\"'“‘([") if match else ""
    initials = re.fullmatch(r"[A-Z]|(?:[A-Za-z]\.)+[A-Za-z]", token)
    return bool(initials) or token.lower() in _ABBREVIATIONS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, without its surrounding whitespace."""
    spans, position = [], 0
    for line in text.splitlines(keepends=True):
        offset, body = position + len(line) - len(line.lstrip()), line.strip()
        position += len(line)
        start = 0
        for match in _BOUNDARY.finditer(body):
            if body[match.start()] == "." and _is_abbreviation(body[start : match.start()]):
                continue
            spans.append((offset + start, offset + match.start(1)))
            start = match.end(1)
        if body[start:].strip():
            spans.append((offset + start, offset + len(body)))
    return spans


def split_sentences(text: str) -> list[str]:
    """Split a news article (or any text) into sentences.

    Example:
        >>> split_sentences("Talks resumed. U.S. officials were hopeful.\\nRead also:")
        ['Talks resumed.', 'U.S. officials were hopeful.', 'Read also:']
    """
    return [text[start:end] for start, end in sentence_spans(text)]
