"""Write repositories in the Hugging Face cache layout, into a directory marked as a test cache.

Layout: `hub/models--ORG--NAME/{blobs/<sha256>, snapshots/<rev>/<file> -> ../../blobs/<sha256>,
refs/main}`, as `huggingface_hub.scan_cache_dir()` reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..errors import SuiteError

SENTINEL = "MLX-E2E-TEST-CACHE-SENTINEL.json"


def is_test_cache(root: Path) -> bool:
    return (root / SENTINEL).is_file()


def claim(root: Path) -> None:
    """Make `root` ours: refuse a non-empty directory without our sentinel (a user's cache)."""
    if root.exists() and not root.is_dir():
        raise SuiteError(f"cannot build the demo portfolio at {root}: it is a file, not a directory")
    if root.is_dir() and any(root.iterdir()) and not is_test_cache(root):
        raise SuiteError(
            f"refusing to build the demo portfolio into {root}: it is not empty and has no "
            f"{SENTINEL} (it may be a real model cache); choose an empty directory with --out"
        )
    root.mkdir(parents=True, exist_ok=True)
    if not is_test_cache(root):
        write_sentinel(root, fingerprint=None)


def read_sentinel(root: Path) -> dict:
    try:
        return json.loads((root / SENTINEL).read_text())
    except (OSError, ValueError):
        return {}


def write_sentinel(root: Path, fingerprint: str | None) -> None:
    body = {"purpose": "mlx-e2e demo portfolio: a test cache built by the suite, safe to delete",
            "fingerprint": fingerprint}
    (root / SENTINEL).write_text(json.dumps(body, indent=2) + "\n")


def clear_hub(root: Path) -> None:
    """Remove a previous build's repos (only ever called on a directory we claimed)."""
    assert is_test_cache(root), root
    shutil.rmtree(root / "hub", ignore_errors=True)


def write_repo(root: Path, repo_id: str, files: dict[str, bytes], sparse: dict[str, int] | None = None) -> Path:
    """Write one model repo; `sparse` maps paths to sizes of files with holes (no disk use)."""
    org, name = repo_id.split("/")
    repo = root / "hub" / f"models--{org}--{name}"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    entries: dict[str, str] = {}
    for rel, data in sorted(files.items()):
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        entries[rel] = digest
    for rel, size in sorted((sparse or {}).items()):
        digest = hashlib.sha256(f"sparse:{rel}:{size}".encode()).hexdigest()
        with open(blobs / digest, "wb") as f:
            f.truncate(size)
        entries[rel] = digest
    rev = hashlib.sha1(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    snapshot = repo / "snapshots" / rev
    for rel, digest in entries.items():
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(rel).parts) + 1  # up to the repo dir from the link's folder
        os.symlink(os.path.join(*([".."] * depth), "blobs", digest), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snapshot
