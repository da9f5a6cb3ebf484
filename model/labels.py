"""The three stances in class-id order (a checkpoint's ``id2label``); see data/CODEBOOK.md."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("favor", "against", "none")
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {label: index for index, label in ID2LABEL.items()}
# One line each, for the terminal labeller and the model card (data/CODEBOOK.md has the rules).
DEFINITIONS: dict[str, str] = {
    "favor": "readiness to talk, calls for or support of talks, hope or optimism about them, "
    "praise of them, a claim of progress (productive, agreed to, a breakthrough)",
    "against": "refusing talks, preferring to fight on, pessimism that talks can work, a claim "
    "they failed, criticism of talks or of a deal, conditions framed as blocking a deal",
    "none": "no stance toward negotiation: background, facts, other topics, reports that "
    "talks take place or are scheduled (who, where, when), headlines and boilerplate",
}
