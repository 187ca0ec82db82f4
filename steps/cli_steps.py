"""Steps for the command line: `mlxk run`, `list`, `show` as a user or a script calls them."""

from behave import given, then, when

from support import expect, schemas
from support.evidence import record
from support.cli_runner import plain_answer, run_cli

NO_PROMPT_LIMIT = 20  # seconds: a CLI that has not noticed the missing prompt by then hangs


def _cli(context, *args):
    suite = context.suite
    result = run_cli(suite.settings.mlxk, args, suite.hf_home, suite.settings.cli_timeout)
    record(context, result)
    context.cli = result
    return result


def _ask(context, model, prompt, *flags):
    context.suite.make_room_for_process(model)  # the run loads the model beside resident servers
    return _cli(context, "run", model, prompt, "--temperature", "0", *flags)


@given('the portfolio model "{model}"')
def step_portfolio_model(context, model):
    context.model = model
    context.facts = context.suite.facts(model)


@given("any portfolio chat model")
def step_any_chat_model(context):
    step_portfolio_model(context, context.suite.first_runnable_chat_model())


@when("I ask the model its first prompt on the command line")
def step_ask_first(context):
    context.prompt = context.facts.prompts[0]
    context.plain = _ask(context, context.model, context.prompt)


@when("I ask the same prompt on the command line with --json")
def step_ask_json(context):
    _ask(context, context.model, context.prompt, "--json")


@when("I ask the model its longest prompt on the command line with --json and at most {n:d} tokens")
def step_ask_limited(context, n):
    context.prompt = context.facts.longest.prompt
    _ask(context, context.model, context.prompt, "--json", "--max-tokens", str(n))


@when('I ask the model "{model}" a prompt on the command line')
def step_ask_unknown(context, model):
    _ask(context, model, "Say hello.")


@when('I ask the model "{model}" a prompt on the command line with --json')
def step_ask_unknown_json(context, model):
    _ask(context, model, "Say hello.", "--json")


@when("I run the model on the command line without a prompt and without a terminal")
def step_no_prompt(context):
    suite = context.suite
    timeout = min(suite.settings.cli_timeout, NO_PROMPT_LIMIT)
    suite.make_room_for_process(context.model)
    context.cli = run_cli(suite.settings.mlxk, ("run", context.model), suite.hf_home, timeout)
    record(context, context.cli)


@when("I list the models on the command line with --json")
def step_list(context):
    _cli(context, "list", "--json")


@when("I show the model on the command line with --json")
def step_show(context):
    _cli(context, "show", context.model, "--json")


@then("the command succeeds with a non-empty answer")
def step_success(context):
    r = context.cli
    expect.that(r.returncode == 0 and plain_answer(r).strip() != "",
                "expected exit code 0 and an answer on stdout", r.describe())


@then("the printed answer shows no end or template token")
def step_no_tokens(context):
    expect.no_visible_tokens(plain_answer(context.plain), context.facts.forbidden_tokens,
                             "the command-line answer", context.plain.describe())


@then("the printed answer is the model's golden answer")
def step_golden(context):
    golden = context.facts.golden_for(context.prompt)
    expect.same_text(golden, plain_answer(context.plain), f"answer of {context.model} to {context.prompt!r}",
                     context.plain.describe())


@then("stdout holds exactly one JSON document that matches the {kind} schema")
def step_json_schema(context, kind):
    r = context.cli
    doc = schemas.parse_one_document(r.stdout, f"mlxk {kind} --json", r.describe())
    schemas.validate(doc, {"run": schemas.CLI_RUN_SUCCESS, "list": schemas.CLI_LIST}[kind],
                     f"mlxk {kind} --json", r.describe())
    context.doc = doc


@then("the JSON response equals the plain answer")
def step_json_equals_plain(context):
    expect.same_text(plain_answer(context.plain), context.doc["data"]["response"],
                     "--json response vs the plain answer", context.cli.describe())


@then("the JSON response shows no end or template token")
def step_json_no_tokens(context):
    expect.no_visible_tokens(context.doc["data"]["response"], context.facts.forbidden_tokens,
                             "the --json response", context.cli.describe())


@then("the JSON response is a strict prefix of the golden answer")
def step_json_prefix(context):
    r = context.cli
    doc = schemas.parse_one_document(r.stdout, "mlxk run --json", r.describe())
    schemas.validate(doc, schemas.CLI_RUN_SUCCESS, "mlxk run --json", r.describe())
    context.doc, golden, got = doc, context.facts.longest.answer, doc["data"]["response"]
    expect.that(got != golden and golden.startswith(got),
                f"expected a truncated start of {golden[:60]!r}..., got {got!r}", r.describe())


@then('the JSON finish reason is "{reason}"')
def step_json_finish(context, reason):
    got = context.doc["data"].get("finish_reason")
    expect.that(got == reason, f"expected finish_reason {reason!r}, got {got!r}", context.cli.describe())


@then("the command fails with exit code {code:d}")
def step_fails_with(context, code):
    r = context.cli
    expect.that(r.returncode == code, f"expected exit code {code}, got {r.returncode}", r.describe())


@then('its output names "{text}"')
def step_output_names(context, text):
    r = context.cli
    expect.that(text in r.stdout + r.stderr, f"expected the output to name {text!r}", r.describe())


@then('stdout holds exactly one JSON error document naming "{text}"')
def step_json_error(context, text):
    r = context.cli
    doc = schemas.parse_one_document(r.stdout, "mlxk run --json (error)", r.describe())
    schemas.validate(doc, schemas.CLI_ERROR, "mlxk run --json (error)", r.describe())
    expect.that(text in doc["error"]["message"], f"expected the error message to name {text!r}", r.describe())


@then("the command ends by itself within {seconds:d} seconds")
def step_ends(context, seconds):
    r = context.cli
    expect.that(not r.timed_out and r.seconds <= seconds,
                f"expected the command to end by itself within {seconds} s; it ran {r.seconds:.1f} s"
                + (" and was killed" if r.timed_out else ""), r.describe())


@then("the command fails with a non-zero exit code and a message")
def step_fails_message(context):
    r = context.cli
    expect.that(r.returncode not in (0, None) and (r.stdout + r.stderr).strip() != "",
                "expected a non-zero exit code and a message", r.describe())


@then("every discovered portfolio model is listed with the fields discovery relies on")
def step_list_has_portfolio(context):
    listed = {m["name"] for m in context.doc["data"]["models"]}
    wanted = {m.id for m in context.suite.portfolio.text}
    missing = sorted(wanted - listed)
    expect.that(not missing, f"models missing from mlxk list --json: {missing}", context.cli.describe())


@then("the command succeeds with one JSON document about the model")
def step_show_ok(context):
    r = context.cli
    doc = schemas.parse_one_document(r.stdout, "mlxk show --json", r.describe())
    expect.that(r.returncode == 0 and doc.get("status") == "success" and context.model in r.stdout,
                f"expected exit 0 and status success naming {context.model}", r.describe())
