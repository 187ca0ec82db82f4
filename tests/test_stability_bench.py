"""bench/stability.py compares the per-scenario outcomes of runs (here on made-up verdicts)."""

from __future__ import annotations

from bench.stability import differences, outcomes


def _verdict(**statuses) -> dict:
    return {"scenarios": [{"scenario": f" {name} ", "outcome": s.split(":")[0],
                           "detail": s.split(":")[1] if ":" in s else None} for name, s in statuses.items()]}


def _run(label: str, verdict: dict) -> dict:
    return {"label": label, "exit": 0, "reports": "/r", "outcomes": outcomes(verdict)}


def test_the_outcome_of_each_scenario_is_its_status_or_its_known_issue():
    got = outcomes(_verdict(A="known:KI-003", B="failed", C="harness", D="passed", E="skipped"))
    assert got == {"A": "KI-003", "B": "failed", "C": "harness", "D": "passed", "E": "skipped"}
    assert outcomes({}) == {}
    assert list(outcomes(_verdict(A="passed") | {"scenarios": _verdict(A="passed")["scenarios"] * 2})) == ["A", "A #1"]


def test_runs_with_the_same_outcomes_do_not_differ_and_any_change_is_named():
    verdict = _verdict(A="known:KI-003", B="passed")
    same = [_run("run 1", verdict), _run("run 2", verdict), _run("beside a CPU hog", verdict)]
    assert differences(same) == []
    changed = same + [_run("run 4", _verdict(A="passed", B="failed", C="passed"))]
    assert differences(changed) == ["run 4: A: passed (in run 1: KI-003)", "run 4: B: failed (in run 1: passed)",
                                    "run 4: C: passed (in run 1: not run)"]
    assert differences([same[0], _run("run 5", {})]) == ["run 5: no verdict (exit 0; see /r)"]


def test_an_earlier_run_is_read_from_its_merged_reports_and_a_folder_without_a_verdict_is_refused(tmp_path):
    import json

    import pytest

    from bench.stability import earlier_run
    (tmp_path / "verdict.json").write_text(json.dumps(_verdict(A="known:KI-003", B="passed", C="passed")))
    run = earlier_run(tmp_path)
    assert run["outcomes"] == {"A": "KI-003", "B": "passed", "C": "passed"}
    assert run["counts"] == {"known": 1, "passed": 2}
    with pytest.raises(SystemExit, match="no verdict.json"):
        earlier_run(tmp_path / "missing")
