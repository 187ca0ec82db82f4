"""The live run, as one behave run or as several shards side by side, joined into one report.

``python -m support.parallel [--jobs N|auto] [--reports DIR] [BEHAVE_ARG ...]`` (``make e2e``,
``make e2e JOBS=2``) runs ``behave --tags=@live_e2e``: with one job as it is, into DIR, judged like
``python -m support.verdict``; with N jobs as N shards (``-D shard=i/N``) at the same time, each
into its own folder ``DIR-shard-i`` (its console in ``console.txt``; on the console every line is
prefixed ``[i/N]``), then merged into DIR (support/merge.py) as if one run had tested the
portfolio, the merged matrix printed and the merged verdict judged.

``auto`` (the default): 2 shards for the demo portfolio on a machine with 2 or more cores (its
models are tiny: the run is bound by process start-ups, which two cores do twice as fast), 1 for
a user's cache (its models compete for the same memory). With several shards on a user's cache,
each gets an equal share of the RAM budget unless ``-D ram_budget_gb`` is given. Ctrl-C or
SIGTERM ends every shard: SIGTERM to each (it stops its servers), killed after GRACE_S.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import config, merge as merging, ram_budget, verdict as verdicts
from .errors import SuiteError

GRACE_S = 30.0  # a shard asked to stop gets this long to stop its servers before it is killed
RUN_LIMIT_S = 6 * 3600.0  # no live run takes longer: a shard still running then is stopped


def say(line: str) -> None:
    print(f"mlx-e2e: {line}", file=sys.stderr, flush=True)


def userdata(args: Sequence[str]) -> dict[str, str]:
    """The ``-D key=value`` / ``--define key=value`` pairs of behave arguments."""
    found, it = {}, iter(args)
    for a in it:
        if a in ("-D", "--define"):
            a = next(it, "")
        elif a.startswith("--define="):
            a = a[len("--define="):]
        elif a.startswith("-D") and len(a) > 2:
            a = a[2:]
        else:
            continue
        key, _, value = a.partition("=")
        found[key] = value
    return found


def is_demo(data: Mapping[str, str], environ: Mapping[str, str]) -> bool:
    return not data.get("hf_home") and not environ.get("HF_HOME")


def choose_jobs(text: str, data: Mapping[str, str], environ: Mapping[str, str], cores: int | None) -> int:
    """The number of shards: ``auto`` (see the module's doc) or a whole number >= 1."""
    if text == "auto":
        return 2 if is_demo(data, environ) and (cores or 1) >= 2 and "shard" not in data else 1
    if not text.isdigit() or int(text) < 1:
        raise SuiteError(f"JOBS={text!r}: expected a whole number of shards >= 1, or auto")
    if int(text) > 1 and "shard" in data:
        raise SuiteError(f"JOBS={text} makes the shards itself: leave out -D shard=... or set JOBS=1")
    return int(text)


def shard_dirs(reports: Path, jobs: int) -> list[Path]:
    return [reports.with_name(f"{reports.name}-shard-{i}") for i in range(1, jobs + 1)]


def shard_args(args: Sequence[str], i: int, jobs: int, data: Mapping[str, str],
               environ: Mapping[str, str]) -> list[str]:
    """Shard i's behave arguments; on a user's cache with it its share of the RAM budget."""
    extra = ["-D", f"shard={i}/{jobs}"]
    if not is_demo(data, environ) and "ram_budget_gb" not in data:
        extra += ["-D", f"ram_budget_gb={ram_budget.system_budget().budget_gb / jobs:.2f}"]
    return ["--tags=@live_e2e", *args, *extra]


# What a run writes into its reports folder before it finishes (a shard that ended early leaves these)
UNFINISHED_RUN = {"console.txt", "allure-results", "evidence", "servers"}


def clear(folder: Path) -> None:
    """Empty a reports folder; refuses one that holds anything but an earlier run's reports (a
    finished run's, or one that ended early and left only UNFINISHED_RUN entries)."""
    if folder.exists():
        names = {p.name for p in folder.iterdir()}
        if names and not (folder / "verdict.json").is_file() and not (folder / "junit").is_dir() \
                and not names <= UNFINISHED_RUN:
            raise SuiteError(f"{folder} is not a reports folder of an earlier run: give another folder")
        shutil.rmtree(folder)


def _behave(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "behave", *argv]


def _pump(stream, prefix: str, log: Path) -> None:
    with log.open("w", encoding="utf-8") as out:
        for line in iter(stream.readline, ""):
            out.write(line)
            out.flush()
            sys.stdout.write(prefix + line)
            sys.stdout.flush()


class Shards:
    """The shard processes of one run, started and ended together."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.pumps: list[threading.Thread] = []

    def start(self, argv: list[str], reports: Path, prefix: str) -> None:
        reports.mkdir(parents=True)
        env = {**os.environ, "MLX_E2E_REPORTS": str(reports), "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen(_behave(argv), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                encoding="utf-8", errors="replace", start_new_session=True)
        self.procs.append(proc)
        pump = threading.Thread(target=_pump, args=(proc.stdout, prefix, reports / "console.txt"), daemon=True)
        pump.start()
        self.pumps.append(pump)

    def wait(self, limit_s: float = RUN_LIMIT_S) -> list[int]:
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=limit_s))
            except subprocess.TimeoutExpired:
                say(f"a shard (pid {proc.pid}) still runs after {limit_s:.0f} s: stopping every shard")
                self.stop()
                codes.append(proc.returncode if proc.returncode is not None else 1)
        for pump in self.pumps:
            pump.join(timeout=10)
        return codes

    def stop(self) -> None:
        """SIGTERM to every shard still running (it ends its servers), SIGKILL after GRACE_S."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_one(reports: Path, args: Sequence[str]) -> int:
    clear(reports)
    env = {**os.environ, "MLX_E2E_REPORTS": str(reports), "HF_HUB_OFFLINE": "1"}
    code = subprocess.call(_behave(["--tags=@live_e2e", *args]), env=env)
    return verdicts.main([str(code)], reports)


def run_shards(jobs: int, reports: Path, args: Sequence[str], data: Mapping[str, str]) -> int:
    dirs = shard_dirs(reports, jobs)
    for folder in (reports, *dirs):
        clear(folder)
    if is_demo(data, os.environ):  # built once here, not by every shard at the same time
        from .demo_portfolio import ensure_built

        ensure_built(log=say)
    say(f"{jobs} shards side by side (JOBS={jobs}): {', '.join(d.name for d in dirs)}, merged into {reports.name}")
    shards = Shards()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for i, folder in enumerate(dirs, 1):
            shards.start(shard_args(args, i, jobs, data, os.environ), folder, f"[{i}/{jobs}] ")
        codes = shards.wait()
    except KeyboardInterrupt:
        say("interrupted: stopping every shard")
        shards.stop()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    unfinished = [(d, c) for d, c in zip(dirs, codes) if verdicts.read(d) is None]
    if unfinished:
        for folder, code in unfinished:
            say(f"shard {folder.name} ended with exit code {code} before its run finished: see {folder / 'console.txt'}")
        return max(c for _, c in unfinished) or 1
    try:
        verdict = merging.merge(reports, dirs, say)
    except SuiteError as e:
        say(f"cannot merge the shards: {e}")
        return 2
    print((reports / merging.MATRIX).read_text(encoding="utf-8"), flush=True)
    return verdicts.judge(verdict, say)


def main(argv: list[str]) -> int:
    jobs_text, reports, args = "auto", os.environ.get("MLX_E2E_REPORTS") or "reports", list(argv)
    while args[:1] in (["--jobs"], ["--reports"]):
        flag, value, args = args[0], (args[1:2] or [""])[0], args[2:]
        if flag == "--jobs":
            jobs_text = value.strip() or "auto"
        else:
            reports = value
    data = userdata(args)
    try:
        jobs = choose_jobs(jobs_text, data, os.environ, os.cpu_count())
        if jobs == 1:
            return run_one(Path(reports).resolve(), args)
        config.load_settings(data, os.environ)  # bad input: one line here, not one per shard
        return run_shards(jobs, Path(reports).resolve(), args, data)
    except SuiteError as e:
        say(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
