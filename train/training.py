"""The training loop: one ``Accelerator``, the same code on CPU, one GPU or many.

Read top to bottom: data → model → optimiser → ``accelerator.prepare`` → epochs
of ``backward``/``step`` → metrics through ``gather_for_metrics`` → the main
process saves ``unwrap_model(model)`` with its config, metrics, log and card.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import broadcast, set_seed
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from negstance.model.checkpoint import build_model, check_max_length, save_checkpoint
from negstance.model.classifier import native_bf16
from negstance.model.errors import NegstanceError
from negstance.model.labels import LABELS
from negstance.train.config import TrainConfig
from negstance.train.data import check_trainable, load_seed_dataset, split_by_documents
from negstance.train.metrics import classification_metrics
from negstance.train.model_card import render_model_card
from negstance.train.training_state import (
    check_output_dir,
    read_training_state,
    restore_training_state,
    save_training_state,
    state_dir_for,
)


@dataclass
class TrainResult:
    """The trained model (unwrapped), its tokenizer, the metrics and where it was saved."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    metrics: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None


def resolve_mixed_precision(setting: str) -> str:
    """``auto``: bf16 where the hardware runs it natively (an Ampere or newer GPU; a CPU
    with AVX-512 BF16 or AMX, where it trained mpnet 1.2x faster), else full precision."""
    if setting != "auto":
        return setting
    return "bf16" if native_bf16("cuda" if torch.cuda.is_available() else "cpu") else "no"


def make_accelerator(mixed_precision: str, gradient_accumulation_steps: int) -> Accelerator:
    """An ``Accelerator``, even where this process already made one with another precision
    (a notebook; evaluate.py after SetFit's Trainer): accelerate's one state per process is
    reset, except under ``accelerate launch``, where it holds the process group (an error)."""
    try:
        return Accelerator(
            mixed_precision=mixed_precision,
            gradient_accumulation_steps=gradient_accumulation_steps,
        )
    except ValueError as error:
        if "already been initialized" not in str(error):
            raise
        if PartialState().num_processes > 1:
            raise NegstanceError(
                f"mixed_precision {mixed_precision!r} cannot be used in this process: an "
                f"earlier training in it used {AcceleratorState().mixed_precision!r}, and "
                "accelerate allows one per distributed process; use the same mixed_precision"
            ) from None
    AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps
    )


def tokenize(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Token ids per sentence (no padding: batches are padded to their longest)."""
    encoded = tokenizer(list(dataset["text"]), truncation=True, max_length=max_length)
    return Dataset.from_dict({**encoded, "labels": list(dataset["label"])})


def make_loader(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    shuffle: bool,
    seed: int,
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset.with_format("torch"),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=DataCollatorWithPadding(tokenizer),
    )


def class_weights(labels: list[int], scheme: str) -> torch.Tensor | None:
    """``balanced``: n_samples / (n_classes * count), as scikit-learn defines it."""
    if scheme == "none":
        return None
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (len(LABELS) * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def init_head_from_linear_probe(
    model: PreTrainedModel, loader: DataLoader, weighting: str, seed: int
) -> None:
    """Fit logistic regression on the model's sentence vectors; make it the head.

    Before fine-tuning (LP-FT), training then starts from a head that already
    separates the classes, so the first gradients refine the encoder instead of
    wrecking it (Kumar et al., 2022); after it (``head_refit``), the head is refitted
    on the vectors the fine-tuned encoder now gives.
    """
    from sklearn.linear_model import LogisticRegression

    if not hasattr(model, "embed"):  # a caller who bypassed TrainConfig's own check
        raise NegstanceError("head_init=linear_probe needs head=mean")
    model.eval()
    features, targets = [], []
    for batch in loader:
        labels = batch.pop("labels")
        batch = {key: value.to(model.device) for key, value in batch.items()}
        features.append(model.embed(**batch).float().cpu().numpy())
        targets.append(labels.numpy())
    probe = LogisticRegression(
        max_iter=2000,
        class_weight="balanced" if weighting == "balanced" else None,
        random_state=seed,
    ).fit(np.concatenate(features), np.concatenate(targets))
    weight = np.zeros((len(LABELS), probe.coef_.shape[1]), dtype=np.float32)
    bias = np.zeros(len(LABELS), dtype=np.float32)
    if len(probe.classes_) == 2:
        # A binary probe is one hyperplane, its second class against its first: softmax
        # over logits (0, w·x + b) gives the same probabilities. The label missing from
        # the training data starts far below both (a factor e^-10), since nothing
        # teaches the model about it.
        first, second = probe.classes_
        weight[second], bias[second] = probe.coef_[0], probe.intercept_[0]
        bias[sorted(set(range(len(LABELS))) - {first, second})] = -10.0
    else:
        weight[probe.classes_], bias[probe.classes_] = probe.coef_, probe.intercept_
    model.classifier.weight.copy_(torch.from_numpy(weight))
    model.classifier.bias.copy_(torch.from_numpy(bias))


def evaluate_loader(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator
) -> dict[str, Any]:
    """Metrics over a (possibly sharded) loader, gathered across processes."""
    model.eval()
    predictions, references = [], []
    with torch.inference_mode():
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch).logits
            gathered_logits, gathered_labels = accelerator.gather_for_metrics((logits, labels))
            predictions.append(gathered_logits.argmax(dim=-1).cpu())
            references.append(gathered_labels.cpu())
    return classification_metrics(torch.cat(references).tolist(), torch.cat(predictions).tolist())


def train(
    config: TrainConfig,
    train_dataset: Dataset | None = None,
    save: bool = True,
) -> TrainResult:
    """Fine-tune a classifier as ``config`` says; save it to ``config.output_dir``.

    Without datasets, the seed set at ``config.data_path`` is loaded and the
    ``validation_docs`` (if any) are held out for per-epoch validation.

    Example:
        >>> result = train(load_config("configs/default.yaml"))  # doctest: +SKIP
        >>> result.output_dir  # doctest: +SKIP
        PosixPath('runs/default')
    """
    config.validate()  # again: a field may have been set since the config was made
    if save:
        check_output_dir(config)  # before any work: an existing run is refused, not replaced
    saved_state = read_training_state(config.resume_from, config) if config.resume_from else None
    started = time.perf_counter()
    mixed_precision = resolve_mixed_precision(config.mixed_precision)
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        # accelerate would silently train in fp32 and still report fp16.
        raise NegstanceError("mixed_precision fp16 needs a CUDA GPU; on the CPU use bf16 or no")
    accelerator = make_accelerator(mixed_precision, config.gradient_accumulation_steps)
    set_seed(config.seed)
    log_lines: list[str] = []

    def log(message: str) -> None:
        log_lines.append(message)
        if accelerator.is_main_process and not config.no_progress:
            tqdm.write(message)

    eval_dataset = None
    if train_dataset is None:
        full = load_seed_dataset(config.data_path, exclude_ambiguous=config.exclude_ambiguous)
        if config.validation_docs:
            train_dataset, eval_dataset = split_by_documents(full, config.validation_docs)
        else:
            train_dataset = full
    check_trainable(train_dataset)
    if eval_dataset is not None and len(eval_dataset) == 0:
        raise NegstanceError("validation split is empty")

    model, tokenizer = build_model(
        config.model_name_or_path, head=config.head, classifier_dropout=config.classifier_dropout
    )
    check_max_length(model, config.max_length, config.model_name_or_path)
    # Saved with the checkpoint, so StanceClassifier (and pipeline with truncation=True)
    # truncate where training did.
    tokenizer.model_max_length = config.max_length
    train_tokens = tokenize(train_dataset, tokenizer, config.max_length)
    train_loader = make_loader(
        train_tokens, tokenizer, config.per_device_train_batch_size, True, config.seed
    )
    eval_loader = None
    if eval_dataset is not None:
        eval_loader = make_loader(
            tokenize(eval_dataset, tokenizer, config.max_length),
            tokenizer,
            config.per_device_eval_batch_size,
            False,
            config.seed,
        )
    # The training sentences in a fixed order, for the probe of LP-FT and of head_refit.
    probe_loader = make_loader(
        train_tokens, tokenizer, config.per_device_eval_batch_size, False, config.seed
    )
    if config.head_init == "linear_probe" and saved_state is None:
        init_head_from_linear_probe(model, probe_loader, config.class_weighting, config.seed)

    # No weight decay on biases and LayerNorm weights, as in BERT's recipe.
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    parameters = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
    updates_per_epoch = math.ceil(
        math.ceil(len(train_loader) / accelerator.num_processes)
        / config.gradient_accumulation_steps
    )
    total_updates = updates_per_epoch * config.num_train_epochs
    # accelerate's scheduler wrapper steps num_processes times per update (each
    # process consumes its own batches), so size the schedule in those steps.
    scheduler_steps = total_updates * accelerator.num_processes
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * scheduler_steps), scheduler_steps
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, scheduler
    )
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)
    weights = class_weights(list(train_dataset["label"]), config.class_weighting)
    loss_function = torch.nn.CrossEntropyLoss(
        weight=None if weights is None else weights.to(accelerator.device)
    )

    log(
        f"training on {len(train_dataset)} sentences, {accelerator.num_processes} process(es), "
        f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}"
    )
    history: list[dict[str, Any]] = []
    # The loader's shuffling generator: saved and restored so data order survives a resume.
    shuffle_generator = train_loader.generator
    state_dir = state_dir_for(config.output_dir)
    first_epoch = 1
    if saved_state is not None:
        resumed = restore_training_state(
            saved_state,
            model=accelerator.unwrap_model(model),
            optimizer=optimizer,
            scheduler=scheduler,
            shuffle_generator=shuffle_generator,
        )
        first_epoch, history = resumed.epoch + 1, resumed.history
        log_lines[:0] = resumed.log_lines
        log(f"resumed from {config.resume_from} after epoch {resumed.epoch}")
    progress = tqdm(
        total=total_updates,
        initial=(first_epoch - 1) * updates_per_epoch,
        desc="train",
        disable=config.no_progress or not accelerator.is_main_process,
        dynamic_ncols=True,
    )
    for epoch in range(first_epoch, config.num_train_epochs + 1):
        model.train()
        epoch_loss, batches = 0.0, 0
        for batch in train_loader:
            with accelerator.accumulate(model):
                labels = batch.pop("labels")
                loss = loss_function(model(**batch).logits.float(), labels)
                accelerator.backward(loss)
                # 0 means no clipping, as in transformers.Trainer; clipping to 0 zeroes every step.
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                progress.update(1)
            epoch_loss += loss.item()
            batches += 1
            progress.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
        train_loss = epoch_loss / max(batches, 1)
        if accelerator.num_processes > 1:
            # Each process saw its own shard: average their means so the log covers every batch.
            local_mean = torch.tensor(train_loss, device=accelerator.device)
            train_loss = accelerator.reduce(local_mean, reduction="mean").item()
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "learning_rate": scheduler.get_last_lr()[0],
        }
        if eval_loader is not None:
            validation = evaluate_loader(model, eval_loader, accelerator)
            record.update(
                {f"validation_{key}": validation[key] for key in ("accuracy", "macro_f1", "f_avg")}
            )
        history.append(record)
        log(
            " ".join(
                f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                for key, value in record.items()
            )
        )
        if save and config.save_state_every_epoch and accelerator.is_main_process:
            save_training_state(
                state_dir,
                config=config,
                epoch=epoch,
                model=accelerator.unwrap_model(model),
                optimizer=optimizer,
                scheduler=scheduler,
                shuffle_generator=shuffle_generator,
                history=history,
                log_lines=log_lines,
            )
    progress.close()
    if config.head_refit:
        # Body, then head: the fine-tuned encoder's vectors separate the classes better
        # than the head trained alongside them does (measured: reports/EXPERIMENTS.md).
        head = accelerator.unwrap_model(model)
        init_head_from_linear_probe(head, probe_loader, config.class_weighting, config.seed)
        if accelerator.num_processes > 1:  # every process ends with process 0's head
            with torch.no_grad():
                for parameter in head.classifier.parameters():
                    parameter.copy_(broadcast(parameter.detach().clone(), from_process=0))
        log("head refitted: logistic regression on the fine-tuned sentence vectors")

    metrics: dict[str, Any] = {
        "train_sentences": len(train_dataset),
        "epochs": history,
        "final_train_loss": history[-1]["train_loss"],
        "num_processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    if eval_loader is not None:
        metrics["validation"] = evaluate_loader(model, eval_loader, accelerator)
        metrics["validation_sentences"] = len(eval_dataset)
    accelerator.wait_for_everyone()
    # keep_fp32_wrapper=False: the returned model must run in the precision its user asks
    # for, not under training's autocast (evaluate.py scores it as fp32).
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    unwrapped.eval()
    result = TrainResult(unwrapped, tokenizer, metrics)
    if save and accelerator.is_main_process:
        result.output_dir = save_checkpoint(
            unwrapped,
            tokenizer,
            config.output_dir,
            extra_files={
                "config.yaml": config.to_yaml(),
                "metrics.json": json.dumps(metrics, indent=2) + "\n",
                "train.log": "\n".join(log_lines) + "\n",
                "README.md": render_model_card(config, metrics, train_dataset),
            },
        )
        shutil.rmtree(state_dir, ignore_errors=True)  # the run is complete: nothing to resume
    accelerator.wait_for_everyone()
    return result
