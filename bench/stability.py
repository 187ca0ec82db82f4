"""Is the verdict stable? The live suite on the demo portfolio several times in a row, the last run
beside a CPU hog of this script's own (one busy loop per core, ended by PID), and the per-scenario
outcomes compared.

    .venv/bin/python -m bench.stability [--runs 3] [--no-hog] [--earlier REPORTS ...] [behave arguments...]

Each run is the production command (`make e2e`: support/parallel.py, its shards side by side) into
its own reports folder. A scenario's outcome is what the merged verdict says of it: passed, skipped,
known (with its issue id), failed or harness. Every run must give every scenario the same outcome.
``--earlier REPORTS`` (repeatable) counts the merged reports folder of an earlier run as a run
(e.g. ``--runs 0 --earlier R1 --earlier R2 --earlier R3``: only the run beside the hog is made now).
The hog's CPU seconds (psutil) and the load average sampled during each run are recorded: a hog that
did not load the machine is visible. Writes a table to stdout and reports/stability.json; exits 1
when the outcomes differ or a run fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

from support.demo_portfolio import DEFAULT_ROOT, ensure_built
from support.paths import ROOT
from support.verdict import read as read_verdict

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
RUN_LIMIT_S = 3600  # one whole live run never takes longer here


def outcomes(verdict: dict) -> dict[str, str]:
    """Scenario -> outcome of one run: "passed", "skipped", "failed", "harness", or the issue id of a
    known failure (a name met again is numbered "#1", "#2"...). A run that left no verdict has none."""
    found: dict[str, str] = {}
    for o in verdict.get("scenarios", []):
        name = o["scenario"].strip()
        name = next(f"{name} #{i}" for i in range(1, 10**6) if f"{name} #{i}" not in found) if name in found else name
        found[name] = o["detail"] if o["outcome"] == "known" else o["outcome"]
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


class LoadSampler:
    """The 1-minute load average every few seconds while a run goes on (its peak and mean)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every_s,), daemon=True)

    def _sample(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def summary(self) -> dict:
        s = self.samples
        return {"peak": round(max(s), 2), "mean": round(sum(s) / len(s), 2)} if s else {"peak": None, "mean": None}


def counts(found: dict[str, str]) -> dict[str, int]:
    return dict(sorted(Counter(v if v in ("passed", "skipped", "failed", "harness") else "known"
                               for v in found.values()).items()))


def live_run(label: str, extra: list[str]) -> dict:
    """One `make e2e` into a fresh reports folder: its exit, wall time, outcomes and the load seen."""
    reports = Path(tempfile.mkdtemp(prefix="mlx-e2e-stability-")) / "reports"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": ""}
    started = time.monotonic()
    with (reports.parent / "console.txt").open("w") as console, LoadSampler() as load:
        run = subprocess.run([sys.executable, "-m", "support.parallel", "--reports", str(reports), *extra],
                             cwd=ROOT, env=env, stdout=console, stderr=subprocess.STDOUT, timeout=RUN_LIMIT_S)
    found = outcomes(read_verdict(reports) or {})
    return {"label": label, "exit": run.returncode, "wall_seconds": round(time.monotonic() - started, 1),
            "load_average": load.summary(), "counts": counts(found), "outcomes": found, "reports": str(reports)}


def earlier_run(reports: Path) -> dict:
    """The merged reports folder of an earlier run, as a run of this comparison."""
    verdict = read_verdict(reports)
    if verdict is None:
        raise SystemExit(f"mlx-e2e: --earlier {reports}: no verdict.json there (not a finished run's reports)")
    found = outcomes(verdict)
    return {"label": f"earlier {reports}", "exit": 0, "wall_seconds": None, "load_average": None,
            "counts": counts(found), "outcomes": found, "reports": str(reports)}


def beside_a_hog(extra: list[str]) -> dict:
    """One run beside one busy loop per core (started here, ended by PID), the hog's CPU recorded."""
    cores = os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=RUN_LIMIT_S)]) for _ in range(cores)]
    hogs = [psutil.Process(p.pid) for p in procs]
    try:
        run = live_run(f"beside a CPU hog ({cores} busy loops)", extra)
        cpu = sum(h.cpu_times().user + h.cpu_times().system for h in hogs)
        run["hog_cpu_cores"] = round(cpu / run["wall_seconds"], 2)  # cores the hog kept busy, on average
        return run
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def main(argv: list[str]) -> int:
    runs_n, hog, earlier = 3, True, []
    if "--runs" in argv:
        at = argv.index("--runs")
        runs_n = int(argv[at + 1])
        del argv[at:at + 2]
    if "--no-hog" in argv:
        argv.remove("--no-hog")
        hog = False
    while "--earlier" in argv:
        at = argv.index("--earlier")
        earlier.append(earlier_run(Path(argv[at + 1])))
        del argv[at:at + 2]
    ensure_built(DEFAULT_ROOT, log=lambda line: None)
    results = earlier + [live_run(f"run {i + 1}", argv) for i in range(runs_n)]
    if hog:
        results.append(beside_a_hog(argv))
    if not results:
        raise SystemExit("mlx-e2e: nothing to compare (--runs 0, --no-hog and no --earlier)")
    diff = differences(results)
    for r in results:
        load = r["load_average"] or {}
        print(f"{r['label']:32} exit {r['exit']}  {r['wall_seconds'] or '-':>7} s  load peak {load.get('peak', '-')} "
              f"mean {load.get('mean', '-')}" + (f"  hog {r['hog_cpu_cores']} cores" if "hog_cpu_cores" in r else "")
              + f"  {r['counts']}")
    print(f"same outcomes of all {len(results[0]['outcomes'])} scenarios in every run" if not diff
          else "outcomes differ:\n  " + "\n  ".join(diff))
    out = ROOT / "reports" / "stability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": results, "differences": diff}, indent=2) + "\n")
    print(f"written: {out}")
    return 1 if diff or any(r["exit"] != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
