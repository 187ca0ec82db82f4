"""Steps for questions about images (server and command line), over `context.sut`."""

from dataclasses import replace

from behave import given, then, when

from support import api_checks, expect, schemas, step_types  # noqa: F401  (step_types registers the parameter types)
from support import vision_checks as vc
from support.cli_runner import CliResult
from support.errors import HarnessError
from support.model_facts import check_no_visible_tokens
from support.openai_http import Exchange
from support.request_catalogue import expected_status

REFERENCE_MAX_TOKENS = 32


def _first(sut):
    return sut.vision_goldens()[0]


def _pair(sut):
    """The model's (first) golden question about two images."""
    pair = next((g for g in sut.vision_goldens() if len(g.images) > 1), None)
    if pair is None:
        raise HarnessError(f"{sut.model} has no golden question about two images")
    return pair


def _answers(context):
    found = context.sut.image_answers
    if not found:
        raise HarnessError("the scenario asked no question about an image before checking the answers")
    return found


@given("a server for a text-only portfolio chat model")
def step_text_only(context):
    model = context.sut.any_text_only_chat_model()
    if model is None:
        context.scenario.skip("the portfolio (as selected) has no text-only chat model")
        return
    context.sut.use(model, True)


@when("I ask the model its first question about an image, in one piece and streamed")
def step_first_both(context):
    context.sut.ask_about_images_both_ways([_first(context.sut)])


@when("I ask the model its first question about an image, streamed")
def step_first_streamed(context):
    context.sut.ask_about_images(_first(context.sut), stream=True)


@when("I ask the model each of its questions about images, in one piece and streamed")
def step_each_both(context):
    context.sut.ask_about_images_both_ways(context.sut.vision_goldens())


@when("I ask the model its question about two images without saying how to batch them")
def step_two_default_chunk(context):
    context.sut.ask_about_images(replace(_pair(context.sut), chunk=None))


@when("I ask the model its question about two images, one image at a time")
def step_two_one_at_a_time(context):
    context.sut.ask_about_images(replace(_pair(context.sut), chunk=1))


@when("I ask the model its first question about an image on the command line {output:Output}")
def step_cli_first(context, output):
    context.sut.ask_cli_about_images(_first(context.sut), *output)


@when("I ask the model one question about images of each kind on the command line as plain text")
def step_cli_each_kind(context):
    kinds = {}
    for g in context.sut.vision_goldens():
        kinds.setdefault((g.prompt, len(g.images)), g)
    for g in kinds.values():
        context.sut.ask_cli_about_images(g)


@when("I ask the model its first question about an image on the server and on the command line")
def step_server_and_cli(context):
    sut = context.sut
    sut.ask_about_images(_first(sut))
    sut.ask_cli_about_images(_first(sut))


@when("I decode each of the model's questions about images greedily with mlx-vlm and ask the server the same")
def step_reference(context):
    sut = context.sut
    goldens = sut.vision_goldens()
    sut.decode_vision_reference(goldens, REFERENCE_MAX_TOKENS)
    for g in goldens:
        sut.ask_about_images(g, max_tokens=REFERENCE_MAX_TOKENS)


@when("I send each bad image request, each followed by a good question about an image:")
def step_bad_images(context):
    context.sut.send_bad_images((row["bad image request"], expected_status(row["status"])) for row in context.table)


@when("I ask the model about an image file that does not exist on the command line, as plain text and with --json")
def step_cli_missing(context):
    context.sut.ask_cli_missing_image()
    context.sut.ask_cli_missing_image("--json")


@when("I ask the model about a file that is not an image on the command line with --json")
def step_cli_not_an_image(context):
    context.sut.ask_cli_not_an_image("--json")


@then('each answer about an image is well-formed, ends with finish reason "{reason}" and reports its usage')
def step_well_formed(context, reason):
    for golden, answer in _answers(context):
        api_checks.check_finish_reason(answer.evidence, reason, f"{answer.way} answer to {golden.describe()}")
        vc.check_reports_usage(answer.evidence, f"{answer.way} answer to {golden.describe()}")


@then("no answer about an image shows an end or template token")
def step_no_tokens(context):
    forbidden = tuple(sorted(set(context.sut.facts.forbidden_tokens) | set(vc.VISION_FORBIDDEN)))
    for golden, answer in _answers(context):
        check_no_visible_tokens(vc.model_text(answer.text), forbidden,
                                f"{answer.way} answer to {golden.describe()}", answer.describe())


@then("no answer about an image holds anything but the model's text")
def step_text_alone(context):
    for golden, answer in _answers(context):
        vc.check_text_alone(answer.text, f"{answer.way} answer to {golden.describe()}", answer.describe())


@then("the model's text in each answer, after any image table, is the golden answer of its question")
def step_golden(context):
    for golden, answer in _answers(context):
        expect.same_text(golden.answer, vc.model_text(answer.text), f"{answer.way} answer to {golden.describe()}",
                         answer.describe())


@then("the answer holds, for each image in the order sent, the golden answer about that image alone")
def step_in_image_order(context):
    golden, answer = _answers(context)[-1]
    vc.check_answered_in_image_order(answer.text, vc.answers_alone(context.sut.vision_goldens(), golden),
                                     f"{answer.way} answer to {golden.describe()}", answer.describe())


@then("the streamed answer came in more than one content chunk")
def step_pieces(context):
    golden, answer = _answers(context)[-1]
    vc.check_streamed_in_pieces(answer.evidence, f"streamed answer to {golden.describe()}")


@then("each answer about an image on the command line succeeded")
def step_cli_ok(context):
    for golden, answer in _answers(context):
        r = answer.evidence
        expect.that(r.returncode == 0 and vc.model_text(answer.text).strip() != "",
                    f"{answer.way} about {golden.describe()}: expected exit code 0 and an answer", answer.describe())


@then("the JSON response is one document that matches the run schema")
def step_cli_json(context):
    context.sut.answer("json").document(schemas.CLI_RUN_SUCCESS)


@then("each streamed answer about an image is the batch answer, character for character")
def step_pairs_same(context):
    expect.all_same([(b.text, s.text, f"streamed vs batch answer to {b.prompt!r}", b.describe() + "\n" + s.describe())
                     for b, s in context.sut.pairs])


@then("the model's text is the same on the command line as on the server")
def step_cli_is_server(context):
    (_, server), (_, cli) = _answers(context)[-2:]
    expect.same_text(vc.model_text(server.text), vc.model_text(cli.text), "command line vs server answer about "
                     "an image (the model's text)", server.describe() + "\n" + cli.describe())


@then("the model's text in each server answer, after any image table, is the reference answer")
def step_reference_same(context):
    ref = context.sut.vision_reference
    server = [a for _, a in _answers(context)]
    comparisons = [(r.text, vc.model_text(a.text), f"server vs mlx-vlm answer to {r.question.prompt!r} "
                    f"with {len(r.question.images)} image(s)", ref.describe() + "\n" + a.describe())
                   for r, a in zip(ref.answers, server, strict=True)]
    expect.all_same(comparisons)


@then("no error message shows a file path of the machine")
def step_no_paths(context):
    for item in context.sut.evidence:
        text = item.body_text if isinstance(item, Exchange) else item.stdout + item.stderr
        if isinstance(item, Exchange) and (item.status or 0) < 400:
            continue
        vc.check_no_paths(text, "error message", item.describe())


@then("both commands fail with exit code {code:d} and name the missing file")
def step_missing_named(context, code):
    runs = [e for e in context.sut.evidence if isinstance(e, CliResult)][-2:]
    for r in runs:
        expect.that(r.returncode == code, f"expected exit code {code}, got {r.returncode}", r.describe())
        expect.that(vc.MISSING_IMAGE in r.stdout + r.stderr and "None:" not in r.stdout + r.stderr,
                    f"expected the output to name {vc.MISSING_IMAGE!r} (and no 'None:' placeholder)", r.describe())


@then("the --json command prints exactly one JSON error document")
def step_json_error(context):
    r = next(e for e in reversed(context.sut.evidence) if isinstance(e, CliResult) and "--json" in e.argv)
    doc = schemas.parse_one_document(r.stdout, "mlxk run --json (error)", r.describe())
    schemas.validate(doc, schemas.CLI_RUN_ERROR, "mlxk run --json (error)", r.describe())
