"""Merging runs' reports (support/merge.py) on synthetic reports folders: shards of one run merge
into what one unsharded run reports; runs that are not shards of one run are refused."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from behave.parser import parse_feature

from support import allure_results, hooks, merge, verdict as verdicts
from support.errors import SuiteError
from support.portfolio_matrix import Matrix, render_document

A, B, C = "demo/a", "demo/b", "demo/c"
TITLE = "Portfolio matrix: mlx-knife 2.0.8 on /cache"
# (feature file, scenario name, model, tags, status, known issue) of a whole, unsharded run
SCENARIOS = [
    ("features/golden.feature", f"{A} answers", A, ["server"], "passed", None),
    ("features/golden.feature", f"{B} answers", B, ["server"], "failed", "KI-003"),
    ("features/golden.feature", f"{C} answers", C, ["server"], "passed", None),
    ("features/cli.feature", f"{A} prints", A, ["cli"], "passed", None),
    ("features/cli.feature", f"{B} prints", B, ["cli"], "failed", "KI-001"),
    ("features/cli.feature", f"{C} prints", C, ["cli"], "skipped", None),
    ("features/cli.feature", "an unknown model fails", None, ["cli"], "passed", None),
]
EXCLUDED = [("demo/broken", "unhealthy: No model weights found")]


def write_run(root: Path, models: list[str], shard: str | None = None, *, unexpected=(), problems=(),
              machine: str = "m1", sut: str = "2.0.8", scenarios=SCENARIOS) -> Path:
    """A reports folder as a finished live run writes it (the scenarios of its models)."""
    root.mkdir(parents=True)
    mine = [s for s in scenarios if s[2] in models or s[2] is None]
    if shard is not None and not shard.startswith("1/"):  # not per model: shard 1 only (support/hooks.py)
        mine = [s if s[2] is not None else (*s[:4], "skipped", None) for s in mine]
    matrix = Matrix()
    for feature, name, model, tags, status, issue in mine:
        matrix.add(model, tags, status, issue, feature=feature, scenario=name)
    others = [m for m in (A, B, C) if m not in models]
    excluded = sorted(EXCLUDED + ([(m, "in another shard (9/9)") for m in others] if shard else []))
    doc = matrix.document(models, excluded, {}, title=TITLE)
    (root / "matrix.json").write_text(json.dumps(doc))
    (root / "portfolio.md").write_text(render_document(doc))
    known = [{"scenario": s[1], "issue": s[5], "kind": "product"} for s in mine if s[5]]
    scenarios = [{"scenario": s[1], "model": s[2], "status": s[4], "issue": s[5],
                  "outcome": "known" if s[5] else s[4], "detail": s[5]} for s in mine]
    (root / "verdict.json").write_text(json.dumps({
        "target": "mlxk", "sut_version": sut, "portfolio": "/cache", "shard": shard, "server_starts": len(models),
        "server_evictions": 0, "servers_died": [], "servers_hung": [], "seconds": {"cli": 1.5},
        "scenarios": scenarios, "known_failures": known,
        "unexpected_failures": list(unexpected), "harness_failures": [], "harness_problems": list(problems),
        "registered_not_seen": ["KI-009"]}))
    (root / "metrics.json").write_text(json.dumps({
        "sut_version": sut, "portfolio": "/cache", "machine": {"cpu": machine}, "units": {}, "meaning": {},
        "models": [{"model": m, "gated": None} for m in models]}))
    for feature in sorted({s[0] for s in mine}):
        stem = Path(feature).stem
        suite = ET.Element("testsuite", name=f"features.{stem}", hostname=machine, timestamp="2026-12-01T10:00:00")
        for f, name, _, _, status, _ in mine:
            if f == feature:
                case = ET.SubElement(suite, "testcase", classname=f"features.{stem}", name=name, status=status,
                                     time="1.5")
                if status != "passed":
                    ET.SubElement(case, "failure" if status == "failed" else "skipped")
        (root / "junit").mkdir(exist_ok=True)
        ET.ElementTree(suite).write(root / "junit" / f"TESTS-features.{stem}.xml")
    results = root / "allure-results"
    results.mkdir()
    for i, (feature, name, model, _, status, issue) in enumerate(mine):
        uid = f"{root.name}-{i}"
        (results / f"{uid}-result.json").write_text(json.dumps({
            "uuid": uid, "name": name, "fullName": f"{feature}: {name}", "historyId": f"h-{feature}-{name}",
            "status": status, "labels": [{"name": "known_issue", "value": issue}] if issue else [],
            "attachments": [{"name": "log", "source": f"{uid}-attachment.txt"}]}))
        (results / f"{uid}-attachment.txt").write_text("evidence")
    (results / f"{root.name}-globals.json").write_text("{}")
    allure_results.write_environment(results, {"SUT": f"mlx-knife {sut}", "CPU": machine, "shard": shard or "all"})
    if any(s[4] == "failed" for s in mine):
        (root / "evidence" / f"failure-of-{root.name}").mkdir(parents=True)
    return root


def outcomes_of_junit(folder: Path) -> dict[tuple[str, str], str]:
    return {(c.get("classname"), c.get("name")): merge.junit_status(c)
            for path in sorted(folder.glob("*.xml")) for c in ET.parse(path).getroot().iter("testcase")}


def outcomes_of_allure(folder: Path) -> dict[str, str]:
    docs = [json.loads(p.read_text()) for p in folder.glob("*-result.json")]
    assert len(docs) == len({d["fullName"] for d in docs}), "a scenario twice"
    return {d["fullName"]: d["status"] for d in docs}


@pytest.fixture
def shards(tmp_path) -> tuple[Path, Path, Path]:
    whole = write_run(tmp_path / "whole", [A, B, C])
    one = write_run(tmp_path / "shard-1", [A, C], "1/2")
    two = write_run(tmp_path / "shard-2", [B], "2/2", machine="m2")
    return whole, one, two


def test_two_shards_merge_into_what_one_unsharded_run_reports(shards, tmp_path):
    whole, one, two = shards
    out = tmp_path / "merged"
    verdict = merge.merge(out, [two, one])  # in any order

    assert (out / "portfolio.md").read_text() == (whole / "portfolio.md").read_text()
    key = lambda o: (o["feature"], o["scenario"])  # noqa: E731
    got = json.loads((out / "matrix.json").read_text())
    assert sorted(got["outcomes"], key=key) == sorted(json.loads((whole / "matrix.json").read_text())["outcomes"], key=key)
    assert outcomes_of_junit(out / "junit") == outcomes_of_junit(whole / "junit")
    assert outcomes_of_allure(out / "allure-results") == outcomes_of_allure(whole / "allure-results")
    assert sorted(k["scenario"] for k in verdict["known_failures"]) == [f"{B} answers", f"{B} prints"]
    assert verdict["server_starts"] == 3 and verdict["seconds"] == {"cli": 3.0}
    unsharded = verdicts.read(whole)  # each scenario once, as it ran (not its skipped copy)
    assert sorted(verdict["scenarios"], key=lambda o: o["scenario"]) == \
        sorted(unsharded["scenarios"], key=lambda o: o["scenario"])
    assert verdict["target"] == "mlxk"
    assert [m["shard"] for m in verdict["merged_from"]] == ["2/2", "1/2"]
    assert verdicts.judge(verdicts.read(out)) == 0


def test_a_name_met_twice_in_a_run_is_two_scenarios_of_the_merged_verdict(tmp_path):
    twice = [*SCENARIOS, ("features/other.feature", "an unknown model fails", None, ["cli"], "failed", "KI-1")]
    one = write_run(tmp_path / "1", [A, C], "1/2", scenarios=twice)
    two = write_run(tmp_path / "2", [B], "2/2", scenarios=twice)
    ends = merge.merge_scenarios([merge.load_run(two), merge.load_run(one)])
    assert [s["outcome"] for s in ends if s["scenario"] == "an unknown model fails"] == ["passed", "known"]


def test_a_merged_junit_file_counts_its_cases(shards, tmp_path):
    _, one, two = shards
    merge.merge(tmp_path / "merged", [one, two])
    suite = ET.parse(tmp_path / "merged" / "junit" / "TESTS-features.cli.xml").getroot()
    assert [suite.get(k) for k in ("tests", "failures", "errors", "skipped", "hostname")] == ["4", "1", "0", "1", "m1, m2"]


def test_allure_environment_attachments_metrics_and_evidence_of_every_run(shards, tmp_path):
    _, one, two = shards
    out = tmp_path / "merged"
    merge.merge(out, [one, two])
    env = allure_results.properties_values((out / "allure-results" / "environment.properties").read_text())
    assert env == {"SUT": "mlx-knife 2.0.8", "CPU": "m1 | m2", "shard": "merged: 1/2, 2/2"}
    assert (out / "allure-results" / "categories.json").is_file()
    assert (out / "allure-results" / "shard-2-0-attachment.txt").read_text() == "evidence"
    globals_ = [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-globals.json")]
    assert sorted(a["name"] for g in globals_ for a in g["attachments"]) == [
        "SUT speed per model (metrics.json)", "portfolio matrix (portfolio.md)"]  # the merged ones, not each run's
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["model"] for m in metrics["models"]] == [A, B, C]
    assert metrics["machine"] is None and [m["cpu"] for m in metrics["machines"]] == ["m1", "m2"]
    assert [p.name for p in (out / "evidence").iterdir()] == ["failure-of-shard-2"]  # shard 1 failed nowhere


def test_an_unexpected_failure_or_problem_in_any_shard_fails_the_merge(tmp_path):
    one = write_run(tmp_path / "1", [A, C], "1/2")
    two = write_run(tmp_path / "2", [B], "2/2", unexpected=[f"{B} streams"], problems=["a server survived"])
    assert merge.main([str(tmp_path / "out"), str(one), str(two)]) == 1
    verdict = verdicts.read(tmp_path / "out")
    assert verdicts.problems(verdict) == [f"{B} streams", f"{two}: a server survived"]
    assert (tmp_path / "out" / "portfolio.md").is_file()  # the report is there to read all the same


def test_only_known_failures_pass_and_registered_issues_seen_somewhere_are_not_unseen(shards, tmp_path):
    _, one, two = shards
    assert merge.main([str(tmp_path / "out"), str(one), str(two)]) == 0
    assert verdicts.read(tmp_path / "out")["registered_not_seen"] == ["KI-009"]


@pytest.mark.parametrize("runs, message", [
    ([("1", [A], "1/3"), ("3", [C], "3/3")], "missing 2/3"),
    ([("1", [A], "1/2"), ("1b", [C], "1/2")], "missing 2/2; given twice 1/2"),
    ([("1", [A], "1/2"), ("2", [B], "2/3")], "different splits"),
    ([("1", [A, B], "1/2"), ("2", [B], "2/2")], f"{B} was tested by two runs"),
    ([("1", [A], "1/2"), ("2", [B], None)], "some runs are shards"),
])
def test_runs_that_are_not_the_shards_of_one_run_are_refused(tmp_path, runs, message):
    paths = [write_run(tmp_path / name, models, shard) for name, models, shard in runs]
    with pytest.raises(SuiteError, match=message):
        merge.merge(tmp_path / "out", paths)
    assert merge.main([str(tmp_path / "out2"), *map(str, paths)]) == 2


def test_runs_of_two_sut_versions_or_an_unfinished_run_are_refused(tmp_path):
    one = write_run(tmp_path / "1", [A], "1/2")
    two = write_run(tmp_path / "2", [B], "2/2", sut="2.0.9")
    with pytest.raises(SuiteError, match="different SUTs"):
        merge.merge(tmp_path / "out", [one, two])
    (two / "verdict.json").unlink()
    with pytest.raises(SuiteError, match=f"{two} has no verdict.json"):
        merge.merge(tmp_path / "out", [one, two])


def test_a_scenario_that_ran_in_two_runs_is_refused(tmp_path):
    # two unsharded runs of different models: the not-per-model scenario ran in both
    one, two = write_run(tmp_path / "1", [A]), write_run(tmp_path / "2", [B])
    with pytest.raises(SuiteError, match="'an unknown model fails'.* ran in .* and in"):
        merge.merge(tmp_path / "out", [one, two])


def test_unsharded_runs_of_separate_scenarios_merge(tmp_path):
    per_model = [s for s in SCENARIOS if s[2] is not None]
    one = write_run(tmp_path / "1", [A], scenarios=per_model)
    two = write_run(tmp_path / "2", [B, C])
    merge.merge(tmp_path / "out", [one, two])
    assert (tmp_path / "out" / "portfolio.md").read_text() == render_document(json.loads(
        (write_run(tmp_path / "whole", [A, B, C]) / "matrix.json").read_text()))


def test_the_output_folder_is_new_or_an_earlier_merge_never_a_run_or_other_files(shards, tmp_path):
    _, one, two = shards
    with pytest.raises(SuiteError, match="holds the run"):
        merge.merge(tmp_path, [one, two])
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(SuiteError, match="not empty and holds no earlier merge"):
        merge.merge(other, [one, two])
    assert (other / "keep.txt").read_text() == "mine"
    merge.merge(tmp_path / "out", [one, two])
    merge.merge(tmp_path / "out", [one, two])  # again: replaces the earlier merge
    assert len(list((tmp_path / "out" / "allure-results").glob("*-result.json"))) == 7


def test_usage():
    assert merge.main([]) == 2 and merge.main(["out"]) == 2


def test_properties_round_trip():
    values = {"SUT.command": "/a b/mlxk --x=1", "CPU": "M2 Max: 12 cores", "note": "tab\there\nnext \\ end"}
    assert allure_results.properties_values(allure_results.properties_text(values)) == values


def test_a_scenario_not_per_model_runs_in_the_first_shard_only():
    def suite(shard):
        return SimpleNamespace(settings=SimpleNamespace(shard=shard), portfolio_name="demo", gated_reason=lambda m: None,
                               target=SimpleNamespace(name="mlxk", version="2.0.8", lacks=frozenset()))

    scenario = parse_feature("Feature: f\n  Scenario: s\n    Given a step\n").scenarios[0]
    assert "runs in shard 1/3 only" in hooks.skip_reason(suite((2, 3)), scenario, None)
    assert hooks.skip_reason(suite((2, 3)), scenario, A) is None
    assert hooks.skip_reason(suite((1, 3)), scenario, None) is None
    assert hooks.skip_reason(suite(None), scenario, None) is None
