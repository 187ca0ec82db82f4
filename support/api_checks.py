"""The OpenAI-compatible HTTP contract as checks over recorded exchanges.

Every check raises AssertionError naming the defect in words, with the exchange's
evidence (request, response, SSE transcript) from `Exchange.describe()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .expect import same_text, that
from .openai_http import DONE, Exchange
from .schemas import (CHAT_CHUNK, CHAT_COMPLETION, FINISH_REASONS, HEALTH, MODELS, TEXT_CHUNK, USAGE,
                      TEXT_COMPLETION, validate)

# --- plumbing ---------------------------------------------------------------------------

def _answered(ex: Exchange, what: str, status: int = 200) -> None:
    """The exchange completed with `status` (not dropped, not timed out)."""
    that(ex.error is None, f"{what}: the exchange failed: {ex.error}", ex.describe())
    that(ex.status == status, f"{what}: expected HTTP {status}, got {ex.status}", ex.describe())


def _json_body(ex: Exchange, what: str) -> object:
    that(ex.json is not None, f"{what}: the body is not JSON", ex.describe())
    return ex.json


def _check_usage(usage: object, what: str, evidence: str) -> None:
    validate(usage, USAGE, f"{what}: usage", evidence)
    assert isinstance(usage, dict)
    p, c, t = usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
    that(t == p + c, f"{what}: usage.total_tokens is {t}, expected prompt_tokens + completion_tokens "
                     f"= {p} + {c} = {p + c}", evidence)


# --- endpoints --------------------------------------------------------------------------

def check_health(ex: Exchange) -> None:
    """GET /health: 200 and a JSON object with a `status` field."""
    _answered(ex, "GET /health")
    validate(_json_body(ex, "GET /health"), HEALTH, "GET /health", ex.describe())


def check_models(ex: Exchange, model_id: str) -> None:
    """GET /v1/models: a list of model objects that includes the served model."""
    _answered(ex, "GET /v1/models")
    doc = _json_body(ex, "GET /v1/models")
    validate(doc, MODELS, "GET /v1/models", ex.describe())
    ids = [m["id"] for m in doc["data"]]  # type: ignore[index]
    that(model_id in ids, f"GET /v1/models: served model {model_id!r} is not listed; ids: {ids}", ex.describe())


def _check_batch(ex: Exchange, what: str, schema: dict) -> None:
    _answered(ex, what)
    doc = _json_body(ex, what)
    that(isinstance(doc, dict) and isinstance(doc.get("choices"), list) and len(doc["choices"]) == 1,
         f"{what}: expected exactly one choice, got "
         f"{len(doc['choices']) if isinstance(doc, dict) and isinstance(doc.get('choices'), list) else 'none'}",
         ex.describe())
    validate(doc, schema, what, ex.describe())
    _check_usage(doc["usage"], what, ex.describe())  # type: ignore[index]


def check_chat_batch(ex: Exchange) -> None:
    """POST /v1/chat/completions (batch): a complete `chat.completion` with consistent usage."""
    _check_batch(ex, "chat completion", CHAT_COMPLETION)


def check_completion_batch(ex: Exchange) -> None:
    """POST /v1/completions (batch): a complete `text_completion` with consistent usage."""
    _check_batch(ex, "text completion", TEXT_COMPLETION)


# --- streams ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _StreamKind:
    what: str
    schema: dict
    role_first: bool


_CHAT_STREAM = _StreamKind("chat stream", CHAT_CHUNK, role_first=True)
_TEXT_STREAM = _StreamKind("completion stream", TEXT_CHUNK, role_first=False)


def _unparsable(index: int, data: str) -> str:
    """Why an event's data payload is not one JSON object, in words."""
    where = f"event #{index}"
    if "\n" in data:
        return (f"{where} holds several `data:` lines with no blank line between them (events merged: "
                f"SSE framing broken): {data[:200]!r}")
    try:
        _, end = json.JSONDecoder().raw_decode(data)
    except ValueError:
        return f"{where} is not JSON: {data[:200]!r}"
    if data[end:].strip():
        return f"{where} holds more than one JSON document in one `data:` line (events merged): {data[:200]!r}"
    return f"{where} is JSON but not an object: {data[:200]!r}"


def _check_done(ex: Exchange, what: str) -> None:
    done_at = [i for i, e in enumerate(ex.events) if e == DONE]
    that(bool(done_at), f"{what}: the stream ended without `data: [DONE]` ({len(ex.events)} events)",
         ex.describe())
    that(len(done_at) == 1, f"{what}: `data: [DONE]` sent {len(done_at)} times (events {done_at}), "
                            f"expected exactly once", ex.describe())
    that(done_at[0] == len(ex.events) - 1, f"{what}: `data: [DONE]` is event #{done_at[0]} but "
                                           f"{len(ex.events) - 1 - done_at[0]} event(s) follow it", ex.describe())


def _check_finish(chunks: list[dict], what: str, evidence: str) -> None:
    """finish_reason: present and null on every chunk, then a known value exactly once, in the last
    chunk with a choice; only usage chunks (empty `choices`) may follow."""
    finished_at: int | None = None
    for i, chunk in enumerate(chunks):
        if not chunk["choices"]:
            that(finished_at is not None, f"{what}: chunk #{i} has empty `choices` before the chunk with "
                                          f"the finish_reason (only a final usage chunk may)", evidence)
            continue
        choice = chunk["choices"][0]
        that("finish_reason" in choice, f"{what}: chunk #{i} has no `finish_reason` key "
                                        f"(expected it present, null until the last chunk)", evidence)
        reason = choice["finish_reason"]
        that(finished_at is None, f"{what}: chunk #{i} comes after the finish_reason was already sent "
                                  f"in chunk #{finished_at} (finish_reason {reason!r} here)", evidence)
        if reason is None:
            continue
        shown = "an empty string" if reason == "" else repr(reason)
        that(reason in FINISH_REASONS, f"{what}: chunk #{i} has finish_reason {shown}; expected JSON "
                                       f"null until the last chunk, then one of {FINISH_REASONS}", evidence)
        finished_at = i
    that(finished_at is not None, f"{what}: no chunk carries a finish_reason (all null)", evidence)


def _check_stream(ex: Exchange, kind: _StreamKind) -> None:
    what, evidence = kind.what, ex.describe()
    _answered(ex, what)
    that(ex.content_type.startswith("text/event-stream"),
         f"{what}: Content-Type is {ex.content_type!r}, expected text/event-stream", evidence)
    for i, event in enumerate(ex.events):
        if isinstance(event, str) and event != DONE:
            raise AssertionError(f"{what}: {_unparsable(i, event)}\n{evidence}")
    _check_done(ex, what)
    that(ex.transcript.endswith(("\n\n", "\r\n\r\n", "\r\r")), f"{what}: the last event is not ended by a "
         f"blank line (SSE framing; a strict client drops it): {ex.transcript[-40:]!r}", evidence)
    chunks = [e for e in ex.events if isinstance(e, dict)]
    that(bool(chunks), f"{what}: no chunk before `[DONE]`", evidence)
    for i, chunk in enumerate(chunks):
        validate(chunk, kind.schema, f"{what}: chunk #{i}", evidence)
    ids = list(dict.fromkeys(c["id"] for c in chunks))
    that(len(ids) == 1, f"{what}: chunks carry {len(ids)} different ids {ids[:5]}, expected one id "
                        f"for the whole stream", evidence)
    if kind.role_first:
        first = chunks[0]["choices"][0]["delta"] if chunks[0]["choices"] else {}
        that(first.get("role") == "assistant", f"{what}: the first chunk's delta has role "
                                               f"{first.get('role')!r}, expected 'assistant'", evidence)
    _check_finish(chunks, what, evidence)
    asked = bool(((ex.request_json or {}).get("stream_options") or {}).get("include_usage"))
    for i, chunk in enumerate(chunks):
        usage = chunk.get("usage")
        if usage is None:
            continue
        that(asked and not chunk["choices"], f"{what}: chunk #{i} carries usage {usage}; expected usage "
             "only in one final chunk with empty choices, and only when stream_options.include_usage "
             "is asked for" + ("" if asked else " (it was not)"), evidence)
        _check_usage(usage, f"{what}: usage chunk", evidence)


def check_chat_stream(ex: Exchange) -> None:
    """POST /v1/chat/completions with stream: well-framed `chat.completion.chunk` events ending in [DONE]."""
    _check_stream(ex, _CHAT_STREAM)


def check_completion_stream(ex: Exchange) -> None:
    """POST /v1/completions with stream: well-framed `text_completion` events ending in [DONE]."""
    _check_stream(ex, _TEXT_STREAM)


def check_well_formed(ex: Exchange) -> None:
    """The check of the exchange's own kind: chat or text completion, batch or stream."""
    chat = "messages" in (ex.request_json or {})
    if ex.streamed:
        (check_chat_stream if chat else check_completion_stream)(ex)
    else:
        (check_chat_batch if chat else check_completion_batch)(ex)


def finish_reason(ex: Exchange) -> object:
    """The answer's finish_reason: the batch choice's, or the stream's last one that is set."""
    if not ex.streamed:
        return ex.json["choices"][0]["finish_reason"]  # type: ignore[index]
    reasons = [c["choices"][0].get("finish_reason") for c in ex.events if isinstance(c, dict) and c.get("choices")]
    return next((r for r in reversed(reasons) if r is not None), None)


def check_finish_reason(ex: Exchange, reason: str, what: str) -> None:
    """A well-formed answer that ended with `reason`."""
    check_well_formed(ex)
    got = finish_reason(ex)
    that(got == reason, f"{what}: expected finish_reason {reason!r}, got {got!r}", ex.describe())


# --- errors, usage, stop ----------------------------------------------------------------

def _status_range(expected: int | range) -> range:
    return range(expected, expected + 1) if isinstance(expected, int) else expected


def _shown(expected: range) -> str:
    return str(expected.start) if len(expected) == 1 else f"{expected.start}-{expected.stop - 1}"


def check_error(ex: Exchange, expected_status: int | range, mentions: str | None = None) -> None:
    """A rejected request: the expected 4xx (never 200, never 5xx, never a dropped connection) and a
    JSON body with an error object that carries a message (mlx-knife's envelope or OpenAI's shape).
    `mentions` must appear in the error's message or, where mlx-knife puts specifics, its detail."""
    expected, evidence = _status_range(expected_status), ex.describe()
    want = f"HTTP {_shown(expected)}"
    that(ex.error is None, f"expected an error response ({want}); instead: {ex.error}", evidence)
    that(ex.status != 200, f"expected {want}; the server accepted the request (HTTP 200)", evidence)
    that(ex.status is not None and ex.status < 500,
         f"expected {want}; got server error HTTP {ex.status} (a client mistake must not be a 5xx)", evidence)
    that(ex.status in expected, f"expected {want}, got HTTP {ex.status}", evidence)
    doc = ex.json
    that(isinstance(doc, dict), f"error body is not a JSON object: {ex.body_text[:200]!r}", evidence)
    error = doc.get("error")  # type: ignore[union-attr]
    that(isinstance(error, dict), f"error body has no `error` object: {ex.body_text[:200]!r}", evidence)
    message = error.get("message")
    that(isinstance(message, str) and bool(message.strip()),
         f"error object has no non-empty `message`: {error!r}", evidence)
    if mentions is not None:
        said = f"{message} {error.get('detail') or ''}"
        that(mentions in said, f"error message does not mention {mentions!r}: message {message!r}, "
                               f"detail {error.get('detail')!r}", evidence)


def check_prompt_refusal(refused: Exchange, served: Exchange, alone: Exchange, model: str, limit_s: float) -> None:
    """A request for a model that is not installed is refused (404 naming it) within ``limit_s``,
    and a request for the served model sent while the refusal is under way is answered within
    ``limit_s`` of the time it takes alone: looking a name up in the cache holds up nobody."""
    check_error(refused, 404, mentions=model)
    check_chat_batch(served)
    problems = []
    if refused.seconds > limit_s:
        problems.append(f"the refusal of {model} took {refused.seconds:.1f} s (expected within {limit_s:g} s: "
                        "a model that is not in the cache needs only a lookup)")
    if served.seconds > alone.seconds + limit_s:
        problems.append(f"the served model's answer took {served.seconds:.1f} s while the refusal was under way "
                        f"(alone: {alone.seconds:.2f} s, allowed {alone.seconds + limit_s:.1f} s): the bad request "
                        "held up another client")
    that(not problems, "; ".join(problems),
         f"--- refused:\n{refused.describe()}\n--- served meanwhile:\n{served.describe()}\n"
         f"--- served alone:\n{alone.describe()}")


def check_as_fast_as_before(before: Exchange, after: Exchange, slack_s: float, what: str) -> None:
    """`after` (the same request as `before`, on the same server, after something happened) took at most
    ``slack_s`` longer than `before`: a bound that moves with the machine's load, as both answers slow
    down together, and still catches a model unloaded and loaded again in between."""
    that(after.seconds <= before.seconds + slack_s,
         f"{what} took {after.seconds:.1f} s after the refusal, expected at most {before.seconds + slack_s:.1f} s "
         f"(the same request took {before.seconds:.2f} s before it, + {slack_s:g} s)",
         f"--- before:\n{before.describe()}\n--- after:\n{after.describe()}")


def check_usage_tokens(ex: Exchange, expected_completion_tokens: int) -> None:
    """usage.completion_tokens equals the expected count (batch body, or a stream's usage chunk)."""
    if ex.streamed:
        found = [e["usage"] for e in ex.events if isinstance(e, dict) and e.get("usage")]
        that(bool(found), "no usage in the stream (expected a final usage chunk; was "
                          "stream_options.include_usage asked for?)", ex.describe())
        usage = found[-1]
    else:
        usage = ex.json.get("usage") if isinstance(ex.json, dict) else None
    _check_usage(usage, "usage", ex.describe())
    got = usage["completion_tokens"]  # type: ignore[index]
    that(got == expected_completion_tokens,
         f"usage.completion_tokens is {got}, expected {expected_completion_tokens}", ex.describe())


def check_stopped_before(answer: str, full_answer: str, stop: str | list[str], evidence: str = "") -> None:
    """`answer` (asked with `stop`) is `full_answer` cut right before the earliest stop string,
    and shows none of them."""
    stops = [stop] if isinstance(stop, str) else list(stop)
    at = [full_answer.index(s) for s in stops if s in full_answer]
    that(bool(at), f"cannot judge stop={stops!r}: the answer without stop does not contain it: "
                   f"{full_answer!r}", evidence)
    shown = [s for s in stops if s in answer]
    that(not shown, f"stop sequence(s) {shown} still visible in the answer {answer!r}", evidence)
    same_text(full_answer[:min(at)], answer,
              f"answer with stop={stops!r} (expected the unstopped answer cut before the earliest stop)",
              evidence)
