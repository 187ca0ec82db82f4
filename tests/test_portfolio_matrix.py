"""The portfolio matrix: models x areas from scenario tags and outcomes (support/portfolio_matrix.py)."""

from __future__ import annotations

import pytest
from behave.model_core import Status

from support.portfolio_matrix import NO_MODEL, Matrix, areas_of, outcome_status

A, B, G = "demo/a", "demo/b", "demo/gated"


@pytest.mark.parametrize("status, expected", [
    (Status.passed, "passed"), (Status.failed, "failed"), (Status.error, "failed"),
    (Status.hook_error, "failed"), (Status.undefined, "failed"), (Status.skipped, "skipped"),
    (Status.untested, "skipped"), ("passed", "passed"), ("failed", "failed"),
])
def test_outcome_status(status, expected):
    assert outcome_status(status) == expected


def test_areas_come_from_tags_and_a_scenario_counts_in_each():
    assert areas_of(["live_e2e", "server", "streaming", "portfolio.chat"]) == {"server", "streaming"}
    assert areas_of(["@cli"]) == {"cli"}
    assert areas_of(["parity", "streaming"]) == {"parity", "streaming"}
    assert areas_of(["live_e2e"]) == frozenset()


@pytest.fixture
def matrix() -> Matrix:
    m = Matrix()
    m.add(A, ["server"], Status.passed)
    m.add(A, ["server", "streaming"], Status.passed)
    m.add(A, ["cli"], Status.failed, "KI-001")
    m.add(A, ["cli"], Status.passed)
    m.add(A, ["parity", "streaming"], Status.failed)  # not registered
    m.add(B, ["server"], Status.failed, "KI-003")
    m.add(B, ["server", "streaming"], Status.failed, "KI-006")
    m.add(B, ["cli"], Status.skipped)
    m.add(G, ["server"], Status.skipped)
    m.add(G, ["cli"], Status.skipped)
    m.add(None, ["cli"], Status.passed)
    return m


def test_cells(matrix):
    assert matrix.cell(A, "server") == "pass (2)"
    assert matrix.cell(A, "streaming") == "FAIL 1/2"  # an unregistered failure wins over a pass
    assert matrix.cell(A, "cli") == "known KI-001 (1/2)"
    assert matrix.cell(A, "parity") == "FAIL 1/1"
    assert matrix.cell(B, "server") == "known KI-003,KI-006 (2/2)"
    assert matrix.cell(B, "cli") == "skipped"
    assert matrix.cell(B, "parity") == "-"
    assert matrix.cell(None, "cli") == "pass (1)"


def test_an_issue_on_a_passing_scenario_is_ignored():
    m = Matrix()
    m.add(A, ["server"], Status.passed, "KI-001")
    assert m.cell(A, "server") == "pass (1)"


def test_render_is_a_markdown_table_with_exclusions_and_gated_models(matrix):
    text = matrix.render([A, B, G], excluded=[("demo/broken", "unhealthy: No model weights found")],
                         gated={G: "needs 7.2 GB, budget 6.0 GB"}, title="Portfolio matrix: test")
    lines = text.splitlines()
    assert lines[0] == "# Portfolio matrix: test"
    header = lines[2]
    assert [c.strip() for c in header.strip("|").split("|")] == ["model", "server", "streaming", "parity", "CLI"]
    assert set(lines[3]) <= {"|", "-"}
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")[1:]] for r in lines[4:8]}
    assert rows[A] == ["pass (2)", "FAIL 1/2", "FAIL 1/1", "known KI-001 (1/2)"]
    assert rows[B] == ["known KI-003,KI-006 (2/2)", "known KI-006 (1/1)", "-", "skipped"]
    assert rows[f"{G} (gated)"] == ["skipped", "-", "-", "skipped"]
    assert rows[NO_MODEL] == ["-", "-", "-", "pass (1)"]
    assert len({len(line) for line in lines[2:8]}) == 1  # aligned columns
    assert "## Excluded by discovery (1)\n- demo/broken: unhealthy: No model weights found" in text
    assert f"## Gated by the RAM budget (1)\n- {G}: needs 7.2 GB, budget 6.0 GB" in text


def test_rows_keep_the_portfolio_order_and_add_models_seen_elsewhere():
    m = Matrix()
    m.add("demo/z", ["server"], Status.passed)
    m.add(None, ["cli"], Status.passed)
    assert m.rows([B, A]) == [B, A, "demo/z", None]


def test_only_areas_with_scenarios_are_columns():
    m = Matrix()
    m.add(A, ["performance"], Status.passed)
    assert m.areas() == [("performance", "speed")]
    assert Matrix().render([]).count("- none") == 2


def test_counts(matrix):
    assert matrix.counts() == {"passed": 4, "failed": 1, "known": 3, "skipped": 3}
