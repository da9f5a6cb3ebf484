"""Model directories in and out: safetensors only, never ``trust_remote_code``; a save is written
beside the target and renamed into place, so a killed save leaves the previous one whole."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.utils import logging as hf_logging

from negstance.model import network
from negstance.model.backbones import resolve_model_path
from negstance.model.errors import NegstanceError
from negstance.model.labels import ID2LABEL, LABEL2ID, LABELS
from negstance.model.network import NegstanceConfig, NegstanceForSequenceClassification

NOT_A_CHECKPOINT = "not a checkpoint (pass the output_dir of train.py)"


def build_model(
    model_name_or_path: str, head: str = "mean", classifier_dropout: float | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh three-label classifier on a backbone's (or negstance checkpoint's) encoder: mean
    pooling (``head="mean"``) or stock ``AutoModelForSequenceClassification`` (``"cls"``).

    Example: ``model, tokenizer = build_model("all-mpnet-base-v2")``
    """
    path = resolve_model_path(model_name_or_path)
    problem = f"cannot load backbone {model_name_or_path!r}"
    if Path(path).is_dir():
        check_checkpoint_dir(path, problem)
    elif model_name_or_path.startswith(("/", ".", "~")):  # a path, not a hub id
        raise NegstanceError(f"{problem}: no such directory")
    labels = dict(id2label=ID2LABEL, label2id=LABEL2ID, classifier_dropout=classifier_dropout)
    try:
        with quiet_transformers_loading():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            backbone = AutoConfig.from_pretrained(path, trust_remote_code=False)
            is_negstance = isinstance(backbone, NegstanceConfig)
            if head == "cls" and is_negstance:  # the Auto classes would rebuild a mean head
                raise NegstanceError(f"{problem}: a negstance checkpoint takes head=mean, not cls")
            if head == "cls":
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, use_safetensors=True, trust_remote_code=False, **labels
                )
                return model, tokenizer
            encoder = backbone.encoder if is_negstance else backbone.to_dict()
            # A bare encoder's keys go under `encoder.`, and so do those under its own prefix.
            prefix = None if is_negstance else MODEL_MAPPING[type(backbone)].base_model_prefix
            model, loading = NegstanceForSequenceClassification.from_pretrained(
                path,
                config=NegstanceConfig(encoder=encoder, pooling="mean", **labels),
                key_mapping=prefix and {rf"^{prefix}\.": "encoder."},
                use_safetensors=True,
                output_loading_info=True,
            )
    except NegstanceError:
        raise
    except (OSError, ValueError, KeyError) as error:  # a hub id neither local nor cached, …
        raise NegstanceError(f"{problem}: {first_line(error)}") from None
    missing = [key for key in loading["missing_keys"] if key.startswith("encoder.")]
    if missing:
        raise NegstanceError(f"{problem}: its checkpoint has no {missing[0]}")
    if "classifier.weight" not in loading["missing_keys"]:  # a trained head is no new start
        model._init_weights(model.classifier)
    return model, tokenizer


def check_max_length(model: PreTrainedModel, max_length: int, model_name_or_path: str) -> None:
    """Refuse a ``max_length`` beyond the position embeddings (else a deep tensor-size error)."""
    positions = network.usable_positions(model.config)
    if positions is not None and max_length > positions:
        raise NegstanceError(
            f"max_length {max_length} is more than the {positions} token positions "
            f"of {model_name_or_path}: use max_length <= {positions}"
        )


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model")


def check_checkpoint_dir(path: str | os.PathLike[str], problem: str = NOT_A_CHECKPOINT) -> Path:
    """A model directory: config.json and safetensors weights (a pickle can run code)."""
    directory = Path(path)
    if not directory.is_dir():
        raise NegstanceError(f"no such model directory: {directory}")
    if not (directory / "config.json").is_file():
        raise NegstanceError(f"{problem}: {directory} has no config.json")
    if not any(directory.glob("*.safetensors")):
        pickled = any(directory.glob("*.bin"))
        why = "; pickled ones (*.bin) are refused, as loading them can run code" if pickled else ""
        raise NegstanceError(f"{problem}: {directory} has no safetensors weights{why}")
    return directory


def first_line(error: BaseException) -> str:
    return str(error).strip().partition("\n")[0] or type(error).__name__


@contextlib.contextmanager
def quiet_transformers_loading() -> Iterator[None]:
    """No progress bars and no load report (it calls the new head MISSING) while loading."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_checkpoint(path: str | os.PathLike) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer of a checkpoint directory: safetensors only, no remote code.

    Example: ``model, tokenizer = load_checkpoint("runs/default")``
    """
    directory = check_checkpoint_dir(path)
    # Without these, transformers 5 builds a near-empty vocabulary and predicts garbage.
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise NegstanceError(f"{NOT_A_CHECKPOINT}: {directory} has no tokenizer files")
    try:
        with quiet_transformers_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                directory, use_safetensors=True, trust_remote_code=False
            )
            tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except Exception as error:  # corrupt or truncated files surface as many types
        raise NegstanceError(f"cannot load checkpoint {directory}: {first_line(error)}") from None
    if set(map(str, model.config.label2id or {})) != set(LABELS):  # e.g. a sentiment model
        raise NegstanceError(f"{directory} is not a negstance classifier: other labels")
    # Over-long texts are truncated and counted: the warning of "indexing errors" is untrue here.
    warned = getattr(tokenizer, "deprecation_warnings", {})
    warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    return model, tokenizer


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | os.PathLike[str],
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a checkpoint so that ``path`` is either the old one or the new one, whole.

    Example: ``save_checkpoint(model, tokenizer, "runs/default")`` → ``PosixPath('runs/default')``
    """
    check_replaceable(Path(path))
    with replacing(path) as staging, quiet_transformers_loading():
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
    return Path(path)


def check_replaceable(target: Path) -> None:
    """A save replaces the whole directory: only an earlier checkpoint or an empty one."""
    file_or_full = not target.is_dir() or any(target.iterdir())
    if target.exists() and file_or_full and not (target / "config.json").is_file():
        raise NegstanceError(f"refusing to replace {target}: neither a checkpoint nor empty")


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str], main: bool = True) -> Iterator[Path]:
    """``.<name>.saving`` to write into, renamed to ``target`` at the end (the old one renamed aside
    first: a kill leaves it whole) or removed on an error; by the ``main`` process only."""
    target = Path(os.path.abspath(target))  # `.` has no name of its own
    staging, retired = (target.with_name(f".{target.name}.{end}") for end in ("saving", "old"))
    if main:
        shutil.rmtree(staging, ignore_errors=True)  # what a killed save left
        staging.mkdir(parents=True)  # a plain mkdir: the checkpoint gets the usual mode
    try:
        yield staging
    except BaseException:
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if main:
        if target.exists():
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
