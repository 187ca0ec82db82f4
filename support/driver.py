"""The per-scenario driver: the one object steps talk to (`context.sut`).

Every action a scenario takes on the system under test goes through here: ask the server (chat
or text completion, in one piece or streamed, any sampling), ask both ways, run the command line
(plain, `--json`, in a terminal, without a prompt), decode a reference answer, use the official
OpenAI client. Each action makes RAM room for the process it starts, records its evidence (Allure
attachment and the scenario's evidence list) and returns a named result; the results stay on the
driver for the `Then` steps. How the SUT's server and command line are started is the target's
business (support/targets.py): nothing here spells a SUT command.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterable

import numpy as np

from . import api_checks, embedding_checks, evidence, load, reference_decoder, schemas
from .cli_runner import CliResult, plain_answer, run_cli, run_in_terminal
from .errors import HarnessError
from .expect import that
from .model_facts import EmbeddingFacts, ModelFacts
from .openai_http import (CHAT, COMPLETIONS, EMBEDDINGS, TRANSCRIPTIONS, TRANSLATIONS, Client, Exchange, batch_content,
                          chat_payload, completion_payload, disconnect_mid_stream, joined_content)
from .openai_sdk import sdk_answers, sdk_transcription
from .request_catalogue import NOT_INSTALLED, bad_embeddings_payload, bad_request, stop_strings
from .server_pool import SERVE, Retired
from .targets import EMBED_SERVE, PROXY, require
from . import vision_checks as vc, vision_reference  # noqa: E402  (the vision section, at the end)
from . import speech_checks as sc, speech_reference  # noqa: E402  (the speech section, at the end)

# seconds beyond a one-token answer's time: a CLI that has not noticed the missing prompt by then hangs
NO_PROMPT_SLACK = 20.0
DEATH_WAIT = 1.0  # seconds: a dropped connection is seen a moment before the server's process is gone
# Sentences for an embedding model without golden facts (a user's portfolio).
NEUTRAL_SENTENCES = ("The cat sits on the mat.", "A cat is sitting on the mat.", "Stock markets fell sharply today.")


class Api(Enum):
    """Which completion endpoint a question goes to."""

    CHAT = CHAT
    TEXT = COMPLETIONS

    def payload(self, model: str, prompt: str, **sampling) -> dict:
        return (chat_payload if self is Api.CHAT else completion_payload)(model, prompt, **sampling)


@dataclass(frozen=True)
class Answer:
    """One answer to one prompt, got one way; `evidence` is the exchange or command behind it."""

    prompt: str
    way: str  # e.g. "server, streamed", "command line --json", "reference decoder"
    evidence: Exchange | CliResult

    @property
    def streamed(self) -> bool:
        ev = self.evidence
        return ev.streamed if isinstance(ev, Exchange) else "--no-stream" not in ev.argv and self.way.endswith("terminal")

    @property
    def text(self) -> str:
        """The answer text as this way delivers it (a failed check when there is none)."""
        ev = self.evidence
        if isinstance(ev, Exchange):
            return joined_content(ev) if ev.streamed else batch_content(ev)
        if "--json" in ev.argv:
            return self.document()["data"]["response"]
        return plain_answer(ev)

    def document(self, schema: dict = schemas.CLI_RUN_SUCCESS) -> dict:
        """The `--json` document of a command-line answer, checked against `schema`."""
        what = "mlxk run --json"
        doc = schemas.parse_one_document(self.evidence.stdout, what, self.describe())
        schemas.validate(doc, schema, what, self.describe())
        return doc

    def describe(self) -> str:
        return f"--- {self.way}:\n{self.evidence.describe()}"


@dataclass(frozen=True)
class BadRequestOutcome:
    """A bad request, what it should get, what it got, and the valid request sent after it."""

    name: str
    expected_status: int | range
    bad: Exchange
    next_valid: Exchange


@dataclass(frozen=True)
class RefusalRace:
    """A request for a model that is not installed, and the served model's answers alone and beside it."""

    alone: Exchange
    refused: Exchange
    meanwhile: Exchange


@dataclass(frozen=True)
class Embeddings:
    """Vectors for texts, got one way; `evidence` is the command or exchange behind them."""

    texts: tuple[str, ...]
    way: str  # "command line, argument" | "command line, stdin" | "command line --batch" | "embed-serve" | "proxy"
    query: bool  # asked as queries (--query / input_type "query")
    evidence: Exchange | CliResult
    model: str

    @property
    def envelope(self) -> bool:
        return isinstance(self.evidence, CliResult) and "--json" in self.evidence.argv

    def records(self) -> list[dict]:
        """The command line's records (a failed check when it did not succeed or printed no records)."""
        ev = self.evidence
        assert isinstance(ev, CliResult), "records() is for command-line embeddings"
        that(ev.returncode == 0, f"{self.way}: expected exit code 0, got {ev.returncode}", self.describe())
        return embedding_checks.cli_records(ev.stdout, self.envelope, self.describe())

    def vectors(self, dimensions: int | None = None) -> np.ndarray:
        """One row per text, in order (shape and encoding checked)."""
        ev = self.evidence
        if isinstance(ev, CliResult):
            records = self.records()
            that(len(records) == len(self.texts), f"{self.way}: expected {len(self.texts)} records (one per "
                 f"input), got {len(records)}", self.describe())
            return embedding_checks.record_vectors(records)
        that(ev.error is None and ev.status == 200, f"{self.way}: expected HTTP 200, got "
             f"{ev.status if ev.error is None else ev.error}", self.describe())
        return embedding_checks.response_vectors(ev.json, len(self.texts), f"POST /v1/embeddings ({self.way})",
                                                 self.describe(), dimensions)

    def describe(self) -> str:
        return f"--- {self.way}:\n{self.evidence.describe()}"


@dataclass
class Sut:
    """The system under test as one scenario sees it."""

    suite: object  # support.session.Session
    model: str | None = None  # the scenario's portfolio row (steps may pick another model)
    facts: ModelFacts | None = None
    server: object | None = None  # the LocalServer in use
    client: Client | None = None
    evidence: list = field(default_factory=list)  # every exchange and command, in order
    answers: list[Answer] = field(default_factory=list)  # every answer asked for, in order
    pairs: list[tuple[Answer, Answer]] = field(default_factory=list)  # (one piece, streamed) per prompt
    bad_requests: list[BadRequestOutcome] = field(default_factory=list)
    refusal: RefusalRace | None = None
    embedding: EmbeddingFacts | None = None  # the demo manifest's facts of the embedding model in use
    embeddings: list[Embeddings] = field(default_factory=list)  # every set of vectors asked for, in order
    proxy: Client | None = None  # `serve --embed-backend` in front of the embed-serve `server`
    proxy_chat_model: str | None = None
    reference: reference_decoder.ReferenceRun | None = None
    last: Exchange | CliResult | None = None  # the latest exchange or command
    image_answers: list = field(default_factory=list)  # (VisionGolden, Answer) per question about images
    vision_reference: object | None = None  # support.vision_reference.VisionReferenceRun
    load: object | None = None  # support.load.LoadRun of the @load scenario
    load_setup: list[str] = field(default_factory=list)  # what the load's baseline could not ask
    servers: list = field(default_factory=list)  # every LocalServer the scenario talks to
    speech_answers: list = field(default_factory=list)  # SpeechAnswer per clip asked about, in order
    speech_reference: object | None = None  # support.speech_reference.SpeechReferenceRun
    refused_chat: Exchange | None = None  # a chat request naming a speech model
    no_prompt_pace: CliResult | None = None  # a one-token answer on the command line, timed

    # --- what is tested ---------------------------------------------------------------------

    def use_model(self, model_id: str) -> None:
        self.model, self.facts = model_id, self.suite.facts(model_id)

    @property
    def model_name(self) -> str:
        """The model's name in the target's requests (its cache id for mlxk and mlx_lm)."""
        return self.suite.target.request_model(self.model)

    def any_chat_model(self) -> str:
        """The first chat model of the portfolio that the RAM gate lets run."""
        model = self.suite.portfolio.first("chat")
        if model is None:
            raise HarnessError("no chat model of the portfolio fits the RAM budget: "
                               f"{[m.id for m in self.suite.portfolio.anywhere.chat]}")
        return model

    def use(self, model_id: str, server: bool) -> None:
        """Test `model_id`; with `server`, through a running server for it (see use_server)."""
        (self.use_server if server else self.use_model)(model_id)

    def use_server(self, model_id: str) -> None:
        """A running server for the model (resident from an earlier scenario, or started now)."""
        self.use_model(model_id)
        settings = self.suite.settings
        self.server = self._acquire(model_id)
        self.client = Client(self.server.base_url, settings.request_timeout, settings.stream_timeout)

    @property
    def manifest(self) -> dict:
        """The demo portfolio's manifest (what every model is meant to be); demo scenarios only."""
        if self.suite.manifest is None:
            raise HarnessError("this scenario needs the demo portfolio's manifest; the run is on a user's cache")
        return self.suite.manifest

    @property
    def budget(self):
        """The run's RAM budget (support.ram_budget.Budget)."""
        return self.suite.budget

    def _acquire(self, model_id: str, kind: str = SERVE):
        """A server from the pool; one that hung earlier in the run is not asked again (a failed check)."""
        try:
            server = self.suite.server(model_id, kind)
        except Retired as e:
            raise AssertionError(f"the server for {model_id} hung earlier in this run and was stopped; it is not "
                                 f"started again (a hang costs one timeout per model): {e.why}") from None
        self.servers.append(server)
        return server

    # --- a server that dies or hangs ------------------------------------------------------------

    def check_server(self, ex: Exchange) -> None:
        """A failed check when the exchange's server hung (no answer within the timeout: the pool
        retires it) or died under it (the log's last lines shown; the pool starts a fresh one later)."""
        server = next((s for s in reversed(self.servers) if ex.url.startswith(s.base_url + "/")), None)
        if server is None or ex.error is None or ex.closed_by_client:
            return
        where = f"{ex.method} {ex.url.removeprefix(server.base_url)}"
        if ex.timed_out:
            why = f"{where}: {ex.error}"
            self.suite.pool.retire(server, why)
            raise AssertionError(f"{server.name} for {server.model} hung: {why}; the server was stopped and the "
                                 f"model's later scenarios fail at once; log: {server.log_path}; last lines: "
                                 f"{server.last_lines()}\n{ex.describe()}")
        if server.ended_within(DEATH_WAIT):
            raise AssertionError(f"{server.name} for {server.model} crashed: the process {server.how_it_ended()} "
                                 f"during {where} ({ex.error}); a fresh server serves later scenarios; log: "
                                 f"{server.log_path}; last lines:\n{server.tail(15)}")

    # --- evidence -----------------------------------------------------------------------------

    def record(self, item):
        self.evidence.append(item)
        evidence.attach(item, len(self.evidence))
        self.last = item
        if isinstance(item, Exchange):
            self.check_server(item)
        return item

    def _answer(self, prompt: str, way: str, item) -> Answer:
        answer = Answer(prompt, way, self.record(item))
        self.answers.append(answer)
        return answer

    def answer(self, which: str) -> Answer:
        """The latest answer of a kind: "any", "streamed", "printed" (plain CLI), "json" (CLI --json)."""
        def fits(a: Answer) -> bool:
            cli = isinstance(a.evidence, CliResult)
            return {"any": True, "streamed": a.streamed, "printed": cli and "--json" not in a.evidence.argv,
                    "json": cli and "--json" in a.evidence.argv}[which]
        found = next((a for a in reversed(self.answers) if fits(a)), None)
        if found is None:
            raise HarnessError(f"the scenario asked for no {which} answer before checking it")
        return found

    # --- the server ---------------------------------------------------------------------------

    def get(self, path: str) -> Exchange:
        return self.record(self.client.get(path))

    def endpoint(self, api: Api) -> str:
        """The path of ``api``; NotOffered (a missing @needs tag) for text completions on a target without them."""
        if api is Api.TEXT:
            require(self.suite.target, "text_completions")
        return api.value

    def ask(self, prompt: str, api: Api = Api.CHAT, stream: bool = False, **sampling) -> Answer:
        payload, path = api.payload(self.model_name, prompt, **sampling), self.endpoint(api)
        ex = self.client.stream(path, payload) if stream else self.client.post_json(path, payload)
        return self._answer(prompt, f"server, {'streamed' if stream else 'one piece'}", ex)

    def ask_again_streamed(self) -> Answer:
        """The latest server question once more, streamed."""
        ex = self.answer("any").evidence
        payload = {k: v for k, v in ex.request_json.items() if k != "stream"}
        path = CHAT if "messages" in payload else COMPLETIONS
        prompt = self.answers[-1].prompt
        return self._answer(prompt, "server, streamed", self.client.stream(path, payload))

    def ask_both_ways(self, prompts: Iterable[str], api: Api = Api.CHAT, **sampling) -> list[tuple[Answer, Answer]]:
        """Each prompt in one piece, then streamed: `pairs`."""
        self.pairs = [(self.ask(p, api, **sampling), self.ask(p, api, stream=True, **sampling)) for p in prompts]
        return self.pairs

    def ask_at_once(self, prompts: list[str]) -> list[Answer]:
        """The prompts sent at the same time, one client each."""
        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            results = list(pool.map(lambda p: self.client.post_json(CHAT, chat_payload(self.model_name, p)), prompts))
        return [self._answer(p, "server, one of several at once", ex) for p, ex in zip(prompts, results)]

    def send_bad_requests(self, rows: Iterable[tuple[str, int | range]]) -> list[BadRequestOutcome]:
        """Each named bad request, each followed by a valid request: `bad_requests`."""
        for name, status in rows:
            bad = self.record(bad_request(self.client, name, self.model_name))
            good = self.record(self.client.post_json(CHAT, chat_payload(self.model_name, self.facts.prompts[0],
                                                                        max_tokens=8)))
            self.bad_requests.append(BadRequestOutcome(name, status, bad, good))
        return self.bad_requests

    def race_not_installed(self) -> RefusalRace:
        """The served model asked alone, then a not-installed model and the served one at once."""
        served = chat_payload(self.model_name, self.facts.prompts[0], max_tokens=8)
        alone = self.record(self.client.post_json(CHAT, served))
        with ThreadPoolExecutor(max_workers=2) as pool:
            refused = pool.submit(self.client.post_json, CHAT, chat_payload(NOT_INSTALLED, "Say hello.", max_tokens=8))
            time.sleep(0.1)  # the refusal is on its way first
            meanwhile = pool.submit(self.client.post_json, CHAT, served)
            self.refusal = RefusalRace(alone, self.record(refused.result()), self.record(meanwhile.result()))
        return self.refusal

    def hang_up_mid_stream(self, after_chunks: int = 2) -> Exchange:
        prompt = self.facts.longest.prompt if self.facts.goldens else self.facts.prompts[0]
        return self.record(disconnect_mid_stream(self.server.base_url, CHAT, chat_payload(self.model_name, prompt),
                                                 after_chunks, timeout=self.suite.settings.stream_timeout))

    def ask_openai_client(self, prompt: str) -> tuple[Answer, Answer]:
        """The official OpenAI Python client asks `prompt`, batch and streamed (both recorded)."""
        batch, stream = sdk_answers(self.server.base_url, self.model_name, prompt, self.suite.settings.request_timeout)
        return (self._answer(prompt, "openai client, one piece", batch),
                self._answer(prompt, "openai client, streamed", stream))

    # --- under load (support/load.py) ----------------------------------------------------------

    def run_load(self):
        """The mixed workload from several clients at once (count and time bounded, -D load_*); the
        texts it must give: golden answers, else (and for text completions) the answer asked alone."""
        settings, facts = self.suite.settings, self.facts
        expected = [(p, facts.golden_for(p) or self._asked_alone(Api.CHAT, p)) for p in facts.prompts[:3]]
        try:
            stop = stop_strings(expected[0][1], 1)[0]
        except HarnessError:
            stop = None  # an answer too short to stop inside: the workload has no stop string
        try:
            completion = (facts.prompts[0], self._asked_alone(Api.TEXT, facts.prompts[0],
                                                              max_tokens=load.COMPLETION_TOKENS))
        except AssertionError as e:  # reported with the answers; the load still runs without it
            completion, self.load_setup = None, [f"the text completion asked alone before the load failed, so the "
                                                 f"workload has none: {str(e).splitlines()[0]}"]
        hang_up = facts.longest.prompt if facts.goldens else facts.prompts[0]
        jobs = load.plan(self.model_name, expected, stop, completion, hang_up)
        self.load = load.run(self.client, jobs, settings.load_clients, settings.load_requests, settings.load_seconds,
                             self.server.rss_bytes, alive=self.server.alive)
        evidence.attach_text(self.load.series(), "load: RSS samples and every request")
        for outcome in self.load.failed[:3]:  # the failures' exchanges; a server that hung or died fails here
            self.record(outcome.exchange)
        return self.load

    def _asked_alone(self, api: Api, prompt: str, **sampling) -> str:
        """The server's answer to one request asked alone (well-formed, or a failed check)."""
        answer = self._answer(prompt, "server, alone before the load",
                              self.client.post_json(self.endpoint(api), api.payload(self.model_name, prompt, **sampling)))
        api_checks.check_well_formed(answer.evidence)
        return answer.text

    def load_problems(self, answers: bool) -> list[str]:
        """The load run's wrong answers and errors (``answers``), or its memory growth and slowdown."""
        if self.load is None:
            raise HarnessError("the scenario ran no load before checking it")
        settings = self.suite.settings
        if answers:
            return self.load_setup + load.answer_problems(self.load)
        return load.steady_problems(self.load, load.Bounds(settings.load_rss_growth_mb, settings.load_slowdown_factor))

    # --- the command line -----------------------------------------------------------------------

    def run_cli(self, *args: str, loads: str | None = None, timeout: float | None = None,
                terminal: bool = False) -> CliResult:
        """The SUT's command line with `args`; `loads`: the model it loads (RAM room is made first)."""
        suite = self.suite
        if loads is not None:
            suite.make_room_for_process(loads)  # it loads the model beside resident servers
        run = run_in_terminal if terminal else run_cli
        return self.record(run(suite.target.command, args, suite.hf_home,
                               min(timeout or suite.settings.cli_timeout, suite.settings.cli_timeout)))

    def ask_cli(self, prompt: str | None, *flags: str, model: str | None = None, terminal: bool = False,
                timeout: float | None = None, **sampling) -> Answer:
        """`prompt` on the command line (temperature 0 unless given), as a script or in a terminal."""
        model = model or self.model
        hung = self.suite.cli_hung.get(model)
        that(hung is None, f"the command line hung earlier in this run on {model} and is not asked again "
                           f"(a hang costs one timeout per model): {hung}")
        args = self.suite.target.ask_args(model, prompt, {"temperature": 0, **sampling}, *flags)
        result = self.run_cli(*args, loads=model, timeout=timeout, terminal=terminal)
        if result.timed_out and prompt is not None:
            self.suite.cli_hung[model] = f"{' '.join(result.argv[-len(args):])!r} killed after {result.timeout:g} s"
        way = "command line" + (" --json" if "--json" in flags else "") + (" in a terminal" if terminal else "")
        answer = Answer(prompt or "", way, result)
        self.answers.append(answer)
        return answer

    def list_models_cli(self) -> CliResult:
        """The target's listing command (machine-readable)."""
        return self.run_cli(*self.suite.target.list_args())

    def show_model_cli(self) -> CliResult:
        """The target's command that shows the model (machine-readable)."""
        return self.run_cli(*self.suite.target.show_args(self.model))

    def run_without_prompt(self) -> CliResult:
        """`run MODEL` with no prompt and stdin closed: a script that forgot the prompt. First the
        same command with a prompt and a one-token answer (`no_prompt_pace`: the time this machine,
        as loaded as it is now, takes to start the command line and load the model); the run
        without a prompt is killed NO_PROMPT_SLACK seconds later than that."""
        target = self.suite.target
        self.no_prompt_pace = self.run_cli(*target.ask_args(self.model, "Say hello.", {"max_tokens": 1}),
                                           loads=self.model)
        pace = self.no_prompt_pace  # a command line that cannot answer one token is the product's failure
        that(pace.returncode == 0 and not pace.timed_out,
             f"expected a one-token answer on the command line (the pace the run without a prompt is timed "
             f"against), got exit {pace.returncode}" + (" and a timeout" if pace.timed_out else ""), pace.describe())
        return self.run_cli(*target.ask_args(self.model, None, {}), loads=self.model,
                            timeout=self.no_prompt_pace.seconds + NO_PROMPT_SLACK)

    def ask_through_pipe(self, prompt: str, model: str | None = None) -> Answer:
        """`run MODEL -` with the prompt on stdin, as `echo PROMPT | mlxk run MODEL -` (pipes enabled)."""
        model = model or self.model
        target = self.suite.target
        args = target.ask_args(model, "-", {"temperature": 0})
        self.suite.make_room_for_process(model)
        suite = self.suite
        result = self.record(run_cli(target.command, args, suite.hf_home, suite.settings.cli_timeout,
                                     input=prompt + "\n", env=target.env("pipes")))
        answer = Answer(prompt, "command line, prompt on stdin", result)
        self.answers.append(answer)
        return answer

    # --- embeddings ------------------------------------------------------------------------------

    def use_embedder(self, model_id: str, server: bool = False) -> None:
        """Embed with `model_id`; with `server`, through an `embed-serve` backend for it (pool kind)."""
        self.model, self.embedding = model_id, self.suite.embedding_facts(model_id)
        if server:
            settings = self.suite.settings
            self.server = self._acquire(model_id, EMBED_SERVE)
            self.client = Client(self.server.base_url, settings.request_timeout, settings.stream_timeout)

    def any_embedding_model(self) -> str | None:
        """The first embedding model of the portfolio that the RAM gate lets run; None when there is
        none (embedding models are an optional kind: the scenario is skipped, see the steps)."""
        return self.suite.portfolio.first("embeddings")

    def sentences(self) -> tuple[str, ...]:
        """The golden sentences of the embedding model in use (the manifest's), else neutral ones."""
        return tuple(t for t, _ in self.embedding.documents) if self.embedding else NEUTRAL_SENTENCES

    def queries(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.embedding.queries) if self.embedding else NEUTRAL_SENTENCES

    def snapshot_revision(self, model_id: str) -> str:
        """The commit of the model's snapshot in the cache (what metadata.content_hash names)."""
        return reference_decoder.snapshot_path(model_id, self.suite.hf_home).name

    def mlx_device(self) -> str:
        """Where MLX computes for the SUT ("cpu" or "gpu"): asked of the SUT's own Python, recorded."""
        beside = Path(self.suite.target.command[0]).parent / "python"  # the SUT's venv
        python = str(beside) if beside.exists() else sys.executable  # a wrapper script: the suite's own
        result = self.record(run_cli((python,), ("-c", "import mlx.core as mx; print(mx.default_device())"),
                                     self.suite.hf_home, self.suite.settings.cli_timeout, kind="reference"))
        if result.returncode != 0 or "Device(" not in result.stdout:
            raise HarnessError(f"cannot ask MLX for its default device beside the SUT\n{result.describe()}")
        return "gpu" if "gpu" in result.stdout else "cpu"

    def use_embed_proxy(self) -> str:
        """`serve --model CHAT --embed-backend URL` in front of the embedder's backend: the chat model."""
        if self.server is None:
            raise HarnessError("the scenario started no embedding backend before the proxy")
        chat = self.any_chat_model()
        suite, settings = self.suite, self.suite.settings
        proxy = self._acquire(chat, PROXY + self.server.base_url)
        if not self.server.alive():  # starting the proxy evicted its own backend
            raise HarnessError(f"the RAM budget holds no chat server beside the embedding backend of {self.model}; "
                               f"resident: {suite.pool.resident()}")
        self.proxy = Client(proxy.base_url, settings.request_timeout, settings.stream_timeout)
        self.proxy_chat_model = chat
        return chat

    def embed_cli(self, texts: Iterable[str], how: str = "batch", query: bool = False, envelope: bool = False,
                  model: str | None = None) -> Embeddings:
        """`mlxk embed MODEL` (embeddings enabled) with one text as an argument ("argument"), one on
        stdin ("stdin"), or the texts as JSONL lines on stdin ("batch"); `envelope`: with --json."""
        texts, model = tuple(texts), model or self.model
        target, suite = self.suite.target, self.suite
        flags = (*(("--query",) if query else ()), *(("--json",) if envelope else ()))
        if how == "batch":
            args, stdin = target.embed_args(model, None, "--batch", *flags), "".join(
                json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts))
        elif how in ("argument", "stdin") and len(texts) == 1:
            text = texts[0]
            args, stdin = target.embed_args(model, text if how == "argument" else "-", *flags), (
                None if how == "argument" else text)
        else:
            raise HarnessError(f"embed_cli: {how!r} embeds one text, got {len(texts)}")
        suite.make_room_for_process(model)
        result = self.record(run_cli(target.command, args, suite.hf_home, suite.settings.cli_timeout,
                                     input=stdin, env=target.env("embeddings")))
        way = ("command line " + ("--batch" if how == "batch" else how) + (" --query" if query else "")
               + (" --json" if envelope else ""))
        found = Embeddings(texts, way, query, result, model)
        self.embeddings.append(found)
        return found

    def run_embed_cli(self, *args: str, stdin: str | None = None, without_flag: bool = False) -> CliResult:
        """`mlxk embed` with raw arguments (bad input); `without_flag`: the alpha flag removed."""
        target, suite = self.suite.target, self.suite
        env = target.env(without=("embeddings",)) if without_flag else target.env("embeddings")
        suite.make_room_for_process(self.model)
        return self.record(run_cli(target.command, target.embed_args(self.model, None, *args), suite.hf_home,
                                   suite.settings.cli_timeout, input=stdin, env=env))

    def embed_http(self, texts: str | Iterable[str], encoding_format: str | None = "float", via: str = "embed-serve",
                   query: bool = False, **fields) -> Embeddings:
        """POST /v1/embeddings to the backend ("embed-serve") or the proxy ("proxy"): one string or a list."""
        one = isinstance(texts, str)
        texts = (texts,) if one else tuple(texts)
        payload = {"model": self.model_name, "input": texts[0] if one else list(texts),
                   **({} if encoding_format is None else {"encoding_format": encoding_format}),
                   **({"input_type": "query"} if query else {}), **fields}
        found = Embeddings(texts, via, query, self.record(self._embeddings_client(via).post_json(EMBEDDINGS, payload)),
                           self.model)
        self.embeddings.append(found)
        return found

    def send_bad_embedding_requests(self, rows: Iterable[tuple[str, int | range]]) -> list[BadRequestOutcome]:
        """Each named bad POST /v1/embeddings, each followed by a valid one: `bad_requests`."""
        client = self._embeddings_client("embed-serve")
        for name, status in rows:
            bad = self.record(client.post_json(EMBEDDINGS, bad_embeddings_payload(name, self.model_name)))
            good = self.record(client.post_json(EMBEDDINGS, {"model": self.model_name, "input": "Say hello."}))
            self.bad_requests.append(BadRequestOutcome(name, status, bad, good))
        return self.bad_requests

    def ask_proxy(self, model: str, prompt: str, max_tokens: int = 16) -> Exchange:
        """A chat request to the proxy naming `model`."""
        return self.record(self.proxy.post_json(CHAT, chat_payload(model, prompt, temperature=0,
                                                                    max_tokens=max_tokens)))

    def latest_embeddings(self, way: str | None = None, query: bool | None = None) -> Embeddings:
        """The latest embeddings got a way (a prefix of `Embeddings.way`), as queries or not."""
        found = next((e for e in reversed(self.embeddings) if (way is None or e.way.startswith(way))
                      and (query is None or e.query == query)), None)
        if found is None:
            raise HarnessError(f"the scenario asked for no embeddings {way or ''} before checking them")
        return found

    def _embeddings_client(self, via: str) -> Client:
        client = {"embed-serve": self.client, "proxy": self.proxy}[via]
        if client is None:
            raise HarnessError(f"the scenario started no {via} before posting embeddings to it")
        return client

    # --- the reference decoder -------------------------------------------------------------------

    def decode_reference(self, prompts: list[str], max_tokens: int) -> reference_decoder.ReferenceRun:
        """mlx-lm's greedy answers to `prompts`, in a subprocess (HarnessError when it fails)."""
        suite = self.suite
        suite.make_room_for_process(self.model)  # the decoder loads the model a second time
        path = reference_decoder.snapshot_path(self.model, suite.hf_home)
        result = self.record(reference_decoder.run(path, prompts, max_tokens, suite.settings.cli_timeout))
        self.reference = reference_decoder.parse(result)
        return self.reference

    # --- vision: questions about images (support/vision_checks.py, support/vision_reference.py) --

    def image_root(self) -> Path:
        return Path(self.suite.hf_home) / "assets"

    def vision_goldens(self) -> tuple:
        """The model's questions about images (demo), or one neutral question (a user's cache)."""
        return vc.goldens_of(self.suite.manifest, self.model) or (vc.NEUTRAL_QUESTION,)

    def _images(self, golden) -> list[bytes]:
        if self.suite.manifest is None:
            return [vc.png(vc.NEUTRAL_COLORS[n]) for n in golden.images]
        return vc.asset_bytes(self.image_root(), golden.images)

    def _image_paths(self, golden) -> list[str]:
        if self.suite.manifest is None:  # a user's cache: the neutral squares, drawn into the reports folder
            folder = evidence.EVIDENCE.parent / "vision-images"
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in zip(golden.images, self._images(golden)):
                (folder / name).write_bytes(data)
            return [str(folder / n) for n in golden.images]
        return [str(self.image_root() / n) for n in golden.images]

    def _record_image_answer(self, golden, way: str, item, images: list[bytes]):
        answer = self._answer(golden.prompt, way, item)
        evidence.attach_images(dict(zip(golden.images, images)), len(self.evidence))
        self.image_answers.append((golden, answer))
        return answer

    def ask_about_images(self, golden, stream: bool = False, chunk: int | None = None, **sampling):
        """A chat question with the golden's images (base64 data URLs); `chunk` defaults to the golden's."""
        images = self._images(golden)
        payload = vc.image_payload(self.model_name, golden.prompt, images, chunk or golden.chunk, **sampling)
        if stream:  # usage as for any chat stream: in a final chunk, when asked for
            payload["stream_options"] = {"include_usage": True}
        ex = self.client.stream(CHAT, payload) if stream else self.client.post_json(CHAT, payload)
        return self._record_image_answer(golden, f"server, {'streamed' if stream else 'one piece'}", ex, images)

    def ask_about_images_both_ways(self, goldens, **sampling):
        self.pairs = [(self.ask_about_images(g, **sampling), self.ask_about_images(g, stream=True, **sampling))
                      for g in goldens]
        return self.pairs

    def ask_cli_about_images(self, golden, *flags: str, chunk: int | None = None):
        """`mlxk run` with `--image` files (and `--chunk` when the question needs it)."""
        paths = self._image_paths(golden)
        extra = self.suite.target.image_flags(paths, chunk or golden.chunk)
        args = self.suite.target.ask_args(self.model, golden.prompt, {"temperature": 0}, *extra, *flags)
        suite = self.suite
        suite.make_room_for_process(self.model)
        result = run_cli(suite.target.command, args, suite.hf_home, suite.settings.cli_timeout)
        way = "command line" + (" --json" if "--json" in flags else "")
        return self._record_image_answer(golden, way, result, self._images(golden))

    def ask_cli_missing_image(self, *flags: str) -> CliResult:
        """`mlxk run --image` with a file that does not exist."""
        missing = str(Path(tempfile.gettempdir()) / "mlx-e2e-no-such-folder" / vc.MISSING_IMAGE)
        extra = self.suite.target.image_flags([missing], None)
        args = self.suite.target.ask_args(self.model, vc.NEUTRAL_QUESTION.prompt, {"temperature": 0}, *extra, *flags)
        return self.run_cli(*args, loads=self.model)

    def ask_cli_not_an_image(self, *flags: str) -> CliResult:
        """`mlxk run --image` with a file of text bytes named like a PNG."""
        folder = evidence.EVIDENCE.parent / "vision-images"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "not-an-image.png"
        path.write_bytes(vc.NOT_AN_IMAGE)
        extra = self.suite.target.image_flags([str(path)], None)
        args = self.suite.target.ask_args(self.model, vc.NEUTRAL_QUESTION.prompt, {"temperature": 0}, *extra, *flags)
        return self.run_cli(*args, loads=self.model)

    def any_text_only_chat_model(self) -> str | None:
        """The first chat model without the vision capability that the RAM gate lets run (None: none)."""
        return self.suite.portfolio.first("chat", lambda m: "vision" not in m.capabilities)

    def send_bad_images(self, rows) -> list:
        """Each named bad image request, each followed by a good question about an image (for a
        text-only model: a good text question)."""
        good_golden = self.vision_goldens()[0]
        good_image = self._images(good_golden)[0] if good_golden.images else vc.png((255, 0, 0))
        for name, status in rows:
            payload = vc.bad_image_payload(name, self.model_name, good_image)
            ex = self.client.post_json(CHAT, payload)
            ex.request_json = vc.redacted_request(payload, limit=4096)  # evidence without megabytes of base64
            bad = self.record(ex)
            if any(m.id == self.model for m in self.suite.portfolio.anywhere.vision):
                good = self.client.post_json(CHAT, vc.image_payload(self.model_name, good_golden.prompt, [good_image],
                                                                    max_tokens=vc.MAX_TOKENS_AFTER_BAD))
            else:
                good = self.client.post_json(CHAT, chat_payload(self.model_name, self.facts.prompts[0], max_tokens=8))
            self.bad_requests.append(BadRequestOutcome(name, status, bad, self.record(good)))
        return self.bad_requests

    def decode_vision_reference(self, goldens, max_tokens: int):
        """mlx-vlm's greedy answers to the questions (each chunk of a chunked one on its own)."""
        suite = self.suite
        suite.make_room_for_process(self.model)
        path = reference_decoder.snapshot_path(self.model, suite.hf_home)
        questions = [vision_reference.Question(g.prompt, tuple(self._image_paths(g))) for g in goldens]
        result = self.record(vision_reference.run(path, questions, max_tokens, suite.settings.cli_timeout))
        self.vision_reference = vision_reference.parse(result)
        return self.vision_reference

    # --- speech: transcription and translation (support/speech_checks.py, support/speech_reference.py) --

    def speech_clips(self) -> tuple:
        """The model's golden clips (demo), or the neutral clip (a user's cache)."""
        return sc.clips_of(self.suite.manifest, self.model) or (sc.neutral_clip()[0],)

    def clip_data(self, clip) -> bytes:
        if self.suite.manifest is None:
            return sc.neutral_clip()[1]
        return sc.clip_bytes(self.image_root(), clip)

    def clip_path(self, clip) -> str:
        """The clip as a file: the demo's asset, or the neutral clip written to the reports folder."""
        if self.suite.manifest is not None:
            return str(self.image_root() / clip.file)
        return str(self._scratch_file(clip.file, self.clip_data(clip)))

    def _scratch_file(self, name: str, data: bytes) -> Path:
        folder = evidence.EVIDENCE.parent / "speech-clips"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return folder / name

    def can_translate(self, model_id: str | None = None) -> bool:
        """The model is listed with the translation capability (`mlxk list`: audio-translate-en)."""
        model_id = model_id or self.model
        return any(m.id == model_id and sc.TRANSLATE_CAPABILITY in m.capabilities for m in self.suite.portfolio.anywhere.audio)

    def upload(self, clip, task: str = sc.TRANSCRIBE, response_format: str | None = None,
               language: str | None = None, data: bytes | None = None, filename: str | None = None,
               model: str | None = None) -> "SpeechAnswer":
        """POST the clip (or `data` under its name) to the transcription or translation endpoint."""
        data = self.clip_data(clip) if data is None else data
        fields = sc.upload_fields(self.suite.target.request_model(model or self.model), response_format, language)
        note = sc.audio_note(data)
        path = TRANSCRIPTIONS if task == sc.TRANSCRIBE else TRANSLATIONS
        ex = self.record(self.client.post_multipart(path, fields, filename or clip.file, data, note=note))
        if data:
            evidence.attach_audio(filename or clip.file, data, len(self.evidence))
        found = SpeechAnswer(clip, task, response_format, language, ex)
        self.speech_answers.append(found)
        return found

    def transcribe_cli(self, clip, *flags: str, task: str = sc.TRANSCRIBE, language: str | None = None,
                       path: str | None = None, model: str | None = None) -> "SpeechAnswer":
        """`mlxk run MODEL --audio FILE` (with --language, --translate, --json as asked)."""
        model = model or self.model
        target = self.suite.target
        extra = target.audio_flags(path or self.clip_path(clip), language, task == sc.TRANSLATE)
        result = self.run_cli(*target.ask_args(model, None, {}, *extra, *flags), loads=model)
        if path is None:
            evidence.attach_audio(clip.file, self.clip_data(clip), len(self.evidence))
        found = SpeechAnswer(clip, task, "--json" if "--json" in flags else None, language, result)
        self.speech_answers.append(found)
        return found

    def transcribe_cli_missing(self, *flags: str) -> CliResult:
        """`mlxk run MODEL --audio` with a file that does not exist."""
        missing = str(Path(tempfile.gettempdir()) / "mlx-e2e-no-such-folder" / sc.MISSING_CLIP)
        return self.transcribe_cli(self.speech_clips()[0], *flags, path=missing).evidence

    def transcribe_cli_not_audio(self, *flags: str) -> CliResult:
        """`mlxk run MODEL --audio` with a file of text bytes named like a WAV."""
        path = self._scratch_file("not-audio.wav", sc.NOT_AUDIO)
        return self.transcribe_cli(self.speech_clips()[0], *flags, path=str(path)).evidence

    def any_speech_model(self) -> str | None:
        """The first speech model of the portfolio that the RAM gate lets run (None: none)."""
        return self.suite.portfolio.first("audio")

    def chat_with_speech_model(self, clip) -> Exchange:
        """A chat request naming the speech model in use, then the clip uploaded as it should be."""
        self.refused_chat = self.record(self.client.post_json(CHAT, chat_payload(self.model_name, "Say hello.", max_tokens=8)))
        self.upload(clip)
        return self.refused_chat

    def upload_for_chat_model(self, clip) -> None:
        """The clip uploaded for transcription naming a chat model of the portfolio, then as it should be."""
        self.upload(clip, model=self.any_chat_model())
        self.upload(clip)

    def send_bad_uploads(self, rows) -> list[BadRequestOutcome]:
        """Each named bad upload, each followed by a good transcription: `bad_requests`."""
        clip = self.speech_clips()[0]
        for name, status in rows:
            bad = self.upload(clip, **sc.bad_upload(name, self.clip_data(clip))).evidence
            good = self.upload(clip).evidence
            self.bad_requests.append(BadRequestOutcome(name, status, bad, good))
        return self.bad_requests

    def decode_speech_reference(self, asks: Iterable[tuple]) -> object:
        """mlx-audio's own transcriptions of (clip, task) pairs, in a subprocess."""
        suite = self.suite
        suite.make_room_for_process(self.model)
        path = reference_decoder.snapshot_path(self.model, suite.hf_home)
        asks = [speech_reference.Ask(self.clip_path(c), task) for c, task in asks]
        result = self.record(speech_reference.run(path, asks, suite.settings.cli_timeout))
        self.speech_reference = speech_reference.parse(result)
        return self.speech_reference

    def transcribe_openai_client(self, clip) -> Exchange:
        """The official OpenAI client uploads the clip (client.audio.transcriptions.create)."""
        ex = self.record(sdk_transcription(self.server.base_url, self.model_name, clip.file, self.clip_data(clip),
                                           self.suite.settings.request_timeout))
        self.speech_answers.append(SpeechAnswer(clip, sc.TRANSCRIBE, None, None, ex))
        return ex


@dataclass(frozen=True)
class SpeechAnswer:
    """What came back for one clip, one way: an upload (Exchange) or `mlxk run --audio` (CliResult)."""

    clip: object  # support.speech_checks.SpeechClip
    task: str
    response_format: str | None  # the server's format; on the command line "--json" or None
    language: str | None
    evidence: Exchange | CliResult

    @property
    def way(self) -> str:
        if isinstance(self.evidence, CliResult):
            return "command line" + (" --json" if self.response_format else "")
        return f"server ({self.response_format or 'json'})"

    def describe(self) -> str:
        return f"--- {self.task} of {self.clip.describe()}, {self.way}:\n{self.evidence.describe()}"
