"""predict.py on input and output files a user gets wrong: one ``error:`` line, exit status 2.

Each case runs ``scripts/predict.py``'s ``main(argv)`` as a user would and checks
the exact message, that the input is untouched and that no output is left behind.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from conftest import error_line, load_script

predict_script = load_script("predict")


def predict_argv(checkpoint: Path, source: Path, output: Path, *options: str) -> list[str]:
    return [
        *("--model", str(checkpoint), "--input", str(source), "--output", str(output)),
        "--no_progress",
        *options,
    ]


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# --------------------------------------------------------------------------- #
# Encodings
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ["in.txt", "in.csv"])
def test_utf16_without_byte_order_mark_is_a_one_line_error(
    name, tiny_checkpoint_dir, tmp_path, capsys
):
    # A UTF-8 file read as utf-16: Python's decoder raises UnicodeError, not its
    # subclass UnicodeDecodeError, because the stream has no byte-order mark.
    source = tmp_path / name
    source.write_text("text\nTalks resumed.\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    argv = predict_argv(tiny_checkpoint_dir, source, output, "--encoding", "utf-16")
    assert error_line(predict_script.main, argv, capsys) == (
        f"error: {source}, line 1 or later: not valid utf-16 text "
        "(UTF-16 stream does not start with BOM); pass the file's --encoding"
    )
    assert files_in(tmp_path) == [name]


def test_a_codec_error_without_a_byte_position_is_a_one_line_error(
    tiny_checkpoint_dir, tmp_path, capsys
):
    # Line-by-line codecs can raise the UnicodeError base class too (idna: a bad label).
    source = tmp_path / "in.txt"
    source.write_bytes(b"xn--\n")
    output = tmp_path / "out.jsonl"
    argv = predict_argv(tiny_checkpoint_dir, source, output, "--encoding", "idna")
    line = error_line(predict_script.main, argv, capsys)
    # The codec's own reason, in parentheses, is worded differently by Python versions.
    assert line.startswith(f"error: {source}, line 1: not valid idna text ("), line
    assert line.endswith("); pass --encoding, e.g. --encoding latin-1"), line


@pytest.mark.parametrize(
    "encoding, suggested",
    [("utf-16", "utf-16"), ("utf-16-be", "utf-16"), ("utf-32", "utf-32")],
)
@pytest.mark.parametrize("given", [[], ["--encoding", "latin-1"]], ids=["default", "latin-1"])
def test_a_utf16_or_utf32_byte_order_mark_suggests_that_encoding(
    encoding, suggested, given, tiny_checkpoint_dir, tmp_path, capsys
):
    source = tmp_path / "in.txt"
    # "utf-16" writes its own byte-order mark; the -be codec needs one written by hand.
    mark = "\ufeff" if encoding.endswith("-be") else ""
    source.write_bytes((mark + "Talks resumed.\n").encode(encoding))
    output = tmp_path / "out.jsonl"
    # latin-1 decodes any byte: without the check it would classify NUL-laced garbage.
    argv = predict_argv(tiny_checkpoint_dir, source, output, *given)
    assert error_line(predict_script.main, argv, capsys) == (
        f"error: {source} starts with a {suggested.upper()} byte-order mark: "
        f"pass --encoding {suggested}"
    )
    assert files_in(tmp_path) == ["in.txt"]


# --------------------------------------------------------------------------- #
# JSON Lines
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "content, problem",
    [
        ('[{"text": "Talks resumed."}, {"text": "Oil fell."}]\n', "expected a JSON object"),
        (
            '[\n  {"text": "Talks resumed."},\n  {"text": "Oil fell."}\n]\n',
            "invalid JSON (Expecting value at column 2)",
        ),
    ],
    ids=["one line", "pretty-printed"],
)
def test_a_json_array_file_gets_a_json_lines_hint(
    content, problem, tiny_checkpoint_dir, tmp_path, capsys
):
    source = tmp_path / "in.json"
    source.write_text(content, encoding="utf-8")
    output = tmp_path / "out.jsonl"
    assert error_line(
        predict_script.main, predict_argv(tiny_checkpoint_dir, source, output), capsys
    ) == (
        f"error: {source}, line 1: {problem}; the file looks like a JSON array, "
        "but the input must be JSON Lines: one JSON object per line"
    )


# --------------------------------------------------------------------------- #
# CSV
# --------------------------------------------------------------------------- #
CSV_CASES = {
    "unterminated quote": (
        'id,text\n1,"unterminated\n2,x\n',
        "{input}, line 2: a quoted field in the row starting on this line is never closed",
    ),
    "unterminated quote after a blank line and a multi-line field": (
        'id,text\n1,"two\nlines"\n\n2,"unterminated\n3,x\n4,y\n',
        "{input}, line 5: a quoted field in the row starting on this line is never closed",
    ),
    "text after a closing quote": (
        'id,text\n1,"Talks" resumed\n',
        "{input}, line 2: bad CSV (',' expected after '\"')",
    ),
    "duplicate column names": (
        "text,id,text,id,note\nTalks resumed.,1,Oil fell.,2,x\n",
        "{input}: the header repeats column names ('text', 'id'); give every column its own name",
    ),
    "header without rows": (
        "id,text\n",
        "{input}: the file has a header (id, text) but no rows",
    ),
}


@pytest.mark.parametrize("case", CSV_CASES, ids=list(CSV_CASES))
def test_predict_rejects_bad_csv_with_one_line(case, tiny_checkpoint_dir, tmp_path, capsys):
    content, expected = CSV_CASES[case]
    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")
    output = tmp_path / "out.csv"
    line = error_line(
        predict_script.main, predict_argv(tiny_checkpoint_dir, source, output), capsys
    )
    assert line == "error: " + expected.format(input=source)
    assert files_in(tmp_path) == ["in.csv"]


def test_duplicate_tsv_column_names_are_refused(tiny_checkpoint_dir, tmp_path, capsys):
    source = tmp_path / "in.tsv"
    source.write_text("text\ttext\nTalks resumed.\tOil fell.\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    assert error_line(
        predict_script.main, predict_argv(tiny_checkpoint_dir, source, output), capsys
    ) == (
        f"error: {source}: the header repeats column names ('text'); give every column its own name"
    )


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #
def test_tsv_output_is_tab_separated(tiny_checkpoint_dir, tmp_path, capsys):
    source = tmp_path / "in.tsv"
    source.write_text(
        "id\ttext\n1\tTalks resumed, officials said.\n2\tOil fell.\n", encoding="utf-8"
    )
    output = tmp_path / "out.tsv"
    assert predict_script.main(predict_argv(tiny_checkpoint_dir, source, output)) == 0
    with output.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0])[:3] == ["id", "text", "label"]
    assert [row["text"] for row in rows] == ["Talks resumed, officials said.", "Oil fell."]
    assert all(row["label"] in ("favor", "against", "none") for row in rows)


def test_json_output_is_refused_with_a_jsonl_hint(tiny_checkpoint_dir, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("Talks resumed.\n", encoding="utf-8")
    output = tmp_path / "out.json"
    assert error_line(
        predict_script.main, predict_argv(tiny_checkpoint_dir, source, output), capsys
    ) == (
        f"error: {output}: predictions are written as JSON Lines (one JSON object per line), "
        "not as one JSON document; name the output .jsonl"
    )
    assert files_in(tmp_path) == ["in.txt"]


def test_an_existing_directory_as_output_is_named_a_directory(
    tiny_checkpoint_dir, tmp_path, capsys
):
    source = tmp_path / "in.txt"
    source.write_text("Talks resumed.\n", encoding="utf-8")
    output = tmp_path / "results"
    output.mkdir()
    assert error_line(
        predict_script.main, predict_argv(tiny_checkpoint_dir, source, output), capsys
    ) == (f"error: output path is a directory: {output}")


@pytest.mark.parametrize("spelling", ["same path", "another spelling", "hard link"])
def test_the_input_file_cannot_be_the_output(spelling, tiny_checkpoint_dir, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    original = json.dumps({"id": 1, "text": "Talks resumed."}) + "\n"
    source.write_text(original, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    if spelling == "same path":
        output = source
    elif spelling == "another spelling":
        output = tmp_path / "sub" / ".." / "in.jsonl"
    else:
        output = tmp_path / "linked.jsonl"
        os.link(source, output)
    for extra in (["--overwrite"], []):
        # Without --overwrite too: not first "output exists, pass --overwrite", which
        # would lead the user into the second refusal.
        argv = predict_argv(tiny_checkpoint_dir, source, output, *extra)
        assert error_line(predict_script.main, argv, capsys) == (
            f"error: --output {output} is the input file: write the predictions to another file"
        )
    assert source.read_text(encoding="utf-8") == original
    assert not (tmp_path / (output.name + ".partial")).exists()
