"""The live suite catches real bugs: every catalogued fault, injected into the real SUT, fails a
scenario that should catch it, unexpectedly (never as a registered known issue), with a message
in words; and the same slices against the transparent shim pass (no false alarm).

Faults the suite does not catch are strict xfails that name the missing check or the known issue
that swallows them (tests/faults/catalogue.py): findings about the suite, not faked passes.
The table of what caught what is written to reports/detection.md at the end of the session.
"""

from __future__ import annotations

import re
import time

import pytest

from faults import catalogue, runs
from faults.catalogue import CATALOGUE, GEMMA, SELECTIONS, Fault, Selection
from faults.transport import Hooks
from support.paths import REPORTS

DETECTION_REPORT = REPORTS / "detection.md"
_ROWS: dict[str, dict] = {}  # fault name -> its row in the detection table
_CONTROLS: dict[str, dict] = {}  # selection name -> the control's row
_TRACEBACK = "Traceback (most recent call last)"
_WORDS = re.compile(r"^ASSERT FAILED: .*[A-Za-z]{3,}.*[A-Za-z]{3,}")


def _fault_params():
    for f in CATALOGUE:
        marks = []
        if not f.expected_caught:
            why = f"masked by {f.masked_by}" if f.masked_by else f"missing check: {f.missing_check}"
            marks.append(pytest.mark.xfail(strict=True, reason=f"not caught by the suite: {why}"))
        yield pytest.param(f.name, marks=marks, id=f.name)


@pytest.fixture(scope="session")
def fault_runs(request, demo_root, tmp_path_factory):
    """The session's run cache, with every run the selected tests need started at once (in parallel)."""
    cache = runs.shared(lambda: tmp_path_factory.mktemp("fault-runs"))
    request.addfinalizer(runs.close_shared)
    wanted = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "fault" in params and item.module.__name__ == __name__:
            f = catalogue.BY_NAME[params["fault"]]
            wanted.append((f.selection, f.name))
        if "selection" in params and item.module.__name__ == __name__:
            wanted.append((_selection(params["selection"]), None))
    for selection, fault in wanted:
        cache.submit(selection, fault)
    return cache


def _selection(name: str) -> Selection:
    return next(s for s in SELECTIONS if s.name == name)


@pytest.fixture(scope="session", autouse=True)
def detection_report(request):
    """Writes reports/detection.md and prints the detection rate once the session's tests are done."""
    yield
    if not _ROWS and not _CONTROLS:
        return
    text = _report()
    DETECTION_REPORT.parent.mkdir(parents=True, exist_ok=True)
    DETECTION_REPORT.write_text(text, encoding="utf-8")
    caught = sum(r["caught"] for r in _ROWS.values())
    alarms = sum(c["false_alarms"] for c in _CONTROLS.values())
    line = (f"fault detection: {caught}/{len(_ROWS)} faults caught "
            f"({100 * caught / len(_ROWS):.0f}%)" if _ROWS else "fault detection: no fault run")
    line += f"; false alarms: {alarms} in {len(_CONTROLS)} control run(s); table: {DETECTION_REPORT}"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # a fixture's teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_line(line)


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _report() -> str:
    caught = sum(r["caught"] for r in _ROWS.values())
    alarms = sum(c["false_alarms"] for c in _CONTROLS.values())
    runs_n = len(_ROWS) + len(_CONTROLS)
    seconds = sum(r["seconds"] for r in _ROWS.values()) + sum(c["seconds"] for c in _CONTROLS.values())
    lines = ["# Fault detection", "",
             "Each fault (tests/faults/catalogue.py) was injected into the real SUT by the shim and proxy "
             "(tests/faults/) and a small slice of the live suite was run against it.", "",
             f"**Caught: {caught}/{len(_ROWS)}**; false alarms on the healthy shim: {alarms} "
             f"({len(_CONTROLS)} control slices). {runs_n} behave runs, {seconds:.0f} s in all "
             f"({runs.WORKERS} at a time).", "",
             "| fault | bug class | caught by | message (first line) | run |", "|---|---|---|---|---|"]
    for name in [f.name for f in CATALOGUE if f.name in _ROWS]:
        r = _ROWS[name]
        lines.append(f"| {name} | {_cell(r['bug_class'])} | {_cell(r['caught_by'])} | {_cell(r['message'])} "
                     f"| {r['seconds']:.0f} s |")
    missed = [(n, r) for n, r in _ROWS.items() if not r["caught"]]
    if missed:
        lines += ["", "## Not caught", ""]
        lines += [f"- **{n}**: {r['why']}" for n, r in missed]
    lines += ["", "## Controls (no fault)", "", "| slice | behave arguments | scenarios passed | "
              "known failures | false alarms |", "|---|---|---|---|---|"]
    for name, c in _CONTROLS.items():
        lines.append(f"| {name} | `{_cell(c['args'], 300)}` | {c['passed']} | {_cell(c['known'])} | "
                     f"{c['false_alarms']} |")
    return "\n".join(lines) + "\n"


def _clear_message(s: runs.Scenario) -> bool:
    return bool(_WORDS.match(s.first_line)) and _TRACEBACK not in s.message


def _row(f: Fault, run: runs.Run) -> dict:
    """The fault's row, from what the run shows (recorded before any assertion)."""
    catching = [n for n in run.unexpected if any(frag in n for frag in f.catches)]
    scenario = next((run.scenario(n) for n in catching if run.scenario(n)), None)
    row = {"bug_class": f.bug_class, "seconds": run.seconds, "caught": False, "caught_by": "-",
           "message": "", "why": ""}
    if scenario is not None:
        row.update(caught_by=scenario.name.strip(), message=scenario.first_line,
                   caught=_clear_message(scenario) and not run.leftovers
                   and (f.max_seconds is None or scenario.seconds <= f.max_seconds))
    if not row["caught"]:
        swallowed = [k for k in run.known if any(frag in k["scenario"] for frag in f.catches)]
        if swallowed:
            s = run.scenario(swallowed[0]["scenario"])
            row["caught_by"] = f"NOT CAUGHT: swallowed as known issue {swallowed[0]['issue']}"
            row["message"] = s.first_line if s else ""
        elif scenario is None:
            row["caught_by"] = "NOT CAUGHT"
        row["why"] = (f"masked by {f.masked_by}" if f.masked_by else
                      f"missing check: {f.missing_check}" if f.missing_check else
                      "expected to be caught; see the test's failure")
    return row


@pytest.mark.parametrize("fault", list(_fault_params()))
def test_fault_is_caught(fault, fault_runs):
    f = catalogue.BY_NAME[fault]
    run = fault_runs.get(f.selection, f.name)
    _ROWS[f.name] = _row(f, run)
    where = run.where()

    assert run.verdict is not None, f"behave did not finish the run (no verdict.json){where}"
    assert run.leftovers == [], f"processes of the run still alive after it ended: {run.leftovers}{where}"
    swallowed = [f"{k['scenario'].strip()} as {k['issue']}" for k in run.known
                 if any(frag in k["scenario"] for frag in f.catches)]
    assert run.unexpected, (f"fault {fault} was not caught: no unexpected failure"
                            + (f"; it was swallowed by a registered known issue: {swallowed}" if swallowed else "")
                            + where)
    assert run.returncode not in (0, None), f"behave exited {run.returncode} with unexpected failures{where}"
    catching = [n for n in run.unexpected if any(frag in n for frag in f.catches)]
    assert catching, f"fault {fault} failed {run.unexpected}, none of the scenarios {f.catches} that should catch it{where}"
    for name in catching:
        s = run.scenario(name)
        assert s is not None and s.status == "failed", f"{name!r} is not reported as failed in the plain output{where}"
        assert _clear_message(s), (f"{name!r} failed without a message in words (expected 'ASSERT FAILED: ...', "
                                   f"no traceback):\n{s.message[:2000]}{where}")
        if f.max_seconds is not None:
            assert s.seconds <= f.max_seconds, (f"{name!r} took {s.seconds:.1f} s to fail, more than the "
                                                f"{f.max_seconds:g} s bound{where}")


@pytest.mark.parametrize("selection", [s.name for s in SELECTIONS])
def test_healthy_shim_passes_the_slice(selection, fault_runs):
    """The control: the same slice through the transparent shim and proxy has no unexpected failure,
    and every scenario a fault of this slice should fail really runs (and passes, unless registered)."""
    sel = _selection(selection)
    run = fault_runs.get(sel, None)
    known = sorted({k["issue"] for k in run.known})
    _CONTROLS[selection] = {"args": sel.shown, "seconds": run.seconds, "passed": sum(s.status == "passed" for s in run.scenarios),
                            "known": ", ".join(known) or "-",
                            "false_alarms": len(run.unexpected) + len((run.verdict or {}).get("harness_problems", []))
                            + len((run.verdict or {}).get("harness_failures", []))}
    where = run.where()
    assert run.verdict is not None, f"behave did not finish the run (no verdict.json){where}"
    assert run.unexpected == [], f"false alarm: the healthy shim fails {run.unexpected}{where}"
    assert run.verdict["harness_problems"] == [], where
    assert run.verdict.get("harness_failures") == [], where
    assert run.leftovers == [], f"processes of the run still alive after it ended: {run.leftovers}{where}"
    ran = [s for s in run.scenarios if s.status != "skipped"]
    assert ran, f"the slice selected no scenario{where}"
    known_names = {k["scenario"].strip() for k in run.known}
    for f in CATALOGUE:
        if f.selection != sel:
            continue
        for frag in f.catches:
            hits = [s for s in ran if frag in s.name]
            assert hits, f"{f.name}: no scenario named like {frag!r} runs in slice {selection}{where}"
            for s in hits:
                assert s.status == "passed" or s.name.strip() in known_names, \
                    f"{f.name}: {s.name!r} does not pass on the healthy shim{where}"


# --- the injection machinery itself ------------------------------------------------------

def test_the_catalogue_is_implemented_and_large_enough():
    hooks = [h for h in vars(Hooks) if not h.startswith("_")]
    assert len(CATALOGUE) >= 25
    for f in CATALOGUE:
        assert f.catches and f.bug_class and f.does, f.name
        assert not (f.masked_by and f.missing_check), f.name
        assert (f.proxy is None) != (f.cli is None), f"{f.name}: one implementation, for the proxy or the CLI"
        if f.proxy is not None:
            changed = [h for h in hooks if getattr(f.proxy, h) is not getattr(Hooks, h)]
            assert changed, f"{f.name}: its hooks change nothing"
            f.proxy(GEMMA)  # constructible as the shim does


def test_a_fault_is_defined_once():
    with pytest.raises(ValueError, match="defined twice"):
        catalogue.fault(CATALOGUE[0].name, "x", CATALOGUE[0].selection, ("x",), does="x")(Hooks)


def test_the_shim_forwards_sigterm_and_leaves_nothing(demo_root, tmp_path):
    """SIGTERM to the shim alone (not its group) ends the proxy and the real server behind it."""
    import os
    import signal
    import subprocess

    import psutil
    import requests

    from faults import shim
    from support.server_process import choose_free_port

    wrapper = shim.write_wrapper(tmp_path / "mlxk-fault-shim")
    port = choose_free_port("127.0.0.1")
    env = {**os.environ, "HF_HOME": str(demo_root), "HF_HUB_OFFLINE": "1"}
    env.pop(shim.FAULT_VAR, None)
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([str(wrapper), "serve", "--model", catalogue.GEMMA, "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    me = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen.update({c.pid: c for c in me.children(recursive=True)})
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            time.sleep(0.1)
        else:
            pytest.fail("the shim's proxy never answered /health: " + (tmp_path / "serve.log").read_text()[-2000:])
        seen.update({c.pid: c for c in me.children(recursive=True)})
        assert any("server_base" in " ".join(p.cmdline()) for p in seen.values()), "no real server behind the proxy"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(runs.alive(p) for p in seen.values()):
            time.sleep(0.1)
        left = [runs.cmdline(p) for p in seen.values() if runs.alive(p)]
        assert left == [], f"still running after SIGTERM to the shim: {left}"
    finally:
        for p in [me, *seen.values()]:
            if runs.alive(p):
                p.kill()
