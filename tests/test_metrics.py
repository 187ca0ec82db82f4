"""SUT speed per model from recorded exchanges, CLI calls and server starts (support/metrics.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import metrics
from support.cli_runner import CliResult
from support.config import Thresholds
from support.openai_http import Exchange
from support.paths import ROOT

CHAT = "http://127.0.0.1:9/v1/chat/completions"
A, B = "org/model-a", "org/model-b"


def stream(model=A, chunks=("", "The", " capital", " is", " Rome."), ttft=0.2, seconds=1.2, status=200,
           error=None, usage=None) -> Exchange:
    events: list = [{"choices": [{"delta": {"content": c}}]} for c in chunks]
    if usage is not None:
        events.append({"choices": [], "usage": {"completion_tokens": usage}})
    events.append("[DONE]")
    return Exchange("POST", CHAT, request_json={"model": model, "stream": True}, status=status, events=events,
                    chunk_texts=list(chunks), ttft_seconds=ttft, seconds=seconds, error=error, streamed=True)


def batch(model=A, seconds=0.5, status=200, url=CHAT, error=None) -> Exchange:
    return Exchange("POST", url, request_json={"model": model}, status=status, seconds=seconds, error=error)


def cli(*args, code=0, seconds=2.0) -> CliResult:
    return CliResult(("/venv/bin/mlxk", *args), code, "out", "", seconds, 60)


def test_stream_figures_count_content_chunks_after_the_first_token():
    figures = metrics.stream_figures(stream())
    assert figures == {"ttft_s": 0.2, "stream_s": 1.2, "tokens": 4, "tokens_from": "content chunks",
                       "tokens_per_s": 3.0}  # 3 tokens after the first, in 1.0 s


def test_stream_figures_prefer_reported_usage():
    figures = metrics.stream_figures(stream(usage=9))
    assert figures["tokens"] == 9 and figures["tokens_from"] == "usage.completion_tokens"
    assert figures["tokens_per_s"] == 8.0


@pytest.mark.parametrize("ex", [
    stream(status=500), stream(error="stream broke off"), stream(ttft=None),
    batch(),  # not a stream
])
def test_no_figures_from_a_failed_cut_or_empty_stream(ex):
    assert metrics.stream_figures(ex) is None


def test_one_token_gives_a_first_token_time_but_no_rate():
    figures = metrics.stream_figures(stream(chunks=("", "Hi")))
    assert figures["ttft_s"] == 0.2 and figures["tokens_per_s"] is None


def test_collector_sorts_samples_by_model_and_figure():
    c = metrics.Collector([A, B])
    c.add_evidence([
        stream(A), stream(A, ttft=0.4, seconds=1.4), batch(A, 0.5), batch(A, 0.7), batch(B, 0.1),
        batch(A, 9.0, status=400), batch(A, 9.0, error="no answer within 60 s"),  # no latency of failures
        Exchange("GET", "http://127.0.0.1:9/health", status=200, seconds=5.0),  # not a completion
        cli("run", A, "Say hi.", "--temperature", "0", seconds=3.0),
        cli("run", B, "x", code=1, seconds=9.0), cli("run", B, "x", code=None, seconds=20.0),  # failed, killed
        cli("list", "--json", seconds=1.0),  # not a run
        "something else",
    ])
    c.add_server_starts([("start", A, 1.5), ("evict", A, 0.2), ("start", A, 2.5), ("stop", B, 0.1)])
    a, b = c.record(A), c.record(B)
    assert a["ttft"] == {"unit": "s", "n": 2, "median": 0.3, "min": 0.2, "max": 0.4}
    assert a["tokens_per_s"]["n"] == 2 and a["tokens_per_s"]["max"] == 3.0
    assert a["batch_latency"]["n"] == 2 and a["batch_latency"]["median"] == pytest.approx(0.6)
    assert a["cli_wall"] == {"unit": "s", "n": 1, "median": 3.0, "min": 3.0, "max": 3.0}
    assert a["server_startup"]["n"] == 2 and a["server_startup"]["median"] == 2.0
    assert b["batch_latency"]["n"] == 1 and b["cli_wall"]["n"] == 0 and b["server_startup"]["median"] is None


def test_cli_model_is_the_word_after_run_that_names_a_portfolio_model():
    c = metrics.Collector([A])
    c.add_evidence([cli("run", "run", A, "prompt"), cli("run", "org/unknown", "prompt")])
    assert c.record(A)["cli_wall"]["n"] == 1
    assert "org/unknown" not in c.samples


def test_report_has_the_machine_the_units_and_one_record_per_model():
    c = metrics.Collector()
    c.add_evidence([batch("org/extra", 0.2)])
    report = c.report([A, B], {"cpu": "X", "cores_physical": 2}, sut_version="2.0.8", portfolio="/cache",
                      gated={B: "needs 7.2 GB, budget 6.0 GB"})
    json.dumps(report)  # serialisable
    assert [r["model"] for r in report["models"]] == [A, B, "org/extra"]
    assert report["models"][1]["gated"] == "needs 7.2 GB, budget 6.0 GB"
    assert report["units"] == metrics.UNITS and set(report["meaning"]) == set(metrics.UNITS)
    assert report["machine"]["cpu"] == "X" and report["sut_version"] == "2.0.8"
    for rec in report["models"]:
        assert all(rec[name]["unit"] == unit for name, unit in metrics.UNITS.items())


def test_machine_info_names_cpu_cores_ram_and_os():
    info = metrics.machine_info()
    assert info["cpu"] and info["cores_logical"] >= 1 and info["ram_gb"] > 0 and info["os"]


def test_format_table_shows_medians_of_measured_models_only():
    c = metrics.Collector([A, B])
    c.add_evidence([stream(A), batch(A, 0.5)])
    lines = metrics.format_table(c.report([A, B], {}))
    assert lines == [f"{A}: ttft 0.2 s, tok/s 3, batch 0.5 s"]


def test_threshold_problems():
    figures = {"ttft_s": 0.5, "tokens_per_s": 30.0}
    assert metrics.threshold_problems(figures, Thresholds()) == []
    assert metrics.threshold_problems(figures, Thresholds(1.0, 20.0)) == []
    problems = metrics.threshold_problems(figures, Thresholds(0.25, 40.0))
    assert problems == ["time to first token 0.5 s is over -D max_ttft_s=0.25",
                        "decode rate 30.0 tokens/s is under -D min_tokens_per_s=40"]
    assert metrics.threshold_problems({"ttft_s": 0.1, "tokens_per_s": None}, Thresholds(None, 1.0))


def test_a_bad_threshold_ends_the_live_run_before_it_starts():
    run = subprocess.run([str(Path(sys.executable).parent / "behave"), "--tags=@live_e2e", "-D", "max_ttft_s=soon"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("ConfigError:")]
    assert run.returncode != 0
    assert errors == ["ConfigError: -D max_ttft_s=soon: expected a number of seconds > 0"]
    assert "mlx-e2e: SUT" not in run.stderr  # nothing was discovered, no model loaded


def _timed(seconds: float, streamed: bool) -> Exchange:
    return Exchange("POST", "http://x/v1/chat/completions", request_json={"model": "m", "stream": streamed},
                    seconds=seconds, streamed=streamed)


def test_stream_pace_allows_a_factor_and_a_slack():
    pairs = [(_timed(1.0, False), _timed(2.9, True)), (_timed(1.0, False), _timed(4.0, True))]
    metrics.check_stream_pace(pairs, factor=3, slack_s=1)  # 6.9 s <= 3 x 2 s + 1 s


def test_a_stream_many_times_slower_than_batch_fails_with_the_figures():
    pairs = [(_timed(0.02, False), _timed(5.0, True)), (_timed(0.03, False), _timed(5.1, True))]
    with pytest.raises(AssertionError) as info:
        metrics.check_stream_pace(pairs, factor=3, slack_s=1)
    first = str(info.value).splitlines()[0]
    assert first == ("streaming the 2 answer(s) took 10.10 s, 202.0x the 0.05 s of asking for them in one "
                     "piece (allowed: 3x + 1 s = 1.15 s)")
    assert "batch 0.020 s, stream 5.000 s" in str(info.value)


def test_embedding_throughput_and_backend_startup():
    """Inputs per second of each /v1/embeddings answered 200, under the model that answered; an
    embed-serve start is its own figure, a proxy start is none."""
    url = "http://127.0.0.1:9/v1/embeddings"
    answered = {"object": "list", "model": B, "data": []}
    items = [Exchange("POST", url, request_json={"model": "x", "input": ["a", "b", "c", "d"]}, status=200,
                      json=answered, seconds=0.5),
             Exchange("POST", url, request_json={"model": B, "input": "a"}, status=200, json=answered, seconds=0.1),
             Exchange("POST", url, request_json={"model": B, "input": ["a"]}, status=400, seconds=0.01),
             Exchange("POST", url, request_json={"model": B, "input": ["a"]}, error="timed out", seconds=9)]
    c = metrics.Collector()
    c.add_evidence(items)
    c.add_server_starts([("start", f"{B} (embed-serve)", 6.0), ("start", f"{A} (serve --embed-backend http://h:1)", 7.0),
                         ("start", A, 5.0), ("evict", f"{B} (embed-serve)", 1.0)])
    assert c.samples[B]["embed_inputs_per_s"] == [8.0, 10.0] and "x" not in c.samples
    assert c.samples[B]["embed_server_startup"] == [6.0] and c.samples[A] == {"server_startup": [5.0]}
    record = c.record(B)
    assert record["embed_inputs_per_s"]["unit"] == "inputs/s" and record["embed_inputs_per_s"]["median"] == 9.0
    assert metrics.format_table(c.report([B], {}))[0] == f"{B}: embed startup 6 s, inputs/s 9"
