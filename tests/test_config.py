"""The training config: defaults < YAML < ``--key=value``; bad keys, types and values rejected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from negstance.model.errors import NegstanceError
from negstance.train.config import TrainConfig, config_diff, load_config

REPO = Path(__file__).resolve().parents[1]


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_then_yaml_then_command_line(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "learning_rate: 3.0e-5\nnum_train_epochs: 4\nhead: cls\n")
    config = load_config(path, ["--num_train_epochs=2", "--seed=7"])
    defaults = TrainConfig()
    assert config.learning_rate == 3e-5  # YAML over default
    assert config.head == "cls"  # YAML over default
    assert config.num_train_epochs == 2  # command line over YAML
    assert config.seed == 7  # command line over default
    assert config.weight_decay == defaults.weight_decay  # untouched default
    assert load_config(None, []) == defaults


def test_packaged_default_config_loads() -> None:
    config = load_config(REPO / "configs" / "default.yaml")
    assert config.output_dir == "runs/default"
    assert config.validate() is config


@pytest.mark.parametrize(
    ("argument", "expected"),
    [("--learning_rate=5e-5", 5e-5), ("--learning_rate=3.0e-5", 3e-5), ("--learning_rate=1", 1.0)],
)
def test_learning_rate_parses_as_float(argument: str, expected: float) -> None:
    value = load_config(None, [argument]).learning_rate
    assert isinstance(value, float)
    assert value == expected


def test_yaml_scientific_notation_without_dot_is_a_float(tmp_path: Path) -> None:
    # YAML 1.1 reads 5e-5 (no dot) as a string.
    config = load_config(write_yaml(tmp_path, "learning_rate: 5e-5\n"))
    assert config.learning_rate == 5e-5


def test_string_fields_keep_the_command_line_text_verbatim() -> None:
    config = load_config(
        None, ["--output_dir=2025", "--validation_docs=001,002", "--model_name_or_path=on"]
    )
    assert config.output_dir == "2025"
    assert config.validation_docs == ["001", "002"]
    assert config.model_name_or_path == "on"


def test_booleans_parse_from_yaml_words() -> None:
    assert load_config(None, ["--no_progress=true"]).no_progress is True
    assert load_config(None, ["--no_progress"]).no_progress is True
    assert load_config(None, ["--exclude_ambiguous=true"]).exclude_ambiguous is True


@pytest.mark.parametrize("source", ["yaml", "command line"])
def test_unknown_key_is_rejected_by_name(tmp_path: Path, source: str) -> None:
    with pytest.raises(NegstanceError, match=r"unknown (key 'lr'|option --lr)") as error:
        if source == "yaml":
            load_config(write_yaml(tmp_path, "lr: 0.1\n"))
        else:
            load_config(None, ["--lr=0.1"])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--num_train_epochs=abc"], "num_train_epochs must be int"),
        (["--max_length=1.5"], "max_length must be int"),
        (["--no_progress=maybe"], "no_progress must be bool"),
        (["--learning_rate=fast"], "learning_rate must be float"),
        (["--per_device_train_batch_size=true"], "per_device_train_batch_size must be int"),
    ],
)
def test_wrong_types_are_rejected(overrides: list[str], message: str) -> None:
    with pytest.raises(NegstanceError, match=message):
        load_config(None, overrides)


def test_wrong_type_in_yaml_names_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "per_device_train_batch_size: '16'\n")
    with pytest.raises(NegstanceError, match=r"config\.yaml: per_device_train_batch_size must be"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--learning_rate=-1e-5", "learning_rate must be positive"),
        ("--learning_rate=0", "learning_rate must be positive"),
        ("--learning_rate=.inf", "learning_rate must be positive and finite"),
        ("--per_device_train_batch_size=0", "per_device_train_batch_size must be at least 1"),
        ("--num_train_epochs=0", "num_train_epochs must be at least 1"),
        ("--gradient_accumulation_steps=0", "gradient_accumulation_steps must be at least 1"),
        ("--warmup_ratio=1.0", "warmup_ratio must be in"),
        ("--weight_decay=-0.1", "weight_decay must be"),
        ("--seed=-1", "seed must be in"),
        ("--head=CLS", "head must be one of mean, cls"),
        ("--mixed_precision=fp8", "mixed_precision must be one of"),
    ],
)
def test_impossible_values_are_rejected(override: str, message: str) -> None:
    with pytest.raises(NegstanceError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("learning_rate=1e-4", "expected --key=value, got 'learning_rate=1e-4'"),
        ("--lerning_rate=1e-4", "unknown option --lerning_rate (did you mean --learning_rate?)"),
        ("--learning_rate", "--learning_rate needs a value: --learning_rate=VALUE"),
    ],
)
def test_command_line_mistakes_are_named(argument: str, message: str) -> None:
    with pytest.raises(NegstanceError) as error:
        load_config(None, [argument])
    assert str(error.value).startswith(message)


def test_config_diff_skips_keys_that_do_not_change_the_weights() -> None:
    saved = {"learning_rate": 2e-5, "output_dir": "a", "no_progress": True, "retired_key": 1}
    assert config_diff(saved, dataclasses.asdict(TrainConfig(output_dir="b"))) == {
        "learning_rate": (2e-5, 5e-5)
    }
    # A key the saved config predates counts as its default.
    assert config_diff({}, {"seed": 42}) == {}
    assert config_diff({}, {"seed": 1}, ignore=["seed"]) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate: [1\n", r"config\.yaml, line \d+: not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
    ],
)
def test_malformed_yaml_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(NegstanceError, match=message):
        load_config(write_yaml(tmp_path, text))


def test_missing_config_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(NegstanceError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_to_yaml_round_trips_every_field(tmp_path: Path) -> None:
    config = load_config(
        None,
        ["--learning_rate=2e-5", "--validation_docs=a,b", "--head=cls", "--output_dir=2025"],
    )
    path = write_yaml(tmp_path, config.to_yaml())
    reloaded = load_config(path)
    assert reloaded == config
    assert set(dataclasses.asdict(reloaded)) == {field.name for field in dataclasses.fields(config)}


def test_default_is_mpnet_with_head_refit_and_minilm_is_the_fast_option() -> None:
    from negstance.model.backbones import MINILM, MPNET

    default = load_config(REPO / "configs" / "default.yaml")
    minilm = load_config(REPO / "configs" / "minilm.yaml")
    assert default.model_name_or_path == MPNET == TrainConfig().model_name_or_path
    assert default.head_refit and default.head_init == "linear_probe"
    assert minilm.model_name_or_path == MINILM


def test_head_refit_needs_the_mean_head() -> None:
    with pytest.raises(NegstanceError, match="head_refit=true needs head=mean"):
        load_config(None, ["--head_refit=true", "--head=cls"])
