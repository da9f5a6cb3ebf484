"""The README's first lines are the set-up commands; CI must run the same test command."""

import dataclasses
import re
from pathlib import Path

from negstance.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```bash", "the README must open with the two set-up commands"
    closing = lines.index("```", 1)
    return lines[1:closing]


def test_readme_opens_with_two_commands_main_job_then_tests():
    main_job, tests = readme_commands()
    assert "pip install torch==2.13.0" in main_job
    assert "scripts/train.py --config configs/default.yaml" in main_job
    assert "scripts/predict.py" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    test_command = tests.split("&&")[-1].strip()
    ci_script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci_script
    # And installs at least the README's extras first, so CI tests what the README sets
    # up (CI adds setfit, whose baseline test is skipped where it is not installed).
    readme_extras = tests.split("&&")[1].split()[-1].strip('".[]').split(",")
    ci_install = next(line for line in ci_script.splitlines() if "pip install -q -e" in line)
    ci_extras = ci_install.split()[-1].strip('".[]').split(",")
    assert "dev" in readme_extras
    assert set(readme_extras) <= set(ci_extras), (readme_extras, ci_extras)


def test_readme_paths_exist():
    main_job, _ = readme_commands()
    for path in (
        "configs/default.yaml",
        "data/sample.txt",
        "scripts/train.py",
        "scripts/predict.py",
    ):
        assert path in main_job
        assert (REPO / path).exists(), path


def test_readme_config_table_lists_every_key_and_marks_the_run_only_ones():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)`( †)? \|", readme, flags=re.MULTILINE))
    fields = {item.name: item.metadata["run_only"] for item in dataclasses.fields(TrainConfig)}
    assert {name: bool(mark) for name, mark in rows.items() if name in fields} == fields
