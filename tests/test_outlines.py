"""Portfolio outlines: Examples rows filled at runtime, one per model id."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from behave.model import Feature
from behave.parser import parse_file
from behave.model_type import FileLocation

from support.errors import ConfigError
from support.outlines import (
    fill_portfolio_outlines,
    portfolio_outlines,
    rows_missing,
    select_locations,
)

REPO = Path(__file__).resolve().parents[1]
BEHAVE = Path(sys.executable).parent / "behave"
ROWS = {"chat": ["org/a", "org/b"], "text": ["org/a", "org/b", "org/base"]}
MODEL_IDS = ["org/a", "org/b", "org/base"]

FEATURE = """\
Feature: Portfolio

  @portfolio.chat
  Scenario Outline: Chat answers
    Given the model <model>

    Examples:
      | model |

  @portfolio.text
  Scenario Outline: Text completes for <model>
    Given the model <model>

    Examples:
      | model |
"""

STEPS = """\
import allure
from behave import given

@given("the model {model_id}")
def step_model(context, model_id):
    allure.attach(model_id, name="model id")
"""

ENVIRONMENT = f"""\
from support.outlines import fill_portfolio_outlines

def before_all(context):
    fill_portfolio_outlines(context._runner.features, {ROWS!r})  # before any formatter's feature()
"""


def write_project(root: Path, feature: str = FEATURE) -> Path:
    """A tiny behave project under root; returns root."""
    (root / "features" / "steps").mkdir(parents=True)
    (root / "features" / "x.feature").write_text(feature)
    (root / "features" / "steps" / "steps.py").write_text(STEPS)
    (root / "features" / "environment.py").write_text(ENVIRONMENT)
    return root


def run_behave(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run behave in root with the suite's package importable."""
    return subprocess.run([str(BEHAVE), "--no-color", *args, "features"], cwd=root,
                          env={"PYTHONPATH": str(REPO), "PATH": str(BEHAVE.parent)},
                          capture_output=True, text=True, timeout=120)


def parse(tmp_path: Path, text: str) -> Feature:
    """Parse one feature file written from text."""
    path = tmp_path / "p.feature"
    path.write_text(text)
    return parse_file(str(path))


def locations(feature: Feature) -> list[str]:
    """``file:line`` of every outline in feature, as behave prints it."""
    return [str(o.location) for o in feature.iter_scenario_outlines()]


def scenario_names(feature: Feature) -> list[str]:
    """Names of the generated scenarios of every outline in feature."""
    return [s.name for o in feature.iter_scenario_outlines() for s in o.scenarios]


# -- End to end: behave + allure-behave + JUnit -------------------------------------------

@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One behave run of the tiny project with Allure, plain and JUnit output."""
    root = write_project(tmp_path_factory.mktemp("behave"))
    result = run_behave(root, "-f", "allure_behave.formatter:AllureFormatter",
                        "-o", str(root / "allure"), "-f", "plain",
                        "--junit", "--junit-directory", str(root / "junit"))
    return root, result


def test_run_passes(full_run) -> None:
    _, result = full_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 scenarios passed, 0 failed" in result.stdout


def test_allure_has_one_result_per_model_row(full_run) -> None:
    root, _ = full_run
    results = [json.loads(p.read_text()) for p in (root / "allure").glob("*-result.json")]
    assert len(results) == 5
    seen = []
    for result in results:
        (model_id,) = [p["value"] for p in result["parameters"] if p["name"] == "model"]
        assert model_id in result["name"]
        assert result["status"] == "passed"
        attachments = [a for step in result["steps"] for a in step.get("attachments", [])]
        assert [a["name"] for a in attachments] == ["model id"]
        assert (root / "allure" / attachments[0]["source"]).read_text() == model_id
        seen.append((result["name"].split(" ")[0], model_id))
    assert sorted(seen) == sorted([("Chat", m) for m in ROWS["chat"]]
                                  + [("Text", m) for m in ROWS["text"]])


def test_junit_has_one_testcase_per_model_row(full_run) -> None:
    root, _ = full_run
    (report,) = (root / "junit").glob("*.xml")
    cases = ET.parse(report).getroot().findall("testcase")
    assert [c.get("status") for c in cases] == ["passed"] * 5
    assert [c.get("name") for c in cases] == ["Chat answers (org/a) -- @1.1 ", "Chat answers (org/b) -- @1.2 ",
                     "Text completes for org/a -- @1.1 ", "Text completes for org/b -- @1.2 ",
                     "Text completes for org/base -- @1.3 "]


def test_plain_output_shows_each_model(full_run) -> None:
    _, result = full_run
    for model_id in MODEL_IDS:
        assert f"Given the model {model_id} ... passed" in result.stdout
    assert "Chat answers (org/b) -- @1.2" in result.stdout
    assert "Text completes for org/base -- @1.3" in result.stdout


def test_dry_run_shows_no_rows_because_behave_skips_hooks(tmp_path: Path) -> None:
    """behave 1.3.3 runs no hook under --dry-run, so before_all cannot fill the outlines."""
    result = run_behave(write_project(tmp_path), "--dry-run", "-f", "plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 scenarios passed, 0 failed, 0 skipped" in result.stdout
    assert not any(m in result.stdout for m in MODEL_IDS)


def test_name_selects_one_model(tmp_path: Path) -> None:
    result = run_behave(write_project(tmp_path), "-f", "plain", "-n", "org/base")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 scenario passed, 0 failed, 4 skipped" in result.stdout
    assert "Given the model org/base ... passed" in result.stdout


def test_unknown_kind_is_one_line_error(tmp_path: Path) -> None:
    root = write_project(tmp_path, FEATURE.replace("@portfolio.text", "@portfolio.vision"))
    result = run_behave(root, "-f", "plain")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "@portfolio.vision" in line]
    assert lines == ["HOOK-ERROR in before_all: ConfigError: features/x.feature:11: unknown "
                     "portfolio tag @portfolio.vision (known: @portfolio.chat, @portfolio.text)"]
    assert "Traceback" not in output


# -- Unit: on features parsed by behave.parser ------------------------------------------

def test_fill_adds_one_row_per_model_and_names_scenarios(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE)
    assert scenario_names(feature) == []
    assert fill_portfolio_outlines([feature], ROWS) == {"chat": 2, "text": 3}
    assert scenario_names(feature) == [
        "Chat answers (org/a) -- @1.1 ", "Chat answers (org/b) -- @1.2 ",
        "Text completes for org/a -- @1.1 ", "Text completes for org/b -- @1.2 ",
        "Text completes for org/base -- @1.3 "]
    steps = [s.steps[0].name for o in feature.iter_scenario_outlines() for s in o.scenarios]
    assert steps == [f"the model {m}" for m in ROWS["chat"] + ROWS["text"]]


def test_fill_replaces_rows_and_is_repeatable(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE.replace("| model |", "| model |\n      | placeholder |"))
    assert len(scenario_names(feature)) == 2
    fill_portfolio_outlines([feature], ROWS)
    fill_portfolio_outlines([feature], {"chat": ["org/c"], "text": []})
    assert scenario_names(feature) == ["Chat answers (org/c) -- @1.1 "]


def test_rows_share_the_examples_heading_line(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE)
    fill_portfolio_outlines([feature], ROWS)
    outline = next(feature.iter_scenario_outlines())
    assert {s.line for s in outline.scenarios} == {outline.examples[0].table.line}


def _selected(feature: Feature) -> list[str]:
    return [s.name for o in feature.iter_scenario_outlines() for s in o.scenarios if not s.should_skip]


@pytest.mark.parametrize("line, expected", [
    (4, ["Chat answers (org/a) -- @1.1 ", "Chat answers (org/b) -- @1.2 "]),  # the first outline's line
    (11, ["Text completes for org/a -- @1.1 ", "Text completes for org/b -- @1.2 ",
          "Text completes for org/base -- @1.3 "]),  # the second outline's line
    (13, ["Text completes for org/a -- @1.1 ", "Text completes for org/b -- @1.2 ",
          "Text completes for org/base -- @1.3 "]),  # a step line inside it
])
def test_a_file_line_selects_the_rows_of_its_outline(tmp_path: Path, line: int, expected: list[str]) -> None:
    feature = parse(tmp_path, FEATURE)
    fill_portfolio_outlines([feature], ROWS)
    assert len(_selected(feature)) == 5, "every row runs before a location is applied"
    select_locations([feature], [FileLocation(feature.filename, line)])
    assert _selected(feature) == expected


def test_a_file_without_line_keeps_every_row(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE)
    fill_portfolio_outlines([feature], ROWS)
    select_locations([feature], [FileLocation(feature.filename, 4), FileLocation(feature.filename)])
    select_locations([feature], [FileLocation("elsewhere.feature", 4)])
    assert len(_selected(feature)) == 5


def test_portfolio_outlines_finds_kinds_inside_rules_and_skips_untagged(tmp_path: Path) -> None:
    feature = parse(tmp_path, """\
Feature: Rules
  Rule: R
    @portfolio.text
    Scenario Outline: In a rule <model>
      Given the model <model>
      Examples:
        | model |

    Scenario Outline: Untagged <x>
      Given the model <x>
      Examples:
        | x |
        | 1 |
""")
    assert [(o.name, kind) for o, kind in portfolio_outlines([feature])] == \
        [("In a rule <model>", "text")]
    assert fill_portfolio_outlines([feature], ROWS) == {"text": 3}


def test_unknown_kind_changes_nothing(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE.replace("@portfolio.text", "@portfolio.vision"))
    with pytest.raises(ConfigError) as error:
        fill_portfolio_outlines([feature], ROWS)
    assert str(error.value) == (f"{locations(feature)[1]}: unknown portfolio tag "
                                "@portfolio.vision (known: @portfolio.chat, @portfolio.text)")
    assert scenario_names(feature) == []


@pytest.mark.parametrize("examples", [
    "Examples:\n      | name |",
    "Examples:\n      | model | extra |",
    "Examples:\n      | model |\n    Examples:\n      | model |",
])
def test_bad_examples_table_is_one_line_error(tmp_path: Path, examples: str) -> None:
    feature = parse(tmp_path, FEATURE.replace("Examples:\n      | model |", examples, 1))
    with pytest.raises(ConfigError, match=r"p\.feature:4: a portfolio outline needs exactly "
                                          r"one Examples table") as error:
        fill_portfolio_outlines([feature], ROWS)
    assert "\n" not in str(error.value)


def test_two_portfolio_tags_is_one_line_error(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE.replace("@portfolio.chat", "@portfolio.chat @portfolio.text"))
    with pytest.raises(ConfigError, match=r"p\.feature:4: one portfolio tag per outline, "
                                          r"found @portfolio\.chat, @portfolio\.text$"):
        portfolio_outlines([feature])


def test_rows_missing_lists_outlines_without_rows(tmp_path: Path) -> None:
    feature = parse(tmp_path, FEATURE)
    chat, text = locations(feature)
    assert chat.endswith("p.feature:4") and text.endswith("p.feature:11")
    assert rows_missing([feature]) == [f"{chat} @portfolio.chat", f"{text} @portfolio.text"]
    fill_portfolio_outlines([feature], {"chat": ["org/a"], "text": []})
    assert rows_missing([feature]) == [f"{text} @portfolio.text"]
    fill_portfolio_outlines([feature], ROWS)
    assert rows_missing([feature]) == []
