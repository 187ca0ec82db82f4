"""The fault proxy's transport: an HTTP server that forwards to the real `mlxk serve` and lets
`Hooks` rewrite each exchange (the faults themselves are in catalogue.py).

Threaded (stdlib `http.server`); the upstream is read with `http.client`. Server-sent event
streams are forwarded event by event as they arrive (chunked transfer encoding, one chunk per
event, flushed), so a fault that stops mid-stream really leaves the client on an open socket.
Every response says `Connection: close`: one request per connection keeps the proxy simple.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

UPSTREAM_TIMEOUT = 600.0  # seconds; the suite's own timeouts are far shorter
POLL = 0.2  # seconds between checks while a fault keeps a client waiting
# Not forwarded: connection-level headers, lengths the proxy recomputes, and the ones it sets itself.
SKIPPED_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                   "transfer-encoding", "upgrade", "content-length", "host", "date", "server"}


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
        """The data as a JSON object (a fresh copy at each call), or None."""
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


class Hooks:
    """What the proxy asks at each step of an exchange. This base is the transparent proxy (no fault)."""

    process = "serve"  # the command the proxy fronts: "serve" or "embed-serve" (the shim sets it)

    def __init__(self, model: str) -> None:
        self.model = model

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
        return events

    def client_gone(self, req: Request) -> None:
        """The client hung up before the response was complete."""


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
        print(f"fault proxy [{self.server.name}]: {format % args}", file=sys.stderr, flush=True)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _handle(self) -> None:
        self.close_connection = True
        hooks = self.server.hooks
        length = int(self.headers.get("Content-Length") or 0)
        req = Request(self.command, self.path, list(self.headers.items()),
                      self.rfile.read(length) if length > 0 else b"")
        try:
            early = hooks.before(req)
            if isinstance(early, Hang):
                self._hang()
            elif early is not None:
                self._send(early)
            else:
                self._forward(hooks, req)
        except (_ClientGone, BrokenPipeError, ConnectionResetError):
            hooks.client_gone(req)

    def _forward(self, hooks: Hooks, req: Request) -> None:
        up_req = hooks.upstream(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {k: v for k, v in up_req.headers if k.lower() not in SKIPPED_HEADERS}
            conn.request(up_req.method, up_req.path, body=up_req.body or None, headers=headers)
            up = conn.getresponse()
            head = Response(up.status, [(k, v) for k, v in up.getheaders() if k.lower() not in SKIPPED_HEADERS])
            if (up.getheader("Content-Type") or "").startswith("text/event-stream"):
                self._stream(hooks, req, hooks.stream_head(req, head), read_events(up))
            else:
                head.body = up.read()
                self._send(hooks.batch(req, head))
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

    def _stream(self, hooks: Hooks, req: Request, head: Response, events: Iterator[Event]) -> None:
        self._head(head, [("Transfer-Encoding", "chunked")])
        self.wfile.flush()
        for item in hooks.stream(req, events):
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


class FaultProxy(ThreadingHTTPServer):
    """Serves host:port, forwards to the real server on 127.0.0.1:upstream_port through `hooks`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, upstream_port: int, hooks: Hooks, name: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.upstream_port = upstream_port
        self.hooks = hooks
        self.name = name  # the fault's, for the log
        self.stopping = threading.Event()
        super().__init__((host, port), _Handler)

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
