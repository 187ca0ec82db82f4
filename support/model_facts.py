"""What the suite knows about one model: prompts, golden answers, tokens that must never show."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from .expect import clipped, that

# End and template tokens of the common families; the model's own special tokens are added.
COMMON_FORBIDDEN = ("<|end|>", "<|eot_id|>", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "</s>",
                    "<|end_of_text|>", "<end_of_turn>", "<start_of_turn>", "<|return|>")
# Reasoning markers are content a reasoning model shows, not end or template tokens.
REASONING_START, REASONING_END = "<think>", "</think>"
REASONING_MARKERS = (REASONING_START, REASONING_END)
# Prompts for models without golden answers (a user's portfolio).
NEUTRAL_PROMPTS = ("What is the capital of France?", "Say hello.", "Name a primary color.",
                   "Count to five.")


@dataclass(frozen=True)
class Golden:
    prompt: str
    answer: str


@dataclass(frozen=True)
class ModelFacts:
    id: str
    goldens: tuple[Golden, ...]  # empty outside the demo portfolio
    forbidden_tokens: tuple[str, ...]
    family: str | None = None

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(g.prompt for g in self.goldens) or NEUTRAL_PROMPTS

    def golden_for(self, prompt: str) -> str | None:
        return next((g.answer for g in self.goldens if g.prompt == prompt), None)

    @property
    def longest(self) -> Golden | None:
        return max(self.goldens, key=lambda g: len(g.answer), default=None)


def tokenizer_special_tokens(hf_home: Path, model_id: str) -> set[str]:
    """Special tokens declared by the model's own tokenizer files in the cache (read only)."""
    found: set[str] = set()
    cache = hf_home / "hub"
    path = try_to_load_from_cache(model_id, "tokenizer.json", cache_dir=cache)
    if isinstance(path, str):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        found |= {t["content"] for t in data.get("added_tokens", []) if t.get("special")}
    path = try_to_load_from_cache(model_id, "tokenizer_config.json", cache_dir=cache)
    if isinstance(path, str):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        found |= {t["content"] for t in (data.get("added_tokens_decoder") or {}).values() if t.get("special")}
    return found


def facts_for(model_id: str, hf_home: Path, manifest: dict | None) -> ModelFacts:
    entry = next((m for m in (manifest or {}).get("models", []) if m["id"] == model_id), None)
    goldens = tuple(Golden(g["prompt"], g["answer"]) for g in (entry or {}).get("goldens", ())
                    if not g.get("images") and not g.get("audio"))  # the text-only ones
    own = tokenizer_special_tokens(hf_home, model_id) - set(REASONING_MARKERS)
    forbidden = tuple(sorted(set(COMMON_FORBIDDEN) | own))
    return ModelFacts(model_id, goldens, forbidden, (entry or {}).get("family"))


def visible_tokens(text: str, forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden tokens that appear in `text`."""
    return [t for t in forbidden if t in text]


def check_no_visible_tokens(text: str, forbidden: tuple[str, ...], what: str, evidence: str = "") -> None:
    """A failed check when `text` shows any of the model's end or template tokens."""
    shown = visible_tokens(text, forbidden)
    that(not shown, f"{what} shows end/template token(s) {shown}: {clipped(text)}", evidence)


def knows_reasoning_markers(hf_home: Path, model_id: str) -> bool:
    """The model's tokenizer has a `</think>` token (special or not): it can show its reasoning."""
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


@dataclass(frozen=True)
class EmbeddingFacts:
    """What the demo manifest says of an embedding model (its `"kind": "embeddings"` entry)."""

    id: str
    expect: str  # "embedding", or "refused" (mlx-knife must refuse to load it)
    dimensions: int | None = None
    pooling: str | None = None
    query_prefix: str = ""  # "" = the model defines none; "{text}" marks where the text goes
    triples: tuple = ()  # support.embedding_checks.Triple
    documents: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (text, reference vector)
    queries: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (text, reference vector of the query form)
    reference: str = ""  # how the reference vectors were computed
    tolerance: float = 0.0


def embedding_facts_for(model_id: str, manifest: dict | None) -> EmbeddingFacts | None:
    """The manifest's facts of an embedding model; None outside the demo portfolio."""
    from .embedding_checks import Triple

    entry = next((m for m in (manifest or {}).get("models", []) if m["id"] == model_id), None)
    if entry is None or entry.get("kind") != "embeddings":
        return None
    table = lambda key: tuple((r["text"], tuple(r["vector"])) for r in entry.get(key, ()))  # noqa: E731
    triples = tuple(Triple(t["anchor"], t["paraphrase"], t["unrelated"], float(t["min_margin"]))
                    for t in entry.get("golden_triples", ()))
    return EmbeddingFacts(model_id, entry["expect"], entry.get("dimensions"), entry.get("pooling"),
                          entry.get("query_prefix", ""), triples, table("reference_vectors"), table("query_vectors"),
                          entry.get("reference", ""), float(entry.get("reference_tolerance", 0.0)))
