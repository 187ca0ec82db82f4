"""The SUT's speed per model, from what the scenarios recorded anyway (``reports/metrics.json``).

Figures per model, each with its unit, the number of samples and their median, min and max:

* ``server_startup``: ``mlxk serve`` started until ``GET /health`` answered 200 (every start).
* ``ttft``: a streamed answer's time to first token: request sent until the first chunk with
  non-empty content arrived.
* ``tokens_per_s``: decode rate of a streamed answer after its first token: the tokens after
  the first divided by the time after the first. Tokens are ``usage.completion_tokens`` when
  the stream reports usage, else the chunks with content (one token per chunk).
* ``batch_latency``: a chat or text completion asked in one piece, request to whole answer.
* ``cli_wall``: wall time of a ``mlxk run MODEL ...`` call that exited 0 (model load included).
* ``embed_server_startup``: ``mlxk embed-serve MODEL`` started until ``GET /health`` answered 200.
* ``embed_inputs_per_s``: embedding throughput: the inputs of a ``POST /v1/embeddings`` answered 200,
  divided by its request time (the model is loaded already).
* ``speech_rtf``: real-time factor of a speech model: the seconds of audio of a WAV uploaded to
  ``POST /v1/audio/transcriptions`` or ``/translations`` and answered 200, divided by its request
  time (above 1: faster than real time).

* ``load``: the @load scenario's run (features/load.feature, support/load.py): clients, requests,
  errors, requests per second, latency p50/p95 of the requests answered right, the server's RSS
  peak and its growth after warm-up (MiB); null for a model without a load run.

Only exchanges that succeeded count: an HTTP error, a broken or cut stream, a timed-out or
failed command says nothing about speed. Nothing here measures on its own: the hooks feed it
the scenario's evidence (``Exchange`` and ``CliResult`` objects) and the server pool's starts.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

from .cli_runner import CliResult
from .config import Thresholds
from .expect import that
from .openai_http import CHAT, COMPLETIONS, EMBEDDINGS, TRANSCRIPTIONS, TRANSLATIONS, Exchange

UNITS = {"server_startup": "s", "ttft": "s", "tokens_per_s": "tokens/s", "batch_latency": "s",
         "cli_wall": "s", "embed_server_startup": "s", "embed_inputs_per_s": "inputs/s",
         "speech_rtf": "audio s/s"}
MEANING = {
    "server_startup": "mlxk serve started until GET /health answered 200",
    "ttft": "streamed answer: request sent until the first chunk with content",
    "tokens_per_s": "streamed answer: tokens after the first / seconds after the first",
    "batch_latency": "chat or text completion in one piece: request to whole answer",
    "cli_wall": "mlxk run MODEL ... (exit 0): wall time, model load included",
    "embed_server_startup": "mlxk embed-serve MODEL started until GET /health answered 200",
    "embed_inputs_per_s": "POST /v1/embeddings answered 200: inputs / request seconds",
    "speech_rtf": "POST /v1/audio/transcriptions or /translations answered 200: audio seconds / request seconds",
}
LOAD_MEANING = ("@load: a mixed workload from several clients at once: requests, errors, requests_per_s, latency "
                "p50/p95 (s) of the requests answered right, the server's RSS peak and growth after warm-up (MiB)")
_COMPLETION_PATHS = (CHAT, COMPLETIONS)


# --- one exchange ------------------------------------------------------------------------

def _completion_tokens(ex: Exchange) -> int | None:
    """``usage.completion_tokens`` of the last event that reports usage, if any."""
    for event in reversed(ex.events):
        usage = event.get("usage") if isinstance(event, dict) else None
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            return tokens
    return None


def stream_figures(ex: Exchange) -> dict | None:
    """Time to first token and decode rate of one complete streamed answer; None if it is not one.

    ``tokens_per_s`` is None when the answer has fewer than two tokens (no rate after the first).
    """
    if not (ex.streamed and ex.status == 200 and ex.error is None and ex.ttft_seconds is not None):
        return None
    tokens, source = _completion_tokens(ex), "usage.completion_tokens"
    if tokens is None:
        tokens, source = sum(1 for text in ex.chunk_texts if text), "content chunks"
    after_first = ex.seconds - ex.ttft_seconds
    rate = (tokens - 1) / after_first if tokens >= 2 and after_first > 0 else None
    return {"ttft_s": round(ex.ttft_seconds, 4), "stream_s": round(ex.seconds, 4), "tokens": tokens,
            "tokens_from": source, "tokens_per_s": None if rate is None else round(rate, 2)}


def check_stream_pace(pairs: Iterable[tuple[Exchange, Exchange]], factor: float, slack_s: float) -> None:
    """Streaming the (batch, stream) pairs' answers took at most ``factor`` times as long as asking
    for them in one piece, plus ``slack_s`` (the timer noise of short answers). The bug class:
    streaming many times slower than batch (mlx-knife #73), e.g. a flush or sleep per token."""
    pairs = list(pairs)
    batch, stream = sum(b.seconds for b, _ in pairs), sum(s.seconds for _, s in pairs)
    allowed = factor * batch + slack_s
    lines = [f"  batch {b.seconds:.3f} s, stream {s.seconds:.3f} s"
             + (f" (first content after {s.ttft_seconds:.3f} s)" if s.ttft_seconds is not None else "")
             + f": {s.url} {json.dumps(s.request_json)[:160]}" for b, s in pairs]
    that(stream <= allowed,
         f"streaming the {len(pairs)} answer(s) took {stream:.2f} s, {stream / batch if batch else float('inf'):.1f}x "
         f"the {batch:.2f} s of asking for them in one piece (allowed: {factor:g}x + {slack_s:g} s = {allowed:.2f} s)",
         "each answer:\n" + "\n".join(lines))


def _is_completion(ex: Exchange) -> bool:
    return ex.method == "POST" and ex.url.rstrip("/").endswith(_COMPLETION_PATHS)


def embedding_inputs(ex: Exchange) -> int | None:
    """How many texts a successful ``POST /v1/embeddings`` embedded (None for anything else)."""
    if not (ex.method == "POST" and ex.url.rstrip("/").endswith(EMBEDDINGS) and ex.status == 200
            and ex.error is None and isinstance(ex.request_json, dict)):
        return None
    given = ex.request_json.get("input")
    return 1 if isinstance(given, str) else len(given) if isinstance(given, list) else None


def real_time_factor(ex: Exchange) -> float | None:
    """Seconds of audio per second of a successful speech upload (None for anything else: the
    upload's evidence must say its audio's length, `file.audio_seconds`)."""
    if not (ex.method == "POST" and ex.url.rstrip("/").endswith((TRANSCRIPTIONS, TRANSLATIONS))
            and ex.status == 200 and ex.error is None and ex.seconds > 0 and isinstance(ex.request_json, dict)):
        return None
    upload = ex.request_json.get("file")
    seconds = upload.get("audio_seconds") if isinstance(upload, dict) else None
    return seconds / ex.seconds if isinstance(seconds, (int, float)) and seconds > 0 else None


def _exchange_model(ex: Exchange) -> str | None:
    model = ex.request_json.get("model") if isinstance(ex.request_json, dict) else None
    return model if isinstance(model, str) else None


def _cli_model(result: CliResult, models: set[str] | None) -> str | None:
    """MODEL of ``... run MODEL ...``: the first ``run`` followed by a known model (any, without a list)."""
    argv = result.argv
    for i, word in enumerate(argv[:-1]):
        if word == "run" and (models is None or argv[i + 1] in models):
            return argv[i + 1]
    return None


# --- a run -------------------------------------------------------------------------------

def summary(values: list[float], unit: str, digits: int = 4) -> dict:
    """n, median, min, max of the samples, with the unit; median None without samples."""
    if not values:
        return {"unit": unit, "n": 0, "median": None, "min": None, "max": None}
    return {"unit": unit, "n": len(values), "median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits)}


class Collector:
    """Samples per model and figure, fed scenario by scenario; ``report()`` makes metrics.json."""

    def __init__(self, models: Iterable[str] | None = None) -> None:
        self.models = set(models) if models is not None else None
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.loads: dict[str, dict] = {}  # model -> support.load.LoadRun.summary() of its @load run

    def add_load(self, model: str, figures: dict) -> None:
        """The figures of a model's load run (the last one counts)."""
        self.loads[model] = dict(figures)

    def _add(self, model: str | None, figure: str, value: float | None) -> None:
        if model is not None and value is not None and math.isfinite(value):
            self.samples[model][figure].append(float(value))

    def add_evidence(self, items: Iterable[object]) -> None:
        """A scenario's recorded exchanges and CLI calls (anything else is ignored)."""
        for item in items:
            if isinstance(item, Exchange) and embedding_inputs(item):
                # the model that answered: embed-serve names its own (it ignores the request's)
                answered = item.json.get("model") if isinstance(item.json, dict) else None
                self._add(answered if isinstance(answered, str) else _exchange_model(item), "embed_inputs_per_s",
                          embedding_inputs(item) / item.seconds if item.seconds > 0 else None)
            elif isinstance(item, Exchange) and real_time_factor(item) is not None:
                self._add(_exchange_model(item), "speech_rtf", real_time_factor(item))
            elif isinstance(item, Exchange) and _is_completion(item):
                model = _exchange_model(item)
                if item.streamed:
                    figures = stream_figures(item)
                    if figures is not None:
                        self._add(model, "ttft", figures["ttft_s"])
                        self._add(model, "tokens_per_s", figures["tokens_per_s"])
                elif item.status == 200 and item.error is None:
                    self._add(model, "batch_latency", item.seconds)
            elif isinstance(item, CliResult) and item.returncode == 0:
                self._add(_cli_model(item, self.models), "cli_wall", item.seconds)

    def add_server_starts(self, events: Iterable[tuple[str, str, float]]) -> None:
        """The server pool's events: every ``("start", label, seconds)`` is one startup; a label
        ``MODEL (embed-serve)`` is an embeddings backend, other kinds of server are not counted."""
        for kind, label, seconds in events:
            model, _, server = label.partition(" (")
            if kind == "start" and not server:
                self._add(model, "server_startup", seconds)
            elif kind == "start" and server == "embed-serve)":
                self._add(model, "embed_server_startup", seconds)

    def record(self, model: str) -> dict:
        """One model's figures: name -> summary (with unit)."""
        got = self.samples.get(model, {})
        return {**{name: summary(got.get(name, []), unit, 2 if unit.endswith("/s") else 4)
                   for name, unit in UNITS.items()}, "load": self.loads.get(model)}

    def report(self, models: Iterable[str], machine: Mapping, *, sut_version: str = "",
               portfolio: str = "", gated: Mapping[str, str] | None = None, target: str = "mlxk",
               meanings: Mapping[str, str] | None = None) -> dict:
        """The metrics.json document: the machine, the units, and one record per model.

        ``models`` come first in their order; a model with samples but not listed follows.
        ``meanings`` replace MEANING's for a target that measures differently (its server startup).
        """
        ordered = list(dict.fromkeys([*models, *sorted(self.samples), *sorted(self.loads)]))
        gated = gated or {}
        return {
            "target": target,
            "sut_version": sut_version,
            "portfolio": portfolio,
            "machine": dict(machine),
            "units": dict(UNITS),
            "meaning": {**MEANING, **(meanings or {})},
            "load_meaning": LOAD_MEANING,
            "models": [{"model": m, "gated": gated.get(m), **self.record(m)} for m in ordered],
        }


# --- thresholds (-D max_ttft_s, -D min_tokens_per_s: support/config.py) ----------------------

def threshold_problems(figures: Mapping, limits: Thresholds) -> list[str]:
    """Each threshold the measured figures miss, as one line (empty: all met, or none given)."""
    problems = []
    ttft, rate = figures.get("ttft_s"), figures.get("tokens_per_s")
    if limits.max_ttft_s is not None and (ttft is None or ttft > limits.max_ttft_s):
        problems.append(f"time to first token {ttft} s is over -D max_ttft_s={limits.max_ttft_s:g}")
    if limits.min_tokens_per_s is not None and (rate is None or rate < limits.min_tokens_per_s):
        problems.append(f"decode rate {rate} tokens/s is under -D min_tokens_per_s={limits.min_tokens_per_s:g}")
    return problems


# --- the machine -------------------------------------------------------------------------

def cpu_name() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, macOS sysctl), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    """What the figures were measured on."""
    return {
        "cpu": cpu_name(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(),
        "arch": platform.machine(),
        "python": platform.python_version(),
    }


def format_table(report: Mapping) -> list[str]:
    """The report as a few console lines: one per model with measurements."""
    lines = []
    for rec in report["models"]:
        cells = []
        for name, label in (("server_startup", "startup"), ("ttft", "ttft"), ("tokens_per_s", "tok/s"),
                            ("batch_latency", "batch"), ("cli_wall", "cli"),
                            ("embed_server_startup", "embed startup"), ("embed_inputs_per_s", "inputs/s"),
                            ("speech_rtf", "real-time factor")):
            s = rec[name]
            if s["median"] is not None:
                cells.append(f"{label} {s['median']:g}{'' if s['unit'].endswith('/s') else ' s'}")
        load = rec.get("load")
        if load:
            cells.append(f"load {load['requests']} req {load['requests_per_s']}/s p50 {load['latency_p50_s']} s "
                         f"p95 {load['latency_p95_s']} s, RSS peak {load['rss_peak_mib']} MiB "
                         f"growth {load['rss_growth_mib']} MiB")
        if cells:
            lines.append(f"{rec['model']}: " + ", ".join(cells))
    return lines
