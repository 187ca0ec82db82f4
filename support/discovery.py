"""Portfolio discovery with the production command (`mlxk list --json`) and model eligibility."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Sequence

import jsonschema

from . import ram_budget
from .schemas import LIST_SCHEMA
from .cli_runner import run_cli
from .config import last_line, shown
from .errors import DiscoveryError

WHAT = "mlxk list --json"
def run_mlxk_list(mlxk: tuple[str, ...], hf_home: Path, timeout: float) -> list[dict]:
    """The model entries `mlxk list --json` reports for the cache at hf_home."""
    try:
        result = run_cli(mlxk, ("list", "--json"), hf_home, timeout)
    except OSError as e:
        raise DiscoveryError(f"{WHAT} could not start ({e.strerror or e}): "
                             "point -D mlxk at an mlx-knife executable") from None
    if result.timed_out:
        raise DiscoveryError(f"{WHAT} did not answer within {timeout:g} s: raise -D cli_timeout")
    if result.returncode != 0:
        raise DiscoveryError(f"{WHAT} exited {result.returncode}: {last_line(result.stderr)}")
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise DiscoveryError(f"{WHAT} printed no JSON: {result.stdout[:120]!r}") from None
    if isinstance(doc, dict) and doc.get("status") != "success":
        error = doc.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        raise DiscoveryError(f"{WHAT} answered status {doc.get('status')!r}, expected 'success'"
                             + (f": {str(message)[:200]!r}" if message else ""))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(LIST_SCHEMA).iter_errors(doc))
    if error is not None:
        raise DiscoveryError(_explain(doc, error))
    return doc["data"]["models"]


def _explain(doc: object, error: jsonschema.ValidationError) -> str:
    """One line for the first way the answer breaks the schema."""
    path = list(error.absolute_path)
    if len(path) < 3:
        where = "/".join(map(str, path)) or "top level"
        return f"{WHAT}: the answer has no data.models list (at {where}: {error.message[:120]})"
    entry = doc["data"]["models"][path[2]]  # type: ignore[index]
    name = entry.get("name") if isinstance(entry, dict) else None
    who = f"model {name!r}" if isinstance(name, str) and name else f"model #{path[2] + 1}"
    if len(path) == 3 and error.validator == "required":
        missing = next(f for f in error.validator_value if f not in error.instance)
        return f"{WHAT}: {who} lacks field {missing!r}"
    if len(path) == 3:
        return f"{WHAT}: {who} is not an object: {json.dumps(entry)[:120]}"
    return f"{WHAT}: {who} field {path[3]!r} is {json.dumps(error.instance)[:60]}: {error.message[:120]}"


@dataclass(frozen=True)
class Model:
    """A listed model as the suite keeps it (the fields of `mlxk list --json` it relies on)."""

    id: str
    capabilities: tuple[str, ...]
    size_bytes: int
    model_type: str
    framework: str


# What the suite certifies, by mlx-knife's model_type: chat and base models generate text
# (chat models with capability "vision" also answer about images), audio models transcribe,
# embedding models embed.
MODEL_TYPES = ("chat", "base", "audio", "embedding")


@dataclass
class Portfolio:
    """The runnable models by kind (the rows of the portfolio outlines), and why every other
    listed model is left out. A model can be of several kinds: every chat model is a text model,
    a vision model is a chat model too."""

    chat: list[Model] = field(default_factory=list)
    text: list[Model] = field(default_factory=list)  # chat and base models: text completions
    vision: list[Model] = field(default_factory=list)
    audio: list[Model] = field(default_factory=list)
    embeddings: list[Model] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (model id, reason)
    gated: dict[str, str] = field(default_factory=dict)  # model id -> over-budget reason
    whole: Portfolio | None = None  # in a shard's run: the unsharded portfolio

    @property
    def anywhere(self) -> Portfolio:
        """Where a scenario that is not per model picks its model ("any chat model"): the whole
        portfolio, so that shard 1, which runs such scenarios alone, picks what one run would."""
        return self.whole or self

    def first(self, kind: str, where: Callable[[Model], bool] = lambda m: True) -> str | None:
        """The first model of `kind` (anywhere) that the RAM gate lets run and `where` accepts."""
        every = self.anywhere
        return next((m.id for m in getattr(every, kind) if m.id not in every.gated and where(m)), None)

    @property
    def models(self) -> list[Model]:
        """Every model the run covers, once each, sorted by id."""
        return sorted({m.id: m for m in self.text + self.audio + self.embeddings}.values(), key=lambda m: m.id)

    def rows(self) -> dict[str, list[str]]:
        """Model ids per portfolio kind (`@portfolio.<kind>` outlines)."""
        return {kind: [m.id for m in getattr(self, kind)] for kind in ("chat", "text", "vision", "audio", "embeddings")}


def _reason(entry: dict) -> str:
    """mlxk's own reason for a model's state, as one line."""
    return shown(str(entry.get("reason") or "mlxk gave no reason"))


def _exclusion(entry: dict, include: Sequence[str], exclude: Sequence[str]) -> str | None:
    """The first reason the entry is not a candidate, or None."""
    name, model_type = entry["name"], entry["model_type"]
    if entry["health"] != "healthy":
        return f"unhealthy: {_reason(entry)}"
    if entry["framework"] != "MLX":
        return f"not MLX (framework {entry['framework']})"
    if not entry["runtime_compatible"]:
        return f"not runtime compatible: {_reason(entry)}"
    if model_type not in MODEL_TYPES:
        return f"not a kind of model the suite certifies (model_type {model_type})"
    if model_type in ("chat", "base") and "text-generation" not in entry["capabilities"]:
        return f"a {model_type} model without the text-generation capability"
    if include and not any(fnmatchcase(name, p) for p in include):
        return f"filtered by pattern (matches none of -D include={','.join(include)})"
    hit = next((p for p in exclude if fnmatchcase(name, p)), None)
    if hit is not None:
        return f"filtered by pattern (matches -D exclude pattern {hit})"
    return None


def shard_of(ids: list[str], shard: tuple[int, int]) -> list[str]:
    """The ids in shard i of n (1-based): every n-th of the sorted ids, starting at the i-th."""
    i, n = shard
    return [model_id for index, model_id in enumerate(sorted(ids)) if index % n == i - 1]


def classify(entries: list[dict], budget: ram_budget.Budget, include: Sequence[str] = (),
             exclude: Sequence[str] = (), max_models: int | None = None,
             shard: tuple[int, int] | None = None) -> Portfolio:
    """Sort the listed models by kind; over-budget ones stay but are gated."""
    portfolio = Portfolio()
    candidates = []
    for entry in sorted(entries, key=lambda e: e["name"]):
        reason = _exclusion(entry, include, exclude)
        if reason is None:
            candidates.append(entry)
        else:
            portfolio.excluded.append((entry["name"], reason))
    if max_models is not None:
        portfolio.excluded += [(e["name"], f"beyond -D max_models={max_models}")
                               for e in candidates[max_models:]]
        candidates = candidates[:max_models]
    if shard is not None:
        names, n = [e["name"] for e in candidates], shard[1]
        owner = {name: k for k in range(1, n + 1) for name in shard_of(names, (k, n))}
        portfolio.excluded += [(name, f"in another shard ({owner[name]}/{n})")
                               for name in names if owner[name] != shard[0]]
        candidates = [e for e in candidates if owner[e["name"]] == shard[0]]
    for entry in candidates:
        model = Model(entry["name"], tuple(entry["capabilities"]), int(entry["size_bytes"]),
                      entry["model_type"], entry["framework"])
        if model.model_type in ("chat", "base"):
            portfolio.text.append(model)
        if model.model_type == "chat":
            portfolio.chat.append(model)
            if "vision" in model.capabilities:
                portfolio.vision.append(model)
        if model.model_type == "audio":
            portfolio.audio.append(model)
        if model.model_type == "embedding":
            portfolio.embeddings.append(model)
        reason = ram_budget.gate(model.size_bytes, budget)
        if reason is not None:
            portfolio.gated[model.id] = reason
    portfolio.excluded.sort()
    if shard is not None:
        portfolio.whole = classify(entries, budget, include, exclude, max_models)
    return portfolio


def format_exclusions(portfolio: Portfolio) -> list[str]:
    """One line per excluded or gated model, for the run's log."""
    return ([f"excluded {model_id}: {reason}" for model_id, reason in portfolio.excluded]
            + [f"gated {model_id}: {reason}" for model_id, reason in sorted(portfolio.gated.items())])
