"""Is the verdict stable? The live suite on the demo portfolio several times in a row, the last run
beside a CPU hog of this script's own (one busy loop per core, ended by PID), and the per-scenario
outcomes compared.

    .venv/bin/python -m bench.stability [--runs 3] [--no-hog] [behave arguments...]

An outcome is what the verdict says of a failed scenario (its known issue, "unexpected" or "harness")
and, for the rest, the scenario counts of behave's summary. Every run must give the same outcomes.
Writes a table to stdout and reports/stability.json; exits 1 when the outcomes differ.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.demo_portfolio import DEFAULT_ROOT, ensure_built
from support.paths import ROOT
from support.verdict import read as read_verdict

BEHAVE = Path(sys.executable).parent / "behave"
_SUMMARY = re.compile(r"^(\d+) scenarios? passed, (\d+) failed, (\d+) skipped", re.MULTILINE)
HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def outcomes(verdict: dict, summary: str) -> dict:
    """The per-scenario outcomes of one run: failures by scenario, and the summary's counts."""
    failed = {k["scenario"].strip(): k["issue"] for k in verdict.get("known_failures", [])}
    failed.update({name.strip(): "unexpected" for name in verdict.get("unexpected_failures", [])})
    failed.update({name.strip(): "harness" for name in verdict.get("harness_failures", [])})
    found = _SUMMARY.search(summary)
    counts = dict(zip(("passed", "failed", "skipped"), map(int, found.groups()))) if found else None
    return {"failed": dict(sorted(failed.items())), "counts": counts}


def differences(runs: list[dict]) -> list[str]:
    """How each run's outcomes differ from the first run's, one line each (empty: all the same)."""
    first, lines = runs[0]["outcomes"], []
    for run in runs[1:]:
        got = run["outcomes"]
        if got["counts"] != first["counts"]:
            lines.append(f"{run['label']}: counts {got['counts']}, {runs[0]['label']}: {first['counts']}")
        for name in sorted(set(first["failed"]) | set(got["failed"])):
            a, b = first["failed"].get(name, "passed"), got["failed"].get(name, "passed")
            if a != b:
                lines.append(f"{run['label']}: {name}: {b} (in {runs[0]['label']}: {a})")
    return lines


def live_run(label: str, extra: list[str]) -> dict:
    reports = Path(tempfile.mkdtemp(prefix=f"mlx-e2e-stability-{label}-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": "",
           "MLX_E2E_REPORTS": str(reports)}
    started = time.monotonic()
    run = subprocess.run([str(BEHAVE), "--tags=@live_e2e", "-f", "progress", "--no-junit",
                          "-o", str(reports / "progress.txt"), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    verdict = read_verdict(reports) or {}
    return {"label": label, "behave_exit": run.returncode, "wall_seconds": round(time.monotonic() - started, 1),
            "outcomes": outcomes(verdict, run.stdout + run.stderr), "reports": str(reports)}


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
        procs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=3600)]) for _ in range(os.cpu_count() or 1)]
        try:
            results.append(live_run("beside a CPU hog", argv))
            results[-1]["load_average"] = os.getloadavg()[0]
        finally:
            for p in procs:
                p.kill()
                p.wait(10)
    diff = differences(results)
    for r in results:
        print(f"{r['label']:18} exit {r['behave_exit']}  {r['wall_seconds']:7.1f} s  {r['outcomes']['counts']}  "
              f"{len(r['outcomes']['failed'])} failed")
    print("same outcomes in every run" if not diff else "outcomes differ:\n  " + "\n  ".join(diff))
    out = ROOT / "reports" / "stability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": results, "differences": diff}, indent=2) + "\n")
    print(f"written: {out}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
