"""predict.py on files a user gets wrong: one ``error:`` line naming the file (and line), exit
status 2, the input untouched and nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import error_line, load_script

predict_script = load_script("predict")


def run(checkpoint: Path, source: Path, output: Path, capsys, *options: str) -> str:
    argv = ["--model", str(checkpoint), "--input", str(source), "--output", str(output)]
    return error_line(predict_script.main, [*argv, "--no_progress", *options], capsys)


# name, content (None: a directory), the line named (None: no line), extra options
INPUT_CASES = {
    "missing": ("in.txt", ..., None, []),
    "directory": ("folder.txt", None, None, []),
    "unsupported type": ("in.pdf", "Talks.", None, []),
    "empty": ("in.txt", "", None, []),
    "blank lines only": ("in.txt", "\n  \n\t\n", None, []),
    "blank jsonl": ("in.jsonl", "\n\n", None, []),
    "malformed jsonl": ("in.jsonl", '{"text": "Talks."}\n{"text": "Peace, now\n', 2, []),
    "jsonl without text field": ("in.jsonl", '{"text": "Talks."}\n{"sentence": "x"}\n', 2, []),
    "jsonl non-string text": ("in.jsonl", '{"text": "Talks."}\n\n{"text": 42}\n', 3, []),
    "json array": ("in.json", '[{"text": "Talks."},\n {"text": "Oil fell."}]\n', 1, []),
    "csv without text column": ("in.csv", "id,sentence\n1,Talks resumed.\n", None, []),
    "csv header without rows": ("in.csv", "id,text\n", None, []),
    "csv unquoted comma": ("in.csv", "id,text\n1,Talks.\n2,Talks resumed, they said\n", 3, []),
    "csv quote never closed": ("in.csv", 'id,text\n1,"open\n2,x\n', 3, []),
    "csv text after a quote": ("in.csv", 'id,text\n1,"Talks" resumed\n', 2, []),
    "not utf-8": ("in.txt", "Talks.\nOil fell.\nKyiv caf\xe9.\n".encode("latin-1"), 3, []),
    "bad utf-16": (
        "in.txt",
        "Talks.\nOil.\n".encode("utf-16") + b"\x00\xd8",
        3,
        ["--encoding", "utf-16"],
    ),
    "unknown encoding": ("in.txt", "Talks.\n", None, ["--encoding", "klingon"]),
}


@pytest.mark.parametrize("case", INPUT_CASES)
def test_bad_input_is_one_line_naming_the_file_and_line(
    case, tiny_checkpoint_dir, tmp_path, capsys
):
    name, content, line_number, options = INPUT_CASES[case]
    source = tmp_path / name
    if content is None:
        source.mkdir()
    elif isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not ...:
        source.write_text(content, encoding="utf-8")
    line = run(tiny_checkpoint_dir, source, tmp_path / "out.jsonl", capsys, *options)
    noun = "klingon" if case == "unknown encoding" else str(source)
    assert noun in line
    if line_number is not None:
        assert f"line {line_number}" in line
    # Bad input found before the first row leaves nothing behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ([] if content is ... else [name])


def broken_checkpoint(kind: str, good: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    if kind == "a file":
        directory.write_text("not a directory", encoding="utf-8")
    elif kind == "not a checkpoint":
        directory.mkdir()
        (directory / "notes.txt").write_text("hello", encoding="utf-8")
    elif kind != "missing":
        shutil.copytree(good, directory)
    config_path, weights = directory / "config.json", directory / "model.safetensors"
    if kind in ("no label mapping", "other labels"):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        del config["id2label"], config["label2id"]
        if kind == "other labels":
            config |= {"label2id": {"pos": 0, "neg": 1}, "id2label": {"0": "pos", "1": "neg"}}
        config_path.write_text(json.dumps(config))
    if kind == "earlier bert-only format":
        config_path.write_text(config_path.read_text().replace('"negstance"', '"negstance_bert"'))
    elif kind == "truncated weights":
        with weights.open("r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif kind == "only pytorch_model.bin":
        weights.rename(directory / "pytorch_model.bin")
    return directory


MODEL_CASES = ["missing", "a file", "not a checkpoint", "no label mapping", "other labels"]
MODEL_CASES += ["earlier bert-only format", "truncated weights", "only pytorch_model.bin"]


@pytest.mark.parametrize("kind", MODEL_CASES)
def test_a_bad_model_is_one_line_naming_it(kind, tiny_checkpoint_dir, tmp_path, capsys):
    model = broken_checkpoint(kind, tiny_checkpoint_dir, tmp_path)
    source = tmp_path / "in.txt"
    source.write_text("Talks resumed.\n", encoding="utf-8")
    assert str(model) in run(model, source, tmp_path / "o.jsonl", capsys)
    assert not list(tmp_path.glob("o.jsonl*"))


# output (relative to tmp_path), the noun the error names
OUTPUT_CASES = {
    "parent is a file": ("notes.txt/out.jsonl", "notes.txt"),
    "missing directory": ("no/such/out.jsonl", "no/such"),
    "output is a directory": ("outdir.jsonl", "outdir.jsonl"),
    "unsupported type": ("out.xlsx", "out.xlsx"),
    "json": ("out.json", "out.json"),
    "exists": ("old.jsonl", "old.jsonl"),
}


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_an_output_that_cannot_be_written_is_refused(case, tiny_checkpoint_dir, tmp_path, capsys):
    relative, noun = OUTPUT_CASES[case]
    (tmp_path / "notes.txt").write_text("a file", encoding="utf-8")
    (tmp_path / "outdir.jsonl").mkdir()
    (tmp_path / "old.jsonl").write_text("precious\n", encoding="utf-8")
    source = tmp_path / "in.txt"
    source.write_text("Talks resumed.\n", encoding="utf-8")
    assert noun in run(tiny_checkpoint_dir, source, tmp_path / relative, capsys)
    assert (tmp_path / "old.jsonl").read_text(encoding="utf-8") == "precious\n"
    assert len(list(tmp_path.rglob("*"))) == 4


def test_an_existing_output_is_replaced_with_overwrite(tiny_checkpoint_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("Talks resumed.\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    output.write_text("precious\n", encoding="utf-8")
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert predict_script.main([*argv, "--no_progress", "--overwrite"]) == 0
    assert json.loads(output.read_text(encoding="utf-8"))["text"] == "Talks resumed."


@pytest.mark.parametrize("spelling", ["same path", "another spelling", "hard link"])
def test_the_input_file_cannot_be_the_output(spelling, tiny_checkpoint_dir, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    original = json.dumps({"id": 1, "text": "Talks resumed."}) + "\n"
    source.write_text(original, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    output = {"same path": source, "another spelling": tmp_path / "sub" / ".." / "in.jsonl"}.get(
        spelling, tmp_path / "linked.jsonl"
    )
    if spelling == "hard link":
        os.link(source, output)
    for extra in (["--overwrite"], []):
        # Without --overwrite too: "output exists, pass --overwrite" would mislead.
        line = run(tiny_checkpoint_dir, source, output, capsys, *extra)
        assert str(output) in line and "input" in line
    assert source.read_text(encoding="utf-8") == original
    assert not list(tmp_path.glob("*.partial"))
