"""Bad input to train.py: one ``error:`` line naming the problem, exit status 2, nothing written."""

from __future__ import annotations

import pytest
from conftest import error_line, load_script, write_jsonl

train_script = load_script("train")
GOOD_ROWS = [("Talks resumed.", "favor"), ("No talks ever.", "against"), ("Oil fell.", "none")]


def labelled(rows: list[tuple[str, str]], doc: str = "d1") -> list[dict]:
    return [
        {"id": f"{doc}-{index}", "doc": doc, "index": index, "text": text, "label": label}
        for index, (text, label) in enumerate(rows)
    ]


# Every kind of bad row is in test_data.py; here: train.py's exit 2, naming it, writing nothing.
@pytest.mark.parametrize("bad", ['{"id": "x", "text": "Oil fell.", "label": "pro"}', "{oops"])
def test_a_bad_row_is_named_by_file_and_line(bad, tiny_train_args, tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", labelled(GOOD_ROWS[:2]))
    data.write_text(data.read_text(encoding="utf-8") + bad + "\n", encoding="utf-8")
    line = error_line(train_script.main, [*tiny_train_args, f"--data_path={data}"], capsys)
    assert f"{data}, line 3" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("rows", "extra", "noun"),
    [
        (labelled(GOOD_ROWS[:1] * 2), [], "one label"),
        (labelled(GOOD_ROWS, "d1") + labelled(GOOD_ROWS, "d2"), ["d1,d2"], "validation_docs"),
        (labelled(GOOD_ROWS, "d1") + labelled(GOOD_ROWS, "d2"), ["d3"], "d3"),
        (None, [], "data.jsonl"),
    ],
    ids=["one label", "every doc held out", "unknown doc", "missing file"],
)
def test_unusable_training_data_is_refused(rows, extra, noun, tiny_train_args, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    if rows is not None:
        write_jsonl(data, rows)
    argv = [*tiny_train_args, f"--data_path={data}", *(f"--validation_docs={d}" for d in extra)]
    assert noun in error_line(train_script.main, argv, capsys)
    assert not (tmp_path / "run").exists()


def test_train_refuses_what_it_cannot_use(tiny_train_args, tiny_backbone_dir, tmp_path, capsys):
    nowhere = tmp_path / "nowhere"
    cases = [
        ([f"--model_name_or_path={nowhere}"], str(nowhere)),
        # The tiny backbone has 128 positions: more crashed deep inside the encoder.
        (["--max_length=1000"], "max_length"),
        (["--head=cls", "--head_init=linear_probe"], "linear_probe"),
        ([f"--resume_from={tmp_path / 'nothing.state'}"], "nothing.state"),
    ]
    for extra, noun in cases:
        assert noun in error_line(train_script.main, [*tiny_train_args, *extra], capsys)
    assert list(tmp_path.iterdir()) == []


def test_output_dir_is_replaced_only_when_asked_and_only_if_a_checkpoint(
    tiny_train_args, seed_sentences, tmp_path, capsys, monkeypatch
):
    done = tmp_path / "done"
    done.mkdir()
    (done / "config.json").write_text("{}", encoding="utf-8")
    (done / "model.safetensors").write_bytes(b"a finished run")
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("keep me", encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    cases = [
        ([f"--output_dir={done}"], "--overwrite"),
        ([f"--output_dir={tmp_path / 'file'}", "--overwrite"], str(tmp_path / "file")),
        ([f"--output_dir={tmp_path / 'file' / 'run'}"], str(tmp_path / "file")),
        # --overwrite once replaced whatever output_dir named: a project folder, even ".".
        ([f"--output_dir={project}", "--overwrite"], str(project)),
        (["--output_dir=.", "--overwrite"], "."),
    ]
    monkeypatch.chdir(project)
    for extra, noun in cases:
        assert noun in error_line(train_script.main, [*tiny_train_args, *extra], capsys)
    assert [path.name for path in project.iterdir()] == ["notes.txt"]

    data = write_jsonl(tmp_path / "data.jsonl", seed_sentences[::5])
    argv = [*tiny_train_args, f"--data_path={data}", "--num_train_epochs=1"]
    assert train_script.main([*argv, f"--output_dir={done}", "--overwrite"]) == 0
    assert (done / "model.safetensors").read_bytes() != b"a finished run"
    # The mode a plain mkdir gives, not mkdtemp's private 0700.
    assert done.stat().st_mode & 0o777 == project.stat().st_mode & 0o777
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "done", "file", "project"]
