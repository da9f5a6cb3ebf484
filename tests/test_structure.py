"""The package's shape: no import cycles, and every script's --help answers before torch loads."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGES = {"model": "negstance.model", "train": "negstance.train"}
MODULES = sorted(
    f"{name}.{path.stem}"
    for folder, name in PACKAGES.items()
    for path in (REPO / folder).glob("*.py")
    if path.stem != "__init__"
)
SCRIPTS = sorted(path.stem for path in REPO.glob("scripts/*.py") if path.stem != "benchmarking")


def imported_modules(module: str) -> set[str]:
    """The negstance modules ``module`` imports, at module level or inside functions."""
    package, _, stem = module.rpartition(".")
    folder = {name: folder for folder, name in PACKAGES.items()}[package]
    tree = ast.parse((REPO / folder / f"{stem}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in MODULES}
        # `from negstance.train import train`: a lazily exported name, resolved to its module.
        if isinstance(node, ast.ImportFrom) and node.module in PACKAGES.values():
            exports = importlib.import_module(node.module).__getattr__.module_of
            found |= {f"{node.module}.{exports[a.name]}" for a in node.names if a.name in exports}
    return found - {module}


def test_no_import_cycles_even_through_imports_inside_functions() -> None:
    graph = {module: imported_modules(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_module_imports_in_any_order(order: str) -> None:
    modules = MODULES if order == "sorted" else MODULES[::-1]
    code = "; ".join(f"import {module}" for module in modules)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_before_torch_loads(script: str) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['{script}.py', *{['suggest'] if script == 'label' else []}, '--help']\n"
        "try:\n"
        f"    runpy.run_path('scripts/{script}.py', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('exit status:', stop.code or 0)\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "exit status: 0" in result.stdout, result.stderr[-500:]
    assert "torch imported: False" in result.stdout, result.stdout[-500:]


def test_import_negstance_model_registers_the_architecture_with_transformers() -> None:
    code = (
        "import sys\n"
        "import negstance.model\n"
        "assert 'torch' not in sys.modules, 'import negstance.model loaded torch'\n"
        "from transformers import AutoConfig, AutoModelForSequenceClassification\n"
        "tiny = dict(model_type='bert', hidden_size=8, num_hidden_layers=1, "
        "num_attention_heads=2, intermediate_size=8, vocab_size=50)\n"
        "config = AutoConfig.for_model('negstance', encoder=tiny)\n"
        "model = AutoModelForSequenceClassification.from_config(config)\n"
        "print(type(config).__name__, type(model).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "NegstanceConfig NegstanceForSequenceClassification"
