"""An HTTP fault proxy: forwards to the real `mlxk serve` and rewrites answers or timing by a named fault.

Threaded (stdlib `http.server`); the upstream is read with `http.client`. Server-sent event
streams are forwarded event by event as they arrive (chunked transfer encoding, one chunk per
event, flushed), so a fault that stops mid-stream really leaves the client on an open socket.
Every response says `Connection: close`: one request per connection keeps the proxy simple.

A fault is a `Fault` subclass that overrides the hooks it needs; `FAULTS` maps names to them.
`Fault` itself is the transparent proxy (the healthy control).
"""

from __future__ import annotations

import copy
import http.client
import json
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODELS = "/v1/models"
DONE = "[DONE]"
UPSTREAM_TIMEOUT = 600.0  # seconds; the suite's own timeouts are far shorter
POLL = 0.2  # seconds between checks while a fault keeps a client waiting
# Not forwarded: connection-level headers, lengths the proxy recomputes, and the ones it sets itself.
SKIPPED_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                   "transfer-encoding", "upgrade", "content-length", "host", "date", "server"}


def end_token(model: str) -> str:
    """The end-of-turn token of the model's family (what a leaking server shows)."""
    for family, token in (("gemma", "<end_of_turn>"), ("phi3", "<|end|>"), ("llama3", "<|eot_id|>"),
                          ("mistral", "</s>")):
        if family in model:
            return token
    return "<|im_end|>"


# --- messages ---------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    notes: dict = field(default_factory=dict)  # what a fault remembers between its hooks

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def json(self) -> object | None:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def streamed(self) -> bool:
        doc = self.json
        return isinstance(doc, dict) and doc.get("stream") is True

    def posts_to(self, *routes: str) -> bool:
        return self.method == "POST" and self.route in routes

    def with_json(self, doc: dict) -> "Request":
        return Request(self.method, self.path, self.headers, json.dumps(doc).encode(), self.notes)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def json(self) -> object | None:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def set_json(self, doc: object) -> "Response":
        self.body = json.dumps(doc).encode()
        return self

    def set_header(self, name: str, value: str) -> "Response":
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()] + [(name, value)]
        return self


def json_response(status: int, doc: object) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(doc).encode())


@dataclass
class Event:
    """One server-sent event: its lines as received, without the blank line that ends it."""

    raw: bytes

    @property
    def data(self) -> str:
        lines = self.raw.decode("utf-8", "replace").splitlines()
        return "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))

    @property
    def payload(self) -> dict | str:
        """The data as a JSON object, or the raw data text ("[DONE]" and anything unparsable)."""
        try:
            doc = json.loads(self.data)
        except ValueError:
            return self.data
        return doc if isinstance(doc, dict) else self.data

    @property
    def chunk(self) -> dict | None:
        payload = self.payload
        return payload if isinstance(payload, dict) else None

    @classmethod
    def of(cls, payload: dict | str) -> "Event":
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        return cls(b"data: " + text.encode("utf-8") + b"\n")

    def wire(self) -> bytes:
        return self.raw + b"\n"


class Hang:
    """Stop sending and keep the socket open until the client leaves (or the proxy stops)."""


@dataclass
class Pause:
    seconds: float


def choice(chunk: dict | None) -> dict | None:
    if not chunk or not isinstance(chunk.get("choices"), list) or not chunk["choices"]:
        return None
    return chunk["choices"][0] if isinstance(chunk["choices"][0], dict) else None


def delta_text(chunk: dict | None) -> str | None:
    c = choice(chunk)
    if c is None:
        return None
    if isinstance(c.get("delta"), dict):
        return c["delta"].get("content")
    return c.get("text")


def with_delta_text(chunk: dict, text: str) -> dict:
    out = copy.deepcopy(chunk)
    c = out["choices"][0]
    if isinstance(c.get("delta"), dict):
        c["delta"]["content"] = text
    else:
        c["text"] = text
    return out


# --- faults -----------------------------------------------------------------------------

class Fault:
    """No fault: the transparent proxy. Subclasses override the hooks they need."""

    name = "none"

    def __init__(self, model: str) -> None:
        self.model = model
        self.lock = threading.Condition()

    def before(self, req: Request) -> Response | Hang | None:
        """An answer given without asking the real server (None: forward)."""
        return None

    def upstream(self, req: Request) -> Request:
        """The request as sent to the real server."""
        return req

    def batch(self, req: Request, resp: Response) -> Response:
        """A whole (non-stream) response."""
        return resp

    def stream_head(self, req: Request, head: Response) -> Response:
        """A stream's status and headers."""
        return head

    def stream(self, req: Request, events: Iterator[Event]) -> Iterator[Event | bytes | Pause | Hang]:
        """A stream's events, as they arrive."""
        yield from events

    def client_gone(self, req: Request) -> None:
        """The client hung up before the response was complete."""

    def done(self, req: Request) -> None:
        """The exchange is over (answered, or the client left)."""


class _ChatBatch(Fault):
    """Base: rewrite the document of a successful chat (or, with `routes`, another) batch answer."""

    routes = (CHAT,)

    def batch(self, req, resp):
        doc = resp.json
        if req.posts_to(*self.routes) and not req.streamed and resp.status == 200 and isinstance(doc, dict):
            return resp.set_json(self.rewrite(doc))
        return resp

    def rewrite(self, doc: dict) -> dict:
        raise NotImplementedError


class _Chunks(Fault):
    """Base: rewrite each JSON chunk of a chat (or, with `routes`, another) stream."""

    routes = (CHAT,)

    def stream(self, req, events):
        if not req.posts_to(*self.routes):
            yield from events
            return
        n = 0
        for event in events:
            chunk = event.chunk
            if chunk is None:
                yield event
                continue
            new = self.rewrite(n, copy.deepcopy(chunk))
            n += 1
            if new is not None:
                yield Event.of(new)

    def rewrite(self, n: int, chunk: dict) -> dict | None:
        raise NotImplementedError


class BatchEndToken(_ChatBatch):
    name = "batch-end-token"

    def rewrite(self, doc):
        doc["choices"][0]["message"]["content"] += end_token(self.model)
        return doc


class CompletionEndToken(_ChatBatch):
    name = "completion-end-token"
    routes = (COMPLETIONS,)

    def rewrite(self, doc):
        doc["choices"][0]["text"] += end_token(self.model)
        return doc


class BatchRunsOn(_ChatBatch):
    name = "batch-runs-on"

    def rewrite(self, doc):
        c = doc["choices"][0]
        c["message"]["content"] += end_token(self.model) + "\nuser\nAnd what else?"
        c["finish_reason"] = "length"
        return doc


class ObjectChatCompletions(_ChatBatch):
    name = "object-chat-completions"

    def rewrite(self, doc):
        doc["object"] = "chat.completions"
        return doc


class BatchFinishMissing(_ChatBatch):
    name = "batch-finish-missing"

    def rewrite(self, doc):
        doc["choices"][0].pop("finish_reason", None)
        return doc


class UsageTotalWrong(_ChatBatch):
    name = "usage-total-wrong"
    routes = (CHAT, COMPLETIONS)

    def rewrite(self, doc):
        doc["usage"]["total_tokens"] += 1
        return doc


class FinishStopAtLength(_ChatBatch):
    name = "finish-stop-at-length"
    routes = (CHAT, COMPLETIONS)

    def rewrite(self, doc):
        if doc["choices"][0].get("finish_reason") == "length":
            doc["choices"][0]["finish_reason"] = "stop"
        return doc

    def stream(self, req, events):
        for event in events:
            c = choice(event.chunk)
            if c is not None and c.get("finish_reason") == "length":
                chunk = event.chunk
                chunk["choices"][0]["finish_reason"] = "stop"
                event = Event.of(chunk)
            yield event


class StreamEndToken(Fault):
    name = "stream-end-token"

    def stream(self, req, events):
        for event in events:
            c = choice(event.chunk)
            if req.posts_to(CHAT) and c is not None and c.get("finish_reason") is not None:
                leak = with_delta_text(event.chunk, end_token(self.model))
                leak["choices"][0]["finish_reason"] = None
                yield Event.of(leak)
            yield event


class StreamNoDone(Fault):
    name = "stream-no-done"

    def stream(self, req, events):
        for event in events:
            if event.payload != DONE:
                yield event


class StreamJsonContentType(Fault):
    name = "stream-json-content-type"

    def stream_head(self, req, head):
        return head.set_header("Content-Type", "application/json")


class SseMerged(Fault):
    """The first two content events go out with no blank line between them."""

    name = "sse-merged"

    def stream(self, req, events):
        held = None
        merged = False
        for event in events:
            if not merged and req.posts_to(CHAT) and delta_text(event.chunk):
                if held is None:
                    held = event
                    continue
                yield held.raw + event.wire()  # one event's lines right after the other's
                merged = True
                continue
            if held is not None and not merged:
                yield held
                held = None
            yield event


class StreamIdChanges(_Chunks):
    name = "stream-id-changes"

    def rewrite(self, n, chunk):
        if n >= 2:
            chunk["id"] = str(chunk.get("id", "")) + "-b"
        return chunk


class StreamNoRole(_Chunks):
    name = "stream-no-role"

    def rewrite(self, n, chunk):
        c = choice(chunk)
        if n == 0 and c is not None and isinstance(c.get("delta"), dict):
            c["delta"].pop("role", None)
        return chunk


class ChunkObjectName(_Chunks):
    name = "chunk-object-name"

    def rewrite(self, n, chunk):
        if chunk.get("object") == "chat.completion.chunk":
            chunk["object"] = "chat.completion"
        return chunk


class StreamFinishNeverSet(_Chunks):
    name = "stream-finish-never-set"
    routes = (CHAT, COMPLETIONS)

    def rewrite(self, n, chunk):
        c = choice(chunk)
        if c is not None:
            c["finish_reason"] = None
        return chunk


class StreamFinishEmpty(_Chunks):
    name = "stream-finish-empty"
    routes = (CHAT, COMPLETIONS)

    def rewrite(self, n, chunk):
        c = choice(chunk)
        if c is not None and c.get("finish_reason") is None:
            c["finish_reason"] = ""
        return chunk


class UsageEveryChunk(_Chunks):
    """Every chunk carries a (consistent) usage object, asked for or not."""

    name = "usage-every-chunk"
    routes = (CHAT, COMPLETIONS)

    def rewrite(self, n, chunk):
        chunk["usage"] = {"prompt_tokens": 13, "completion_tokens": n, "total_tokens": 13 + n}
        return chunk


class StreamDropLastToken(Fault):
    """The last content chunk before the finish chunk is never sent."""

    name = "stream-drop-last-token"

    def stream(self, req, events):
        held = None
        for event in events:
            if not req.posts_to(CHAT):
                yield event
                continue
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


class StreamReplacementChar(Fault):
    """One character of a content chunk arrives as U+FFFD (what a byte-level decoder does to a
    multibyte character split across tokens)."""

    name = "stream-replacement-char"

    def stream(self, req, events):
        done = False
        for event in events:
            text = delta_text(event.chunk)
            if req.posts_to(CHAT) and not done and text and len(text.strip()) >= 2:
                event = Event.of(with_delta_text(event.chunk, text[:-1] + "\ufffd"))
                done = True
            yield event


def byte_mangled(text: str) -> str:
    """Every multibyte character as one U+FFFD per UTF-8 byte (tokens decoded one by one)."""
    return "".join(c if ord(c) < 128 else "\ufffd" * len(c.encode("utf-8")) for c in text)


class BatchUtf8Fffd(_ChatBatch):
    name = "batch-utf8-fffd"

    def rewrite(self, doc):
        message = doc["choices"][0]["message"]
        message["content"] = byte_mangled(message["content"])
        return doc


def _cut(text: str, stops: list[str], earliest: bool, inclusive: bool) -> tuple[str, bool]:
    """`text` cut at a stop string: the earliest one (or the first listed that occurs)."""
    found = [(text.index(s), s) for s in stops if s in text]
    if not found:
        return text, False
    at, stop = min(found) if earliest else found[0]
    return text[: at + (len(stop) if inclusive else 0)], True


class _StopInProxy(Fault):
    """Base: the real server gets no `stop` in batch mode; the proxy cuts the answer itself, wrongly."""

    earliest = True
    inclusive = False

    def upstream(self, req):
        doc = req.json
        if req.posts_to(CHAT) and not req.streamed and isinstance(doc, dict) and doc.get("stop"):
            stops = doc.pop("stop")
            req.notes["stops"] = [stops] if isinstance(stops, str) else list(stops)
            return req.with_json(doc)
        return req

    def batch(self, req, resp):
        doc = resp.json
        if "stops" in req.notes and resp.status == 200 and isinstance(doc, dict):
            c = doc["choices"][0]
            text, cut = _cut(c["message"]["content"], req.notes["stops"], self.earliest, self.inclusive)
            c["message"]["content"] = text
            if cut:
                c["finish_reason"] = "stop"
            return resp.set_json(doc)
        return resp


class BatchStopNotStripped(_StopInProxy):
    name = "batch-stop-not-stripped"
    inclusive = True


class StopListOrder(_StopInProxy):
    name = "stop-list-order"
    earliest = False


class UnknownModel500(Fault):
    name = "unknown-model-500"

    def batch(self, req, resp):
        if resp.status == 404:
            resp.status = 500
        return resp


class ErrorBodyNotJson(Fault):
    name = "error-body-not-json"

    def batch(self, req, resp):
        if resp.status >= 400:
            resp.body = b"Bad Request\n"
            resp.set_header("Content-Type", "text/plain; charset=utf-8")
        return resp


class MalformedJson200(Fault):
    name = "malformed-json-200"

    def before(self, req):
        if req.posts_to(CHAT) and req.json is None:
            return json_response(200, {
                "id": "chatcmpl-proxy", "object": "chat.completion", "created": 0, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
        return None


class StreamHangMidway(Fault):
    """After three events the stream stops; the socket stays open."""

    name = "stream-hang-midway"

    def stream(self, req, events):
        for n, event in enumerate(events):
            if n == 3:
                yield Hang()
                return
            yield event


class NoHeaders(Fault):
    """Chat completions are accepted and never answered (the generation thread died; /health is 200)."""

    name = "no-headers"

    def before(self, req):
        return Hang() if req.posts_to(CHAT) else None


class ConcurrentSwap(Fault):
    """Chat answers are handed out crosswise: a ready answer waits (up to PARTNER_WAIT s) for the
    next ready answer of another client still waiting, and the two are swapped."""

    name = "concurrent-swap"
    PARTNER_WAIT = 1.0

    def __init__(self, model):
        super().__init__(model)
        self.waiting: dict | None = None

    def batch(self, req, resp):
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


class BrokenAfterDisconnect(Fault):
    """Once a streaming client hangs up mid-stream, every later request gets a 500."""

    name = "broken-after-disconnect"

    def __init__(self, model):
        super().__init__(model)
        self.broken = False
        self.streams = threading.Condition()
        self.active = 0

    def before(self, req):
        if req.method == "POST":
            # Like a server that finishes a cancelled generation first: wait for running streams
            # (bounded), so the hang-up is noticed before the next request is judged.
            with self.streams:
                self.streams.wait_for(lambda: self.active == 0, timeout=5)
        if self.broken and req.method == "POST":
            return json_response(500, {"error": {"type": "server_error", "message":
                                                 "generation of a cancelled request is still running"}})
        return None

    def stream(self, req, events):
        with self.streams:
            self.active += 1
        finished = False
        try:
            for event in events:
                yield Pause(0.15)  # paced, so a client that reads two events leaves mid-stream
                yield event
            finished = True
        finally:
            # Closed early means the client left. Mark it here, before a waiting request is woken:
            # the proxy's own client_gone() call comes only after this generator is closed.
            with self.streams:
                self.broken = self.broken or not finished
                self.active -= 1
                self.streams.notify_all()

    def client_gone(self, req):
        self.broken = True


class ModelsMissing(Fault):
    name = "models-missing"

    def batch(self, req, resp):
        doc = resp.json
        if req.method == "GET" and req.route == MODELS and isinstance(doc, dict) and isinstance(doc.get("data"), list):
            doc["data"] = [m for m in doc["data"] if not (isinstance(m, dict) and m.get("id") == self.model)]
            return resp.set_json(doc)
        return resp


class SlowStream(Fault):
    """Each stream event is held back half a second (streaming many times slower than batch)."""

    name = "slow-stream"
    PER_EVENT = 0.5

    def stream(self, req, events):
        for event in events:
            yield Pause(self.PER_EVENT)
            yield event


class SlowDecode(SlowStream):
    """A uniformly slow server (a decode regression): every stream event and every token of a batch
    answer is held back 0.1 s, so batch and stream are equally slow (~10 tokens/s)."""

    name = "slow-decode"
    PER_EVENT = 0.1

    def batch(self, req, resp):
        doc = resp.json
        if req.method == "POST" and resp.status == 200 and isinstance(doc, dict):
            tokens = (doc.get("usage") or {}).get("completion_tokens") or 0
            time.sleep(min(self.PER_EVENT * tokens, 10.0))
        return resp


FAULTS: dict[str, type[Fault]] = {cls.name: cls for cls in (
    Fault, BatchEndToken, CompletionEndToken, BatchRunsOn, ObjectChatCompletions, BatchFinishMissing,
    UsageTotalWrong, FinishStopAtLength, StreamEndToken, StreamNoDone, StreamJsonContentType, SseMerged,
    StreamIdChanges, StreamNoRole, ChunkObjectName, StreamFinishNeverSet, StreamFinishEmpty, UsageEveryChunk,
    StreamDropLastToken, StreamReplacementChar, BatchUtf8Fffd, BatchStopNotStripped, StopListOrder, UnknownModel500,
    ErrorBodyNotJson, MalformedJson200, StreamHangMidway, NoHeaders, ConcurrentSwap, BrokenAfterDisconnect,
    ModelsMissing, SlowStream, SlowDecode)}


# --- the proxy --------------------------------------------------------------------------

def read_events(upstream: http.client.HTTPResponse) -> Iterator[Event]:
    """The upstream SSE body, one event at a time, as soon as each is complete."""
    lines: list[bytes] = []
    while True:
        line = upstream.readline()
        if not line:
            if lines:
                yield Event(b"".join(lines))
            return
        if line in (b"\n", b"\r\n", b"\r"):
            if lines:
                yield Event(b"".join(lines))
                lines = []
        else:
            lines.append(line)


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FaultProxy"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        print(f"fault proxy [{self.server.fault.name}]: {format % args}", file=sys.stderr, flush=True)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _handle(self) -> None:
        self.close_connection = True
        fault = self.server.fault
        length = int(self.headers.get("Content-Length") or 0)
        req = Request(self.command, self.path, list(self.headers.items()),
                      self.rfile.read(length) if length > 0 else b"")
        try:
            early = fault.before(req)
            if isinstance(early, Hang):
                self._hang()
            elif early is not None:
                self._send(early)
            else:
                self._forward(fault, req)
        except (_ClientGone, BrokenPipeError, ConnectionResetError):
            fault.client_gone(req)
        finally:
            fault.done(req)

    def _forward(self, fault: Fault, req: Request) -> None:
        up_req = fault.upstream(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {k: v for k, v in up_req.headers if k.lower() not in SKIPPED_HEADERS}
            conn.request(up_req.method, up_req.path, body=up_req.body or None, headers=headers)
            up = conn.getresponse()
            head = Response(up.status, [(k, v) for k, v in up.getheaders() if k.lower() not in SKIPPED_HEADERS])
            if (up.getheader("Content-Type") or "").startswith("text/event-stream"):
                self._stream(fault, req, fault.stream_head(req, head), read_events(up))
            else:
                head.body = up.read()
                self._send(fault.batch(req, head))
        finally:
            conn.close()  # a client that left mid-stream also ends the upstream generation

    def _head(self, resp: Response, extra: list[tuple[str, str]]) -> None:
        self.send_response(resp.status)
        for k, v in resp.headers + extra + [("Connection", "close")]:
            self.send_header(k, v)
        self.end_headers()

    def _send(self, resp: Response) -> None:
        self._head(resp, [("Content-Length", str(len(resp.body)))])
        self.wfile.write(resp.body)
        self.wfile.flush()

    def _stream(self, fault: Fault, req: Request, head: Response, events: Iterator[Event]) -> None:
        self._head(head, [("Transfer-Encoding", "chunked")])
        self.wfile.flush()
        for item in fault.stream(req, events):
            if isinstance(item, Pause):
                if self._client_left(item.seconds):
                    raise _ClientGone()
            elif isinstance(item, Hang):
                self._hang()
                return
            else:
                data = item.wire() if isinstance(item, Event) else item
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _client_left(self, seconds: float) -> bool:
        """Wait up to `seconds`; True as soon as the client has closed its end."""
        try:
            readable, _, _ = select.select([self.connection], [], [], seconds)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _hang(self) -> None:
        """Say nothing more; return once the client leaves or the proxy stops."""
        while not self.server.stopping.is_set():
            if self._client_left(POLL):
                return
        return


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, upstream_port: int, fault: Fault) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.upstream_port = upstream_port
        self.fault = fault
        self.stopping = threading.Event()
        super().__init__((host, port), _Handler)

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


def make_fault(name: str, model: str) -> Fault:
    try:
        return FAULTS[name](model)
    except KeyError:
        raise SystemExit(f"fault proxy: unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}") from None

