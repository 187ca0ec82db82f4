"""The live suite on a slice of the demo portfolio fails exactly where the registry says it does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from support import known_issues
from support.config import check_mlxk, default_mlxk, parse_sut_version
from support.paths import REGISTRY, ROOT

# A clean model, and models that show each kind of registered defect (arctic-style-embed: the
# embedding ones; the scenarios that take any embedding model take it).
SLICE = ("mlx-e2e-demo/gemma-style", "mlx-e2e-demo/phi3-style", "mlx-e2e-demo/utf8-style",
         "mlx-e2e-demo/reasoning-style", "mlx-e2e-demo/base-style", "mlx-e2e-demo/arctic-style-embed",
         "mlx-e2e-demo/vision-style", "mlx-e2e-demo/whisper-style")


def test_exactly_the_registered_failures_happen(demo_root, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": str(tmp_path)}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "behave"), "--tags=@live_e2e", "-D", "include=" + ",".join(SLICE),
         "-f", "plain", "--no-junit", "-o", str(tmp_path / "plain.txt")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    where = f"behave exit {run.returncode}; log: {tmp_path / 'plain.txt'}; stderr tail: {run.stderr[-1500:]}"

    assert verdict["unexpected_failures"] == [], where
    assert verdict["harness_problems"] == [], where
    assert verdict["harness_failures"] == [], where
    version = parse_sut_version(check_mlxk(default_mlxk()))
    registry = known_issues.load(REGISTRY)
    expected = {e.id for e in registry.entries if any(e.applies_to(m, version) for m in SLICE)}
    seen = {k["issue"] for k in verdict["known_failures"]}
    assert seen == expected, f"registered for this slice: {sorted(expected)}, failed: {sorted(seen)}; {where}"

    # Every server the run started is gone (they inherit MLX_E2E_REPORTS from the run).
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.environ().get("MLX_E2E_REPORTS") == str(tmp_path):
                left.append((p.pid, p.info["cmdline"]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    assert left == [], f"processes of the run still alive: {left}"
