"""The mlx_lm target live: a small slice of the suite on mlx-lm's own server and command line, and
the discovery by cache scan against mlx-knife's own listing of the demo portfolio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import verdict
from support.cache_scan import scan_entries
from support.discovery import run_mlxk_list
from support.paths import ROOT

pytestmark = pytest.mark.live
MODEL = "mlx-e2e-demo/gemma-style"
LISTING = "The listing is valid JSON and holds every portfolio model"
FIELDS = ("name", "size_bytes", "framework", "model_type", "capabilities", "health")


def test_the_cache_scan_reads_the_demo_portfolio_as_mlx_knife_lists_it(demo_root, mlxk):
    listed = {e["name"]: {k: e[k] for k in FIELDS} for e in run_mlxk_list(mlxk, demo_root, timeout=120)}
    scanned = {e["name"]: {k: e[k] for k in FIELDS} for e in scan_entries(demo_root)}
    assert scanned == listed


def test_a_slice_on_mlx_lm_passes_with_its_known_issues_and_skips_what_it_lacks(demo_root, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": str(tmp_path)}
    cli = (ROOT / "features" / "cli.feature").read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(cli, start=1) if text.strip() == f"Scenario: {LISTING}")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "behave"), "--tags=@live_e2e", "-D", "target=mlx_lm",
         "-D", f"include={MODEL}", "features/server/api.feature", f"features/cli.feature:{line}",
         "-f", "plain", "--no-junit", "-o", str(tmp_path / "plain.txt")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    found = verdict.read(tmp_path)
    where = f"behave exit {run.returncode}; log: {tmp_path / 'plain.txt'}; stderr tail: {run.stderr[-1500:]}"
    assert found is not None, where
    assert found["target"] == "mlx_lm" and verdict.exit_code(run.returncode, found, lambda line: None) == 0, where
    outcomes = {o["scenario"]: o for o in found["scenarios"]}
    listing = outcomes[LISTING]
    assert listing["outcome"] == "skipped" and listing["detail"].startswith("not offered by target mlx_lm"), where
    lists = outcomes[f"The server of {MODEL} is healthy and lists its model"]
    assert (lists["outcome"], lists["detail"]) == ("known", "KI-601"), where
    assert sum(o["outcome"] == "passed" for o in found["scenarios"]) == 4, where
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "first answer" in metrics["meaning"]["server_startup"] and metrics["target"] == "mlx_lm"
    startup = next(m for m in metrics["models"] if m["model"] == MODEL)["server_startup"]
    assert startup["n"] == 1, startup
