"""Requests the server must handle: bad ones it must reject cleanly, and stop strings to cut with."""

from __future__ import annotations

from .errors import HarnessError
from .openai_http import CHAT, Client, Exchange, chat_payload

NOT_INSTALLED = "mlx-e2e-no-such/model"  # a model id that no cache holds


def bad_request(client: Client, name: str, model: str) -> Exchange:
    """Send the bad request called `name` (the words of the feature's table) to the chat endpoint."""
    good = chat_payload(model, "Say hello.", max_tokens=8)
    if name == "malformed JSON":
        return client.post_raw(CHAT, b'{"model": "' + model.encode() + b'", "messages": [')
    payloads = {
        "an unknown model": {**good, "model": NOT_INSTALLED},
        "no messages": {k: v for k, v in good.items() if k != "messages"},
        "max_tokens given as text": {**good, "max_tokens": "ten"},
        "a negative temperature": {**good, "temperature": -1},
        "an empty list of messages": {**good, "messages": []},
    }
    if name not in payloads:
        raise HarnessError(f"the spec names a bad request the suite does not know: {name!r}; known: "
                           f"malformed JSON, {', '.join(payloads)}")
    return client.post_json(CHAT, payloads[name])


def expected_status(text: str) -> int | range:
    """'404' -> 404, '4xx' -> range(400, 500)."""
    return range(400, 500) if text.lower() == "4xx" else int(text)


def stop_strings(answer: str, count: int) -> list[str]:
    """`count` words of the answer that first occur after its start, earliest first."""
    words = []
    for word in answer.split():
        at = answer.find(word)
        if at > 0 and len(word) >= 3 and answer.find(word) == answer.rfind(word) and word not in words:
            words.append(word)
    if len(words) < count:
        raise HarnessError(f"the golden answer {answer!r} has fewer than {count} distinct words to stop at")
    middle = len(words) // 2
    return words[middle: middle + count] if middle + count <= len(words) else words[-count:]



def bad_embeddings_payload(name: str, model: str) -> dict:
    """The bad POST /v1/embeddings request called `name` (the words of the feature's table)."""
    good = {"model": model, "input": "The cat sits on the mat.", "encoding_format": "float"}
    payloads = {
        "an empty input list": {**good, "input": []},
        "an empty text": {**good, "input": ""},
        "a number among the texts": {**good, "input": ["The cat sits on the mat.", 5]},
        "an unknown model": {**good, "model": NOT_INSTALLED},
        "an unknown encoding format": {**good, "encoding_format": "int8"},
    }
    if name not in payloads:
        raise HarnessError(f"the spec names a bad embeddings request the suite does not know: {name!r}; known: "
                           f"{', '.join(payloads)}")
    return payloads[name]
