"""Model directories in and out: a backbone to fine-tune, checkpoints to load and save.

Safetensors only, never ``trust_remote_code``. A save stages the whole directory
beside the target and renames it into place (:func:`staged_directory`, also used
for training states), so a crash leaves the old checkpoint or the new one, whole.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from negstance.model.backbones import resolve_model_path
from negstance.model.errors import NegstanceError
from negstance.model.labels import ID2LABEL, LABEL2ID, LABELS
from negstance.model.network import (
    NegstanceConfig,
    NegstanceForSequenceClassification,
    usable_positions,
)


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
        with quiet_transformers_loading():
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
    """Refuse a ``max_length`` beyond the model's position embeddings (else a tensor-size
    error deep inside the encoder)."""
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
def quiet_transformers_loading() -> Any:
    """No progress bars and no load report (it calls the new head MISSING) while loading."""
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
        with quiet_transformers_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                directory, use_safetensors=True, trust_remote_code=False
            )
            tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except Exception as error:  # corrupt or truncated files surface as many types
        raise NegstanceError(
            f"cannot load checkpoint {directory}: {_first_line(error)} "
            "(the files may be truncated or corrupt; save or copy the checkpoint again)"
        ) from None
    # Over-long texts are truncated and counted: the warning of "indexing errors" is untrue here.
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

    Example:
        >>> save_checkpoint(model, tokenizer, "runs/default")  # doctest: +SKIP
        PosixPath('runs/default')
    """
    target = Path(path)
    check_replaceable(target)
    with staged_directory(named_directory(target)) as staging:
        with quiet_transformers_loading():
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
    """Refuse to save over anything but an earlier checkpoint or an empty directory (a save
    replaces the whole directory)."""
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
    # A plain mkdir, not mkdtemp: a saved checkpoint gets the usual mode, not 0700.
    staging = target.parent / f".{target.name}.saving-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(staging: Path, target: Path) -> None:
    """Move a finished ``staging`` directory to ``target``, replacing any old one.

    The old one is moved aside first (``.<name>.old-<pid>-*``), where a crash
    between the two renames leaves it for ``remove_interrupted_saves``.
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
    """Clear what a killed save of ``target`` left beside it (only dead processes' leftovers),
    moving a retired old checkpoint back if the new one never arrived."""
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
