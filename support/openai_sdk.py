"""The official OpenAI Python client as an application uses it, its exchanges recorded as evidence.

Each call becomes an `Exchange` like a raw HTTP one: the request and the server's raw response
(read by an httpx event hook), with the answer as the *client* parsed it (`json` holds the SDK's
object dumped to a dict, `chunk_texts` the deltas it yielded), so a check compares what the
application sees with what the server sent.
"""

from __future__ import annotations

import json
import time

import httpx

from .openai_http import Exchange


def _exchange(response: httpx.Response | None, streamed: bool, summary: dict | None = None) -> Exchange:
    """The exchange of `response`; `summary` stands for a request body that is not JSON (an upload)."""
    if response is None:
        return Exchange("POST", "(no request was sent)", request_json=summary, streamed=streamed)
    request = response.request
    try:
        payload = summary if summary is not None else json.loads(request.content)
    except ValueError:
        payload = None
    ex = Exchange(request.method, str(request.url), request_json=payload, status=response.status_code,
                  headers={k.lower(): v for k, v in response.headers.items()},
                  body_text=response.text, streamed=streamed)
    ex.transcript = ex.body_text if streamed else ""
    return ex


def _recording_client(base_url: str, timeout: float):
    """(httpx client, OpenAI client over it, the raw responses it has received)."""
    from openai import OpenAI

    responses: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()  # the raw body for the evidence; the SDK then reads it from memory
        responses.append(response)

    http = httpx.Client(event_hooks={"response": [keep]}, timeout=timeout)
    client = OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0, timeout=timeout,
                    http_client=http)
    return http, client, responses


def sdk_answers(base_url: str, model: str, prompt: str, timeout: float) -> tuple[Exchange, Exchange]:
    """`prompt` asked at temperature 0 through `openai.OpenAI`, in one piece and streamed."""
    from openai import OpenAIError

    http, client, responses = _recording_client(base_url, timeout)
    messages = [{"role": "user", "content": prompt}]
    out = []
    with http:
        for streamed in (False, True):
            responses.clear()
            started = time.monotonic()
            parsed, texts, error = None, [], None
            try:
                result = client.chat.completions.create(model=model, messages=messages, temperature=0,
                                                        stream=streamed)
                if streamed:
                    chunks = list(result)
                    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
                else:
                    parsed = result.model_dump()
            except OpenAIError as e:
                error = f"the openai client raised {type(e).__name__}: {e}"
            ex = _exchange(responses[-1] if responses else None, streamed)
            ex.json, ex.chunk_texts, ex.error = parsed, texts, error
            ex.started_at, ex.seconds = started, time.monotonic() - started
            out.append(ex)
    return out[0], out[1]


def sdk_transcription(base_url: str, model: str, filename: str, data: bytes, timeout: float) -> Exchange:
    """The clip uploaded through `openai.OpenAI().audio.transcriptions.create` (json format)."""
    from openai import OpenAIError

    started = time.monotonic()
    parsed, error = None, None
    http, client, responses = _recording_client(base_url, timeout)
    with http:
        try:
            parsed = client.audio.transcriptions.create(model=model, file=(filename, data, "audio/wav")).model_dump()
        except OpenAIError as e:
            error = f"the openai client raised {type(e).__name__}: {e}"
    summary = {"model": model, "file": {"filename": filename, "bytes": len(data)}}
    ex = _exchange(responses[-1] if responses else None, False, summary)
    ex.json, ex.error = parsed, error
    ex.started_at, ex.seconds = started, time.monotonic() - started
    return ex
