"""The SUT's listing checked, not trusted: `mlxk list --json` against what is in the cache.

On the demo portfolio the manifest (portfolio.json) says what discovery must make of every model:
chat, base, vision, embedding or audio (gated when it needs more RAM than the demo budget), or
excluded and why. A build whose listing leaves a model out or lists it as something else would
otherwise only shrink the run. On a user's cache there is no manifest: the models the cache holds
(huggingface_hub.scan_cache_dir) but the listing leaves out are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.errors import CacheNotFound, CorruptedCacheException

from . import discovery, ram_budget
from .errors import HarnessError

KINDS = ("vision", "chat", "base", "audio", "embedding")  # first that fits: a vision model is a chat model too
NOT_LISTED = "not listed"


@dataclass(frozen=True)
class Outcome:
    """What discovery makes of a model: its kind (or "excluded", or NOT_LISTED) and the reason
    (exclusion or RAM gate; for an intended outcome, a piece the actual reason must contain)."""

    kind: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.kind} ({self.reason})" if self.reason else self.kind

    def fits(self, actual: Outcome) -> bool:
        """Same kind, and the reason holds the intended piece (no reason intended: none given)."""
        return self.kind == actual.kind and (self.reason in actual.reason if self.reason else not actual.reason)


def intended(entry: dict) -> Outcome:
    """The outcome the demo manifest intends for one of its models."""
    expect, reason = entry.get("expect"), entry.get("expect_reason") or ""
    if expect in KINDS:
        return Outcome(expect, reason)  # e.g. the oversized chat model: gated, "needs ..."
    if expect == "excluded":
        return Outcome("excluded", reason)
    if expect == "refused":  # listed, but not runtime compatible: its listing says why
        return Outcome("excluded", entry.get("list_reason") or "")
    raise HarnessError(f"portfolio.json: model {entry.get('id')!r} has expect {expect!r}, which the "
                       f"listing check does not know (known: {', '.join(KINDS)}, excluded, refused)")


def actual(model_id: str, portfolio: discovery.Portfolio) -> Outcome:
    """What discovery made of the model from the listing."""
    reasons = dict(portfolio.excluded)
    if model_id in reasons:
        return Outcome("excluded", reasons[model_id])
    kinds = {"vision": portfolio.vision, "chat": portfolio.chat, "base": portfolio.text,
             "audio": portfolio.audio, "embedding": portfolio.embeddings}
    kind = next((k for k in KINDS if any(m.id == model_id for m in kinds[k])), None)
    if kind is None:
        return Outcome(NOT_LISTED)
    return Outcome(kind, portfolio.gated.get(model_id, ""))


def check_against_manifest(entries: list[dict], manifest: dict, budget: ram_budget.Budget,
                           evidence: str = "") -> None:
    """Every manifest model gets its intended outcome from the listing, and nothing else is listed;
    AssertionError naming each model that does not (expected / got / where to look)."""
    portfolio = discovery.classify(entries, budget)  # no include/exclude: the whole listing
    problems = []
    for entry in manifest["models"]:
        want, got = intended(entry), actual(entry["id"], portfolio)
        if not want.fits(got):
            problems.append(f"{entry['id']}: expected {want}, got {got}")
    known = {entry["id"] for entry in manifest["models"]}
    problems += [f"{name}: listed, but not a model of the demo manifest"
                 for name in sorted({e["name"] for e in entries} - known)]
    if problems:
        raise AssertionError(f"`mlxk list --json` disagrees with the demo manifest (portfolio.json) on "
                             f"{len(problems)} model(s):\n  " + "\n  ".join(problems)
                             + (f"\n{evidence}" if evidence else ""))


def cached_models(hub: Path) -> list[str]:
    """The model repositories a Hugging Face cache holds (huggingface_hub's own scan; a folder it
    cannot read as a repository is left out, as the SUT's listing would leave it out)."""
    try:
        scan = scan_cache_dir(hub)
    except (CacheNotFound, CorruptedCacheException):
        return []
    return sorted(repo.repo_id for repo in scan.repos if repo.repo_type == "model")


def unlisted(hub: Path, entries: list[dict]) -> list[str]:
    """Models in the cache that the listing leaves out."""
    listed = {entry["name"] for entry in entries}
    return [model for model in cached_models(hub) if model not in listed]
