"""A linear head on the mean-pooled vectors of any ``AutoModel`` encoder (BERT, MPNet, RoBERTa,
…); ``config.json`` (``model_type: negstance``) carries the encoder's config. Importing this
module registers it with the ``Auto*`` classes (no remote code)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.auto import AutoModelForSequenceClassification

# Encoders whose position ids start after the padding index: two positions are unusable.
OFFSET_POSITIONS = frozenset(
    "camembert data2vec-text ibert longformer luke mpnet roberta roberta-prelayernorm "
    "xlm-roberta xlm-roberta-xl xmod".split()
)


class NegstanceConfig(PretrainedConfig):
    """The encoder's config (as a dict, under ``encoder``) plus the head's settings.

    Example:
        >>> from transformers import BertConfig
        >>> config = NegstanceConfig(encoder=BertConfig(hidden_size=32).to_dict())
        >>> config.encoder_config().model_type, config.hidden_size
        ('bert', 32)
    """

    model_type = "negstance"

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        pooling: str = "mean",
        classifier_dropout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder = dict(encoder or {"model_type": "bert"})
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout

    def encoder_config(self) -> PretrainedConfig:
        return AutoConfig.for_model(**self.encoder)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder_config().hidden_size)  # DistilBERT's `dim`, by its attribute map

    @property
    def max_position_embeddings(self) -> int | None:
        return usable_positions(self.encoder_config())


def usable_positions(config: PretrainedConfig) -> int | None:
    """How many tokens a model with ``config`` can read; None when it sets no limit."""
    if isinstance(config, NegstanceConfig):
        config = config.encoder_config()
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and config.model_type in OFFSET_POSITIONS:
        return positions - 2
    return positions


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class NegstanceForSequenceClassification(PreTrainedModel):
    """Any ``AutoModel`` encoder, mean pooling, dropout, one linear layer."""

    config_class = NegstanceConfig
    base_model_prefix = "encoder"  # a bare encoder checkpoint (a backbone) fills `encoder.*`

    def __init__(self, config: NegstanceConfig) -> None:
        super().__init__(config)
        encoder_config = config.encoder_config()
        try:  # BERT, MPNet, RoBERTa: no pooler, which the head does not read
            self.encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        except TypeError:  # encoders without a pooler option (DeBERTa-v2, …)
            self.encoder = AutoModel.from_config(encoder_config)
        # Tokenizer outputs this encoder does not take (MPNet has no token_type_ids) are dropped.
        self._encoder_inputs = set(inspect.signature(self.encoder.forward).parameters)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(0.1 if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:
            nn.init.normal_(module.weight, std=self.config.encoder.get("initializer_range", 0.02))
            nn.init.zeros_(module.bias)
        elif hasattr(self, "encoder") and hasattr(self.encoder, "_init_weights"):
            self.encoder._init_weights(module)

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: Any
    ) -> torch.Tensor:
        """The mean-pooled sentence vectors the head reads."""
        inputs = {k: v for k, v in inputs.items() if v is not None and k in self._encoder_inputs}
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs)
        return mean_pool(outputs.last_hidden_state, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pooled = self.embed(input_ids, attention_mask, token_type_ids=token_type_ids)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(NegstanceConfig.model_type, NegstanceConfig)
AutoModelForSequenceClassification.register(NegstanceConfig, NegstanceForSequenceClassification)
