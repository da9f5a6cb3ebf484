"""Bad input to train.py and predict.py: one line ``error: ...`` on stderr, exit status 2.

Every case runs the script's ``main(argv)`` (loaded by path, as a user runs it)
and checks the exact message; one test runs a script as a real process to see
the exit status and that no traceback is printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import error_line, load_script

REPO = Path(__file__).resolve().parents[1]


predict_script = load_script("predict")
train_script = load_script("train")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_evaluate_script_reports_errors_in_one_line(tmp_path, capsys):
    evaluate_script = load_script("evaluate")
    missing = tmp_path / "absent.yaml"
    assert error_line(evaluate_script.main, ["--config", str(missing)], capsys) == (
        f"error: config file not found: {missing}"
    )
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("seed: 1\n", encoding="utf-8")
    assert error_line(evaluate_script.main, ["--config", str(tmp_path / "configs")], capsys) == (
        f"error: config is a directory, not a YAML file: {tmp_path / 'configs'} "
        f"(e.g. {tmp_path / 'configs' / 'mine.yaml'})"
    )
    # A typo of evaluate.py's own option, not of a training key.
    assert error_line(evaluate_script.main, ["--quick", "--no_setfti"], capsys) == (
        "error: unknown option --no_setfti (did you mean --no_setfit?)"
    )
    # ...and a typo of a training key still suggests that key.
    assert error_line(evaluate_script.main, ["--quick", "--max_lenght=64"], capsys) == (
        "error: unknown option --max_lenght (did you mean --max_length?)"
    )


@pytest.mark.parametrize("backbone", ["absent", "pickled"])
def test_evaluate_refuses_a_bad_backbone_in_one_line(tiny_backbone_dir, tmp_path, capsys, backbone):
    # The frozen-embedding baseline loads the backbone before any training does, so it
    # must refuse what training refuses, with the same one-line errors.
    evaluate_script = load_script("evaluate")
    directory = tmp_path / backbone
    if backbone == "pickled":
        directory.mkdir()
        for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
            if (tiny_backbone_dir / name).is_file():
                (directory / name).write_bytes((tiny_backbone_dir / name).read_bytes())
        (directory / "pytorch_model.bin").write_bytes(b"pickle would run code")
    argv = ["--quick", "--no_setfit", f"--model_name_or_path={directory}"]
    argv += ["--output_dir", str(tmp_path / "report")]
    line = error_line(evaluate_script.main, argv, capsys)
    expected = "no such directory" if backbone == "absent" else "pickled weights"
    assert line.startswith(f"error: cannot load backbone '{directory}': ")
    assert expected in line
    assert not (tmp_path / "report").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without GPU")
def test_evaluate_checks_the_device_before_any_training(tmp_path, capsys, monkeypatch):
    import negstance.train.training as training

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before checking --device")

    monkeypatch.setattr(training, "train", must_not_train)
    evaluate_script = load_script("evaluate")
    argv = ["--quick", "--no_setfit", "--device", "cuda", "--output_dir", str(tmp_path / "r")]
    assert error_line(evaluate_script.main, argv, capsys) == (
        "error: device 'cuda' asked for, but no CUDA GPU is available"
    )
