"""Bad input to train.py and predict.py: one line ``error: ...`` on stderr, exit status 2.

Every case runs the script's ``main(argv)`` (loaded by path, as a user runs it)
and checks the exact message; one test runs a script as a real process to see
the exit status and that no traceback is printed.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
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
