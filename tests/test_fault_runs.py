"""The fault runs read behave's plain output: scenarios at the top of a feature and under a Rule:."""

from faults.runs import parse_plain

PLAIN = """\
Feature: Example
  Scenario: at the top
    Given a step ... passed in 0.010s

  Rule: a rule
    Scenario Outline: under a rule for org/m
      Given a step ... passed in 0.020s
      Then a check ... failed in 0.030s
      Assertion Failed: expected 1, got 2
    Scenario: not run under a rule
      Given a step ... skipped in 0.000s
"""


def test_scenarios_are_found_at_the_top_and_under_rules():
    found = {s.name: s for s in parse_plain(PLAIN)}
    assert sorted(found) == ["at the top", "not run under a rule", "under a rule for org/m"]
    assert found["at the top"].status == "passed"
    assert found["under a rule for org/m"].status == "failed"
    assert found["under a rule for org/m"].message.strip() == "Assertion Failed: expected 1, got 2"
    assert abs(found["under a rule for org/m"].seconds - 0.05) < 1e-9
    assert found["not run under a rule"].status == "skipped"
