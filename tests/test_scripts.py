"""``scripts/train.py`` and ``scripts/predict.py`` through ``main(argv)``, imported by path, as
transformers' examples are tested; one real process for the exit status and the traceback."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from negstance.model import LABELS, StanceClassifier
from negstance.model.errors import NegstanceError
from negstance.train.config import load_config

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "The Kremlin said Putin is ready for talks without preconditions.",
    "Kyiv rejected the proposal outright.",
    "Oil prices fell on Tuesday.",
    "Zelensky said any deal must include security guarantees from the West, and that "
    "Ukraine would never accept the loss of its territory, whatever Washington proposes.",
    "Peace now?",
]
train_main, predict_main = load_script("train").main, load_script("predict").main


@pytest.fixture(scope="module")
def trained_run(tiny_backbone_dir: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    """One short training run through ``scripts/train.py``; (output dir, its arguments)."""
    output_dir = tmp_path_factory.mktemp("script_train") / "run"
    arguments = [
        f"--model_name_or_path={tiny_backbone_dir}",
        f"--output_dir={output_dir}",
        "--num_train_epochs=2",
        "--per_device_train_batch_size=32",
        "--learning_rate=1e-3",
        "--no_progress",
    ]
    assert train_main(arguments) == 0
    return output_dir, arguments


def test_train_script_writes_checkpoint_config_metrics_log_and_card(trained_run) -> None:
    output_dir, arguments = trained_run
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train.log", "README.md"):
        assert (output_dir / name).is_file(), name
    assert load_config(output_dir / "config.yaml") == load_config(None, arguments)
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_processes"] == 1
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == [1, 2]


def test_train_script_reads_a_yaml_config_and_lets_the_command_line_win(
    tiny_backbone_dir: Path, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text("num_train_epochs: 5\nlearning_rate: 1.0e-3\n", encoding="utf-8")
    output_dir = tmp_path / "run"
    options = [f"--model_name_or_path={tiny_backbone_dir}", f"--output_dir={output_dir}"]
    options += ["--num_train_epochs=1", "--per_device_train_batch_size=64", "--no_progress"]
    assert train_main(["--config", str(config_path), *options]) == 0
    used = load_config(output_dir / "config.yaml")
    assert (used.num_train_epochs, used.learning_rate) == (1, 1e-3)


@pytest.mark.parametrize(
    ("yaml_text", "extra", "named"),
    [
        ("learnig_rate: 3e-5\n", [], "config.yaml"),
        ("head: [mean\n", [], "config.yaml"),
        ("head: cls\nhead_init: linear_probe\n", [], "head_init"),
        ("", ["--overwrit"], "--overwrit"),
        ("", ["epochs"], "epochs"),
    ],
)
def test_train_script_mistakes_are_one_line_and_write_nothing(
    tmp_path: Path, capsys, yaml_text: str, extra: list[str], named: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    argv = ["--config", str(config), f"--output_dir={tmp_path / 'run'}", *extra]
    assert train_main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and named in error
    assert not (tmp_path / "run").exists()


def write_input(tmp_path: Path, kind: str) -> tuple[Path, list[str]]:
    """An input file of ``kind`` holding SENTENCES, and the extra predict.py options it needs."""
    path = tmp_path / f"input.{kind}"
    if kind == "txt":
        path.write_text("\n".join(SENTENCES), encoding="utf-8")  # no newline at the end
        return path, []
    if kind == "jsonl":
        rows = [
            {"id": f"s{i}", "text": text, "source": {"page": i}} for i, text in enumerate(SENTENCES)
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path, []
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(
            [["id", "sentence"], *([f"s{i}", t] for i, t in enumerate(SENTENCES))]
        )
    return path, ["--text_column", "sentence"]


@pytest.mark.parametrize(
    ("input_kind", "output_kind"), [("txt", "csv"), ("jsonl", "csv"), ("csv", "jsonl")]
)
def test_predict_script_reads_and_writes_every_format_in_input_order(
    trained_run, tmp_path: Path, capsys, input_kind: str, output_kind: str
) -> None:
    input_path, options = write_input(tmp_path, input_kind)
    output_path = tmp_path / f"predictions.{output_kind}"
    argv = [
        "--model",
        str(trained_run[0]),
        "--input",
        str(input_path),
        "--output",
        str(output_path),
    ]
    argv += ["--batch_size", "2", "--precision", "fp32", "--no_progress", *options]
    assert predict_main(argv) == 0, capsys.readouterr().err
    if output_kind == "jsonl":
        rows = [json.loads(line) for line in output_path.read_text(encoding="utf-8").splitlines()]
    else:
        with output_path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    assert [row["sentence" if input_kind == "csv" else "text"] for row in rows] == SENTENCES
    expected = StanceClassifier.from_pretrained(trained_run[0], device="cpu").predict_proba(
        SENTENCES
    )
    found = np.array([[float(row[f"prob_{label}"]) for label in LABELS] for row in rows])
    np.testing.assert_allclose(found, expected, atol=2e-6)
    assert [row["label"] for row in rows] == [LABELS[i] for i in expected.argmax(axis=1)]
    if input_kind == "jsonl":  # other fields are carried through (nested ones as JSON in a CSV)
        assert [json.loads(row["source"]) for row in rows] == [{"page": i} for i in range(5)]
    assert not list(tmp_path.glob("*.partial*"))


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
        predict_main([*argv, "--debug"])


def test_bench_train_times_train_and_refuses_bad_options(tiny_backbone_dir: Path, capsys) -> None:
    bench_main = load_script("bench_train").main
    options = [f"--model_name_or_path={tiny_backbone_dir}", "--num_train_epochs=1"]
    assert bench_main(["--repeats", "2", *options, "--per_device_train_batch_size=64"]) == 0
    assert capsys.readouterr().out.count("s wall for train()") == 2
    assert bench_main(["--repeats", "0"]) == 2
    assert bench_main(["--lr=1"]) == 2
    assert capsys.readouterr().err.count("error: ") == 2
