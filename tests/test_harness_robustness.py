"""The harness never leaks: after a passing run, a failing run, Ctrl-C or SIGTERM mid-run, and a
server that hangs or exits at startup, no process of the suite or the SUT remains, and the run
ends with a message that says what happened. A hung stream fails its scenario in time, the hung
server is retired (the model's later scenarios fail at once) and the run goes on.

"No process remains" is checked two ways (tests/faults/runs.py): no live process has the run's
unique MLX_E2E_REPORTS in its environment (every SUT process inherits it), and no descendant of
behave seen during the run (polled every 0.1 s) is still alive.

Covered elsewhere, not repeated here:
- a port taken between choice and bind is retried: tests/test_server_process.py
  (test_port_taken_after_choice_is_retried, test_port_always_taken_gives_up_after_three);
  the suite picks free ports itself, so a busy port given by the user does not apply;
- a nonexistent hf_home, an empty cache, a bad mlxk path and an unknown -D key end in one
  `ConfigError: ...` line and a non-zero exit before any server starts: tests/test_live_setup.py.
"""

from __future__ import annotations

import ast
import signal
import time
from pathlib import Path

import psutil
import pytest

from faults import runs
from faults.catalogue import API, API_TIMEOUTS, GEMMA, SLACK, Selection

ONE_CHAT = Selection("one-chat", ("--tags=@live_e2e", "--tags=@server", "-n", "A chat answer from",
                                  "-D", f"include={GEMMA}", "-D", "startup_timeout=5"),
                     "one chat scenario, 5 s startup timeout")
STARTUP_TIMEOUT = 5.0
SIGNAL_AFTER = 1.5  # seconds after the server is up: the run is then inside a (slowed) stream
SIGNAL_EXIT_LIMIT = 30.0  # seconds from the signal to behave's exit


_assert_no_leftovers = runs.assert_no_leftovers


def test_a_passing_run_leaves_no_process(run_cache):
    run = run_cache.get(API, None)
    assert run.returncode == 0, run.where()
    assert any(" serve " in f" {cmd} " for cmd in run.seen.values()), f"no server was started{run.where()}"
    _assert_no_leftovers(run)


def test_a_failing_run_leaves_no_process(run_cache):
    run = run_cache.get(API, "stream-end-token")
    assert run.returncode not in (0, None) and run.unexpected, run.where()
    _assert_no_leftovers(run)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_ends_every_process(sig, run_cache, tmp_path):
    """The signal goes to behave alone, once its server is up and a slowed stream is under way."""
    first_up: list[float] = []

    def send_when_up(behave: psutil.Process, tracked: dict[int, psutil.Process]) -> bool:
        listening = False
        for p in tracked.values():
            try:
                if " serve " in f" {runs.cmdline(p)} " and any(
                        c.status == psutil.CONN_LISTEN for c in p.net_connections(kind="tcp")):
                    listening = True
            except psutil.Error:
                pass
        if listening and not first_up:
            first_up.append(time.monotonic())
        if first_up and time.monotonic() - first_up[0] >= SIGNAL_AFTER:
            behave.send_signal(sig)
            return True
        return False

    run = runs.run_behave(API, "slow-stream", tmp_path / "run", run_cache.wrapper, on_start=send_when_up,
                          timeout=120)
    assert run.signalled_at is not None, f"the server never came up, no signal was sent{run.where()}"
    assert run.returncode not in (0, None), f"behave exited {run.returncode} after {sig.name}{run.where()}"
    after = run.seconds - run.signalled_at
    assert after <= SIGNAL_EXIT_LIMIT, f"behave took {after:.1f} s to end after {sig.name}{run.where()}"
    output = run.stdout + run.stderr + run.plain
    assert "ABORTED" in output or "KeyboardInterrupt" in output or "Interrupt" in output, \
        f"no word of the interruption in the output{run.where()}"
    assert any(" serve " in f" {c} " for c in run.seen.values()), f"no server was started{run.where()}"
    _assert_no_leftovers(run)
    ran = [s for s in run.scenarios if s.status != "skipped"]
    assert len(ran) < 5, f"the signal did not interrupt the run: {len(ran)} scenarios ran{run.where()}"


@pytest.mark.parametrize("fault, says", [
    ("hang-at-startup", f"was not ready within {STARTUP_TIMEOUT:g} s"),
    ("exit-at-startup", "exited with code 1 before it was ready"),
])
def test_a_server_that_fails_at_startup_ends_the_scenario_cleanly(fault, says, run_cache, tmp_path):
    run = runs.run_behave(ONE_CHAT, fault, tmp_path / "run", run_cache.wrapper, timeout=120)
    where = run.where()
    assert run.verdict is not None and run.returncode not in (0, None), where
    # a server that does not start stops the scenario: a harness failure (never a product defect
    # or a known issue), and it fails the run
    failed = run.verdict["harness_failures"]
    assert run.unexpected == [] and len(failed) == 1 and "A chat answer from" in failed[0], where
    s = run.scenario(failed[0])
    assert s is not None, where
    # One line says what happened and where the server's log is (behave shows it under a traceback:
    # the step lets ServerStartError through rather than failing with an assertion).
    clear = [line for line in s.message.splitlines() if says in line and "log: " in line]
    assert clear, f"no line says {says!r} and names the server log:\n{s.message[:2000]}{where}"
    if fault == "exit-at-startup":
        assert "simulated startup failure" in s.message, f"the server's own last words are not shown{where}"
    assert s.seconds <= STARTUP_TIMEOUT + SLACK, f"the failing start took {s.seconds:.1f} s{where}"
    assert run.verdict["harness_problems"] == [], where
    _assert_no_leftovers(run)


def test_a_hung_stream_fails_in_time_and_the_run_goes_on(run_cache):
    """The hung server is retired: the model's later scenarios fail at once, in words (one timeout
    per model, not one per scenario), and the run goes on to its end."""
    run = run_cache.get(API_TIMEOUTS, "stream-hang-midway")
    where = run.where()
    names = [s.name for s in run.scenarios if s.status != "skipped"]
    order = ["is healthy and lists its model", "A chat answer from", "A streamed chat answer from",
             "A text completion from", "A streamed text completion from"]
    assert [next((i for i, frag in enumerate(order) if frag in n), -1) for n in names] == list(range(5)), \
        f"expected the five API scenarios to run in order, ran: {names}{where}"
    status = {frag: next(s for s in run.scenarios if frag in s.name) for frag in order}
    hung = status["A streamed chat answer from"]
    assert hung.status == "failed" and "hung" in hung.first_line and "deadline" in hung.first_line, \
        f"the hung stream: {hung.status}: {hung.first_line}{where}"
    assert hung.seconds <= 5 + SLACK, f"the hung stream took {hung.seconds:.1f} s to fail (stream_timeout 5 s){where}"
    for frag in ("A text completion from", "A streamed text completion from"):
        s = status[frag]
        assert s.status == "failed" and "hung earlier in this run" in s.first_line, \
            f"{frag} after the hang: {s.status}: {s.first_line}{where}"
        assert s.seconds <= 1.0, f"{frag} waited {s.seconds:.1f} s on the server that hung before{where}"
    _assert_no_leftovers(run)


def test_the_cases_covered_elsewhere_are_still_there():
    """The port-retry and bad-input cases this file relies on exist (see the module docstring)."""
    here = Path(__file__).parent
    wanted = {"test_server_process.py": {"test_port_taken_after_choice_is_retried",
                                         "test_port_always_taken_gives_up_after_three"},
              "test_live_setup.py": {"test_bad_input_ends_in_one_line", "test_an_empty_cache_is_reported_not_passed"}}
    for name, tests in wanted.items():
        tree = ast.parse((here / name).read_text())
        found = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert tests <= found, f"{name} lost {sorted(tests - found)}"
    cases = (here / "test_live_setup.py").read_text()
    for case in ("colour=red", "hf_home=/nonexistent/cache", "mlxk=/bad/path/mlxk"):
        assert case in cases, f"test_live_setup.py no longer covers -D {case}"
