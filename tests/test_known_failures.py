"""The live suite on a slice of the demo portfolio fails exactly where the registry says it does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    # As `make e2e` runs the demo: two shards side by side (support/parallel.py), merged.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": ""}
    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "support.parallel", "--jobs", "2", "--reports", str(reports),
                          "-D", "include=" + ",".join(SLICE)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    where = (f"exit {run.returncode}; consoles: {tmp_path}/reports-shard-1/console.txt, reports-shard-2/console.txt; "
             f"stderr tail: {run.stderr[-1500:]}")
    assert (reports / "verdict.json").is_file(), where
    verdict = json.loads((reports / "verdict.json").read_text())

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
            if p.environ().get("MLX_E2E_REPORTS", "").startswith(str(tmp_path)):
                left.append((p.pid, p.info["cmdline"]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    assert left == [], f"processes of the run still alive: {left}"
