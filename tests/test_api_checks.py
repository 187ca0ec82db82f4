"""support.api_checks: each check passes on a good answer and fails on each bad one with a
message that names the defect and carries the evidence. Answers come from the canned server
of tests/test_openai_http.py, through the real client."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import pytest

from support import api_checks as checks
from support.openai_http import DONE, Client, Exchange, chat_payload
from test_openai_http import (ERROR_404, MODEL, Canned, CannedServer, chat_batch,
                              chat_stream_payloads, event_stream, json_answer, sse, text_batch,
                              text_chunk, text_stream_payloads)

GOOD_CHAT = chat_stream_payloads()
ROLE, FIRST, LAST_CONTENT, FINISH = GOOD_CHAT[0], GOOD_CHAT[1], GOOD_CHAT[-3], GOOD_CHAT[-2]
USAGE_CHUNK = {**FINISH, "choices": [], "usage": {"prompt_tokens": 15, "completion_tokens": 8, "total_tokens": 23}}


def with_usage(payloads: list, usage_chunk: dict = USAGE_CHUNK) -> list:
    """The stream `stream_options.include_usage` gives: usage null on chunks, then a usage chunk."""
    return [{**p, "usage": None} if isinstance(p, dict) else p for p in payloads[:-1]] + [usage_chunk, DONE]


def merged(payloads: list, at: int, joiner: bytes) -> Canned:
    """Events `at` and `at + 1` framed as one (the blank line between them replaced by `joiner`)."""
    parts = sse(*payloads)
    parts[at:at + 2] = [parts[at][:-2] + joiner + parts[at + 1]]
    return Canned(200, "text/event-stream", parts)


@dataclass
class Case:
    id: str
    canned: Canned
    check: Callable[[Exchange], None]
    fails_with: str | None = None  # regex the failure message must match; None: the check passes
    call: str = "post"  # get | post | stream


def finish(reason: object) -> dict:
    return {**FINISH, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def error_check(status: int | range = 404, mentions: str | None = None) -> Callable[[Exchange], None]:
    return lambda ex: checks.check_error(ex, status, mentions)


CHAT_STREAM, TEXT_STREAM = checks.check_chat_stream, checks.check_completion_stream
CHAT, TEXT = checks.check_chat_batch, checks.check_completion_batch
ODD_ID = {**FIRST, "id": "chatcmpl-other"}
NO_ROLE = {**ROLE, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": None}]}
NO_FINISH_KEY = {**FIRST, "choices": [{"index": 0, "delta": {"content": "The"}}]}
STOP_TWICE = GOOD_CHAT[:-2] + [finish("stop"), finish("stop"), DONE]
BAD_USAGE_CHUNK = {**USAGE_CHUNK, "usage": {"prompt_tokens": 15, "completion_tokens": 8, "total_tokens": 99}}

CASES = [
    # health and models
    Case("health ok", json_answer({"status": "ok"}), checks.check_health, call="get"),
    Case("health 503", json_answer({"status": "loading"}, 503), checks.check_health, r"expected HTTP 200, got 503",
         call="get"),
    Case("health without status", json_answer({"service": "x"}), checks.check_health,
         r"'status' is a required property", call="get"),
    Case("health not JSON", Canned(200, "text/plain", [b"OK"]), checks.check_health, r"body is not JSON",
         call="get"),
    Case("models ok", json_answer({"object": "list", "data": [{"id": MODEL, "object": "model"}]}),
         lambda ex: checks.check_models(ex, MODEL), call="get"),
    Case("models without the served one", json_answer({"object": "list", "data": [{"id": "x", "object": "model"}]}),
         lambda ex: checks.check_models(ex, MODEL), r"served model 'org/tiny-model' is not listed", call="get"),
    Case("models wrong item object", json_answer({"object": "list", "data": [{"id": MODEL, "object": "m"}]}),
         lambda ex: checks.check_models(ex, MODEL), r"at data/0/object: 'model' was expected", call="get"),
    # chat batch
    Case("chat batch ok", json_answer(chat_batch()), CHAT),
    Case("chat usage total wrong", json_answer(chat_batch(usage={"prompt_tokens": 15, "completion_tokens": 8,
                                                                   "total_tokens": 24})), CHAT,
         r"usage.total_tokens is 24, expected prompt_tokens \+ completion_tokens = 15 \+ 8 = 23"),
    Case("chat usage missing", json_answer({k: v for k, v in chat_batch().items() if k != "usage"}), CHAT,
         r"'usage' is a required property"),
    Case("chat object plural", json_answer(chat_batch(object="chat.completions")), CHAT,
         r"at object: 'chat.completion' was expected"),
    Case("chat two choices", json_answer(chat_batch(choices=chat_batch()["choices"] * 2)), CHAT,
         r"expected exactly one choice, got 2"),
    Case("chat empty content", json_answer(chat_batch(choices=[{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": ""}}])), CHAT, r"at choices/0/message/content: '' should be non-empty"),
    Case("chat null finish_reason", json_answer(chat_batch(choices=[{"index": 0, "finish_reason": None, "message": {
        "role": "assistant", "content": "Paris"}}])), CHAT, r"at choices/0/finish_reason: None is not one of"),
    Case("chat created as text", json_answer(chat_batch(created="now")), CHAT, r"at created: 'now' is not of type"),
    Case("chat 500", Canned(500, "text/plain", [b"Internal Server Error"]), CHAT, r"expected HTTP 200, got 500"),
    Case("chat dropped", Canned(drop_after=0), CHAT, r"the exchange failed: connection failed or dropped"),
    # completions batch
    Case("completion batch ok", json_answer(text_batch()), TEXT),
    Case("completion answered as chat", json_answer(chat_batch()), TEXT, r"at object: 'text_completion' was expected"),
    Case("completion without text", json_answer(text_batch(choices=[{"index": 0, "finish_reason": "stop"}])), TEXT,
         r"'text' is a required property"),
    Case("completion object wrong", json_answer(text_batch(object="completion")), TEXT,
         r"at object: 'text_completion' was expected"),
    # chat stream
    Case("chat stream ok", event_stream(GOOD_CHAT), CHAT_STREAM, call="stream"),
    Case("chat stream with usage chunk", event_stream(with_usage(GOOD_CHAT)), CHAT_STREAM, call="stream"),
    Case("usage chunk total wrong", event_stream(with_usage(GOOD_CHAT, BAD_USAGE_CHUNK)), CHAT_STREAM,
         r"usage chunk: usage.total_tokens is 99, expected", call="stream"),
    Case("usage not asked for", event_stream(with_usage(GOOD_CHAT)), CHAT_STREAM,
         r"carries usage .*only when stream_options.include_usage is asked for \(it was not\)", call="stream"),
    Case("events merged (no blank line)", merged(GOOD_CHAT, 2, b"\n"), CHAT_STREAM,
         r"event #2 holds several `data:` lines with no blank line between them \(events merged", call="stream"),
    Case("events merged (one line)", merged(GOOD_CHAT, 2, b""), CHAT_STREAM,
         r"event #2 holds more than one JSON document in one `data:` line \(events merged\)", call="stream"),
    Case("event not JSON", event_stream([ROLE, "{'content': 'x'}", FINISH, DONE]), CHAT_STREAM,
         r"event #1 is not JSON", call="stream"),
    Case("no [DONE]", event_stream(GOOD_CHAT[:-1]), CHAT_STREAM, r"ended without `data: \[DONE\]`", call="stream"),
    Case("[DONE] without blank line", Canned(200, "text/event-stream", sse(*GOOD_CHAT)[:-1] + [b"data: [DONE]\n"]),
         CHAT_STREAM, r"the last event is not ended by a blank line", call="stream"),
    Case("[DONE] twice", event_stream(GOOD_CHAT + [DONE]), CHAT_STREAM, r"`data: \[DONE\]` sent 2 times",
         call="stream"),
    Case("[DONE] not last", event_stream(GOOD_CHAT[:-2] + [DONE, FINISH]), CHAT_STREAM,
         r"`data: \[DONE\]` is event #8 but 1 event\(s\) follow it", call="stream"),
    Case("hangs after 2 chunks", event_stream(GOOD_CHAT, hang_after=2), CHAT_STREAM,
         r"the exchange failed: stream not finished within the 1 s deadline", call="stream"),
    Case("dropped mid-stream", event_stream(GOOD_CHAT, drop_after=3), CHAT_STREAM, r"stream broke off",
         call="stream"),
    Case("stream as application/json", Canned(200, "application/json", sse(*GOOD_CHAT)), CHAT_STREAM,
         r"Content-Type is 'application/json', expected text/event-stream", call="stream"),
    Case("stream 500", Canned(500, "text/plain", [b"boom"]), CHAT_STREAM, r"expected HTTP 200, got 500",
         call="stream"),
    Case("changing ids", event_stream([ROLE, ODD_ID, *GOOD_CHAT[2:]]), CHAT_STREAM,
         r"chunks carry 2 different ids \['chatcmpl-8b33b57f', 'chatcmpl-other'\]", call="stream"),
    Case("missing role", event_stream([NO_ROLE, *GOOD_CHAT[1:]]), CHAT_STREAM,
         r"the first chunk's delta has role None, expected 'assistant'", call="stream"),
    Case("finish_reason empty string", event_stream([{**ROLE, "choices": [{**ROLE["choices"][0], "finish_reason": ""}]},
                                                     *GOOD_CHAT[1:]]), CHAT_STREAM,
         r"chunk #0 has finish_reason an empty string; expected JSON null", call="stream"),
    Case("finish_reason key missing", event_stream([ROLE, NO_FINISH_KEY, *GOOD_CHAT[2:]]), CHAT_STREAM,
         r"chunk #1 has no `finish_reason` key", call="stream"),
    Case("finish_reason twice", event_stream(STOP_TWICE), CHAT_STREAM,
         r"chunk #9 comes after the finish_reason was already sent in chunk #8", call="stream"),
    Case("content after finish", event_stream(GOOD_CHAT[:-2] + [FINISH, LAST_CONTENT, DONE]), CHAT_STREAM,
         r"chunk #9 comes after the finish_reason was already sent", call="stream"),
    Case("finish_reason never", event_stream(GOOD_CHAT[:-2] + [DONE]), CHAT_STREAM,
         r"no chunk carries a finish_reason", call="stream"),
    Case("finish_reason unknown", event_stream(GOOD_CHAT[:-2] + [finish("eos"), DONE]), CHAT_STREAM,
         r"chunk #8 has finish_reason 'eos'", call="stream"),
    Case("usage chunk before finish", event_stream(GOOD_CHAT[:-2] + [USAGE_CHUNK, FINISH, DONE]), CHAT_STREAM,
         r"chunk #8 has empty `choices` before the chunk with the finish_reason", call="stream"),
    Case("chunk object plural", event_stream([{**c, "object": "chat.completions"} if isinstance(c, dict) else c
                                              for c in GOOD_CHAT]), CHAT_STREAM,
         r"chunk #0: at object: 'chat.completion.chunk' was expected", call="stream"),
    # completion stream
    Case("completion stream ok", event_stream(text_stream_payloads()), TEXT_STREAM, call="stream"),
    Case("completion stream of chat chunks", event_stream(GOOD_CHAT), TEXT_STREAM,
         r"chunk #0: at object: 'text_completion' was expected", call="stream"),
    Case("completion stream without [DONE]", event_stream(text_stream_payloads()[:-1]), TEXT_STREAM,
         r"ended without `data: \[DONE\]`", call="stream"),
    Case("completion finish twice", event_stream([text_chunk(""), text_chunk("x", "length"),
                                                  text_chunk("", "length"), DONE]), TEXT_STREAM,
         r"chunk #2 comes after the finish_reason was already sent in chunk #1", call="stream"),
    # errors
    Case("error 404 envelope", json_answer(ERROR_404, 404), error_check(404, "nope/x")),
    Case("error OpenAI shape", json_answer({"error": {"message": "bad model", "type": "invalid_request_error"}}, 400),
         error_check(range(400, 500))),
    Case("error mention in detail", json_answer({"status": "error", "error": {
        "type": "validation_error", "message": "Request validation failed", "detail": "body.messages: Field required"}},
        400), error_check(400, "messages")),
    Case("error 500 for unknown model", json_answer({"error": {"message": "KeyError"}}, 500), error_check(404),
         r"expected HTTP 404; got server error HTTP 500 \(a client mistake must not be a 5xx\)"),
    Case("error body not JSON", Canned(400, "text/plain", [b"Bad Request"]), error_check(400),
         r"error body is not a JSON object: 'Bad Request'"),
    Case("error 200 for invalid input", json_answer(chat_batch()), error_check(400),
         r"expected HTTP 400; the server accepted the request \(HTTP 200\)"),
    Case("error dropped connection", Canned(drop_after=0), error_check(400),
         r"expected an error response \(HTTP 400\); instead: connection failed or dropped"),
    Case("error other 4xx", json_answer(ERROR_404, 422), error_check(400), r"expected HTTP 400, got HTTP 422"),
    Case("error range miss", json_answer(ERROR_404, 404), error_check(range(400, 401)), r"expected HTTP 400, got"),
    Case("error without message", json_answer({"error": {"type": "x", "message": ""}}, 400), error_check(400),
         r"error object has no non-empty `message`"),
    Case("error without error object", json_answer({"detail": "Not Found"}, 404), error_check(404),
         r"error body has no `error` object"),
    Case("error not mentioning", json_answer(ERROR_404, 404), error_check(404, "org/tiny"),
         r"error message does not mention 'org/tiny'"),
    # usage counts
    Case("usage tokens batch", json_answer(chat_batch()), lambda ex: checks.check_usage_tokens(ex, 8)),
    Case("usage tokens batch wrong", json_answer(chat_batch()), lambda ex: checks.check_usage_tokens(ex, 3),
         r"usage.completion_tokens is 8, expected 3"),
    Case("usage tokens stream", event_stream(with_usage(GOOD_CHAT)), lambda ex: checks.check_usage_tokens(ex, 8),
         call="stream"),
    Case("usage tokens stream without usage", event_stream(GOOD_CHAT), lambda ex: checks.check_usage_tokens(ex, 8),
         r"no usage in the stream", call="stream"),
]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[CannedServer, Client]]:
    with CannedServer() as server:
        for i, case in enumerate(CASES):
            server.routes[f"/case/{i}"] = case.canned
        yield server, Client(server.url, timeout=5.0, stream_timeout=1.0)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_check(index: int, served: tuple[CannedServer, Client]) -> None:
    case, (_, client) = CASES[index], served
    path, payload = f"/case/{index}", chat_payload(MODEL, "What is the capital of France?")
    if "usage" in case.id and "not asked" not in case.id:  # what stream_options.include_usage gives
        payload["stream_options"] = {"include_usage": True}
    ex = {"get": lambda: client.get(path), "post": lambda: client.post_json(path, payload),
          "stream": lambda: client.stream(path, payload)}[case.call]()
    if case.fails_with is None:
        case.check(ex)
        return
    with pytest.raises(AssertionError) as failure:
        case.check(ex)
    message = str(failure.value)
    assert re.search(case.fails_with, message), message
    assert f"request: {ex.method} {client.url(path)}" in message, "no evidence in: " + message
    assert "response: " in message and ("SSE transcript" in message or "body:" in message), message


def test_every_kind_of_check_has_a_passing_case() -> None:
    passing = {c.check for c in CASES if c.fails_with is None}
    assert {checks.check_health, CHAT, TEXT, CHAT_STREAM, TEXT_STREAM} <= passing


# --- stop ---------------------------------------------------------------------------------

FULL = "The capital of France is Paris."


@pytest.mark.parametrize("answer, stop", [("The capital of France is ", "Paris"),
                                          ("The cap", "ital of"),
                                          ("The ", ["France", "capital"]),  # earliest position, not list order
                                          ("", "The")])
def test_stopped_before_passes(answer: str, stop: str | list[str]) -> None:
    checks.check_stopped_before(answer, FULL, stop)


@pytest.mark.parametrize("answer, stop, message", [
    ("The capital of France is Paris", "Paris", r"stop sequence\(s\) \['Paris'\] still visible"),
    ("The capital of France is Pa", "Paris", r"texts differ at character 25"),
    ("The capital of ", ["France", "capital"], r"stop sequence\(s\) \['capital'\] still visible"),
    ("The capital of France is", "Paris", r"texts differ at character 24"),
    ("The capital", "Rome", r"cannot judge stop=\['Rome'\]"),
])
def test_stopped_before_fails(answer: str, stop: str | list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message) as failure:
        checks.check_stopped_before(answer, FULL, stop, evidence="EVIDENCE")
    assert str(failure.value).endswith("EVIDENCE")


def test_schemas_are_valid_json_schema() -> None:
    import jsonschema
    for schema in (checks.CHAT_COMPLETION, checks.TEXT_COMPLETION, checks.CHAT_CHUNK, checks.TEXT_CHUNK,
                   checks.MODELS, checks.HEALTH):
        jsonschema.Draft202012Validator.check_schema(schema)
    assert json.dumps(checks.CHAT_CHUNK)  # plain data, attachable to a report


def test_an_answer_after_a_refusal_is_bounded_by_the_same_answer_before_it():
    def took(seconds):
        return Exchange("POST", "http://127.0.0.1:1/v1/chat/completions", request_json={"model": MODEL}, status=200,
                        seconds=seconds)

    checks.check_as_fast_as_before(took(0.3), took(2.2), 2, "the answer")  # a loaded machine: both slow
    checks.check_as_fast_as_before(took(6.0), took(7.5), 2, "the answer")
    with pytest.raises(AssertionError, match=r"the answer took 10\.4 s after the refusal, expected at most 2\.3 s "
                                             r"\(the same request took 0\.30 s before it, \+ 2 s\)"):
        checks.check_as_fast_as_before(took(0.3), took(10.4), 2, "the answer")  # unloaded and loaded again
