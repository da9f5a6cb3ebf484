"""Inference throughput of ``StanceClassifier`` against the plain transformers pipeline.

``scripts/bench_inference.py`` is the command line; everything it measures is
here. All methods classify the same news-like sentences with the same
checkpoint; each is warmed up, then timed over the whole set in several rounds
(methods interleaved, so a burst of load from another process hits them all
alike), and the median round is reported with the spread.

A helper of the bench scripts (and the tests), not part of the package: the
scripts import it as ``benchmarking`` since ``scripts/`` is on their path.

Compute utilisation is an estimate: useful FLOPs (from the real, unpadded token
counts) divided by the time, over the peak of this machine for the arithmetic
the method runs in, taken as the GFLOP/s of a large matrix product in that
arithmetic (fp32, bf16, or int8 dynamic quantisation) measured here and now.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from negstance.model.backbones import DEFAULT_BACKBONE, MINILM, resolve_model_path
from negstance.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from negstance.model.classifier import StanceClassifier, cpu_supports_bf16, resolve_device
from negstance.model.labels import ID2LABEL, LABEL2ID
from negstance.model.network import NegstanceConfig, NegstanceForSequenceClassification

if TYPE_CHECKING:
    from transformers import BertConfig, PreTrainedTokenizerBase

# Joins that news prose uses between two clauses; the second sentence is lower-cased.
_CLAUSE_JOINS = (", and ", ", while ", "; ", ", but ", ", as ")


def news_like_sentences(seed_texts: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """``count`` sentences recombined from ``seed_texts``, with news-like lengths.

    Seven in ten are a seed sentence as it is, two in ten join two of them into
    one long sentence (the long tail of real news), one in ten is a
    headline-like fragment of six to twelve words. Deterministic for a ``seed``.

    Example:
        >>> len(news_like_sentences(["Talks resumed.", "Kyiv refused."], 5))
        5
    """
    texts = [text.strip() for text in seed_texts if text.strip()]
    if not texts:
        raise ValueError("news_like_sentences needs at least one non-blank seed text")
    generator = random.Random(seed)
    sentences = []
    for _ in range(count):
        draw = generator.random()
        first = generator.choice(texts)
        if draw < 0.2:
            second = generator.choice(texts)
            joined = first.rstrip(".!?") + generator.choice(_CLAUSE_JOINS)
            sentences.append(joined + second[:1].lower() + second[1:])
        elif draw < 0.3:
            words = first.split()
            sentences.append(" ".join(words[: generator.randint(6, 12)]))
        else:
            sentences.append(first)
    return sentences


def build_tiny_checkpoint(
    directory: str | os.PathLike[str],
    backbone: BertConfig | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Path:
    """A tiny random negstance checkpoint, by default hidden 32, 2 layers, MiniLM's tokenizer.

    For smoke runs and tests: it measures the machinery, not realistic speed.
    ``backbone`` (a ``BertConfig``) and ``tokenizer`` replace the defaults.
    """
    from transformers import AutoTokenizer, BertConfig

    torch.manual_seed(0)
    if backbone is None:
        backbone = BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
        )
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(
            resolve_model_path(MINILM), trust_remote_code=False
        )
    config = NegstanceConfig(
        encoder=backbone.to_dict(), num_labels=3, id2label=ID2LABEL, label2id=LABEL2ID
    )
    model = NegstanceForSequenceClassification(config).eval()
    return save_checkpoint(model, tokenizer, directory)


def build_untrained_checkpoint(directory: str | os.PathLike[str]) -> Path:
    """The packaged MiniLM with a fresh random head: the real network's cost, no training."""
    torch.manual_seed(0)
    model, tokenizer = build_model(DEFAULT_BACKBONE)
    return save_checkpoint(model, tokenizer, directory)


def peak_matmul_gflops(
    size: int = 2048,
    repeats: int = 3,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
) -> float:
    """GFLOP/s of the best of ``repeats`` ``size``x``size`` matrix products on ``device``.

    ``precision`` is the arithmetic: ``fp32``, ``bf16`` (bf16 operands, as
    autocast feeds a Linear layer) or ``int8`` (a dynamically quantised Linear
    layer, activation quantisation included, as ``precision="int8"`` runs; CPU
    only). Stands in for the machine's peak in that arithmetic: vendor peaks
    assume clocks and instructions a shared machine rarely gives.

    Example:
        >>> peak_matmul_gflops(size=256, repeats=1, precision="bf16") > 0  # doctest: +SKIP
        True
    """
    device = torch.device(device)
    left = torch.randn(size, size, device=device)
    if precision == "int8" and device.type == "cpu":
        product = _quantised_linear(size)
    elif precision in ("fp32", "bf16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        left, right = left.to(dtype), torch.randn(size, size, dtype=dtype, device=device)

        def product(matrix: torch.Tensor) -> torch.Tensor:
            return matrix @ right
    else:
        raise ValueError(
            f"precision must be fp32, bf16 or int8 (int8 on CPU only), not {precision!r} "
            f"on {device.type}"
        )

    def synchronise() -> None:
        if device.type == "cuda":  # kernels run asynchronously: time their completion
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        product(left)  # first call pays for thread start-up and weight packing
        synchronise()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            product(left)
            synchronise()
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _quantised_linear(size: int) -> torch.nn.Module:
    """A ``size``x``size`` Linear layer quantised exactly as ``StanceClassifier`` does."""
    # Wrapped: quantize_dynamic swaps child modules, never the module it is given.
    linear = torch.nn.Sequential(torch.nn.Linear(size, size, bias=False))
    return StanceClassifier.quantise_linear_layers(linear)


def useful_flops(model: torch.nn.Module, token_counts: Sequence[int]) -> float:
    """FLOPs a transformer encoder needs for sentences of ``token_counts`` tokens, no padding.

    ``2 x (non-embedding parameters) x tokens`` for the matrix products, plus
    ``4 x layers x hidden x tokens^2`` for attention scores and their weighted sum.
    """
    config = model.config
    if isinstance(config, NegstanceConfig):
        config = config.encoder_config()  # layers and width are the encoder's
    non_embedding = sum(
        parameter.numel()
        for name, parameter in model.named_parameters()
        if "embeddings" not in name
    )
    tokens = np.asarray(token_counts, dtype=np.float64)
    attention = 4 * config.num_hidden_layers * config.hidden_size * np.square(tokens)
    return float(2 * non_embedding * tokens.sum() + attention.sum())


@dataclass
class BenchRow:
    """One method's measurements; ``sentences_per_second`` is the median round."""

    method: str
    precision: str
    sentences: int
    round_seconds: list[float]
    arithmetic: str = "fp32"  # what ``precision`` resolved to: the peak it is measured against
    sentences_per_second: float = 0.0
    spread: tuple[float, float] = (0.0, 0.0)
    ratio_to_pipeline: float | None = None
    agreement_with_fp32: float | None = None
    max_probability_difference: float | None = None
    gflops_per_second: float = 0.0
    utilisation: float = 0.0
    note: str = ""


@dataclass
class BenchReport:
    """Everything ``run_benchmark`` measured, ready for JSON or markdown."""

    model: str
    device: str
    threads: int
    cpu: str
    cpu_capability: str
    native_bf16: bool
    peak_gflops: dict[str, float]  # per arithmetic (fp32, bf16, int8)
    sentences: int
    tokens_mean: float
    tokens_p50: float
    tokens_p95: float
    tokens_max: int
    batch_size: int
    repeats: int
    rows: list[BenchRow] = field(default_factory=list)
    command: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_markdown(self) -> str:
        """The results table plus one paragraph on what was measured and how."""
        lines = [
            "| method | precision | sentences/s (median, min–max) | × pipeline "
            "| label agreement with fp32 | compute utilisation |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            low, high = row.spread
            ratio = "—" if row.ratio_to_pipeline is None else f"{row.ratio_to_pipeline:.2f}×"
            agreement = "—" if row.agreement_with_fp32 is None else f"{row.agreement_with_fp32:.2%}"
            note = f" ({row.note})" if row.note else ""
            lines.append(
                f"| {row.method}{note} | {row.precision} | {row.sentences_per_second:.0f} "
                f"({low:.0f}–{high:.0f}) | {ratio} | {agreement} | {row.utilisation:.1%} "
                f"of {row.arithmetic} |"
            )
        peaks = ", ".join(f"{name} {value:.0f}" for name, value in self.peak_gflops.items())
        lines += [
            "",
            f"{self.sentences} news-like sentences (tokens: mean {self.tokens_mean:.1f}, "
            f"median {self.tokens_p50:.0f}, p95 {self.tokens_p95:.0f}, max {self.tokens_max}); "
            f"model `{self.model}`; device {self.device}, {self.threads} threads "
            f"({self.cpu}, {self.cpu_capability}, native bf16: "
            f"{'yes' if self.native_bf16 else 'no'}); batch size {self.batch_size}; "
            f"median of {self.repeats} timed rounds after a warm-up. Compute utilisation = "
            "useful FLOPs (2 × non-embedding parameters × tokens + attention, unpadded) "
            "per second over the peak of the arithmetic the method runs in: the best "
            "large matrix product in that arithmetic measured on this machine before and "
            f"after the rounds with the same threads (GFLOP/s: {peaks}; int8 is a dynamically "
            "quantised Linear layer, activation quantisation included). An estimate of the "
            "peak, not the vendor's.",
        ]
        if self.command:
            lines += ["", f"Command: `{self.command}`"]
        return "\n".join(lines) + "\n"


@dataclass
class _Method:
    name: str
    precision: str
    sentences: int
    run: Callable[[list[str]], Any]
    note: str = ""
    arithmetic: str = "fp32"


def _methods(
    model_dir: str | os.PathLike[str],
    texts: list[str],
    precisions: Sequence[str],
    batch_size: int,
    device: str,
    emulated_bf16_sentences: int,
    scratch: Path | None,
) -> list[_Method]:
    """The pipeline, ``StanceClassifier`` at each precision (and fp32, the reference), and
    with a ``scratch`` directory ``predict_file`` end to end at precision auto."""
    from transformers import pipeline

    from negstance.model.predict import predict_file

    def load(precision: str) -> StanceClassifier:
        return StanceClassifier.from_pretrained(model_dir, device=device, precision=precision)

    classify = pipeline("text-classification", model=str(model_dir), device=resolve_device(device))
    methods = [
        _Method(
            "transformers pipeline",
            "fp32",
            len(texts),
            lambda batch: [row["label"] for row in classify(batch, batch_size=batch_size)],
        )
    ]
    native = cpu_supports_bf16()
    for precision in [*precisions, *(["fp32"] if "fp32" not in precisions else [])]:
        classifier, count, note = load(precision), len(texts), ""
        if classifier.precision == "bf16" and classifier.device.type == "cpu" and not native:
            count = min(count, emulated_bf16_sentences)
            note = f"emulated bf16 on this CPU: first {count} sentences"
        if precision == "auto":
            note = f"auto → {classifier.precision}"

        def run(batch: list[str], classifier: StanceClassifier = classifier) -> np.ndarray:
            return classifier.predict_proba(batch, batch_size=batch_size)

        methods.append(_Method("negstance", precision, count, run, note, classifier.precision))
    if scratch is not None:
        end_to_end = load("auto")

        def run_file(batch: list[str]) -> None:
            source = scratch / f"sentences-{len(batch)}.txt"
            source.write_text("\n".join(batch) + "\n", encoding="utf-8")
            output = scratch / "predictions.jsonl"
            predict_file(end_to_end, source, output, batch_size=batch_size, overwrite=True)

        note = f"auto → {end_to_end.precision}"
        name = "negstance predict_file, end to end"
        methods.append(_Method(name, "auto", len(texts), run_file, note, end_to_end.precision))
    return methods


def _timed_rounds(
    methods: list[_Method], texts: list[str], repeats: int, log: Callable[[str], None]
) -> tuple[list[list[float]], list[Any]]:
    """Seconds per round and the last output of every method, warm-up first."""
    log(f"warming up {len(methods)} methods ...")
    for method in methods:
        method.run(texts[:64])
    seconds: list[list[float]] = [[] for _ in methods]
    outputs: list[Any] = [None for _ in methods]
    for round_number in range(repeats):
        # Rotating the order spreads slow spells of a shared machine over all methods.
        shift = round_number % len(methods)
        for index in [*range(shift, len(methods)), *range(shift)]:
            method = methods[index]
            start = time.perf_counter()
            outputs[index] = method.run(texts[: method.sentences])
            seconds[index].append(time.perf_counter() - start)
            rate = method.sentences / seconds[index][-1]
            log(
                f"round {round_number + 1}/{repeats}: {method.name} [{method.precision}] {rate:.1f}"
            )
    return seconds, outputs


def _rows(
    methods: list[_Method],
    seconds: list[list[float]],
    outputs: list[Any],
    labels: list[str],
    flops: Callable[[int], float],
    peaks: dict[str, float],
) -> list[BenchRow]:
    """One row per method: speed, agreement with negstance fp32, utilisation."""
    fp32 = next(i for i, m in enumerate(methods) if (m.name, m.precision) == ("negstance", "fp32"))
    reference = outputs[fp32]
    reference_labels = [labels[index] for index in reference.argmax(axis=1)]
    rows = []
    for method, times, output in zip(methods, seconds, outputs, strict=True):
        median = statistics.median(times)
        rates = [method.sentences / value for value in times]
        row = BenchRow(
            method.name, method.precision, method.sentences, [round(t, 4) for t in times]
        )
        row.arithmetic, row.note, row.spread = (
            method.arithmetic,
            method.note,
            (min(rates), max(rates)),
        )
        row.sentences_per_second = method.sentences / median
        row.gflops_per_second = flops(method.sentences) / median / 1e9
        row.utilisation = row.gflops_per_second / peaks[method.arithmetic]
        if isinstance(output, np.ndarray):
            difference = np.abs(output - reference[: method.sentences]).max()
            row.max_probability_difference = float(difference)
            output = [labels[index] for index in output.argmax(axis=1)]
        if output is not None:
            agreement = [a == b for a, b in zip(output, reference_labels, strict=False)]
            row.agreement_with_fp32 = float(np.mean(agreement))
        rows.append(row)
    for row in rows:
        row.ratio_to_pipeline = row.sentences_per_second / rows[0].sentences_per_second
    return rows


def run_benchmark(
    model_dir: str | os.PathLike[str],
    texts: list[str],
    *,
    precisions: Sequence[str] = ("fp32", "bf16", "int8", "auto"),
    batch_size: int = 32,
    repeats: int = 3,
    device: str = "cpu",
    emulated_bf16_sentences: int = 128,
    include_predict_file: bool = True,
    peak_size: int = 2048,
    log: Callable[[str], None] = print,
) -> BenchReport:
    """Time the pipeline and ``StanceClassifier`` at each precision (emulated bf16 on the first
    ``emulated_bf16_sentences`` only) and ``predict_file`` end to end, on the same ``texts``.
    Example: ``print(run_benchmark("runs/default", texts).to_markdown())``."""
    model, tokenizer = load_checkpoint(model_dir)
    device_used = resolve_device(device)
    max_length = StanceClassifier(model, tokenizer, device="cpu").max_length
    tokens = [min(len(ids), max_length) for ids in tokenizer(texts)["input_ids"]]
    with tempfile.TemporaryDirectory(prefix="negstance-bench-") as scratch:
        directory = Path(scratch) if include_predict_file else None
        methods = _methods(
            model_dir, texts, precisions, batch_size, device, emulated_bf16_sentences, directory
        )
        arithmetics = list(dict.fromkeys(method.arithmetic for method in methods))
        log(f"measuring this machine's matrix-product peak ({', '.join(arithmetics)}) ...")

        def peak(name: str) -> float:
            return peak_matmul_gflops(peak_size, precision=name, device=device_used)

        peaks = {name: peak(name) for name in arithmetics}
        seconds, outputs = _timed_rounds(methods, texts, repeats, log)
    # Measured again afterwards: on a shared machine one reading can catch a busy spell.
    peaks = {name: max(value, peak(name)) for name, value in peaks.items()}
    labels = [model.config.id2label[index] for index in range(len(model.config.id2label))]

    def flops(count: int) -> float:
        return useful_flops(model, tokens[:count])

    return BenchReport(
        model=str(model_dir),
        device=str(device_used),
        threads=torch.get_num_threads(),
        cpu=_cpu_name(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16=cpu_supports_bf16(),
        peak_gflops=peaks,
        sentences=len(texts),
        tokens_mean=float(np.mean(tokens)),
        tokens_p50=float(np.median(tokens)),
        tokens_p95=float(np.percentile(tokens, 95)),
        tokens_max=max(tokens),
        batch_size=batch_size,
        repeats=repeats,
        rows=_rows(methods, seconds, outputs, labels, flops, peaks),
    )


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
