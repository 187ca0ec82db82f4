"""support.openai_http against a canned stdlib HTTP server (no model, no SUT).

`CannedServer` and the canned answers (shaped like mlx-knife 2.0.8's) are also used by
tests/test_api_checks.py.
"""

from __future__ import annotations

import http.server
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import pytest

from support.openai_http import (DONE, Client, batch_content, chat_payload, completion_payload,
                                 disconnect_mid_stream, joined_content)

MODEL = "org/tiny-model"
HOLD_MAX = 10.0  # a hanging canned answer never holds its thread longer than this


def _finish_reasons(ex) -> list:
    """Each content chunk's `choices[0].finish_reason`, in order."""
    return [e["choices"][0].get("finish_reason") for e in ex.events
            if isinstance(e, dict) and e.get("choices") and {"delta", "text"} & e["choices"][0].keys()]


@dataclass
class Canned:
    """One canned answer: the head, then `parts` written one by one (one HTTP chunk each when chunked).

    hang_after: after that many parts, send nothing more until the client leaves (or HOLD_MAX);
    drop_after: after that many parts, close the socket (0 = before any response line);
    pause: seconds between parts.
    """

    status: int = 200
    content_type: str = "application/json"
    parts: list[bytes] = field(default_factory=list)
    chunked: bool = True
    hang_after: int | None = None
    drop_after: int | None = None
    pause: float = 0.0


class CannedServer:
    """A threaded HTTP/1.1 server answering each path with its `Canned`; records what it saw."""

    def __init__(self) -> None:
        self.routes: dict[str, Canned] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path, headers, body
        self.peer_closed_at: dict[str, float] = {}
        self.release = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> CannedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: CannedServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.requests.append((self.command, self.path, dict(self.headers), body))
            canned = server.routes.get(self.path) or Canned(404, parts=[b'{"error":{"message":"no route"}}'])
            self.close_connection = True
            if canned.drop_after == 0:
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            if canned.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            try:
                self._send_parts(canned)
            except (BrokenPipeError, ConnectionResetError):  # the client left: some tests do that on purpose
                server.peer_closed_at[self.path] = time.monotonic()

        def _send_parts(self, canned: Canned) -> None:
            for i, part in enumerate(canned.parts):
                if i == canned.hang_after:
                    return self._hold()
                if i == canned.drop_after:
                    self.wfile.flush()
                    return self.connection.shutdown(socket.SHUT_RDWR)
                if i and canned.pause:
                    time.sleep(canned.pause)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if canned.chunked else part)
                self.wfile.flush()
            if canned.hang_after is not None and canned.hang_after >= len(canned.parts):
                return self._hold()
            if canned.chunked:
                self.wfile.write(b"0\r\n\r\n")

        def _hold(self) -> None:
            """Send nothing more; note when the client closes its end."""
            deadline = time.monotonic() + HOLD_MAX
            while not server.release.is_set() and time.monotonic() < deadline:
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable and not self.connection.recv(1):
                    server.peer_closed_at[self.path] = time.monotonic()
                    return

    return Handler


# --- canned answers, shaped like mlx-knife 2.0.8's ---------------------------------------

CHAT_ID = "chatcmpl-8b33b57f"
ANSWER_TOKENS = ["The", " capital", " of", " France", " is", " Paris", "."]


def sse(*payloads: dict | str) -> list[bytes]:
    """One `data:` event per payload, as mlx-knife frames them."""
    return [b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n" for p in payloads]


def chat_chunk(delta: dict, finish: str | None = None, cid: str = CHAT_ID, **extra: object) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": 1795507604, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def chat_stream_payloads() -> list[dict | str]:
    return ([chat_chunk({"role": "assistant", "content": ""})]
            + [chat_chunk({"content": t}) for t in ANSWER_TOKENS]
            + [chat_chunk({}, "stop"), DONE])


def text_chunk(text: str, finish: str | None = None) -> dict:
    return {"id": "cmpl-5989ee84", "object": "text_completion", "created": 1795507608, "model": MODEL,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}


def text_stream_payloads() -> list[dict | str]:
    return [text_chunk("")] + [text_chunk(t) for t in ANSWER_TOKENS] + [text_chunk("", "stop"), DONE]


def chat_batch(**override: object) -> dict:
    doc = {"id": CHAT_ID, "object": "chat.completion", "created": 1795507604, "model": MODEL,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "The capital of France is Paris."},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 15, "completion_tokens": 8, "total_tokens": 23}}
    return {**doc, **override}


def text_batch(**override: object) -> dict:
    doc = {"id": "cmpl-fa41d1b3", "object": "text_completion", "created": 1795507608, "model": MODEL,
           "choices": [{"index": 0, "text": " Paris.", "logprobs": None, "finish_reason": "length"}],
           "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    return {**doc, **override}


def json_answer(doc: object, status: int = 200) -> Canned:
    return Canned(status, "application/json", [json.dumps(doc).encode()])


def event_stream(payloads: list[dict | str], **kw: object) -> Canned:
    return Canned(200, "text/event-stream; charset=utf-8", sse(*payloads), **kw)  # type: ignore[arg-type]


ERROR_404 = {"status": "error", "error": {"type": "model_not_found", "message": "Model not found in cache: nope/x",
                                          "retryable": False}, "request_id": "6d4bff47"}


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[CannedServer]:
    with CannedServer() as s:
        s.routes.update({
            "/health": json_answer({"status": "ok", "service": "mlx-knife-server-2.0"}),
            "/v1/chat/completions": json_answer(chat_batch()),
            "/v1/completions": json_answer(text_batch()),
            "/error/404": json_answer(ERROR_404, 404),
            "/error/500": Canned(500, "text/plain", [b"Internal Server Error"]),
            "/drop": Canned(drop_after=0),
            "/chat/stream": event_stream(chat_stream_payloads()),
            "/text/stream": event_stream(text_stream_payloads()),
            "/stream/404": json_answer(ERROR_404, 404),
            "/stream/hang": event_stream(chat_stream_payloads(), hang_after=2),
            "/stream/long": event_stream(chat_stream_payloads(), hang_after=len(chat_stream_payloads())),
            "/stream/trickle": event_stream(chat_stream_payloads(), pause=0.12),
            "/stream/drop": event_stream(chat_stream_payloads(), drop_after=3),
            "/stream/close-delimited": event_stream(chat_stream_payloads(), chunked=False, pause=0.05),
            "/stream/bad-utf8": Canned(200, "text/event-stream", [b"data: {\"x\": \"\xff\xfe\"}\n\n"]),
        })
        yield s


@pytest.fixture
def client(server: CannedServer) -> Client:
    return Client(server.url, timeout=5.0, stream_timeout=5.0)


def last_request(server: CannedServer, path: str) -> tuple[str, str, dict[str, str], bytes]:
    return [r for r in server.requests if r[1] == path][-1]


# --- batch --------------------------------------------------------------------------------

def test_get_records_status_headers_and_json(client: Client) -> None:
    ex = client.get("/health")
    assert (ex.method, ex.status, ex.error) == ("GET", 200, None)
    assert ex.json == {"status": "ok", "service": "mlx-knife-server-2.0"}
    assert ex.content_type == "application/json" and ex.headers["content-type"] == "application/json"
    assert json.loads(ex.body_text) == ex.json and ex.seconds > 0 and not ex.streamed


def test_post_json_sends_the_payload_and_reads_the_answer(client: Client, server: CannedServer) -> None:
    payload = chat_payload(MODEL, "What is the capital of France?", max_tokens=9)
    ex = client.post_json("/v1/chat/completions", payload)
    assert json.loads(last_request(server, "/v1/chat/completions")[3]) == payload == ex.request_json
    assert ex.status == 200 and batch_content(ex) == "The capital of France is Paris."


def test_post_raw_sends_exact_bytes_and_content_type(client: Client, server: CannedServer) -> None:
    ex = client.post_raw("/error/404", b'{"model": ', content_type="text/plain")
    _, _, headers, body = last_request(server, "/error/404")
    assert body == b'{"model": ' and headers["Content-Type"] == "text/plain"
    assert ex.request_body == b'{"model": ' and ex.request_json is None


def test_post_multipart_uploads_the_fields_and_the_file_and_records_a_summary(client: Client,
                                                                            server: CannedServer) -> None:
    from email.parser import BytesParser
    from email.policy import HTTP

    ex = client.post_multipart("/v1/chat/completions", {"model": MODEL, "language": "de"}, "clip.wav", b"RIFF....",
                               note={"audio_seconds": 1.5})
    _, _, headers, body = last_request(server, "/v1/chat/completions")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert parts["model"].get_content() == MODEL and parts["language"].get_content() == "de"
    assert parts["file"].get_filename() == "clip.wav" and parts["file"].get_content() == b"RIFF...."
    assert parts["file"].get_content_type() == "audio/wav"
    assert ex.request_json == {"model": MODEL, "language": "de", "file": {
        "filename": "clip.wav", "content_type": "audio/wav", "bytes": 8, "audio_seconds": 1.5}}


def test_http_errors_are_recorded_not_raised(client: Client) -> None:
    ex = client.post_json("/error/500", {})
    assert (ex.status, ex.json, ex.body_text, ex.error) == (500, None, "Internal Server Error", None)
    assert client.post_json("/error/404", {}).json == ERROR_404


def test_a_dropped_connection_is_recorded(client: Client) -> None:
    ex = client.post_json("/drop", {"model": MODEL})
    assert ex.status is None and ex.error and "dropped" in ex.error


def test_a_refused_connection_is_recorded() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = Client(f"http://127.0.0.1:{port}", 2.0, 2.0).get("/health")
    assert ex.status is None and "connection failed" in (ex.error or "")
    ex = Client(f"http://127.0.0.1:{port}", 2.0, 2.0).stream("/x", {})
    assert ex.status is None and ex.error and ex.streamed


def test_batch_content_of_completions_and_its_failure_message(client: Client) -> None:
    assert batch_content(client.post_json("/v1/completions", {})) == " Paris."
    with pytest.raises(AssertionError, match=r"no answer text.*\n.*request: POST .*/error/404"):
        batch_content(client.post_json("/error/404", {}))


# --- streams ------------------------------------------------------------------------------

def test_stream_events_chunk_texts_and_helpers(client: Client, server: CannedServer) -> None:
    ex = client.stream("/chat/stream", chat_payload(MODEL, "Q"))
    assert json.loads(last_request(server, "/chat/stream")[3])["stream"] is True
    assert ex.status == 200 and ex.error is None and ex.streamed
    assert ex.events == chat_stream_payloads() and ex.events[-1] == DONE
    assert ex.chunk_texts == ["", *ANSWER_TOKENS, ""]
    assert joined_content(ex) == "The capital of France is Paris."
    assert _finish_reasons(ex) == [None] * 8 + ["stop"]
    assert ex.ttft_seconds is not None and 0 < ex.ttft_seconds <= ex.seconds


def test_completion_stream_texts(client: Client) -> None:
    ex = client.stream("/text/stream", completion_payload(MODEL, "Q"))
    assert joined_content(ex) == "The capital of France is Paris." and _finish_reasons(ex)[-1] == "stop"


def test_transcript_is_byte_exact_across_odd_chunk_boundaries(server: CannedServer, client: Client) -> None:
    raw = b"".join(sse(chat_chunk({"role": "assistant", "content": ""}),
                       chat_chunk({"content": "K\u00f6ln \u2014 \U0001f600"}), chat_chunk({}, "stop"), DONE))
    raw = raw.replace(b"\\u00f6", "\u00f6".encode()).replace(b"\\u2014", "\u2014".encode())
    raw = raw.replace(b"\\ud83d\\ude00", "\U0001f600".encode()) + b": a comment line\r\n\r\n"
    cuts = sorted([5, raw.index("\u00f6".encode()) + 1, raw.index(b"\n\n") + 1, raw.index("\U0001f600".encode()) + 2])
    parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    server.routes["/stream/odd"] = Canned(200, "text/event-stream", parts, pause=0.02)
    ex = client.stream("/stream/odd", {})
    assert ex.transcript.encode("utf-8") == raw
    assert joined_content(ex) == "K\u00f6ln \u2014 \U0001f600" and ex.events[-1] == DONE and ex.error is None


def test_events_are_read_as_they_arrive(client: Client) -> None:
    ex = client.stream("/stream/trickle", {})
    assert ex.error is None and ex.ttft_seconds is not None
    assert ex.ttft_seconds < 0.5 < 0.8 < ex.seconds, (ex.ttft_seconds, ex.seconds)


def test_a_close_delimited_stream_is_read_whole(client: Client) -> None:
    ex = client.stream("/stream/close-delimited", {})
    assert ex.error is None and ex.events == chat_stream_payloads()
    assert ex.transcript == b"".join(sse(*chat_stream_payloads())).decode()


def test_a_hanging_stream_is_cut_at_the_deadline_and_the_socket_closed(server: CannedServer) -> None:
    client = Client(server.url, timeout=5.0, stream_timeout=1.0)
    started = time.monotonic()
    ex = client.stream("/stream/hang", {})
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.5, elapsed
    assert ex.error and "deadline" in ex.error and ex.status == 200
    assert ex.events == chat_stream_payloads()[:2] and ex.transcript == b"".join(sse(*ex.events)).decode()
    _wait_for(lambda: "/stream/hang" in server.peer_closed_at, 2.0)


def test_a_stream_that_hangs_before_the_headers_is_cut() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()
        ex = Client(f"http://127.0.0.1:{listener.getsockname()[1]}", 1.0, 1.0).stream("/x", {})
    assert time.monotonic() - started < 1.0 + 1.5 and ex.status is None and "no answer within 1 s" in ex.error


def test_a_stream_dropped_midway_is_recorded(client: Client) -> None:
    ex = client.stream("/stream/drop", {})
    assert ex.error and "broke off" in ex.error and len(ex.events) == 3


def test_an_error_answer_to_a_stream_request(client: Client) -> None:
    ex = client.stream("/stream/404", {"model": "nope/x"})
    assert (ex.status, ex.json, ex.events, ex.error) == (404, ERROR_404, [], None)
    assert json.loads(ex.transcript) == ERROR_404


def test_invalid_utf8_in_a_stream_is_recorded_not_raised(client: Client) -> None:
    ex = client.stream("/stream/bad-utf8", {})
    assert ex.error and "UnicodeDecodeError" in ex.error and "\\xff\\xfe" in ex.transcript


def test_disconnect_mid_stream_reads_n_events_then_closes(server: CannedServer) -> None:
    ex = disconnect_mid_stream(server.url, "/stream/long", chat_payload(MODEL, "Q"), after_chunks=2, timeout=5.0)
    assert ex.events == chat_stream_payloads()[:2] and "on purpose after 2" in (ex.error or "")
    assert json.loads(last_request(server, "/stream/long")[3])["stream"] is True
    _wait_for(lambda: "/stream/long" in server.peer_closed_at, 2.0)


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the server never saw the client close its end"
        time.sleep(0.02)


# --- the record ---------------------------------------------------------------------------

def test_describe_names_request_response_and_transcript_tail(client: Client) -> None:
    ex = client.stream("/chat/stream", chat_payload(MODEL, "What is the capital of France?"))
    text = ex.describe(limit=200)
    assert f"request: POST {client.url('/chat/stream')}" in text and '"stream": true' in text
    assert "HTTP 200" in text and "text/event-stream; charset=utf-8" in text
    assert "data: [DONE]" in text and "tail" in text and len(text) < 1000
    batch = client.post_raw("/error/404", b"{oops").describe()
    assert "body: b'{oops'" in batch and "HTTP 404" in batch and "model_not_found" in batch
    assert "error: connection failed or dropped" in client.post_json("/drop", {}).describe()


def test_to_attachments(client: Client) -> None:
    streamed = client.stream("/chat/stream", {"model": MODEL}).to_attachments()
    assert set(streamed) == {"request", "response head", "SSE transcript"}
    assert streamed["SSE transcript"].endswith("data: [DONE]\n\n") and "status: 200" in streamed["response head"]
    batch = client.get("/health").to_attachments()
    assert set(batch) == {"request", "response head", "response body"} and "ok" in batch["response body"]


def test_payload_builders() -> None:
    assert chat_payload("m", "hi") == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                       "temperature": 0}
    assert chat_payload("m", "hi", temperature=0.7, stop=["x"])["temperature"] == 0.7
    assert completion_payload("m", "hi", max_tokens=3, stream_options={"include_usage": True}) == {
        "model": "m", "prompt": "hi", "temperature": 0, "max_tokens": 3, "stream_options": {"include_usage": True}}
