"""Nothing is lost and nothing unsafe is loaded.

* checkpoints are replaced whole or not at all, even when the save is killed;
* an interrupted predict.py continues with ``--resume`` to the very bytes an
  uninterrupted run writes;
* an interrupted train.py continues with ``--resume_from`` to the very weights
  an uninterrupted run reaches;
* weights load from safetensors only, without remote code or network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import load_script

from negstance.model.classifier import StanceClassifier

REPO = Path(__file__).resolve().parents[1]


predict_script = load_script("predict")
train_script = load_script("train")


# --------------------------------------------------------------------------- #
# predict.py --resume
# --------------------------------------------------------------------------- #
def prediction_input(tmp_path: Path) -> Path:
    texts = [f"Delegation {index} said talks could resume next week." for index in range(11)]
    texts[4] = ""  # empty rows must resume in step too
    source = tmp_path / "in.jsonl"
    # From row 6 on, records carry a field the first one lacks: a resumed CSV must keep
    # the header already on disk, not rebuild its columns from the first resumed row.
    records = [
        {"id": index, "text": text} | ({"section": "world"} if index >= 6 else {})
        for index, text in enumerate(texts)
    ]
    source.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return source


@pytest.mark.parametrize("output_format", ["jsonl", "csv", "tsv"])
@pytest.mark.parametrize("interruption", ["between chunks", "inside a chunk"])
def test_interrupted_prediction_resumes_to_identical_output(
    output_format, interruption, tiny_checkpoint_dir, tmp_path, monkeypatch, capsys
):
    from negstance.model.io import OutputWriter

    source = prediction_input(tmp_path)
    common = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--no_progress"]
    common += ["--chunk_size", "3", "--batch_size", "2"]
    clean = tmp_path / f"clean.{output_format}"
    assert predict_script.main([*common, "--output", str(clean)]) == 0

    output = tmp_path / f"out.{output_format}"
    calls = {"count": 0}
    if interruption == "between chunks":
        classify = StanceClassifier.probabilities_and_truncation

        def interrupted_classify(self, *args, **kwargs):
            calls["count"] += 1
            if calls["count"] == 3:  # chunks 1 and 2 (rows 0-5) are written
                raise KeyboardInterrupt
            return classify(self, *args, **kwargs)

        monkeypatch.setattr(StanceClassifier, "probabilities_and_truncation", interrupted_classify)
    else:
        write = OutputWriter.write

        def interrupted_write(self, row):
            calls["count"] += 1
            if calls["count"] == 9:  # rows 6 and 7 are written, but not checkpointed
                raise KeyboardInterrupt
            write(self, row)

        monkeypatch.setattr(OutputWriter, "write", interrupted_write)
    capsys.readouterr()
    assert predict_script.main([*common, "--output", str(output)]) == 130
    assert "interrupted: partial output kept; rerun with --resume" in capsys.readouterr().err
    assert not output.exists()
    partial = output.with_name(output.name + ".partial")
    progress = json.loads(output.with_name(output.name + ".partial.progress").read_text())
    assert progress["rows"] == 6
    if interruption == "inside a chunk":  # unrecorded rows on disk, to be cut on resume
        assert partial.stat().st_size > progress["bytes"]
    monkeypatch.undo()

    assert predict_script.main([*common, "--output", str(output)]) == 2
    assert "pass --resume to continue it or --overwrite to start over" in capsys.readouterr().err

    assert predict_script.main([*common, "--output", str(output), "--resume"]) == 0
    assert "resumed after row 6" in capsys.readouterr().out
    assert output.read_bytes() == clean.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["in.jsonl", clean.name, output.name]
    )


def test_resume_without_partial_output_is_refused(tiny_checkpoint_dir, tmp_path, capsys):
    source = prediction_input(tmp_path)
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert predict_script.main([*argv, "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"error: nothing to resume: no out.jsonl.partial beside {output} (run without --resume)\n"
    )


def interrupt_after_two_chunks(argv: list[str], monkeypatch, capsys) -> None:
    """Run predict.py with ``argv`` (chunks of 3) and stop it once rows 0-5 are checkpointed."""
    classify = StanceClassifier.probabilities_and_truncation
    calls = {"count": 0}

    def interrupted_classify(self, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt
        return classify(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(StanceClassifier, "probabilities_and_truncation", interrupted_classify)
        assert predict_script.main(argv) == 130
    capsys.readouterr()


def resume_refusal(argv: list[str], capsys) -> str:
    assert predict_script.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize(
    "change", ["shorter input", "documents mode", "encoding", "text column", "precision", "model"]
)
def test_resume_by_another_command_is_refused(
    change, tiny_checkpoint_dir, tmp_path, monkeypatch, capsys
):
    source = prediction_input(tmp_path)
    output = tmp_path / "out.jsonl"
    common = ["--input", str(source), "--output", str(output), "--no_progress"]
    common += ["--chunk_size", "3", "--batch_size", "2", "--precision", "fp32"]
    model = ["--model", str(tiny_checkpoint_dir)]
    clean = tmp_path / "clean.jsonl"
    assert predict_script.main([*model, *common[:2], *common[4:], "--output", str(clean)]) == 0
    interrupt_after_two_chunks([*model, *common], monkeypatch, capsys)
    partial = output.with_name(output.name + ".partial")
    progress = output.with_name(output.name + ".partial.progress")
    before = (partial.read_bytes(), progress.read_bytes())

    original_size = source.stat().st_size
    changed = [*model, *common, "--resume"]
    if change == "shorter input":
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        backup = source.with_name("full.jsonl")
        shutil.copy2(source, backup)
        source.write_text("".join(lines[:8]), encoding="utf-8")
        expected = f"input size {original_size} then, {source.stat().st_size} now"
    elif change == "documents mode":
        changed.append("--documents")
        expected = "--documents off then, on now"
    elif change == "encoding":
        changed += ["--encoding", "latin-1"]
        expected = "--encoding utf-8 then, iso8859-1 now"  # codecs spell it so
    elif change == "text column":
        # Records 6-10 have a "section" field; choose a column every record has.
        lines = source.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) | {"body": json.loads(line)["text"]} for line in lines]
        changed_source = source.with_name("with_body.jsonl")
        changed_source.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
        changed[changed.index(str(source))] = str(changed_source)
        changed += ["--text_column", "body"]
        expected = "--text_column text then, body now"
    elif change == "precision":
        changed += ["--precision", "int8"]
        expected = "--precision fp32 then, int8 now"
    else:
        other_model = tmp_path / "other_model"
        shutil.copytree(tiny_checkpoint_dir, other_model)
        changed[1] = str(other_model)
        expected = f"--model {tiny_checkpoint_dir.resolve()} then, {other_model.resolve()} now"
    refusal = resume_refusal(changed, capsys)
    assert refusal.startswith(f"error: cannot resume: {partial} was written by another command (")
    assert expected in refusal
    assert refusal.endswith(
        "); resume with the interrupted command unchanged, or pass --overwrite instead of "
        "--resume to start over"
    )
    # The refused resume leaves the interrupted run as it was, to be resumed properly.
    assert (partial.read_bytes(), progress.read_bytes()) == before
    if change == "shorter input":
        shutil.copy2(backup, source)  # the same bytes and modification time as before
        backup.unlink()
    assert predict_script.main([*model, *common, "--resume"]) == 0
    assert output.read_bytes() == clean.read_bytes()


def test_resume_and_overwrite_together_are_refused(tiny_checkpoint_dir, tmp_path, capsys):
    source = prediction_input(tmp_path)
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert resume_refusal([*argv, "--resume", "--overwrite"], capsys) == (
        "error: --resume and --overwrite contradict each other: --resume continues an "
        "interrupted run, --overwrite starts over; pass one of them"
    )


def test_progress_record_without_its_command_is_refused(
    tiny_checkpoint_dir, tmp_path, monkeypatch, capsys
):
    # A progress record of an older negstance holds only rows and bytes: what wrote the
    # partial output is unknown, so resuming it could mix two commands' rows.
    source = prediction_input(tmp_path)
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    argv += ["--chunk_size", "3", "--no_progress"]
    interrupt_after_two_chunks(argv, monkeypatch, capsys)
    progress = output.with_name(output.name + ".partial.progress")
    state = json.loads(progress.read_text(encoding="utf-8"))
    progress.write_text(json.dumps({"rows": state["rows"], "bytes": state["bytes"]}), "utf-8")
    assert resume_refusal([*argv, "--resume"], capsys) == (
        f"error: cannot resume: {progress} does not record the command that wrote it "
        "(an older negstance); pass --overwrite instead of --resume to start over"
    )
