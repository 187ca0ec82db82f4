"""Steps for embeddings (`mlxk embed`, `embed-serve`, the `serve --embed-backend` proxy) and pipes,
each a few lines over the scenario's driver (`context.sut`); the checks are support/embedding_checks.py."""

import json

import numpy as np
from behave import given, then, when

from support import api_checks, embedding_checks as checks, expect, step_types  # noqa: F401  (registers types)


# --- which model ---------------------------------------------------------------------------------

@given('{server:Embedder} "{model}"')
def step_embedder(context, server, model):
    context.sut.use_embedder(model, server)


@given("{server:AnyEmbedder}")
def step_any_embedder(context, server):
    model = context.sut.any_embedding_model()
    if model is None:  # an optional kind: nothing of it to test here
        context.scenario.skip("the portfolio has no runnable embedding model (mlxk list: model_type embedding)")
        return
    context.sut.use_embedder(model, server)


@given("a chat server in front of it for any portfolio chat model")
def step_proxy(context):
    context.sut.use_embed_proxy()


# --- embedding -----------------------------------------------------------------------------------

@when("I embed the first golden sentence on the command line {how:EmbedInput}")
def step_embed_first(context, how):
    context.sut.embed_cli(context.sut.sentences()[:1], how)


@when("I embed the golden sentences on the command line as a batch with --json")
def step_embed_batch_json(context):
    context.sut.embed_cli(context.sut.sentences(), envelope=True)


@when("I embed the golden sentences on the command line as a batch")
def step_embed_batch(context):
    sentences = context.sut.sentences()
    context.sut.embed_cli(sentences + sentences[:1])  # the first once more: the same text twice


@when("I embed the golden queries on the command line as a batch")
def step_embed_queries_as_documents(context):
    context.sut.embed_cli(context.sut.queries())


@when("I embed the golden queries on the command line as a batch with --query")
def step_embed_queries(context):
    context.sut.embed_cli(context.sut.queries(), query=True)


@when("I post the first golden sentence to {via:EmbedVia} {encoding:Encoding}")
def step_post_first(context, via, encoding):
    context.sut.embed_http(context.sut.sentences()[0], encoding, via)


@when("I post the golden sentences to {via:EmbedVia} {encoding:Encoding}")
def step_post_batch(context, via, encoding):
    context.sut.embed_http(context.sut.sentences(), encoding, via)


@when("I send each bad embedding request, each followed by a valid one:")
def step_bad_embeddings(context):
    context.sut.send_bad_embedding_requests((row["bad request"], int(row["status"])) for row in context.table)


@when("I embed a sentence on the command line without MLXK2_ENABLE_ALPHA_FEATURES")
def step_embed_without_flag(context):
    context.sut.run_embed_cli("The cat sits on the mat.", without_flag=True)


@when("I embed a batch line whose text is the number 5 on the command line with --json")
def step_embed_number(context):
    context.sut.run_embed_cli("--batch", "--json", stdin=json.dumps({"text": 5}) + "\n")


@when("I embed an empty text on the command line")
def step_embed_empty(context):
    context.sut.run_embed_cli("")


@when("I embed a sentence with that model on the command line")
def step_embed_with_chat_model(context):
    context.sut.run_embed_cli("The cat sits on the mat.")


# --- the proxy's chat side, pipes ------------------------------------------------------------------

@given("the chat server has answered its chat model's first prompt")
@when("I ask the chat server its chat model's first prompt")
def step_proxy_chat(context):
    sut = context.sut
    sut.ask_proxy(sut.proxy_chat_model, sut.suite.facts(sut.proxy_chat_model).prompts[0])


@when("I ask the chat server for a chat answer from the embedding model")
def step_proxy_chat_embedder(context):
    context.sut.ask_proxy(context.sut.model, "Say hello.", max_tokens=8)


@when("I pipe the model its first prompt on stdin")
def step_pipe(context):
    context.sut.ask_through_pipe(context.sut.facts.prompts[0])


# --- checks: the command line ------------------------------------------------------------------------

@then("each command gave one record per input with the model, its dimensions and one content hash")
def step_records(context):
    sut = context.sut
    for found in (e for e in sut.embeddings if e.way.startswith("command line")):
        records = found.records()
        expect.that(len(records) == len(found.texts), f"{found.way}: expected {len(found.texts)} records (one per "
                    f"input), got {len(records)}", found.describe())
        checks.check_metadata(records, found.model, found.way, found.describe(),
                              content_hash=sut.snapshot_revision(found.model))
        if sut.embedding is not None:
            checks.check_dimensions(checks.record_vectors(records), sut.embedding.dimensions, found.way,
                                    found.describe())


@then("the first golden sentence has the same vector from an argument, from stdin and in the batch")
def step_same_everywhere(context):
    first, *others = (e for e in context.sut.embeddings if e.way.startswith("command line"))
    for other in others:
        checks.check_close(first.vectors()[:1], other.vectors()[:1], checks.SAME_VECTORS,
                           f"{first.way} vs {other.way}", first.describe() + "\n" + other.describe(), first.texts)


@then("the record's device is the one MLX computes on")
def step_device(context):
    sut, found = context.sut, context.sut.latest_embeddings()
    checks.check_metadata(found.records(), found.model, found.way, found.describe(), device=sut.mlx_device())


@then("stdout holds one JSON error document of type \"{kind}\"")
def step_error_type(context, kind):
    r = context.sut.last
    doc = json.loads(r.stdout) if r.stdout.strip().startswith("{") else None
    got = (doc or {}).get("error", {}).get("type") if isinstance(doc, dict) else None
    expect.that(got == kind, f"expected a JSON error document of type {kind!r}, got type {got!r}", r.describe())


@then('its error message starts with "{prefix}" and names "{text}"')
def step_error_message(context, prefix, text):
    r = context.sut.last
    said = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    expect.that(said.startswith(prefix) and text in said,
                f"expected the error line on stderr to start with {prefix!r} and name {text!r}, got {said!r}",
                r.describe())


# --- checks: golden facts (demo) ---------------------------------------------------------------------

def _golden_batch(context):
    found = context.sut.latest_embeddings("command line --batch", query=False)
    return found, found.vectors(context.sut.embedding.dimensions)


@then("every vector has the model's dimension and unit norm")
def step_dimension_norm(context):
    found, vectors = _golden_batch(context)
    checks.check_dimensions(vectors, context.sut.embedding.dimensions, found.way, found.describe())
    checks.check_unit_norm(vectors, found.way, found.describe())


@then("the same sentence gives the same vector each time")
def step_deterministic(context):
    found, vectors = _golden_batch(context)
    checks.check_close(vectors[:1], vectors[-1:], 0.0, f"{found.way}: {found.texts[0]!r} embedded twice",
                       found.describe())


@then("each paraphrase is closer to its sentence than the unrelated one, by the golden margin")
def step_margins(context):
    found, vectors = _golden_batch(context)
    checks.check_margins(dict(zip(found.texts, vectors)), context.sut.embedding.triples,
                         f"{found.model} ({found.way})", found.describe())


@then("the vectors equal the suite's reference vectors within their tolerance")
def step_reference(context):
    facts = context.sut.embedding
    found, vectors = _golden_batch(context)
    n = len(facts.documents)
    checks.check_close(np.array([v for _, v in facts.documents]), vectors[:n], facts.tolerance,
                       f"{found.model} vs the suite's reference ({facts.reference}; {facts.pooling} pooling declared)",
                       found.describe(), found.texts)


@then("the query vectors differ from the document vectors exactly when the model defines a query prefix")
def step_query_prefix(context):
    sut = context.sut
    documents, queries = sut.latest_embeddings("command line --batch", False), sut.latest_embeddings(query=True)
    rows = {t: v for t, v in zip(documents.texts, documents.vectors())}
    d, q = np.array([rows[t] for t in queries.texts]), queries.vectors()
    what, evidence = f"{sut.model}: --query vs documents", documents.describe() + "\n" + queries.describe()
    if sut.embedding.query_prefix:
        checks.check_differ(d, q, f"{what} (query prefix {sut.embedding.query_prefix!r} declared)", evidence)
    else:
        checks.check_close(d, q, checks.SAME_VECTORS, f"{what} (the model defines no query prefix)", evidence,
                           queries.texts)


@then("the query vectors equal the suite's reference query vectors within their tolerance")
def step_query_reference(context):
    facts, queries = context.sut.embedding, context.sut.latest_embeddings(query=True)
    checks.check_close(np.array([v for _, v in facts.queries]), queries.vectors(), facts.tolerance,
                       f"{queries.model} --query vs the suite's reference with prefix {facts.query_prefix!r}",
                       queries.describe(), queries.texts)


# --- checks: the servers -------------------------------------------------------------------------------

@then("every response has OpenAI's embeddings shape with one embedding per input, in order")
def step_openai_shape(context):
    dims = context.sut.embedding.dimensions if context.sut.embedding else None
    for found in context.sut.embeddings:
        if found.way in ("embed-serve", "proxy"):
            found.vectors(dims)


@then("the server's vectors equal the command line's within {tolerance:g}")
def step_server_equals_cli(context, tolerance):
    cli = context.sut.latest_embeddings("command line")
    by_text = dict(zip(cli.texts, cli.vectors()))
    for found in context.sut.embeddings:
        if found.way == "embed-serve":
            expected = np.array([by_text[t] for t in found.texts])
            checks.check_close(expected, found.vectors(), tolerance,
                               f"{found.way} ({found.evidence.request_json.get('encoding_format')}) vs {cli.way}",
                               found.describe() + "\n" + cli.describe(), found.texts)


@then("the chat server's vectors equal the embeddings server's exactly")
def step_proxy_equals_backend(context):
    proxied, direct = context.sut.latest_embeddings("proxy"), context.sut.latest_embeddings("embed-serve")
    checks.check_close(direct.vectors(), proxied.vectors(), 0.0, "through the chat server vs from the backend",
                       proxied.describe() + "\n" + direct.describe(), direct.texts)


def _chat_exchanges(sut, model: str) -> list:
    return [e for e in sut.evidence if getattr(e, "url", "").endswith("/v1/chat/completions")
            and e.request_json.get("model") == model]


def _chat_exchange(sut, model: str):
    return _chat_exchanges(sut, model)[-1]


@then("the chat server answered its chat model's prompt")
def step_proxy_chat_answered(context):
    api_checks.check_chat_batch(_chat_exchange(context.sut, context.sut.proxy_chat_model))


@then("the chat server answered its chat model's prompt as fast as before, give or take {limit:g} seconds")
def step_proxy_chat_answered_as_before(context, limit):
    before, after = _chat_exchanges(context.sut, context.sut.proxy_chat_model)[-2:]
    api_checks.check_chat_batch(after)
    api_checks.check_as_fast_as_before(before, after, limit, "the chat model's answer")


@then("the chat request for the embedding model got a client error within {limit:g} seconds")
def step_chat_embedder_refused(context, limit):
    ex = _chat_exchange(context.sut, context.sut.model)
    with expect.labelled(f"a chat request for the embedding model {context.sut.model}"):
        api_checks.check_error(ex, range(400, 500))
    expect.that(ex.seconds <= limit, f"the refusal took {ex.seconds:.1f} s, expected at most {limit:g} s",
                ex.describe())


@then("the piped answer equals the printed answer")
def step_piped_equals_printed(context):
    sut = context.sut
    printed, piped = sut.answer("printed"), sut.answers[-1]
    expect.same_text(printed.text, piped.text, f"{piped.way} vs {printed.way}",
                     printed.describe() + "\n" + piped.describe())
