"""The conformance command on made-up verdicts: the columns it plans (the newest mlx-lm, or why it
was not measured), the table, the HTML page, the Allure run with the target as a parameter, and a
column whose run ends without a verdict."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import conformance, conformance_allure, conformance_page
from bench.conformance_table import cell, counts, render, scenario_rows
from support import verdict


def entry(name: str, outcome: str, detail: str | None = None, **more) -> dict:
    status = {"known": "failed", "harness": "failed"}.get(outcome, outcome)
    return {"scenario": name, "status": status, "outcome": outcome, "detail": detail, "message": "",
            "issue": detail if outcome == "known" else None, "evidence": None, **more}


def run(target: str, version: str, *entries: dict, exit_code: int = 0, label: str | None = None) -> dict:
    return {"target": target, "sut_version": version, "exit": exit_code, "wall_seconds": 1.5,
            "label": label or target, "scenarios": list(entries)}


MESSAGE = "ASSERT FAILED: expected 200, got 404 | x\nrequest: POST /v1/chat/completions\n<b>body</b> & more"
MLXK = run("mlxk", "2.0.8", entry("A chat answer from m", "passed"), entry("The listing holds m", "passed"),
           entry("The CLI of m", "known", "KI-001", message="leaked <|im_end|>", evidence="evidence/The_CLI_of_m"))
MLX_LM = run("mlx_lm", "0.31.3",
             entry("A chat answer from m", "failed", MESSAGE.splitlines()[0], message=MESSAGE,
                   evidence="evidence/A_chat_answer_from_m"),
             entry("The listing holds m", "skipped",
                   "not offered by target mlx_lm 0.31.3: a command that lists the cached models"),
             entry("The CLI of m", "known", "KI-501"), entry("Only here", "harness", "HarnessError: no server"),
             exit_code=1)
TITLES = {"KI-001": "end token <leaks>", "KI-501": "stops at 100 tokens"}


def cells_of(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


# --- the table ---------------------------------------------------------------------------------

def test_cells_say_pass_known_fail_harness_not_offered_and_skipped():
    assert cell(entry("s", "passed")) == "pass" and cell(None) == "-"
    assert cell(entry("s", "known", "KI-501")) == "known KI-501"
    assert cell(entry("s", "failed", "x" * 200)) == "FAIL: " + "x" * 90 + "..."
    assert cell(entry("s", "harness", "no server")) == "harness: no server"
    assert cell(entry("s", "skipped", "not offered by target mlx_lm 0.31.3: questions about images")) \
        == "not offered: questions about images"
    assert cell(entry("s", "skipped", "RAM gate: m needs 7 GB")) == "skipped: RAM gate: m needs 7 GB"


def test_the_table_has_a_row_per_scenario_a_column_per_target_and_the_columns_not_measured():
    text = render([MLXK, MLX_LM], TITLES, ["the newest mlx-lm: the index did not answer"])
    lines = text.splitlines()
    header = cells_of(next(line for line in lines if line.startswith("| scenario")))
    assert header == ["scenario", "mlxk 2.0.8", "mlx_lm 0.31.3"]
    row = cells_of(next(line for line in lines if line.startswith("| A chat answer from m")))
    assert row == ["A chat answer from m", "pass", "FAIL: ASSERT FAILED: expected 200, got 404 \\| x"]
    assert "not offered: a command that lists the cached models" in text
    assert cells_of(next(line for line in lines if line.startswith("| Only here")))[1] == "-"
    assert "- KI-001: end token <leaks>" in text and "- KI-501: stops at 100 tokens" in text
    totals = {cells_of(line)[0]: cells_of(line)[1:] for line in lines if line.startswith("| mlx")}
    assert totals["mlx_lm 0.31.3"] == ["FAILS (exit 1)", "1.5", "0", "1", "1", "1", "1"]
    assert totals["mlxk 2.0.8"] == ["passes", "1.5", "2", "1", "0", "0", "0"]
    assert "- not measured: the newest mlx-lm: the index did not answer" in lines


def test_counts_and_rows_keep_a_name_met_twice_in_one_run():
    assert counts(MLX_LM) == {"passed": 0, "known": 1, "failed": 1, "harness": 1, "skipped": 1}
    twice = run("mlxk", "2.0.8", entry("same", "passed"), entry("same", "failed", "boom"))
    rows = scenario_rows([twice, run("mlx_lm", "0.31.3", entry("same", "passed"))])
    assert [(name, [e and e["outcome"] for e in entries]) for name, entries in rows] == \
        [("same", ["passed", "passed"]), ("same", ["failed", None])]


# --- the verdict's one list of scenario ends ---------------------------------------------------

def test_a_tally_records_every_scenario_end_with_its_outcome():
    tally = verdict.Tally()
    known = SimpleNamespace(id="KI-5", kind="product")
    tally.record("s1", "m", ["@cli"], "passed")
    tally.record("s2", "m", [], "skipped", reason="RAM gate")
    tally.record("s3", "m", [], "failed", "AssertionError: expected a\nmore", True, known)
    tally.record("s4", "m", [], "failed", "AssertionError: expected b\nmore", True)
    tally.record("s5", None, [], "failed", "HarnessError: no server", False)
    assert [(s["status"], s["outcome"], s["detail"]) for s in tally.scenarios] == [
        ("passed", "passed", None), ("skipped", "skipped", "RAM gate"), ("failed", "known", "KI-5"),
        ("failed", "failed", "AssertionError: expected b"), ("failed", "harness", "HarnessError: no server")]
    assert tally.scenarios[0]["tags"] == ["cli"] and tally.scenarios[2]["issue"] == "KI-5"
    assert tally.scenarios[3]["message"] == "AssertionError: expected b\nmore"


def test_the_verdict_gives_a_runs_exit_code():
    said = []
    assert verdict.exit_code(0, None, said.append) == 0 and said == []
    assert verdict.exit_code(1, None, said.append) == 1 and "before the run finished" in said[-1]
    known = {"known_failures": [{"issue": "KI-5"}], "unexpected_failures": [], "harness_failures": [],
             "harness_problems": []}
    assert verdict.exit_code(1, known, said.append) == 0 and "KI-5" in said[-1]
    assert verdict.exit_code(1, {**known, "unexpected_failures": ["s"]}, said.append) == 1
    assert said[-1] == "1 unexpected failure(s): s"


# --- the columns ---------------------------------------------------------------------------------

def made(version, why):
    return (f"mlx_lm-mlx-lm-{version}", "mlx_lm", ["-D", f"mlx_lm=/v/mlx-lm-{version}"]), None


def test_the_newest_mlx_lm_is_a_column_of_its_own_unless_it_is_the_suites():
    columns, missing = conformance.plan(["mlxk", "mlx_lm"], [], [], True,
                                        find_newest=lambda: ("99.0.1", "newest"), make_column=made)
    assert [c[0] for c in columns] == ["mlxk", "mlx_lm", "mlx_lm-mlx-lm-99.0.1"] and missing == []
    from importlib import metadata
    suite = metadata.version("mlx-lm")
    columns, _ = conformance.plan(["mlxk"], [], ["0.30.0"], True, find_newest=lambda: (suite, "newest"),
                                  make_column=made)
    assert [c[0] for c in columns] == ["mlxk", "mlx_lm-mlx-lm-0.30.0"]
    columns, _ = conformance.plan(["mlxk"], [], [], False, find_newest=pytest.fail, make_column=made)
    assert [c[0] for c in columns] == ["mlxk"]  # --no-newest: the index is not asked


def test_a_column_that_cannot_be_made_is_named_with_why_and_the_rest_is_measured():
    columns, missing = conformance.plan(["mlxk"], [], ["0.30.0"], True,
                                        find_newest=lambda: (None, "`pip index versions mlx-lm` exited 1: "
                                                                   "ERROR: no network"),
                                        make_column=lambda v, why: (None, f"mlx_lm {v}: pip install failed"))
    assert [c[0] for c in columns] == ["mlxk"]
    assert missing == ["the newest mlx-lm: `pip index versions mlx-lm` exited 1: ERROR: no network",
                       "mlx_lm 0.30.0: pip install failed"]


def test_the_newest_version_is_pips_answer_and_an_unreachable_index_is_one_line(monkeypatch):
    answers = iter([
        subprocess.CompletedProcess([], 0, json.dumps({"name": "mlx-lm", "versions": ["0.32.2", "0.31.3"],
                                                      "latest": "0.32.2"}), "WARNING: a find-links folder\n"),
        subprocess.CompletedProcess([], 1, "", "WARNING: Retrying\nERROR: Could not find a version that "
                                               "satisfies the requirement mlx-lm\n"),
    ])
    seen = []
    monkeypatch.setattr(conformance.subprocess, "run", lambda command, **kw: seen.append(command) or next(answers))
    assert conformance.newest_mlx_lm() == ("0.32.2", "newest on the package index")
    assert seen[0][:6] == [sys.executable, "-m", "pip", "index", "versions", "mlx-lm"]
    version, why = conformance.newest_mlx_lm()
    assert version is None and why == ("`pip index versions mlx-lm` exited 1: ERROR: Could not find a version "
                                       "that satisfies the requirement mlx-lm")

    def slow(command, **kw):
        raise subprocess.TimeoutExpired(command, kw["timeout"])
    monkeypatch.setattr(conformance.subprocess, "run", slow)
    assert conformance.newest_mlx_lm(timeout=5) == (
        None, "the package index did not answer `pip index versions mlx-lm` within 5 s")


def test_a_column_runs_the_production_command_and_one_that_leaves_no_verdict_says_so(tmp_path, monkeypatch):
    command = conformance.run_command("mlx_lm", tmp_path / "r", ["-D", "include=x"], "auto")
    assert command[1:] == ["-m", "support.parallel", "--jobs", "auto", "--reports", str(tmp_path / "r"),
                           "-D", "target=mlx_lm", "-D", "include=x"]
    monkeypatch.setattr(conformance, "RUNS", tmp_path)
    monkeypatch.setattr(conformance, "run_command",
                        lambda *a: [sys.executable, "-c", "print('shard 1 died'); raise SystemExit(3)"])
    got = conformance.run_column("mlxk", "mlxk", [])
    assert (got["runner_exit"], got["exit"], got["scenarios"], got["sut_version"]) == (3, 3, [], "?")
    assert "no verdict: the run ended with 3 before it finished" in got["why"]
    assert (tmp_path / "mlxk.console.txt").read_text() == "shard 1 died\n"
    assert json.loads((tmp_path / "mlxk.run.json").read_text())["exit"] == 3
    with pytest.raises(SystemExit, match="no finished conformance run of mlxk"):
        conformance.earlier_run("mlxk")
    (tmp_path / "mlxk").mkdir()
    (tmp_path / "mlxk" / "verdict.json").write_text(json.dumps({"target": "mlxk", "sut_version": "2.0.8",
                                                                "scenarios": []}))
    assert conformance.earlier_run("mlxk")["sut_version"] == "2.0.8"


def test_the_judged_exit_of_a_column_is_its_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance, "RUNS", tmp_path)
    doc = {"target": "mlxk", "sut_version": "2.0.8", "scenarios": [entry("s", "known", "KI-5")],
           "known_failures": [{"issue": "KI-5"}], "unexpected_failures": ["t"], "harness_failures": [],
           "harness_problems": []}
    script = (f"import pathlib; p = pathlib.Path({str(tmp_path / 'mlxk')!r}); p.mkdir(); "
              f"(p / 'verdict.json').write_text({json.dumps(doc)!r})")
    monkeypatch.setattr(conformance, "run_command", lambda *a: [sys.executable, "-c", script])
    got = conformance.run_column("mlxk", "mlxk", [])
    assert (got["runner_exit"], got["exit"], got["why"]) == (0, 1, "1 unexpected failure(s): t")


# --- the HTML page -------------------------------------------------------------------------------

class Cells(HTMLParser):
    """The page's table cells: class, text and links."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self.tags: list[str] = []
        self.inside = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "td":
            self.cells.append({"class": dict(attrs).get("class"), "text": "", "links": []})
            self.inside = True
        elif tag == "a" and self.inside:
            self.cells[-1]["links"].append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "td"

    def handle_data(self, data):
        if self.inside:
            self.cells[-1]["text"] += data


def test_the_page_colours_each_cell_and_opens_a_failure_to_its_message_title_and_evidence():
    html = conformance_page.render([MLXK, MLX_LM], TITLES, ["the newest mlx-lm: the index <did not> answer"])
    parser = Cells()
    parser.feed(html)
    assert not {"script", "link", "img", "iframe"} & set(parser.tags)  # self-contained: no external asset
    assert "<style>" in html and "http://" not in html and "https://" not in html
    by_text = {c["text"].split("\n")[0]: c for c in parser.cells}
    fail = next(c for c in parser.cells if c["text"].startswith("FAIL: ASSERT FAILED"))
    assert fail["class"] == "failed" and "<b>body</b> & more" in fail["text"]  # the whole message, as text
    assert fail["links"] == ["conformance/mlx_lm/evidence/A_chat_answer_from_m"]
    known = next(c for c in parser.cells if c["text"].startswith("known KI-001: leaked <|im_end|>"))
    assert known["class"] == "known" and "KI-001: end token <leaks>" in known["text"]
    assert known["links"] == ["conformance/mlxk/evidence/The_CLI_of_m"]
    assert by_text["pass"]["class"] == "passed" and by_text["harness: HarnessError: no server"]["class"] == "harness"
    assert by_text["not offered: a command that lists the cached models"]["class"] == "skipped"
    assert "&lt;b&gt;body&lt;/b&gt; &amp; more" in html and "<b>body</b>" not in html
    assert "not measured: the newest mlx-lm: the index &lt;did not&gt; answer" in html
    assert [c["text"] for c in parser.cells[:8]] == ["mlxk 2.0.8", "passes", "1.5", "2", "1", "0", "0", "0"]


# --- the Allure run, the target as a parameter ---------------------------------------------------

def allure_run(folder: Path, tag: str, *names: str) -> Path:
    """A column's allure-results as a merged live run leaves them: results, attachments, environment."""
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        uid = f"{tag}-{i}"
        (folder / f"{uid}-result.json").write_text(json.dumps({
            "uuid": uid, "name": name, "fullName": f"features/a.feature: {name}", "historyId": f"h-{name}",
            "testCaseId": f"tc-{name}", "status": "passed", "parameters": [{"name": "model", "value": "m"}],
            "attachments": [{"name": "exchange", "source": f"{uid}-attachment.txt", "type": "text/plain"}]}))
        (folder / f"{uid}-attachment.txt").write_text(f"exchange of {name} on {tag}")
    (folder / f"{tag}-globals.json").write_text("{}")
    (folder / "environment.properties").write_text(f"SUT={tag}\nPython=3.11\n")
    return folder


def test_the_joined_allure_results_hold_each_scenario_once_per_target(tmp_path):
    columns = [("mlxk 2.0.8", allure_run(tmp_path / "a", "mlxk", "s1", "s2")),
               ("mlx_lm 0.32.2", allure_run(tmp_path / "b", "mlxlm", "s1"))]
    out = tmp_path / "joined"
    assert conformance_allure.join(columns, out, "| table |") == 3
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*-result.json"))]
    targets = {(d["name"], next(p["value"] for p in d["parameters"] if p["name"] == "target")) for d in docs}
    assert targets == {("s1", "mlxk 2.0.8"), ("s2", "mlxk 2.0.8"), ("s1", "mlx_lm 0.32.2")}
    assert all({"name": "model", "value": "m"} in d["parameters"] for d in docs)
    s1 = [d for d in docs if d["name"] == "s1"]
    assert len({d["historyId"] for d in docs}) == 3 and all(d["historyId"] != "h-s1" for d in s1)
    assert {d["testCaseId"] for d in s1} == {"tc-s1"}  # one test case, a test per target
    for d in docs:
        assert (out / d["attachments"][0]["source"]).read_text().startswith(f"exchange of {d['name']} on ")
    env = (out / "environment.properties").read_text()
    assert "SUT=mlxk | mlxlm" in env and "targets=mlxk 2.0.8 | mlx_lm 0.32.2" in env
    assert (out / "categories.json").is_file()
    globals_ = [json.loads(p.read_text()) for p in out.glob("*-globals.json")]
    assert len(globals_) == 1 and (out / globals_[0]["attachments"][0]["source"]).read_text() == "| table |"
    assert conformance_allure.history_id("h", None, "t") == conformance_allure.history_id("h", None, "t")


def test_one_run_given_as_two_columns_is_refused(tmp_path):
    from support.errors import SuiteError
    folder = allure_run(tmp_path / "a", "mlxk", "s1")
    with pytest.raises(SuiteError, match="one run given twice"):
        conformance_allure.join([("mlxk 2.0.8", folder), ("mlxk again", folder)], tmp_path / "joined")


def test_without_the_report_tool_the_html_report_is_left_out_with_why(tmp_path):
    why = conformance_allure.generate(tmp_path / "results", tmp_path / "report", allure=tmp_path / "no-allure")
    assert why.startswith("no ") and "npm ci" in why and not (tmp_path / "report").exists()


@pytest.mark.live  # runs the pinned Allure 3 (Node.js; `make` installs it the first time), about 3 s
def test_allure_3_shows_each_scenario_once_per_target_and_without_the_parameter_as_a_retry(tmp_path):
    make = subprocess.run(["make", "node_modules/.package-lock.json"], cwd=conformance.ROOT, capture_output=True,
                          text=True, timeout=600)
    assert make.returncode == 0, make.stdout[-2000:] + make.stderr[-2000:]

    def report(columns, name):
        conformance_allure.join(columns, tmp_path / f"{name}-results")
        why = conformance_allure.generate(tmp_path / f"{name}-results", tmp_path / name)
        assert why is None, why
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        tests = [json.loads(p.read_text()) for p in (tmp_path / name / "data" / "test-results").glob("*.json")]
        return summary, tests

    a, b = allure_run(tmp_path / "a", "1111-a", "s1", "s2"), allure_run(tmp_path / "b", "2222-b", "s1")
    summary, tests = report([("mlxk 2.0.8", a), ("mlx_lm 0.32.2", b)], "report")
    assert summary["stats"]["total"] == 3 and summary["retryTests"] == []
    shown = sorted((t["name"], next(p["value"] for p in t["parameters"] if p["name"] == "target")) for t in tests)
    assert shown == [("s1", "mlx_lm 0.32.2"), ("s1", "mlxk 2.0.8"), ("s2", "mlxk 2.0.8")]
    attached = {p.read_text() for p in (tmp_path / "report" / "data" / "attachments").glob("*.txt")}
    assert {"exchange of s1 on 1111-a", "exchange of s1 on 2222-b", "exchange of s2 on 1111-a"} <= attached

    # the control: the same results without the target parameter are one test and its retry
    for path in (tmp_path / "report-results").glob("*-result.json"):
        doc = json.loads(path.read_text())
        doc["parameters"] = [p for p in doc["parameters"] if p["name"] != "target"]
        path.write_text(json.dumps(doc))
    conformance_allure.generate(tmp_path / "report-results", tmp_path / "control")
    control = json.loads((tmp_path / "control" / "summary.json").read_text())
    assert control["stats"]["total"] == 2 and len(control["retryTests"]) == 1, control


def test_mlx_openai_server_is_a_column_from_its_cached_venv_or_a_line_saying_why_not(monkeypatch, tmp_path):
    monkeypatch.setattr(conformance, "mlx_openai_server_venv", lambda log: tmp_path / "venv")
    columns, missing = conformance.plan(["mlxk", "mlx_openai_server"], [], [], False, make_column=made)
    assert columns == [("mlxk", "mlxk", []),
                       ("mlx_openai_server", "mlx_openai_server", ["-D", f"mlx_openai_server={tmp_path / 'venv'}"])]
    assert missing == []

    def fails(log):
        raise conformance.HarnessError("pip install --no-deps ...: exit 1\nERROR: no network")
    monkeypatch.setattr(conformance, "mlx_openai_server_venv", fails)
    columns, missing = conformance.plan(["mlxk", "mlx_openai_server"], [], [], False, make_column=made)
    assert [c[0] for c in columns] == ["mlxk"]
    assert missing == ["mlx_openai_server: its venv could not be made (pip install --no-deps ...: exit 1)"]
