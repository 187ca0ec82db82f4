"""Cache manifest: every write into the model cache is detected, nothing is followed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from support.cache_manifest import CacheChanges, compare, take
from support.errors import ConfigError


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A small cache in the Hugging Face layout: snapshot symlinks into blobs."""
    root = tmp_path / "hub"
    blobs = root / "models--org--a" / "blobs"
    snapshot = root / "models--org--a" / "snapshots" / "abc"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (blobs / "1111").write_text("{}")
    (blobs / "2222").write_bytes(b"weights")
    (snapshot / "config.json").symlink_to("../../blobs/1111")
    (snapshot / "model.safetensors").symlink_to("../../blobs/2222")
    return root


def changes(root: Path, before: dict[str, tuple[int, int]]) -> CacheChanges:
    """What changed in root since before."""
    return compare(before, take(root), root=root)


def test_manifest_lists_files_dirs_and_symlinks(cache: Path) -> None:
    manifest = take(cache)
    assert sorted(manifest) == [
        ".", "models--org--a", "models--org--a/blobs", "models--org--a/blobs/1111",
        "models--org--a/blobs/2222", "models--org--a/snapshots",
        "models--org--a/snapshots/abc", "models--org--a/snapshots/abc/config.json",
        "models--org--a/snapshots/abc/model.safetensors"]
    assert manifest["models--org--a/blobs/2222"][0] == len(b"weights")
    link = cache / "models--org--a/snapshots/abc/model.safetensors"
    assert manifest["models--org--a/snapshots/abc/model.safetensors"] == \
        (os.lstat(link).st_size, os.lstat(link).st_mtime_ns)


def test_no_change_is_falsy(cache: Path) -> None:
    result = changes(cache, take(cache))
    assert not result
    assert result == CacheChanges(cache, [], [], [])
    assert result.describe() == f"the run left the model cache {cache} unchanged"


def test_added_file_and_dir(cache: Path) -> None:
    before = take(cache)
    (cache / "models--org--b").mkdir()
    (cache / "models--org--a" / "blobs" / "3333").write_text("new")
    result = changes(cache, before)
    assert result.added == ["models--org--a/blobs/3333", "models--org--b"]
    assert result.removed == []
    assert result  # -- the parents' mtimes changed as well
    assert set(result.modified) <= {".", "models--org--a/blobs"}


def test_removed_file(cache: Path) -> None:
    before = take(cache)
    (cache / "models--org--a" / "blobs" / "1111").unlink()
    result = changes(cache, before)
    assert result.removed == ["models--org--a/blobs/1111"]
    assert result.added == []


def test_modified_size(cache: Path) -> None:
    blob = cache / "models--org--a" / "blobs" / "2222"
    stat = blob.stat()
    before = take(cache)
    blob.write_bytes(b"longer weights")
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # -- only the size differs
    assert changes(cache, before).modified == ["models--org--a/blobs/2222"]


def test_modified_mtime_only(cache: Path) -> None:
    blob = cache / "models--org--a" / "blobs" / "2222"
    before = take(cache)
    stat = blob.stat()
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    result = changes(cache, before)
    assert result.modified == ["models--org--a/blobs/2222"]
    assert result.added == result.removed == []


def test_transient_file_shows_as_modified_dir(cache: Path) -> None:
    blobs = cache / "models--org--a" / "blobs"
    os.utime(blobs, ns=(0, 1_000_000_000))  # -- a past mtime, so the change is visible
    before = take(cache)
    (blobs / "lock").write_text("")
    (blobs / "lock").unlink()
    assert changes(cache, before).modified == ["models--org--a/blobs"]


def test_symlinks_are_not_followed(cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_text("x")
    (cache / "elsewhere").symlink_to(outside, target_is_directory=True)
    (cache / "dangling").symlink_to(tmp_path / "missing")
    before = take(cache)
    assert "elsewhere/big.bin" not in before
    assert {"elsewhere", "dangling"} <= before.keys()
    (outside / "big.bin").write_text("changed, outside the cache")
    (outside / "more.bin").write_text("y")
    assert not changes(cache, before)


def test_contents_are_never_read(cache: Path) -> None:
    fifo = cache / "models--org--a" / "blobs" / "pipe"
    os.mkfifo(fifo)  # -- reading it would block forever
    assert "models--org--a/blobs/pipe" in take(cache)


def test_thousands_of_files_are_fast(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for d in range(50):
        folder = root / f"models--org--m{d}" / "blobs"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"{f:04d}").touch()
    started = time.perf_counter()
    manifest = take(root)
    assert len(manifest) == 1 + 50 * 2 + 50 * 100
    assert time.perf_counter() - started < 2.0


def test_missing_root_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read the model cache .*/nope: "
                                          r"No such file or directory$"):
        take(tmp_path / "nope")


def test_describe_names_changes_and_counts_the_rest() -> None:
    result = CacheChanges(Path("/hf/hub"), added=["a/b", "a/c"], removed=["r"],
                          modified=["m1", "m2"])
    assert result.describe() == \
        "the run changed the model cache /hf/hub: added a/b, a/c, removed r, modified m1, m2"
    assert result.describe(limit=3) == \
        "the run changed the model cache /hf/hub: added a/b, a/c, removed r (+2 more)"
    assert CacheChanges(Path("/c"), [], [], ["c"]).describe() == \
        "the run changed the model cache /c: modified c"
