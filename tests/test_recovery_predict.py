"""An interrupted predict.py loses no finished row, and ``--resume`` writes the very bytes an
uninterrupted run writes; a resume by another command is refused."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEED_DATA, error_line, load_script, read_jsonl, write_jsonl

from negstance.model.classifier import StanceClassifier

predict_script = load_script("predict")


def prediction_input(tmp_path: Path, rows: int) -> Path:
    seeds = [row["text"] for row in read_jsonl(SEED_DATA)]
    texts = [seeds[index % len(seeds)] for index in range(rows)]
    texts[4] = ""  # empty rows must resume in step too
    # From row 6 on, records carry a field the first one lacks: a resumed CSV must keep
    # the header already on disk, not rebuild its columns from the first resumed row.
    records = [
        {"id": index, "text": text, "body": text} | ({"section": "world"} if index >= 6 else {})
        for index, text in enumerate(texts)
    ]
    return write_jsonl(tmp_path / "in.jsonl", records)


def interrupted(argv: list[str], at_batch: int, monkeypatch, capsys) -> str:
    """Run predict.py with ``argv``, sending Ctrl-C (SIGINT) during batch ``at_batch``."""
    classify, calls = StanceClassifier.classify_batch, []

    def classify_then_interrupt(self, *args):
        calls.append(1)
        if len(calls) == at_batch:
            signal.raise_signal(signal.SIGINT)
        return classify(self, *args)

    with monkeypatch.context() as patched:
        patched.setattr(StanceClassifier, "classify_batch", classify_then_interrupt)
        capsys.readouterr()
        assert predict_script.main(argv) == 130
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    "suffix, options, at_batch",
    [
        ("jsonl", ["--chunk_size", "4096"], 1),  # before a single row is finished
        ("jsonl", ["--chunk_size", "4096"], 20),  # mid-way through the first chunk
        ("csv", ["--chunk_size", "3"], 9),  # inside the fourth of many chunks
        ("tsv", ["--chunk_size", "4096", "--documents"], 12),
    ],
)
def test_an_interrupt_keeps_every_finished_row_and_resume_writes_the_same_bytes(
    suffix, options, at_batch, tiny_checkpoint_dir, tmp_path, monkeypatch, capsys
):
    source = prediction_input(tmp_path, 300)
    common = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    common += ["--batch_size", "8", "--precision", "fp32", *options]
    clean = tmp_path / f"clean.{suffix}"
    assert predict_script.main([*common, "--output", str(clean)]) == 0
    output = tmp_path / f"out.{suffix}"
    message = interrupted([*common, "--output", str(output)], at_batch, monkeypatch, capsys)

    partial = output.with_name(output.name + ".partial")
    progress = json.loads(output.with_name(output.name + ".partial.progress").read_text())
    written = partial.read_bytes()
    assert not output.exists() and clean.read_bytes().startswith(written)
    # Rows finished in input order are in the .partial; texts classified beyond them are
    # kept in its progress record: no classified batch is lost, and the message says so.
    kept = len((progress["pending"] or {"done": []})["done"])
    assert progress["rows"] + kept >= at_batch
    numbers = re.findall(r"\d+", message)
    assert str(progress["rows"]) in numbers and (kept == 0 or str(kept) in numbers)

    error_line(predict_script.main, [*common, "--output", str(output)], capsys)  # not started over
    assert partial.read_bytes() == written
    assert predict_script.main([*common, "--output", str(output), "--resume"]) == 0
    assert output.read_bytes() == clean.read_bytes()
    assert {path.name for path in tmp_path.iterdir()} == {clean.name, source.name, output.name}


def test_sigterm_stops_a_real_process_keeping_its_rows(tiny_checkpoint_dir, tmp_path):
    source = prediction_input(tmp_path, 300)
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    argv += ["--batch_size", "8", "--precision", "fp32"]
    clean, output = tmp_path / "clean.jsonl", tmp_path / "out.jsonl"
    assert predict_script.main([*argv, "--output", str(clean)]) == 0
    terminate_at_batch_15 = (
        "import os, signal, sys\n"
        "from negstance.model.classifier import StanceClassifier as S\n"
        "from negstance.model.cli import predict_main\n"
        "classify, calls = S.classify_batch, []\n"
        "def terminating(self, *args):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 15: os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return classify(self, *args)\n"
        "S.classify_batch = terminating\n"
        "sys.exit(predict_main(sys.argv[1:]))\n"
    )
    command = [sys.executable, "-c", terminate_at_batch_15, *argv, "--output", str(output)]
    process = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert process.returncode == 130, process.stderr[-2000:]
    assert output.with_name("out.jsonl.partial").exists() and not output.exists()
    assert predict_script.main([*argv, "--output", str(output), "--resume"]) == 0
    assert output.read_bytes() == clean.read_bytes()


def test_resume_without_partial_output_or_with_overwrite_is_refused(
    tiny_checkpoint_dir, tmp_path, capsys
):
    source = prediction_input(tmp_path, 11)
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert "out.jsonl.partial" in error_line(predict_script.main, [*argv, "--resume"], capsys)
    line = error_line(predict_script.main, [*argv, "--resume", "--overwrite"], capsys)
    assert "--resume" in line and "--overwrite" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


CHANGES = {
    "shorter input": "input size",
    "documents mode": "--documents",
    "encoding": "--encoding",
    "text column": "--text_column",
    "precision": "--precision",
    "model": "--model",
    "batch size": "--batch_size",
}


@pytest.mark.parametrize("change", CHANGES)
def test_resume_by_another_command_is_refused(
    change, tiny_checkpoint_dir, tmp_path, monkeypatch, capsys
):
    source = prediction_input(tmp_path, 11)
    output, clean = tmp_path / "out.jsonl", tmp_path / "clean.jsonl"
    model = ["--model", str(tiny_checkpoint_dir)]
    common = ["--input", str(source), "--no_progress", "--chunk_size", "3", "--batch_size", "2"]
    common += ["--precision", "fp32"]
    assert predict_script.main([*model, *common, "--output", str(clean)]) == 0
    interrupted([*model, *common, "--output", str(output)], 3, monkeypatch, capsys)
    state = [path.read_bytes() for path in sorted(tmp_path.glob("out.jsonl.*"))]

    extra = {"documents mode": ["--documents"], "encoding": ["--encoding", "latin-1"]}
    extra |= {"text column": ["--text_column", "body"], "precision": ["--precision", "int8"]}
    extra |= {"batch size": ["--batch_size", "3"]}
    changed = [*model, *common, "--output", str(output), "--resume", *extra.get(change, [])]
    if change == "shorter input":
        shutil.copy2(source, tmp_path / "full.jsonl")
        source.write_text("".join(source.read_text("utf-8").splitlines(True)[:8]), "utf-8")
    elif change == "model":
        changed[1] = str(shutil.copytree(tiny_checkpoint_dir, tmp_path / "other_model"))
    assert CHANGES[change] in error_line(predict_script.main, changed, capsys)
    # The refused resume leaves the interrupted run as it was, to be resumed properly.
    assert [path.read_bytes() for path in sorted(tmp_path.glob("out.jsonl.*"))] == state
    if change == "shorter input":
        shutil.copy2(tmp_path / "full.jsonl", source)  # the same bytes and modification time
    assert predict_script.main([*model, *common, "--output", str(output), "--resume"]) == 0
    assert output.read_bytes() == clean.read_bytes()
