"""negstance.model: the stance classifier, its checkpoint format and batch inference.

Names are imported on first use, so ``--help`` answers before torch loads; importing this
package still registers ``model_type: negstance`` with transformers' ``Auto*`` classes (at
once if transformers is loaded, else right after it is).

Example:
    >>> from negstance.model import StanceClassifier
    >>> StanceClassifier.from_pretrained("runs/default").predict("Ready to talk.")  # doctest: +SKIP
    'favor'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import Any


def lazy_exports(package: str, **homes: tuple[str, ...]) -> tuple[Callable[[str], Any], list]:
    """A package's ``__getattr__`` importing each name from its module (``homes``) on first use,
    and its ``__all__`` (PEP 562)."""
    module_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)

    __getattr__.module_of = module_of  # type: ignore[attr-defined]  (read by the tests)
    return __getattr__, sorted(module_of)


__getattr__, __all__ = lazy_exports(
    __name__,
    backbones=("DEFAULT_BACKBONE",),
    classifier=("StanceClassifier",),
    errors=("NegstanceError",),
    labels=("ID2LABEL", "LABEL2ID", "LABELS"),
    network=("NegstanceConfig", "NegstanceForSequenceClassification"),
    text=("split_sentences",),
)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback`` right after module ``name`` is first imported: a post-import hook."""

    def __init__(self, name: str, callback: Callable[[], object]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once, and so that find_spec below finds the real module
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                execute(module)
                self.callback()

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _register_with_transformers() -> object:
    return importlib.import_module(f"{__name__}.network")


# Registering imports torch, so it waits for transformers' own (lazy) package to load:
# hooked to its end, not to a submodule, it never runs inside transformers' imports.
if "transformers" in sys.modules:
    _register_with_transformers()
else:
    sys.meta_path.insert(0, _AfterImport("transformers", _register_with_transformers))
