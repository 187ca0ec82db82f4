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


def _exchange(response: httpx.Response | None, streamed: bool) -> Exchange:
    if response is None:
        return Exchange("POST", "(no request was sent)", streamed=streamed)
    request = response.request
    try:
        payload = json.loads(request.content)
    except ValueError:
        payload = None
    ex = Exchange(request.method, str(request.url), request_json=payload, status=response.status_code,
                  headers={k.lower(): v for k, v in response.headers.items()},
                  body_text=response.text, streamed=streamed)
    ex.transcript = ex.body_text if streamed else ""
    return ex


def sdk_answers(base_url: str, model: str, prompt: str, timeout: float) -> tuple[Exchange, Exchange]:
    """`prompt` asked at temperature 0 through `openai.OpenAI`, in one piece and streamed."""
    from openai import OpenAI, OpenAIError

    responses: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()  # the raw body for the evidence; the SDK then reads it from memory
        responses.append(response)

    http = httpx.Client(event_hooks={"response": [keep]}, timeout=timeout)
    client = OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0, timeout=timeout,
                    http_client=http)
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
