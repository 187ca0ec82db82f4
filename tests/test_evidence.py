"""What the suite counts as time spent in the SUT: overlapping requests count once."""

from __future__ import annotations

import pytest

from support.cli_runner import CliResult
from support.evidence import seconds_by_kind
from support.openai_http import Exchange


def _request(start: float | None, seconds: float) -> Exchange:
    return Exchange("POST", "http://x/v1/chat/completions", seconds=seconds, started_at=start)


def _cli(start: float, seconds: float, kind: str = "cli") -> CliResult:
    return CliResult(("mlxk", "run"), 0, "", "", seconds, 60.0, kind, start)


def test_requests_in_flight_together_count_once():
    four_at_once = [_request(10.0, 2.0), _request(10.1, 2.0), _request(10.2, 1.0), _request(10.3, 2.5)]
    assert seconds_by_kind(four_at_once)["request"] == pytest.approx(2.8)  # 10.0 .. 12.8


def test_one_after_another_add_up_and_kinds_stay_apart():
    items = [_request(0.0, 1.0), _request(5.0, 0.5), _cli(1.0, 3.0), _cli(2.0, 4.0, "reference")]
    assert seconds_by_kind(items) == pytest.approx({"request": 1.5, "cli": 3.0, "reference": 4.0})


def test_an_item_without_a_start_counts_in_full():
    assert seconds_by_kind([_request(None, 2.0), _request(None, 2.0), _request(0.0, 1.0)])["request"] == 5.0
