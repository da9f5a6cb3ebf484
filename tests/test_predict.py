"""Batch inference: order, content, precisions, chunking, documents mode, processes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from negstance.model.classifier import StanceClassifier
from negstance.model.cli import predict_main
from negstance.model.predict import (
    PredictionSummary,
    count_records,
    document_stance,
    predict_file,
)
from negstance.model.text import split_sentences

REPO = Path(__file__).resolve().parents[1]

ARTICLE = (
    "Kremlin signals readiness for talks\n"
    "Moscow said on Monday it was ready to negotiate without preconditions. "
    "Kyiv rejected the offer, calling it a stalling tactic. "
    "U.S. officials said talks could begin next month.\n"
    "Oil prices fell on the news."
)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    lines = (REPO / "data" / "seed_sentences.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines][:60]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint_dir) -> StanceClassifier:
    return StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", precision="fp32")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def probabilities_of(rows: list[dict], labels: list[str]) -> np.ndarray:
    return np.array([[row[f"prob_{label}"] for label in labels] for row in rows], dtype=float)


def one_by_one(classifier: StanceClassifier, texts: list[str]) -> np.ndarray:
    """Each text alone in its batch: no padding, no sorting, nothing to mix up."""
    return np.stack([classifier.predict_proba(text) for text in texts])


def test_batched_sorted_probabilities_are_in_input_order(classifier, texts):
    batched = classifier.predict_proba(texts, batch_size=8)
    np.testing.assert_allclose(batched, one_by_one(classifier, texts), atol=1e-5)
    # A permutation of the input permutes the output the same way.
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = classifier.predict_proba([texts[index] for index in order], batch_size=8)
    np.testing.assert_allclose(shuffled, batched[order], atol=1e-5)


def batch_widths(classifier: StanceClassifier, texts: list[str]) -> list[int]:
    widths = []
    hook = classifier.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]),
        with_kwargs=True,
    )
    try:
        probabilities = classifier.predict_proba(texts, batch_size=8)
    finally:
        hook.remove()
    np.testing.assert_allclose(probabilities, one_by_one(classifier, texts), atol=1e-5)
    return widths


def test_batches_are_padded_to_a_multiple_of_eight_tokens(classifier, texts):
    # Few distinct shapes keep oneDNN's per-shape kernel cache, and so memory, small.
    widths = batch_widths(classifier, texts)
    assert len(widths) == -(-len(texts) // 8)
    assert all(width % 8 == 0 and width <= classifier.max_length for width in widths)
    assert len(set(widths)) > 1  # still sorted by length: not everything padded to the maximum


def test_padding_never_passes_a_max_length_that_is_no_multiple_of_eight(tiny_checkpoint_dir):
    classifier = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", max_length=13)
    texts = ["Talks resumed.", "word " * 40, "Kyiv said it was ready to talk."]
    widths = batch_widths(classifier, texts)
    assert widths == [13]  # 16 would overrun max_length


def test_over_long_texts_are_truncated_by_the_tokenizer_and_counted(classifier, texts):
    long_text = " ".join(texts[:10])  # well over the tiny model's 128 positions
    probabilities, truncated = classifier.probabilities_and_truncation(
        [texts[0], long_text], batch_size=2
    )
    assert truncated == 1
    encoded = classifier.tokenizer(
        long_text, truncation=True, max_length=classifier.max_length, return_tensors="pt"
    )
    assert encoded["input_ids"].shape[1] == classifier.max_length
    with torch.inference_mode():
        expected = torch.softmax(classifier.model(**encoded).logits, dim=-1)[0].numpy()
    np.testing.assert_allclose(probabilities[1], expected, atol=1e-5)
    np.testing.assert_allclose(probabilities[0], classifier.predict_proba(texts[0]), atol=1e-5)


def test_bf16_and_int8_match_fp32_within_tolerance(tiny_checkpoint_dir, classifier, texts):
    reference = classifier.predict_proba(texts)
    for precision, tolerance in (("bf16", 0.02), ("int8", 0.05)):
        other = StanceClassifier.from_pretrained(
            tiny_checkpoint_dir, device="cpu", precision=precision
        )
        assert other.precision == precision
        probabilities = other.predict_proba(texts)
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probabilities, reference, atol=tolerance)


def test_auto_precision_is_bf16_only_with_native_support(tiny_checkpoint_dir, monkeypatch):
    from negstance.model import classifier as classifier_module

    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(classifier_module, "cpu_supports_bf16", lambda native=native: native)
        auto = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", precision="auto")
        assert auto.precision == expected


def test_output_is_identical_across_precisions_and_chunk_sizes(classifier, texts, tmp_path):
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    runs = {}
    for chunk_size in (1, 3, 4096):
        output = tmp_path / f"chunk{chunk_size}.jsonl"
        summary = predict_file(
            classifier, source, output, chunk_size=chunk_size, batch_size=4, show_progress=False
        )
        assert summary.rows == summary.classified == len(texts)
        runs[chunk_size] = read_jsonl(output)
    labels = classifier.labels
    reference = runs[4096]
    assert [row["text"] for row in reference] == texts
    expected = one_by_one(classifier, texts)
    for rows in runs.values():
        assert [row["text"] for row in rows] == texts
        assert [row["label"] for row in rows] == [row["label"] for row in reference]
        np.testing.assert_allclose(probabilities_of(rows, labels), expected, atol=1e-5)

    bf16 = StanceClassifier(classifier.model, classifier.tokenizer, "cpu", precision="bf16")
    output = tmp_path / "bf16.jsonl"
    predict_file(bf16, source, output, chunk_size=7, show_progress=False)
    rows = read_jsonl(output)
    assert [row["text"] for row in rows] == texts
    np.testing.assert_allclose(probabilities_of(rows, labels), expected, atol=0.02)


def test_empty_lines_get_empty_predictions_and_rows_match_input(classifier, texts, tmp_path):
    lines = [texts[0], "", texts[1], "   ", "", texts[2]]
    source = tmp_path / "news.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    summary = predict_file(classifier, source, output, chunk_size=2, show_progress=False)
    rows = read_jsonl(output)
    assert [row["text"] for row in rows] == lines
    assert (summary.rows, summary.classified, summary.empty) == (6, 3, 3)
    for line, row in zip(lines, rows, strict=True):
        if line.strip():
            assert row["label"] in classifier.labels
            assert row["score"] == max(row[f"prob_{label}"] for label in classifier.labels)
        else:
            assert row["label"] is None and row["score"] is None
            assert all(row[f"prob_{label}"] is None for label in classifier.labels)
    assert sum(summary.label_counts.values()) == 3


def test_documents_mode_on_a_small_article(classifier, tmp_path):
    source = tmp_path / "articles.jsonl"
    articles = [{"id": "a1", "text": ARTICLE}, {"id": "a2", "text": ""}]
    source.write_text("\n".join(json.dumps(article) for article in articles), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    summary = predict_file(classifier, source, output, documents=True, show_progress=False)
    rows = read_jsonl(output)
    sentences = split_sentences(ARTICLE)
    assert len(sentences) == 5
    sentence_rows = [row for row in rows if row["kind"] == "sentence"]
    document_rows = [row for row in rows if row["kind"] == "document"]
    assert [row["text"] for row in sentence_rows] == sentences
    assert [row["sentence_index"] for row in sentence_rows] == list(range(5))
    assert all(row["doc_row"] == 0 and row["id"] == "a1" for row in sentence_rows)
    # Each document's summary comes right after its sentences, in input order.
    assert [row["kind"] for row in rows] == ["sentence"] * 5 + ["document", "document"]
    first, empty = document_rows
    counts = Counter(row["label"] for row in sentence_rows)
    assert first["id"] == "a1" and first["sentences"] == 5
    for label in classifier.labels:
        assert first[f"count_{label}"] == counts[label]
        assert first[f"share_{label}"] == round(counts[label] / 5, 4)
    assert first["label"] == document_stance(counts, classifier.labels)["label"]
    np.testing.assert_allclose(
        probabilities_of(sentence_rows, classifier.labels),
        classifier.predict_proba(sentences),
        atol=1e-5,
    )
    # A blank document has no stance to read: no label, like a blank row in sentence
    # mode, so it cannot pass for a document whose sentences are all "none".
    assert empty["id"] == "a2" and empty["sentences"] == 0 and empty["label"] is None
    assert all(empty[f"share_{label}"] is None for label in classifier.labels)
    assert (summary.documents, summary.classified, summary.empty) == (2, 5, 1)
    assert summary.describe().startswith("2 documents; 5 classified")
    assert "1 empty document left unlabelled" in summary.describe()


def test_document_stance_is_the_majority_side():
    labels = ["favor", "against", "none"]
    assert document_stance(Counter(favor=2, against=1, none=9), labels)["label"] == "favor"
    assert document_stance(Counter(favor=1, against=3), labels)["label"] == "against"
    assert document_stance(Counter(favor=2, against=2, none=1), labels)["label"] == "none"
    all_none = document_stance(Counter(none=3), labels)
    assert all_none["label"] == "none" and all_none["share_none"] == 1.0
    empty = document_stance(Counter(), labels)
    assert empty["label"] is None and empty["sentences"] == 0 and empty["share_none"] is None
    assert empty["count_none"] == 0


def test_summary_line_of_a_run_that_classified_nothing_new():
    # Resuming a run whose every row was already written: nothing to count.
    summary = PredictionSummary(rows=11, resumed_from=11)
    assert summary.describe() == "11 rows; 0 classified; resumed after row 11"
    summary.label_counts.update(favor=2, none=1)
    summary.classified = 3
    assert summary.describe().startswith("11 rows; 3 classified (favor 2, none 1);")


def test_csv_documents_output_keeps_the_summary_columns(classifier, tmp_path):
    source = tmp_path / "articles.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], ["a1", ARTICLE]])
    output = tmp_path / "out.csv"
    predict_file(classifier, source, output, documents=True, show_progress=False)
    with output.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["kind"] for row in rows] == ["sentence"] * 5 + ["document"]
    assert rows[-1]["sentences"] == "5"
    assert sum(int(rows[-1][f"count_{label}"]) for label in classifier.labels) == 5
    assert rows[0]["id"] == "a1" and rows[0]["text"] == split_sentences(ARTICLE)[0]


def test_an_input_label_is_kept_beside_the_prediction(classifier, tmp_path):
    source = tmp_path / "gold.jsonl"
    source.write_text(json.dumps({"text": "Talks resumed.", "label": "favor"}) + "\n")
    output = tmp_path / "out.jsonl"
    predict_file(classifier, source, output, show_progress=False)
    (row,) = read_jsonl(output)
    assert row["input_label"] == "favor"
    assert row["label"] in classifier.labels


def test_count_records_for_the_progress_bar(tmp_path):
    cases = {"a.txt": "one\n\nthree\n", "b.txt": "one\ntwo", "c.csv": "text\nx\ny\n", "d.txt": ""}
    expected = {"a.txt": 3, "b.txt": 2, "c.csv": 2, "d.txt": 0}
    for name, content in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert count_records(tmp_path / name) == expected[name]


def test_progress_bar_moves_per_batch_within_a_chunk(classifier, texts, tmp_path, monkeypatch):
    import negstance.model.predict as predict_module

    updates: list[int] = []

    class RecordingBar:
        def __init__(self, *args, **kwargs) -> None:
            self.total = kwargs.get("total")

        def update(self, count: int) -> None:
            updates.append(count)

        def set_postfix_str(self, text: str) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(predict_module, "tqdm", RecordingBar)
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts[:40]) + "\n\n", encoding="utf-8")  # 40 texts, 1 empty row
    predict_file(classifier, source, tmp_path / "out.jsonl", batch_size=8, chunk_size=1000)
    # One chunk of 41 rows: five batches of 8 move the bar in proportion to the rows.
    assert len([count for count in updates if count > 0]) >= 5
    assert sum(updates) == 41 and all(count >= 0 for count in updates)


@pytest.mark.parametrize("native_bf16, expected", [(False, "fp32"), (True, "bf16")])
def test_cli_reports_precision_and_writes_in_order(
    tiny_checkpoint_dir, texts, tmp_path, capsys, monkeypatch, native_bf16, expected
):
    from negstance.model import classifier as classifier_module

    # The CLI's default precision is auto: what it resolves to depends on the CPU.
    monkeypatch.setattr(classifier_module, "cpu_supports_bf16", lambda: native_bf16)
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts[:5]) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    arguments = ["--model", str(tiny_checkpoint_dir), "--input", str(source)]
    assert predict_main([*arguments, "--output", str(output), "--no_progress"]) == 0
    assert f"({expected} on cpu)" in capsys.readouterr().out
    assert [row["text"] for row in read_jsonl(output)] == texts[:5]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_give_the_single_process_output(tiny_checkpoint_dir, texts, tmp_path):
    lines = [*texts[:25], "", *texts[25:41]]  # 41 texts: uneven shards, an empty line
    source = tmp_path / "news.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    common += ["--chunk_size", "16", "--batch_size", "4", "--precision", "fp32"]
    single = tmp_path / "single.jsonl"
    assert predict_main([*common, "--output", str(single)]) == 0
    double = tmp_path / "double.jsonl"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", str(free_port())]
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [*launch, str(REPO / "scripts" / "predict.py"), *common, "--output", str(double)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "x 2 processes" in completed.stdout
    one, two = read_jsonl(single), read_jsonl(double)
    assert len(two) == len(lines)
    assert [row["text"] for row in two] == [row["text"] for row in one] == lines
    assert [row["label"] for row in two] == [row["label"] for row in one]
    labels = ["favor", "against", "none"]
    one_probabilities = probabilities_of([row for row in one if row["label"]], labels)
    two_probabilities = probabilities_of([row for row in two if row["label"]], labels)
    np.testing.assert_allclose(two_probabilities, one_probabilities, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_uses_bf16_and_a_large_batch(tiny_checkpoint_dir, texts, tmp_path, monkeypatch):
    gpu = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="auto", precision="auto")
    assert gpu.device.type == "cuda"
    assert gpu.precision == (
        "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    )
    cpu = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", precision="fp32")
    np.testing.assert_allclose(gpu.predict_proba(texts), cpu.predict_proba(texts), atol=0.02)

    from negstance.model import predict as predict_module

    seen = {}
    original = predict_module.predict_file

    def spy(classifier, *args, **kwargs):
        seen["batch_size"] = kwargs["batch_size"]
        return original(classifier, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_file", spy)
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    arguments = ["--model", str(tiny_checkpoint_dir), "--input", str(source)]
    assert predict_main([*arguments, "--output", str(output), "--no_progress"]) == 0
    assert seen["batch_size"] == 256
    assert len(read_jsonl(output)) == len(texts)
