"""``scripts/train.py`` through ``main(argv)``, imported by path as transformers' examples are
tested; one real process for the exit status and the traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, load_script, write_jsonl

from negstance.model.errors import NegstanceError
from negstance.train.config import load_config

train_main = load_script("train").main


def test_train_script_runs_a_yaml_config_with_overrides_on_several_files(
    tiny_checkpoint_dir, seed_sentences, tmp_path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("num_train_epochs: 5\nlearning_rate: 1.0e-3\n", encoding="utf-8")
    first = write_jsonl(tmp_path / "first.jsonl", seed_sentences[:30])
    second = write_jsonl(tmp_path / "second.jsonl", seed_sentences[30:50])
    output_dir = tmp_path / "run"
    # A negstance checkpoint as the backbone: its encoder, a new head.
    arguments = [f"--model_name_or_path={tiny_checkpoint_dir}", f"--output_dir={output_dir}"]
    arguments += [f"--data_path={first},{second}", "--num_train_epochs=2", "--no_progress"]
    assert train_main(["--config", str(config), *arguments]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train.log", "README.md"):
        assert (output_dir / name).is_file(), name
    used = load_config(output_dir / "config.yaml")
    assert used == load_config(config, arguments)
    assert (used.num_train_epochs, used.learning_rate) == (2, 1e-3)  # command line over YAML
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["num_processes"], metrics["train_sentences"]) == (1, 50)
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == [1, 2]
    saved = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    assert saved["pooling"] == "mean"
    assert saved["id2label"] == {"0": "favor", "1": "against", "2": "none"}


def test_a_script_exits_2_without_traceback_and_debug_keeps_it(tiny_checkpoint_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    argv = ["--model", str(tiny_checkpoint_dir), "--no_progress", "--input", str(source)]
    argv += ["--output", str(tmp_path / "out.jsonl")]
    command = [sys.executable, str(REPO / "scripts" / "predict.py"), *argv]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2 and finished.stdout == ""
    assert finished.stderr.startswith("error: ") and finished.stderr.count("\n") == 1
    assert str(source) in finished.stderr and "2" in finished.stderr  # the file and its line
    assert not list(tmp_path.glob("out.jsonl*"))
    with pytest.raises(NegstanceError):
        load_script("predict").main([*argv, "--debug"])


def test_bench_train_times_train_and_refuses_bad_options(tiny_backbone_dir, capsys) -> None:
    bench_main = load_script("bench_train").main
    options = [f"--model_name_or_path={tiny_backbone_dir}", "--num_train_epochs=1"]
    assert bench_main(["--repeats", "2", *options, "--per_device_train_batch_size=64"]) == 0
    assert capsys.readouterr().out.count("s wall for train()") == 2
    assert bench_main(["--repeats", "0"]) == 2
    assert bench_main(["--lr=1"]) == 2
    assert capsys.readouterr().err.count("error: ") == 2
