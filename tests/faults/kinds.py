"""How a fault is written and registered (the faults themselves are in catalogue.py).

`@fault(name, bug_class, selection, catches, does=...)` on an implementation registers it in
`BY_NAME`. The implementation is, for `mlxk serve`, a `transport.Hooks` subclass (a fault that keeps
state), or a function that an adapter given as `on=` turns into one: `answers` (a batch answer's
JSON), `chunks` (each JSON chunk of a stream), `events` (a stream's events), `hook` (any one hook).
For the other commands it is a `CliFault`, or a function made one by `output` (stdout and exit code),
`json_output` (the `--json` document) or `plain_answer` (the plain answer).
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Callable, Iterator

from .transport import Event, Hooks, Pause, Request, Response


@dataclass(frozen=True)
class Selection:
    name: str
    args: tuple[str, ...]  # behave arguments (the shim's -D mlxk and the output options are added)
    about: str

    @property
    def shown(self) -> str:
        return " ".join(a if " " not in a and "|" not in a else repr(a) for a in self.args)


@dataclass(frozen=True)
class CliFault:
    """A fault of the command line: when `applies(argv)`, the shim runs the real command and
    alters its stdout and exit code (or, with `hang`, never ends)."""

    applies: Callable[[list[str]], bool]
    alter: Callable[[str, int], tuple[str, int]] = lambda out, code: (out, code)
    hang: bool = False


@dataclass(frozen=True)
class Fault:
    name: str
    bug_class: str
    does: str
    selection: Selection
    catches: tuple[str, ...]  # scenario name fragments, any of which must fail unexpectedly
    proxy: type[Hooks] | None  # the fault of `mlxk serve` (the fault proxy's hooks), or
    cli: CliFault | None  # the fault of the other commands
    max_seconds: float | None = None  # bound on the catching scenario's duration (hangs)
    masked_by: str | None = None  # a registered known issue that swallows the failure
    missing_check: str | None = None  # what the suite would need to catch it

    @property
    def expected_caught(self) -> bool:
        return self.masked_by is None and self.missing_check is None


BY_NAME: dict[str, Fault] = {}


def fault(name: str, bug_class: str, selection: Selection, catches: tuple[str, ...], *, does: str,
          on: Callable | tuple[Callable, ...] | None = None, max_seconds: float | None = None,
          masked_by: str | None = None, missing_check: str | None = None) -> Callable:
    """Registers the decorated implementation as the fault `name`: a `Hooks` subclass or a `CliFault`,
    or a function that the adapter `on` (or each of a tuple of proxy adapters) makes one of."""
    def register(impl):
        if name in BY_NAME:
            raise ValueError(f"fault {name!r} is defined twice")
        if isinstance(on, tuple):
            impl = type(name, tuple(adapt(impl) for adapt in on), {})
        elif on is not None:
            impl = on(impl)
        cli = impl if isinstance(impl, CliFault) else None
        BY_NAME[name] = Fault(name, bug_class, does, selection, catches, None if cli is not None else impl, cli,
                              max_seconds, masked_by, missing_check)
        return impl
    return register


# --- adapters: what part of the exchange a fault function edits ----------------------------

def hook(name: str) -> Callable:
    """fn(<the arguments of the Hooks method `name`>, model) is that method."""
    return lambda fn: type(name, (Hooks,), {name: lambda self, *args: fn(*args, self.model)})


def answers(*routes: str) -> Callable:
    """fn(doc, model) edits the JSON document of each successful batch answer to `routes`."""
    def adapt(fn):
        def batch(req: Request, resp: Response, model: str) -> Response:
            doc = resp.json
            if req.posts_to(*routes) and not req.streamed and resp.status == 200 and isinstance(doc, dict):
                fn(doc, model)
                return resp.set_json(doc)
            return resp
        return hook("batch")(batch)
    return adapt


def events(*routes: str) -> Callable:
    """fn(events, model) gives the events sent for each stream posted to `routes` (any stream: none given)."""
    def adapt(fn):
        return hook("stream")(lambda req, evs, model: fn(evs, model) if not routes or req.posts_to(*routes) else evs)
    return adapt


def chunks(*routes: str) -> Callable:
    """fn(chunk, n) edits each JSON chunk (n: its index among them) of the streams posted to `routes`."""
    def adapt(fn):
        def stream(evs: Iterator[Event], model: str) -> Iterator[Event]:
            n = 0
            for event in evs:
                chunk = event.chunk
                if chunk is not None:
                    fn(chunk, n)
                    n += 1
                    event = Event.of(chunk)
                yield event
        return events(*routes)(stream)
    return adapt


EMBEDDINGS = "/v1/embeddings"


def backend_embeddings(fn):
    """fn(doc, model) edits each successful /v1/embeddings answer of `embed-serve` (the backend; the
    chat server in front of it passes the edited answer on)."""
    def batch(self, req: Request, resp: Response) -> Response:
        doc = resp.json
        if self.process == "embed-serve" and req.posts_to(EMBEDDINGS) and resp.status == 200 and isinstance(doc, dict):
            fn(doc, self.model)
            return resp.set_json(doc)
        return resp
    return type("backend_embeddings", (Hooks,), {"batch": batch})


def proxy_embeddings(fn):
    """fn(req, model) -> the answer the chat server (`serve --embed-backend`) gives to /v1/embeddings
    instead of forwarding it (None: forward)."""
    def before(self, req: Request):
        return fn(req, self.model) if self.process == "serve" and req.posts_to(EMBEDDINGS) else None
    return type("proxy_embeddings", (Hooks,), {"before": before})


def base64_floats(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def floats_base64(vector: list[float], dtype: str = "<f4") -> str:
    """`vector` as base64 of `dtype` ("<f4": what OpenAI's clients decode; "<f8": the wrong width)."""
    code = {"<f4": "f", "<f8": "d"}[dtype]
    return base64.b64encode(struct.pack(f"<{len(vector)}{code}", *vector)).decode("ascii")


def runs(argv: list[str]) -> bool:
    return bool(argv) and argv[0] == "run"


def runs_json(argv: list[str]) -> bool:
    return runs(argv) and "--json" in argv


def runs_plain(argv: list[str]) -> bool:
    return runs(argv) and "--json" not in argv


def output(applies: Callable[[list[str]], bool]) -> Callable:
    """fn(stdout, exit code) -> (stdout, exit code) of the commands `applies` accepts."""
    return lambda fn: CliFault(applies, fn)


def json_output(fn: Callable[[dict], None]) -> CliFault:
    """fn(doc) edits the JSON document that `mlxk run --json` prints."""
    def alter(out: str, code: int) -> tuple[str, int]:
        try:
            doc = json.loads(out)
        except ValueError:
            return out, code
        if isinstance(doc, dict):
            fn(doc)
            out = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        return out, code
    return CliFault(runs_json, alter)


def plain_answer(fn: Callable[[str], str]) -> CliFault:
    """fn(answer) -> the answer that a successful plain `mlxk run` prints (its final newline kept)."""
    def alter(out: str, code: int) -> tuple[str, int]:
        if code != 0 or not out.strip():
            return out, code
        return fn(out.removesuffix("\n")) + "\n", code
    return CliFault(runs_plain, alter)


# --- helpers --------------------------------------------------------------------------------

def end_token(model: str) -> str:
    """The end-of-turn token of the model's family (what a leaking server shows)."""
    for family, token in (("gemma", "<end_of_turn>"), ("phi3", "<|end|>"), ("llama3", "<|eot_id|>"),
                          ("mistral", "</s>")):
        if family in model:
            return token
    return "<|im_end|>"


def choice(chunk: dict | None) -> dict | None:
    if not chunk or not isinstance(chunk.get("choices"), list) or not chunk["choices"]:
        return None
    return chunk["choices"][0] if isinstance(chunk["choices"][0], dict) else None


def delta_text(chunk: dict | None) -> str | None:
    c = choice(chunk)
    if c is None:
        return None
    if isinstance(c.get("delta"), dict):
        return c["delta"].get("content")
    return c.get("text")


def with_delta_text(chunk: dict, text: str) -> dict:
    """The chunk, edited to carry `text` (chat delta or completion text)."""
    c = chunk["choices"][0]
    if isinstance(c.get("delta"), dict):
        c["delta"]["content"] = text
    else:
        c["text"] = text
    return chunk


def paced(evs: Iterator[Event], seconds: float) -> Iterator[Event | Pause]:
    """Each event held back `seconds` (a client that leaves meanwhile is noticed)."""
    for event in evs:
        yield Pause(seconds)
        yield event
