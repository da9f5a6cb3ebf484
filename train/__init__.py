"""negstance.train: the training config, the labelled data, the training loop (names
imported on first use, so ``--help`` answers before torch loads).

Example:
    >>> from negstance.train import load_config, train
    >>> result = train(load_config("configs/default.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

from negstance.model import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    config=("TrainConfig", "load_config"),
    data=("load_seed_dataset", "segment_articles"),
    training=("TrainResult", "train"),
)
