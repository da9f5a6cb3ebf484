"""The checkpoint format and its loading routes, on tiny random encoders; what is never loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SEED_DATA, raises_one_line, tiny_bert_config, tiny_tokenizer
from transformers import AutoModel, AutoModelForSequenceClassification, pipeline

from negstance.model import LABELS, NegstanceForSequenceClassification, StanceClassifier
from negstance.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from negstance.model.errors import NegstanceError

# Lengths from 1 to ~90 tokens, so length sorting reorders them and batches need padding.
TEXTS = [
    "Talks.",
    "Russia and Ukraine agreed to meet in Istanbul next week to discuss a ceasefire, " * 4,
    "Kyiv rejected the proposal.",
    "The Kremlin said Putin is ready for talks without preconditions.",
    "Peace now?",
    "Zelensky said any deal must include security guarantees from the West.",
]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint_dir: Path) -> StanceClassifier:
    return StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu")


def logits_of(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return model.eval()(**batch).logits


# Batch order and bad texts: test_predict.py.
def test_predictions_follow_the_labels(classifier: StanceClassifier) -> None:
    assert classifier.labels == list(LABELS) == ["favor", "against", "none"]
    probabilities = classifier.predict_proba(TEXTS, batch_size=2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert classifier.predict(TEXTS) == [LABELS[i] for i in probabilities.argmax(axis=1)]
    assert isinstance(classifier.predict(TEXTS[0]), str)
    assert classifier.predict([]) == [] and classifier.predict_proba([]).shape == (0, 3)


def test_device_names_are_checked_against_the_machine(monkeypatch) -> None:
    from negstance.model.classifier import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    # On a one-GPU machine, cuda:1 would only fail later, inside torch, at model.to().
    for bad, gpus in [("meta", 0), ("gpu0", 0), ("cuda", 0), ("cuda:1", 1)]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda gpus=gpus: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda gpus=gpus: gpus)
        with pytest.raises(NegstanceError, match=bad):
            resolve_device(bad)
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def assert_three_routes_agree(checkpoint: Path, texts: list[str], atol: float) -> torch.nn.Module:
    """StanceClassifier, AutoModelForSequenceClassification and pipeline give the same
    probabilities and labels; returns the Auto model."""
    classifier = StanceClassifier.from_pretrained(checkpoint, device="cpu", precision="fp32")
    probabilities = classifier.predict_proba(texts, batch_size=2)
    auto_model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    assert isinstance(auto_model, NegstanceForSequenceClassification)
    auto_logits = logits_of(auto_model, classifier.tokenizer, texts)
    np.testing.assert_allclose(torch.softmax(auto_logits, dim=-1), probabilities, atol=atol)
    classify = pipeline("text-classification", model=str(checkpoint), device="cpu")
    scored = classify(texts, top_k=None, truncation=True)
    by_label = [{entry["label"]: entry["score"] for entry in row} for row in scored]
    from_pipeline = [[row[label] for label in LABELS] for row in by_label]
    np.testing.assert_allclose(from_pipeline, probabilities, rtol=0, atol=atol)
    assert [row["label"] for row in classify(texts)] == classifier.predict(texts)
    return auto_model


def tiny_mpnet_backbone(directory: Path) -> Path:
    """A tiny random MPNetModel and an MPNet tokenizer, saved like a hub backbone."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    torch.manual_seed(0)
    tokenizer = MPNetTokenizerFast(vocab=tiny_tokenizer().get_vocab(), do_lower_case=True)
    tokenizer.model_max_length = 128
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config = MPNetConfig(vocab_size=len(tokenizer), max_position_embeddings=130, **sizes)
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
    checkpoint = save_checkpoint(model, tokenizer, tmp_path / "checkpoint")

    auto_model = assert_three_routes_agree(checkpoint, TEXTS, atol=1e-5)
    # The encoder's weights came from the backbone, not a fresh initialisation.
    reference = AutoModel.from_pretrained(backbone).state_dict()
    loaded = auto_model.encoder.state_dict()
    assert loaded.keys() == {key for key in reference if not key.startswith("pooler.")}
    assert all(torch.equal(loaded[key], reference[key]) for key in loaded)


def test_cls_head_is_a_stock_bert_checkpoint_that_round_trips(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    from transformers import BertForSequenceClassification

    model, tokenizer = build_model(str(tiny_backbone_dir), head="cls")
    directory = save_checkpoint(model, tokenizer, tmp_path / "cls")
    classifier = StanceClassifier.from_pretrained(directory, device="cpu")
    assert type(classifier.model) is BertForSequenceClassification
    assert classifier.labels == list(LABELS)
    expected = logits_of(model, tokenizer, TEXTS)
    assert torch.equal(expected, logits_of(classifier.model, classifier.tokenizer, TEXTS))
    copy = StanceClassifier.from_pretrained(classifier.save_pretrained(tmp_path / "copy"))
    np.testing.assert_array_equal(copy.predict_proba(TEXTS), classifier.predict_proba(TEXTS))


def test_an_encoder_without_pooler_option_or_under_its_own_prefix_loads(tmp_path: Path) -> None:
    from transformers import BertForMaskedLM, DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    torch.manual_seed(1)
    masked_lm = BertForMaskedLM(tiny_bert_config())  # keys `bert.…`, as hub checkpoints have
    for name, encoder in (("distil", DistilBertModel(config)), ("mlm", masked_lm)):
        encoder.save_pretrained(tmp_path / name)
        tiny_tokenizer().save_pretrained(tmp_path / name)
    model, tokenizer = build_model(str(tmp_path / "distil"), head="mean")
    # DistilBERT takes no token_type_ids, which its BERT tokenizer still returns.
    assert logits_of(model, tokenizer, TEXTS[:2]).shape == (2, 3)
    model, _ = build_model(str(tmp_path / "mlm"), head="mean")
    reference, loaded = masked_lm.bert.state_dict(), model.encoder.state_dict()
    assert all(torch.equal(loaded[key], reference[key]) for key in loaded)


def test_a_negstance_checkpoint_as_backbone_keeps_its_encoder_and_gets_a_new_head(
    tiny_checkpoint_dir: Path,
) -> None:
    old, _ = load_checkpoint(tiny_checkpoint_dir)
    new, _ = build_model(str(tiny_checkpoint_dir), head="mean")
    embeddings = "embeddings.word_embeddings.weight"
    assert torch.equal(new.encoder.state_dict()[embeddings], old.encoder.state_dict()[embeddings])
    assert not torch.equal(new.classifier.weight, old.classifier.weight)
    # The Auto classes would quietly rebuild the mean-pooling model instead of a [CLS] head.
    with pytest.raises(NegstanceError, match="head=mean"):
        build_model(str(tiny_checkpoint_dir), head="cls")


# A bad checkpoint: test_errors_predict.py.
def test_a_backbone_with_only_pickled_weights_is_refused_unread(
    tiny_backbone_dir, tmp_path, monkeypatch
) -> None:
    from safetensors.torch import load_file

    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_backbone_dir, backbone)
    torch.save(load_file(backbone / "model.safetensors"), backbone / "pytorch_model.bin")
    (backbone / "model.safetensors").unlink()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    for head in ("mean", "cls"):
        raises_one_line(lambda head=head: build_model(str(backbone), head=head), str(backbone))
    raises_one_line(lambda: build_model(str(tmp_path / "nowhere")), "nowhere")


def test_weights_never_come_from_pickle_or_remote_code(tiny_checkpoint_dir, tmp_path, monkeypatch):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint_dir, checkpoint)
    marker = tmp_path / "code-ran"
    # A pickle and remote code beside the safetensors weights: neither may run.
    (checkpoint / "pytorch_model.bin").write_bytes(b"not even a valid pickle")
    (checkpoint / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from negstance.model.network import NegstanceForSequenceClassification as Evil\n",
        encoding="utf-8",
    )
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.Evil"}
    (checkpoint / "config.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    classifier = StanceClassifier.from_pretrained(checkpoint, device="cpu")
    assert classifier.predict("Talks resumed.") in LABELS
    assert not marker.exists()


@pytest.mark.integration
def test_minilm_trains_offline_and_three_prediction_routes_agree(tmp_path, monkeypatch) -> None:
    """The real packaged all-MiniLM-L6-v2 with the network cut; mpnet: test_backbones.py."""
    import socket

    from negstance.train import load_config, train

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    overrides = [f"--data_path={SEED_DATA}", "--no_progress"]
    overrides += [f"--output_dir={tmp_path / 'run'}", "--num_train_epochs=1"]
    result = train(load_config(REPO / "configs" / "minilm.yaml", overrides))
    assert result.metrics["train_sentences"] == 153
    assert np.isfinite(result.metrics["final_train_loss"])
    assert_three_routes_agree(result.output_dir, TEXTS, atol=1e-4)
