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


def lazy_exports(package: str, **homes: tuple[str, ...]) -> tuple[Callable[[str], Any], list]:
    """A package's ``__getattr__`` that imports each public name from its module on first use,
    and its ``__all__``; ``homes`` maps each module to the names it provides."""
    module_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)

    __getattr__.module_of = module_of  # type: ignore[attr-defined]  (read by the tests)
    return __getattr__, sorted(module_of)


__getattr__, __all__ = lazy_exports(
    __name__,
    backbones=("DEFAULT_BACKBONE",),
    classifier=("StanceClassifier",),
    errors=("NegstanceError",),
    labels=("ID2LABEL", "LABEL2ID", "LABELS"),
    network=("NegstanceConfig", "NegstanceForSequenceClassification"),
    text=("split_sentences",),
)
