"""The conformance table: one row per scenario, one column per target, from each run's verdict."""

from __future__ import annotations

from bench.conformance import cell, counts, render
from support import verdict


def run(target: str, version: str, *outcomes: tuple[str, str, str | None], exit_code: int = 0) -> dict:
    return {"target": target, "sut_version": version, "exit": exit_code, "wall_seconds": 1.5,
            "outcomes": [{"scenario": s, "status": st, "detail": d} for s, st, d in outcomes]}


MLXK = run("mlxk", "2.0.8", ("A chat answer from m", "passed", None), ("The listing holds m", "passed", None),
           ("The CLI of m", "known", "KI-001"))
MLX_LM = run("mlx_lm", "0.31.3", ("A chat answer from m", "failed", "ASSERT FAILED: expected 200, got 404 | x"),
             ("The listing holds m", "skipped",
              "not offered by target mlx_lm 0.31.3: a command that lists the cached models"),
             ("The CLI of m", "known", "KI-501"), ("Only here", "harness", "HarnessError: no server"), exit_code=1)


def test_cells_say_pass_known_fail_harness_not_offered_and_skipped():
    assert cell({"status": "passed"}) == "pass" and cell(None) == "-"
    assert cell({"status": "known", "detail": "KI-501"}) == "known KI-501"
    assert cell({"status": "failed", "detail": "x" * 200}) == "FAIL: " + "x" * 90 + "..."
    assert cell({"status": "harness", "detail": "no server"}) == "harness: no server"
    assert cell({"status": "skipped", "detail": "not offered by target mlx_lm 0.31.3: questions about images"}) \
        == "not offered: questions about images"
    assert cell({"status": "skipped", "detail": "RAM gate: m needs 7 GB"}) == "skipped: RAM gate: m needs 7 GB"


def test_the_table_has_a_row_per_scenario_and_a_column_per_target():
    text = render([MLXK, MLX_LM], {"KI-001": "end token leaks", "KI-501": "stops at 100 tokens"})
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| scenario"))
    assert "mlxk 2.0.8" in header and "mlx_lm 0.31.3" in header
    row = next(line for line in lines if line.startswith("| A chat answer from m"))
    assert "| pass " in row and "FAIL: ASSERT FAILED: expected 200, got 404 \\| x" in row  # a | cannot break the table
    assert "not offered: a command that lists the cached models" in text
    assert next(line for line in lines if line.startswith("| Only here")).split("|")[2].strip() == "-"
    assert "- KI-001: end token leaks" in text and "- KI-501: stops at 100 tokens" in text
    assert "| mlx_lm 0.31.3 | FAILS (exit 1) | 1.5 | 0 | 1 | 1 | 1 | 1 |" in text
    assert "| mlxk 2.0.8 | passes | 1.5 | 2 | 1 | 0 | 0 | 0 |" in text


def test_counts():
    assert counts(MLX_LM) == {"passed": 0, "known": 1, "failed": 1, "harness": 1, "skipped": 1}


def test_a_tally_records_every_scenario_end():
    tally = verdict.Tally()
    tally.outcome("s1", "passed")
    tally.outcome("s2", "skipped", "RAM gate")
    assert tally.outcomes == [{"scenario": "s1", "status": "passed", "detail": None},
                              {"scenario": "s2", "status": "skipped", "detail": "RAM gate"}]


def test_the_verdict_gives_a_runs_exit_code():
    said = []
    assert verdict.exit_code(0, None, said.append) == 0 and said == []
    assert verdict.exit_code(1, None, said.append) == 1 and "before the run finished" in said[-1]
    known = {"known_failures": [{"issue": "KI-5"}], "unexpected_failures": [], "harness_failures": [],
             "harness_problems": []}
    assert verdict.exit_code(1, known, said.append) == 0 and "KI-5" in said[-1]
    assert verdict.exit_code(1, {**known, "unexpected_failures": ["s"]}, said.append) == 1
    assert said[-1] == "1 unexpected failure(s): s"


def test_a_column_can_be_taken_from_an_earlier_run(tmp_path):
    import json

    import pytest

    from bench.conformance import RUN, earlier_run

    with pytest.raises(SystemExit, match="no finished conformance run"):
        earlier_run(tmp_path)
    (tmp_path / "verdict.json").write_text(json.dumps({"target": "mlxk", "sut_version": "2.0.8", "outcomes": []}))
    (tmp_path / RUN).write_text(json.dumps({"exit": 0, "wall_seconds": 3.0}))
    assert earlier_run(tmp_path) == {"target": "mlxk", "sut_version": "2.0.8", "outcomes": [], "exit": 0,
                                     "wall_seconds": 3.0}
