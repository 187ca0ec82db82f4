"""Discovery without a listing command: the models of a cache, found with huggingface_hub.

A target that cannot list its models (mlx-lm) gets its portfolio from
``huggingface_hub.scan_cache_dir``: one entry per cached model, with the fields of
`mlxk list --json` (name, size_bytes, framework, model_type, capabilities, health,
runtime_compatible, reason), so that support/discovery.py's ``classify`` applies the very same
exclusion rules to it. The fields are read from the snapshot the way mlx-knife 2.0.8 reads
them (mlxk2/operations/common.py): framework MLX by org mlx-community, the card's
``library_name: mlx`` or tag ``mlx``, or a ``quantization`` key in config.json; a model with a
chat template is a chat model; a sentence-transformers layout, or a causal LM named "embed", is an
embedding model. Runtime
compatibility is the target's: its loader knows the config's model_type.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.repocard import metadata_load

from .errors import DiscoveryError

WHAT = "huggingface_hub.scan_cache_dir"
WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.gguf")
EMBEDDING_FILES = ("modules.json", "config_sentence_transformers.json")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def _json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _health(root: Path, names: set[str], config: dict | None) -> str | None:
    """Why the snapshot cannot be loaded (None: healthy)."""
    if config is None:
        return "config.json missing or not a JSON object"
    if not any(Path(n).match(glob) for n in names for glob in WEIGHTS):
        return "No model weights found"
    index = _json(root / "model.safetensors.index.json") if "model.safetensors.index.json" in names else None
    missing = sorted(set((index or {}).get("weight_map", {}).values()) - names)
    if missing:
        return f"weight shard(s) missing: {', '.join(missing[:3])}"
    broken = sorted(n for n in names if not (root / n).exists())
    if broken:
        return f"file(s) whose blob is missing: {', '.join(broken[:3])}"
    return None


def _framework(name: str, root: Path, names: set[str], config: dict | None) -> str:
    card = metadata_load(root / "README.md") if "README.md" in names else None
    tags = [str(t).lower() for t in (card or {}).get("tags") or []]
    if name.startswith("mlx-community/") or "mlx" in tags or str((card or {}).get("library_name", "")).lower() == "mlx" \
            or "quantization" in (config or {}):
        return "MLX"
    if any(Path(n).match("*.gguf") for n in names):
        return "GGUF"
    if any(Path(n).match(g) for n in names for g in WEIGHTS[:2]):
        return "PyTorch"
    return "Unknown"


def _model_type(name: str, root: Path, names: set[str], config: dict | None) -> str:
    causal = any("forcausallm" in str(a).lower() for a in (config or {}).get("architectures") or [])
    if any(n in names for n in EMBEDDING_FILES) or (causal and "embed" in name.lower()):
        return "embedding"  # a sentence-transformers layout, or a decoder named as an embedder
    if "whisper" in str((config or {}).get("model_type", "")).lower():
        return "audio"
    template = (_json(root / "tokenizer_config.json") or {}).get("chat_template")
    if (isinstance(template, str) and template.strip()) or any(n in names for n in CHAT_TEMPLATE_FILES):
        return "chat"
    return "base"


# A Whisper model translates to English unless it is English-only (".en") or a turbo variant.
_NO_TRANSLATE = re.compile(r"whisper-(?:tiny|base|small|medium)\.en(?:[-_./]|$)|whisper-[a-z0-9.-]*turbo(?:[-_./]|$)")


def _capabilities(name: str, model_type: str, config: dict | None) -> list[str]:
    if model_type == "embedding":
        return ["embeddings"]
    if model_type == "audio":
        whisper = str((config or {}).get("model_type", "")).lower() == "whisper"
        return ["audio", *(["audio-translate-en"] if whisper and not _NO_TRANSLATE.search(name) else [])]
    chat = ["chat"] if model_type == "chat" else []
    vision = ["vision"] if isinstance((config or {}).get("vision_config"), dict) else []
    return ["text-generation", *chat, *vision]


def entry(name: str, root: Path, names: set[str], size_bytes: int, loadable: frozenset[str] | None) -> dict:
    """The listing entry of one snapshot (root: its folder; names: its files, relative paths).
    ``loadable``: the config model_types the target can load (None: any)."""
    config = _json(root / "config.json") if "config.json" in names else None
    sick = _health(root, names, config)
    framework = _framework(name, root, names, config)
    model_type = _model_type(name, root, names, config)
    config_type = str((config or {}).get("model_type", "?"))
    reason = sick or (f"Incompatible framework: {framework}" if framework != "MLX" else None) or (
        f"the target cannot load model_type {config_type}" if loadable is not None and config_type not in loadable
        else None)
    return {"name": name, "size_bytes": int(size_bytes), "framework": framework, "model_type": model_type,
            "capabilities": _capabilities(name, model_type, config), "health": "unhealthy" if sick else "healthy",
            "runtime_compatible": reason is None, "reason": reason}


def scan_entries(hf_home: Path, loadable: frozenset[str] | None = None) -> list[dict]:
    """One entry per model repo of the cache at hf_home (its "main" snapshot, else the newest)."""
    hub = Path(hf_home) / "hub"
    try:
        info = scan_cache_dir(hub)
    except Exception as error:  # CacheNotFound, or an unreadable folder  # noqa: BLE001
        raise DiscoveryError(f"{WHAT}({hub}) failed: {error}") from None
    entries = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = repo.refs.get("main") or max(repo.revisions, key=lambda r: r.last_modified)
        root = revision.snapshot_path
        names = {str(f.file_path.relative_to(root)) for f in revision.files}
        entries.append(entry(repo.repo_id, root, names, revision.size_on_disk, loadable))
    return entries
