"""Discovery without a listing command: the cache scanned with huggingface_hub, classified by
support/discovery.py's rules (a stand-in cache here; the live slice compares with `mlxk list`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import ram_budget
from support.cache_scan import scan_entries
from support.demo_portfolio.hf_cache import write_repo
from support.discovery import classify
from support.errors import DiscoveryError

MLX_CARD = b"---\nlibrary_name: mlx\ntags: [mlx]\n---\n# m\n"
TORCH_CARD = b"---\nlibrary_name: transformers\ntags: [pytorch]\n---\n# m\n"
TEMPLATE = json.dumps({"chat_template": "{{ messages }}"}).encode()


def config(model_type: str = "llama", **extra) -> bytes:
    return json.dumps({"model_type": model_type, "architectures": ["LlamaForCausalLM"], **extra}).encode()


def standin(root: Path) -> Path:
    """One repo per rule: chat, base, vision, embedders, unhealthy, PyTorch, an unknown architecture."""
    weights = {"model.safetensors": b"w" * 100}
    repos = {
        "org/chat": {"README.md": MLX_CARD, "config.json": config(), "tokenizer_config.json": TEMPLATE, **weights},
        "org/base": {"README.md": MLX_CARD, "config.json": config(), "tokenizer_config.json": b"{}", **weights},
        "org/vision": {"README.md": MLX_CARD, "config.json": config("mistral3", vision_config={"a": 1}),
                       "chat_template.jinja": b"{{ x }}", **weights},
        "org/st-embed": {"README.md": MLX_CARD, "config.json": config("bert"), "modules.json": b"[]", **weights},
        "org/decoder-embed": {"README.md": MLX_CARD, "config.json": config("qwen3"), **weights},
        "org/no-weights": {"README.md": MLX_CARD, "config.json": config(), "tokenizer_config.json": TEMPLATE},
        "org/torch": {"README.md": TORCH_CARD, "config.json": config(), **weights},
        "org/quantized": {"config.json": config(quantization={"bits": 4}), **weights},  # MLX by its config
        "org/exotic": {"README.md": MLX_CARD, "config.json": config("nosucharch"), **weights},
        "org/sharded": {"README.md": MLX_CARD, "config.json": config(), "model-00001-of-00002.safetensors": b"w",
                        "model.safetensors.index.json": json.dumps({"weight_map": {
                            "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}).encode()},
    }
    for repo_id, files in repos.items():
        write_repo(root, repo_id, files)
    return root


LOADABLE = frozenset({"llama", "mistral3", "qwen3"})


def by_name(root: Path) -> dict[str, dict]:
    return {e["name"]: e for e in scan_entries(root, LOADABLE)}


def test_entries_have_the_listing_fields(tmp_path):
    entries = by_name(standin(tmp_path))
    chat = entries["org/chat"]
    assert chat == {"name": "org/chat", "size_bytes": len(MLX_CARD) + len(config()) + len(TEMPLATE) + 100,
                    "framework": "MLX", "model_type": "chat", "capabilities": ["text-generation", "chat"],
                    "health": "healthy", "runtime_compatible": True, "reason": None}
    assert entries["org/base"]["model_type"] == "base" and entries["org/base"]["capabilities"] == ["text-generation"]
    assert entries["org/vision"]["capabilities"] == ["text-generation", "chat", "vision"]
    assert entries["org/quantized"]["framework"] == "MLX"


def test_embedders_by_layout_or_by_a_decoder_named_embed(tmp_path):
    entries = by_name(standin(tmp_path))
    assert entries["org/st-embed"]["model_type"] == entries["org/decoder-embed"]["model_type"] == "embedding"
    assert entries["org/st-embed"]["reason"] == "the target cannot load model_type bert"


def test_the_discovery_rules_classify_the_scan(tmp_path):
    portfolio = classify(scan_entries(standin(tmp_path), LOADABLE), ram_budget.Budget(6.0, 16.0, None, "test"))
    assert [m.id for m in portfolio.chat] == ["org/chat", "org/vision"]
    assert [m.id for m in portfolio.text] == ["org/base", "org/chat", "org/quantized", "org/vision"]
    assert [m.id for m in portfolio.vision] == ["org/vision"]
    assert [m.id for m in portfolio.embeddings] == ["org/decoder-embed"]
    reasons = dict(portfolio.excluded)
    assert reasons["org/no-weights"] == "unhealthy: No model weights found"
    assert reasons["org/torch"] == "not MLX (framework PyTorch)"
    assert reasons["org/exotic"] == "not runtime compatible: the target cannot load model_type nosucharch"
    assert reasons["org/sharded"] == "unhealthy: weight shard(s) missing: model-00002-of-00002.safetensors"
    assert reasons["org/st-embed"].startswith("not runtime compatible")


def test_without_a_loader_list_every_architecture_is_compatible(tmp_path):
    entries = {e["name"]: e for e in scan_entries(standin(tmp_path), None)}
    assert entries["org/exotic"]["runtime_compatible"] and entries["org/st-embed"]["runtime_compatible"]
    assert not entries["org/torch"]["runtime_compatible"] and not entries["org/no-weights"]["runtime_compatible"]


def test_a_missing_cache_is_a_discovery_error(tmp_path):
    with pytest.raises(DiscoveryError, match="huggingface_hub.scan_cache_dir"):
        scan_entries(tmp_path / "nowhere")


def test_a_whisper_model_translates_unless_english_only(tmp_path):
    for repo_id in ("org/whisper-small", "org/whisper-tiny.en-style"):
        write_repo(tmp_path, repo_id, {"README.md": MLX_CARD, "config.json": config("whisper"),
                                       "model.safetensors": b"w"})
    entries = {e["name"]: e for e in scan_entries(tmp_path)}
    assert entries["org/whisper-small"]["capabilities"] == ["audio", "audio-translate-en"]
    assert entries["org/whisper-tiny.en-style"]["capabilities"] == ["audio"]
    assert entries["org/whisper-small"]["model_type"] == "audio"
