"""The labelling loop: scripts/label.py suggest, annotate, agree, merge; data_path lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, SEED_DATA, error_line, load_script

from negstance.model.errors import NegstanceError
from negstance.train import load_config, load_seed_dataset

PASS_A = REPO / "data" / "annotation" / "pass_a.jsonl"
PASS_B = REPO / "data" / "annotation" / "pass_b.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def train_script():
    return load_script("train")


# --------------------------------------------------------------------------- #
# Training on several data_path files
# --------------------------------------------------------------------------- #
def test_data_path_takes_a_comma_separated_list_or_a_yaml_list(tmp_path: Path) -> None:
    assert load_config(None, ["--data_path=a.jsonl,b.jsonl"]).data_path == ["a.jsonl", "b.jsonl"]
    # One path stays a string, verbatim (YAML would read 2025 as a number).
    assert load_config(None, ["--data_path=2025"]).data_path == "2025"
    config_file = tmp_path / "c.yaml"
    config_file.write_text("data_path:\n  - data/seed_sentences.jsonl\n  - new.jsonl\n")
    config = load_config(config_file)
    assert config.data_path == ["data/seed_sentences.jsonl", "new.jsonl"]
    assert "- new.jsonl" in config.to_yaml()  # the resolved config records both
    with pytest.raises(NegstanceError, match=r"data_path must be str \| list\[str\], got list"):
        load_config(None, {"data_path": [1, 2]})


def test_load_seed_dataset_concatenates_files_and_checks_ids_across_them(
    tmp_path: Path, seed_sentences: list[dict]
) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", seed_sentences[:100])
    second = write_jsonl(tmp_path / "second.jsonl", seed_sentences[100:])
    both = load_seed_dataset([first, second])
    assert both["id"] == [row["id"] for row in seed_sentences]
    assert both.features == load_seed_dataset(SEED_DATA).features
    with pytest.raises(NegstanceError, match=r"id '000-00' is also in .*first\.jsonl"):
        load_seed_dataset([first, write_jsonl(tmp_path / "again.jsonl", seed_sentences[:3])])
    # Rows without ids are numbered per file, so two such files do not collide.
    no_ids = [{"text": row["text"], "label": row["label"]} for row in seed_sentences[:4]]
    one = write_jsonl(tmp_path / "one.jsonl", no_ids[:2])
    two = write_jsonl(tmp_path / "two.jsonl", no_ids[2:])
    assert len(set(load_seed_dataset([one, two])["id"])) == 4
    assert load_seed_dataset(one)["id"] == ["line-1", "line-2"]  # one file: as before
    with pytest.raises(NegstanceError, match="data_path lists no files"):
        load_seed_dataset([])


def test_training_reads_several_data_path_files(
    train_script, tiny_train_args: list[str], tmp_path: Path, seed_sentences: list[dict]
) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", seed_sentences[:30])
    second = write_jsonl(tmp_path / "second.jsonl", seed_sentences[30:50])
    assert train_script.main([*tiny_train_args, f"--data_path={first},{second}"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["train_sentences"] == 50
    card = (run / "README.md").read_text(encoding="utf-8")
    assert f"`{first}`, `{second}`: 50" in card


def test_a_repeated_id_across_data_path_files_is_one_line_error(
    train_script, tiny_train_args: list[str], capsys
) -> None:
    line = error_line(
        train_script.main, [*tiny_train_args, f"--data_path={SEED_DATA},{SEED_DATA}"], capsys
    )
    assert f"id '000-00' is also in {SEED_DATA}" in line


# --------------------------------------------------------------------------- #
# StanceClassifier.embed: the sentence vectors behind "diverse"
# --------------------------------------------------------------------------- #
def test_embed_gives_the_heads_mean_pooled_vectors_in_input_order(tiny_checkpoint_dir) -> None:
    import numpy as np
    import torch
    from conftest import tiny_bert_config, tiny_tokenizer
    from transformers import BertForSequenceClassification

    from negstance.model import StanceClassifier

    classifier = StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu")
    texts = ["Talks resumed.", "Oil prices fell sharply on Monday after the report.", "Hi"]
    vectors = classifier.embed(texts, batch_size=2)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    one_by_one = np.stack([classifier.embed([text])[0] for text in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    np.testing.assert_allclose(classifier.embed(texts[::-1]), vectors[::-1], atol=1e-5)
    encoded = classifier.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        expected = classifier.model.embed(**encoded).numpy()
    np.testing.assert_allclose(vectors[:1], expected, atol=1e-5)
    assert classifier.embed([]).shape == (0, 32)
    # A stock [CLS]-head model has no embed(): the mean of its last hidden states.
    stock = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
    fallback = StanceClassifier(stock, tiny_tokenizer(), device="cpu")
    assert fallback.embed(texts).shape == (3, 32)
    assert not np.allclose(fallback.embed(texts)[0], fallback.embed(texts)[1])
