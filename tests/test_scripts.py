"""``scripts/train.py`` and ``scripts/predict.py`` through ``main(argv)``, imported by path.

This is how transformers' examples are tested: the script module is loaded from
its file and its ``main`` called with an argument list, in-process.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

from negstance.model import LABELS, StanceClassifier
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
PROBABILITY_COLUMNS = [f"prob_{label}" for label in LABELS]


@pytest.fixture(scope="module")
def train_main() -> Callable[[list[str]], int]:
    return load_script("train").main


@pytest.fixture(scope="module")
def predict_main() -> Callable[[list[str]], int]:
    return load_script("predict").main


@pytest.fixture(scope="module")
def trained_run(tiny_backbone_dir: Path, tmp_path_factory, train_main) -> tuple[Path, list[str]]:
    """One short training run through ``scripts/train.py``; (output dir, its arguments)."""
    output_dir = tmp_path_factory.mktemp("script_train") / "run"
    arguments = [
        f"--model_name_or_path={tiny_backbone_dir}",
        f"--output_dir={output_dir}",
        f"--data_path={REPO / 'data' / 'seed_sentences.jsonl'}",
        "--num_train_epochs=2",
        "--per_device_train_batch_size=32",
        "--learning_rate=1e-3",
        "--no_progress",
    ]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_main(arguments) == 0
    finally:
        torch.set_num_threads(previous)
    return output_dir, arguments


@pytest.fixture(scope="module")
def expected_probabilities(trained_run: tuple[Path, list[str]]) -> np.ndarray:
    classifier = StanceClassifier.from_pretrained(trained_run[0], device="cpu", precision="fp32")
    return classifier.predict_proba(SENTENCES)


def test_train_script_writes_checkpoint_config_metrics_log_and_card(
    trained_run: tuple[Path, list[str]],
) -> None:
    output_dir, arguments = trained_run
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "config.yaml",
        "metrics.json",
        "train.log",
        "README.md",
    ):
        assert (output_dir / name).is_file(), name
    assert load_config(output_dir / "config.yaml") == load_config(None, arguments)
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_processes"] == 1
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == [1, 2]
    assert metrics["final_train_loss"] == metrics["epochs"][-1]["train_loss"]
    log = (output_dir / "train.log").read_text(encoding="utf-8")
    assert "1 process(es)" in log
    assert "epoch=2" in log
    assert "pipeline_tag: text-classification" in (output_dir / "README.md").read_text("utf-8")


def test_train_script_reads_a_yaml_config_and_lets_the_command_line_win(
    tiny_backbone_dir: Path, tmp_path: Path, train_main
) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text("num_train_epochs: 5\nlearning_rate: 1.0e-3\n", encoding="utf-8")
    output_dir = tmp_path / "run"
    arguments = [
        "--config",
        str(config_path),
        f"--model_name_or_path={tiny_backbone_dir}",
        f"--output_dir={output_dir}",
        "--num_train_epochs=1",
        "--per_device_train_batch_size=64",
        "--no_progress",
    ]
    assert train_main(arguments) == 0
    used = load_config(output_dir / "config.yaml")
    assert used.num_train_epochs == 1
    assert used.learning_rate == 1e-3


def test_train_script_bad_key_is_one_line_error_exit_2(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert train_main(["--lr=0.1", f"--output_dir={tmp_path / 'run'}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert "unknown option --lr" in error
    assert error.count("\n") == 1
    assert "Traceback" not in error
    assert not (tmp_path / "run").exists()


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def check_predictions(rows: list[dict], text_column: str, expected: np.ndarray) -> None:
    """Rows in input order, with label/score/probabilities matching StanceClassifier."""
    assert [row[text_column] for row in rows] == SENTENCES
    probabilities = np.array(
        [[float(row[column]) for column in PROBABILITY_COLUMNS] for row in rows]
    )
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=2e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    for row, probability_row in zip(rows, expected, strict=True):
        assert row["label"] == LABELS[int(probability_row.argmax())]
        assert float(row["score"]) == pytest.approx(float(probability_row.max()), abs=2e-6)


def write_input(tmp_path: Path, kind: str) -> tuple[Path, list[str]]:
    """An input file of ``kind`` holding SENTENCES, and the extra predict.py options it needs."""
    if kind == "txt":
        path = tmp_path / "input.txt"
        path.write_text("\n".join(SENTENCES), encoding="utf-8")  # no newline at the end
        return path, []
    if kind == "jsonl":
        path = tmp_path / "input.jsonl"
        rows = [
            {"id": f"s{index}", "text": text, "source": {"page": index}}
            for index, text in enumerate(SENTENCES)
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path, []
    path = tmp_path / "input.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sentence"])
        writer.writerows([f"s{index}", text] for index, text in enumerate(SENTENCES))
    return path, ["--text_column", "sentence"]


@pytest.mark.parametrize("output_kind", ["jsonl", "csv"])
@pytest.mark.parametrize("input_kind", ["txt", "jsonl", "csv"])
def test_predict_script_every_input_and_output_format(
    trained_run: tuple[Path, list[str]],
    expected_probabilities: np.ndarray,
    predict_main,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    input_kind: str,
    output_kind: str,
) -> None:
    input_path, options = write_input(tmp_path, input_kind)
    output_path = tmp_path / f"predictions.{output_kind}"
    status = predict_main(
        [
            "--model",
            str(trained_run[0]),
            "--input",
            str(input_path),
            "--output",
            str(output_path),
            "--batch_size",
            "2",  # several length-sorted batches
            "--precision",
            "fp32",
            "--no_progress",
            *options,
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert f"wrote {output_path}" in capsys.readouterr().out
    rows = read_output(output_path)
    text_column = "sentence" if input_kind == "csv" else "text"
    check_predictions(rows, text_column, expected_probabilities)
    if input_kind != "txt":
        assert [row["id"] for row in rows] == [f"s{index}" for index in range(len(SENTENCES))]
    if input_kind == "jsonl":
        carried = [row["source"] for row in rows]
        if output_kind == "csv":  # nested values are written as JSON text
            carried = [json.loads(value) for value in carried]
        assert carried == [{"page": index} for index in range(len(SENTENCES))]
    assert not list(tmp_path.glob("*.partial*"))


def test_predict_script_missing_text_column_is_one_line_error_exit_2(
    trained_run: tuple[Path, list[str]],
    predict_main,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    input_path, _ = write_input(tmp_path, "csv")
    output_path = tmp_path / "out.jsonl"
    status = predict_main(
        [
            "--model",
            str(trained_run[0]),
            "--input",
            str(input_path),
            "--output",
            str(output_path),
            "--no_progress",
        ]
    )
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("error: ") and error.count("\n") == 1
    assert "no 'text' column" in error
    assert not output_path.exists()


def test_bench_script_times_train_and_states_the_budget(
    tiny_backbone_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench_main = load_script("bench_train").main
    status = bench_main(
        [
            "--repeats",
            "2",
            f"--model_name_or_path={tiny_backbone_dir}",
            "--num_train_epochs=1",
            "--per_device_train_batch_size=64",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert output.count("s wall for train() (1 epochs x 153 sentences") == 2
    assert "sentences/s" in output
    assert "budget <= 180 s on a 2-core CPU: met" in output


def test_bench_script_rejects_bad_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script("bench_train").main(["--repeats", "0"]) == 2
    assert load_script("bench_train").main(["--lr=1"]) == 2
    assert capsys.readouterr().err.count("error: ") == 2


@pytest.mark.parametrize("name", ["train", "predict", "evaluate"])
def test_help_lists_debug(name: str, capsys) -> None:
    # --debug is taken out of argv before parsing, so only --help can tell users of it.
    try:
        status = load_script(name).main(["--help"])
    except SystemExit as exit_status:  # argparse's --help exits
        status = exit_status.code
    assert status == 0
    assert "--debug" in capsys.readouterr().out
