"""Bad input to train.py and predict.py: one line ``error: ...`` on stderr, exit status 2.

Every case runs the script's ``main(argv)`` (loaded by path, as a user runs it)
and checks the exact message; one test runs a script as a real process to see
the exit status and that no traceback is printed.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import subprocess
import sys
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
# predict.py: input files
# --------------------------------------------------------------------------- #
def make_input(tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


INPUT_CASES = {
    "missing": (None, "in.txt", "input file not found: {input}"),
    "directory": (None, "folder.txt", "input is a directory, not a file: {input}"),
    "empty": ("", "in.txt", "{input}: no text to read (the file is empty or blank)"),
    "blank lines only": ("\n  \n\t\n", "in.txt", "{input}: no text to read"),
    "blank jsonl": ("\n\n", "in.jsonl", "{input}: no text to read"),
    "malformed jsonl": (
        '{"text": "Talks resumed."}\n{"text": "Peace, now\n',
        "in.jsonl",
        "{input}, line 2: invalid JSON (Unterminated string starting at column 10)",
    ),
    "jsonl without text field": (
        '{"text": "Talks resumed."}\n{"sentence": "x"}\n',
        "in.jsonl",
        "{input}, line 2: no 'text' field",
    ),
    "jsonl non-string text": (
        '{"text": "Talks resumed."}\n\n{"text": 42}\n',
        "in.jsonl",
        "{input}, line 3: 'text' must be a string, not int",
    ),
    "jsonl array line": (
        '["Talks resumed."]\n',
        "in.jsonl",
        "{input}, line 1: expected a JSON object",
    ),
    "csv without text column": (
        "id,sentence\n1,Talks resumed.\n",
        "in.csv",
        "{input}: no 'text' column (columns: id, sentence); pass --text_column to choose one",
    ),
    "not utf-8": (
        "Talks resumed.\nOil fell.\nKyiv caf\xe9 reopened.\n".encode("latin-1"),
        "in.txt",
        "{input}, line 3: not valid utf-8 text (byte 0xe9); "
        "pass --encoding, e.g. --encoding latin-1",
    ),
    "unsupported type": ("Talks.", "in.pdf", "{input}: unsupported file type '.pdf'"),
}


@pytest.mark.parametrize("case", INPUT_CASES, ids=list(INPUT_CASES))
def test_predict_rejects_bad_input_with_one_line(case, tiny_checkpoint_dir, tmp_path, capsys):
    content, name, expected = INPUT_CASES[case]
    input_path = tmp_path / name
    if case != "missing":
        make_input(tmp_path, name, content)
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(input_path)]
    line = error_line(
        predict_script.main, [*argv, "--output", str(output), "--no_progress"], capsys
    )
    assert line.startswith("error: " + expected.format(input=input_path)), line
    # Bad input found before the first row leaves nothing behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ([] if case == "missing" else [name])


def test_predict_encoding_option_reads_latin1(tiny_checkpoint_dir, tmp_path, capsys):
    source = make_input(
        tmp_path, "in.txt", "Talks resumed.\nKyiv caf\xe9 reopened.\n".encode("latin-1")
    )
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert predict_script.main([*argv, "--encoding", "latin-1", "--no_progress"]) == 0
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == ["Talks resumed.", "Kyiv café reopened."]
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["in.txt", "in.csv"])
def test_predict_reads_utf16_input(name, tiny_checkpoint_dir, tmp_path, capsys):
    # UTF-16's newline is two bytes: the input cannot be split into lines as bytes.
    header = "text,id\n" if name.endswith(".csv") else ""
    rows = ["Talks resumed.", "Kyiv café reopened."]
    body = "".join(row + (",1" if header else "") + "\r\n" for row in rows)
    source = make_input(tmp_path, name, (header + body).encode("utf-16"))
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert predict_script.main([*argv, "--encoding", "utf-16", "--no_progress"]) == 0
    written = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in written] == rows
    capsys.readouterr()
    broken = make_input(tmp_path, "broken.txt", "Talks resumed.\n".encode("utf-16") + b"\x00\xd8")
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(broken)]
    argv += ["--output", str(tmp_path / "o.jsonl"), "--encoding", "utf-16", "--no_progress"]
    assert error_line(predict_script.main, argv, capsys) == (
        f"error: {broken}, line 2 or later: not valid utf-16 text; pass the file's --encoding"
    )


def test_predict_unknown_encoding(tiny_checkpoint_dir, tmp_path, capsys):
    source = make_input(tmp_path, "in.txt", "Talks resumed.\n")
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source)]
    argv += ["--output", str(tmp_path / "o.jsonl"), "--encoding", "klingon"]
    assert error_line(predict_script.main, argv, capsys) == (
        "error: unknown encoding 'klingon' (try utf-8, utf-8-sig, latin-1 or cp1252)"
    )


def test_csv_with_byte_order_mark_finds_text_column(tiny_checkpoint_dir, tmp_path, capsys):
    source = make_input(tmp_path, "in.csv", "\ufefftext,id\nTalks resumed.,1\n")
    output = tmp_path / "out.csv"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert predict_script.main([*argv, "--no_progress"]) == 0
    with output.open(encoding="utf-8", newline="") as handle:
        assert [row["text"] for row in csv.DictReader(handle)] == ["Talks resumed."]


# --------------------------------------------------------------------------- #
# predict.py: awkward but valid input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("suffix", ["txt", "jsonl", "csv"])
def test_empty_sentences_are_kept_unlabelled(suffix, tiny_checkpoint_dir, tmp_path, capsys):
    texts = ["Talks resumed in Istanbul.", "", "   ", "Oil prices fell.", "\t"]
    source = tmp_path / f"in.{suffix}"
    if suffix == "txt":
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    elif suffix == "jsonl":
        write_jsonl(source, [{"id": index, "text": text} for index, text in enumerate(texts)])
    else:
        with source.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            writer.writerows(enumerate(texts))
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert predict_script.main([*argv, "--no_progress"]) == 0
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(texts)
    assert [row["text"] for row in rows] == texts
    assert [row["label"] is None for row in rows] == [not text.strip() for text in texts]
    summary = capsys.readouterr().out
    assert "5 rows" in summary
    assert "3 empty rows left unlabelled" in summary


def test_overlong_sentences_are_truncated_and_counted(tiny_checkpoint_dir, tmp_path, capsys):
    long_sentence = "The negotiators met again. " * 200  # ~1000 tokens; the model takes 128
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [{"text": "Talks resumed."}, {"text": long_sentence}, {"text": long_sentence * 2}],
    )
    output = tmp_path / "out.jsonl"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = warnings.append
    logging.getLogger("transformers").addHandler(handler)
    try:
        assert predict_script.main([*argv, "--no_progress"]) == 0
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert all(row["label"] in ("favor", "against", "none") for row in rows)
    assert "2 texts truncated to the model's maximum length" in capsys.readouterr().out
    # transformers' "will result in indexing errors" is untrue: the texts are truncated.
    assert not [record for record in warnings if "indexing errors" in record.getMessage()]


# --------------------------------------------------------------------------- #
# predict.py: --model
# --------------------------------------------------------------------------- #
def broken_checkpoint(kind: str, good: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    if kind == "missing":
        return directory
    if kind == "a file":
        directory.write_text("not a directory", encoding="utf-8")
        return directory
    if kind == "not a checkpoint":
        directory.mkdir()
        (directory / "notes.txt").write_text("hello", encoding="utf-8")
        return directory
    shutil.copytree(good, directory)
    weights = directory / "model.safetensors"
    if kind == "no label mapping":
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        del config["id2label"], config["label2id"]
        (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    elif kind == "truncated weights":
        with weights.open("r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif kind == "corrupt weights":
        weights.write_bytes(b"\xff" * 64)
    elif kind == "only pytorch_model.bin":
        weights.unlink()
        (directory / "pytorch_model.bin").write_bytes(b"pickle would run code")
    elif kind == "no tokenizer":
        for name in ("tokenizer.json", "vocab.txt"):
            (directory / name).unlink(missing_ok=True)
    return directory


MODEL_CASES = {
    "missing": "model directory not found: {model}",
    "a file": "--model must be a checkpoint directory, got a file: {model}",
    "not a checkpoint": (
        "not a checkpoint (no config.json): {model}; pass the output_dir of train.py"
    ),
    "no label mapping": (
        "{model} has no negstance label mapping (config.json label2id is ['LABEL_0', "
        "'LABEL_1'], expected ['favor', 'against', 'none']); is it a checkpoint from train.py?"
    ),
    "truncated weights": (
        "cannot load checkpoint {model}: Error while deserializing header: incomplete metadata, "
        "file not fully covered (the files may be truncated or corrupt; save or copy the "
        "checkpoint again)"
    ),
    "corrupt weights": "cannot load checkpoint {model}: Error while deserializing header",
    "only pytorch_model.bin": (
        "refusing {model}: it has only pickled weights (pytorch_model.bin), which can run "
        "arbitrary code when loaded; convert it to safetensors first"
    ),
    "no tokenizer": (
        "not a complete checkpoint (no tokenizer: none of tokenizer.json, vocab.txt, "
        "vocab.json, tokenizer.model, spiece.model): {model}; copy the whole output_dir of "
        "train.py"
    ),
}


@pytest.mark.parametrize("kind", MODEL_CASES, ids=list(MODEL_CASES))
def test_predict_rejects_bad_model(kind, tiny_checkpoint_dir, tmp_path, capsys):
    model = broken_checkpoint(kind, tiny_checkpoint_dir, tmp_path)
    source = make_input(tmp_path, "in.txt", "Talks resumed.\n")
    argv = ["--model", str(model), "--input", str(source), "--output", str(tmp_path / "o.jsonl")]
    line = error_line(predict_script.main, argv, capsys)
    assert line.startswith("error: " + MODEL_CASES[kind].format(model=model)), line
    assert not (tmp_path / "o.jsonl.partial").exists()


# --------------------------------------------------------------------------- #
# predict.py: --output
# --------------------------------------------------------------------------- #
def test_existing_output_needs_overwrite(tiny_checkpoint_dir, tmp_path, capsys):
    source = make_input(tmp_path, "in.txt", "Talks resumed.\n")
    output = tmp_path / "out.jsonl"
    output.write_text("precious\n", encoding="utf-8")
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    assert error_line(predict_script.main, [*argv, "--no_progress"], capsys) == (
        f"error: output exists: {output} (pass --overwrite to replace it)"
    )
    assert output.read_text(encoding="utf-8") == "precious\n"
    assert predict_script.main([*argv, "--no_progress", "--overwrite"]) == 0
    assert json.loads(output.read_text(encoding="utf-8"))["text"] == "Talks resumed."


OUTPUT_CASES = {
    "parent is a file": (
        "notes.txt/out.jsonl",
        "cannot write {output}: {tmp}/notes.txt is a file, not a directory",
    ),
    "missing directory": (
        "no/such/dir/out.jsonl",
        "cannot write {output}: directory {tmp}/no/such/dir does not exist (create it first)",
    ),
    "output is a directory": ("outdir.jsonl", "output path is a directory: {output}"),
    "unsupported type": ("out.xlsx", "{output}: unsupported file type '.xlsx'; use one of"),
}


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=list(OUTPUT_CASES))
def test_unwritable_output_is_refused(case, tiny_checkpoint_dir, tmp_path, capsys):
    relative, expected = OUTPUT_CASES[case]
    (tmp_path / "notes.txt").write_text("a file", encoding="utf-8")
    (tmp_path / "outdir.jsonl").mkdir()
    source = make_input(tmp_path, "in.txt", "Talks resumed.\n")
    output = tmp_path / relative
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(source), "--output", str(output)]
    line = error_line(predict_script.main, argv, capsys)
    assert line.startswith("error: " + expected.format(output=output, tmp=tmp_path)), line


def test_usage_errors_are_one_line(capsys):
    assert error_line(predict_script.main, ["--model", "m"], capsys) == (
        "error: the following arguments are required: --input, --output (see --help)"
    )
    argv = ["--model", "m", "--input", "i.txt", "--output", "o.jsonl", "--batch_size", "0"]
    assert error_line(predict_script.main, argv, capsys) == (
        "error: command line: batch_size must be at least 1, got 0"
    )


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


# --------------------------------------------------------------------------- #
# The Python API
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def classifier(tiny_checkpoint_dir):
    from negstance.model import StanceClassifier

    return StanceClassifier.from_pretrained(tiny_checkpoint_dir, device="cpu")


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (42, "texts must be a string or a sequence of strings, not int"),
        (None, "texts must be a string or a sequence of strings, not NoneType"),
        (b"Talks resumed.", "texts must be a string or a sequence of strings, not bytes"),
        (["Talks resumed.", 3.5], "texts[1] is float, not str"),
    ],
)
def test_predict_api_rejects_non_strings(classifier, texts, message):
    with pytest.raises(TypeError) as raised:
        classifier.predict(texts)
    assert str(raised.value) == message


def test_the_list_entry_point_refuses_a_bare_string(classifier):
    # A str is a sequence of characters: it would be classified one letter at a time.
    with pytest.raises(TypeError, match=r"wrap a single text: \[text\]"):
        classifier.probabilities_and_truncation("Talks resumed.")
    assert classifier.predict_proba("Talks resumed.").shape == (3,)


@pytest.mark.parametrize(
    ("texts", "named"), [("", "text"), ("   ", "text"), (["Talks resumed.", "\n"], r"texts\[1\]")]
)
def test_predict_api_rejects_empty_text(classifier, texts, named):
    # A single string is named as the text it is, not as a "texts[0]" the caller never wrote.
    with pytest.raises(ValueError, match=rf"^{named} is empty or only whitespace: nothing to"):
        classifier.predict(texts)


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
