"""Servers that die or hang mid-run, and verdicts on a busy machine (issue 19, items 2-4).

- A server killed from outside mid-scenario (by the PIDs the suite started) fails that scenario as a
  product crash with the server log's last lines; the pool notices the dead server and the next
  scenario gets a fresh one; nothing is left behind.
- A build whose streams hang costs one timeout per model: the hung server is retired and the model's
  later scenarios fail at once, in words. Shown on three models; the bound is stated below.
- A command line that hangs costs one timeout per model too.
- Beside a CPU hog of the test's own (one busy loop per core, ended by PID), the healthy slice of the
  stream-pace check gets the same verdict as on a quiet machine, and the slow-stream fault is still
  caught: the check is relative to the same server's batch pace, so load moves both sides.

The behave runs go through tests/faults/runs.py (the fault shim as the SUT, leftovers checked).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from faults import runs
from faults.catalogue import CLI_TIMEOUT_S, GEMMA, SLACK, STREAM_PARITY, Selection

LLAMA3, MISTRAL = "mlx-e2e-demo/llama3-style", "mlx-e2e-demo/mistral-style"
HANG_TIMEOUT = 5.0  # request and stream timeout of the hanging slice
LOAD_NAME = "serves chat and text completions to several clients at once"
KILL_AFTER = 2.5  # seconds after the server is up: its load is under way

KILLED = Selection("killed", ("--tags=@live_e2e", "-n", f"{LOAD_NAME}|A chat answer from", "-D", f"include={GEMMA}",
                              "-D", "load_seconds=8", "-D", "load_requests=400"),
                   "the load scenario (8 s), then a chat answer on the same model")
HANG_3 = Selection("hang-3-models", ("--tags=@live_e2e", "--tags=@server", "-i", "api.feature",
                                     "-D", f"include={GEMMA},{LLAMA3},{MISTRAL}",
                                     "-D", f"request_timeout={HANG_TIMEOUT:g}", "-D", f"stream_timeout={HANG_TIMEOUT:g}"),
                   "the API scenarios of three models, 5 s timeouts")
CLI_HANG_2 = Selection("cli-hang-2", ("--tags=@live_e2e", "--tags=@cli", "-n",
                                      "A prompt on the command line gets a clean answer|"
                                      "The command line gives the golden answer", "-D", f"include={GEMMA}",
                                      "-D", f"cli_timeout={CLI_TIMEOUT_S:g}"),
                       f"two command-line scenarios of one model, {CLI_TIMEOUT_S:g} s CLI timeout")
EXTRA_RUN_S = 60.0  # behave's own start (discovery) and end, and the scenarios that pass (a busy machine)


_no_leftovers = runs.assert_no_leftovers


def _listening(proc: psutil.Process) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in proc.net_connections(kind="tcp"))
    except psutil.Error:
        return False


def test_a_server_killed_mid_run_fails_its_scenario_as_a_crash_and_the_next_gets_a_fresh_one(run_cache, tmp_path):
    up: list[float] = []
    killed: list[str] = []

    def kill_when_loaded(behave: psutil.Process, tracked: dict[int, psutil.Process]) -> bool:
        serving = [p for p in tracked.values() if runs.alive(p) and _listening(p)]
        if not up and any(" serve " in f" {runs.cmdline(p)} " for p in serving):
            up.append(time.monotonic())
        if up and time.monotonic() - up[0] >= KILL_AFTER:
            for p in serving:  # the shim in front and the real server: every process that serves
                killed.append(f"{p.pid} {runs.cmdline(p)[:80]}")
                p.send_signal(signal.SIGKILL)
            return True
        return False

    run = runs.run_behave(KILLED, None, tmp_path / "run", run_cache.wrapper, on_start=kill_when_loaded, timeout=240)
    where = run.where() + f"\n  killed: {killed}"
    assert killed, f"the server never came up: nothing was killed{where}"
    load = next((s for s in run.scenarios if LOAD_NAME in s.name), None)
    assert load is not None and load.status == "failed", f"the load scenario did not fail{where}"
    assert "crashed" in load.first_line and ("killed by SIGKILL" in load.first_line or "exited with code"
                                             in load.first_line), f"not reported as a crash: {load.first_line}{where}"
    assert "last lines:" in load.first_line and "HTTP/1.1" in load.message, \
        f"the server log's last lines are not in the message:\n{load.message[:1500]}{where}"
    assert any(LOAD_NAME in n for n in run.unexpected), f"the crash is not booked as a product failure{where}"
    after = next((s for s in run.scenarios if "A chat answer from" in s.name), None)
    assert after is not None and after.status == "passed", f"the next scenario did not pass on a fresh server{where}"
    assert run.verdict["server_starts"] == 2, f"expected a fresh server for the next scenario{where}"
    assert run.verdict["harness_failures"] == [] and run.verdict["harness_problems"] == [], where
    _no_leftovers(run)


def test_a_build_whose_streams_hang_costs_one_timeout_per_model(run_cache, tmp_path):
    """Bound: the servers' start-up + per model one timeout (+ SLACK) + EXTRA_RUN_S for the rest."""
    run = runs.run_behave(HANG_3, "stream-hang-midway", tmp_path / "run", run_cache.wrapper, timeout=300)
    where = run.where()
    assert run.verdict is not None, f"behave did not finish (killed after 300 s?){where}"
    startup = run.verdict["seconds"]["server_startup"]
    bound = startup + 3 * (HANG_TIMEOUT + SLACK) + EXTRA_RUN_S
    assert run.seconds <= bound, (f"the run took {run.seconds:.0f} s, over the bound {bound:.0f} s (start-up "
                                  f"{startup:.0f} s + 3 x {HANG_TIMEOUT + SLACK:g} s + {EXTRA_RUN_S:g} s){where}")
    for model in (GEMMA, LLAMA3, MISTRAL):
        mine = [s for s in run.scenarios if model in s.name and s.status != "skipped"]
        hung = [s for s in mine if s.status == "failed" and "hung:" in s.first_line]
        assert len(hung) == 1 and "deadline" in hung[0].first_line, \
            f"{model}: expected one scenario failed as a hang, got {[(s.name, s.first_line) for s in mine]}{where}"
        later = mine[mine.index(hung[0]) + 1:]
        assert later, f"{model}: no scenario ran after the hang{where}"
        for s in later:
            assert s.status == "failed" and "hung earlier in this run" in s.first_line and s.seconds <= 1.0, \
                f"{model}: {s.name!r} after the hang: {s.status} in {s.seconds:.1f} s: {s.first_line}{where}"
    _no_leftovers(run)


def test_a_command_line_that_hangs_costs_one_timeout_per_model(run_cache, tmp_path):
    run = runs.run_behave(CLI_HANG_2, "cli-hang", tmp_path / "run", run_cache.wrapper, timeout=240)
    where = run.where()
    ran = [s for s in run.scenarios if s.status != "skipped"]
    assert len(ran) == 2 and all(s.status == "failed" for s in ran), f"expected two failed scenarios{where}"
    first, second = ran
    assert first.seconds <= CLI_TIMEOUT_S + SLACK, f"the hung command took {first.seconds:.1f} s{where}"
    assert "hung earlier in this run" in second.first_line and second.seconds <= 1.0, \
        f"the second scenario: {second.first_line} after {second.seconds:.1f} s{where}"
    _no_leftovers(run)


class CpuHog:
    """One busy loop per logical core, started and ended (by PID) by this test."""

    def __init__(self, seconds: float = 300.0) -> None:
        code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
        self.procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(psutil.cpu_count() or 1)]

        self.began = time.monotonic()

    def stop(self) -> float:
        """End the busy loops; returns the CPU they used, in cores on average over their life."""
        used = 0.0
        for p in self.procs:
            try:
                times = psutil.Process(p.pid).cpu_times()
                used += times.user + times.system
            except psutil.Error:
                pass
            p.kill()
        for p in self.procs:
            p.wait(10)
        return used / (time.monotonic() - self.began)


def _outcomes(run: runs.Run) -> dict[str, str]:
    known = {k["scenario"].strip() for k in run.known}
    return {s.name.strip(): ("known" if s.name.strip() in known else s.status) for s in run.scenarios
            if s.status != "skipped"}


def test_the_stream_pace_verdict_holds_beside_a_cpu_hog(run_cache, tmp_path):
    quiet = run_cache.get(STREAM_PARITY, None)
    hog = CpuHog()
    try:
        with ThreadPoolExecutor(2) as pool:  # both beside the hog, at the same time
            loaded, slow = pool.map(lambda fault: runs.run_behave(STREAM_PARITY, fault, tmp_path / (fault or "control"),
                                                                  run_cache.wrapper, timeout=240), (None, "slow-stream"))
        load_average = os.getloadavg()[0]  # the last minute, the hog's loops and behave's work included
    finally:
        busy = hog.stop()
    cores = psutil.cpu_count() or 1
    # Loaded: the hog's loops kept at least half the cores busy all along, beside two behave runs.
    # (The 1-minute load average lags a run this short: on an idle 2-core machine it read 1.7.)
    assert busy >= cores / 2, (f"the machine was not loaded: the hog used {busy:.2f} of {cores} cores on average "
                               f"(load average {load_average:.1f})")
    assert _outcomes(quiet) and _outcomes(loaded) == _outcomes(quiet), \
        (f"the verdict changed with the load: quiet {_outcomes(quiet)}, beside the hog {_outcomes(loaded)}"
         f"{loaded.where()}")
    caught = [n for n in slow.unexpected if "A streamed chat answer from" in n]
    assert caught, f"the slow-stream fault was not caught beside the hog{slow.where()}"
    _no_leftovers(loaded)
    _no_leftovers(slow)
