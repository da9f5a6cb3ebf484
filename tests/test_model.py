"""``StanceClassifier`` and the checkpoint format, on a tiny random BERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification, pipeline

from negstance.model import LABELS, NegstanceForSequenceClassification, StanceClassifier
from negstance.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from negstance.model.errors import NegstanceError

# Lengths from 1 to ~90 tokens, so length sorting reorders them and batches need padding.
TEXTS = [
    "Talks.",
    "Russia and Ukraine agreed to meet in Istanbul next week to discuss a ceasefire "
    "along the current front line, officials in both capitals said on Tuesday, "
    "though neither side expects a quick deal and fighting continued overnight "
    "in the east, where shelling hit several towns and villages near the border.",
    "Kyiv rejected the proposal.",
    "The Kremlin said Putin is ready for talks without preconditions.",
    "Peace now?",
    "Zelensky said any deal must include security guarantees from the West, "
    "and that Ukraine would never accept the loss of its territory.",
]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint_dir: Path) -> StanceClassifier:
    return StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu")


def logits_of(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return model.eval()(**batch).logits


def test_labels_follow_the_checkpoint(classifier: StanceClassifier) -> None:
    assert classifier.labels == list(LABELS) == ["favor", "against", "none"]
    assert classifier.id2label == {0: "favor", 1: "against", 2: "none"}
    assert classifier.label2id == {"favor": 0, "against": 1, "none": 2}


def test_save_then_load_keeps_labels_and_logits(
    classifier: StanceClassifier, tmp_path: Path
) -> None:
    saved = classifier.save_pretrained(tmp_path / "copy")
    assert (saved / "model.safetensors").is_file()
    assert not list(saved.glob("*.bin"))
    reloaded = StanceClassifier.from_pretrained(saved, device="cpu")
    assert reloaded.labels == classifier.labels
    assert reloaded.model.config.model_type == "negstance"
    before = logits_of(classifier.model, classifier.tokenizer, TEXTS)
    after = logits_of(reloaded.model, reloaded.tokenizer, TEXTS)
    assert torch.equal(before, after)


def test_single_string_gives_single_label_and_row(classifier: StanceClassifier) -> None:
    label = classifier.predict(TEXTS[0])
    probabilities = classifier.predict_proba(TEXTS[0])
    assert isinstance(label, str)
    assert label in LABELS
    assert probabilities.shape == (3,)
    assert label == LABELS[int(probabilities.argmax())]


def test_list_gives_list_and_rows_sum_to_one(classifier: StanceClassifier) -> None:
    labels = classifier.predict(TEXTS)
    probabilities = classifier.predict_proba(TEXTS)
    assert isinstance(labels, list)
    assert len(labels) == len(TEXTS)
    assert probabilities.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert (probabilities >= 0).all()
    assert labels == [LABELS[index] for index in probabilities.argmax(axis=1)]


def test_empty_list_gives_empty_results(classifier: StanceClassifier) -> None:
    assert classifier.predict([]) == []
    assert classifier.predict_proba([]).shape == (0, 3)


def test_rows_keep_input_order_under_length_sorting(classifier: StanceClassifier) -> None:
    one_at_a_time = np.stack([classifier.predict_proba(text) for text in TEXTS])
    # The random tiny model must tell these texts apart, or order would not show.
    assert len({tuple(row.round(4)) for row in one_at_a_time}) == len(TEXTS)
    batched = classifier.predict_proba(TEXTS, batch_size=2)
    np.testing.assert_allclose(batched, one_at_a_time, rtol=0, atol=1e-5)
    reversed_batched = classifier.predict_proba(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(reversed_batched, one_at_a_time[::-1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", [["fine", 3], [None], b"bytes", 42, [b"bytes"]])
def test_non_strings_raise_type_error(classifier: StanceClassifier, bad: object) -> None:
    with pytest.raises(TypeError):
        classifier.predict(bad)  # type: ignore[arg-type]


def test_loads_through_auto_model_and_pipeline_with_same_argmax(
    classifier: StanceClassifier, tiny_checkpoint_dir: Path
) -> None:
    auto_model = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint_dir)
    assert isinstance(auto_model, NegstanceForSequenceClassification)
    assert [auto_model.config.id2label[index] for index in range(3)] == list(LABELS)
    probabilities = classifier.predict_proba(TEXTS)
    auto_logits = logits_of(auto_model, classifier.tokenizer, TEXTS)
    np.testing.assert_allclose(
        torch.softmax(auto_logits, dim=-1).numpy(), probabilities, rtol=0, atol=1e-5
    )

    classify = pipeline("text-classification", model=str(tiny_checkpoint_dir), device="cpu")
    outputs = classify(TEXTS, top_k=None)
    assert {entry["label"] for entry in outputs[0]} == set(LABELS)
    pipeline_probabilities = np.array(
        [[{e["label"]: e["score"] for e in row}[label] for label in LABELS] for row in outputs]
    )
    np.testing.assert_allclose(pipeline_probabilities, probabilities, rtol=0, atol=1e-5)
    top = [row["label"] for row in classify(TEXTS)]
    assert top == classifier.predict(TEXTS)


def test_cls_head_is_a_stock_bert_checkpoint_that_round_trips(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model, tokenizer = build_model(str(tiny_backbone_dir), head="cls")
    assert type(model) is BertForSequenceClassification
    directory = save_checkpoint(model, tokenizer, tmp_path / "cls")
    assert AutoModelForSequenceClassification.from_pretrained(directory).config.model_type == "bert"
    classifier = StanceClassifier.from_pretrained(directory, device="cpu")
    assert type(classifier.model) is BertForSequenceClassification
    assert classifier.labels == list(LABELS)
    assert torch.equal(
        logits_of(model, tokenizer, TEXTS), logits_of(classifier.model, classifier.tokenizer, TEXTS)
    )
    copy = StanceClassifier.from_pretrained(
        classifier.save_pretrained(tmp_path / "copy"), device="cpu"
    )
    np.testing.assert_array_equal(copy.predict_proba(TEXTS), classifier.predict_proba(TEXTS))


def test_mean_head_takes_an_encoder_without_a_pooler_option(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    DistilBertModel(config).save_pretrained(tmp_path / "distil")
    AutoTokenizer.from_pretrained(tiny_backbone_dir).save_pretrained(tmp_path / "distil")
    model, tokenizer = build_model(str(tmp_path / "distil"), head="mean")
    assert type(model.encoder).__name__ == "DistilBertModel"
    assert model.classifier.in_features == 32
    # DistilBERT takes no token_type_ids, which its BERT tokenizer still returns.
    logits = logits_of(model, tokenizer, TEXTS[:2])
    assert logits.shape == (2, 3)


def test_cls_head_refuses_a_negstance_checkpoint_as_backbone(tiny_checkpoint_dir: Path) -> None:
    # The Auto classes would quietly rebuild the mean-pooling model instead.
    with pytest.raises(NegstanceError, match="fine-tune it with head=mean"):
        build_model(str(tiny_checkpoint_dir), head="cls")


def test_checkpoint_with_only_pickled_weights_is_refused(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "pickled"
    directory.mkdir()
    (directory / "config.json").write_text(
        (tiny_checkpoint_dir / "config.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (directory / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(NegstanceError, match="only pickled weights"):
        load_checkpoint(directory)


def test_device_names_are_checked_against_the_machine(monkeypatch) -> None:
    import torch

    from negstance.model.classifier import resolve_device

    with pytest.raises(NegstanceError, match="unsupported device 'meta'"):
        resolve_device("meta")
    with pytest.raises(NegstanceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NegstanceError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    # A one-GPU machine: cuda:1 would only fail later, inside torch, at model.to().
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(NegstanceError, match=r"only 1 CUDA GPU\(s\): use cuda:0 to cuda:N-1"):
        resolve_device("cuda:1")


def tiny_mpnet_backbone(directory: Path) -> Path:
    """A tiny random MPNetModel and an MPNet tokenizer, saved like a hub backbone."""
    from conftest import tiny_tokenizer
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    torch.manual_seed(0)
    vocab = tiny_tokenizer().get_vocab()
    tokenizer = MPNetTokenizerFast(vocab=vocab, do_lower_case=True)
    tokenizer.model_max_length = 128
    config = MPNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
    )
    MPNetModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("encoder", ["bert", "mpnet"])
def test_any_encoder_round_trips_through_all_three_loading_routes(
    encoder: str, tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    backbone = tiny_backbone_dir if encoder == "bert" else tiny_mpnet_backbone(tmp_path / "mp")
    model, tokenizer = build_model(str(backbone), head="mean")
    assert model.config.model_type == "negstance"
    assert model.config.encoder["model_type"] == encoder
    assert type(model.encoder).__name__ == ("BertModel" if encoder == "bert" else "MPNetModel")
    checkpoint = save_checkpoint(model, tokenizer, tmp_path / "checkpoint")

    classifier = StanceClassifier.from_pretrained(checkpoint, device="cpu")
    probabilities = classifier.predict_proba(TEXTS)
    auto_model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    assert isinstance(auto_model, NegstanceForSequenceClassification)
    np.testing.assert_allclose(
        torch.softmax(logits_of(auto_model, classifier.tokenizer, TEXTS), dim=-1).numpy(),
        probabilities,
        rtol=0,
        atol=1e-5,
    )
    classify = pipeline("text-classification", model=str(checkpoint), device="cpu")
    scored = classify(TEXTS, top_k=None, truncation=True)
    pipeline_probabilities = np.array(
        [[{e["label"]: e["score"] for e in row}[label] for label in LABELS] for row in scored]
    )
    np.testing.assert_allclose(pipeline_probabilities, probabilities, rtol=0, atol=1e-5)
    # The encoder's weights came from the backbone, not a fresh initialisation.
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(backbone).state_dict()
    loaded = auto_model.encoder.state_dict()
    assert loaded.keys() == {key for key in reference if not key.startswith("pooler.")}
    assert all(torch.equal(loaded[key], reference[key]) for key in loaded)


def test_a_backbone_saved_with_its_own_prefix_loads_every_encoder_weight(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    from conftest import tiny_bert_config, tiny_tokenizer
    from transformers import BertForMaskedLM

    torch.manual_seed(1)
    masked_lm = BertForMaskedLM(tiny_bert_config())  # keys `bert.…`, as hub checkpoints have
    masked_lm.save_pretrained(tmp_path / "mlm")
    tiny_tokenizer().save_pretrained(tmp_path / "mlm")
    model, _ = build_model(str(tmp_path / "mlm"), head="mean")
    reference = masked_lm.bert.state_dict()
    loaded = model.encoder.state_dict()
    assert all(torch.equal(loaded[key], reference[key]) for key in loaded)


def test_a_checkpoint_of_the_earlier_bert_only_format_says_to_retrain(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    import shutil

    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_checkpoint_dir, legacy)
    config = (legacy / "config.json").read_text(encoding="utf-8")
    (legacy / "config.json").write_text(
        config.replace('"model_type": "negstance"', '"model_type": "negstance_bert"'),
        encoding="utf-8",
    )
    with pytest.raises(NegstanceError, match=r"earlier negstance.*retrain it"):
        StanceClassifier.from_pretrained(legacy)


def test_a_negstance_checkpoint_as_backbone_keeps_its_encoder_and_gets_a_new_head(
    tiny_checkpoint_dir: Path,
) -> None:
    old, _ = load_checkpoint(tiny_checkpoint_dir)
    new, _ = build_model(str(tiny_checkpoint_dir), head="mean")
    assert torch.equal(
        new.encoder.embeddings.word_embeddings.weight, old.encoder.embeddings.word_embeddings.weight
    )
    assert not torch.equal(new.classifier.weight, old.classifier.weight)
