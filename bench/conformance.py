"""The conformance matrix: the live suite on every target, one table of scenarios x targets.

    .venv/bin/python -m bench.conformance                  (or: make conformance)
    .venv/bin/python -m bench.conformance --targets mlx_lm --mlx-lm /path/to/venv   (another mlx-lm)
    .venv/bin/python -m bench.conformance --mlx-lm-version 0.32.2   (one more column: that mlx-lm)
    .venv/bin/python -m bench.conformance --no-newest --jobs 1 -- -D include=mlx-e2e-demo/qwen-style
    .venv/bin/python -m bench.conformance --targets mlxk,mlx_lm,mlx_openai_server   (its venv made once)

The columns: mlxk and mlx_lm from the suite's venv, then every ``--mlx-lm VENV`` and
``--mlx-lm-version V``, then the newest mlx-lm on the package index (asked with ``pip index
versions``; left out with ``--no-newest``, or when it is the suite venv's own). A column that cannot
be measured (the index or its venv unreachable) is named in the table with why, and the rest is
measured. ``--mlx-lm-version V`` and the newest create (once; cached) .cache/venvs/mlx-lm-V: a venv
that sees the suite venv's packages (a .pth line) and has mlx-lm==V installed over them with pip.

Each column is one production run, ``python -m support.parallel --reports DIR -D target=T``: the
demo portfolio's 2 shards side by side, merged, judged, as ``make e2e`` does (its reports in
reports/conformance/<label>/: verdict.json, portfolio.md, evidence/, allure-results/; its console
and exit beside it, <label>.console.txt and <label>.run.json). Then:

* reports/conformance.md (also printed) and reports/conformance.html: one row per scenario, one
  column per target and version (bench/conformance_table.py, bench/conformance_page.py);
* reports/conformance/allure-results: every column's Allure results, the target as a parameter,
  and its HTML report reports/conformance/allure-report (bench/conformance_allure.py).

Exit: the worst column's (0 when each passes: every failure one of its registered known issues).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench import conformance_allure, conformance_page, conformance_table
from support.errors import HarnessError
from support.known_issues import load as load_registry
from support.openai_server_venv import VENVS, mlx_openai_server_venv, overlay_venv
from support.paths import REGISTRY, ROOT
from support.verdict import judge, read as read_verdict

REPORTS = ROOT / "reports"
RUNS = REPORTS / "conformance"
OUT, PAGE = REPORTS / "conformance.md", REPORTS / "conformance.html"
RUN_LIMIT_S = 3600.0  # one column (a whole demo run) never takes longer here
INDEX_TIMEOUT_S = 90.0
STOP_GRACE_S = 120.0  # a stopped run gets this long to end its shards (each has support.parallel.GRACE_S)


def say(line: str) -> None:
    print(f"mlx-e2e: {line}", file=sys.stderr, flush=True)


def record_of(label: str) -> Path:
    return RUNS / f"{label}.run.json"


def run_command(target: str, reports: Path, extra: list[str], jobs: str) -> list[str]:
    """The production command of one column (support/parallel.py, as make e2e runs it)."""
    return [sys.executable, "-m", "support.parallel", "--jobs", jobs, "--reports", str(reports),
            "-D", f"target={target}", *extra]


def stop(proc: subprocess.Popen) -> None:
    """End a column's run: SIGINT to its process group (the runner stops its shards and servers),
    SIGKILL when it has not ended after STOP_GRACE_S."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def run_column(label: str, target: str, extra: list[str], jobs: str = "auto",
               timeout: float = RUN_LIMIT_S) -> dict:
    """One column: the live run, its merged verdict with the label, the runner's exit, the judged
    exit and the wall time (also written to <label>.run.json)."""
    reports = RUNS / label
    RUNS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": ""}
    started = time.monotonic()
    with (RUNS / f"{label}.console.txt").open("w", encoding="utf-8") as console:
        proc = subprocess.Popen(run_command(target, reports, extra, jobs), cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            code = None
        except BaseException:  # Ctrl-C
            stop(proc)
            raise
    verdict = read_verdict(reports)
    said: list[str] = []
    if verdict is None:
        exit_code = code or 1
        said.append(f"no verdict: the run ended with {code if code is not None else f'no exit after {timeout:.0f} s'}"
                    f" before it finished; see {RUNS / f'{label}.console.txt'}")
    else:
        exit_code = max(code if code is not None else 1, judge(verdict, said.append))
    result = {"label": label, "runner_exit": code, "exit": exit_code, "why": "; ".join(said) or None,
              "wall_seconds": round(time.monotonic() - started, 1)}
    record_of(label).write_text(json.dumps(result, indent=2) + "\n")
    return {**(verdict or {"scenarios": [], "target": target, "sut_version": "?"}), **result}


def earlier_run(label: str) -> dict:
    """A column's last run, as run_column returned it (for --reuse)."""
    verdict, record = read_verdict(RUNS / label), record_of(label)
    if verdict is None or not record.is_file():
        raise SystemExit(f"mlx-e2e: no finished conformance run of {label} (no {RUNS / label}/verdict.json "
                         f"or {record})")
    return {**verdict, **json.loads(record.read_text())}


def newest_mlx_lm(timeout: float = INDEX_TIMEOUT_S) -> tuple[str | None, str]:
    """The newest mlx-lm on the package index for this Python (``pip index versions``), or None and
    why not (one line)."""
    command = [sys.executable, "-m", "pip", "index", "versions", "mlx-lm", "--json", "--timeout", "20",
               "--retries", "1", "--disable-pip-version-check"]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"the package index did not answer `pip index versions mlx-lm` within {timeout:.0f} s"
    try:
        latest = json.loads(run.stdout).get("latest") if run.returncode == 0 else None
    except ValueError:
        latest = None
    if not latest:
        errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR")] or run.stderr.splitlines()
        return None, (f"`pip index versions mlx-lm` exited {run.returncode}: "
                      f"{(errors or ['(no output)'])[-1].strip()}")
    return str(latest), "newest on the package index"


def mlx_lm_venv(version: str) -> Path:
    """.cache/venvs/mlx-lm-VERSION with mlx-lm==VERSION over the suite venv's packages (made once)."""
    venv = VENVS / f"mlx-lm-{version}"
    if (venv / "bin" / "mlx_lm.server").exists():
        return venv
    python = overlay_venv(venv)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"mlx-lm=={version}"], check=True, timeout=1200)
    return venv


def versioned_column(version: str, why: str) -> tuple[tuple[str, str, list[str]] | None, str | None]:
    """The column of mlx-lm==version in its cached venv, or None and the line saying why it was not measured."""
    try:
        venv = mlx_lm_venv(version)
    except (HarnessError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        return None, f"mlx_lm {version} ({why}): its venv {VENVS / f'mlx-lm-{version}'} could not be made ({e})"
    return (f"mlx_lm-{venv.name}", "mlx_lm", ["-D", f"mlx_lm={venv}"]), None


def target_column(target: str) -> tuple[tuple[str, str, list[str]] | None, str | None]:
    """A target's column; mlx-openai-server's runs from its cached venv (made on first use), or None and why not."""
    if target != "mlx_openai_server":
        return (target, target, []), None
    try:
        venv = mlx_openai_server_venv(log=say)
    except HarnessError as e:
        return None, f"mlx_openai_server: its venv could not be made ({str(e).splitlines()[0]})"
    return (target, target, ["-D", f"mlx_openai_server={venv}"]), None


def plan(targets: list[str], venvs: list[str], versions: list[str], newest: bool,
         find_newest=newest_mlx_lm, make_column=versioned_column) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """The columns to run ``(label, target, behave arguments)`` and the not-measured lines."""
    found = [target_column(t) for t in targets]
    columns = [column for column, _ in found if column is not None]
    columns += [(f"mlx_lm-{Path(v).name}", "mlx_lm", ["-D", f"mlx_lm={v}"]) for v in venvs]
    wanted = [(v, "--mlx-lm-version") for v in versions]
    missing: list[str] = [line for _, line in found if line is not None]
    if newest:
        latest, why = find_newest()
        suite = metadata.version("mlx-lm")
        if latest is None:
            missing.append(f"the newest mlx-lm: {why}")
        elif latest == suite:
            say(f"the newest mlx-lm, {latest}, is the suite venv's own: no column of its own")
        elif latest not in versions:
            wanted.append((latest, why))
    for version, why in wanted:
        column, line = make_column(version, why)
        if column is None:
            missing.append(line)
        else:
            columns.append(column)
    return columns, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="mlxk,mlx_lm", help="comma-separated targets (default: mlxk,mlx_lm; also: mlx_openai_server)")
    parser.add_argument("--mlx-lm", action="append", default=[], metavar="VENV",
                        help="one more mlx_lm column, from this venv (repeatable)")
    parser.add_argument("--mlx-lm-version", action="append", default=[], metavar="V",
                        help="one more mlx_lm column: mlx-lm==V in a cached venv under .cache/venvs (repeatable)")
    parser.add_argument("--no-newest", action="store_true", help="leave out the newest mlx-lm's column")
    parser.add_argument("--jobs", default="auto", help="shards side by side per column (support/parallel.py)")
    parser.add_argument("--reuse", action="append", default=[], metavar="LABEL",
                        help="take this column from its last run in reports/conformance/LABEL instead of running it")
    parser.add_argument("behave_args", nargs="*", help="more behave arguments, after --, e.g. -- -D include=...")
    args = parser.parse_args(argv)
    columns, missing = plan([t for t in args.targets.split(",") if t], args.mlx_lm, args.mlx_lm_version,
                            not args.no_newest)
    for line in missing:
        say(f"not measured: {line}")
    runs = []
    for label, target, extra in columns:
        if label in args.reuse:
            runs.append(earlier_run(label))
            continue
        say(f"conformance run on {label} ...")
        run = run_column(label, target, [*extra, *args.behave_args], args.jobs)
        say(f"{label}: {conformance_table.counts(run)} in {run['wall_seconds']} s; {run['why'] or 'passes'}")
        runs.append(run)
    titles = {e.id: e.title for e in load_registry(REGISTRY).entries}
    text = conformance_table.render(runs, titles, missing)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    PAGE.write_text(conformance_page.render(runs, titles, missing, RUNS.name), encoding="utf-8")
    print(text)
    joined = conformance_allure.join([(conformance_table.column(run), RUNS / run["label"] / "allure-results")
                                      for run in runs], RUNS / "allure-results", text)
    why_not = conformance_allure.generate(RUNS / "allure-results", RUNS / "allure-report")
    say(f"written {OUT}, {PAGE}, {RUNS / 'allure-results'} ({joined} results) and "
        + (f"{RUNS / 'allure-report'}/index.html" if why_not is None else f"no Allure HTML report: {why_not}"))
    return max((run["exit"] for run in runs), default=0)


if __name__ == "__main__":
    sys.exit(main())
