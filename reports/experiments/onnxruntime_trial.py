"""Research script: is ONNX Runtime faster than negstance's torch path on this CPU?

Not part of the package, and ``onnxruntime`` is not one of its dependencies.
Issue #5 welcomes another engine "if it is faster at the same accuracy and
installs from PyPI". This exports a checkpoint to ONNX, applies ORT's BERT graph
optimiser, quantises the optimised graph dynamically to int8 (per channel and
per tensor), and times each against ``StanceClassifier.predict_proba`` (fp32) on
the same news-like sentences as ``scripts/bench_inference.py``. Both sides get
the same length-sorted batches of 32, the same truncation, and tokenisation is
inside the timing. It prints one JSON line.

Setup (a separate virtual environment keeps onnxruntime out of the project's):
    python -m venv --system-site-packages /tmp/ortvenv
    /tmp/ortvenv/bin/pip install onnxruntime onnx onnxscript
    /tmp/ortvenv/bin/python reports/experiments/onnxruntime_trial.py --model runs/default
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model

from negstance.model.benchmark import news_like_sentences
from negstance.model.modeling import StanceClassifier
from negstance.train.data import load_seed_dataset

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


class LogitsOnly(torch.nn.Module):
    """The ONNX exporter wants positional tensors in and one tensor out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits


def export_variants(classifier: StanceClassifier, directory: Path) -> dict[str, Path]:
    sample = classifier.tokenizer(["a b c", "d e f g h"], padding=True, return_tensors="pt")
    exported = directory / "model.onnx"
    torch.onnx.export(
        LogitsOnly(classifier.model.eval()),
        tuple(sample[name] for name in INPUT_NAMES),
        exported,
        input_names=INPUT_NAMES,
        output_names=["logits"],
        dynamic_axes={name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
        | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    config = classifier.model.config
    optimized = directory / "optimized.onnx"
    optimize_model(
        str(exported),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    ).save_model_to_file(str(optimized))
    variants = {"ort fp32 (optimised graph)": optimized}
    for per_channel, name in ((True, "per channel"), (False, "per tensor")):
        quantized = directory / f"int8_{'channel' if per_channel else 'tensor'}.onnx"
        # The fused graph hides some output types from shape inference; they are all float.
        quantize_dynamic(
            optimized,
            quantized,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            extra_options={"DefaultTensorType": 1},
        )
        variants[f"ort int8 dynamic, {name}"] = quantized
    return variants


def ort_probabilities(session, classifier: StanceClassifier, texts: list[str]) -> np.ndarray:
    tokenizer = classifier.tokenizer
    features = tokenizer(texts, truncation=True, max_length=classifier.max_length)
    order = sorted(range(len(texts)), key=lambda index: -len(features["input_ids"][index]))
    logits = np.zeros((len(texts), classifier.model.config.num_labels), np.float32)
    for start in range(0, len(order), 32):
        rows = order[start : start + 32]
        batch = tokenizer.pad(
            {name: [features[name][row] for row in rows] for name in features},
            return_tensors="np",
        )
        inputs = {name: batch[name].astype(np.int64) for name in INPUT_NAMES}
        logits[rows] = session.run(None, inputs)[0]
    return logits


def sentences_per_second(function, count: int, repeats: int):
    result = function()  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return count / statistics.median(seconds), result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/default")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = list(load_seed_dataset("data/seed_sentences.jsonl")["text"])
    texts = news_like_sentences(seeds, args.sentences, seed=0)
    classifier = StanceClassifier.from_pretrained(args.model, precision="fp32")

    rate, reference = sentences_per_second(
        lambda: classifier.predict_proba(texts), len(texts), args.repeats
    )
    reference_labels = reference.argmax(axis=1)
    results = {"torch fp32 (negstance)": {"sentences_per_second": round(rate, 1)}}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as directory:
        for name, path in export_variants(classifier, Path(directory)).items():
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            rate, logits = sentences_per_second(
                lambda session=session: ort_probabilities(session, classifier, texts),
                len(texts),
                args.repeats,
            )
            results[name] = {
                "sentences_per_second": round(rate, 1),
                "label_agreement_with_torch_fp32": float(
                    (logits.argmax(axis=1) == reference_labels).mean()
                ),
            }
    report = {"onnxruntime": onnxruntime.__version__, "threads": args.threads, "results": results}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
