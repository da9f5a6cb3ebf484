"""Sentence splitting for news text.

The seed dataset (``data/seed_sentences.jsonl``) was segmented with exactly this
code, and batch inference in ``--documents`` mode uses it to classify whole
articles, so training and inference see text cut the same way.

Rules, in the order they matter:

* every non-empty line is at least one sentence (headlines, datelines,
  "Read also:" and "Add a comment" lines are sentences too);
* inside a line, a sentence ends at ``.``, ``!`` or ``?`` (plus any closing
  quotes or brackets) followed by whitespace and something that can start a
  sentence: an upper-case letter, a digit or an opening quote;
* a full stop after an abbreviation or an initial does not end a sentence
  ("U.S. officials", "William B. Taylor", "Mr. Peskov").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["sentence_spans", "split_sentences"]

# Words that end with a full stop yet rarely end a sentence in news copy.
_ABBREVIATIONS = frozenset(
    (
        "mr mrs ms dr prof gen col lt sgt capt gov sen rep st jr sr vs etc no "
        "jan feb mar apr jun jul aug sep sept oct nov dec inc corp ltd co"
    ).split()
)

# A candidate boundary: terminal punctuation, optional closing quotes/brackets,
# whitespace, then something that can open a sentence.
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[A-Z0-9])")

# The token that ends right before a full stop, e.g. "U.S" in "U.S." or "B".
_LAST_TOKEN = re.compile(r"(\S+)$")


def _is_abbreviation(before: str) -> bool:
    """True when the full stop closing ``before`` belongs to an abbreviation."""
    match = _LAST_TOKEN.search(before)
    if match is None:
        return False
    token = match.group(1).lstrip("\"'“‘([")
    if re.fullmatch(r"[A-Z]", token):  # an initial: "William B. Taylor"
        return True
    if re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", token):  # "U.S", "e.g", "U.K"
        return True
    return token.lower() in _ABBREVIATIONS


def _line_spans(line: str, offset: int) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _BOUNDARY.finditer(line):
        punctuation_at = match.start()
        if line[punctuation_at] == "." and _is_abbreviation(line[start:punctuation_at]):
            continue
        end = match.start(1)
        yield offset + start, offset + end
        start = match.end(1)
    if line[start:].strip():
        yield offset + start, offset + len(line.rstrip())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``.

    ``text[start:end]`` is the sentence, stripped of surrounding whitespace.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped:
            leading = len(line) - len(line.lstrip())
            body = line[leading:].rstrip()
            spans.extend(_line_spans(body, position + leading))
        position += len(line)
    return spans


def split_sentences(text: str) -> list[str]:
    """Split a news article (or any text) into sentences.

    Example:
        >>> split_sentences("Talks resumed. U.S. officials were hopeful.\\nRead also:")
        ['Talks resumed.', 'U.S. officials were hopeful.', 'Read also:']
    """
    return [text[start:end] for start, end in sentence_spans(text)]
