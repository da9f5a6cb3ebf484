"""negstance.model: the stance classifier, its checkpoint format and batch inference.

Example:
    >>> from negstance.model import StanceClassifier
    >>> classifier = StanceClassifier.from_pretrained("runs/default")  # doctest: +SKIP
    >>> classifier.predict("Both sides said they are ready to talk.")  # doctest: +SKIP
    'favor'
"""

from negstance.model.errors import NegstanceError
from negstance.model.modeling import (
    DEFAULT_BACKBONE,
    ID2LABEL,
    LABEL2ID,
    LABELS,
    NegstanceConfig,
    NegstanceForSequenceClassification,
    StanceClassifier,
)
from negstance.model.text import split_sentences

__all__ = [
    "DEFAULT_BACKBONE",
    "ID2LABEL",
    "LABEL2ID",
    "LABELS",
    "NegstanceConfig",
    "NegstanceError",
    "NegstanceForSequenceClassification",
    "StanceClassifier",
    "split_sentences",
]
