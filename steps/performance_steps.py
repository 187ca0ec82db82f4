"""Steps for the SUT's speed: one streamed answer timed; thresholds from userdata (support/metrics.py)."""

import json

import allure
from behave import then, when

from support import expect, metrics
from support.evidence import record
from support.openai_http import chat_payload
from support.request_catalogue import CHAT


@when("I time a streamed chat answer to the model's longest prompt at temperature 0")
def step_time_stream(context):
    facts = context.facts
    prompt = facts.longest.prompt if facts.longest is not None else facts.prompts[0]
    context.ex = record(context, context.client.stream(CHAT, chat_payload(context.model, prompt)))


@then("the time to first token and the tokens per second were measured and recorded")
def step_measured(context):
    ex = context.ex
    figures = metrics.stream_figures(ex)
    expect.that(figures is not None, "no complete streamed answer with content to time "
                "(expected HTTP 200, no error, at least one chunk with content)", ex.describe())
    expect.that(figures["tokens_per_s"] is not None,
                f"tokens per second not measurable: {figures['tokens']} token(s) "
                f"({figures['tokens_from']}) in {figures['stream_s']} s, at least 2 are needed", ex.describe())
    startup = getattr(context.server, "startup_seconds", None)
    context.figures = {"model": context.model, **figures,
                       "server_startup_s": None if startup is None else round(startup, 4)}
    allure.attach(json.dumps(context.figures, indent=2), name=f"SUT speed of {context.model}",
                  attachment_type=allure.attachment_type.JSON)


@then("they meet the thresholds given with -D max_ttft_s and -D min_tokens_per_s, if any were given")
def step_thresholds(context):
    limits = context.thresholds
    problems = metrics.threshold_problems(context.figures, limits)
    expect.that(not problems, f"{context.model} is too slow ({limits.describe()}): " + "; ".join(problems),
                json.dumps(context.figures))
