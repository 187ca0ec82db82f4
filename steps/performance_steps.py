"""Steps for the SUT's speed: one streamed answer timed; thresholds from -D (support/config.py)."""

import json

import allure
from behave import then, when

from support import expect, metrics


def _figures(context) -> dict:
    """The timed answer's figures (a failed check when they cannot be measured)."""
    sut = context.sut
    ex = sut.answer("streamed").evidence
    figures = metrics.stream_figures(ex)
    expect.that(figures is not None, "no complete streamed answer with content to time "
                "(expected HTTP 200, no error, at least one chunk with content)", ex.describe())
    expect.that(figures["tokens_per_s"] is not None,
                f"tokens per second not measurable: {figures['tokens']} token(s) "
                f"({figures['tokens_from']}) in {figures['stream_s']} s, at least 2 are needed", ex.describe())
    startup = getattr(sut.server, "startup_seconds", None)
    return {"model": sut.model, **figures, "server_startup_s": None if startup is None else round(startup, 4)}


@when("I time a streamed chat answer to the model's longest prompt at temperature 0")
def step_time_stream(context):
    facts = context.sut.facts
    context.sut.ask(facts.longest.prompt if facts.longest is not None else facts.prompts[0], stream=True)


@then("the time to first token and the tokens per second were measured and recorded")
def step_measured(context):
    figures = _figures(context)
    allure.attach(json.dumps(figures, indent=2), name=f"SUT speed of {figures['model']}",
                  attachment_type=allure.attachment_type.JSON)


@then("they meet the thresholds given with -D max_ttft_s and -D min_tokens_per_s, if any were given")
def step_thresholds(context):
    figures, limits = _figures(context), context.suite.settings.thresholds
    problems = metrics.threshold_problems(figures, limits)
    expect.that(not problems, f"{figures['model']} is too slow ({limits.describe()}): " + "; ".join(problems),
                json.dumps(figures))
