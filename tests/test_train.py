"""The training loop (``negstance.train.train``) on the tiny backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SEED_DATA
from datasets import Dataset
from sklearn.linear_model import LogisticRegression

from negstance.model.errors import NegstanceError
from negstance.train import TrainResult, load_config, load_seed_dataset, train
from negstance.train.training import class_weights, init_head_from_linear_probe, make_loader


@pytest.fixture(scope="module")
def small_dataset() -> Dataset:
    """48 seed sentences, all three labels, fixed: enough to see the loss move."""
    return load_seed_dataset(SEED_DATA).shuffle(seed=0).select(range(48))


def run_training(
    backbone: Path, output_dir: Path, dataset: Dataset | None, *overrides: str, save: bool = False
) -> TrainResult:
    arguments = [f"--model_name_or_path={backbone}", f"--output_dir={output_dir}"]
    arguments += [f"--data_path={SEED_DATA}", "--per_device_train_batch_size=16", "--no_progress"]
    return train(load_config(None, [*arguments, *overrides]), train_dataset=dataset, save=save)


def weights(result: TrainResult) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in result.model.state_dict().items()}


def probe_of(model: torch.nn.Module, loader, **options) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities and those of logistic regression fitted on its vectors."""
    batch = next(iter(loader))
    labels = batch.pop("labels").numpy()
    with torch.no_grad():
        model.eval()
        vectors = model.embed(**batch).numpy()
        probabilities = torch.softmax(model(**batch).logits, dim=-1).numpy()
    probe = LogisticRegression(max_iter=2000, **options).fit(vectors, labels)
    return probabilities, probe.predict_proba(vectors)


# max_grad_norm=0 means "no clipping"; clipping to norm 0 would zero every gradient.
@pytest.mark.parametrize(("max_grad_norm", "accumulation"), [("1.0", 1), ("0", 2)])
def test_the_loss_falls_and_the_learning_rate_decays_linearly_to_zero(
    tiny_backbone_dir, tmp_path, small_dataset, max_grad_norm, accumulation
) -> None:
    overrides = ["--num_train_epochs=6", "--learning_rate=3e-3", "--warmup_ratio=0"]
    overrides += [
        f"--max_grad_norm={max_grad_norm}",
        f"--gradient_accumulation_steps={accumulation}",
    ]
    epochs = run_training(tiny_backbone_dir, tmp_path, small_dataset, *overrides).metrics["epochs"]
    assert epochs[-1]["train_loss"] < 0.95 * epochs[0]["train_loss"], epochs
    expected = [3e-3 * (1 - epoch / 6) for epoch in range(1, 7)]
    assert [epoch["learning_rate"] for epoch in epochs] == pytest.approx(expected, abs=1e-12)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    arguments = ("--num_train_epochs=2", "--learning_rate=1e-3")
    first, second, other = (
        weights(run_training(tiny_backbone_dir, tmp_path, small_dataset, *arguments, seed))
        for seed in ("--seed=42", "--seed=42", "--seed=7")
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_saved_run_holds_out_validation_docs_and_truncates_where_training_did(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    from transformers import pipeline

    from negstance.model import StanceClassifier

    documents = list(load_seed_dataset(SEED_DATA)["doc"])
    held_doc, output_dir = documents[-1], tmp_path / "run"
    overrides = ("--num_train_epochs=1", "--max_length=16", f"--validation_docs={held_doc}")
    result = run_training(tiny_backbone_dir, output_dir, None, *overrides, save=True)
    metrics, held_count = result.metrics, documents.count(held_doc)
    assert metrics["train_sentences"] == len(documents) - held_count
    assert metrics["validation_sentences"] == held_count
    assert sum(map(sum, metrics["validation"]["confusion_matrix"])) == held_count
    assert "validation_f_avg" in metrics["epochs"][0]
    assert result.output_dir == output_dir
    names = {"config.json", "model.safetensors", "config.yaml", "metrics.json", "train.log"}
    assert names | {"README.md"} <= {path.name for path in output_dir.iterdir()}
    assert load_config(output_dir / "config.yaml").validation_docs == [held_doc]
    assert [path.name for path in tmp_path.iterdir()] == ["run"]  # no state, no staging

    classifier = StanceClassifier.from_pretrained(output_dir, device="cpu")
    long_text = " ".join(["talks"] * 40)
    _, truncated = classifier.probabilities_and_truncation([long_text, "Talks resumed."])
    assert truncated == 1
    # The first 14 words plus [CLS] and [SEP] are the 16 tokens the model reads.
    cut = classifier.predict_proba(" ".join(["talks"] * 14))
    np.testing.assert_allclose(classifier.predict_proba(long_text), cut, atol=1e-6)
    assert pipeline("text-classification", model=str(output_dir)).tokenizer.model_max_length == 16


def test_balanced_class_weights_leave_an_absent_label_at_zero() -> None:
    present = class_weights([0, 0, 0, 2], "balanced")
    assert present[1] == 0 and present[0] < present[2]
    assert class_weights([0, 1, 2, 2], "none") is None


def test_model_trained_in_bf16_predicts_in_fp32_like_its_checkpoint(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    from negstance.model.checkpoint import load_checkpoint

    # First in fp32, as evaluate.py's SetFit Trainer sets up accelerate between two bf16 runs.
    first = ("--num_train_epochs=1", "--mixed_precision=no")
    run_training(tiny_backbone_dir, tmp_path / "a", small_dataset, *first)
    overrides = ("--num_train_epochs=1", "--mixed_precision=bf16")
    result = run_training(tiny_backbone_dir, tmp_path / "b", small_dataset, *overrides, save=True)
    assert result.metrics["mixed_precision"] == "bf16"
    loaded, tokenizer = load_checkpoint(tmp_path / "b")
    batch = tokenizer(small_dataset["text"][:8], padding=True, return_tensors="pt")
    with torch.inference_mode():
        in_memory = result.model(**batch.to(result.model.device)).logits.cpu()
        from_disk = loaded.eval()(**batch).logits
    # Under training's leftover bf16 autocast the in-memory logits differed by ~5e-4.
    assert in_memory.dtype == torch.float32
    torch.testing.assert_close(in_memory, from_disk, rtol=0, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only without a GPU")
def test_fp16_without_a_gpu_is_refused_not_silently_fp32(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    with pytest.raises(NegstanceError, match="fp16"):
        run_training(tiny_backbone_dir, tmp_path, small_dataset, "--mixed_precision=fp16")


@pytest.mark.parametrize("present_labels", [[0, 1, 2], [0, 2]])
def test_linear_probe_head_reproduces_the_fitted_logistic_regression(
    tiny_backbone_dir: Path, small_dataset: Dataset, present_labels: list[int]
) -> None:
    from negstance.model.checkpoint import build_model

    dataset = small_dataset.filter(lambda row: row["label"] in present_labels)
    model, tokenizer = build_model(str(tiny_backbone_dir), head="mean")
    config = load_config(None, ["--seed=0"])
    loader = make_loader(dataset, tokenizer, config)
    init_head_from_linear_probe(model, loader, "none", seed=0)
    probabilities, expected = probe_of(model, loader, random_state=0)
    np.testing.assert_allclose(probabilities[:, present_labels], expected, atol=1e-3)
    absent = sorted(set(range(3)) - set(present_labels))
    assert (probabilities[:, absent] < 1e-3).all()


def test_head_refit_makes_the_head_the_probe_of_the_fine_tuned_vectors(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    arguments = ("--num_train_epochs=2", "--learning_rate=1e-3", "--class_weighting=balanced")
    refit, plain = (
        run_training(tiny_backbone_dir, tmp_path, small_dataset, *arguments, f"--head_refit={on}")
        for on in ("true", "false")
    )
    refit_weights, plain_weights = weights(refit), weights(plain)
    # The encoder is trained the same way; only the head differs.
    encoder_names = [name for name in refit_weights if name.startswith("encoder.")]
    assert all(torch.equal(refit_weights[n], plain_weights[n]) for n in encoder_names)
    assert not torch.equal(refit_weights["classifier.weight"], plain_weights["classifier.weight"])

    config = load_config(None, ["--per_device_eval_batch_size=512"])
    loader = make_loader(small_dataset, refit.tokenizer, config)
    options = {"class_weight": "balanced", "random_state": 42}
    probabilities, expected = probe_of(refit.model.cpu(), loader, **options)
    np.testing.assert_allclose(probabilities, expected, atol=1e-3)
