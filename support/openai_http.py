"""Raw HTTP exchanges with an OpenAI-compatible server, each recorded whole for the report.

Nothing here judges an answer (that is `support.api_checks`): a client call never raises on
an HTTP error, a dropped connection or a timeout; it records them in the `Exchange`.
Streams are parsed with sseclient-py over a byte iterator that keeps the raw transcript,
and every stream is bounded by one overall deadline.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import requests
import sseclient
import urllib3

DONE = "[DONE]"
# The endpoints of an OpenAI-compatible server the suite talks to.
HEALTH = "/health"
MODELS = "/v1/models"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
_READ_SIZE = 65536
# A body read can fail with: urllib3 errors (protocol, read timeout), http.client ones (broken
# chunking), socket errors, and ValueError (invalid UTF-8 in an event, read after close).
_BROKEN_STREAM = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException,
                  OSError, ValueError)


@dataclass
class Exchange:
    """One request and everything that came back."""

    method: str
    url: str
    request_json: dict | None = None
    request_body: bytes | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    body_text: str = ""
    json: object | None = None
    events: list[dict | str] = field(default_factory=list)  # data payloads; "[DONE]" and unparsable ones as str
    transcript: str = ""
    error: str | None = None
    seconds: float = 0.0
    started_at: float | None = None  # time.monotonic() when the request was sent
    ttft_seconds: float | None = None
    chunk_texts: list[str] = field(default_factory=list)
    streamed: bool = False
    timed_out: bool = False  # no answer, or no end of the stream, within the client's timeout
    closed_by_client: bool = False  # the client hung up on purpose (disconnect_mid_stream)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def has_transcript(self) -> bool:
        """A stream was asked for and answered 200: the body is an SSE transcript."""
        return self.streamed and self.status == 200

    def describe(self, limit: int = 1500) -> str:
        """The request and the response (or the transcript's tail), for a failure message."""
        lines = [f"request: {self.method} {self.url}"]
        if self.request_json is not None:
            lines.append(f"  json: {_clip(json.dumps(self.request_json), limit)}")
        elif self.request_body is not None:
            lines.append(f"  body: {_clip(repr(self.request_body), limit)}")
        status = "no HTTP status" if self.status is None else f"HTTP {self.status}"
        lines.append(f"response: {status}, content-type {self.content_type or '(none)'!r}, "
                     f"after {self.seconds:.2f} s")
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.has_transcript:
            lines.append(f"  SSE transcript ({len(self.transcript)} chars, {len(self.events)} events)"
                         f"{', tail' if len(self.transcript) > limit else ''}:")
            lines.append(_indent(self.transcript[-limit:] if self.transcript else "(nothing received)"))
        else:
            lines.append("  body:")
            lines.append(_indent(_clip(self.body_text, limit) if self.body_text else "(empty)"))
        return "\n".join(lines)

    def to_attachments(self) -> dict[str, str]:
        """Name -> text, for Allure: request, response head, and body or SSE transcript."""
        if self.request_json is not None:
            request = json.dumps(self.request_json, indent=2, ensure_ascii=False)
        else:
            request = repr(self.request_body) if self.request_body is not None else "(no body)"
        head = [f"{self.method} {self.url}", f"status: {self.status}", f"seconds: {self.seconds:.3f}"]
        if self.ttft_seconds is not None:
            head.append(f"time to first content: {self.ttft_seconds:.3f}")
        if self.error:
            head.append(f"error: {self.error}")
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        out = {"request": request, "response head": "\n".join(head)}
        if self.has_transcript:
            out["SSE transcript"] = self.transcript
        else:
            out["response body"] = self.body_text
        return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more chars)"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines() or [""])


def _chunk_text(event: dict) -> str | None:
    """The chunk's delta text (chat `delta.content`, completions `text`); None without a choice."""
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if "delta" in choice:
        delta = choice["delta"]
        text = delta.get("content") if isinstance(delta, dict) else None
    else:
        text = choice.get("text")
    return text if isinstance(text, str) else ""


def _parse_payload(data: str) -> dict | str:
    if data == DONE:
        return DONE
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    return doc if isinstance(doc, dict) else data


class _RecordingBody:
    """A byte iterator over a streamed response body that keeps every byte it hands out.

    It reads what the socket has (read1), so events are seen as they arrive, and stops at
    the deadline; `close()` closes the connection (sseclient's event-source contract).
    """

    def __init__(self, response: requests.Response, deadline: float) -> None:
        self.response = response
        self.deadline = deadline
        self.received = bytearray()

    def __iter__(self) -> Iterator[bytes]:
        while time.monotonic() < self.deadline:
            chunk = self.response.raw.read1(_READ_SIZE)
            if not chunk:
                return
            self.received += chunk
            yield chunk

    def text(self) -> str:
        return self.received.decode("utf-8", errors="backslashreplace")

    def close(self) -> None:
        self.response.close()


class _Watchdog:
    """Cuts a streamed response's socket when the deadline passes (wakes a blocked read)."""

    def __init__(self, response: requests.Response, seconds: float) -> None:
        self.fired = False
        self._response = response
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self._response.raw.shutdown()  # SHUT_RD: a blocked recv returns at once
        except (ValueError, RuntimeError, OSError, AttributeError):
            self._response.close()

    def cancel(self) -> None:
        self._timer.cancel()


class Client:
    """HTTP client for one server: batch calls bounded by `timeout`, whole streams by `stream_timeout`."""

    def __init__(self, base_url: str, timeout: float, stream_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def get(self, path: str) -> Exchange:
        return self._exchange(Exchange("GET", self.url(path)), {})

    def post_json(self, path: str, payload: dict) -> Exchange:
        return self._exchange(Exchange("POST", self.url(path), request_json=payload), {"json": payload})

    def post_raw(self, path: str, body: bytes, content_type: str = "application/json") -> Exchange:
        ex = Exchange("POST", self.url(path), request_body=body)
        return self._exchange(ex, {"data": body, "headers": {"Content-Type": content_type}})

    def post_multipart(self, path: str, fields: dict, filename: str, data: bytes,
                       content_type: str = "audio/wav", note: dict | None = None) -> Exchange:
        """A form upload (multipart/form-data: `fields` and one file under the name "file"), as
        OpenAI's audio endpoints take it. The evidence shows the fields and a summary of the file
        (its name, type, size and whatever `note` adds), never its bytes."""
        summary = {"filename": filename, "content_type": content_type, "bytes": len(data), **(note or {})}
        ex = Exchange("POST", self.url(path), request_json={**fields, "file": summary})
        form = {k: (None, str(v)) for k, v in fields.items()}
        return self._exchange(ex, {"files": {**form, "file": (filename, data, content_type)}})

    def stream(self, path: str, payload: dict) -> Exchange:
        """POST with `"stream": true` and read the whole SSE stream within `stream_timeout`."""
        return read_stream(self.url(path), {**payload, "stream": True}, self.stream_timeout)

    def _exchange(self, ex: Exchange, kwargs: dict[str, Any]) -> Exchange:
        started = ex.started_at = time.monotonic()
        try:
            response = requests.request(ex.method, ex.url, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            ex.error = _network_error(e, self.timeout)
            ex.timed_out = isinstance(e, requests.Timeout)
        else:
            _record_head(ex, response)
            ex.body_text = response.content.decode("utf-8", errors="backslashreplace")
            ex.json = _json_or_none(ex.body_text)
        ex.seconds = time.monotonic() - started
        return ex


def read_stream(url: str, payload: dict, stream_timeout: float, stop_after: int | None = None) -> Exchange:
    """POST `payload` and record the stream; with `stop_after`, close the socket after that many events."""
    ex = Exchange("POST", url, request_json=payload, streamed=True)
    started = ex.started_at = time.monotonic()
    deadline = started + stream_timeout
    try:
        response = requests.post(url, json=payload, stream=True, timeout=(min(10.0, stream_timeout), stream_timeout))
    except requests.RequestException as e:
        ex.error = _network_error(e, stream_timeout)
        ex.timed_out = isinstance(e, requests.Timeout)
        ex.seconds = time.monotonic() - started
        return ex
    _record_head(ex, response)
    body = _RecordingBody(response, deadline)
    watchdog = _Watchdog(response, deadline - time.monotonic())
    try:
        if response.status_code == 200:
            _read_events(ex, body, started, stop_after)
        else:
            for _ in body:
                pass
    except _BROKEN_STREAM as e:
        ex.error = f"stream broke off: {type(e).__name__}: {e}"
    finally:
        watchdog.cancel()
        response.close()
    if watchdog.fired or time.monotonic() >= deadline:
        ex.timed_out = True
        ex.error = f"stream not finished within the {stream_timeout:g} s deadline (connection closed by the client)"
    ex.transcript = ex.body_text = body.text()
    if response.status_code != 200:
        ex.json = _json_or_none(ex.body_text)
    ex.seconds = time.monotonic() - started
    return ex


def _read_events(ex: Exchange, body: _RecordingBody, started: float, stop_after: int | None) -> None:
    for event in sseclient.SSEClient(body).events():
        parsed = _parse_payload(event.data)
        ex.events.append(parsed)
        if isinstance(parsed, dict):
            text = _chunk_text(parsed)
            if text is not None:
                ex.chunk_texts.append(text)
                if text and ex.ttft_seconds is None:
                    ex.ttft_seconds = time.monotonic() - started
        if stop_after is not None and len(ex.events) >= stop_after:
            ex.error = f"client closed the connection on purpose after {len(ex.events)} events"
            ex.closed_by_client = True
            return


def disconnect_mid_stream(base_url: str, path: str, payload: dict, after_chunks: int = 2,
                          timeout: float = 60.0) -> Exchange:
    """Open a stream, read `after_chunks` events, then close the socket; returns what was read."""
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    return read_stream(url, {**payload, "stream": True}, timeout, stop_after=after_chunks)


def _record_head(ex: Exchange, response: requests.Response) -> None:
    ex.status = response.status_code
    ex.headers = {k.lower(): v for k, v in response.headers.items()}


def _json_or_none(text: str) -> object | None:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _network_error(e: requests.RequestException, seconds: float) -> str:
    if isinstance(e, requests.Timeout):
        return f"no answer within {seconds:g} s ({type(e).__name__}: {e})"
    if isinstance(e, requests.ConnectionError):
        return f"connection failed or dropped ({type(e).__name__}: {e})"
    return f"request failed ({type(e).__name__}: {e})"


# --- the answer -------------------------------------------------------------------------

def joined_content(ex: Exchange) -> str:
    """A stream's answer: every chunk's `delta.content` (chat) or `text` (completions), joined."""
    return "".join(ex.chunk_texts)


def batch_content(ex: Exchange) -> str:
    """A batch answer: `choices[0].message.content` (chat) or `choices[0].text` (completions)."""
    try:
        choice = ex.json["choices"][0]  # type: ignore[index]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
    except (TypeError, KeyError, IndexError):
        text = None
    if not isinstance(text, str):
        raise AssertionError("no answer text in the response (expected choices[0].message.content "
                             "or choices[0].text)\n" + ex.describe())
    return text


# --- requests ---------------------------------------------------------------------------

def chat_payload(model: str, prompt: str, **sampling: Any) -> dict:
    """One user message; temperature 0 unless given; other fields (stop, max_tokens...) passed through."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, **sampling}


def completion_payload(model: str, prompt: str, **sampling: Any) -> dict:
    """A raw prompt for /v1/completions; temperature 0 unless given; other fields passed through."""
    return {"model": model, "prompt": prompt, "temperature": 0, **sampling}
