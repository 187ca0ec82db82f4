"""Steps for the command line (`mlxk run`, `list`, `show` as a user or a script calls them), over `context.sut`."""

from behave import then, when

from support import expect, listing_checks, schemas, step_types  # noqa: F401  (step_types registers the parameter types)
from support.cli_runner import plain_answer


@when("I ask the model its first prompt on the command line {output:Output}")
def step_ask_first(context, output):
    context.sut.ask_cli(context.sut.facts.prompts[0], *output)


@when("I ask the model its longest prompt on the command line with --json and at most {n:d} tokens")
def step_ask_limited(context, n):
    context.sut.ask_cli(context.sut.facts.longest.prompt, "--json", max_tokens=n)


@when('I ask the model "{model}" a prompt on the command line {output:Output}')
def step_ask_other_model(context, model, output):
    context.sut.ask_cli("Say hello.", *output, model=model)


@when("I run the model on the command line without a prompt and without a terminal")
def step_no_prompt(context):
    context.sut.run_without_prompt()


@when("I list the models on the command line with --json")
def step_list(context):
    context.sut.list_models_cli()


@when("I show the model on the command line with --json")
def step_show(context):
    context.sut.show_model_cli()


@then("the command succeeds with a non-empty answer")
def step_success(context):
    r = context.sut.last
    expect.that(r.returncode == 0 and plain_answer(r).strip() != "",
                "expected exit code 0 and an answer on stdout", r.describe())


@then("{which:WhichAnswer} is the model's golden answer")
def step_golden(context, which):
    answer = context.sut.answer(which)
    expect.same_text(context.sut.facts.golden_for(answer.prompt), answer.text,
                     f"{answer.way} answer of {context.sut.model} to {answer.prompt!r}", answer.describe())


@then("stdout holds exactly one JSON document that matches the {schema:Document} schema")
def step_json_schema(context, schema):
    r = context.sut.last
    what = " ".join(r.argv[-2:])
    schemas.validate(schemas.parse_one_document(r.stdout, what, r.describe()), schema, what, r.describe())


@then("the JSON response equals the printed answer")
def step_json_equals_plain(context):
    printed, document = context.sut.answer("printed"), context.sut.answer("json")
    expect.same_text(printed.text, document.text, "--json response vs the printed answer",
                     printed.describe() + "\n" + document.describe())


@then("the command fails with exit code {code:d}")
def step_fails_with(context, code):
    r = context.sut.last
    expect.that(r.returncode == code, f"expected exit code {code}, got {r.returncode}", r.describe())


@then('its output names "{text}"')
def step_output_names(context, text):
    r = context.sut.last
    expect.that(text in r.stdout + r.stderr, f"expected the output to name {text!r}", r.describe())


@then('stdout holds exactly one JSON error document naming "{text}"')
def step_json_error(context, text):
    r = context.sut.last
    doc = schemas.parse_one_document(r.stdout, "mlxk run --json (error)", r.describe())
    schemas.validate(doc, schemas.CLI_ERROR, "mlxk run --json (error)", r.describe())
    expect.that(text in doc["error"]["message"], f"expected the error message to name {text!r}", r.describe())


@then("the command ends by itself at most {seconds:d} seconds later than a one-token answer does")
def step_ends(context, seconds):
    r, pace = context.sut.last, context.sut.no_prompt_pace
    limit = pace.seconds + seconds
    expect.that(not r.timed_out and r.seconds <= limit,
                f"expected the command to end by itself within {limit:.1f} s (a one-token answer took "
                f"{pace.seconds:.1f} s, + {seconds} s); it ran {r.seconds:.1f} s"
                + (" and was killed" if r.timed_out else ""), f"{r.describe()}\n--- one-token answer:\n{pace.describe()}")


@then("the command fails with a non-zero exit code and a message")
def step_fails_message(context):
    r = context.sut.last
    expect.that(r.returncode not in (0, None) and (r.stdout + r.stderr).strip() != "",
                "expected a non-zero exit code and a message", r.describe())


@then("every discovered portfolio model is listed with the fields discovery relies on")
def step_list_has_portfolio(context):
    r = context.sut.last
    doc = schemas.parse_one_document(r.stdout, "mlxk list --json", r.describe())
    listed = {m["name"] for m in doc["data"]["models"]}
    missing = sorted({m.id for m in context.suite.portfolio.models} - listed)
    expect.that(not missing, f"models missing from mlxk list --json: {missing}", r.describe())


@then("every model of the demo manifest is listed with its intended outcome")
def step_list_matches_manifest(context):
    r = context.sut.last
    doc = schemas.parse_one_document(r.stdout, "mlxk list --json", r.describe())
    listing_checks.check_against_manifest(doc["data"]["models"], context.sut.manifest, context.sut.budget,
                                          r.describe())


@then("the command succeeds with one JSON document about the model")
def step_show_ok(context):
    r, model = context.sut.last, context.sut.model
    doc = schemas.parse_one_document(r.stdout, "mlxk show --json", r.describe())
    expect.that(r.returncode == 0 and doc.get("status") == "success" and model in r.stdout,
                f"expected exit 0 and status success naming {model}", r.describe())
