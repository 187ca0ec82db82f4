"""Steps for parity: one question, every way of asking it (batch, stream, CLI, a reference decode)."""

from __future__ import annotations

from pathlib import Path

from behave import given, then, when
from huggingface_hub import try_to_load_from_cache

from support import expect, metrics, reference_decoder
from support.cli_runner import CliResult, plain_answer, run_cli, run_in_terminal
from support.evidence import record
from support.openai_http import batch_content, chat_payload, completion_payload, joined_content
from support.request_catalogue import CHAT

COMPLETIONS = "/v1/completions"
CHAT_MAX_TOKENS = 64  # every chat comparison caps both sides alike (the demo's long answer is cut)
TEXT_MAX_TOKENS = 32
# Sampling made explicit on both sides: the SUT's documented defaults except temperature 0...
SAME_SAMPLING = {"temperature": 0, "top_p": 0.9, "repetition_penalty": 1.1}
# ...and, against the reference decoder, plain greedy decoding.
GREEDY = {"temperature": 0, "top_p": 1.0, "repetition_penalty": 1.0}
REASONING_END = "</think>"
REASONING_START = "<think>"


# --- plumbing ----------------------------------------------------------------------------

def _answered(ex) -> None:
    """The exchange completed with 200 (its content is judged by the comparison, not here)."""
    expect.that(ex.error is None and ex.status == 200,
                f"expected HTTP 200 and a complete answer, got {ex.status}: {ex.error or 'see the body'}",
                ex.describe())


def _ask(context, path: str, payload: dict, stream: bool):
    client = context.client
    ex = client.stream(path, payload) if stream else client.post_json(path, payload)
    record(context, ex)
    _answered(ex)
    return ex


def _cli_flags(sampling: dict) -> tuple[str, ...]:
    return ("--temperature", str(sampling["temperature"]), "--top-p", str(sampling["top_p"]),
            "--repetition-penalty", str(sampling["repetition_penalty"]), "--max-tokens", str(CHAT_MAX_TOKENS))


def _cli(context, prompt: str, *extra: str, terminal: bool = False) -> CliResult:
    suite = context.suite
    args = ("run", context.model, prompt, *_cli_flags(SAME_SAMPLING), *extra)
    run = run_in_terminal if terminal else run_cli
    suite.make_room_for_process(context.model)  # the run loads the model beside resident servers
    result = record(context, run(suite.settings.mlxk, args, suite.hf_home, suite.settings.cli_timeout))
    expect.that(result.returncode == 0, "expected `mlxk run` to succeed"
                + (" (stdout on a pseudo-terminal)" if terminal else ""), result.describe())
    return result


def _all_same(comparisons) -> None:
    """`expect.same_text` over (expected, actual, what, evidence) items; one failure names them all."""
    failures = []
    for expected, actual, what, evidence in comparisons:
        try:
            expect.same_text(expected, actual, what, evidence)
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        raise AssertionError(f"{len(failures)} of {len(comparisons)} comparisons differ:\n\n"
                             + "\n\n".join(failures))


def _both(label_a: str, a, label_b: str, b) -> str:
    return f"--- {label_a}:\n{a.describe()}\n--- {label_b}:\n{b.describe()}"


# --- reasoning -------------------------------------------------------------------------------

def _knows_reasoning_markers(hf_home: Path, model_id: str) -> bool:
    """The model's tokenizer has a `</think>` token (special or not): it can show its reasoning."""
    import json

    path = try_to_load_from_cache(model_id, "tokenizer.json", cache_dir=hf_home / "hub")
    if not isinstance(path, str):
        return False
    added = json.loads(Path(path).read_text(encoding="utf-8")).get("added_tokens", [])
    return any(t.get("content") == REASONING_END for t in added)


def reasoning_split(text: str) -> tuple[str | None, str]:
    """(reasoning, answer): the text up to `</think>` (without `<think>`) and the text after it;
    (None, text) when there is no `</think>`."""
    if REASONING_END not in text:
        return None, text
    reasoning, answer = text.split(REASONING_END, 1)
    return reasoning.split(REASONING_START, 1)[-1], answer


# --- steps: streaming vs batch ------------------------------------------------------------------

def _ask_both_ways(context, path: str, payloads) -> None:
    """Each (prompt, payload) asked in one piece and streamed: `context.pairs` of (prompt, batch, stream)."""
    context.pairs = [(prompt, _ask(context, path, payload, stream=False), _ask(context, path, payload, stream=True))
                     for prompt, payload in payloads]


@when("I ask each of the model's prompts at temperature 0, once in one piece and once streamed")
def step_chat_pairs(context):
    _ask_both_ways(context, CHAT, [(p, chat_payload(context.model, p, max_tokens=CHAT_MAX_TOKENS))
                                   for p in context.facts.prompts])


@when("I ask for a text completion of each of the model's prompts, once in one piece and once streamed")
def step_text_pairs(context):
    _ask_both_ways(context, COMPLETIONS, [(p, completion_payload(context.model, p, max_tokens=TEXT_MAX_TOKENS))
                                          for p in context.facts.prompts])


@then("each streamed answer is the batch answer, character for character")
@then("each streamed completion is the batch completion, character for character")
def step_pairs_same(context):
    _all_same([(batch_content(b), joined_content(s), f"streamed vs batch answer to {p!r}",
                _both("batch", b, "stream", s)) for p, b, s in context.pairs])


@then("streaming them took at most {factor:g} times as long as asking in one piece, plus {slack:g} second")
def step_stream_pace(context, factor, slack):
    metrics.check_stream_pace([(b, s) for _, b, s in context.pairs], factor, slack)


# --- steps: server vs command line ------------------------------------------------------------

@when("I ask the model's first prompt with the same sampling on the server and on the command line")
def step_server_and_cli(context):
    context.prompt = context.facts.prompts[0]
    payload = chat_payload(context.model, context.prompt, max_tokens=CHAT_MAX_TOKENS, **SAME_SAMPLING)
    context.ex = _ask(context, CHAT, payload, stream=False)
    context.cli = _cli(context, context.prompt)


@then("the command line prints the server's answer")
def step_cli_is_server(context):
    expect.same_text(batch_content(context.ex), plain_answer(context.cli),
                     f"command-line vs server answer to {context.prompt!r}",
                     _both("server", context.ex, "command line", context.cli))


# --- steps: command line streamed vs --no-stream ----------------------------------------------

@when("I ask the model's first prompt on the command line in a terminal, streamed and with --no-stream")
def step_cli_terminal_pair(context):
    context.prompt = context.facts.prompts[0]
    context.streamed = _cli(context, context.prompt, terminal=True)
    context.unstreamed = _cli(context, context.prompt, "--no-stream", terminal=True)


@then("the streamed output is the --no-stream output")
def step_cli_terminal_same(context):
    expect.same_text(context.unstreamed.stdout, context.streamed.stdout,
                     f"terminal output of `mlxk run`, streamed vs --no-stream, for {context.prompt!r}",
                     _both("--no-stream (stdout on a pseudo-terminal)", context.unstreamed,
                           "streamed (stdout on a pseudo-terminal)", context.streamed))


# --- steps: the reference decoder -------------------------------------------------------------

@when("I decode each of the model's prompts greedily with mlx-lm and ask the server the same with greedy sampling")
def step_reference(context):
    suite, prompts = context.suite, list(context.facts.prompts)
    context.answers = [(p, _ask(context, CHAT, chat_payload(context.model, p, max_tokens=CHAT_MAX_TOKENS,
                                                            **GREEDY), stream=False)) for p in prompts]
    suite.make_room_for_process(context.model)  # the decoder loads the model a second time
    path = reference_decoder.snapshot_path(context.model, suite.hf_home)
    result = record(context, reference_decoder.run(path, prompts, CHAT_MAX_TOKENS, suite.settings.cli_timeout))
    context.reference = reference_decoder.parse(result)


@then("each server answer is the reference answer")
def step_reference_same(context):
    ref = context.reference
    _all_same([(ref.answer_for(p).text, batch_content(ex), f"server vs reference (mlx-lm greedy) answer to {p!r}",
                f"--- reference:\n{ref.describe(p)}\n--- server:\n{ex.describe()}") for p, ex in context.answers])


# --- steps: reasoning -------------------------------------------------------------------------

@given("the model can show its reasoning")
def step_reasons(context):
    if not _knows_reasoning_markers(context.suite.hf_home, context.model):
        context.scenario.skip(f"{context.model} does not reason: its tokenizer has no {REASONING_END} token")


@when("I ask the model's first prompt in one piece, streamed, and on the command line in a script and in a terminal")
def step_reasoning_modes(context):
    prompt = context.prompt = context.facts.prompts[0]
    payload = chat_payload(context.model, prompt, max_tokens=CHAT_MAX_TOKENS, **SAME_SAMPLING)
    batch, stream = _ask(context, CHAT, payload, stream=False), _ask(context, CHAT, payload, stream=True)
    script, terminal = _cli(context, prompt), _cli(context, prompt, terminal=True)
    context.modes = [("server, one piece", batch_content(batch), batch),
                     ("server, streamed", joined_content(stream), stream),
                     ("command line in a script", plain_answer(script), script),
                     ("command line in a terminal, streamed", plain_answer(terminal), terminal)]


@then("the reasoning and the answer are the same in every mode")
def step_reasoning_same(context):
    (first, text, item), others = context.modes[0], context.modes[1:]
    reasoning, answer = reasoning_split(text)
    failures = []
    for mode, other_text, other in others:
        other_reasoning, other_answer = reasoning_split(other_text)
        evidence = _both(first, item, mode, other)
        if (reasoning is None) != (other_reasoning is None):
            failures.append(f"{first} {'has no' if reasoning is None else 'has a'} {REASONING_END} split, "
                            f"{mode} {'has no' if other_reasoning is None else 'has a'} one:\n"
                            f"  {first}: {text!r}\n  {mode}: {other_text!r}\n{evidence}")
            continue
        parts = [("answer (the whole text: neither has a " + REASONING_END + ")", answer, other_answer)]
        if reasoning is not None:
            parts = [("reasoning (before " + REASONING_END + ")", reasoning, other_reasoning),
                     ("answer (after " + REASONING_END + ")", answer, other_answer)]
        for part, mine, theirs in parts:
            try:
                expect.same_text(mine, theirs, f"{part}, {first} vs {mode}", evidence)
            except AssertionError as e:
                failures.append(str(e))
    expect.that(not failures, f"the reasoning split differs between modes ({len(failures)} difference(s)):\n\n"
                + "\n\n".join(failures))
