"""negstance.train: the training config, the seed dataset and the training loop.

Example:
    >>> from negstance.train import load_config, train
    >>> result = train(load_config("configs/default.yaml"))  # doctest: +SKIP
"""

from negstance.train.config import TrainConfig, load_config
from negstance.train.data import load_seed_dataset, segment_articles
from negstance.train.training import TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "load_config",
    "load_seed_dataset",
    "segment_articles",
    "train",
]
