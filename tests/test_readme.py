"""The README's first lines are the set-up commands; CI must run the same test command."""

from conftest import REPO


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```bash", "the README must open with the two set-up commands"
    closing = lines.index("```", 1)
    return lines[1:closing]


def test_readme_opens_with_the_main_job_on_paths_that_exist_then_the_tests():
    main_job, tests = readme_commands()
    paths = ["configs/default.yaml", "data/sample.txt", "scripts/train.py", "scripts/predict.py"]
    for path in paths:
        assert path in main_job and (REPO / path).exists(), path
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    test_command = tests.split("&&")[-1].strip()
    ci_script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci_script
    # And installs at least the README's extras first, so CI tests what the README sets
    # up (CI adds setfit, whose baseline test is skipped where it is not installed).
    readme_install = next(part for part in tests.split("&&") if "pip install -e" in part)
    readme_extras = readme_install.split()[-1].strip('".[]').split(",")
    assert readme_install.strip() in ci_script.replace("-q ", "").replace(",setfit", "")
    backbones = next(part for part in tests.split("&&") if "--no-deps" in part).strip()
    assert backbones in ci_script.replace("-q ", "")
    ci_install = next(line for line in ci_script.splitlines() if "pip install -q -e" in line)
    ci_extras = ci_install.split()[-1].strip('".[]').split(",")
    assert "dev" in readme_extras
    assert set(readme_extras) <= set(ci_extras), (readme_extras, ci_extras)
