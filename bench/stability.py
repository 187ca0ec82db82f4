"""Is the verdict stable? The live suite on the demo portfolio several times in a row, the last run
beside a CPU hog of this script's own (one busy loop per core, ended by PID), and the per-scenario
outcomes compared.

    .venv/bin/python -m bench.stability [--runs 3] [--no-hog] [behave arguments...]

Each run is the production command (`make e2e`: support/parallel.py, its shards side by side) into
its own reports folder. A scenario's outcome is what the merged verdict says of it: passed, skipped,
known (with its issue id), failed or harness. Every run must give every scenario the same outcome.
Writes a table to stdout and reports/stability.json; exits 1 when the outcomes differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from support.demo_portfolio import DEFAULT_ROOT, ensure_built
from support.paths import ROOT
from support.verdict import read as read_verdict

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
RUN_LIMIT_S = 3600  # one whole live run never takes longer here


def outcomes(verdict: dict) -> dict[str, str]:
    """Scenario -> outcome of one run: "passed", "skipped", "failed", "harness", or the issue id of a
    known failure (a name met again is numbered "#1", "#2"...). A run that left no verdict has none."""
    found: dict[str, str] = {}
    for o in verdict.get("outcomes", []):
        name = o["scenario"].strip()
        name = next(f"{name} #{i}" for i in range(1, 10**6) if f"{name} #{i}" not in found) if name in found else name
        found[name] = o["detail"] if o["status"] == "known" else o["status"]
    return found


def differences(runs: list[dict]) -> list[str]:
    """How each run's outcomes differ from the first run's, one line each (empty: all the same)."""
    first, lines = runs[0], []
    for run in runs[1:]:
        if not run["outcomes"]:
            lines.append(f"{run['label']}: no verdict (exit {run['exit']}; see {run['reports']})")
            continue
        for name in sorted(set(first["outcomes"]) | set(run["outcomes"])):
            a, b = first["outcomes"].get(name, "not run"), run["outcomes"].get(name, "not run")
            if a != b:
                lines.append(f"{run['label']}: {name}: {b} (in {first['label']}: {a})")
    return lines


def live_run(label: str, extra: list[str]) -> dict:
    """One `make e2e` into a fresh reports folder: its exit, wall time, outcomes and the load seen."""
    reports = Path(tempfile.mkdtemp(prefix="mlx-e2e-stability-")) / "reports"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": ""}
    started, load = time.monotonic(), os.getloadavg()[0]
    with (reports.parent / "console.txt").open("w") as console:
        run = subprocess.run([sys.executable, "-m", "support.parallel", "--reports", str(reports), *extra],
                             cwd=ROOT, env=env, stdout=console, stderr=subprocess.STDOUT, timeout=RUN_LIMIT_S)
    found = outcomes(read_verdict(reports) or {})
    return {"label": label, "exit": run.returncode, "wall_seconds": round(time.monotonic() - started, 1),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
            "counts": dict(sorted(Counter(v if v in ("passed", "skipped", "failed", "harness") else "known"
                                          for v in found.values()).items())),
            "outcomes": found, "reports": str(reports)}


def main(argv: list[str]) -> int:
    runs_n, hog = 3, True
    if "--runs" in argv:
        at = argv.index("--runs")
        runs_n = int(argv[at + 1])
        del argv[at:at + 2]
    if "--no-hog" in argv:
        argv.remove("--no-hog")
        hog = False
    ensure_built(DEFAULT_ROOT, log=lambda line: None)
    results = [live_run(f"run {i + 1}", argv) for i in range(runs_n)]
    if hog:
        cores = os.cpu_count() or 1
        procs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=RUN_LIMIT_S)]) for _ in range(cores)]
        try:
            results.append(live_run(f"beside a CPU hog ({cores} busy loops)", argv))
        finally:
            for p in procs:
                p.kill()
                p.wait(10)
    diff = differences(results)
    for r in results:
        print(f"{r['label']:32} exit {r['exit']}  {r['wall_seconds']:7.1f} s  load {r['load_average'][0]:.1f}"
              f"->{r['load_average'][1]:.1f}  {r['counts']}")
    print(f"same outcomes of all {len(results[0]['outcomes'])} scenarios in every run" if not diff
          else "outcomes differ:\n  " + "\n  ".join(diff))
    out = ROOT / "reports" / "stability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": results, "differences": diff}, indent=2) + "\n")
    print(f"written: {out}")
    return 1 if diff or any(r["exit"] != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
