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


# --------------------------------------------------------------------------- #
# train.py: data, config and output
# --------------------------------------------------------------------------- #
def labelled(rows: list[tuple[str, str]], doc: str = "d1") -> list[dict]:
    return [
        {"id": f"{doc}-{index}", "doc": doc, "index": index, "text": text, "label": label}
        for index, (text, label) in enumerate(rows)
    ]


GOOD_ROWS = [("Talks resumed.", "favor"), ("No talks ever.", "against"), ("Oil fell.", "none")]


def data_case(name: str, tmp_path: Path) -> tuple[list[str], str]:
    """``(extra argv, expected message)`` for one bad-training-data case."""
    data = tmp_path / "data.jsonl"
    if name == "missing file":
        return [f"--data_path={data}"], (
            f"training data not found: {data} (set data_path in the config or --data_path=FILE)"
        )
    if name == "unknown label":
        rows = labelled([*GOOD_ROWS, ("Maybe talks.", "pro")])
        write_jsonl(data, rows)
        expected = f"{data}, line 4: unknown label 'pro'; labels are favor, against, none"
    elif name == "no label":
        rows = labelled(GOOD_ROWS)
        del rows[1]["label"]
        write_jsonl(data, rows)
        expected = f"{data}, line 2: no 'label' field"
    elif name == "duplicate ids":
        rows = labelled(GOOD_ROWS)
        rows[2]["id"] = rows[0]["id"]
        write_jsonl(data, rows)
        expected = f"{data}, line 3: duplicate id 'd1-0' (first on line 1)"
    elif name == "one label class":
        write_jsonl(data, labelled([("Talks resumed.", "favor"), ("Talks again.", "favor")]))
        expected = "training data has only one label ('favor'); at least two are needed"
    elif name == "empty text":
        write_jsonl(data, labelled([*GOOD_ROWS, ("  ", "none")]))
        expected = f"{data}, line 4: empty text"
    elif name == "malformed line":
        data.write_text(json.dumps(labelled(GOOD_ROWS)[0]) + "\n{oops\n", encoding="utf-8")
        expected = (
            f"{data}, line 2: invalid JSON "
            "(Expecting property name enclosed in double quotes at column 2)"
        )
    elif name == "non-string text":
        rows = labelled(GOOD_ROWS)
        rows[1]["text"] = ["a", "list"]
        write_jsonl(data, rows)
        expected = f"{data}, line 2: 'text' must be a string, not list"
    elif name == "bad ambiguous value":
        rows = labelled(GOOD_ROWS)
        rows[0]["ambiguous"] = "maybe"
        write_jsonl(data, rows)
        expected = f"{data}, line 1: 'ambiguous' must be true or false, got 'maybe'"
    elif name == "validation holds out every doc":
        write_jsonl(data, labelled(GOOD_ROWS, "d1") + labelled(GOOD_ROWS, "d2"))
        return (
            [f"--data_path={data}", "--validation_docs=d1,d2"],
            "validation_docs hold out every document (2): nothing is left to train on; "
            "leave at least one document out of validation_docs",
        )
    elif name == "unknown validation doc":
        write_jsonl(data, labelled(GOOD_ROWS, "d1") + labelled(GOOD_ROWS, "d2"))
        return (
            [f"--data_path={data}", "--validation_docs=d3"],
            "validation_docs not in the data: d3 (documents: d1, d2)",
        )
    else:
        raise AssertionError(name)
    return [f"--data_path={data}"], expected


DATA_CASES = [
    "missing file",
    "unknown label",
    "no label",
    "duplicate ids",
    "one label class",
    "empty text",
    "malformed line",
    "non-string text",
    "bad ambiguous value",
    "validation holds out every doc",
    "unknown validation doc",
]


@pytest.mark.parametrize("case", DATA_CASES)
def test_train_rejects_bad_data(case, tiny_train_args, tmp_path, capsys):
    extra, expected = data_case(case, tmp_path)
    line = error_line(train_script.main, [*tiny_train_args, *extra], capsys)
    assert line.startswith(f"error: {expected}"), line
    assert not (tmp_path / "run").exists()


def test_train_output_dir_checks(tiny_train_args, seed_sentences, tmp_path, capsys):
    existing = tmp_path / "done"
    existing.mkdir()
    (existing / "config.json").write_text("{}", encoding="utf-8")
    (existing / "model.safetensors").write_bytes(b"a finished run")
    argv = [*tiny_train_args, f"--output_dir={existing}"]
    assert error_line(train_script.main, argv, capsys) == (
        f"error: output_dir exists: {existing} (pass --overwrite to replace it, "
        "or choose another --output_dir)"
    )
    (tmp_path / "file").write_text("x", encoding="utf-8")
    argv = [*tiny_train_args, f"--output_dir={tmp_path / 'file' / 'run'}"]
    assert error_line(train_script.main, argv, capsys) == (
        f"error: cannot write output_dir {tmp_path / 'file' / 'run'}: "
        f"{tmp_path / 'file'} is a file, not a directory"
    )
    data = write_jsonl(tmp_path / "data.jsonl", seed_sentences[::5])
    argv = [*tiny_train_args, f"--data_path={data}", "--num_train_epochs=1"]
    assert train_script.main([*argv, f"--output_dir={existing}", "--overwrite"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.jsonl", "done", "file"]
    assert (existing / "config.json").is_file()  # replaced by a real checkpoint
    assert (existing / "model.safetensors").read_bytes() != b"a finished run"
    capsys.readouterr()
    argv = [*tiny_train_args, f"--resume_from={tmp_path / 'nothing.state'}"]
    assert error_line(train_script.main, argv, capsys) == (
        f"error: resume_from: no training state at {tmp_path / 'nothing.state'} "
        "(expected the <output_dir>.state directory of an interrupted run)"
    )


def test_overwrite_replaces_only_a_checkpoint(tiny_train_args, tmp_path, capsys, monkeypatch):
    # --overwrite once replaced whatever output_dir named: a project folder, even ".".
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("keep me", encoding="utf-8")
    argv = [*tiny_train_args, f"--output_dir={project}", "--overwrite"]
    assert error_line(train_script.main, argv, capsys) == (
        f"error: refusing to replace {project}: it is not a checkpoint (no config.json), and "
        "a save replaces the whole directory; choose a new or empty directory"
    )
    monkeypatch.chdir(project)
    line = error_line(
        train_script.main, [*tiny_train_args, "--output_dir=.", "--overwrite"], capsys
    )
    assert line.startswith("error: refusing to replace .: it is not a checkpoint")
    assert sorted(path.name for path in project.iterdir()) == ["notes.txt"]
    assert (project / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project"]


def test_save_pretrained_refuses_to_replace_a_file_or_a_non_checkpoint(classifier, tmp_path):
    from negstance.model.errors import NegstanceError

    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    with pytest.raises(NegstanceError, match="it is a file, not a directory"):
        classifier.save_pretrained(tmp_path / "a_file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "data.csv").write_text("x", encoding="utf-8")
    with pytest.raises(NegstanceError, match="it is not a checkpoint"):
        classifier.save_pretrained(tmp_path / "folder")
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "x"
    assert [path.name for path in (tmp_path / "folder").iterdir()] == ["data.csv"]
    (tmp_path / "empty").mkdir()
    copy = classifier.save_pretrained(tmp_path / "empty")
    assert (copy / "config.json").is_file()
    # The mode a plain mkdir gives, not mkdtemp's private 0700.
    (tmp_path / "plain").mkdir()
    assert copy.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    assert classifier.save_pretrained(copy) == copy  # an earlier checkpoint is replaced


def test_train_rejects_missing_backbone(tiny_train_args, tmp_path, capsys):
    argv = [*tiny_train_args, f"--model_name_or_path={tmp_path / 'nowhere'}"]
    line = error_line(train_script.main, argv, capsys)
    assert line == f"error: cannot load backbone '{tmp_path / 'nowhere'}': no such directory"


def test_train_refuses_max_length_beyond_the_position_embeddings(
    tiny_train_args, tiny_backbone_dir, tmp_path, capsys
):
    # The tiny backbone has 128 positions; one sentence longer than that used to
    # crash with a tensor-size RuntimeError deep inside the encoder.
    argv = [*tiny_train_args, "--max_length=1000"]
    assert error_line(train_script.main, argv, capsys) == (
        f"error: max_length 1000 is more than the 128 token positions of {tiny_backbone_dir}: "
        "use max_length <= 128"
    )
    assert not (tmp_path / "run").exists()


def test_a_negstance_checkpoint_can_be_the_backbone_of_a_new_run(
    tiny_train_args, tiny_checkpoint_dir, seed_sentences, tmp_path
):
    # Fine-tuning further from a finished checkpoint; its config already has `pooling`.
    data = write_jsonl(tmp_path / "data.jsonl", seed_sentences[::5])
    argv = [
        *tiny_train_args,
        f"--model_name_or_path={tiny_checkpoint_dir}",
        f"--data_path={data}",
        "--num_train_epochs=1",
    ]
    assert train_script.main(argv) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["pooling"] == "mean"
    assert saved["id2label"] == {"0": "favor", "1": "against", "2": "none"}
