"""The training loop (``negstance.train.train``) on the tiny backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from sklearn.utils.class_weight import compute_class_weight

from negstance.model.errors import NegstanceError
from negstance.train import TrainResult, load_config, load_seed_dataset, train
from negstance.train.training import class_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_dataset() -> Dataset:
    """48 seed sentences, all three labels, fixed: enough to see the loss move."""
    return (
        load_seed_dataset(REPO / "data" / "seed_sentences.jsonl").shuffle(seed=0).select(range(48))
    )


def run_training(
    backbone: Path, output_dir: Path, dataset: Dataset | None, *overrides: str, save: bool = False
) -> TrainResult:
    config = load_config(
        None,
        [
            f"--model_name_or_path={backbone}",
            f"--output_dir={output_dir}",
            f"--data_path={REPO / 'data' / 'seed_sentences.jsonl'}",
            "--per_device_train_batch_size=16",
            "--no_progress",
            *overrides,
        ],
    )
    return train(config, train_dataset=dataset, save=save)


def weights(result: TrainResult) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in result.model.state_dict().items()}


# max_grad_norm=0 means "no clipping"; clipping to norm 0 would zero every gradient.
@pytest.mark.parametrize("max_grad_norm", ["1.0", "0"])
def test_a_few_epochs_lower_the_training_loss(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset, max_grad_norm: str
) -> None:
    result = run_training(
        tiny_backbone_dir,
        tmp_path / "run",
        small_dataset,
        "--num_train_epochs=6",
        "--learning_rate=3e-3",
        "--warmup_ratio=0",
        f"--max_grad_norm={max_grad_norm}",
    )
    losses = [epoch["train_loss"] for epoch in result.metrics["epochs"]]
    assert len(losses) == 6
    assert losses[-1] < 0.95 * losses[0], losses


def test_same_seed_gives_identical_weights_and_another_seed_does_not(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    arguments = ("--num_train_epochs=2", "--learning_rate=1e-3")
    first = weights(run_training(tiny_backbone_dir, tmp_path / "a", small_dataset, *arguments))
    second = weights(run_training(tiny_backbone_dir, tmp_path / "b", small_dataset, *arguments))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    other = weights(
        run_training(tiny_backbone_dir, tmp_path / "c", small_dataset, *arguments, "--seed=7")
    )
    assert not all(torch.equal(first[name], other[name]) for name in first)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_learning_rate_decays_linearly_to_zero_over_the_run(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset, accumulation: int
) -> None:
    result = run_training(
        tiny_backbone_dir,
        tmp_path / "run",
        small_dataset,
        "--num_train_epochs=2",
        "--learning_rate=1e-3",
        "--warmup_ratio=0",
        f"--gradient_accumulation_steps={accumulation}",
    )
    rates = [epoch["learning_rate"] for epoch in result.metrics["epochs"]]
    assert rates == pytest.approx([5e-4, 0.0], abs=1e-12)


def test_validation_docs_are_held_out_and_scored_every_epoch(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    full = load_seed_dataset(REPO / "data" / "seed_sentences.jsonl")
    held_doc = full["doc"][-1]
    result = run_training(
        tiny_backbone_dir,
        tmp_path / "run",
        None,
        "--num_train_epochs=1",
        f"--validation_docs={held_doc}",
    )
    held_count = full["doc"].count(held_doc)
    assert result.metrics["train_sentences"] == len(full) - held_count
    assert result.metrics["validation_sentences"] == held_count
    assert (
        sum(
            result.metrics["validation"]["per_label"][label]["support"]
            for label in ("favor", "against", "none")
        )
        == held_count
    )
    assert "validation_f_avg" in result.metrics["epochs"][0]


def test_saved_run_has_checkpoint_config_metrics_log_and_card(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    output_dir = tmp_path / "run"
    result = run_training(
        tiny_backbone_dir, output_dir, small_dataset, "--num_train_epochs=1", save=True
    )
    assert result.output_dir == output_dir
    for name in (
        "config.json",
        "model.safetensors",
        "config.yaml",
        "metrics.json",
        "train.log",
        "README.md",
    ):
        assert (output_dir / name).is_file(), name
    assert load_config(output_dir / "config.yaml") == load_config(
        None,
        [
            f"--model_name_or_path={tiny_backbone_dir}",
            f"--output_dir={output_dir}",
            f"--data_path={REPO / 'data' / 'seed_sentences.jsonl'}",
            "--per_device_train_batch_size=16",
            "--no_progress",
            "--num_train_epochs=1",
        ],
    )
    leftovers = [path.name for path in tmp_path.iterdir() if path.name != "run"]
    assert leftovers == []


def test_balanced_class_weights_match_scikit_learn() -> None:
    labels = [0, 0, 0, 1, 2, 2]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(class_weights(labels, "balanced").numpy(), expected, rtol=1e-6)
    assert class_weights(labels, "none") is None


def test_linear_probe_needs_the_mean_head(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    with pytest.raises(NegstanceError, match="linear_probe needs head=mean"):
        run_training(
            tiny_backbone_dir,
            tmp_path / "run",
            small_dataset,
            "--head=cls",
            "--head_init=linear_probe",
        )


@pytest.fixture()
def fresh_accelerator_state():
    """accelerate keeps one precision per process; give this test its own and clean up.

    ``_reset_state`` is accelerate's own reset for its test suite; only tests call it.
    """
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_model_trained_in_bf16_predicts_in_fp32_like_its_checkpoint(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset, fresh_accelerator_state
) -> None:
    from negstance.model.checkpoint import load_checkpoint

    output_dir = tmp_path / "run"
    result = run_training(
        tiny_backbone_dir,
        output_dir,
        small_dataset,
        "--num_train_epochs=1",
        "--mixed_precision=bf16",
        save=True,
    )
    assert result.metrics["mixed_precision"] == "bf16"
    loaded, tokenizer = load_checkpoint(output_dir)
    batch = tokenizer(small_dataset["text"][:8], padding=True, return_tensors="pt")
    with torch.inference_mode():
        # The trained model stays on the training device (a GPU where there is one).
        in_memory = result.model(**batch.to(result.model.device)).logits.cpu()
        from_disk = loaded.eval()(**batch).logits
    # Under training's leftover bf16 autocast the in-memory logits differed by ~5e-4.
    assert in_memory.dtype == torch.float32
    torch.testing.assert_close(in_memory, from_disk, rtol=0, atol=1e-6)


def test_a_second_precision_in_one_process_trains_in_that_precision(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset, fresh_accelerator_state
) -> None:
    # As in evaluate.py, where SetFit's own Trainer sets up accelerate without bf16
    # between two bf16 trainings of the model.
    first = ("--num_train_epochs=1", "--mixed_precision=no")
    run_training(tiny_backbone_dir, tmp_path / "a", small_dataset, *first)
    second = run_training(
        tiny_backbone_dir,
        tmp_path / "b",
        small_dataset,
        "--num_train_epochs=1",
        "--mixed_precision=bf16",
    )
    assert second.metrics["mixed_precision"] == "bf16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only without a GPU")
def test_fp16_without_a_gpu_is_refused_not_silently_fp32(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    with pytest.raises(NegstanceError, match="fp16 needs a CUDA GPU"):
        run_training(tiny_backbone_dir, tmp_path / "run", small_dataset, "--mixed_precision=fp16")


def test_checkpoint_truncates_at_inference_where_training_did(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    from transformers import pipeline

    from negstance.model import StanceClassifier

    output_dir = tmp_path / "run"
    run_training(
        tiny_backbone_dir,
        output_dir,
        small_dataset,
        "--num_train_epochs=1",
        "--max_length=16",
        save=True,
    )
    classifier = StanceClassifier.from_pretrained(output_dir, device="cpu")
    assert classifier.max_length == 16
    long_text = " ".join(["talks"] * 40)
    _, truncated = classifier.probabilities_and_truncation([long_text, "Talks resumed."])
    assert truncated == 1
    # The first 14 words plus [CLS] and [SEP] are the 16 tokens the model reads.
    cut = " ".join(["talks"] * 14)
    np.testing.assert_allclose(
        classifier.predict_proba(long_text), classifier.predict_proba(cut), atol=1e-6
    )
    assert pipeline("text-classification", model=str(output_dir)).tokenizer.model_max_length == 16


@pytest.mark.parametrize("present_labels", [[0, 1, 2], [0, 2]])
def test_linear_probe_head_reproduces_the_fitted_logistic_regression(
    tiny_backbone_dir: Path, small_dataset: Dataset, present_labels: list[int]
) -> None:
    from sklearn.linear_model import LogisticRegression

    from negstance.model.checkpoint import build_model
    from negstance.train.training import init_head_from_linear_probe, make_loader, tokenize

    dataset = small_dataset.filter(lambda row: row["label"] in present_labels)
    model, tokenizer = build_model(str(tiny_backbone_dir), head="mean")
    loader = make_loader(tokenize(dataset, tokenizer, 128), tokenizer, 64, False, 0)
    init_head_from_linear_probe(model, loader, "none", seed=0)
    batch = next(iter(loader))
    labels = batch.pop("labels").numpy()
    with torch.no_grad():
        model.eval()
        vectors = model.embed(**batch).numpy()
        probabilities = torch.softmax(model(**batch).logits, dim=-1).numpy()
    probe = LogisticRegression(max_iter=2000, random_state=0).fit(vectors, labels)
    np.testing.assert_allclose(
        probabilities[:, present_labels], probe.predict_proba(vectors), atol=1e-3
    )
    absent = sorted(set(range(3)) - set(present_labels))
    assert (probabilities[:, absent] < 1e-3).all()


def test_head_refit_makes_the_head_the_probe_of_the_fine_tuned_vectors(
    tiny_backbone_dir: Path, tmp_path: Path, small_dataset: Dataset
) -> None:
    from sklearn.linear_model import LogisticRegression

    from negstance.train.training import make_loader, tokenize

    arguments = ("--num_train_epochs=2", "--learning_rate=1e-3", "--class_weighting=balanced")
    refit = run_training(
        tiny_backbone_dir, tmp_path / "a", small_dataset, *arguments, "--head_refit=true"
    )
    plain = run_training(tiny_backbone_dir, tmp_path / "b", small_dataset, *arguments)
    refit_weights, plain_weights = weights(refit), weights(plain)
    # The encoder is trained the same way; only the head differs.
    encoder_names = [name for name in refit_weights if name.startswith("encoder.")]
    assert all(torch.equal(refit_weights[n], plain_weights[n]) for n in encoder_names)
    assert not torch.equal(refit_weights["classifier.weight"], plain_weights["classifier.weight"])

    model = refit.model.cpu().eval()
    loader = make_loader(
        tokenize(small_dataset, refit.tokenizer, 128), refit.tokenizer, 512, False, 0
    )
    batch = next(iter(loader))
    labels = batch.pop("labels").numpy()
    with torch.no_grad():
        vectors = model.embed(**batch).numpy()
        probabilities = torch.softmax(model(**batch).logits, dim=-1).numpy()
    probe = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=42)
    np.testing.assert_allclose(
        probabilities, probe.fit(vectors, labels).predict_proba(vectors), atol=1e-3
    )
