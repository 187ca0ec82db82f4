"""The registry against recorded runs of earlier releases: the verdicts of the version matrix
(tests/data/releases/<release>/verdict.json, trimmed from reports/releases/ of
`python -m support.gate matrix ... -- -D include=mlx-e2e-demo/phi3-style,mlx-e2e-demo/gemma-style,
mlx-e2e-demo/base-style features/server features/cli.feature`). Booked against the registry as it is
now, every recorded failure is a registered issue of its release, every entry fails exactly inside
its `sut` range, and a comparison of two releases shows only their genuine differences."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from support import compare, history, known_issues
from support.paths import REGISTRY

RECORDED = Path(__file__).parent / "data" / "releases"


@pytest.fixture(scope="module")
def registry() -> known_issues.Registry:
    return known_issues.load(REGISTRY)


@pytest.fixture(scope="module")
def runs(registry) -> dict[str, compare.Run]:
    folders = sorted((p for p in RECORDED.iterdir() if (p / "verdict.json").is_file()), key=lambda p: Version(p.name))
    return {p.name: history.rebook(compare.load_run(p.name, p), registry) for p in folders}


def test_the_recorded_releases_are_there(runs):
    assert {"2.0.0", "2.0.7", "2.0.8"} <= set(runs), sorted(runs)
    assert all(run.error is None and len(run.outcomes) > 40 for run in runs.values())


def test_every_recorded_failure_is_a_registered_issue_of_its_release(runs):
    unexplained = [f"{name}: {o.scenario}: {' '.join(o.message.split())[:200]}"
                   for name, run in runs.items() for o in run.outcomes.values() if o.failed and o.issue is None]
    assert unexplained == [], "failures no registered issue explains (register them with their range):\n" \
        + "\n".join(unexplained)


def test_every_entry_fails_exactly_inside_its_range(registry, runs):
    findings = [str(f) for f in history.check(registry, list(runs.values()))]
    assert findings == [], "\n".join(findings)


def test_2_0_8_against_2_0_7_shows_the_fixes_and_the_changed_stop_string_defect(runs):
    result = compare.compare(runs["2.0.7"], runs["2.0.8"])
    assert not result.regressed and result.new_failures == []
    assert {c.base.issue for c in result.fixes} == {"KI-501"}  # finish reason 'length' at max_tokens
    assert len(result.fixes) == 4, [c.scenario for c in result.fixes]
    assert {(c.base.issue, c.candidate.issue) for c in result.changed_failures} == {("KI-502", "KI-004")}
    assert all(c.base.issue == c.candidate.issue for c in result.unchanged_failures)
