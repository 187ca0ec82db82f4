"""Endurance under load: a bounded mixed workload from several clients at once, every answer judged,
the server's resident memory sampled, and the figures (latency p50/p95, throughput, RSS) summed up.

The workload (``plan``) cycles through the model's requests: chat in one piece and streamed, chat
with a stop string, a text completion (/v1/completions), and a streamed chat whose client hangs up
after two events. ``run`` sends them from ``clients`` threads until ``max_requests`` were sent or
``max_seconds`` passed (whichever first); each request is bounded by the client's own timeouts, so
the run ends by ``max_seconds`` + one request timeout at the latest. It talks only to the one
local server it is given.

Judging is the API contract (support/api_checks.py) plus the text each request must give: the
golden answer on the demo portfolio, or what the same server answered to the same request asked
alone before the load (``Job.expected``). The checks of the run as a whole (errors, memory growth,
slowdown) are in ``problems``; each says expected / got / where to look.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable

from scipy import stats

from . import api_checks, expect
from .openai_http import CHAT, COMPLETIONS, Client, Exchange, batch_content, chat_payload, completion_payload, \
    disconnect_mid_stream, joined_content

HANG_UP_AFTER = 2  # events a hanging-up client reads before it closes the socket
COMPLETION_TOKENS = 16  # a raw-prompt completion of a chat model is capped (it may run on)
JUDGED_LINES = 3  # lines of a wrong answer's check message kept per request (what, expected, got)
SAMPLE_EVERY = 0.25  # seconds between RSS samples
# A slowdown counts when the fitted latency grows by the factor (Settings.load_slowdown_factor) AND by at
# least this many seconds per request: a busy machine shifts short demo answers by a fraction of a second.
SLOWDOWN_MIN_S = 1.0
MiB = 1024 * 1024


@dataclass(frozen=True)
class Job:
    """One request of the workload and the text it must give (None: a hang-up, no text judged)."""

    kind: str  # "chat", "chat streamed", "chat with a stop string", "text completion", "hang-up"
    path: str
    payload: dict
    expected: str | None
    expected_from: str = "golden"  # where `expected` comes from: "golden" or "asked alone"

    @property
    def streamed(self) -> bool:
        return bool(self.payload.get("stream"))

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, str(self.payload.get("messages") or self.payload.get("prompt"))


def stopped_text(answer: str, stop: str) -> str:
    """The answer cut right before the earliest occurrence of the stop string."""
    at = answer.find(stop)
    return answer if at < 0 else answer[:at]


def plan(model: str, goldens: list[tuple[str, str]], stop: str | None, completion: tuple[str, str] | None,
         hang_up_prompt: str | None) -> list[Job]:
    """The workload's cycle of requests.

    ``goldens``: (prompt, expected chat answer) pairs; ``stop``: a word of the first golden answer
    to stop at (batch: streams ignore stop strings, KI-004); ``completion``: (raw prompt, the text
    the server gave it alone); ``hang_up_prompt``: the prompt of the stream a client leaves.
    """
    jobs: list[Job] = []
    for prompt, answer in goldens:
        jobs.append(Job("chat", CHAT, chat_payload(model, prompt), answer))
        jobs.append(Job("chat streamed", CHAT, {**chat_payload(model, prompt), "stream": True}, answer))
    if stop is not None and goldens:
        prompt, answer = goldens[0]
        jobs.append(Job("chat with a stop string", CHAT, chat_payload(model, prompt, stop=stop),
                        stopped_text(answer, stop)))
    if completion is not None:
        prompt, text = completion
        jobs.append(Job("text completion", COMPLETIONS, completion_payload(model, prompt, max_tokens=COMPLETION_TOKENS),
                        text, "asked alone"))
    if hang_up_prompt is not None:
        jobs.append(Job("hang-up", CHAT, {**chat_payload(model, hang_up_prompt), "stream": True}, None))
    return jobs


def answer_text(ex: Exchange) -> str:
    return joined_content(ex) if ex.streamed else batch_content(ex)


def judge(job: Job, ex: Exchange) -> str | None:
    """What is wrong with the answer to one request, in words (None: nothing)."""
    try:
        if job.kind == "hang-up":
            expect.that(ex.status == 200 and len(ex.events) >= 1,
                        f"expected HTTP 200 and events before the hang-up, got "
                        f"{ex.status if ex.error is None or ex.status else ex.error} with {len(ex.events)} events")
            return None
        api_checks.check_well_formed(ex)
        expect.same_text(job.expected, answer_text(ex), f"{job.kind} ({job.expected_from})")
    except AssertionError as e:  # what, expected and got; the whole exchange is in the evidence
        return "\n".join(str(e).split("\n")[:JUDGED_LINES])
    return None


@dataclass
class Outcome:
    job: Job
    exchange: Exchange
    client: int
    number: int  # the order in which the request was sent (0 first)
    problem: str | None


@dataclass
class LoadRun:
    outcomes: list[Outcome]
    rss: list[tuple[float, int]]  # (seconds since the start, bytes)
    seconds: float
    clients: int
    warmup: int  # requests sent before memory growth counts
    started_at: float = 0.0
    stopped_by: str = ""  # "count", "time" or "server gone"

    @property
    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem is None]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem is not None]

    def latencies(self) -> list[float]:
        """Request to whole answer of every judged request that was right (hang-ups left out)."""
        return [o.exchange.seconds for o in self.answered if o.job.kind != "hang-up"]

    def rss_after_warmup(self) -> list[tuple[float, int]]:
        """The samples taken after the warm-up requests were all answered."""
        ends = sorted(o.exchange.started_at + o.exchange.seconds - self.started_at for o in self.outcomes
                      if o.number < self.warmup and o.exchange.started_at is not None)
        after = ends[-1] if ends else 0.0
        return [(t, b) for t, b in self.rss if t >= after]

    def rss_growth(self) -> int | None:
        """Median of the last three samples minus median of the first three after warm-up (bytes);
        None with fewer than two samples after warm-up."""
        samples = [b for _, b in self.rss_after_warmup()]
        if len(samples) < 2:
            return None
        k = min(3, len(samples) // 2)
        return int(statistics.median(samples[-k:]) - statistics.median(samples[:k]))

    def _fastest(self) -> dict[tuple, float]:
        """The fastest answer of each request kind and prompt answered more than once (hang-ups aside)."""
        by_key: dict[tuple, list[float]] = {}
        for o in self.answered:
            if o.job.kind != "hang-up":
                by_key.setdefault(o.job.key, []).append(o.exchange.seconds)
        return {key: min(times) for key, times in by_key.items() if len(times) > 1 and min(times) > 0}

    def slowdown(self) -> tuple[float, float] | None:
        """(fitted relative latency at the first and at the last request): each request's latency
        divided by the fastest answer of its own request kind and prompt, with a Theil-Sen line over
        the request order (robust to outliers). A kind and prompt answered once says nothing of a
        trend and is left out (on a loaded machine few requests fit in the run's time, and a lone
        answer divided by itself would flatten the line). Relative latencies are >= 1 by construction,
        so the line's start is taken as at least 1. None with fewer than six requests to fit."""
        fastest = self._fastest()
        points = [(o.number, o.exchange.seconds / fastest[o.job.key]) for o in self.answered if o.job.key in fastest
                  and o.job.kind != "hang-up"]
        if len(points) < 6 or len({n for n, _ in points}) < 2:
            return None
        xs, ys = zip(*points)
        slope, intercept, _, _ = stats.theilslopes(ys, xs)
        return max(1.0, float(intercept + slope * min(xs))), float(intercept + slope * max(xs))

    def baseline_seconds(self) -> float:
        """The median of the fastest answers per kind and prompt: what one relative unit is in seconds."""
        fastest = self._fastest()
        return statistics.median(fastest.values()) if fastest else 0.0

    def summary(self) -> dict:
        """The figures metrics.json keeps of the run (seconds, bytes as MiB)."""
        lat = self.latencies()
        rss = [b for _, b in self.rss]
        growth = self.rss_growth()
        return {
            "clients": self.clients, "requests": len(self.outcomes), "errors": len(self.failed),
            "hang_ups": sum(1 for o in self.outcomes if o.job.kind == "hang-up"), "seconds": round(self.seconds, 3),
            "stopped_by": self.stopped_by,
            "requests_per_s": round(len(self.outcomes) / self.seconds, 2) if self.seconds > 0 else None,
            "latency_p50_s": round(percentile(lat, 50), 4) if lat else None,
            "latency_p95_s": round(percentile(lat, 95), 4) if lat else None,
            "rss_peak_mib": round(max(rss) / MiB, 1) if rss else None,
            "rss_growth_mib": None if growth is None else round(growth / MiB, 1),
            "rss_samples": len(rss),
        }

    def series(self) -> str:
        """The RSS samples and every request, as text (attached to the report)."""
        lines = ["seconds  rss_mib"] + [f"{t:7.2f}  {b / MiB:8.1f}" for t, b in self.rss]
        lines += ["", "number client kind seconds problem"]
        lines += [f"{o.number:4d} {o.client:2d} {o.job.kind:24s} {o.exchange.seconds:7.3f} {o.problem or 'ok'}"
                  .split("\n")[0] for o in sorted(self.outcomes, key=lambda o: o.number)]
        return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation between closest ranks)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def send(client: Client, job: Job) -> Exchange:
    """One request of the workload (a hang-up reads HANG_UP_AFTER events, then closes the socket)."""
    if job.kind == "hang-up":
        return disconnect_mid_stream(client.base_url, job.path, job.payload, HANG_UP_AFTER, client.stream_timeout)
    return client.stream(job.path, job.payload) if job.streamed else client.post_json(job.path, job.payload)


def run(client: Client, jobs: list[Job], clients: int, max_requests: int, max_seconds: float,
        rss: Callable[[], int], warmup: int | None = None, alive: Callable[[], bool] = lambda: True,
        send_one: Callable[[Client, Job], Exchange] = send) -> LoadRun:
    """Send the cycle of ``jobs`` from ``clients`` threads until ``max_requests`` were sent or
    ``max_seconds`` passed, or the server is no longer ``alive()`` (stopped_by "count", "time" or
    "server gone"); ``rss()`` is sampled every SAMPLE_EVERY s meanwhile."""
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    samples: list[tuple[float, int]] = []
    sent = [0]
    began = time.monotonic()
    deadline = began + max_seconds
    done, gone = threading.Event(), threading.Event()

    def sampler() -> None:
        while True:
            samples.append((time.monotonic() - began, rss()))
            if done.wait(SAMPLE_EVERY):
                samples.append((time.monotonic() - began, rss()))
                return

    def worker(me: int) -> None:
        while True:
            with lock:
                if sent[0] >= max_requests or time.monotonic() >= deadline or gone.is_set():
                    return
                number = sent[0]
                sent[0] += 1
            job = jobs[number % len(jobs)]
            ex = send_one(client, job)
            outcome = Outcome(job, ex, me, number, judge(job, ex))
            if ex.error is not None and not ex.closed_by_client and not alive():
                gone.set()  # a dead server: its failures are told once, not hammered on
            with lock:
                outcomes.append(outcome)

    watcher = threading.Thread(target=sampler, name="load-rss", daemon=True)
    watcher.start()
    threads = [threading.Thread(target=worker, args=(i,), name=f"load-client-{i}", daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    seconds = time.monotonic() - began
    stopped_by = "server gone" if gone.is_set() else "count" if sent[0] >= max_requests else "time"
    return LoadRun(sorted(outcomes, key=lambda o: o.number), samples, seconds, clients,
                   clients if warmup is None else warmup, began, stopped_by)


@dataclass(frozen=True)
class Bounds:
    """What a load run may show: memory growth after warm-up (MiB), slowdown from first to last request."""

    rss_growth_mib: float
    slowdown_factor: float


def answer_problems(load: LoadRun, min_requests: int = 1) -> list[str]:
    """Requests that failed or were answered wrong, as one paragraph (empty: every answer right)."""
    if len(load.outcomes) < min_requests:
        return [f"expected at least {min_requests} requests to be served, "
                f"{len(load.outcomes)} were sent in {load.seconds:.1f} s"]
    failed = load.failed
    if not failed:
        return []
    kinds = sorted({o.job.kind for o in failed})
    first = "\n".join(f"  request #{o.number} ({o.job.kind}, client {o.client}): {o.problem}" for o in failed[:3])
    return [f"expected every answer right and 0 errors under load; got {len(failed)} of {len(load.outcomes)} "
            f"requests wrong or failed ({', '.join(kinds)}); the first:\n{first}"]


def steady_problems(load: LoadRun, bounds: Bounds) -> list[str]:
    """Memory that grew beyond the bound after warm-up, or a pace that fell, one line each."""
    found = []
    growth = load.rss_growth()
    if growth is not None and growth > bounds.rss_growth_mib * MiB:
        found.append(f"expected the server's resident memory to grow at most {bounds.rss_growth_mib:g} MiB after "
                     f"warm-up ({load.warmup} requests), it grew {growth / MiB:.1f} MiB over "
                     f"{len(load.outcomes) - load.warmup} requests (series attached: RSS samples)")
    trend = load.slowdown()
    pace = load.baseline_seconds()
    if (trend is not None and trend[1] > bounds.slowdown_factor * trend[0]
            and (trend[1] - trend[0]) * pace > SLOWDOWN_MIN_S):
        found.append(f"expected the server to keep its pace, at most {bounds.slowdown_factor:g}x slower from the "
                     f"first to the last request; the fitted latency (relative to the fastest answer of each request's kind) went "
                     f"from {trend[0]:.2f} to {trend[1]:.2f}, {trend[1] / trend[0]:.1f}x, about "
                     f"{(trend[1] - trend[0]) * pace:.1f} s more per request (series attached)")
    return found
