"""The network and the public ``StanceClassifier``.

Two heads are supported:

* ``mean`` (default): a linear layer on the attention-masked mean of the last
  hidden states of **any** ``AutoModel`` encoder (BERT, MPNet, RoBERTa,
  DeBERTa-v2, …). Sentence-transformers backbones were trained to be read this
  way. Like transformers' ``EncoderDecoderModel``, the checkpoint's
  ``config.json`` (``model_type: negstance``) carries the encoder's own config;
  the class is registered with the ``Auto*`` classes when ``negstance.model`` is
  imported (no remote code involved).
* ``cls``: stock ``AutoModelForSequenceClassification`` for any backbone; the
  checkpoint then loads anywhere transformers does, without negstance.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.data.data_collator import pad_without_fast_tokenizer_warning
from transformers.modeling_outputs import SequenceClassifierOutput

from negstance.model.backbones import MPNET, resolve_model_path
from negstance.model.errors import NegstanceError

LABELS: tuple[str, ...] = ("favor", "against", "none")
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {label: index for index, label in ID2LABEL.items()}

DEFAULT_BACKBONE = MPNET
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# Encoders whose position ids start after the padding index: two positions are unusable.
OFFSET_POSITIONS = (
    "camembert",
    "data2vec-text",
    "ibert",
    "longformer",
    "luke",
    "mpnet",
    "roberta",
    "roberta-prelayernorm",
    "xlm-roberta",
    "xlm-roberta-xl",
    "xmod",
)


# --------------------------------------------------------------------------- #
# The mean-pooling head over any encoder
# --------------------------------------------------------------------------- #
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
        encoder: dict[str, Any] | PretrainedConfig | None = None,
        pooling: str = "mean",
        classifier_dropout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(encoder, PretrainedConfig):
            encoder = encoder.to_dict()
        self.encoder = dict(encoder or {"model_type": "bert"})
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout

    def encoder_config(self) -> PretrainedConfig:
        """The encoder's own config object (``BertConfig``, ``MPNetConfig``, …)."""
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder_config().hidden_size)  # DistilBERT calls it `dim`

    @property
    def max_position_embeddings(self) -> int | None:
        """Token positions the encoder can read (RoBERTa-style encoders reserve two)."""
        return usable_positions(self.encoder_config())


def usable_positions(config: PretrainedConfig) -> int | None:
    """How many tokens a model with ``config`` can read; None when it sets no limit."""
    if isinstance(config, NegstanceConfig):
        return config.max_position_embeddings
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and config.model_type in OFFSET_POSITIONS:
        return positions - 2
    return positions


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that the attention mask keeps."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class NegstanceForSequenceClassification(PreTrainedModel):
    """Any ``AutoModel`` encoder, mean pooling, dropout, one linear layer."""

    config_class = NegstanceConfig
    # Loading a bare encoder checkpoint (a backbone) fills ``encoder.*`` from its keys.
    base_model_prefix = "encoder"

    def __init__(self, config: NegstanceConfig) -> None:
        super().__init__(config)
        encoder_config = config.encoder_config()
        try:  # BERT, MPNet, RoBERTa: no pooler, which the head does not read
            self.encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        except TypeError:  # encoders without a pooler option (DeBERTa-v2, …)
            self.encoder = AutoModel.from_config(encoder_config)
        # Inputs a tokenizer may produce that this encoder does not take (MPNet has no
        # token_type_ids), dropped rather than passed on to fail.
        self._encoder_inputs = set(inspect.signature(self.encoder.forward).parameters)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(0.1 if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:
            std = self.config.encoder.get("initializer_range", 0.02)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            nn.init.zeros_(module.bias)
        elif hasattr(self, "encoder") and hasattr(self.encoder, "_init_weights"):
            self.encoder._init_weights(module)

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: Any
    ) -> torch.Tensor:
        """The mean-pooled sentence vectors the head reads."""
        inputs = {
            name: value
            for name, value in inputs.items()
            if value is not None and name in self._encoder_inputs
        }
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
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(NegstanceConfig.model_type, NegstanceConfig)
AutoModelForSequenceClassification.register(NegstanceConfig, NegstanceForSequenceClassification)


# --------------------------------------------------------------------------- #
# Building and loading
# --------------------------------------------------------------------------- #
def build_model(
    model_name_or_path: str, head: str = "mean", classifier_dropout: float | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh three-label classifier on a pretrained backbone, and its tokenizer.

    Example:
        >>> model, tokenizer = build_model("all-mpnet-base-v2")  # doctest: +SKIP
        >>> type(model.encoder).__name__  # doctest: +SKIP
        'MPNetModel'
    """
    path = resolve_model_path(model_name_or_path)
    label_kwargs: dict[str, Any] = {
        "num_labels": len(LABELS),
        "id2label": ID2LABEL,
        "label2id": LABEL2ID,
        "classifier_dropout": classifier_dropout,
    }
    try:
        with _quiet_transformers_loading():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            backbone_config = AutoConfig.from_pretrained(path, trust_remote_code=False)
            is_negstance = backbone_config.model_type == NegstanceConfig.model_type
            if head == "cls":
                if is_negstance:
                    # The Auto classes map it back to the mean-pooling model, not a [CLS] head.
                    raise NegstanceError(
                        f"{model_name_or_path!r} is a negstance mean-pooling checkpoint: "
                        "fine-tune it with head=mean"
                    )
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, use_safetensors=True, trust_remote_code=False, **label_kwargs
                )
            elif head == "mean":
                # A negstance checkpoint as the backbone: keep its encoder, new head.
                encoder = backbone_config.encoder if is_negstance else backbone_config.to_dict()
                config = NegstanceConfig(encoder=encoder, pooling="mean", **label_kwargs)
                model, loading = NegstanceForSequenceClassification.from_pretrained(
                    path, config=config, use_safetensors=True, output_loading_info=True
                )
                prefixed = any(key.startswith("encoder.") for key in loading["missing_keys"])
                if prefixed:
                    # Keys under another prefix (`bert.` of a *ForMaskedLM or a head=cls
                    # checkpoint): the encoder class knows how to strip its own.
                    load_encoder_weights(model, path)
                if prefixed or is_negstance:  # a loaded trained head is not the new start
                    model._init_weights(model.classifier)
            else:
                raise NegstanceError(f"head must be 'mean' or 'cls', not {head!r}")
    except NegstanceError:
        raise
    except (OSError, ValueError) as error:
        local = Path(path)
        if local.is_dir() and not (local / "config.json").is_file():
            reason = f"{local} has no config.json, so it is not a transformers model directory"
        elif local.is_dir() and not any(local.glob("*.safetensors")):
            reason = (
                "it has no safetensors weights; pickled weights (pytorch_model.bin) are refused "
                "because loading them can run arbitrary code: convert them to safetensors first"
            )
        elif local.is_dir():
            reason = _first_line(error)
        elif model_name_or_path.startswith(("/", ".", "~")):  # a path, not a hub id
            reason = "no such directory"
        else:
            reason = f"not a local directory, nor in the Hugging Face cache ({_first_line(error)})"
        raise NegstanceError(f"cannot load backbone {model_name_or_path!r}: {reason}") from None
    return model, tokenizer


def load_encoder_weights(model: NegstanceForSequenceClassification, path: str) -> None:
    """Fill ``model.encoder`` from a checkpoint whose keys carry another prefix; all or none."""
    try:
        encoder, loading = AutoModel.from_pretrained(
            path, use_safetensors=True, trust_remote_code=False, output_loading_info=True
        )
    except (OSError, ValueError) as error:
        raise NegstanceError(f"cannot load backbone {path!r}: {_first_line(error)}") from None
    state = {k: v for k, v in encoder.state_dict().items() if not k.startswith("pooler.")}
    missing = [k for k in loading["missing_keys"] if not k.startswith("pooler.")]
    if missing or model.encoder.load_state_dict(state, strict=False).missing_keys:
        raise NegstanceError(
            f"cannot load backbone {path!r}: its checkpoint lacks encoder weights "
            f"(e.g. {(missing or ['?'])[0]}); save the bare encoder with "
            "AutoModel.from_pretrained(...).save_pretrained(...) and use that directory"
        )


def check_max_length(model: PreTrainedModel, max_length: int, model_name_or_path: str) -> None:
    """Refuse a ``max_length`` beyond the model's position embeddings.

    Without this check, tokens past the last position make the forward pass fail with
    a tensor-size error deep inside the encoder.
    """
    positions = usable_positions(model.config)
    if positions is not None and max_length > positions:
        raise NegstanceError(
            f"max_length {max_length} is more than the {positions} token positions "
            f"of {model_name_or_path}: use max_length <= {positions}"
        )


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")


def check_checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse anything that is not a complete, safe negstance checkpoint directory."""
    directory = Path(path)
    if not directory.exists():
        retired = sorted(directory.parent.glob(f".{directory.name}.old-*/{directory.name}"))
        if retired:
            raise NegstanceError(
                f"model directory not found: {directory}; an interrupted save left the "
                f"previous checkpoint at {retired[-1]} (move it back to {directory})"
            )
        raise NegstanceError(f"model directory not found: {directory}")
    if not directory.is_dir():
        raise NegstanceError(f"--model must be a checkpoint directory, got a file: {directory}")
    if not (directory / "config.json").is_file():
        raise NegstanceError(
            f"not a checkpoint (no config.json): {directory}; pass the output_dir of train.py"
        )
    has_safetensors = any(directory.glob("*.safetensors"))
    if not has_safetensors:
        if any(directory.glob("pytorch_model*.bin")):
            raise NegstanceError(
                f"refusing {directory}: it has only pickled weights (pytorch_model.bin), which "
                "can run arbitrary code when loaded; convert it to safetensors first"
            )
        raise NegstanceError(f"not a checkpoint (no model.safetensors): {directory}")
    # Any one of the files a tokenizer is built from; without them transformers fails
    # with "Couldn't instantiate the backend tokenizer", which names no file.
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise NegstanceError(
            f"not a complete checkpoint (no tokenizer: none of {', '.join(TOKENIZER_FILES)}): "
            f"{directory}; copy the whole output_dir of train.py"
        )
    return directory


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _quiet_transformers_loading() -> Any:
    """No progress bars and no load report while loading a small model.

    The report lists the new classification head as MISSING and advises training it,
    which is what negstance is about to do: noise on the user's terminal.
    """
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if was_enabled:
            transformers_logging.enable_progress_bar()


def load_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer from a checkpoint directory: safetensors only, no remote code.

    Example:
        >>> model, tokenizer = load_checkpoint("runs/default")  # doctest: +SKIP
    """
    directory = check_checkpoint_dir(path)
    if '"negstance_bert"' in (directory / "config.json").read_text(
        encoding="utf-8", errors="replace"
    ):
        raise NegstanceError(
            f"{directory} was saved by an earlier negstance (model_type negstance_bert, "
            "BERT only); retrain it with scripts/train.py, which writes model_type negstance"
        )
    try:
        config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise NegstanceError(
            f"unreadable config.json in {directory}: {_first_line(error)}"
        ) from None
    label2id = {str(key): value for key, value in (config.label2id or {}).items()}
    if set(label2id) != set(LABELS):
        raise NegstanceError(
            f"{directory} has no negstance label mapping (config.json label2id is "
            f"{sorted(label2id)}, expected {list(LABELS)}); is it a checkpoint from train.py?"
        )
    try:
        with _quiet_transformers_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                directory, use_safetensors=True, trust_remote_code=False
            )
            tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except Exception as error:  # corrupt or truncated files surface as many types
        raise NegstanceError(
            f"cannot load checkpoint {directory}: {_first_line(error)} "
            "(the files may be truncated or corrupt; save or copy the checkpoint again)"
        ) from None
    # Over-long texts are truncated to max_length and counted in the run summary;
    # the tokenizer's one-time warning that they "will result in indexing errors"
    # is untrue here and alarms users, so it is marked as already given.
    getattr(tokenizer, "deprecation_warnings", {})[
        "sequence-length-is-longer-than-the-specified-maximum"
    ] = True
    return model, tokenizer


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | os.PathLike[str],
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a checkpoint so that the target is either the old one or the new one, whole.

    Everything goes to a temporary directory beside the target, which is renamed
    into place only once complete; a crash mid-save leaves the previous
    checkpoint untouched, and the next save clears what the crash left.

    Example:
        >>> save_checkpoint(model, tokenizer, "runs/default")  # doctest: +SKIP
        PosixPath('runs/default')
    """
    target = Path(path)
    check_replaceable(target)
    with staged_directory(named_directory(target)) as staging:
        with _quiet_transformers_loading():
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
    return target


def named_directory(path: Path) -> Path:
    """``path``, made absolute when it has no name of its own (``.``, ``..``).

    Saving renames siblings of the target into place, which needs the target's name.
    """
    return path.resolve() if path.name in ("", "..") else path


def check_replaceable(target: Path) -> None:
    """Refuse to save over anything but an earlier checkpoint or an empty directory.

    A save replaces the whole target directory: pointed by mistake at a project
    folder or a home directory, it would delete everything in it.
    """
    if target.exists() and not target.is_dir():
        raise NegstanceError(f"refusing to save over {target}: it is a file, not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "config.json").is_file():
        raise NegstanceError(
            f"refusing to replace {target}: it is not a checkpoint (no config.json), and a "
            "save replaces the whole directory; choose a new or empty directory"
        )


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A fresh directory beside ``target`` that replaces it whole when the block ends.

    If the block raises, ``target`` is untouched and the staging directory removed;
    if the process is killed, the next save of ``target`` clears what was left.

    Example:
        >>> with staged_directory(Path("runs/default")) as staging:  # doctest: +SKIP
        ...     (staging / "config.json").write_text("{}")
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_interrupted_saves(target)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.saving-{os.getpid()}-", dir=target.parent)
    )
    # mkdtemp makes it private (0700); a saved checkpoint gets a plain mkdir's mode.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(staging: Path, target: Path) -> None:
    """Move a finished ``staging`` directory to ``target``, replacing any old one.

    The old directory is first moved aside, into ``.<name>.old-<pid>-*``; only a
    crash between the two renames leaves ``target`` missing, and then
    ``remove_interrupted_saves`` (or the error of ``check_checkpoint_dir``)
    brings it back.
    """
    if target.exists():
        retired = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent)
        )
        os.replace(target, retired / target.name)
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(retired / target.name, target)  # the old checkpoint goes back
            raise
        finally:
            shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)


def remove_interrupted_saves(target: Path) -> None:
    """Clear what a killed ``save_checkpoint`` of ``target`` left beside it.

    Only directories of processes that no longer run are touched, so a save in
    progress elsewhere is left alone. A retired old checkpoint is moved back if
    the crash came before the new one was in place.
    """
    for leftover in target.parent.glob(f".{target.name}.*-*-*"):
        kind, _, rest = leftover.name[len(target.name) + 2 :].partition("-")
        owner = rest.partition("-")[0]
        if kind not in ("saving", "old") or not owner.isdigit() or _process_alive(int(owner)):
            continue
        retired = leftover / target.name
        if kind == "old" and retired.is_dir() and not target.exists():
            os.replace(retired, target)
        shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to someone else
        return True
    return True


# --------------------------------------------------------------------------- #
# Devices and precision
# --------------------------------------------------------------------------- #
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
    """True when a CUDA GPU runs bf16 natively (Ampere or newer).

    Pre-Ampere GPUs (V100, T4) only emulate bf16, which is slower than fp32 there;
    ``torch.cuda.is_bf16_supported()`` counts emulation unless told not to.
    """
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no emulation fallback: its answer is native-only
        return torch.cuda.is_bf16_supported()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` picks bf16 where the hardware runs it natively, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise NegstanceError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise NegstanceError("precision int8 (dynamic quantisation) runs on the CPU only")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if cuda_supports_bf16() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


# --------------------------------------------------------------------------- #
# The public class
# --------------------------------------------------------------------------- #
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

        Most code wants ``from_pretrained``; this is for a model already in memory
        (e.g. just trained). ``device`` and ``precision`` are as in
        ``from_pretrained``. ``precision`` defaults to exact ``"fp32"`` in code;
        ``scripts/predict.py`` defaults to ``"auto"``. ``max_length`` caps the
        tokens per text (default: the tokenizer's limit, at most the model's
        position embeddings); longer texts are truncated.

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
        """``model`` with its Linear layers dynamically quantised to int8 (CPU only).

        int8 weights, activations quantised on the fly: faster on CPU, slightly
        less exact, hence opt-in (``precision="int8"``).
        """
        # Recent torch warns that this API is moving to torchao; it still works,
        # and the warning is noise to someone classifying text.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            # Per-output-channel weight scales: on the trained MiniLM this lifted
            # label agreement with fp32 from 95.8% to 98.4% at the same speed
            # (scripts/bench_inference.py).
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
        texts = validate_texts(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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
                # Padded to a multiple of 8 tokens (at most max_length): eight times
                # fewer distinct batch shapes. oneDNN compiles and caches a kernel per
                # shape, which made the peak memory of a long bf16 run creep up by
                # ~100 MB (scripts/bench_memory.py).
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
        texts = validate_texts(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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


def validate_texts(texts: Sequence[str]) -> Sequence[str]:
    """Type and content checks shared by every prediction entry point.

    A bare ``str`` is refused here: it is a sequence of characters, and would be
    classified one character at a time. ``predict``/``predict_proba`` wrap a
    single string in a list before they get here.
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
    return texts
