"""negstance.model: the stance classifier, its checkpoint format and batch inference.

Names are imported on first use (PEP 562), so a script's ``--help`` answers before
torch loads. Importing :mod:`negstance.model.network` (any of the model classes,
``StanceClassifier`` or a checkpoint load does) registers ``model_type: negstance``
with transformers' ``Auto*`` classes.

Example:
    >>> from negstance.model import StanceClassifier
    >>> classifier = StanceClassifier.from_pretrained("runs/default")  # doctest: +SKIP
    >>> classifier.predict("Both sides said they are ready to talk.")  # doctest: +SKIP
    'favor'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A package ``__getattr__`` that imports each public name from its module on first use."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    return __getattr__


_HOMES = {
    "DEFAULT_BACKBONE": "backbones",
    "ID2LABEL": "labels",
    "LABEL2ID": "labels",
    "LABELS": "labels",
    "NegstanceConfig": "network",
    "NegstanceError": "errors",
    "NegstanceForSequenceClassification": "network",
    "StanceClassifier": "classifier",
    "split_sentences": "text",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
