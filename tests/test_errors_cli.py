"""Bad input to train.py and predict.py: one line ``error: ...`` on stderr, exit status 2.

Every case runs the script's ``main(argv)`` (loaded by path, as a user runs it)
and checks the exact message; one test runs a script as a real process to see
the exit status and that no traceback is printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import error_line, load_script

REPO = Path(__file__).resolve().parents[1]


predict_script = load_script("predict")
train_script = load_script("train")


def make_input(tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_usage_errors_are_one_line(capsys):
    assert error_line(predict_script.main, ["--model", "m"], capsys) == (
        "error: the following arguments are required: --input, --output (see --help)"
    )
    argv = ["--model", "m", "--input", "i.txt", "--output", "o.jsonl", "--batch_size", "0"]
    assert error_line(predict_script.main, argv, capsys) == (
        "error: command line: batch_size must be at least 1, got 0"
    )


CONFIG_CASES = {
    "does not parse": (
        "learning_rate: 3e-5\nhead: [mean\n",
        [],
        "{config}, line 3: not valid YAML (expected ',' or ']', but got '<stream end>')",
    ),
    "not a mapping": ("- a\n- b\n", [], "{config}: expected a mapping of config keys"),
    "unknown key": (
        "learnig_rate: 3e-5\n",
        [],
        "{config}: unknown key 'learnig_rate' (did you mean 'learning_rate'?)",
    ),
    "wrong type": (
        "num_train_epochs: three\n",
        [],
        "{config}: num_train_epochs must be int, got str 'three'",
    ),
    "float epochs": (
        "num_train_epochs: 2.5\n",
        [],
        "{config}: num_train_epochs must be int, got float 2.5",
    ),
    "negative lr": (
        "learning_rate: -1e-5\n",
        [],
        "config: learning_rate must be positive and finite, got -1e-05",
    ),
    "zero batch size": (
        "",
        ["--per_device_train_batch_size=0"],
        "config: per_device_train_batch_size must be at least 1, got 0",
    ),
    "zero batch size in yaml": (
        "per_device_eval_batch_size: 0\n",
        [],
        "config: per_device_eval_batch_size must be at least 1, got 0",
    ),
    "bad choice": ("head: max\n", [], "config: head must be one of mean, cls, not 'max'"),
    "dropout out of range": (
        "classifier_dropout: 1.5\n",
        [],
        "config: classifier_dropout must be in [0, 1), got 1.5",
    ),
    "missing file": (None, [], "config file not found: {config}"),
    "unknown command-line key": ("", ["--epochs=3"], "unknown option --epochs"),
    "command-line wrong type": (
        "",
        ["--learning_rate=fast"],
        "command line: learning_rate must be float, got str 'fast'",
    ),
    "flag without value": (
        "",
        ["--learning_rate"],
        "--learning_rate needs a value: --learning_rate=VALUE",
    ),
    "stray argument": ("", ["epochs"], "expected --key=value, got 'epochs'"),
    "mistyped flag": (
        "",
        ["--overwrit"],
        "unknown option --overwrit (did you mean --overwrite?)",
    ),
    "linear probe on the cls head": (
        "head: cls\nhead_init: linear_probe\n",
        [],
        "config: head_init=linear_probe needs head=mean",
    ),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=list(CONFIG_CASES))
def test_train_rejects_bad_config(case, tiny_train_args, tmp_path, capsys):
    text, extra, expected = CONFIG_CASES[case]
    config = tmp_path / "config.yaml"
    if text is not None:
        config.write_text(text, encoding="utf-8")
    argv = ["--config", str(config), *tiny_train_args, *extra]
    line = error_line(train_script.main, argv, capsys)
    assert line.startswith("error: " + expected.format(config=config)), line


# --------------------------------------------------------------------------- #
# A real process: exit status and no traceback
# --------------------------------------------------------------------------- #
def test_scripts_exit_2_without_traceback_in_a_real_process(tiny_checkpoint_dir, tmp_path):
    source = make_input(tmp_path, "in.jsonl", '{"text": "ok"}\n{"text": \n')
    script = str(REPO / "scripts" / "predict.py")
    command = [sys.executable, script, "--model", str(tiny_checkpoint_dir), "--no_progress"]
    command += ["--input", str(source), "--output", str(tmp_path / "out.jsonl")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    assert (
        finished.stderr == f"error: {source}, line 2: invalid JSON (Expecting value at column 10)\n"
    )
    assert finished.stdout == ""
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_debug_keeps_the_traceback(tmp_path):
    from negstance.model.errors import NegstanceError

    source = tmp_path / "in.txt"
    argv = ["--model", str(tmp_path), "--input", str(source), "--output", str(tmp_path / "o.jsonl")]
    with pytest.raises(NegstanceError, match=re.escape(f"input file not found: {source}")):
        predict_script.main([*argv, "--debug"])
