"""The training loop on accelerate, as in its ``nlp_example.py``: :func:`train` prepares a
:class:`Run`, trains its epochs and saves; an interrupted run resumes to the same weights."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import broadcast, set_seed
from datasets import Dataset
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from negstance.model import checkpoint
from negstance.model.classifier import native_bf16
from negstance.model.errors import NegstanceError
from negstance.model.io import check_writable_directory
from negstance.model.labels import LABELS
from negstance.train.config import TrainConfig, config_diff
from negstance.train.data import check_trainable, load_seed_dataset, split_by_documents
from negstance.train.metrics import classification_metrics
from negstance.train.model_card import render_model_card


@dataclass
class TrainResult:
    """The trained model, its tokenizer, the metrics and where they were saved."""

    model: transformers.PreTrainedModel  # unwrapped, in eval mode
    tokenizer: transformers.PreTrainedTokenizerBase
    metrics: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None  # None: not saved


@dataclass
class Progress:
    """Where a run stands, saved with accelerate's state: a resume goes on mid-epoch."""

    config: dict[str, Any]
    epoch: int = 1
    batches: int = 0  # of this epoch, done
    loss_sum: float = 0.0  # of those batches
    updates: int = 0  # optimiser updates of the whole run
    shuffle_state: list[int] = field(default_factory=list)  # the data order at the epoch's start
    history: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)


def train(
    config: TrainConfig, train_dataset: Dataset | None = None, save: bool = True
) -> TrainResult:
    """Fine-tune a classifier as ``config`` says and save it to ``config.output_dir``; without a
    dataset, on the seed set less its ``validation_docs``, which are scored after every epoch.

    Example: ``train(load_config("configs/default.yaml")).output_dir`` → ``runs/default``
    """
    config.validate()  # again: a field may have been set since the config was made
    if save:
        check_output_dir(config)  # before any work: an existing run is refused, not replaced
    run = Run(config, train_dataset, save)
    main_thread = threading.current_thread() is threading.main_thread()  # signals go there
    signals = (signal.SIGINT, signal.SIGTERM) if save and main_thread else ()
    previous = {signum: signal.signal(signum, run.on_signal) for signum in signals}
    try:
        while run.progress.epoch <= config.num_train_epochs:
            run.train_one_epoch()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    run.bar.close()
    if config.head_refit:
        run.refit_head()
    return run.finish()


class Run:
    """Data, model, loaders, optimiser, all prepared by accelerate; and where they stand."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None, save: bool) -> None:
        self.config, self.started, self.signals = config, time.perf_counter(), []
        self.state_dir = state_dir_for(config.output_dir) if save else None  # None: nothing saved
        self.accelerator = accelerator = make_accelerator(config)
        set_seed(config.seed)
        eval_dataset = None
        if dataset is None:  # the seed set, less its validation_docs
            dataset = load_seed_dataset(config.data_path, config.exclude_ambiguous)
            if config.validation_docs:
                dataset, eval_dataset = split_by_documents(dataset, config.validation_docs)
        check_trainable(dataset)
        model, tokenizer = checkpoint.build_model(
            config.model_name_or_path, config.head, config.classifier_dropout
        )
        checkpoint.check_max_length(model, config.max_length, config.model_name_or_path)
        tokenizer.model_max_length = config.max_length  # saved: inference truncates here too
        self.dataset, self.tokenizer = dataset, tokenizer
        train_loader = make_loader(dataset, tokenizer, config, shuffle=True)
        eval_loader = None if eval_dataset is None else make_loader(eval_dataset, tokenizer, config)
        self.probe_loader = probe = make_loader(dataset, tokenizer, config)  # LP-FT, head_refit
        if config.head_init == "linear_probe" and not config.resume_from:
            init_head_from_linear_probe(model, probe, config.class_weighting, config.seed)
        optimizer, scheduler, total = make_optimizer(model, config, len(train_loader), accelerator)
        prepared = accelerator.prepare(model, optimizer, train_loader, scheduler, eval_loader)
        self.model, self.optimizer, self.train_loader, self.scheduler, self.eval_loader = prepared
        weights = class_weights(list(dataset["label"]), config.class_weighting, accelerator.device)
        self.loss_function = torch.nn.CrossEntropyLoss(weight=weights)
        self.progress = Progress(asdict(config))
        if config.resume_from:
            self.resume()
        else:
            self.log(
                f"training on {len(dataset)} sentences, {accelerator.num_processes} process(es), "
                f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}"
            )
        hide = config.no_progress or not accelerator.is_main_process
        self.bar = tqdm(desc="train", total=total, initial=self.progress.updates, disable=hide)

    def log(self, message: str) -> None:
        self.progress.log_lines.append(message)
        if self.accelerator.is_main_process and not self.config.no_progress:
            tqdm.write(message)

    def on_signal(self, signum: int, frame: Any) -> None:
        """Ctrl-C or SIGTERM: stop after this optimiser update, where the state is whole. One
        more a second later stops at once (``accelerate launch`` forwards a second copy)."""
        if self.signals and time.monotonic() - self.signals[0] > 1:
            raise KeyboardInterrupt
        self.signals.append(time.monotonic())

    def train_one_epoch(self) -> None:
        """The epoch's batches from ``progress.batches`` on (a resumed epoch), then its record."""
        accelerator, model, progress = self.accelerator, self.model, self.progress
        model.train()
        if progress.batches == 0:  # where a resume within this epoch restarts the data order
            progress.shuffle_state = self.train_loader.generator.get_state().tolist()
        for index, batch in enumerate(self.train_loader):
            if index < progress.batches:
                continue  # trained before the resume: drawn again only to keep the data order
            with accelerator.accumulate(model):
                labels = batch.pop("labels")
                loss = self.loss_function(model(**batch).logits.float(), labels)
                accelerator.backward(loss)
                # 0 means no clipping, as in transformers.Trainer; clipping to 0 zeroes every step.
                if accelerator.sync_gradients and self.config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), self.config.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            progress.batches += 1
            progress.loss_sum += loss.item()
            self.bar.set_postfix(epoch=progress.epoch, loss=f"{loss.item():.4f}")
            if accelerator.sync_gradients:
                progress.updates += 1
                self.bar.update(1)
                self.save_state_or_stop()
        train_loss = progress.loss_sum / max(progress.batches, 1)
        if accelerator.num_processes > 1:  # each process saw its own shard: average their means
            local_mean = torch.tensor(train_loss, device=accelerator.device)
            train_loss = accelerator.reduce(local_mean, reduction="mean").item()
        record = {"epoch": progress.epoch, "train_loss": train_loss}
        record["learning_rate"] = self.scheduler.get_last_lr()[0]
        if self.eval_loader is not None:
            scores = evaluate_loader(self.model, self.eval_loader, accelerator)
            record |= {f"validation_{k}": scores[k] for k in ("accuracy", "macro_f1", "f_avg")}
        progress.history.append(record)
        progress.epoch, progress.batches, progress.loss_sum = progress.epoch + 1, 0, 0.0
        line = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
        self.log(" ".join(line))

    def save_state_or_stop(self) -> None:
        """Save the state every ``save_state_steps`` updates, or at an interrupt, then stop."""
        accelerator, every = self.accelerator, self.config.save_state_steps
        if self.signals:
            accelerator.set_trigger()
        stop = accelerator.check_trigger()  # every process stops after the same update
        if self.state_dir and (stop or (every and self.progress.updates % every == 0)):
            with checkpoint.replacing(self.state_dir, accelerator.is_main_process) as staging:
                accelerator.wait_for_everyone()
                accelerator.save_state(str(staging))
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    (staging / "progress.json").write_text(json.dumps(asdict(self.progress)))
            accelerator.wait_for_everyone()
        if stop:
            raise KeyboardInterrupt

    def resume(self) -> None:
        """Progress, accelerate's state (``torch.load(weights_only=True)``) and data order."""
        path = Path(self.config.resume_from)
        try:
            self.progress = Progress(**json.loads((path / "progress.json").read_text("utf-8")))
            for key, (saved, now) in config_diff(self.progress.config, asdict(self.config)).items():
                raise NegstanceError(f"resume_from: saved with {key}={saved!r}, not {now!r}")
            self.accelerator.load_state(str(path))
        except NegstanceError:
            raise
        except Exception as error:  # a missing or damaged state surfaces as many types
            why = checkpoint.first_line(error)
            raise NegstanceError(f"resume_from: no usable state in {path} ({why})") from None
        self.train_loader.generator.set_state(torch.tensor(self.progress.shuffle_state).byte())
        where = f"epoch {self.progress.epoch}, batch {self.progress.batches}"
        self.log(f"resumed from {self.config.resume_from} at {where}")

    @torch.no_grad()
    def refit_head(self) -> None:
        """The fine-tuned vectors beat the head trained alongside them (reports/EXPERIMENTS.md)."""
        head, config = self.accelerator.unwrap_model(self.model), self.config
        init_head_from_linear_probe(head, self.probe_loader, config.class_weighting, config.seed)
        for parameter in head.classifier.parameters():  # every process gets process 0's head
            parameter.copy_(broadcast(parameter.detach().clone(), from_process=0))
        self.log("head refitted: logistic regression on the fine-tuned sentence vectors")

    def finish(self) -> TrainResult:
        """The metrics and the unwrapped model; the main process saves the run directory."""
        accelerator, config, history = self.accelerator, self.config, self.progress.history
        metrics: dict[str, Any] = {
            "train_sentences": len(self.dataset),
            "epochs": history,
            "final_train_loss": history[-1]["train_loss"],
            "num_processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "mixed_precision": accelerator.mixed_precision,
            "train_seconds": round(time.perf_counter() - self.started, 2),
        }
        if self.eval_loader is not None:
            metrics["validation"] = evaluate_loader(self.model, self.eval_loader, accelerator)
            metrics["validation_sentences"] = len(self.eval_loader.dataset)
        accelerator.wait_for_everyone()
        # Not under training's autocast: the model runs in the precision its user asks for.
        model = accelerator.unwrap_model(self.model, keep_fp32_wrapper=False).eval()
        result = TrainResult(model, self.tokenizer, metrics)
        if self.state_dir and accelerator.is_main_process:
            files = {"config.yaml": config.to_yaml()}
            files["metrics.json"] = json.dumps(metrics, indent=2) + "\n"
            files["train.log"] = "\n".join(self.progress.log_lines) + "\n"
            files["README.md"] = render_model_card(config, metrics, self.dataset)
            output_dir = checkpoint.save_checkpoint(model, self.tokenizer, config.output_dir, files)
            result.output_dir = output_dir
            shutil.rmtree(self.state_dir, ignore_errors=True)  # complete: nothing to resume
        accelerator.wait_for_everyone()
        return result


def make_accelerator(config: TrainConfig) -> Accelerator:
    mixed_precision = resolve_mixed_precision(config.mixed_precision)
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        # accelerate would silently train in fp32 and still report fp16.
        raise NegstanceError("mixed_precision fp16 needs a CUDA GPU; on the CPU use bf16 or no")
    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        # One precision per process in accelerate: SetFit's Trainer may have set up another.
        AcceleratorState._reset_state()
    steps = config.gradient_accumulation_steps
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=steps)


def resolve_mixed_precision(setting: str) -> str:
    """``auto``: bf16 where the GPU or CPU runs it natively, else full precision."""
    if setting != "auto":
        return setting
    return "bf16" if native_bf16("cuda" if torch.cuda.is_available() else "cpu") else "no"


def make_loader(
    dataset: Dataset, tokenizer: Any, config: TrainConfig, shuffle: bool = False
) -> DataLoader:
    """Tokenized batches padded to their longest: shuffled for training, else in order."""
    tokens = tokenizer(list(dataset["text"]), truncation=True, max_length=config.max_length)
    tokens = Dataset.from_dict({**tokens, "labels": list(dataset["label"])}).with_format("torch")
    size = config.per_device_train_batch_size if shuffle else config.per_device_eval_batch_size
    generator = torch.Generator().manual_seed(config.seed)
    collate = transformers.DataCollatorWithPadding(tokenizer)
    return DataLoader(tokens, size, shuffle=shuffle, generator=generator, collate_fn=collate)


def make_optimizer(
    model: torch.nn.Module, config: TrainConfig, batches: int, accelerator: Accelerator
) -> tuple[torch.optim.Optimizer, Any, int]:
    """AdamW as BERT's recipe, a linear schedule with warm-up, the run's number of updates."""
    named = list(model.named_parameters())
    exempt = [p for n, p in named if n.endswith(("bias", "LayerNorm.weight"))]
    decay = [p for n, p in named if not n.endswith(("bias", "LayerNorm.weight"))]
    groups = [{"params": decay}, {"params": exempt, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    processes = accelerator.num_processes
    per_epoch = math.ceil(math.ceil(batches / processes) / config.gradient_accumulation_steps)
    updates = per_epoch * config.num_train_epochs
    steps = updates * processes  # accelerate steps the scheduler once per process per update
    warmup = round(config.warmup_ratio * steps)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, warmup, steps)
    return optimizer, scheduler, updates


def class_weights(labels: list[int], scheme: str, device: Any = None) -> torch.Tensor | None:
    """``balanced``: scikit-learn's weights, 0 for a label absent from the data."""
    if scheme == "none":
        return None
    present = np.unique(labels)
    weights = np.zeros(len(LABELS))
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return torch.tensor(weights, dtype=torch.float32, device=device)


@torch.no_grad()
def init_head_from_linear_probe(
    model: transformers.PreTrainedModel, loader: DataLoader, weighting: str, seed: int
) -> None:
    """Logistic regression on the sentence vectors as the head: before fine-tuning (LP-FT: the first
    gradients then refine the encoder, Kumar et al., 2022), or after it (``head_refit``)."""
    if not hasattr(model, "embed"):  # a caller who bypassed TrainConfig's own check
        raise NegstanceError("head_init=linear_probe needs head=mean")
    model.eval()
    features, targets = [], []
    for batch in loader:
        targets.append(batch.pop("labels").numpy())
        batch = {key: value.to(model.device) for key, value in batch.items()}
        features.append(model.embed(**batch).float().cpu().numpy())
    balanced = "balanced" if weighting == "balanced" else None
    probe = LogisticRegression(max_iter=2000, class_weight=balanced, random_state=seed)
    probe.fit(np.concatenate(features), np.concatenate(targets))
    coef, intercept = probe.coef_, probe.intercept_
    if len(probe.classes_) == 2:  # one hyperplane, the second class against the first
        coef, intercept = np.vstack([0 * coef, coef]), np.append(0.0, intercept)
    weight = np.zeros((len(LABELS), coef.shape[1]), dtype=np.float32)
    bias = np.full(len(LABELS), -10.0, dtype=np.float32)  # a label absent from the data: e^-10
    weight[probe.classes_], bias[probe.classes_] = coef, intercept
    model.classifier.weight.copy_(torch.from_numpy(weight))
    model.classifier.bias.copy_(torch.from_numpy(bias))


@torch.inference_mode()
def evaluate_loader(model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator) -> dict:
    """Metrics over a (possibly sharded) loader, gathered across processes."""
    model.eval()
    predictions, references = [], []
    for batch in loader:
        labels = batch.pop("labels")
        logits, labels = accelerator.gather_for_metrics((model(**batch).logits, labels))
        predictions += logits.argmax(dim=-1).tolist()
        references += labels.tolist()
    return classification_metrics(references, predictions)


def state_dir_for(output_dir: str | os.PathLike[str]) -> Path:
    """``runs/default`` → ``runs/default.state`` (absolute)."""
    target = Path(os.path.abspath(output_dir))
    return target.with_name(target.name + ".state")


def check_output_dir(config: TrainConfig) -> None:
    """Before any work: refuse to replace a finished run or to orphan an interrupted one."""
    target, state = Path(config.output_dir), state_dir_for(config.output_dir)
    check_writable_directory(target.parent, f"cannot write output_dir {target}", create=True)
    if target.exists() and not config.overwrite:
        raise NegstanceError(f"output_dir exists: {target} (pass --overwrite to replace it)")
    checkpoint.check_replaceable(target)  # now, not after training
    resuming_it = config.resume_from and Path(config.resume_from).resolve() == state.resolve()
    if state.exists() and not (resuming_it or config.overwrite):
        raise NegstanceError(
            f"an interrupted run left its training state in {state}: pass "
            f"--resume_from={state} to continue it, or --overwrite to start over"
        )
