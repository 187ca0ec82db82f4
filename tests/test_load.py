"""support/load.py: the workload's plan, the judging of answers, and the checks of a run as a whole,
on made-up exchanges and a stand-in sender (no server)."""

from __future__ import annotations

import threading
import time

import pytest

from support import load
from support.load import Bounds, Job, LoadRun, Outcome
from support.openai_http import CHAT, COMPLETIONS, Client, Exchange

M = "org/model"
GOLDENS = [("Say hello.", "Hello there, friend."), ("Name a color.", "Red is a color.")]


def chat_ok(text: str, seconds: float = 0.1) -> Exchange:
    doc = {"id": "c1", "object": "chat.completion", "created": 1, "model": M,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    return Exchange("POST", "http://h" + CHAT, request_json={"messages": []}, status=200, json=doc, seconds=seconds,
                    headers={"content-type": "application/json"}, started_at=0.0)


def outcome(number: int, seconds: float, problem: str | None = None, kind: str = "chat", prompt: str = "p") -> Outcome:
    job = Job(kind, CHAT, {"messages": [{"role": "user", "content": prompt}]}, "x")
    ex = chat_ok("x", seconds)
    ex.started_at = float(number)
    return Outcome(job, ex, 0, number, problem)


def test_the_plan_has_every_kind_of_request_with_its_expected_text():
    jobs = load.plan(M, GOLDENS, "friend", ("Say hello.", " raw text"), "Say hello.")
    assert [j.kind for j in jobs] == ["chat", "chat streamed", "chat", "chat streamed", "chat with a stop string",
                                      "text completion", "hang-up"]
    stop = jobs[4]
    assert stop.payload["stop"] == "friend" and stop.expected == "Hello there, " and not stop.streamed
    assert jobs[1].streamed and jobs[1].expected == "Hello there, friend."
    assert jobs[5].path == COMPLETIONS and jobs[5].expected == " raw text" and jobs[5].expected_from == "asked alone"
    assert jobs[6].expected is None and jobs[6].streamed
    assert [j.kind for j in load.plan(M, GOLDENS, None, None, None)] == ["chat", "chat streamed"] * 2


def test_an_answer_is_judged_by_the_contract_and_its_text():
    job = Job("chat", CHAT, {}, "Hello there, friend.")
    assert load.judge(job, chat_ok("Hello there, friend.")) is None
    wrong = load.judge(job, chat_ok("Hello there, foe."))
    assert "texts differ at character 14" in wrong and "golden" in wrong
    broken = chat_ok("x")
    broken.status, broken.error = None, "connection failed or dropped (ConnectionError: reset)"
    assert "connection failed" in load.judge(job, broken)
    hang_up = Job("hang-up", CHAT, {"stream": True}, None)
    cut = Exchange("POST", "http://h" + CHAT, status=200, events=[{"choices": []}], streamed=True,
                   error="client closed the connection on purpose after 1 events", closed_by_client=True)
    assert load.judge(hang_up, cut) is None
    refused = Exchange("POST", "http://h" + CHAT, status=500, streamed=True)
    assert "expected HTTP 200 and events before the hang-up, got 500" in load.judge(hang_up, refused)


def test_percentiles():
    assert load.percentile([3.0], 95) == 3.0
    assert load.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert load.percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)


def test_memory_growth_counts_after_warm_up_only():
    outcomes = [outcome(n, 0.1) for n in range(10)]
    for o in outcomes:
        o.exchange.started_at = o.number * 0.5  # the 3 warm-up requests end by 1.1 s
    rss = [(0.0, 100 * load.MiB), (0.5, 200 * load.MiB)] + [(1.0 + t, (200 + 10 * t) * load.MiB) for t in range(8)]
    run = LoadRun(outcomes, rss, 5.0, 3, 3, started_at=0.0)
    assert run.rss_growth() == (260 - 220) * load.MiB  # medians of the last and first 3 samples after 1.1 s
    assert load.steady_problems(run, Bounds(64, 3)) == []
    assert load.steady_problems(run, Bounds(40, 3)) == []
    [problem] = load.steady_problems(run, Bounds(30, 3))
    assert "grow at most 30 MiB after warm-up (3 requests), it grew 40.0 MiB over 7 requests" in problem
    assert LoadRun(outcomes, rss[:1], 5.0, 3, 3).rss_growth() is None


def test_a_server_that_slows_down_request_by_request_is_told_from_a_noisy_one():
    steady = LoadRun([outcome(n, 0.2 + 0.15 * (n % 3 == 0)) for n in range(30)], [], 6.0, 3, 3)
    assert load.steady_problems(steady, Bounds(64, 3)) == []
    slowing = LoadRun([outcome(n, 0.2 + 0.3 * n) for n in range(15)], [], 6.0, 3, 3)
    [problem] = load.steady_problems(slowing, Bounds(64, 3))
    assert "keep its pace, at most 3x slower" in problem and "more per request" in problem
    small = LoadRun([outcome(n, 0.01 + 0.01 * n) for n in range(15)], [], 6.0, 3, 3)
    assert load.steady_problems(small, Bounds(64, 3)) == []  # 10x, but a tenth of a second: machine noise
    assert LoadRun([outcome(n, 1.0) for n in range(4)], [], 1.0, 3, 3).slowdown() is None


def test_failed_requests_are_counted_and_the_first_shown():
    outcomes = [outcome(0, 0.1), outcome(1, 0.1, "chat (golden): texts differ at character 3"),
                outcome(2, 0.1, "connection failed", kind="chat streamed")]
    [problem] = load.answer_problems(LoadRun(outcomes, [], 1.0, 3, 3))
    assert problem.startswith("expected every answer right and 0 errors under load; got 2 of 3 requests wrong "
                              "or failed (chat, chat streamed)")
    assert "request #1 (chat, client 0): chat (golden): texts differ at character 3" in problem
    assert load.answer_problems(LoadRun(outcomes[:1], [], 1.0, 3, 3)) == []
    assert "expected at least 5 requests" in load.answer_problems(LoadRun([], [], 1.0, 3, 3), 5)[0]


def test_the_run_is_bounded_by_count_and_by_time_and_uses_every_client():
    jobs = load.plan(M, GOLDENS, None, None, None)
    seen: set[str] = set()
    lock = threading.Lock()

    def send(client, job, pause=0.01):
        with lock:
            seen.add(threading.current_thread().name)
        time.sleep(pause)
        ex = chat_ok(job.expected)
        ex.started_at = time.monotonic()
        if job.streamed:
            ex.streamed, ex.chunk_texts, ex.events = True, [job.expected], []
        return ex

    client = Client("http://127.0.0.1:9", 1, 1)
    counted = load.run(client, jobs, 3, 12, 30.0, lambda: 1000, send_one=lambda c, j: send(c, j))
    assert len(counted.outcomes) == 12 and counted.stopped_by == "count" and len(seen) == 3
    assert [o.number for o in counted.outcomes] == list(range(12)) and counted.rss
    timed = load.run(client, jobs, 2, 10_000, 0.3, lambda: 1000, send_one=lambda c, j: send(c, j, 0.05))
    assert timed.stopped_by == "time" and 4 <= len(timed.outcomes) < 40 and timed.seconds < 1.0
    figures = counted.summary()
    assert figures["requests"] == 12 and figures["clients"] == 3 and figures["rss_peak_mib"] == pytest.approx(0.0, abs=0.1)
    assert "rss_mib" in counted.series() and "chat streamed" in counted.series()


def test_the_run_stops_when_the_server_is_gone():
    jobs = load.plan(M, GOLDENS, None, None, None)

    def refused(client, job):
        time.sleep(0.01)
        return Exchange("POST", "http://h" + CHAT, error="connection failed or dropped (ConnectionError: refused)")

    run = load.run(Client("http://127.0.0.1:9", 1, 1), jobs, 3, 1000, 30.0, lambda: 0, alive=lambda: False,
                   send_one=refused)
    assert run.stopped_by == "server gone" and len(run.outcomes) <= 3 and run.seconds < 1.0
    assert "connection failed" in load.answer_problems(run)[0]


def test_a_slowdown_is_seen_when_a_loaded_machine_fits_few_requests_of_each_kind():
    """The series of a CI run on a loaded machine (slower-per-request fault: +0.5 s a request after
    the 6th): 13 requests in 8 s, most kinds and prompts answered once or twice."""
    series = [(0, "chat", "a", 0.120), (1, "chat streamed", "a", 0.113), (2, "chat", "b", 0.085),
              (3, "chat streamed", "b", 0.101), (4, "chat", "a", 0.567), (5, "chat streamed", "a", 0.087),
              (6, "chat with a stop string", "a", 1.587), (7, "text completion", "c", 1.079),
              (8, "hang-up", "a", 2.063), (9, "chat", "b", 2.564), (10, "chat streamed", "b", 3.139),
              (11, "chat", "a", 3.598), (12, "chat streamed", "a", 4.045)]
    run = LoadRun([outcome(n, s, kind=k, prompt=p) for n, k, p, s in series], [], 8.0, 3, 3)
    [problem] = load.steady_problems(run, Bounds(64, 3))
    assert "keep its pace, at most 3x slower" in problem
    steady = LoadRun([outcome(n, s if n < 6 else 0.1, kind=k, prompt=p) for n, k, p, s in series], [], 8.0, 3, 3)
    assert load.steady_problems(steady, Bounds(64, 3)) == []
