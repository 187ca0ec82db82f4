"""The listing checked against the demo manifest and the cache (support/listing_checks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import listing_checks
from support.demo_portfolio import hf_cache
from support.errors import HarnessError
from support.paths import ROOT
from support.ram_budget import Budget

BUDGET = Budget(6.0, 16.0, None, "the demo portfolio manifest")
MANIFEST = {"models": [
    {"id": "demo/chat", "expect": "chat", "expect_reason": ""},
    {"id": "demo/big", "expect": "chat", "expect_reason": "needs"},
    {"id": "demo/base", "expect": "base", "expect_reason": ""},
    {"id": "demo/eyes", "expect": "vision"},
    {"id": "demo/embed", "expect": "embedding"},
    {"id": "demo/broken", "expect": "excluded", "expect_reason": "unhealthy"},
    {"id": "demo/torch", "expect": "excluded", "expect_reason": "not MLX"},
    {"id": "demo/xlm", "expect": "refused", "list_reason": "Embedding encoder not vendored"},
    {"id": "demo/whisper", "kind": "audio", "expect": "audio", "translate": True},
]}


def entry(name, model_type="chat", capabilities=("text-generation", "chat"), size=1000, **changes):
    return {"name": name, "model_type": model_type, "capabilities": list(capabilities), "size_bytes": size,
            "framework": "MLX", "health": "healthy", "runtime_compatible": True, "reason": None, **changes}


def listing() -> list[dict]:
    return [entry("demo/chat"), entry("demo/big", size=6 * 1024**3), entry("demo/base", "base", ("text-generation",)),
            entry("demo/eyes", capabilities=("text-generation", "chat", "vision")),
            entry("demo/embed", "embedding", ("embeddings",)),
            entry("demo/broken", health="unhealthy", runtime_compatible=False, reason="No model weights found"),
            entry("demo/torch", framework="PyTorch", runtime_compatible=False, reason="Incompatible framework"),
            entry("demo/xlm", "embedding", ("embeddings",), runtime_compatible=False,
                  reason="Embedding encoder not vendored: xlm-roberta"),
            entry("demo/whisper", "audio", ("audio", "audio-translate-en"))]


def failure(entries) -> str:
    with pytest.raises(AssertionError) as caught:
        listing_checks.check_against_manifest(entries, MANIFEST, BUDGET, "command: mlxk list --json")
    return str(caught.value)


def test_a_listing_as_the_manifest_intends_passes():
    listing_checks.check_against_manifest(listing(), MANIFEST, BUDGET)


def test_a_model_left_out_of_the_listing_fails_by_name():
    message = failure([e for e in listing() if e["name"] != "demo/base"])
    assert "demo/base: expected base, got not listed" in message
    assert "on 1 model(s)" in message and "command: mlxk list --json" in message


@pytest.mark.parametrize("name, change, says", [
    ("demo/eyes", {"capabilities": ["text-generation", "chat"]}, "demo/eyes: expected vision, got chat"),
    ("demo/chat", {"model_type": "base", "capabilities": ["text-generation"]}, "demo/chat: expected chat, got base"),
    ("demo/broken", {"health": "healthy", "runtime_compatible": True}, "demo/broken: expected excluded (unhealthy), got chat"),
    ("demo/big", {"size_bytes": 1000}, "demo/big: expected chat (needs), got chat"),
    ("demo/chat", {"size_bytes": 6 * 1024**3}, "demo/chat: expected chat, got chat (needs 7.2 GB"),
    ("demo/xlm", {"reason": "something else"}, "expected excluded (Embedding encoder not vendored), got excluded"),
    ("demo/whisper", {"model_type": "chat", "capabilities": ["text-generation", "chat"]}, "demo/whisper: expected audio, got chat"),
])
def test_a_model_listed_as_something_else_fails(name, change, says):
    entries = [dict(e, **change) if e["name"] == name else e for e in listing()]
    assert says in failure(entries)


def test_a_listed_model_the_manifest_does_not_know_fails():
    assert "demo/stray: listed, but not a model of the demo manifest" in failure([*listing(), entry("demo/stray")])


def test_an_unknown_intent_is_the_harness_s_problem():
    with pytest.raises(HarnessError, match="expect 'sing'"):
        listing_checks.intended({"id": "demo/x", "expect": "sing"})


def test_models_in_the_cache_but_not_listed_are_found(tmp_path):
    for repo in ("org/listed", "org/forgotten"):
        hf_cache.write_repo(tmp_path, repo, {"config.json": b"{}"})
    assert listing_checks.cached_models(tmp_path / "hub") == ["org/forgotten", "org/listed"]
    assert listing_checks.unlisted(tmp_path / "hub", [entry("org/listed")]) == ["org/forgotten"]
    assert listing_checks.unlisted(tmp_path / "nothing-here", []) == []
    (tmp_path / "hub" / "not-a-repo.txt").write_text("x")  # a stray file: reported by the scan, not fatal
    assert listing_checks.cached_models(tmp_path / "hub") == ["org/forgotten", "org/listed"]


SCENARIO = "The listing gives every demo model its intended outcome"


def run_listing_scenario(tmp_path: Path, drop: str) -> subprocess.CompletedProcess:
    wrapper = f"{sys.executable} {ROOT / 'tests' / 'standins' / 'listing_drops.py'}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": str(tmp_path)}
    env["MLX_E2E_DROP_MODEL"] = drop
    return subprocess.run([str(Path(sys.executable).parent / "behave"), "--tags=@live_e2e", "-n", SCENARIO,
                           "-D", f"mlxk={wrapper}", "-f", "plain", "--no-junit", "--no-capture"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_build_whose_listing_leaves_out_a_demo_model_fails_the_listing_scenario(demo_root, mlxk, tmp_path):
    """(The control, the real listing passing the scenario, is the known-failures slice:
    tests/test_known_failures.py runs it with every other scenario that takes no portfolio row.)"""
    dropped = run_listing_scenario(tmp_path, drop="mlx-e2e-demo/gemma-style")
    assert dropped.returncode != 0 and "1 failed" in dropped.stdout, dropped.stdout[-2000:] + dropped.stderr[-2000:]
    assert "mlx-e2e-demo/gemma-style: expected chat, got not listed" in dropped.stdout, dropped.stdout[-3000:]
