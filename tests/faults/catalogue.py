"""The fault catalogue: each fault the shim and proxy can inject, defined once: its name, the bug
class it stands for (/work/shared/reference/real-bug-classes.md), what it does, the slice of the
live suite that must catch it, and its implementation (`@fault(...)` on it: see kinds.py).

A `Selection` is a small behave slice (one clean model, a few scenarios) so one run takes seconds.
`catches` are fragments of the scenario names that must fail *unexpectedly* (not as a registered
known issue). Faults the suite does not catch carry the reason: `masked_by` (a registered known
issue that swallows the failure) or `missing_check` (the check the suite lacks). Their detection
tests are strict xfails: a finding about the suite, never a faked pass.

Model choice: mlx-e2e-demo/gemma-style is clean on every server and CLI scenario used here
(its only registered failures are the ones every model shares: KI-002 no-prompt loop, KI-004 stop
strings in streams, KI-005 validation gaps). utf8-style is the only demo model with multibyte
goldens: a batch UTF-8 fault is caught there; its streams already carry U+FFFD (KI-006), so the
streaming UTF-8 fault is injected on gemma-style instead (stream-replacement-char). Registered
issues that share a scenario with other checks name the failure messages they cover (`messages` in
features/known_issues.toml), so a new defect in the same scenario is caught, not absorbed.

Speed: a stream many times slower than batch is caught by a default run (the parity scenario bounds
the streamed time by the batch time); a server that is uniformly slow, batch and stream alike, only
by the opt-in floor `-D min_tokens_per_s` (features/performance.feature): a default run cannot know
how fast a user's model should be.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Iterator

from .kinds import (BY_NAME, CliFault, Fault, Selection, answers, backend_embeddings, base64_floats, choice, chunks,
                    delta_text, end_token, events, fault, floats_base64, hook, json_output, output, paced,
                    plain_answer, proxy_embeddings, runs, runs_json, with_delta_text)
from .transport import Event, Hang, Hooks, Pause, Request, Response, json_response

GEMMA = "mlx-e2e-demo/gemma-style"
UTF8 = "mlx-e2e-demo/utf8-style"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODELS = "/v1/models"
DONE = "[DONE]"


# --- slices of the live suite -------------------------------------------------------------

def _slice(name: str, about: str, *args: str, model: str = GEMMA) -> Selection:
    return Selection(name, ("--tags=@live_e2e", *args, "-D", f"include={model}"), about)


def _server(name: str, about: str, scenarios: str) -> Selection:
    """The server scenarios whose names match `scenarios` (a regular expression)."""
    return _slice(name, about, "--tags=@server", "-n", scenarios)


API = _slice("api", "server API shapes: health, models, chat and text, batch and stream",
             "--tags=@server", "-i", "api.feature")
API_TIMEOUTS = _slice("api-timeouts", "the server API slice with 5 s request and stream timeouts",
                      "--tags=@server", "-i", "api.feature", "-D", "request_timeout=5", "-D", "stream_timeout=5")
GOLDEN = _slice("golden", "golden answers, batch and streamed", "--tags=@server", "-i", "golden.feature")
GOLDEN_UTF8 = _slice("golden-utf8", "golden answers of the multibyte model (its streams fail with KI-006)",
                     "--tags=@server", "-i", "golden.feature", model=UTF8)
TOKEN_LIMIT = _server("token-limit", "max_tokens below the natural length", "A token limit below the natural length")
STOP = _server("stop", "stop strings, batch and streamed (KI-004 fails these on every model)", "stop strings? cuts")
BAD_REQUESTS = _server("bad-requests", "bad requests get clean 4xx errors (KI-005 fails this on every model)",
                       "Bad requests to")
NOT_INSTALLED_RACE = _server("not-installed", "a model that is not installed is refused (KI-008: too slowly)",
                             "A request for a model that is not installed")
CONCURRENCY = _server("concurrency", "four simultaneous golden requests", "Four simultaneous requests")
DISCONNECT = _server("disconnect", "a streaming client hangs up, then a new request",
                     "recovers when a streaming client hangs up")
STREAM_PARITY = _slice("stream-parity", "streamed vs batch chat answers: same text, comparable time",
                       "--tags=@parity", "-n", "A streamed chat answer from")
SPEED = _slice("speed", "the speed scenario with a floor of 20 tokens/s (the demo model streams hundreds)",
               "--tags=@performance", "-D", "min_tokens_per_s=20")
CLI_ANSWERS = _slice("cli-answers", "mlxk run: plain, golden, --json, --max-tokens",
                     "--tags=@cli", "-n", "A prompt on the command line gets a clean answer|"
                     "The command line gives the golden answer|Machine-readable output|"
                     "A token limit on the command line")
CLI_ERRORS = _slice("cli-errors", "mlxk run on an unknown model, plain and --json", "--tags=@cli", "-n", "An unknown model")
CLI_TIMEOUT = _slice("cli-timeout", "one mlxk run with a 20 s CLI timeout",
                     "--tags=@cli", "-n", "A prompt on the command line gets a clean answer", "-D", "cli_timeout=20")

REQUEST_TIMEOUT = 5.0  # as in API_TIMEOUTS
CLI_TIMEOUT_S = 20.0  # as in CLI_TIMEOUT (it also bounds `mlxk list --json`: 10 s is too short on a busy machine)
SLACK = 5.0  # a hung exchange must fail its scenario within its timeout + this


# --- end tokens, multi-eos ------------------------------------------------------------------

@fault("batch-end-token", "end-token leak", API, ("A chat answer from",), on=answers(CHAT),
       does="batch chat answers end with the model's end token (<end_of_turn>); streams are clean")
def _(doc, model):
    doc["choices"][0]["message"]["content"] += end_token(model)


@fault("stream-end-token", "end-token leak", API, ("A streamed chat answer from",), on=events(CHAT),
       does="chat streams send the end token as one more content chunk before the finish chunk; batch is clean")
def _(evs, model):
    for event in evs:
        c = choice(event.chunk)
        if c is not None and c.get("finish_reason") is not None:
            leak = with_delta_text(event.chunk, end_token(model))
            leak["choices"][0]["finish_reason"] = None
            yield Event.of(leak)
        yield event


@fault("completion-end-token", "end-token leak", API, ("A text completion from",), on=answers(COMPLETIONS),
       does="/v1/completions batch text ends with the end token")
def _(doc, model):
    doc["choices"][0]["text"] += end_token(model)


@fault("batch-runs-on", "multi-eos", GOLDEN, ("gives its golden chat answers",), on=answers(CHAT),
       does="batch chat answers run past the end token into the next turn (\"...<end_of_turn>\\nuser\\n...\"), "
            "finish_reason length")
def _(doc, model):
    c = doc["choices"][0]
    c["message"]["content"] += end_token(model) + "\nuser\nAnd what else?"
    c["finish_reason"] = "length"


# --- SSE framing and envelope ---------------------------------------------------------------

@fault("stream-no-done", "missing [DONE]", API, ("A streamed chat answer from", "A streamed text completion from"),
       on=events(), does="streams end without `data: [DONE]`")
def _(evs, model):
    return (event for event in evs if event.payload != DONE)


@fault("stream-json-content-type", "content type", API,
       ("A streamed chat answer from", "A streamed text completion from"), on=hook("stream_head"),
       does="streams are sent as Content-Type application/json")
def _(req, head, model):
    return head.set_header("Content-Type", "application/json")


@fault("sse-merged", "SSE framing", API, ("A streamed chat answer from",), on=events(CHAT),
       does="the first two content events of a chat stream have no blank line between them")
def _(evs, model):
    held, merged = None, False
    for event in evs:
        if not merged and delta_text(event.chunk):
            if held is None:
                held = event
                continue
            event, held, merged = held.raw + event.wire(), None, True  # one event's lines right after the other's
        elif held is not None:
            yield held
            held = None
        yield event


@fault("stream-id-changes", "SSE framing (chunk envelope)", API, ("A streamed chat answer from",), on=chunks(CHAT),
       does="chat chunks from the third on carry a different id")
def _(chunk, n):
    if n >= 2:
        chunk["id"] = str(chunk.get("id", "")) + "-b"


@fault("stream-no-role", "SSE framing (chunk envelope)", API, ("A streamed chat answer from",), on=chunks(CHAT),
       does="the first chat chunk's delta has no role")
def _(chunk, n):
    c = choice(chunk)
    if n == 0 and c is not None and isinstance(c.get("delta"), dict):
        c["delta"].pop("role", None)


@fault("chunk-object-name", "object names", API, ("A streamed chat answer from",), on=chunks(CHAT),
       does="chat chunks say object \"chat.completion\" (not .chunk)")
def _(chunk, n):
    if chunk.get("object") == "chat.completion.chunk":
        chunk["object"] = "chat.completion"


@fault("object-chat-completions", "object names", API, ("A chat answer from",), on=answers(CHAT),
       does="batch chat answers say object \"chat.completions\"")
def _(doc, model):
    doc["object"] = "chat.completions"


# --- finish_reason, usage -------------------------------------------------------------------

@fault("stream-finish-never-set", "finish_reason", API,
       ("A streamed chat answer from", "A streamed text completion from"), on=chunks(CHAT, COMPLETIONS),
       does="no stream chunk ever carries a finish_reason (all null)")
def _(chunk, n):
    c = choice(chunk)
    if c is not None:
        c["finish_reason"] = None


@fault("batch-finish-missing", "finish_reason", API, ("A chat answer from",), on=answers(CHAT),
       does="batch chat answers have no finish_reason key")
def _(doc, model):
    doc["choices"][0].pop("finish_reason", None)


@fault("stream-finish-empty", "finish_reason", API,
       ("A streamed chat answer from", "A streamed text completion from"), on=chunks(CHAT, COMPLETIONS),
       does="stream chunks carry finish_reason \"\" instead of null")
def _(chunk, n):
    c = choice(chunk)
    if c is not None and c.get("finish_reason") is None:
        c["finish_reason"] = ""


@fault("finish-stop-at-length", "finish_reason", TOKEN_LIMIT, ("A token limit below the natural length",),
       on=(answers(CHAT, COMPLETIONS), chunks(CHAT, COMPLETIONS)),
       does="finish_reason is \"stop\" even when max_tokens cut the answer")
def _(doc, _):
    c = choice(doc)
    if c is not None and c.get("finish_reason") == "length":
        c["finish_reason"] = "stop"


@fault("usage-total-wrong", "usage", API, ("A chat answer from", "A text completion from"),
       on=answers(CHAT, COMPLETIONS), does="batch usage.total_tokens is prompt + completion + 1")
def _(doc, model):
    doc["usage"]["total_tokens"] += 1


@fault("usage-every-chunk", "usage", API, ("A streamed chat answer from", "A streamed text completion from"),
       on=chunks(CHAT, COMPLETIONS), does="every stream chunk carries a usage object, though none was asked for")
def _(chunk, n):
    chunk["usage"] = {"prompt_tokens": 13, "completion_tokens": n, "total_tokens": 13 + n}


# --- text integrity -------------------------------------------------------------------------

@fault("stream-drop-last-token", "stream/batch divergence", GOLDEN, ("streams its golden chat answers intact",),
       on=events(CHAT), does="chat streams never send the last content chunk; batch is whole")
def _(evs, model):
    held = None
    for event in evs:
        if delta_text(event.chunk):
            if held is not None:
                yield held
            held = event
            continue
        c = choice(event.chunk)
        if c is not None and c.get("finish_reason") is not None:
            held = None  # dropped
        if held is not None and event.payload == DONE:
            yield held
            held = None
        yield event


@fault("stream-replacement-char", "UTF-8 split", GOLDEN, ("streams its golden chat answers intact",),
       on=events(CHAT),
       does="one character of a streamed chat chunk arrives as U+FFFD; batch is whole (shown on gemma-style: "
            "utf8-style's streams already fail with KI-006)")
def _(evs, model):
    """What a byte-level decoder does to a multibyte character split across tokens."""
    done = False
    for event in evs:
        text = delta_text(event.chunk)
        if not done and text and len(text.strip()) >= 2:
            event, done = Event.of(with_delta_text(event.chunk, text[:-1] + "\ufffd")), True
        yield event


@fault("batch-utf8-fffd", "UTF-8 split", GOLDEN_UTF8, ("gives its golden chat answers",), on=answers(CHAT),
       does="batch chat answers show every multibyte character as one U+FFFD per byte; streams untouched")
def _(doc, model):
    """Every multibyte character as one U+FFFD per UTF-8 byte (tokens decoded one by one)."""
    message = doc["choices"][0]["message"]
    message["content"] = "".join(c if ord(c) < 128 else "\ufffd" * len(c.encode("utf-8"))
                                 for c in message["content"])


# --- stop strings (KI-004 covers both scenarios by name, on every model) ----------------------

class StopInProxy(Hooks):
    """The real server gets no `stop` in batch mode; the proxy cuts the answer itself, wrongly:
    at the earliest stop string found (or the first listed one found), before it (or after it)."""

    earliest = True
    inclusive = False

    def upstream(self, req: Request) -> Request:
        doc = req.json
        if req.posts_to(CHAT) and not req.streamed and isinstance(doc, dict) and doc.get("stop"):
            stops = doc.pop("stop")
            req.notes["stops"] = [stops] if isinstance(stops, str) else list(stops)
            return req.with_json(doc)
        return req

    def batch(self, req: Request, resp: Response) -> Response:
        doc = resp.json
        if "stops" in req.notes and resp.status == 200 and isinstance(doc, dict):
            c = doc["choices"][0]
            text = c["message"]["content"]
            found = [(text.index(s), s) for s in req.notes["stops"] if s in text]
            if found:
                at, stop = min(found) if self.earliest else found[0]
                c["message"]["content"] = text[: at + (len(stop) if self.inclusive else 0)]
                c["finish_reason"] = "stop"
            return resp.set_json(doc)
        return resp


@fault("batch-stop-not-stripped", "stop sequence", STOP, ("A stop string cuts",),
       does="batch answers with `stop` are cut after the stop string, which stays visible; streams unchanged")
class _(StopInProxy):
    inclusive = True


@fault("stop-list-order", "stop ordering", STOP, ("A list of stop strings cuts",),
       does="a list of stop strings is cut at the first listed one found, not the earliest (batch)")
class _(StopInProxy):
    earliest = False


# --- error handling (KI-005 covers the whole bad-request table, on every model) ---------------

@fault("unknown-model-500", "unknown model / error handling", NOT_INSTALLED_RACE,
       ("A request for a model that is not installed",), on=hook("batch"),
       does="an unknown model is answered 500, not 404")
def _(req, resp, model):
    if resp.status == 404:
        resp.status = 500
    return resp


@fault("error-body-not-json", "error handling", BAD_REQUESTS, ("Bad requests to",), on=hook("batch"),
       does="every 4xx/5xx body is the plain text 'Bad Request'")
def _(req, resp, model):
    if resp.status >= 400:
        resp.body = b"Bad Request\n"
        resp.set_header("Content-Type", "text/plain; charset=utf-8")
    return resp


@fault("malformed-json-200", "error handling / validation gaps", BAD_REQUESTS, ("Bad requests to",),
       on=hook("before"), does="a malformed JSON body is answered 200 with a chat completion")
def _(req, model):
    if req.posts_to(CHAT) and req.json is None:
        return json_response(200, {
            "id": "chatcmpl-proxy", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
    return None


# --- hangs, concurrency, disconnects --------------------------------------------------------

@fault("stream-hang-midway", "hang", API_TIMEOUTS, ("A streamed chat answer from", "A streamed text completion from"),
       on=events(), max_seconds=REQUEST_TIMEOUT + SLACK,
       does="after three events a stream stops; the socket stays open")
def _(evs, model):
    for n, event in enumerate(evs):
        if n == 3:
            yield Hang()
            return
        yield event


@fault("no-headers", "hang", API_TIMEOUTS, ("A chat answer from", "A streamed chat answer from"), on=hook("before"),
       max_seconds=REQUEST_TIMEOUT + SLACK,
       does="chat completions are accepted and never answered (no status line); /health stays 200")
def _(req, model):
    return Hang() if req.posts_to(CHAT) else None  # as if the generation thread died


@fault("concurrent-swap", "concurrency", CONCURRENCY, ("Four simultaneous requests",),
       does="two chat answers ready while both requests are in flight are handed to each other's client")
class _(Hooks):
    """A ready answer waits (up to PARTNER_WAIT s) for the next ready answer of another client
    still waiting, and the two are swapped."""

    PARTNER_WAIT = 1.0

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.lock = threading.Condition()
        self.waiting: dict | None = None

    def batch(self, req: Request, resp: Response) -> Response:
        if not (req.posts_to(CHAT) and not req.streamed and resp.status == 200):
            return resp
        with self.lock:
            if self.waiting is not None:
                slot, self.waiting = self.waiting, None
                resp.body, slot["body"] = slot["body"], resp.body
                slot["swapped"] = True
                self.lock.notify_all()
                return resp
            slot = {"body": resp.body, "swapped": False}
            self.waiting = slot
            self.lock.wait_for(lambda: slot["swapped"], timeout=self.PARTNER_WAIT)
            if self.waiting is slot:
                self.waiting = None
            resp.body = slot["body"]
        return resp


@fault("broken-after-disconnect", "disconnect", DISCONNECT, ("recovers when a streaming client hangs up",),
       does="after a streaming client hangs up mid-stream, every later request is answered 500")
class _(Hooks):
    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.broken = False
        self.streams = threading.Condition()
        self.active = 0

    def before(self, req: Request) -> Response | None:
        if req.method == "POST":
            # Like a server that finishes a cancelled generation first: wait for running streams
            # (bounded), so the hang-up is noticed before the next request is judged.
            with self.streams:
                self.streams.wait_for(lambda: self.active == 0, timeout=5)
        if self.broken and req.method == "POST":
            return json_response(500, {"error": {"type": "server_error", "message":
                                                 "generation of a cancelled request is still running"}})
        return None

    def stream(self, req: Request, evs: Iterator[Event]) -> Iterator[Event | Pause]:
        with self.streams:
            self.active += 1
        finished = False
        try:
            yield from paced(evs, 0.15)  # paced, so a client that reads two events leaves mid-stream
            finished = True
        finally:
            # Closed early means the client left. Mark it here, before a waiting request is woken:
            # the proxy's own client_gone() call comes only after this generator is closed.
            with self.streams:
                self.broken = self.broken or not finished
                self.active -= 1
                self.streams.notify_all()

    def client_gone(self, req: Request) -> None:
        self.broken = True


@fault("models-missing", "/v1/models", API, ("is healthy and lists its model",), on=hook("batch"),
       does="GET /v1/models lists the other cached models but not the served one")
def _(req, resp, model):
    doc = resp.json
    if req.method == "GET" and req.route == MODELS and isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc["data"] = [m for m in doc["data"] if not (isinstance(m, dict) and m.get("id") == model)]
        return resp.set_json(doc)
    return resp


@fault("slow-stream", "speed", STREAM_PARITY, ("A streamed chat answer from",), on=events(),
       does="every stream event is held back 0.5 s (streaming many times slower than batch)")
def _(evs, model):
    return paced(evs, 0.5)


@fault("slow-decode", "speed", SPEED, ("The speed of",),
       does="batch and stream alike deliver ~10 tokens/s (every token held back 0.1 s)")
class _(Hooks):
    """A uniformly slow server (a decode regression): batch and stream are equally slow."""

    PER_TOKEN = 0.1

    def stream(self, req: Request, evs: Iterator[Event]) -> Iterator[Event | Pause]:
        return paced(evs, self.PER_TOKEN)

    def batch(self, req: Request, resp: Response) -> Response:
        doc = resp.json
        if req.method == "POST" and resp.status == 200 and isinstance(doc, dict):
            tokens = (doc.get("usage") or {}).get("completion_tokens") or 0
            time.sleep(min(self.PER_TOKEN * tokens, 10.0))
        return resp


# --- command line ---------------------------------------------------------------------------

@fault("cli-exit-0-on-error", "CLI exit code", CLI_ERRORS,
       ("An unknown model fails with exit code 1", "An unknown model with --json"), on=output(runs),
       does="`mlxk run` exits 0 whatever happened")
def _(out, code):
    return out, 0


@fault("cli-json-success-on-error", "CLI exit code", CLI_ERRORS, ("An unknown model with --json",), on=json_output,
       does="`mlxk run --json` says status success on an error (exit code kept)")
def _(doc):
    if doc.get("status") == "error":
        doc["status"] = "success"


@fault("cli-end-token", "end-token leak", CLI_ANSWERS, ("A prompt on the command line gets a clean answer",),
       on=plain_answer, does="`mlxk run` prints the end token after the answer (plain output only)")
def _(answer):
    return answer + "<end_of_turn>"


@fault("cli-json-end-token", "end-token leak", CLI_ANSWERS, ("Machine-readable output",), on=json_output,
       does="`mlxk run --json` response ends with the end token")
def _(doc):
    if isinstance(doc.get("data"), dict) and isinstance(doc["data"].get("response"), str):
        doc["data"]["response"] += "<end_of_turn>"


@fault("cli-json-banner", "CLI output hygiene", CLI_ANSWERS,
       ("Machine-readable output", "A token limit on the command line"), on=output(runs_json),
       does="`mlxk run --json` prints a banner line before the JSON document")
def _(out, code):
    return "mlx-knife 2.0.8 | MLX backend ready | model loaded in 0.42 s\n" + out, code


@fault("cli-finish-stop-at-length", "finish_reason", CLI_ANSWERS, ("A token limit on the command line",),
       on=json_output, does="`mlxk run --json --max-tokens` says finish_reason stop when the limit cut the answer")
def _(doc):
    if isinstance(doc.get("data"), dict) and doc["data"].get("finish_reason") == "length":
        doc["data"]["finish_reason"] = "stop"


@fault("cli-answer-truncated", "stream/batch divergence", CLI_ANSWERS,
       ("The command line gives the golden answer", "Machine-readable output"), on=plain_answer,
       does="`mlxk run` loses the answer's last character (plain output only)")
def _(answer):
    return answer[:-1]


fault("cli-hang", "hang", CLI_TIMEOUT, ("A prompt on the command line gets a clean answer",),
      max_seconds=CLI_TIMEOUT_S + SLACK, does="`mlxk run` never ends")(CliFault(runs, hang=True))


# --- embeddings: embed-serve (the backend) and serve --embed-backend (the proxy) ------------

EMBED_PAIR = f"include={GEMMA},mlx-e2e-demo/bert-style-embed"  # a chat model is required by every run
EMBED_SERVER = Selection("embed-server", ("--tags=@live_e2e", "--tags=@embeddings", "-n", "The embeddings server for",
                                          "-D", EMBED_PAIR),
                         "embed-serve: OpenAI's shape, floats and base64, the command line's vectors")
EMBED_PROXY = Selection("embed-proxy", ("--tags=@live_e2e", "--tags=@embeddings", "-n",
                                        "The chat server answers chat and hands embeddings", "-D", EMBED_PAIR),
                        "serve --embed-backend: chat and embeddings on one base URL")


def _vectors(doc: dict) -> list:
    """The embeddings of a /v1/embeddings answer as float lists (base64 decoded as <f4)."""
    return [base64_floats(d["embedding"]) if isinstance(d["embedding"], str) else d["embedding"] for d in doc["data"]]


def _set_vectors(doc: dict, vectors: list, encoding: str | None = None) -> None:
    for item, vector in zip(doc["data"], vectors):
        item["embedding"] = floats_base64(vector, encoding or "<f4") if isinstance(item["embedding"], str) else vector


@fault("embed-wrong-dimension", "embedding shape", EMBED_SERVER, ("The embeddings server for",),
       on=backend_embeddings, does="embed-serve drops the last component of every vector (floats and base64)")
def _(doc, model):
    _set_vectors(doc, [v[:-1] for v in _vectors(doc)])


@fault("embed-not-normalised", "embedding values", EMBED_SERVER, ("The embeddings server for",),
       on=backend_embeddings, does="embed-serve sends every vector scaled by 2 (no longer unit length)")
def _(doc, model):
    _set_vectors(doc, [[2 * x for x in v] for v in _vectors(doc)])


@fault("embed-batch-shuffled", "batch order", EMBED_SERVER, ("The embeddings server for",), on=backend_embeddings,
       does="embed-serve returns a batch's vectors rotated by one (indices still 0, 1, 2, ...)")
def _(doc, model):
    vectors = _vectors(doc)
    if len(vectors) > 1:
        _set_vectors(doc, vectors[1:] + vectors[:1])


@fault("embed-base64-float64", "encoding", EMBED_SERVER, ("The embeddings server for",), on=backend_embeddings,
       does="embed-serve's base64 vectors are float64 bytes instead of little-endian float32")
def _(doc, model):
    _set_vectors(doc, _vectors(doc), encoding="<f8")


@fault("embed-proxy-drops", "proxy", EMBED_PROXY, ("The chat server answers chat and hands embeddings",),
       on=proxy_embeddings, does="the chat server answers /v1/embeddings itself, 200 with no embeddings, "
                                 "without asking its backend")
def _(req, model):
    return json_response(200, {"object": "list", "data": [], "model": model,
                               "usage": {"prompt_tokens": 0, "total_tokens": 0}})


# --- vision: questions about images (features/vision.feature) --------------------------------

VISION = "mlx-e2e-demo/vision-style"
VISION_ANSWERS = _slice("vision-answers", "questions about images: well-formed, clean, golden (server)",
                        "--tags=@vision", "--tags=@server", "-n",
                        "answers a question about an image, in one piece|gives its golden answers about images|"
                        "one at a time answers each",
                        model=VISION)
VISION_ERRORS = _slice("vision-errors", "bad images get clean 4xx errors (KI-204 fails its last row)",
                       "--tags=@vision", "-n", "refuses bad images cleanly", model=VISION)


def _image_parts(doc: object) -> list[list]:
    """The content lists of the user messages of a chat request that carry image_url parts."""
    messages = doc.get("messages") if isinstance(doc, dict) else None
    return [m["content"] for m in messages or () if isinstance(m, dict) and isinstance(m.get("content"), list)
            and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])]


@fault("vision-image-ignored", "modality dropped", VISION_ANSWERS,
       ("gives its golden answers about images",), on=hook("upstream"),
       does="the image_url parts of a chat request never reach the server: the model answers the text alone")
def _(req, model):
    doc = req.json
    contents = _image_parts(doc) if req.posts_to(CHAT) else []
    for content in contents:
        content[:] = [p for p in content if not (isinstance(p, dict) and p.get("type") == "image_url")]
    return req.with_json(doc) if contents else req


@fault("vision-images-swapped", "modality order", VISION_ANSWERS,
       ("one at a time answers each",), on=hook("upstream"),
       does="the images of a multi-image message reach the model in reverse order")
def _(req, model):
    doc = req.json
    contents = _image_parts(doc) if req.posts_to(CHAT) else []
    for content in contents:
        at = [i for i, p in enumerate(content) if isinstance(p, dict) and p.get("type") == "image_url"]
        for i, j in zip(at, reversed(at)):
            if i < j:
                content[i], content[j] = content[j], content[i]
    return req.with_json(doc) if contents else req


@fault("vision-end-token", "end-token leak", VISION_ANSWERS,
       ("answers a question about an image, in one piece",), on=hook("batch"),
       does="batch answers about an image end with the model's end token </s>; text-only answers are clean")
def _(req, resp, model):
    doc = resp.json
    if req.posts_to(CHAT) and _image_parts(req.json) and resp.status == 200 and isinstance(doc, dict):
        doc["choices"][0]["message"]["content"] += "</s>"
        return resp.set_json(doc)
    return resp


@fault("vision-bad-image-500", "error handling", VISION_ERRORS, ("refuses bad images cleanly",), on=hook("batch"),
       does="every rejected request with an image is answered 500 internal_error instead of its 4xx")
def _(req, resp, model):
    if req.posts_to(CHAT) and _image_parts(req.json) and 400 <= resp.status < 500:
        resp.status = 500
        resp.set_json({"status": "error", "error": {"type": "internal_error", "message": "image processing failed",
                                                    "retryable": False}})
    return resp




# --- endurance under load (features/load.feature) ---------------------------------------------

LOAD = _slice("load", "the load scenario, 4 s and at most 40 requests from 3 clients", "--tags=@load",
              "-D", "load_seconds=4", "-D", "load_requests=40")
LEAK_PER_REQUEST = 16 * 1024 * 1024  # bytes the leaking server keeps per request


class _PerRequest(Hooks):
    """Counts the completion requests (POST) the server has been sent."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.lock = threading.Lock()
        self.posts = 0

    def count(self, req: Request) -> int:
        """The request's number (1 for the first POST), 0 for anything else."""
        if req.method != "POST":
            return 0
        with self.lock:
            self.posts += 1
            return self.posts


@fault("leak-per-request", "memory leak", LOAD, ("serves chat and text completions to several clients",),
       does="every completion request leaves 16 MiB behind in the server process (resident, never freed)")
class _(_PerRequest):
    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.kept: list[bytes] = []

    def before(self, req: Request) -> None:
        if self.count(req):
            self.kept.append(b"\x01" * LEAK_PER_REQUEST)  # written, so resident
        return None


@fault("slower-per-request", "slowdown", LOAD, ("serves chat and text completions to several clients",),
       does="from the 7th completion request on, the n-th is held back 0.5 s x (n - 6) before it is answered "
            "(a server that slows down request by request)")
class _(_PerRequest):
    FAST = 6

    def before(self, req: Request) -> None:
        n = self.count(req)
        time.sleep(min(0.5 * max(0, n - self.FAST), 20.0))
        return None


@fault("crash-after-requests", "crash", LOAD, ("serves chat and text completions to several clients",),
       does="the server process and its children are killed (SIGKILL) at the 6th completion request")
class _(_PerRequest):
    AT = 6

    def before(self, req: Request) -> None:
        if self.count(req) == self.AT:
            os.killpg(os.getpgrp(), signal.SIGKILL)  # the shim and the real server it started: a crash
        return None


# --- speech: transcription and translation (features/speech.feature) ------------------------------

WHISPER = "mlx-e2e-demo/whisper-style"
WHISPER_EN = "mlx-e2e-demo/whisper-tiny.en-style"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
# A run needs rows for the chat and text outlines (support/outlines.py REQUIRED_KINDS): the clean chat model
# is included, and the speech tags keep its scenarios out.
WITH_CHAT = f",{GEMMA}"
SPEECH_ANSWERS = _slice("speech-answers", "uploads transcribed and translated to the goldens, in each response format",
                        "--tags=@speech", "--tags=@server", "-n",
                        "transcribes each clip to its golden|answers in each response format|translates each clip",
                        model=WHISPER + WITH_CHAT)
SPEECH_ERRORS = _slice("speech-errors", "bad uploads get clean 4xx errors (KI-404 fails its last row)",
                       "--tags=@speech", "-n", "refuses a bad upload cleanly", model=WHISPER + WITH_CHAT)
SPEECH_CLI_REFUSAL = _slice("speech-cli-refusal", "mlxk run --translate with an English-only model is refused",
                            "--tags=@speech", "--tags=@cli", "-n", "The command line translates German",
                            model=WHISPER_EN + WITH_CHAT)


def _speech_text(req: Request, resp: Response, routes: tuple[str, ...]) -> dict | None:
    """The JSON answer (with its text) of a successful upload to `routes`, else None."""
    doc = resp.json
    ok = req.posts_to(*routes) and resp.status == 200 and isinstance(doc, dict) and isinstance(doc.get("text"), str)
    return doc if ok else None


@fault("speech-previous-transcript", "stale answer", SPEECH_ANSWERS, ("transcribes each clip to its golden",),
       does="a transcription answers with the transcript of the clip uploaded before it (the first one is right)")
class _(Hooks):
    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.previous: str | None = None

    def batch(self, req: Request, resp: Response) -> Response:
        doc = _speech_text(req, resp, (TRANSCRIPTIONS,))
        if doc is None:
            return resp
        text = doc["text"]
        if self.previous is not None:
            doc["text"] = self.previous
        self.previous = text
        return resp.set_json(doc)


@fault("speech-truncated", "truncation", SPEECH_ANSWERS, ("transcribes each clip to its golden",),
       on=hook("batch"), does="a transcription loses its last word")
def _(req, resp, model):
    doc = _speech_text(req, resp, (TRANSCRIPTIONS,))
    if doc is None or " " not in doc["text"]:
        return resp
    doc["text"] = doc["text"].rsplit(" ", 1)[0]
    return resp.set_json(doc)


@fault("speech-translate-transcribes", "task ignored", SPEECH_ANSWERS, ("translates each clip",), on=hook("upstream"),
       does="a translation is sent on as a transcription: the answer is in the clip's own language")
def _(req, model):
    if not req.posts_to(TRANSLATIONS):
        return req
    return Request(req.method, TRANSCRIPTIONS, req.headers, req.body, req.notes)


@fault("speech-format-ignored", "response_format ignored", SPEECH_ANSWERS, ("answers in each response format",),
       on=hook("batch"), does="response_format text is answered as JSON {\"text\": ...}")
def _(req, resp, model):
    kind = dict((k.lower(), v) for k, v in resp.headers).get("content-type", "")
    if req.posts_to(TRANSCRIPTIONS, TRANSLATIONS) and resp.status == 200 and kind.startswith("text/plain"):
        resp.set_header("Content-Type", "application/json")
        return resp.set_json({"text": resp.body.decode("utf-8", "replace")})
    return resp


@fault("speech-bad-upload-500", "error handling", SPEECH_ERRORS, ("refuses a bad upload cleanly",), on=hook("batch"),
       does="every rejected upload is answered 500 internal_error instead of its 4xx")
def _(req, resp, model):
    if req.posts_to(TRANSCRIPTIONS, TRANSLATIONS) and 400 <= resp.status < 500:
        resp.status = 500
        resp.set_json({"status": "error", "error": {"type": "internal_error", "message": "transcription failed",
                                                    "retryable": False}})
    return resp


@fault("speech-cli-refusal-exit-0", "CLI exit code", SPEECH_CLI_REFUSAL, ("The command line translates German",),
       on=output(lambda argv: runs(argv) and "--translate" in argv),
       does="mlxk run --translate refused by an English-only model exits 0")
def _(out, code):
    return out, 0


CATALOGUE: tuple[Fault, ...] = tuple(BY_NAME.values())
SELECTIONS: tuple[Selection, ...] = tuple(dict.fromkeys(f.selection for f in CATALOGUE))
