"""Steps for parity: one question, every way of asking it (batch, stream, CLI, a reference decode)."""

from __future__ import annotations

from behave import given, then, when

from support import expect, metrics, step_types  # noqa: F401  (step_types registers the parameter types)
from support.driver import Api
from support.model_facts import REASONING_END, knows_reasoning_markers, reasoning_split
from support.openai_http import Exchange

MAX_TOKENS = {Api.CHAT: 64, Api.TEXT: 32}  # both sides of every comparison capped alike
# Sampling made explicit on every side: the SUT's documented defaults except temperature 0...
SAME_SAMPLING = {"temperature": 0, "top_p": 0.9, "repetition_penalty": 1.1, "max_tokens": MAX_TOKENS[Api.CHAT]}
# ...and, against the reference decoder, plain greedy decoding.
GREEDY = {"temperature": 0, "top_p": 1.0, "repetition_penalty": 1.0, "max_tokens": MAX_TOKENS[Api.CHAT]}


def _answered(answer) -> None:
    """The exchange or command completed (its text is judged by the comparison, not here)."""
    ev = answer.evidence
    if isinstance(ev, Exchange):
        expect.that(ev.error is None and ev.status == 200, f"{answer.way}: expected HTTP 200 and a complete "
                    f"answer, got {ev.status}: {ev.error or 'see the body'}", ev.describe())
    else:
        expect.that(ev.returncode == 0, f"{answer.way}: expected `mlxk run` to succeed", ev.describe())


# --- asking -----------------------------------------------------------------------------------

@when("I ask for {api:Api} to each of the model's prompts, once in one piece and once streamed")
def step_pairs(context, api):
    for batch, stream in context.sut.ask_both_ways(context.sut.facts.prompts, api, max_tokens=MAX_TOKENS[api]):
        _answered(batch), _answered(stream)


@when("I ask the model's first prompt with the same sampling on the server and on the command line")
def step_server_and_cli(context):
    sut = context.sut
    for answer in (sut.ask(sut.facts.prompts[0], **SAME_SAMPLING), sut.ask_cli(sut.facts.prompts[0], **SAME_SAMPLING)):
        _answered(answer)


@when("I ask the model's first prompt on the command line in a terminal, streamed and with --no-stream")
def step_cli_terminal_pair(context):
    sut = context.sut
    for flags in ((), ("--no-stream",)):
        _answered(sut.ask_cli(sut.facts.prompts[0], *flags, terminal=True, **SAME_SAMPLING))


@when("I decode each of the model's prompts greedily with mlx-lm and ask the server the same with greedy sampling")
def step_reference(context):
    sut, prompts = context.sut, list(context.sut.facts.prompts)
    for p in prompts:
        _answered(sut.ask(p, **GREEDY))
    sut.decode_reference(prompts, GREEDY["max_tokens"])


@given("the model can show its reasoning")
def step_reasons(context):
    if not knows_reasoning_markers(context.suite.hf_home, context.sut.model):
        context.scenario.skip(f"{context.sut.model} does not reason: its tokenizer has no {REASONING_END} token")


@when("I ask the model's first prompt in one piece, streamed, and on the command line in a script and in a terminal")
def step_reasoning_modes(context):
    sut = context.sut
    prompt = sut.facts.prompts[0]
    for answer in (sut.ask(prompt, **SAME_SAMPLING), sut.ask(prompt, stream=True, **SAME_SAMPLING),
                   sut.ask_cli(prompt, **SAME_SAMPLING), sut.ask_cli(prompt, terminal=True, **SAME_SAMPLING)):
        _answered(answer)


# --- checking ---------------------------------------------------------------------------------

@then("each streamed answer is the batch answer, character for character")
def step_pairs_same(context):
    expect.all_same([(b.text, s.text, f"streamed vs batch answer to {b.prompt!r}", b.describe() + "\n" + s.describe())
                     for b, s in context.sut.pairs])


@then("streaming them took at most {factor:g} times as long as asking in one piece, plus {slack:g} second")
def step_stream_pace(context, factor, slack):
    metrics.check_stream_pace([(b.evidence, s.evidence) for b, s in context.sut.pairs], factor, slack)


@then("the command line prints the server's answer")
def step_cli_is_server(context):
    server, cli = context.sut.answers
    expect.same_text(server.text, cli.text, f"command-line vs server answer to {server.prompt!r}",
                     server.describe() + "\n" + cli.describe())


@then("the streamed output is the --no-stream output")
def step_cli_terminal_same(context):
    streamed, unstreamed = context.sut.answers
    expect.same_text(unstreamed.evidence.stdout, streamed.evidence.stdout,
                     f"terminal output of `mlxk run`, streamed vs --no-stream, for {streamed.prompt!r}",
                     unstreamed.describe() + "\n" + streamed.describe())


@then("each server answer is the reference answer")
def step_reference_same(context):
    ref = context.sut.reference
    expect.all_same([(ref.answer_for(a.prompt).text, a.text, f"server vs reference (mlx-lm greedy) answer to {a.prompt!r}",
                      f"--- reference:\n{ref.describe(a.prompt)}\n{a.describe()}") for a in context.sut.answers])


@then("the reasoning and the answer are the same in every mode")
def step_reasoning_same(context):
    first, *others = context.sut.answers
    reasoning, answer = reasoning_split(first.text)
    failures = []
    for other in others:
        other_reasoning, other_answer = reasoning_split(other.text)
        evidence = first.describe() + "\n" + other.describe()
        if (reasoning is None) != (other_reasoning is None):
            failures.append(f"{first.way} {'has no' if reasoning is None else 'has a'} {REASONING_END} split, "
                            f"{other.way} {'has no' if other_reasoning is None else 'has a'} one:\n"
                            f"  {first.way}: {first.text!r}\n  {other.way}: {other.text!r}\n{evidence}")
            continue
        parts = [("answer (the whole text: neither has a " + REASONING_END + ")", answer, other_answer)]
        if reasoning is not None:
            parts = [("reasoning (before " + REASONING_END + ")", reasoning, other_reasoning),
                     ("answer (after " + REASONING_END + ")", answer, other_answer)]
        for part, mine, theirs in parts:
            try:
                expect.same_text(mine, theirs, f"{part}, {first.way} vs {other.way}", evidence)
            except AssertionError as e:
                failures.append(str(e))
    expect.that(not failures, f"the reasoning split differs between modes ({len(failures)} difference(s)):\n\n"
                + "\n\n".join(failures))
