"""The one option mechanism of every script: dataclass fields → --help, checks, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from negstance.model.errors import NegstanceError
from negstance.model.options import option, parse_options
from negstance.train.config import TrainConfig


@dataclass
class Options:
    input: str = option(help="input file")
    files: list[str] = option(help="answer files", positional=True)
    batch_size: int | None = option(None, help="sentences per batch", minimum=1)
    precision: str = option("auto", help="how exact", choices=("auto", "fp32"))
    keep: bool = option(True, help="keep the output")
    number: int = option(5, help="how many", short="-n")
    labelled: list[str] = option([], help="labelled files")


def parse(argv: list[str]) -> Options:
    return parse_options(Options, argv, prog="tool.py")


def test_values_flags_positionals_and_short_names() -> None:
    options = parse(["a.jsonl", "b.jsonl", "--input", "x.txt", "--keep=false", "-n", "7"])
    assert options == Options("x.txt", ["a.jsonl", "b.jsonl"], None, "auto", False, 7, [])
    assert parse(["a.jsonl", "--input=x.txt", "--batch_size", "8", "--keep"]).batch_size == 8


@pytest.mark.parametrize(
    "argv",
    [["--labelled", "l1", "l2"], ["--labelled=l1,l2"], ["--labelled", "l1", "--labelled", "l2"]],
)
def test_list_options_take_several_values(argv: list[str]) -> None:
    assert parse(["--input=x", *argv, "--", "a.jsonl"]).labelled == ["l1", "l2"]


def test_help_lists_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--precision {auto,fp32} how exact (default: auto)" in shown
    assert "(default: true; --keep=false turns it off)" in shown
    assert "--number NUMBER, -n NUMBER how many (default: 5)" in shown
    assert "--debug" in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.jsonl"], "the following arguments are required: --input (see --help)"),
        (
            ["a", "--input=x", "--batch_sise=3"],
            "unknown option --batch_sise (did you mean --batch_size?)",
        ),
        (
            ["a", "--input=x", "--batch_size=0"],
            "command line: batch_size must be at least 1, got 0",
        ),
        (["a", "--input=x", "--batch_size=many"], "command line: batch_size must be int"),
        (["a", "--input=x", "--precision=fp8"], "precision must be one of auto, fp32, not 'fp8'"),
        (["a", "--input=x", "--keep=maybe"], "command line: keep must be bool, got str 'maybe'"),
    ],
)
def test_mistakes_are_one_line_errors(argv: list[str], message: str) -> None:
    with pytest.raises(NegstanceError) as error:
        parse(argv)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_train_config_is_checked_when_made() -> None:
    with pytest.raises(NegstanceError, match="learning_rate must be positive"):
        TrainConfig(learning_rate=-1.0)
