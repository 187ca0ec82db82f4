"""The conformance matrix: the live suite on every target, one table of scenarios x targets.

    .venv/bin/python -m bench.conformance                  (or: make conformance)
    .venv/bin/python -m bench.conformance --targets mlx_lm --mlx-lm /path/to/venv   (another mlx-lm)
    .venv/bin/python -m bench.conformance --mlx-lm-version 0.32.2   (one more column: that mlx-lm)

Runs `behave --tags=@live_e2e -D target=T` once per target on the demo portfolio (each run's
reports in reports/conformance/<target>/: verdict.json, portfolio.md, evidence/, allure-results/),
then writes reports/conformance.md: one row per scenario (its model in its name), one column per
target, each cell pass / known KI-... / FAIL: message / harness: message / not offered: feature /
skipped: reason. A target's run passes when every failure is one of its registered known issues
(support/verdict.py). The table is also printed.

``--mlx-lm-version V`` creates (once; cached) .cache/venvs/mlx-lm-V: a venv that sees the suite
venv's packages (a .pth line) and has only mlx-lm==V installed over them with pip, from PyPI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support.known_issues import load as load_registry
from support.paths import REGISTRY, ROOT
from support.portfolio_matrix import markdown_table
from support.verdict import exit_code, read as read_verdict

BEHAVE = Path(sys.executable).parent / "behave"
VENVS = ROOT / ".cache" / "venvs"
OUT = ROOT / "reports" / "conformance.md"
NOT_OFFERED = "not offered by target "
RUN = "conformance-run.json"  # behave's exit, the verdict's exit and the wall time of one run
CELL_LIMIT = 90  # characters of a message in a cell; the whole first line is in the run's verdict.json


def run_target(target: str, reports: Path, *extra: str, timeout: float = 3600) -> dict:
    """One live run on `target`; its verdict with the label, behave's exit, the run's exit and wall time."""
    reports.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": "",
           "MLX_E2E_REPORTS": str(reports)}
    started = time.monotonic()
    run = subprocess.run([str(BEHAVE), "--tags=@live_e2e", "-D", f"target={target}", *extra, "-f", "progress",
                          "-o", str(reports / "progress.txt")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    (reports / "behave-stderr.txt").write_text(run.stderr)
    verdict = read_verdict(reports)
    said: list[str] = []
    code = exit_code(run.returncode, verdict, said.append)
    result = {"behave_exit": run.returncode, "exit": code, "why": "; ".join(said) or None,
              "wall_seconds": round(time.monotonic() - started, 1)}
    (reports / RUN).write_text(json.dumps(result, indent=2) + "\n")
    return {**(verdict or {"outcomes": [], "target": target, "sut_version": "?"}), **result}


def earlier_run(reports: Path) -> dict:
    """A finished run's verdict and exit, as run_target returned them (for --reuse)."""
    verdict, run = read_verdict(reports), reports / RUN
    if verdict is None or not run.is_file():
        raise SystemExit(f"mlx-e2e: no finished conformance run in {reports} (no verdict.json or {RUN})")
    return {**verdict, **json.loads(run.read_text())}


def mlx_lm_venv(version: str) -> Path:
    """.cache/venvs/mlx-lm-VERSION with mlx-lm==VERSION over the suite venv's packages (made once)."""
    venv = VENVS / f"mlx-lm-{version}"
    python = venv / "bin" / "python"
    if (venv / "bin" / "mlx_lm.server").exists():
        return venv
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    suite_site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    Path(site, "suite-venv.pth").write_text(suite_site + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"mlx-lm=={version}"], check=True, timeout=1200)
    return venv


def cell(outcome: dict | None) -> str:
    """One scenario's result on one target, as a table cell."""
    if outcome is None:
        return "-"
    status, detail = outcome["status"], outcome.get("detail") or ""
    if status == "passed":
        return "pass"
    if status == "known":
        return f"known {detail}"
    if status == "skipped":
        if detail.startswith(NOT_OFFERED):
            return "not offered: " + detail.split(": ", 1)[-1]
        return f"skipped: {detail}"
    label = "FAIL" if status == "failed" else "harness"
    return f"{label}: {detail[:CELL_LIMIT]}" + ("..." if len(detail) > CELL_LIMIT else "")


def column(run: dict) -> str:
    return f"{run.get('target', '?')} {run.get('sut_version', '?')}"


def counts(run: dict) -> dict[str, int]:
    found = {"passed": 0, "known": 0, "failed": 0, "harness": 0, "skipped": 0}
    for o in run.get("outcomes", []):
        found[o["status"]] += 1
    return found


def render(runs: list[dict], titles: dict[str, str] | None = None) -> str:
    """reports/conformance.md: the table (scenarios in the order the first run met them), the
    totals per target, and the registered known issues the table names."""
    titles = titles or {}
    order = list(dict.fromkeys(o["scenario"] for run in runs for o in run.get("outcomes", [])))
    by_run = [{o["scenario"]: o for o in run.get("outcomes", [])} for run in runs]
    header = ["scenario", *(column(r) for r in runs)]
    body = [[name, *(cell(results.get(name)) for results in by_run)] for name in order]
    out = ["# Conformance: the live suite on every target (demo portfolio)", "",
           "pass: passed; known KI-...: failed as a registered known issue (features/known_issues.toml); "
           "FAIL: failed without one; harness: the suite could not finish the scenario; not offered: "
           "the target lacks the feature the scenario needs (@needs.<feature>); skipped: RAM gate or "
           "portfolio rule; -: not in that run.", ""]
    out += ["| target | run | wall s | passed | known | FAIL | harness | skipped |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        c = counts(run)
        verdict = "passes" if run.get("exit") == 0 else f"FAILS (exit {run.get('exit')})"
        out.append(f"| {column(run)} | {verdict} | {run.get('wall_seconds', '?')} | {c['passed']} | {c['known']} | "
                   f"{c['failed']} | {c['harness']} | {c['skipped']} |")
    out += ["", *markdown_table(header, body), ""]
    named = sorted({o["detail"] for run in runs for o in run.get("outcomes", []) if o["status"] == "known"})
    if named:
        out += ["## Known issues in the table", ""] + [f"- {i}: {titles.get(i, '?')}" for i in named] + [""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="mlxk,mlx_lm", help="comma-separated targets (default: both)")
    parser.add_argument("--mlx-lm", action="append", default=[], metavar="VENV",
                        help="one more mlx_lm column, from this venv (repeatable)")
    parser.add_argument("--mlx-lm-version", action="append", default=[], metavar="V",
                        help="one more mlx_lm column: mlx-lm==V in a cached venv under .cache/venvs (repeatable)")
    parser.add_argument("--reuse", action="append", default=[], metavar="LABEL",
                        help="take this column from its last run in reports/conformance/LABEL instead of running it")
    parser.add_argument("behave_args", nargs="*", help="more behave arguments, after --, e.g. -- -n qwen-style")
    args = parser.parse_args(argv)
    plan = [(t, t, ()) for t in args.targets.split(",") if t]
    venvs = [*args.mlx_lm, *(str(mlx_lm_venv(v)) for v in args.mlx_lm_version)]
    plan += [(f"mlx_lm-{Path(v).name}", "mlx_lm", ("-D", f"mlx_lm={v}")) for v in venvs]
    runs = []
    for label, target, extra in plan:
        if label in args.reuse:
            runs.append(earlier_run(ROOT / "reports" / "conformance" / label))
            continue
        print(f"mlx-e2e: conformance run on {label} ...", file=sys.stderr, flush=True)
        run = run_target(target, ROOT / "reports" / "conformance" / label, *extra, *args.behave_args)
        print(f"mlx-e2e: {label}: {counts(run)} in {run['wall_seconds']} s; {run['why'] or ''}", file=sys.stderr)
        runs.append(run)
    titles = {e.id: e.title for e in load_registry(REGISTRY).entries}
    text = render(runs, titles)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(text)
    print(f"mlx-e2e: written {OUT}", file=sys.stderr)
    return max((run["exit"] for run in runs), default=0)


if __name__ == "__main__":
    sys.exit(main())
