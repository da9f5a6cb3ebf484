"""StanceClassifier and batch inference: order, precisions, chunking, documents mode, processes."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SEED_DATA, accelerate_launch, read_jsonl, write_jsonl

from negstance.model import LABELS
from negstance.model.classifier import StanceClassifier
from negstance.model.cli import predict_main
from negstance.model.predict import document_stance, predict_file
from negstance.model.text import split_sentences

ARTICLE = (
    "Kremlin signals readiness for talks\n"
    "Moscow said on Monday it was ready to negotiate without preconditions. "
    "Kyiv rejected the offer, calling it a stalling tactic. "
    "U.S. officials said talks could begin next month.\n"
    "Oil prices fell on the news."
)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [row["text"] for row in read_jsonl(SEED_DATA)][:60]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint_dir) -> StanceClassifier:
    return StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", precision="fp32")


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


def probabilities_of(rows: list[dict]) -> np.ndarray:
    return np.array([[float(row[f"prob_{label}"]) for label in LABELS] for row in rows])


def one_by_one(classifier: StanceClassifier, texts: list[str]) -> np.ndarray:
    """Each text alone in its batch: no padding, no sorting, nothing to mix up."""
    return np.stack([classifier.predict_proba(text) for text in texts])


def batch_widths(classifier: StanceClassifier, texts: list[str]) -> list[int]:
    widths = []
    hook = classifier.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        probabilities = classifier.predict_proba(texts, batch_size=8)
    finally:
        hook.remove()
    np.testing.assert_allclose(probabilities, one_by_one(classifier, texts), atol=1e-5)
    return widths


def test_sorted_batches_come_back_in_input_order_padded_to_multiples_of_eight(classifier, texts):
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = classifier.predict_proba([texts[index] for index in order], batch_size=8)
    alone = one_by_one(classifier, texts)
    # The random tiny model must tell the texts apart, or a mix-up would not show.
    assert len({tuple(row.round(4)) for row in alone}) == len(texts)
    np.testing.assert_allclose(shuffled, alone[order], atol=1e-5)
    # Few distinct shapes keep oneDNN's per-shape kernel cache, and so memory, small.
    widths = batch_widths(classifier, texts)
    assert len(widths) == -(-len(texts) // 8)
    assert all(width % 8 == 0 and width <= classifier.max_length for width in widths)
    assert len(set(widths)) > 1  # still sorted by length: not everything padded to the maximum


def test_padding_never_passes_a_max_length_that_is_no_multiple_of_eight(tiny_checkpoint_dir):
    classifier = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", max_length=13)
    assert batch_widths(classifier, ["Talks resumed.", "word " * 40, "Kyiv is ready."]) == [13]


def test_bf16_and_int8_match_fp32_within_tolerance(tiny_checkpoint_dir, classifier, texts):
    reference = classifier.predict_proba(texts)
    for precision, tolerance in (("bf16", 0.02), ("int8", 0.05)):
        other = StanceClassifier.from_pretrained(tiny_checkpoint_dir, "cpu", precision)
        probabilities = other.predict_proba(texts)
        assert other.precision == precision and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probabilities, reference, atol=tolerance)


BAD_TEXTS = [(42, TypeError), (b"Talks.", TypeError), (["Talks.", None], TypeError)]
BAD_TEXTS += [("  ", ValueError), (["Talks.", "\n"], ValueError)]


@pytest.mark.parametrize("texts, error", BAD_TEXTS)
def test_the_api_refuses_non_strings_and_empty_text(classifier, texts, error):
    with pytest.raises(error):
        classifier.predict(texts)
    # A str is a sequence of characters: it would be classified one letter at a time.
    with pytest.raises(TypeError):
        classifier.probabilities_and_truncation("Talks resumed.")


def test_output_is_the_same_across_precisions_and_chunk_sizes(classifier, texts, tmp_path):
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    expected = one_by_one(classifier, texts)
    bf16 = StanceClassifier(classifier.model, classifier.tokenizer, "cpu", precision="bf16")
    runs = [(classifier, 1, 1e-5), (classifier, 3, 1e-5), (classifier, 4096, 1e-5), (bf16, 7, 0.02)]
    for model, chunk_size, tolerance in runs:
        output = tmp_path / f"{model.precision}{chunk_size}.jsonl"
        summary = predict_file(
            model, source, output, chunk_size=chunk_size, batch_size=4, show_progress=False
        )
        assert summary.rows == summary.classified == len(texts)
        rows = read_rows(output)
        assert [row["text"] for row in rows] == texts
        np.testing.assert_allclose(probabilities_of(rows), expected, atol=tolerance)


@pytest.mark.parametrize("suffix, out", [("txt", "csv"), ("jsonl", "csv"), ("csv", "jsonl")])
def test_every_format_keeps_order_blank_rows_and_other_fields(suffix, out, classifier, tmp_path):
    lines = ["Talks resumed in Istanbul.", "", "   ", "Oil prices fell.", "\t", "Kyiv said no."]
    field = "body" if suffix == "csv" else "text"  # --text_column
    records = [
        {"id": str(i), field: text, "label": "gold", "page": {"n": i}}
        for i, text in enumerate(lines)
    ]
    source = tmp_path / f"in.{suffix}"
    if suffix == "txt":
        source.write_text("\n".join(lines), encoding="utf-8")  # no newline at the end
    elif suffix == "jsonl":
        write_jsonl(source, records)
    else:
        with source.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, ["id", field, "label"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(records)
    output = tmp_path / f"out.{out}"
    summary = predict_file(
        classifier,
        source,
        output,
        text_field=field,
        chunk_size=2,
        batch_size=2,
        show_progress=False,
    )
    rows = read_rows(output)
    assert [row[field] for row in rows] == lines
    assert [bool(row["label"]) for row in rows] == [bool(line.strip()) for line in lines]
    labelled = [row for row in rows if row["label"]]
    expected = one_by_one(classifier, [line for line in lines if line.strip()])
    np.testing.assert_allclose(probabilities_of(labelled), expected, atol=1e-5)
    assert [row["label"] for row in labelled] == [LABELS[i] for i in expected.argmax(axis=1)]
    assert [float(row["score"]) for row in labelled] == pytest.approx(
        expected.max(axis=1), abs=1e-5
    )
    assert (summary.rows, summary.classified, summary.empty) == (6, 3, 3)
    if suffix != "txt":  # an input "label" is kept beside the prediction
        assert [(row["id"], row["input_label"]) for row in rows] == [
            (str(i), "gold") for i in range(6)
        ]
    if suffix == "jsonl":  # nested fields are carried as JSON in a CSV
        assert [json.loads(row["page"]) for row in rows] == [{"n": i} for i in range(6)]
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize("output_name", ["out.jsonl", "out.tsv"])
def test_documents_mode_on_a_small_article(output_name, classifier, tmp_path):
    source = tmp_path / "articles.jsonl"
    articles = [{"id": "a1", "text": ARTICLE}, {"id": "a2", "text": ""}]
    source.write_text("\n".join(json.dumps(article) for article in articles), encoding="utf-8")
    output = tmp_path / output_name
    summary = predict_file(classifier, source, output, documents=True, show_progress=False)
    rows = read_rows(output)
    sentences = split_sentences(ARTICLE)
    assert len(sentences) == 5
    # Each document's summary comes right after its sentences, in input order.
    assert [row["kind"] for row in rows] == ["sentence"] * 5 + ["document", "document"]
    sentence_rows, (first, empty) = rows[:5], rows[5:]
    assert [row["text"] for row in sentence_rows] == sentences
    assert [int(row["sentence_index"]) for row in sentence_rows] == list(range(5))
    assert all(int(row["doc_row"]) == 0 and row["id"] == "a1" for row in sentence_rows)
    counts = Counter(row["label"] for row in sentence_rows)
    assert first["id"] == "a1" and int(first["sentences"]) == 5
    assert [int(first[f"count_{label}"]) for label in LABELS] == [counts[x] for x in LABELS]
    assert first["label"] == document_stance(counts, LABELS)["label"]
    np.testing.assert_allclose(
        probabilities_of(sentence_rows), classifier.predict_proba(sentences), atol=1e-5
    )
    # A blank document has no stance: no label, as a blank row in sentence mode.
    assert empty["id"] == "a2" and int(empty["sentences"]) == 0 and empty["label"] in (None, "")
    assert (summary.rows, summary.classified, summary.empty) == (2, 5, 1)


def test_document_stance_is_the_majority_side():
    assert document_stance(Counter(favor=2, against=1, none=9), LABELS)["label"] == "favor"
    assert document_stance(Counter(favor=1, against=3), LABELS)["label"] == "against"
    assert document_stance(Counter(favor=2, against=2, none=1), LABELS)["label"] == "none"
    all_none = document_stance(Counter(none=3), LABELS)
    assert all_none["label"] == "none" and all_none["share_none"] == 1.0
    empty = document_stance(Counter(), LABELS)
    assert empty["label"] is None and empty["share_none"] is None and empty["count_none"] == 0


def test_progress_bar_moves_per_batch_within_a_chunk(classifier, texts, tmp_path, monkeypatch):
    import negstance.model.predict as predict_module

    positions: list[int] = []

    class RecordingBar(predict_module.tqdm):
        def update(self, n=1):
            assert self.total == 41  # the ETA's total: the input's rows
            positions.append(self.n + n)
            return super().update(n)

    monkeypatch.setattr(predict_module, "tqdm", RecordingBar)
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts[:40]) + "\n\n", encoding="utf-8")  # 40 texts, 1 empty row
    predict_file(classifier, source, tmp_path / "out.jsonl", batch_size=8, chunk_size=1000)
    # One chunk of 41 rows, five batches of 8: the bar moves with every batch.
    assert len(set(positions)) >= 5 and positions == sorted(positions) and positions[-1] == 41


def test_encoding_option_reads_latin1_utf16_and_a_spreadsheets_byte_order_mark(
    classifier, tmp_path
):
    lines = ["Talks resumed.", "Kyiv café reopened."]
    cases = [("in.txt", "latin-1", ""), ("in16.txt", "utf-16", ""), ("in.csv", "utf-8", "text\n")]
    for name, encoding, header in cases:
        source = tmp_path / name
        mark = "\ufeff" if name.endswith(".csv") else ""
        source.write_bytes((mark + header + "\r\n".join(lines) + "\r\n").encode(encoding))
        output = tmp_path / f"{name}.jsonl"
        predict_file(classifier, source, output, encoding=encoding, show_progress=False)
        assert [row["text"] for row in read_rows(output)] == lines


def test_over_long_texts_are_truncated_by_the_tokenizer_and_counted(classifier, texts, tmp_path):
    long_text = " ".join(texts[:10])  # well over the tiny model's 128 positions
    source = tmp_path / "in.txt"
    source.write_text(f"Talks resumed.\n{long_text}\n{long_text * 2}\n", encoding="utf-8")
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    try:
        summary = predict_file(classifier, source, tmp_path / "o.jsonl", show_progress=False)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert summary.truncated == 2 and summary.classified == 3
    # "will result in indexing errors" would be untrue: the texts are truncated.
    assert not [message for message in messages if "indexing errors" in message]
    encoded = classifier.tokenizer(
        long_text, truncation=True, max_length=classifier.max_length, return_tensors="pt"
    )
    with torch.inference_mode():
        expected = torch.softmax(classifier.model(**encoded).logits, dim=-1).numpy()
    np.testing.assert_allclose(
        probabilities_of(read_rows(tmp_path / "o.jsonl")[1:2]), expected, atol=1e-5
    )


@pytest.mark.parametrize("native_bf16, expected", [(False, "fp32"), (True, "bf16")])
def test_cli_default_precision_is_bf16_only_with_native_support(
    tiny_checkpoint_dir, texts, tmp_path, capsys, monkeypatch, native_bf16, expected
):
    from negstance.model import classifier as classifier_module

    monkeypatch.setattr(classifier_module, "cpu_supports_bf16", lambda: native_bf16)
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts[:5]) + "\n", encoding="utf-8")
    output = tmp_path / "out.tsv"
    arguments = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    assert predict_main([*arguments, "--output", str(output)]) == 0
    assert f"{expected} on cpu" in capsys.readouterr().out
    assert [row["text"] for row in read_rows(output)] == texts[:5]  # a .tsv is tab-separated


def test_two_processes_give_the_single_process_output(tiny_checkpoint_dir, texts, tmp_path):
    lines = [*texts[:25], "", *texts[25:41]]  # 41 texts: uneven shares, an empty line
    source = tmp_path / "news.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    common += ["--chunk_size", "16", "--batch_size", "4", "--precision", "fp32"]
    single, double = tmp_path / "single.jsonl", tmp_path / "double.jsonl"
    assert predict_main([*common, "--output", str(single)]) == 0
    completed = accelerate_launch("predict", [*common, "--output", str(double)], timeout=120)
    assert "x 2 processes" in completed.stdout
    one, two = read_rows(single), read_rows(double)
    assert [row["text"] for row in two] == [row["text"] for row in one] == lines
    assert [row["label"] for row in two] == [row["label"] for row in one]
    labelled = [row for row in one if row["label"]], [row for row in two if row["label"]]
    np.testing.assert_allclose(*map(probabilities_of, labelled), atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_uses_bf16_and_a_large_batch(tiny_checkpoint_dir, texts, tmp_path, monkeypatch):
    gpu = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="auto", precision="auto")
    assert gpu.device.type == "cuda"
    assert gpu.precision == ("bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp32")
    cpu = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu", precision="fp32")
    np.testing.assert_allclose(gpu.predict_proba(texts), cpu.predict_proba(texts), atol=0.02)
    sizes, encode = [], StanceClassifier.encode

    def spy(self, texts, batch_size=32):
        sizes.append(batch_size)
        return encode(self, texts, batch_size)

    monkeypatch.setattr(StanceClassifier, "encode", spy)
    source, output = tmp_path / "news.txt", tmp_path / "out.jsonl"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    arguments = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    assert predict_main([*arguments, "--output", str(output)]) == 0
    assert sizes == [256] and len(read_rows(output)) == len(texts)
