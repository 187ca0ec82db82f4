"""Steps for the OpenAI-compatible server: each a few lines over the scenario's driver (`context.sut`)."""

from behave import given, then, when

from support import api_checks, expect, step_types  # noqa: F401  (step_types registers the parameter types)
from support.driver import Api
from support.model_facts import check_no_visible_tokens
from support.openai_http import Exchange
from support.request_catalogue import NOT_INSTALLED, expected_status, stop_strings

TEXT_MAX_TOKENS = 32  # a raw-prompt completion of a chat model can run on: capped


# --- which model, and whether its server runs --------------------------------------------------

@given('{server:Subject} "{model}"')
def step_model(context, server, model):
    context.sut.use(model, server)


@given("{server:AnyChatModel}")
def step_any_chat_model(context, server):
    context.sut.use(context.sut.any_chat_model(), server)


# --- asking ---------------------------------------------------------------------------------

@when("I ask for the server's {resource:Resource}")
def step_resource(context, resource):
    context.sut.get(resource)


@when("I ask for {kind:AnswerKind} to the model's first prompt")
def step_first_prompt(context, kind):
    api, stream = kind
    sut = context.sut
    sut.ask(sut.facts.prompts[0], api, stream, **({"max_tokens": TEXT_MAX_TOKENS} if api is Api.TEXT else {}))


@when("I ask for {kind:AnswerKind} to each of the model's golden prompts")
def step_golden_prompts(context, kind):
    api, stream = kind
    for golden in context.sut.facts.goldens:
        context.sut.ask(golden.prompt, api, stream)


@when("I ask for a chat answer to the model's longest golden prompt with at most {n:d} tokens")
def step_limited(context, n):
    context.sut.ask(context.sut.facts.longest.prompt, max_tokens=n)


@when("I ask for a chat answer to the model's longest golden prompt with {count:Stops}")
def step_stop_strings(context, count):
    sut = context.sut
    stops = stop_strings(sut.facts.longest.answer, count)
    sut.ask(sut.facts.longest.prompt, stop=stops[0] if count == 1 else [stops[1], stops[0]])


@when("I ask for the same answer streamed")
def step_same_streamed(context):
    context.sut.ask_again_streamed()


@when("I send each bad request, each followed by a valid request:")
def step_bad_requests(context):
    context.sut.send_bad_requests((row["bad request"], expected_status(row["status"])) for row in context.table)


@when("I send four golden prompts at the same time")
def step_concurrent(context):
    prompts = [g.prompt for g in context.sut.facts.goldens]
    context.sut.ask_at_once((prompts * 4)[:4])


@when("one client asks for a model that is not installed while another asks the served model")
def step_not_installed_beside_served(context):
    context.sut.race_not_installed()


@when("a streaming client hangs up after the first chunks")
def step_hang_up(context):
    context.sut.hang_up_mid_stream()


@when("I ask the official OpenAI client for the model's first golden answer, batch and streamed")
def step_openai_client(context):
    sut = context.sut
    sut.ask_openai_client(sut.facts.prompts[0])
    sut.ask(sut.facts.prompts[0])


# --- checking -------------------------------------------------------------------------------

@then("the server reports that it is healthy")
def step_healthy(context):
    api_checks.check_health(context.sut.last)


@then("the list holds the served model")
def step_models_hold(context):
    api_checks.check_models(context.sut.last, context.sut.model)


@then("the answer is a well-formed {form:Form}")
def step_well_formed(context, form):
    form(context.sut.answer("any").evidence)


@then("{which:WhichAnswer} shows no end or template token")
def step_no_tokens(context, which):
    answer = context.sut.answer(which)
    check_no_visible_tokens(answer.text, context.sut.facts.forbidden_tokens, answer.way, answer.describe())


@then("every answer is the golden answer of its own prompt")
def step_every_golden(context):
    sut = context.sut
    for answer in sut.answers:
        api_checks.check_well_formed(answer.evidence)
        expect.same_text(sut.facts.golden_for(answer.prompt), answer.text,
                         f"{answer.way} answer to {answer.prompt!r}", answer.describe())


@then('every answer ends with finish reason "{reason}"')
def step_every_finish(context, reason):
    for answer in context.sut.answers:
        api_checks.check_finish_reason(answer.evidence, reason, f"answer to {answer.prompt!r}")


@then("no answer holds a replacement character")
def step_no_fffd(context):
    for answer in context.sut.answers:
        expect.that("\ufffd" not in answer.text,
                    f"{answer.way} answer to {answer.prompt!r} holds U+FFFD (a split multibyte character)",
                    answer.describe())


@then('the answer ends with finish reason "{reason}"')
def step_finish(context, reason):
    answer = context.sut.answer("any")
    if isinstance(answer.evidence, Exchange):
        api_checks.check_finish_reason(answer.evidence, reason, answer.way)
    else:
        got = answer.document()["data"].get("finish_reason")
        expect.that(got == reason, f"{answer.way}: expected finish_reason {reason!r}, got {got!r}", answer.describe())


@then("the answer used exactly {n:d} completion tokens")
def step_tokens(context, n):
    api_checks.check_usage_tokens(context.sut.answer("any").evidence, n)


@then("the answer is a strict prefix of the golden answer")
def step_prefix(context):
    answer, golden = context.sut.answer("any"), context.sut.facts.longest.answer
    got = answer.text
    expect.that(got != golden and golden.startswith(got),
                f"expected a truncated start of {golden[:60]!r}..., got {got!r}", answer.describe())


@then("both answers end right before the earliest stop string and never show it")
def step_stopped(context):
    full = context.sut.facts.longest.answer
    for answer in context.sut.answers:
        stop = answer.evidence.request_json["stop"]
        with expect.labelled("streamed answer" if answer.streamed else "batch answer"):
            api_checks.check_well_formed(answer.evidence)
            api_checks.check_stopped_before(answer.text, full, stop, answer.evidence.describe())


@then("each bad request got a clean client error and the valid request after it succeeded")
def step_bad_requests_handled(context):
    for outcome in context.sut.bad_requests:
        with expect.labelled(f"bad request '{outcome.name}'"):
            api_checks.check_error(outcome.bad, outcome.expected_status,
                                   mentions=NOT_INSTALLED if outcome.name == "an unknown model" else None)
        expect.that(outcome.next_valid.status == 200,
                    f"after {outcome.name}, a valid request got {outcome.next_valid.status}",
                    outcome.next_valid.describe())


@then("the model that is not installed is refused within {limit:g} seconds, without holding up the served model")
def step_refused_promptly(context, limit):
    race = context.sut.refusal
    api_checks.check_prompt_refusal(race.refused, race.meanwhile, race.alone, NOT_INSTALLED, limit)


@then("both equal the answer over raw HTTP")
def step_sdk_equal(context):
    *sdk, raw = context.sut.answers
    for answer in sdk:
        expect.same_text(raw.text, answer.text, f"{answer.way} vs raw HTTP", answer.describe() + "\n" + raw.describe())
