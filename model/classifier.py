"""The public ``StanceClassifier``: on CUDA when there is a GPU, else the CPU, in bf16 where
the hardware runs it natively, else fp32."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.data.data_collator import pad_without_fast_tokenizer_warning

from negstance.model.checkpoint import load_checkpoint, save_checkpoint
from negstance.model.errors import NegstanceError
from negstance.model.network import mean_pool, usable_positions

PRECISIONS = ("auto", "fp32", "bf16", "int8")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` too."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with contextlib.suppress(RuntimeError, TypeError):
        resolved = torch.device(device)
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if resolved.type == "cpu" or (resolved.type == "cuda" and (resolved.index or 0) < gpus):
            return resolved
        if resolved.type == "cuda":
            raise NegstanceError(f"device {device!r} asked for, but this machine has {gpus} GPUs")
    raise NegstanceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        return any(flag in cpuinfo.read() for flag in ("avx512_bf16", "amx_bf16"))
    return False


def native_bf16(device_type: str) -> bool:
    """True when the ``"cuda"`` (Ampere or newer) or ``"cpu"`` device runs bf16 natively."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    return cpu_supports_bf16()


@dataclass
class EncodedTexts:
    """Texts tokenised once, unpadded, and their batches: index lists, longest texts first."""

    features: dict[str, list[list[int]]]
    batches: list[list[int]]
    truncated: list[bool]


class StanceClassifier:
    """Stance toward negotiation to end the Russia–Ukraine war, sentence by sentence.

    Example:
        >>> classifier = StanceClassifier.from_pretrained("runs/default")  # doctest: +SKIP
        >>> classifier.predict("Putin is ready for talks without preconditions.")  # doctest: +SKIP
        'favor'
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        max_length: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise NegstanceError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if precision == "int8" and self.device.type != "cpu":
            raise NegstanceError("precision int8 (dynamic quantisation) runs on the CPU only")
        if precision == "auto":
            precision = "bf16" if native_bf16(self.device.type) else "fp32"
        self.precision, self.tokenizer = precision, tokenizer
        model = model.to(self.device).eval()
        self.model = self.quantise_linear_layers(model) if precision == "int8" else model
        model_max = usable_positions(model.config) or tokenizer.model_max_length
        self.max_length = min(max_length or tokenizer.model_max_length or model_max, model_max)

    @staticmethod
    def quantise_linear_layers(model: nn.Module) -> nn.Module:
        """``model`` with its Linear layers dynamically quantised to int8 (faster on a CPU)."""
        with warnings.catch_warnings():  # "moving to torchao": noise to the user
            warnings.simplefilter("ignore")
            # Per-channel scales: 98.4% label agreement with fp32, not 95.8% (bench_inference).
            qconfig = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            return torch.ao.quantization.quantize_dynamic(model, qconfig, dtype=torch.qint8)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        precision: str = "fp32",
        max_length: int | None = None,
    ) -> StanceClassifier:
        """Load a checkpoint directory (from ``save_pretrained`` or ``scripts/train.py``) on
        ``device`` (auto, cpu, cuda, cuda:N) in ``precision`` (one of ``PRECISIONS``).
        Example: ``StanceClassifier.from_pretrained("runs/default", precision="auto")``."""
        model, tokenizer = load_checkpoint(path)
        return cls(model, tokenizer, device=device, precision=precision, max_length=max_length)

    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write a Hugging Face checkpoint directory, atomically: ``save_pretrained("runs/x")``."""
        if self.precision == "int8":
            raise NegstanceError("an int8-quantised classifier cannot be saved; load it in fp32")
        return save_checkpoint(self.model, self.tokenizer, path)

    @property
    def labels(self) -> list[str]:
        """Label names in class-id order, the columns of ``predict_proba``."""
        return [self.model.config.id2label[index] for index in range(self.model.config.num_labels)]

    def predict(self, texts: str | Sequence[str], batch_size: int = 32) -> str | list[str]:
        """The most likely label of each text (of a single string: a single label).
        Example: ``classifier.predict(["Talks resumed.", "Oil fell."])`` → ``['favor', 'none']``."""
        best, labels = self.predict_proba(texts, batch_size=batch_size).argmax(axis=-1), self.labels
        return labels[best] if isinstance(texts, str) else [labels[index] for index in best]

    def predict_proba(self, texts: str | Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Label probabilities, shape ``(n, 3)`` (columns: ``labels``), rows in input order;
        a single string gives shape ``(3,)``. Example: ``classifier.predict_proba(texts)``."""
        if isinstance(texts, str):
            return self.predict_proba([texts], batch_size)[0]
        return self.probabilities_and_truncation(texts, batch_size)[0]

    def probabilities_and_truncation(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, int]:
        """``predict_proba`` for a list, and how many texts were cut to ``max_length``."""
        encoded = self.encode(texts, batch_size)
        probabilities = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for batch in encoded.batches:
            probabilities[batch] = self.classify_batch(encoded, batch)
        return probabilities, sum(encoded.truncated)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> EncodedTexts:
        """Tokenise ``texts`` once and sort them into batches, longest first: similar
        lengths share a batch, and an out-of-memory error shows on the first batch."""
        _check_texts(texts)
        if not texts:
            return EncodedTexts({"input_ids": []}, [], [])
        features = {name: list(values) for name, values in self.tokenizer(list(texts)).items()}
        truncated = [len(ids) > self.max_length for ids in features["input_ids"]]
        too_long = [index for index, cut in enumerate(truncated) if cut]
        if too_long:  # encoded again by the tokenizer itself, so truncation stays its own
            shortened = self.tokenizer(
                [texts[index] for index in too_long], truncation=True, max_length=self.max_length
            )
            for name, values in features.items():
                for index, value in zip(too_long, shortened[name], strict=True):
                    values[index] = value
        order = sorted(range(len(texts)), key=lambda index: -len(features["input_ids"][index]))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        return EncodedTexts(features, batches, truncated)

    def classify_batch(self, encoded: EncodedTexts, batch: list[int]) -> np.ndarray:
        """Probabilities of the texts of ``encoded`` that ``batch`` indexes, in that order."""
        longest = len(encoded.features["input_ids"][batch[0]])
        # Padded to a multiple of 8 tokens: oneDNN caches a kernel per batch shape,
        # and fewer shapes kept peak memory from creeping up (bench_memory.py).
        inputs = pad_without_fast_tokenizer_warning(
            self.tokenizer,
            {name: [values[index] for index in batch] for name, values in encoded.features.items()},
            padding="max_length",
            max_length=min(-(-longest // 8) * 8, self.max_length),
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode(), self._autocast():
            logits = self.model(**inputs).logits.float()
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Mean-pooled sentence vectors, shape ``(n, hidden_size)``, what the head reads.
        Example: ``classifier.embed(["Talks resumed.", "Oil fell."]).shape`` is ``(2, 384)``."""
        _check_texts(texts)
        vectors = [np.zeros((0, self.model.config.hidden_size), dtype=np.float32)]
        for start in range(0, len(texts), batch_size):
            part = list(texts[start : start + batch_size])
            batch = self.tokenizer(part, padding=True, truncation=True, max_length=self.max_length)
            batch = batch.convert_to_tensors("pt").to(self.device)
            with torch.inference_mode(), self._autocast():
                if hasattr(self.model, "embed"):
                    pooled = self.model.embed(**batch)
                else:
                    hidden = self.model.base_model(**batch).last_hidden_state
                    pooled = mean_pool(hidden, batch["attention_mask"])
            vectors.append(pooled.float().cpu().numpy())
        return np.concatenate(vectors)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16")


def _check_texts(texts: Sequence[str]) -> None:
    strings = isinstance(texts, Sequence) and all(isinstance(text, str) for text in texts)
    if isinstance(texts, str) or not strings:  # a str would be classified letter by letter
        raise TypeError(f"texts must be a sequence of strings, not {texts!r:.80}")
    if not all(text.strip() for text in texts):
        raise ValueError("texts must not be empty or only whitespace: nothing to classify")
