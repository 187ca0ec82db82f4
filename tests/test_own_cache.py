"""A user's own cache (HF_HOME outside the checkout, as on a self-hosted runner: .github/workflows/
own-cache.yml): the run only reads it, and a SUT that writes into it fails the run loudly."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from support.paths import ROOT

MODEL = "models--mlx-e2e-demo--gemma-style"
LISTING = ("--tags=@live_e2e", "--tags=@cli", "-n", "The listing is valid JSON")


def own_cache(demo_root: Path, where: Path) -> Path:
    """A one-model Hugging Face cache outside the checkout (no demo sentinel: a user's cache)."""
    shutil.copytree(demo_root / "hub" / MODEL, where / "hub" / MODEL, symlinks=True)
    return where


def run(cache: Path, reports: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cache), "MLX_E2E_REPORTS": ""}
    done = subprocess.run([sys.executable, "-m", "support.parallel", "--reports", str(reports), *LISTING, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    path = reports / "verdict.json"
    assert path.is_file(), f"the run did not finish (exit {done.returncode}): {done.stderr[-1500:]}"
    return done, json.loads(path.read_text())


def test_a_run_on_an_own_cache_only_reads_it(demo_root, tmp_path):
    cache = own_cache(demo_root, tmp_path / "models")
    before = sorted((str(p.relative_to(cache)), p.lstat().st_mtime_ns) for p in cache.rglob("*"))
    done, verdict = run(cache, tmp_path / "reports")
    assert done.returncode == 0 and verdict["harness_problems"] == [], done.stderr[-1500:]
    assert sorted((str(p.relative_to(cache)), p.lstat().st_mtime_ns) for p in cache.rglob("*")) == before


def test_a_sut_that_writes_into_the_cache_fails_the_run(demo_root, tmp_path):
    cache = own_cache(demo_root, tmp_path / "models")
    mlxk = Path(sys.executable).parent / "mlxk"
    writer = tmp_path / "mlxk-that-writes"
    writer.write_text(f'#!/bin/sh\ntouch "$HF_HOME/hub/{MODEL}/written-by-the-sut"\nexec "{mlxk}" "$@"\n')
    writer.chmod(writer.stat().st_mode | stat.S_IXUSR)
    done, verdict = run(cache, tmp_path / "reports", "-D", f"mlxk={writer}")
    problems = " ".join(verdict["harness_problems"])
    assert done.returncode != 0, f"the run passed although the SUT wrote into the cache: {done.stderr[-1500:]}"
    assert "written-by-the-sut" in problems, f"the cache check did not name the file: {verdict['harness_problems']}"
