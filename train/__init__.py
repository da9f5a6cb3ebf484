"""negstance.train: the training config, the labelled data, the training loop.

Names are imported on first use (PEP 562), so a script's ``--help`` answers before
torch loads.

Example:
    >>> from negstance.train import load_config, train
    >>> result = train(load_config("configs/default.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

from negstance.model import lazy_exports

_HOMES = {
    "TrainConfig": "config",
    "TrainResult": "training",
    "load_config": "config",
    "load_seed_dataset": "data",
    "segment_articles": "data",
    "train": "training",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
