"""Benchmark the live suite on the demo portfolio: wall time against the SUT's unavoidable work.

    .venv/bin/python -m bench.run            (or: make bench)

Runs `behave --tags=@live_e2e` twice in one invocation, with server reuse on and off, and
reports for each: wall time, server starts, summed server startup-to-ready time, summed
request time, summed CLI time, summed reference-decoder time, and the overhead ratio =
wall / (startup + requests + CLI + reference). Also the demo portfolio's warm build time.
Writes a table to stdout and reports/bench.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.demo_portfolio import DEFAULT_ROOT, ensure_built
from support.paths import ROOT
from support.verdict import read as read_verdict

BEHAVE = Path(sys.executable).parent / "behave"
TARGETS = {"overhead_ratio": 1.25, "wall_seconds_reuse_on": 300.0, "warm_build_seconds": 1.0}


def live_run(label: str, *extra: str) -> dict:
    reports = Path(tempfile.mkdtemp(prefix=f"mlx-e2e-bench-{label}-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": str(reports)}
    started = time.monotonic()
    run = subprocess.run([str(BEHAVE), "--tags=@live_e2e", "-f", "progress", "--no-junit",
                          "-o", str(reports / "progress.txt"), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    verdict = read_verdict(reports)
    s = verdict["seconds"]
    work = s.get("server_startup", 0) + s.get("request", 0) + s.get("cli", 0) + s.get("reference", 0)
    return {
        "label": label, "behave_exit": run.returncode, "wall_seconds": round(wall, 1),
        "server_starts": verdict["server_starts"], **{f"{k}_seconds": v for k, v in s.items()},
        "sut_work_seconds": round(work, 1), "overhead_ratio": round(wall / work, 3) if work else None,
        "unexpected_failures": len(verdict["unexpected_failures"]), "reports": str(reports),
    }


def main() -> int:
    ensure_built(DEFAULT_ROOT, log=lambda line: None)
    started = time.monotonic()
    ensure_built(DEFAULT_ROOT, log=lambda line: None)
    warm = time.monotonic() - started
    on = live_run("reuse-on")
    off = live_run("reuse-off", "-D", "server_reuse=off")
    result = {"warm_build_seconds": round(warm, 3), "runs": [on, off],
              "reuse_speedup": round(off["wall_seconds"] / on["wall_seconds"], 2), "targets": TARGETS,
              "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]}}
    keys = ["wall_seconds", "server_starts", "server_startup_seconds", "request_seconds", "cli_seconds",
            "reference_seconds", "sut_work_seconds", "overhead_ratio", "unexpected_failures"]
    print(f"{'':26}{'reuse on':>12}{'reuse off':>12}")
    for k in keys:
        print(f"{k:26}{str(on.get(k, 0)):>12}{str(off.get(k, 0)):>12}")
    print(f"warm demo build: {warm:.3f} s; reuse off / reuse on wall time: {result['reuse_speedup']}x")
    out = ROOT / "reports" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
