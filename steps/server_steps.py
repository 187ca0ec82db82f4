"""Steps for the OpenAI-compatible server: one resident server per model, raw HTTP checked."""

import time
from concurrent.futures import ThreadPoolExecutor

from behave import given, then, when

from support import api_checks, expect
from support.evidence import record
from support.openai_http import (Client, batch_content, chat_payload, completion_payload,
                                 disconnect_mid_stream, joined_content)
from support.request_catalogue import CHAT, NOT_INSTALLED, expected_status, send_bad_request, stop_strings

COMPLETIONS = "/v1/completions"


def _record(context, ex):
    return record(context, ex)


def _chat(context, prompt, stream=False, **sampling):
    payload = chat_payload(context.model, prompt, **sampling)
    ex = context.client.stream(CHAT, payload) if stream else context.client.post_json(CHAT, payload)
    return _record(context, ex)


def _golden_prompts(context):
    return [g.prompt for g in context.facts.goldens]


@given('a server for the portfolio model "{model}"')
def step_server(context, model):
    suite = context.suite
    context.model, context.facts = model, suite.facts(model)
    context.server = suite.server(model)
    context.client = Client(context.server.base_url, suite.settings.request_timeout, suite.settings.stream_timeout)


@when("I ask for the server's health")
def step_health(context):
    context.ex = _record(context, context.client.get("/health"))


@then("the server reports that it is healthy")
def step_healthy(context):
    api_checks.check_health(context.ex)


@when("I ask for the list of models")
def step_models(context):
    context.ex = _record(context, context.client.get("/v1/models"))


@then("the list holds the served model")
def step_models_hold(context):
    api_checks.check_models(context.ex, context.model)


@when("I ask for a chat answer to the model's first prompt")
def step_chat_first(context):
    context.ex = _chat(context, context.facts.prompts[0])


@when("I ask for a streamed chat answer to the model's first prompt")
def step_chat_stream_first(context):
    context.ex = _chat(context, context.facts.prompts[0], stream=True)


@when("I ask for a text completion of the model's first prompt")
def step_completion_first(context):
    payload = completion_payload(context.model, context.facts.prompts[0], max_tokens=32)
    context.ex = _record(context, context.client.post_json(COMPLETIONS, payload))


@when("I ask for a streamed text completion of the model's first prompt")
def step_completion_stream_first(context):
    payload = completion_payload(context.model, context.facts.prompts[0], max_tokens=32)
    context.ex = _record(context, context.client.stream(COMPLETIONS, payload))


@then("the answer is a well-formed chat completion")
def step_chat_ok(context):
    api_checks.check_chat_batch(context.ex)


@then("the answer is a well-formed text completion")
def step_completion_ok(context):
    api_checks.check_completion_batch(context.ex)


@then("the stream is a well-formed chat completion stream")
def step_chat_stream_ok(context):
    api_checks.check_chat_stream(context.ex)


@then("the stream is a well-formed text completion stream")
def step_completion_stream_ok(context):
    api_checks.check_completion_stream(context.ex)


@then("the answer shows no end or template token")
def step_batch_clean(context):
    expect.no_visible_tokens(batch_content(context.ex), context.facts.forbidden_tokens, "the server's answer",
                             context.ex.describe())


@then("the streamed answer shows no end or template token")
def step_stream_clean(context):
    expect.no_visible_tokens(joined_content(context.ex), context.facts.forbidden_tokens,
                             "the streamed answer", context.ex.describe())


@when("I ask for a chat answer to each of the model's golden prompts")
def step_chat_goldens(context):
    context.answers = [(p, _chat(context, p)) for p in _golden_prompts(context)]


@when("I ask for a streamed chat answer to each of the model's golden prompts")
def step_stream_goldens(context):
    context.answers = [(p, _chat(context, p, stream=True)) for p in _golden_prompts(context)]


@then("every answer is the model's golden answer")
def step_every_golden(context):
    for prompt, ex in context.answers:
        api_checks.check_chat_batch(ex)
        expect.same_text(context.facts.golden_for(prompt), batch_content(ex), f"answer to {prompt!r}",
                         ex.describe())


@then('every answer ends with finish reason "{reason}"')
def step_every_finish(context, reason):
    for prompt, ex in context.answers:
        got = ex.json["choices"][0]["finish_reason"]
        expect.that(got == reason, f"answer to {prompt!r}: expected finish_reason {reason!r}, got {got!r}",
                    ex.describe())


@then("every streamed answer is the model's golden answer")
def step_every_stream_golden(context):
    for prompt, ex in context.answers:
        api_checks.check_chat_stream(ex)
        expect.same_text(context.facts.golden_for(prompt), joined_content(ex), f"streamed answer to {prompt!r}",
                         ex.describe())


@then("no streamed answer holds a replacement character")
def step_no_fffd(context):
    for prompt, ex in context.answers:
        expect.that("\ufffd" not in joined_content(ex),
                    f"streamed answer to {prompt!r} holds U+FFFD (a split multibyte character)", ex.describe())


@when("I ask for a chat answer to the model's longest golden prompt with at most {n:d} tokens")
def step_limited(context, n):
    context.ex = _chat(context, context.facts.longest.prompt, max_tokens=n)


@then('the answer ends with finish reason "{reason}"')
def step_finish(context, reason):
    api_checks.check_chat_batch(context.ex)
    got = context.ex.json["choices"][0]["finish_reason"]
    expect.that(got == reason, f"expected finish_reason {reason!r}, got {got!r}", context.ex.describe())


@then("the answer used exactly {n:d} completion tokens")
def step_tokens(context, n):
    api_checks.check_usage_tokens(context.ex, n)


@then("the answer is a strict prefix of the golden answer")
def step_prefix(context):
    golden, got = context.facts.longest.answer, batch_content(context.ex)
    expect.that(got != golden and golden.startswith(got),
                f"expected a truncated start of {golden[:60]!r}..., got {got!r}", context.ex.describe())


@when("I ask for a chat answer to the model's longest golden prompt with a stop string taken from its middle")
def step_stop_string(context):
    context.stop = stop_strings(context.facts.longest.answer, 1)[0]
    context.ex = _chat(context, context.facts.longest.prompt, stop=context.stop)


@when("I ask for a chat answer to the model's longest golden prompt with a list of two stop strings, "
      "the later one first")
def step_stop_list(context):
    earlier, later = stop_strings(context.facts.longest.answer, 2)
    context.stop = [later, earlier]
    context.ex = _chat(context, context.facts.longest.prompt, stop=context.stop)


@when("I ask for the same answer streamed")
def step_same_streamed(context):
    context.streamed = _chat(context, context.facts.longest.prompt, stream=True, stop=context.stop)


@then("both answers end right before the stop string and never show it")
@then("both answers end right before the earliest stop string and never show it")
def step_stopped(context):
    full = context.facts.longest.answer
    with expect.labelled("batch answer"):
        api_checks.check_chat_batch(context.ex)
        api_checks.check_stopped_before(batch_content(context.ex), full, context.stop, context.ex.describe())
    with expect.labelled("streamed answer"):
        api_checks.check_chat_stream(context.streamed)
        api_checks.check_stopped_before(joined_content(context.streamed), full, context.stop,
                                        context.streamed.describe())


@then("each bad request gets a clean client error and the next valid request still succeeds:")
def step_bad_requests(context):
    for row in context.table:
        name = row["bad request"]
        bad = _record(context, send_bad_request(context.client, name, context.model))
        with expect.labelled(f"bad request '{name}'"):
            api_checks.check_error(bad, expected_status(row["status"]),
                                   mentions="mlx-e2e-no-such/model" if name == "an unknown model" else None)
        good = _chat(context, context.facts.prompts[0], max_tokens=8)
        expect.that(good.status == 200, f"after {row['bad request']}, a valid request got {good.status}",
                    good.describe())


@when("I send four golden prompts at the same time")
def step_concurrent(context):
    prompts = (_golden_prompts(context) * 4)[:4]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: context.client.post_json(CHAT, chat_payload(context.model, p)), prompts))
    context.answers = [(p, _record(context, ex)) for p, ex in zip(prompts, results)]


@then("each answer is the golden answer of its own prompt")
def step_concurrent_golden(context):
    step_every_golden(context)


@given("a server for any portfolio chat model")
def step_any_server(context):
    step_server(context, context.suite.first_runnable_chat_model())


@when("one client asks for a model that is not installed while another asks the served model")
def step_not_installed_beside_served(context):
    served = chat_payload(context.model, context.facts.prompts[0], max_tokens=8)
    context.alone = _record(context, context.client.post_json(CHAT, served))
    with ThreadPoolExecutor(max_workers=2) as pool:
        refused = pool.submit(context.client.post_json, CHAT, chat_payload(NOT_INSTALLED, "Say hello.", max_tokens=8))
        time.sleep(0.1)  # the refusal is on its way first
        meanwhile = pool.submit(context.client.post_json, CHAT, served)
        context.refused, context.meanwhile = _record(context, refused.result()), _record(context, meanwhile.result())


@then("the model that is not installed is refused within {limit:g} seconds, without holding up the served model")
def step_refused_promptly(context, limit):
    api_checks.check_prompt_refusal(context.refused, context.meanwhile, context.alone, NOT_INSTALLED, limit)


@when("a streaming client hangs up after the first chunks")
def step_hang_up(context):
    payload = chat_payload(context.model, context.facts.longest.prompt if context.facts.goldens
                           else context.facts.prompts[0])
    context.ex = _record(context, disconnect_mid_stream(context.server.base_url, CHAT, payload, after_chunks=2,
                                                        timeout=context.suite.settings.stream_timeout))


@then("the next chat request succeeds within the request timeout")
def step_next_ok(context):
    ex = _chat(context, context.facts.prompts[0], max_tokens=16)
    api_checks.check_chat_batch(ex)


@when("I ask the official OpenAI client for the model's first golden answer, batch and streamed")
def step_openai_client(context):
    from openai import OpenAI

    prompt = context.facts.prompts[0]
    client = OpenAI(base_url=context.server.base_url + "/v1", api_key="not-needed", max_retries=0,
                    timeout=context.suite.settings.request_timeout)
    messages = [{"role": "user", "content": prompt}]
    context.sdk_batch = client.chat.completions.create(model=context.model, messages=messages,
                                                       temperature=0).choices[0].message.content
    stream = client.chat.completions.create(model=context.model, messages=messages, temperature=0, stream=True)
    context.sdk_stream = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    context.ex = _chat(context, prompt)


@then("both equal the answer over raw HTTP")
def step_sdk_equal(context):
    raw = batch_content(context.ex)
    expect.same_text(raw, context.sdk_batch, "openai client, batch vs raw HTTP", context.ex.describe())
    expect.same_text(raw, context.sdk_stream, "openai client, stream vs raw HTTP", context.ex.describe())
