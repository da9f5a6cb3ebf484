"""The public ``StanceClassifier``, and where and in what precision it runs.

``device="auto"`` is CUDA when there is a GPU, else the CPU; ``precision="auto"``
is bf16 where the hardware runs it natively, else fp32: the same code everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

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
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise NegstanceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise NegstanceError(f"device {device!r} asked for, but no CUDA GPU is available")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise NegstanceError(
            f"device {device!r} asked for, but there are only {torch.cuda.device_count()} "
            "CUDA GPU(s): use cuda:0 to cuda:N-1"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise NegstanceError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return resolved


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_supports_bf16() -> bool:
    """True when a CUDA GPU runs bf16 natively (Ampere or newer; older ones emulate it,
    slower than fp32)."""
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no emulation fallback: its answer is native-only
        return torch.cuda.is_bf16_supported()


def native_bf16(device_type: str) -> bool:
    """True when the ``"cuda"`` or ``"cpu"`` device runs bf16 natively.

    Example:
        >>> "bf16" if native_bf16("cuda") else "fp32"  # doctest: +SKIP
        'bf16'
    """
    return cuda_supports_bf16() if device_type == "cuda" else cpu_supports_bf16()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` picks bf16 where the hardware runs it natively, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise NegstanceError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise NegstanceError("precision int8 (dynamic quantisation) runs on the CPU only")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device.type) else "fp32"


class StanceClassifier:
    """Stance of a sentence toward negotiation to end the Russia–Ukraine war.

    Example:
        >>> from negstance.model import StanceClassifier
        >>> classifier = StanceClassifier.from_pretrained("runs/default")  # doctest: +SKIP
        >>> classifier.predict("Putin is ready for talks without preconditions.")  # doctest: +SKIP
        'favor'
        >>> texts = ["Talks are doomed.", "Oil prices fell."]
        >>> classifier.predict_proba(texts).shape  # doctest: +SKIP
        (2, 3)
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        max_length: int | None = None,
    ) -> None:
        """Wrap a loaded sequence-classification model and its tokenizer.

        For a model already in memory (e.g. just trained); arguments as in
        ``from_pretrained``.

        Example:
            >>> model, tokenizer = load_checkpoint("runs/default")  # doctest: +SKIP
            >>> classifier = StanceClassifier(model, tokenizer, device="cpu")  # doctest: +SKIP
            >>> classifier.predict("Talks resumed.")  # doctest: +SKIP
            'favor'
        """
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tokenizer = tokenizer
        model = model.to(self.device).eval()
        if self.precision == "int8":
            model = self.quantise_linear_layers(model)
        self.model = model
        model_max = usable_positions(model.config) or tokenizer.model_max_length
        self.max_length = min(max_length or tokenizer.model_max_length or model_max, model_max)

    @staticmethod
    def quantise_linear_layers(model: nn.Module) -> nn.Module:
        """``model`` with its Linear layers dynamically quantised to int8: faster on CPU,
        slightly less exact, hence opt-in (``precision="int8"``)."""
        # Recent torch warns that this API is moving to torchao: noise to the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            # Per-channel scales: 98.4% label agreement with fp32, not 95.8% (bench_inference).
            return torch.ao.quantization.quantize_dynamic(
                model,
                {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
                dtype=torch.qint8,
            )

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        precision: str = "fp32",
        max_length: int | None = None,
    ) -> StanceClassifier:
        """Load a checkpoint directory written by ``save_pretrained`` or ``scripts/train.py``.

        ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``. ``precision``: ``"fp32"`` (exact),
        ``"bf16"`` (autocast), ``"int8"`` (CPU dynamic quantisation) or
        ``"auto"`` (bf16 where the hardware runs it natively). ``max_length``:
        tokens per text before truncation (default: the checkpoint's limit).
        """
        model, tokenizer = load_checkpoint(path)
        return cls(model, tokenizer, device=device, precision=precision, max_length=max_length)

    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write a Hugging Face checkpoint directory (safetensors), atomically."""
        if self.precision == "int8":
            raise NegstanceError("an int8-quantised classifier cannot be saved; load it in fp32")
        return save_checkpoint(self.model, self.tokenizer, path)

    @property
    def labels(self) -> list[str]:
        """Label names in class-id order: the columns of ``predict_proba``.

        Example:
            >>> classifier.labels  # doctest: +SKIP
            ['favor', 'against', 'none']
        """
        return [self.id2label[index] for index in range(len(self.id2label))]

    @property
    def id2label(self) -> dict[int, str]:
        """Class id → label name, from the checkpoint's ``config.json``."""
        return {int(key): value for key, value in self.model.config.id2label.items()}

    @property
    def label2id(self) -> dict[str, int]:
        """Label name → class id; the inverse of ``id2label``."""
        return {label: index for index, label in self.id2label.items()}

    @overload
    def predict(self, texts: str, batch_size: int = 32) -> str: ...
    @overload
    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[str]: ...
    def predict(self, texts: str | Sequence[str], batch_size: int = 32) -> str | list[str]:
        """The most likely label of each text; a single string gives a single label."""
        probabilities = self.predict_proba(texts, batch_size=batch_size)
        if isinstance(texts, str):
            return self.id2label[int(probabilities.argmax())]
        return [self.id2label[int(index)] for index in probabilities.argmax(axis=1)]

    def predict_proba(self, texts: str | Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Label probabilities, shape ``(n, 3)`` with columns in ``labels`` order.

        Rows follow the input order; a single string gives shape ``(3,)``.
        """
        single = isinstance(texts, str)
        if single and not texts.strip():
            # Checked here: after wrapping, the error would name a "texts[0]" never passed.
            raise ValueError("text is empty or only whitespace: nothing to classify")
        probabilities, _ = self.probabilities_and_truncation(
            [texts] if single else texts, batch_size=batch_size
        )
        return probabilities[0] if single else probabilities

    def probabilities_and_truncation(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, int]:
        """``predict_proba`` for a list, plus how many texts were cut to ``max_length``.

        ``on_batch``, if given, is called after every batch with the number of
        texts classified so far (a progress bar's hook).
        """
        texts = validate_texts(texts, batch_size)
        probabilities = np.zeros((len(texts), len(self.id2label)), dtype=np.float32)
        if not texts:
            return probabilities, 0
        # Tokenised once, unpadded; only the rare over-long texts are encoded a
        # second time, by the tokenizer itself, so truncation stays its own.
        encoded = self.tokenizer(list(texts), truncation=False, add_special_tokens=True)
        features = {name: list(values) for name, values in encoded.items()}
        too_long = [
            index for index, ids in enumerate(features["input_ids"]) if len(ids) > self.max_length
        ]
        if too_long:
            shortened = self.tokenizer(
                [texts[index] for index in too_long], truncation=True, max_length=self.max_length
            )
            for name, values in features.items():
                for index, value in zip(too_long, shortened[name], strict=True):
                    values[index] = value
        lengths = [len(ids) for ids in features["input_ids"]]
        # Longest first: similar lengths share a batch, so padding stays small,
        # and an out-of-memory error shows up on the first batch, not the last.
        order = sorted(range(len(texts)), key=lambda index: -lengths[index])
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                # Padded to a multiple of 8 tokens: oneDNN caches a kernel per batch shape,
                # and fewer shapes kept peak memory from creeping up (bench_memory.py).
                width = min(-(-lengths[indices[0]] // 8) * 8, self.max_length)
                batch = pad_without_fast_tokenizer_warning(
                    self.tokenizer,
                    {
                        name: [values[index] for index in indices]
                        for name, values in features.items()
                    },
                    padding="max_length",
                    max_length=width,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**batch).logits.float()
                probabilities[indices] = torch.softmax(logits, dim=-1).cpu().numpy()
                if on_batch is not None:
                    on_batch(start + len(indices))
        return probabilities, len(too_long)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Mean-pooled sentence vectors, shape ``(n, hidden_size)``, rows in input order.

        The vectors the mean-pooling head reads (``model.embed``); for a model
        without one, the attention-masked mean of its last hidden states.

        Example:
            >>> classifier.embed(["Talks resumed.", "Oil prices fell."]).shape  # doctest: +SKIP
            (2, 384)
        """
        texts = validate_texts(texts, batch_size)
        vectors = [np.zeros((0, self.model.config.hidden_size), dtype=np.float32)]
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                if hasattr(self.model, "embed"):
                    pooled = self.model.embed(**batch)
                else:
                    hidden = self.model.base_model(**batch).last_hidden_state
                    pooled = mean_pool(hidden, batch["attention_mask"])
                vectors.append(pooled.float().cpu().numpy())
        return np.concatenate(vectors)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def validate_texts(texts: Sequence[str], batch_size: int) -> Sequence[str]:
    """Type and content checks shared by every prediction entry point.

    A bare ``str`` is refused: it would be classified one character at a time.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings here; wrap a single text: [text]")
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Sequence):
        raise TypeError(
            f"texts must be a string or a sequence of strings, not {type(texts).__name__}"
        )
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"texts[{position}] is empty or only whitespace: nothing to classify")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return texts
