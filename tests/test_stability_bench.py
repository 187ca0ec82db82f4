"""bench/stability.py compares the per-scenario outcomes of runs (here on made-up verdicts)."""

from __future__ import annotations

from bench.stability import differences, outcomes

SUMMARY = "1 feature passed\n12 scenarios passed, 2 failed, 340 skipped\n"


def _run(label: str, verdict: dict, summary: str = SUMMARY) -> dict:
    return {"label": label, "outcomes": outcomes(verdict, summary)}


def test_the_outcomes_of_a_run():
    got = outcomes({"known_failures": [{"scenario": " A ", "issue": "KI-003", "kind": "product"}],
                    "unexpected_failures": ["B"], "harness_failures": ["C"]}, SUMMARY)
    assert got == {"failed": {"A": "KI-003", "B": "unexpected", "C": "harness"},
                   "counts": {"passed": 12, "failed": 2, "skipped": 340}}
    assert outcomes({}, "no summary")["counts"] is None


def test_runs_with_the_same_outcomes_do_not_differ_and_any_change_is_named():
    verdict = {"known_failures": [{"scenario": "A", "issue": "KI-003"}], "unexpected_failures": []}
    same = [_run("run 1", verdict), _run("run 2", verdict), _run("beside a CPU hog", verdict)]
    assert differences(same) == []
    changed = same + [_run("run 4", {"known_failures": [], "unexpected_failures": ["B"]},
                           "11 scenarios passed, 3 failed, 340 skipped")]
    lines = differences(changed)
    assert lines[0].startswith("run 4: counts {'passed': 11")
    assert "run 4: A: passed (in run 1: KI-003)" in lines and "run 4: B: unexpected (in run 1: passed)" in lines
