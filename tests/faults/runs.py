"""Run a slice of the live suite against the fault shim, and read back what happened.

Each run gets its own reports folder (`MLX_E2E_REPORTS`), which every process of the run
inherits: after the run, any process whose environment still names that folder, or any
descendant of behave seen during the run that still runs, is a leftover.

Runs are cached per (fault, selection) for the whole pytest session and run in a small thread
pool, so the detection and robustness tests can share them and a slice of 40-odd runs takes
a couple of minutes; every run is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from processes import with_default_sigint
from support.verdict import read as read_verdict

from .catalogue import Selection
from .shim import FAULT_VAR, write_wrapper

ROOT = Path(__file__).resolve().parents[2]
BEHAVE = Path(sys.executable).parent / "behave"
RUN_TIMEOUT = 300.0  # seconds: a slice takes 5-30 s; this only stops a run that hangs
TRACK_EVERY = 0.1
GONE_WAIT = 5.0  # seconds to let dying processes disappear before calling them leftovers
WORKERS = int(os.environ.get("MLX_E2E_FAULT_WORKERS", "3"))

# Scenarios are indented by 2 (4 under a Rule:), their steps by 4 (6).
_SCENARIO = re.compile(r"^(?:  |    )Scenario(?: Outline)?: (?P<name>.*?)\s*$")
_STEP = re.compile(r"^(?:    |      )\S.* \.\.\. (?P<status>passed|failed|error|skipped|undefined|untested)"
                   r"(?: in (?P<seconds>[\d.]+)s)?\s*$")
_BLOCK_END = ("----", "CAPTURED ")


@dataclass
class Scenario:
    """One scenario as the plain formatter reported it."""

    name: str
    status: str = "skipped"  # "passed", "failed", or "skipped" (not run: no step ran)
    seconds: float = 0.0  # its steps' durations, summed
    message: str = ""  # what follows the failing step, up to the captured output

    @property
    def first_line(self) -> str:
        """The failure's first line (the failing step's table, which plain output repeats, skipped)."""
        return next((line for line in self.message.splitlines()
                     if line.strip() and not line.lstrip().startswith("|")), "")


def parse_plain(text: str) -> list[Scenario]:
    """Scenarios, their status, duration and failure message, from behave's `-f plain` output."""
    scenarios: list[Scenario] = []
    current: Scenario | None = None
    collecting = False
    for line in text.splitlines():
        m = _SCENARIO.match(line)
        if m:
            current = Scenario(m["name"])
            scenarios.append(current)
            collecting = False
            continue
        if current is None:
            continue
        s = _STEP.match(line)
        if s:
            collecting = False
            current.seconds += float(s["seconds"] or 0)
            if s["status"] in ("failed", "error", "undefined"):
                current.status = "failed"
                collecting = True
            elif s["status"] == "passed" and current.status == "skipped":
                current.status = "passed"
            continue
        if collecting:
            if line.startswith(_BLOCK_END):
                collecting = False
            else:
                current.message += line + "\n"
    return scenarios


@dataclass
class Run:
    fault: str | None
    selection: Selection
    folder: Path
    argv: list[str]
    returncode: int | None = None  # None: killed after RUN_TIMEOUT
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    plain: str = ""
    verdict: dict | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    seen: dict[int, str] = field(default_factory=dict)  # pid -> command line, every descendant of behave seen
    leftovers: list[str] = field(default_factory=list)
    signalled_at: float | None = None  # seconds into the run when a signal was sent (see on_start)

    @property
    def unexpected(self) -> list[str]:
        return list((self.verdict or {}).get("unexpected_failures", []))

    @property
    def known(self) -> list[dict]:
        return list((self.verdict or {}).get("known_failures", []))

    def scenario(self, name: str) -> Scenario | None:
        """The reported scenario of that name (whitespace around it ignored)."""
        return next((s for s in self.scenarios if s.name.strip() == name.strip()), None)

    def where(self) -> str:
        """Where to look when an assertion about this run fails."""
        return (f"\n  run: {' '.join(self.argv)}\n  fault: {self.fault or '(none)'}; exit {self.returncode} "
                f"after {self.seconds:.1f} s; reports: {self.folder}\n  verdict: "
                f"{json.dumps({k: (self.verdict or {}).get(k) for k in ('unexpected_failures', 'known_failures', 'harness_failures', 'harness_problems')})}"
                f"\n  stderr tail: {self.stderr[-1500:]}")


def assert_no_leftovers(run: Run) -> None:
    """No process of the run is alive after it, and the check saw processes to check."""
    assert run.leftovers == [], f"processes of the run still alive after it ended: {run.leftovers}{run.where()}"
    assert run.seen, f"no descendant of behave was ever seen: the leak check saw nothing to check{run.where()}"


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[:300]
    except psutil.Error:
        return "?"


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_of(folder: Path) -> list[psutil.Process]:
    """Every live process whose environment has MLX_E2E_REPORTS=folder."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MLX_E2E_REPORTS") == str(folder) and alive(proc):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def leftovers(folder: Path, tracked: dict[int, psutil.Process], wait: float = GONE_WAIT) -> list[str]:
    """Processes of the run still alive after `wait` seconds; they are then killed (and named)."""
    deadline = time.monotonic() + wait
    while True:
        left = {p.pid: p for p in processes_of(folder)}
        left.update({pid: p for pid, p in tracked.items() if alive(p)})
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    named = [f"{pid} {cmdline(p)}" for pid, p in sorted(left.items())]
    for p in left.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    return named


def behave_argv(selection: Selection, wrapper: Path, folder: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [str(BEHAVE), *selection.args, *extra, "-D", f"mlxk={wrapper}",
            "-f", "plain", "--no-junit", "-o", str(folder / "plain.txt")]


def run_behave(selection: Selection, fault: str | None, folder: Path, wrapper: Path,
               on_start: Callable[[psutil.Process, dict[int, psutil.Process]], bool] | None = None,
               extra: tuple[str, ...] = (), timeout: float = RUN_TIMEOUT) -> Run:
    """Run behave on `selection` with the shim as the SUT and `fault` injected.

    `on_start(behave, descendants)` is called while the run is going (every TRACK_EVERY s) until it
    returns True; the signal tests use it to interrupt behave once a server is up.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != FAULT_VAR}
    env.update({"HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": str(folder)})
    if fault:
        env[FAULT_VAR] = fault
    argv = behave_argv(selection, wrapper, folder, extra)
    run = Run(fault, selection, folder, argv)
    tracked: dict[int, psutil.Process] = {}
    began = time.monotonic()
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(with_default_sigint(argv), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)  # the signal tests send Ctrl-C
        try:
            me = psutil.Process(proc.pid)
            hooked = on_start is None
            while proc.poll() is None:
                try:
                    for child in me.children(recursive=True):
                        if child.pid not in tracked:
                            tracked[child.pid] = child
                            run.seen[child.pid] = cmdline(child)
                except psutil.Error:
                    pass
                if not hooked and on_start(me, tracked):
                    hooked = True
                    run.signalled_at = time.monotonic() - began
                if time.monotonic() - began > timeout:
                    proc.send_signal(signal.SIGINT)  # the suite's own clean-up first...
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()  # ...then the hard way; leftovers() below names what survived
                        proc.wait()
                    run.returncode = None
                    break
                time.sleep(TRACK_EVERY)
            else:
                run.returncode = proc.returncode
        except BaseException:
            proc.kill()
            proc.wait()
            leftovers(folder, tracked, wait=0)
            raise
    run.seconds = time.monotonic() - began
    run.leftovers = leftovers(folder, tracked)
    run.stdout = (folder / "stdout.txt").read_text(errors="replace")
    run.stderr = (folder / "stderr.txt").read_text(errors="replace")
    plain = folder / "plain.txt"
    run.plain = plain.read_text(errors="replace") if plain.exists() else ""
    run.scenarios = parse_plain(run.plain)
    run.verdict = read_verdict(folder)
    return run


class RunCache:
    """Runs by (fault, selection), computed once per session in a small thread pool."""

    def __init__(self, base: Path, workers: int = WORKERS) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.wrapper = write_wrapper(base / "mlxk-fault-shim")
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fault-run")
        self._futures: dict[tuple[str, str], Future[Run]] = {}
        self._lock = threading.Lock()

    def folder(self, selection: Selection, fault: str | None) -> Path:
        return self.base / f"{selection.name}--{fault or 'control'}"

    def submit(self, selection: Selection, fault: str | None) -> Future[Run]:
        key = (fault or "", selection.name)
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(run_behave, selection, fault,
                                                       self.folder(selection, fault), self.wrapper)
            return self._futures[key]

    def get(self, selection: Selection, fault: str | None) -> Run:
        return self.submit(selection, fault).result(timeout=RUN_TIMEOUT * 4)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_cache: RunCache | None = None
_cache_lock = threading.Lock()


def shared(base_factory: Callable[[], Path]) -> RunCache:
    """The session's run cache (created on first use, in the folder `base_factory` gives)."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = RunCache(base_factory())
        return _cache


def close_shared() -> None:
    global _cache
    with _cache_lock:
        if _cache is not None:
            _cache.close()
            _cache = None
