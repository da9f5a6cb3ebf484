"""Options and the training config: defaults < YAML < command line; mistakes are one line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, raises_one_line

from negstance.model.backbones import MINILM, MPNET
from negstance.model.options import option, parse_options, parse_subcommand
from negstance.train.config import TrainConfig, config_diff, load_config


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
    assert parse(["--keep", "a.jsonl", "--input=x.txt", "--batch_size", "8"]).batch_size == 8


@pytest.mark.parametrize(
    "argv",
    [["--labelled", "l1", "l2"], ["--labelled=l1,l2"], ["--labelled", "l1", "--labelled", "l2"]],
)
def test_list_options_take_several_values(argv: list[str]) -> None:
    assert parse(["--input=x", *argv, "--", "a.jsonl"]).labelled == ["l1", "l2"]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["a.jsonl"], ["--input"]),
        (["--input=x"], ["FILES"]),
        (["a", "--input=x", "--batch_sise=3"], ["--batch_sise", "--batch_size"]),
        (["a", "--inptu=x"], ["--inptu", "--input"]),  # named even where --input is missing
        (["a", "--input=x", "--batch_size=0"], ["batch_size", "0"]),
        (["a", "--input=x", "--batch_size=many"], ["batch_size", "many"]),
        (["a", "--input=x", "--precision=fp8"], ["precision", "fp8"]),
        (["a", "--input=x", "--keep=maybe"], ["keep", "maybe"]),
        (["a", "--input"], ["--input"]),
    ],
)
def test_mistakes_are_one_line_errors_naming_the_option(argv: list[str], names: list[str]) -> None:
    raises_one_line(lambda: parse(argv), *names)


def test_subcommands_parse_their_own_options() -> None:
    commands = {"first": (Options, "the first"), "second": (TrainConfig, "the second")}
    name, options = parse_subcommand(commands, ["first", "a", "--input=x"])
    assert (name, options.input, options.files) == ("first", "x", ["a"])
    assert parse_subcommand(commands, ["second", "--seed=3"])[1].seed == 3
    raises_one_line(lambda: parse_subcommand(commands, ["third"]), "third")
    raises_one_line(lambda: parse_subcommand(commands, ["second", "--sed=3"]), "--sed", "--seed")


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_then_yaml_then_command_line(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "learning_rate: 5e-5\nnum_train_epochs: 4\nhead: cls\n")
    config = load_config(path, ["--num_train_epochs=2", "--seed=7", "--output_dir=2025"])
    # YAML over default (5e-5: a string to YAML 1.1)
    assert (config.learning_rate, config.head) == (5e-5, "cls")
    assert (config.num_train_epochs, config.seed) == (2, 7)  # command line over YAML
    assert config.output_dir == "2025"  # strings stay verbatim
    assert config.weight_decay == TrainConfig().weight_decay
    assert load_config(None, ["--validation_docs=001,002"]).validation_docs == ["001", "002"]
    assert load_config(None, ["--no_progress"]).no_progress is True


def test_packaged_configs_load_default_is_mpnet_minilm_the_fast_option() -> None:
    default = load_config(REPO / "configs" / "default.yaml")
    minilm = load_config(REPO / "configs" / "minilm.yaml")
    assert default.model_name_or_path == MPNET == TrainConfig().model_name_or_path
    assert default.head_refit and default.head_init == "linear_probe"
    assert minilm.model_name_or_path == MINILM


@pytest.mark.parametrize(
    ("yaml_text", "overrides", "names"),
    [
        ("lr: 0.1\n", [], ["config.yaml", "lr"]),
        ("", ["--lr=0.1"], ["--lr"]),
        ("per_device_train_batch_size: [16]\n", [], ["config.yaml", "per_device_train_batch_size"]),
        ("learning_rate: [1\n", [], ["config.yaml", "line"]),
        ("- 1\n", [], ["config.yaml"]),
        ("", ["--num_train_epochs=abc"], ["num_train_epochs"]),
        ("", ["--max_length=1.5"], ["max_length"]),
        ("", ["--learning_rate=fast"], ["learning_rate"]),
        ("", ["--learning_rate=0"], ["learning_rate"]),
        ("", ["--learning_rate=.inf"], ["learning_rate"]),
        ("", ["--num_train_epochs=0"], ["num_train_epochs"]),
        ("", ["--warmup_ratio=1.0"], ["warmup_ratio"]),
        ("", ["--weight_decay=-0.1"], ["weight_decay"]),
        ("", ["--seed=-1"], ["seed"]),
        ("", ["--head=CLS"], ["head"]),
        ("", ["--head_refit", "--head=cls"], ["head_refit"]),
        ("", ["learning_rate=1e-4"], ["learning_rate=1e-4"]),
        (None, [], ["absent.yaml"]),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path: Path, yaml_text, overrides, names) -> None:
    path = write_yaml(tmp_path, yaml_text) if yaml_text else None
    path = tmp_path / "absent.yaml" if yaml_text is None else path
    raises_one_line(lambda: load_config(path, overrides), *names)


def test_config_diff_skips_keys_that_do_not_change_the_weights() -> None:
    saved = {"learning_rate": 2e-5, "output_dir": "a", "no_progress": True, "retired_key": 1}
    current = dataclasses.asdict(TrainConfig(output_dir="b"))
    assert config_diff(saved, current) == {"learning_rate": (2e-5, 5e-5)}
    assert config_diff({}, {"seed": 42}) == {}  # a key the saved config predates is its default


def test_to_yaml_round_trips_every_field(tmp_path: Path) -> None:
    overrides = ["--learning_rate=2e-5", "--validation_docs=a,b", "--head=cls", "--output_dir=20"]
    config = load_config(None, overrides)
    assert load_config(write_yaml(tmp_path, config.to_yaml())) == config
