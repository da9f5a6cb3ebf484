"""Stance metrics: accuracy, macro-F1 and F_avg (SemEval-2016 Task 6), from scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from negstance.model.labels import LABELS

LABEL_IDS = list(range(len(LABELS)))


def classification_metrics(references: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """Accuracy, macro-F1, F_avg (SemEval-2016: the mean of F1 favor and F1 against; ``none``
    counts only through the errors it causes), per-label P/R/F1 and the confusion matrix.

    Example:
        >>> round(classification_metrics([0, 1, 2, 2], [0, 1, 2, 1])["f_avg"], 4)
        0.8333
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predictions, labels=LABEL_IDS, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "macro_f1": float(f1.mean()),
        "f_avg": float((f1[0] + f1[1]) / 2),
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(LABELS, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(references, predictions, labels=LABEL_IDS).tolist(),
    }
