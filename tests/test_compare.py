"""Runs of two or more releases compared (support/compare.py) and the registry checked against
them (support/history.py), on recorded verdicts (the `scenarios` list support/verdict.py writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import compare, history, known_issues

PHI3 = "A prompt on the command line gets a clean answer from mlx-e2e-demo/phi3-style"
GEMMA = "A prompt on the command line gets a clean answer from mlx-e2e-demo/gemma-style"
LENGTH = "The answer of mlx-e2e-demo/gemma-style stops at max_tokens with finish reason length"
LISTING = "The listing gives every demo model its intended outcome"
NEW = "A new scenario"
STOP = "A stop string cuts mlx-e2e-demo/gemma-style's answer before it, in batch and streaming mode"
LEAK = "mlxk run ... printed answer: shows end/template token(s) ['<|end|>']: 'The capital of Italy is Rome.<|end|>'"
FINISH = "finish_reason: expected 'length' at max_tokens 8, got 'stop'"


def scenario(name, status, model=None, tags=("cli",), message="", product=True, issue=None, evidence=None):
    return {"scenario": name, "model": model, "tags": list(tags), "status": status, "message": message,
            "product": product, "issue": issue, "evidence": evidence}


def record(folder: Path, version: str, scenarios: list[dict], problems=()) -> Path:
    folder.mkdir(parents=True)
    (folder / "verdict.json").write_text(json.dumps({"sut_version": version, "scenarios": scenarios,
                                                     "harness_problems": list(problems)}))
    return folder


@pytest.fixture
def runs(tmp_path):
    base = record(tmp_path / "releases" / "2.0.7", "2.0.7", [
        scenario(PHI3, "failed", "mlx-e2e-demo/phi3-style", message=LEAK, issue="KI-001", evidence="evidence/phi3"),
        scenario(GEMMA, "passed", "mlx-e2e-demo/gemma-style"),
        scenario(LENGTH, "failed", "mlx-e2e-demo/gemma-style", ("server",), FINISH, evidence="evidence/length"),
        scenario(LISTING, "passed"),
        scenario(STOP, "failed", "mlx-e2e-demo/gemma-style", ("server",), "batch answer: stop sequence(s)", issue="KI-502"),
        scenario(NEW, "skipped")])
    candidate = record(tmp_path / "releases" / "2.0.8", "2.0.8", [
        scenario(PHI3, "failed", "mlx-e2e-demo/phi3-style", message=LEAK, issue="KI-001", evidence="evidence/phi3"),
        scenario(GEMMA, "failed", "mlx-e2e-demo/gemma-style", message="texts differ at character 29",
                 evidence="evidence/gemma"),
        scenario(LENGTH, "passed", "mlx-e2e-demo/gemma-style", ("server",)),
        scenario(STOP, "failed", "mlx-e2e-demo/gemma-style", ("server",), "streamed answer: ...", issue="KI-004"),
        scenario(NEW, "passed")])
    return compare.load_run("2.0.7", base), compare.load_run("2.0.8", candidate)


def test_each_scenario_is_sorted_by_how_it_changed(runs):
    result = compare.compare(*runs)
    assert [c.scenario for c in result.new_failures] == [GEMMA]
    assert [c.scenario for c in result.fixes] == [LENGTH]
    assert [c.scenario for c in result.unchanged_failures] == [PHI3]
    assert [c.scenario for c in result.changed_failures] == [STOP]  # batch fixed, streaming still broken
    assert [c.scenario for c in result.no_longer_tested] == [LISTING]
    assert [c.scenario for c in result.newly_tested] == [NEW]
    assert result.regressed and result.exit_code() == 1


def test_no_regression_exits_0_and_a_run_that_did_not_finish_exits_2(tmp_path, runs):
    base, _ = runs
    assert compare.compare(base, base).exit_code() == 0
    unfinished = compare.load_run("2.0.8", tmp_path / "nothing", error="behave exited 1 without a verdict: ConfigError")
    result = compare.compare(base, unfinished)
    assert result.undecided == "2.0.8: behave exited 1 without a verdict: ConfigError"
    # every scenario of the base is then no longer tested: a run that did not finish is no pass
    assert len(result.no_longer_tested) == 5 and result.exit_code() == 1


def test_a_failure_that_changed_into_an_unregistered_one_is_a_regression(tmp_path, runs):
    base, _ = runs
    stop = base.outcome(STOP)
    changed = compare.Run("2.0.9", tmp_path, "2.0.9", {
        name: (o if name != STOP else compare.Outcome(STOP, compare.FAILED, stop.model, stop.tags, "HTTP 500"))
        for name, o in base.outcomes.items()})
    result = compare.compare(base, changed)
    assert [c.scenario for c in result.changed_failures] == [STOP] and result.regressed


def test_a_failure_that_is_not_a_failed_check_is_a_harness_failure(tmp_path):
    run = compare.load_run("x", record(tmp_path / "x", "2.0.8", [scenario(GEMMA, "failed", product=False)]))
    assert run.outcome(GEMMA).status == compare.HARNESS and run.outcome(GEMMA).failed
    assert compare.cell(run.outcome(GEMMA)) == "harness" and compare.cell(run.outcome("other")) == "-"


def test_the_report_gives_each_failure_its_message_and_evidence_link(tmp_path, runs):
    result = compare.compare(*runs)
    markdown = compare.render_markdown(result, tmp_path)
    assert markdown.startswith("# mlx-knife 2.0.8 compared with 2.0.7: REGRESSION")
    assert "## New failures (passed in 2.0.7, fail in 2.0.8): 1" in markdown
    assert (f"- {GEMMA}: failed: texts differ at character 29 ([evidence](releases/2.0.8/evidence/gemma))"
            in markdown)
    assert f"- {LENGTH}: failed: {FINISH} ([evidence](releases/2.0.7/evidence/length))" in markdown
    assert "  - 2.0.8: failed as KI-001: mlxk run" in markdown
    document = compare.to_json(result)
    assert document["regressed"] and document["new_failures"][0]["candidate"]["message"] == "texts differ at character 29"
    json.dumps(document)  # serialisable


def test_the_matrix_lists_scenarios_that_do_not_pass_everywhere(runs):
    table = compare.matrix(list(runs))
    assert table[PHI3] == {"2.0.7": "KI-001", "2.0.8": "KI-001"} and table[GEMMA] == {"2.0.7": "pass", "2.0.8": "FAIL"}
    assert table[LISTING] == {"2.0.7": "pass", "2.0.8": "-"}
    markdown = compare.render_matrix(list(runs), ["KI-001 also fails on 2.0.7"])
    assert "| scenario | 2.0.7 | 2.0.8 |" in markdown and f"| {NEW} | skip | pass |" in markdown
    assert "- KI-001 also fails on 2.0.7" in markdown


REGISTRY = '''
[[issue]]
id = "KI-LEAK"
title = "<|end|> shows"
kind = "product"
models = ["mlx-e2e-demo/phi3-style"]
tags = ["cli"]
messages = ["*<|end|>*"]
sut = ">=2.0.8,<=2.0.8"
evidence = "seen"

[[issue]]
id = "KI-LENGTH"
title = "finish_reason never length"
kind = "product"
models = ["*"]
scenario = "* stops at max_tokens with finish reason length"
messages = ["*expected 'length'*"]
sut = ">=2.0.6,<=2.0.7"
evidence = "seen"
'''


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "known_issues.toml"
    path.write_text(REGISTRY)
    return known_issues.load(path)


def test_runs_are_booked_against_the_registry_as_it_is_now(runs, registry):
    base, candidate = (history.rebook(run, registry) for run in runs)
    assert base.outcome(LENGTH).issue == "KI-LENGTH"
    assert base.outcome(PHI3).issue is None  # booked as KI-001 when it ran; 2.0.7 is outside KI-LEAK's range
    assert candidate.outcome(PHI3).issue == "KI-LEAK" and candidate.outcome(GEMMA).issue is None


def test_an_entry_failing_outside_its_range_or_passing_inside_it_is_a_finding(tmp_path, runs, registry):
    older = compare.load_run("2.0.6", record(tmp_path / "2.0.6", "2.0.6", [
        scenario(LENGTH, "passed", "mlx-e2e-demo/gemma-style", ("server",))]))
    findings = history.check(registry, [older, *runs])
    assert [(f.issue, f.release, f.kind) for f in findings] == [
        ("KI-LENGTH", "2.0.6", "stopped"), ("KI-LEAK", "2.0.7", "outside")]
    assert "KI-LEAK also fails on 2.0.7, outside its sut range: " + PHI3 in str(findings[1])
    assert "KI-LENGTH does not fail on 2.0.6, inside its sut range" in str(findings[0])
    assert history.seen_on(registry, [older, *runs]) == {"KI-LEAK": ["2.0.7", "2.0.8"], "KI-LENGTH": ["2.0.7"]}


def test_an_entry_not_exercised_by_a_run_is_no_finding(tmp_path, registry):
    elsewhere = compare.load_run("2.0.6", record(tmp_path / "2.0.6", "2.0.6", [scenario(LISTING, "passed")]))
    assert history.check(registry, [elsewhere]) == []


def test_a_scenario_the_entry_covers_but_never_failed_in_is_no_evidence_of_a_fix(tmp_path, registry):
    # KI-LEAK's globs cover every @cli scenario of phi3-style; only those it failed in count
    other = "Machine-readable output of mlx-e2e-demo/phi3-style is one JSON document"
    run = compare.load_run("2.0.8", record(tmp_path / "2.0.8", "2.0.8", [
        scenario(other, "passed", "mlx-e2e-demo/phi3-style")]))
    assert history.check(registry, [run]) == []
