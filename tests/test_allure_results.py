"""Allure labels, known-issue marks, categories and environment (support/allure_results.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import allure
import pytest

from support import allure_results as ar

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ar.CATEGORIES[2]["name"]

# (status, message, the one category it belongs to)
SAMPLES = [
    ("failed", "KNOWN PRODUCT DEFECT KI-003: AssertionError: answer shows <|end|>\nrequest: ...", "Known product defects"),
    ("broken", "KNOWN PRODUCT DEFECT KI-009: ValueError: odd\n", "Known product defects"),
    ("failed", "KNOWN MODEL QUALITY ISSUE KI-007: AssertionError: empty text\n", "Known model quality issues"),
    # a hang of the SUT is a failed check of the SUT (the bug class "hang"), not the harness's
    ("failed", "AssertionError: expected the command to end by itself within 20 s\ncommand: mlxk run m\n"
               "killed after 20 s after 20.4 s", "Product defects"),
    ("failed", "AssertionError: expected HTTP 200\nresponse: no HTTP status\n  error: no answer within 60 s (Timeout)",
     "Product defects"),
    ("failed", "AssertionError: x\n  error: stream not finished within the 60 s deadline", "Product defects"),
    ("broken", "support.errors.HarnessError: the reference decoder failed (a harness problem, not the SUT's)", HARNESS),
    ("broken", "support.errors.SuiteError: reference decoder: m has no complete snapshot", HARNESS),
    ("broken", "ServerStartError: mlxk serve for m exited with code 1 before it was ready; log: ...", HARNESS),
    ("broken", "ServerStartError: mlxk serve for m was not ready within 120 s; log: ...", HARNESS),
    ("broken", "NameError: name 'run_cli' is not defined\n", HARNESS),
    ("broken", "", HARNESS),
    ("failed", "AssertionError: the server's answer shows end/template token(s) ['<|end|>']", "Product defects"),
    ("failed", "AssertionError: texts differ at character 29\n  expected: 'Rome.'\n  actual: 'Rome.<|end|>'",
     "Product defects"),
]


@pytest.mark.parametrize("status, message, category", SAMPLES)
def test_each_failure_falls_in_exactly_one_category(status, message, category):
    assert ar.categories_of(status, message) == [category]


def _raised(call) -> BaseException:
    try:
        call()
    except BaseException as e:  # noqa: BLE001  (what the step would have raised)
        return e
    raise AssertionError(f"{call} raised nothing")


def _misclassified_before() -> dict[str, BaseException]:
    """The harness failures that were once AssertionErrors (and so sorted as product defects)."""
    from types import SimpleNamespace

    from support import reference_decoder, request_catalogue
    from support.cli_runner import CliResult
    from support.driver import Sut

    crashed = CliResult(("python", "-m", "support.reference_decoder"), 2, "", "Traceback ...", 1.0, 60.0,
                        kind="reference")
    garbled = CliResult(("python", "-m", "support.reference_decoder"), 0, "not json", "", 1.0, 60.0, kind="reference")
    gated = SimpleNamespace(portfolio=SimpleNamespace(chat=[SimpleNamespace(id="org/big")]),
                            gated_reason=lambda model: "needs 90 GB, budget 6 GB")
    return {
        "the reference decoder crashed": _raised(lambda: reference_decoder.parse(crashed)),
        "the reference decoder printed no answers": _raised(lambda: reference_decoder.parse(garbled)),
        "a bad request the suite does not know": _raised(
            lambda: request_catalogue.bad_request(None, "a request in French", "org/m")),
        "a golden answer too short to stop in": _raised(lambda: request_catalogue.stop_strings("Hi.", 2)),
        "no chat model fits the RAM budget": _raised(lambda: Sut(gated).any_chat_model()),
    }


@pytest.mark.parametrize("case", sorted(_misclassified_before()))
def test_harness_failures_are_harness_problems_not_product_defects(case):
    from allure_commons.utils import format_exception

    from support import verdict

    error = _misclassified_before()[case]
    assert not isinstance(error, AssertionError), error
    assert not verdict.is_product_failure(error)
    status = "failed" if isinstance(error, AssertionError) else "broken"  # what allure-behave reports
    assert ar.categories_of(status, format_exception(type(error), error)) == [HARNESS]


@pytest.mark.parametrize("status", ["passed", "skipped"])
def test_passed_and_skipped_results_have_no_category(status):
    assert ar.categories_of(status, "") == []


def test_the_rules_mean_the_same_to_allure3_javascript():
    """Allure 3 tests `new RegExp(messageRegex).test(message)` and takes the first rule that matches."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the HTML report needs Node.js (see README, Reports)")
    script = textwrap.dedent("""
        const [cats, samples] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
        const first = ([status, message]) => {
          const c = cats.find(c => (c.matchedStatuses || [status]).includes(status)
                                 && new RegExp(c.messageRegex ?? '').test(message));
          return c ? c.name : null;
        };
        console.log(JSON.stringify(samples.map(first)));
    """)
    run = subprocess.run([node, "-e", script], input=json.dumps([ar.CATEGORIES, SAMPLES]), capture_output=True,
                         text=True, timeout=30, check=True)
    assert json.loads(run.stdout) == [category for _, _, category in SAMPLES]


def test_story_is_the_scenario_name_with_the_model_as_placeholder():
    name = "A chat answer from org/m-4bit is a complete chat completion -- @1.3 "
    assert ar.story_of(name, "org/m-4bit") == "A chat answer from <model> is a complete chat completion"
    assert ar.story_of("An unknown model fails with exit code 1", None) == "An unknown model fails with exit code 1"


def result_file(folder: Path, uuid: str, status: str, message: str | None, labels=()) -> Path:
    doc = {"uuid": uuid, "name": uuid, "status": status,
           "labels": [{"name": n, "value": v} for n, v in labels]}
    if message is not None:
        doc["statusDetails"] = {"message": message, "trace": "  File ..."}
    path = folder / f"{uuid}-result.json"
    path.write_text(json.dumps(doc))
    return path


def message_of(path: Path) -> str | None:
    return json.loads(path.read_text()).get("statusDetails", {}).get("message")


def test_known_failures_are_marked_once_and_nothing_else_is_touched(tmp_path):
    known = [(ar.KNOWN_LABEL, "KI-003"), (ar.KIND_LABEL, "product")]
    product = result_file(tmp_path, "p", "failed", "AssertionError: leak", known)
    model = result_file(tmp_path, "m", "failed", "AssertionError: empty",
                        [(ar.KNOWN_LABEL, "KI-007"), (ar.KIND_LABEL, "model")])
    broken = result_file(tmp_path, "b", "broken", None, known)  # no message at all
    passed = result_file(tmp_path, "ok", "passed", None, known)  # a label on a pass changes nothing
    other = result_file(tmp_path, "x", "failed", "AssertionError: new", [])
    before = {p: p.read_text() for p in (passed, other)}

    assert sorted(ar.mark_known_results(tmp_path)) == ["b", "m", "p"]
    assert message_of(product) == "KNOWN PRODUCT DEFECT KI-003: AssertionError: leak"
    assert message_of(model) == "KNOWN MODEL QUALITY ISSUE KI-007: AssertionError: empty"
    assert message_of(broken) == "KNOWN PRODUCT DEFECT KI-003: "
    assert all(p.read_text() == text for p, text in before.items())
    assert json.loads(product.read_text())["statusDetails"]["trace"] == "  File ..."
    assert ar.mark_known_results(tmp_path) == []  # idempotent: make report may run it again
    assert message_of(product) == "KNOWN PRODUCT DEFECT KI-003: AssertionError: leak"


def test_environment_properties_escape_like_java(tmp_path):
    text = ar.properties_text({"RAM budget": "6.0 GB (set: manifest)", "a=b": "x\\y\nz", "skip": None})
    assert text == "RAM\\ budget=6.0 GB (set: manifest)\na\\=b=x\\\\y\\nz\n"
    path = ar.write_environment(tmp_path, {"SUT": "mlx-knife 2.0.8"})
    assert path.name == "environment.properties" and path.read_text() == "SUT=mlx-knife 2.0.8\n"


def test_run_environment_names_sut_libraries_machine_budget_portfolio_and_shard():
    env = ar.run_environment(sut="/v/bin/mlxk", sut_version="2.0.8", portfolio="/cache", budget="6.0 GB",
                             shard=(2, 4), machine={"os": "Linux", "cpu": "EPYC", "cores_physical": 2,
                                                    "cores_logical": 4, "ram_gb": 23.5})
    assert env["SUT"] == "mlx-knife 2.0.8" and env["shard"] == "2/4" and env["RAM"] == "23.5 GB"
    assert env["CPU"] == "EPYC (2 cores, 4 threads)" and env["portfolio"] == "/cache"
    assert {"mlx", "mlx-lm", "Python", "OS", "RAM.budget"} <= set(env)
    assert env["mlx-lm"][0].isdigit()


def test_categories_and_allure3_config_hold_the_same_rules(tmp_path):
    assert json.loads(ar.write_categories(tmp_path).read_text()) == ar.CATEGORIES
    config = json.loads(ar.write_allure3_config(tmp_path / "allurerc.json").read_text())
    assert config["categories"] == ar.CATEGORIES and config["name"] == ar.EPIC


def test_results_dir_is_the_allure_formatters_output():
    class AllureFormatter:
        stream_opener = type("Opener", (), {"name": "out/allure-results"})()

    class PlainFormatter:
        stream_opener = type("Opener", (), {"name": "plain.txt"})()

    assert ar.results_dir_of([PlainFormatter(), AllureFormatter()]) == Path("out/allure-results")
    assert ar.results_dir_of([PlainFormatter()]) is None


def test_dynamic_labels_reach_the_open_result():
    class Test:
        labels: list = []

    class Logger:
        test = Test()

        def get_test(self, uuid):
            return self.test

    class AllureFormatter:
        listener = type("Listener", (), {"logger": Logger()})()

    names = ar.enable_dynamic_labels([AllureFormatter()])
    try:
        ar.label_open_test("A chat answer from org/m -- @1.1 ", "org/m")
        ar.mark_open_test_known("KI-003", "product")
    finally:
        ar.disable_dynamic_labels(names)
    allure.dynamic.label("owner", "nobody")  # unregistered: no effect
    got = [(label.name, label.value) for label in Logger.test.labels]
    assert got == [("epic", ar.EPIC), ("story", "A chat answer from <model>"), (ar.KNOWN_LABEL, "KI-003"),
                   (ar.KIND_LABEL, "product")]


def test_main_readies_results_for_allure_generate(tmp_path, capsys):
    assert ar.main([str(tmp_path / "none"), str(tmp_path / "rc.json")]) == 1
    assert "run `make e2e` first" in capsys.readouterr().err
    result_file(tmp_path, "p", "failed", "AssertionError: leak", [(ar.KNOWN_LABEL, "KI-1"), (ar.KIND_LABEL, "model")])
    assert ar.main([str(tmp_path), str(tmp_path / "rc.json")]) == 0
    assert (tmp_path / "categories.json").is_file() and (tmp_path / "rc.json").is_file()
    assert message_of(tmp_path / "p-result.json").startswith("KNOWN MODEL QUALITY ISSUE KI-1: ")


FEATURE = """\
@allure.label.owner:qa
Feature: Throwaway
  @critical @allure.issue:20
  Scenario: passes for org/m
    Given a step that passes

  Scenario: fails with a registered issue
    Given a step that fails

  Rule: scenarios under a rule are reported too
    Scenario: passes under a rule
      Given a step that passes
"""
STEPS = """\
from behave import given

@given("a step that passes")
def ok(context):
    pass

@given("a step that fails")
def bad(context):
    assert False, "the answer shows <|end|>"
"""
ENVIRONMENT = """\
from support import allure_results as ar

def before_all(context):
    context.names = ar.enable_dynamic_labels(context._runner.formatters)

def before_scenario(context, scenario):
    ar.label_open_test(scenario.name, "org/m")

def after_scenario(context, scenario):
    if scenario.status == "failed":
        ar.mark_open_test_known("KI-003", "product", "https://example.invalid/issues/3")

def after_all(context):
    ar.disable_dynamic_labels(context.names)
    ar.finalize(ar.results_dir_of(context._runner.formatters), {"SUT": "mlx-knife 0.0"})
"""


def test_a_real_behave_run_gets_labels_links_marks_environment_and_categories(tmp_path):
    (tmp_path / "features" / "steps").mkdir(parents=True)
    (tmp_path / "features" / "throwaway.feature").write_text(FEATURE)
    (tmp_path / "features" / "steps" / "steps.py").write_text(STEPS)
    (tmp_path / "features" / "environment.py").write_text(ENVIRONMENT)
    results = tmp_path / "allure-results"
    run = subprocess.run(
        [str(Path(sys.executable).parent / "behave"), "features", "-f", "support.allure_results:AllureFormatter",
         "-o", str(results), "-D", "AllureFormatter.issue_pattern=https://github.com/mzau/mlx-knife/issues/{}",
         "--no-capture"],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr  # one scenario fails, as it should
    docs = {d["name"]: d for d in (json.loads(p.read_text()) for p in results.glob("*-result.json"))}
    ok, bad = docs["passes for org/m"], docs["fails with a registered issue"]
    assert docs["passes under a rule"]["status"] == "passed"  # allure-behave alone loses it
    labels = {(lab["name"], lab["value"]) for lab in ok["labels"]}
    assert {("epic", ar.EPIC), ("story", "passes for <model>"), ("severity", "critical"), ("owner", "qa"),
            ("feature", "Throwaway")} <= labels
    assert ok["links"] == [{"type": "issue", "url": "https://github.com/mzau/mlx-knife/issues/20",
                            "name": "https://github.com/mzau/mlx-knife/issues/20"}]
    assert bad["statusDetails"]["message"].startswith(
        "KNOWN PRODUCT DEFECT KI-003: AssertionError: the answer shows <|end|>")
    assert ar.categories_of(bad["status"], bad["statusDetails"]["message"]) == ["Known product defects"]
    assert {"type": "link", "url": "https://example.invalid/issues/3", "name": "KI-003 upstream"} in bad["links"]
    assert (results / "environment.properties").read_text() == "SUT=mlx-knife 0.0\n"
    assert json.loads((results / "categories.json").read_text()) == ar.CATEGORIES


def test_marking_skips_results_it_cannot_read(tmp_path):
    (tmp_path / "half-result.json").write_text('{"uuid": "half", "status": "fa')  # another run still writing
    result_file(tmp_path, "p", "failed", "AssertionError: x", [(ar.KNOWN_LABEL, "KI-1")])
    assert ar.mark_known_results(tmp_path) == ["p"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half-result.json", "p-result.json"]
