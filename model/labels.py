"""The three stances in class-id order (a checkpoint's ``id2label``); see data/CODEBOOK.md."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("favor", "against", "none")
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {label: index for index, label in ID2LABEL.items()}
