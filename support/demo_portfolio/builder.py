"""Build the demo portfolio: tokenizers, trained tiny models, model cards, the manifest."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from . import hf_cache
from .families import FAMILIES, Family
from .models import DEMO_RAM_BUDGET_GB, OVERSIZED_PADDING_BYTES, SPEC_BY_NAME, SPECS, ModelSpec

MANIFEST = "portfolio.json"
ASSETS = "assets"  # images and sound clips the capability models are asked about
# Suite modules the capability builders train or verify through (a change rebuilds the portfolio).
REFERENCE_MODULES = ("embedding_reference.py",)
LOCK = ".build.lock"
LONG_ANSWER_MIN_TOKENS = 64


def fingerprint() -> str:
    """Changes whenever the builder's code or the libraries that shape the models change."""
    from importlib.metadata import version

    h = hashlib.sha256()
    here = Path(__file__).parent
    for f in [*sorted(here.glob("*.py")), *(here.parent / name for name in REFERENCE_MODULES)]:
        h.update(f.read_bytes())
    for pkg in ("mlx", "mlx-lm", "mlx-knife", "mlx-vlm", "mlx-audio", "tokenizers", "transformers"):
        h.update(f"{pkg}={version(pkg)}".encode())
    return h.hexdigest()


def is_current(root: Path) -> bool:
    return (
        hf_cache.read_sentinel(root).get("fingerprint") == fingerprint()
        and (root / MANIFEST).is_file()
    )


def model_card(spec: ModelSpec, family: Family) -> bytes:
    if spec.variant == "pytorch":
        front = "library_name: transformers\ntags: [pytorch, text-generation]"
    else:
        front = "library_name: mlx\ntags: [mlx]"
    return (
        f"---\n{front}\npipeline_tag: text-generation\nlicense: mit\n---\n\n"
        f"# {spec.id}\n\nA tiny demo model built locally by mlx-e2e. It mimics {family.mimics}.\n"
        f"{spec.notes}\n"
    ).encode()


def _corpus(spec: ModelSpec, family: Family) -> list[str]:
    texts = [g.prompt for g in spec.goldens] + [g.answer for g in spec.goldens]
    texts += ["user", "assistant", "system", "model", "\n\n"]
    return texts * 4


def _examples(tok_dir: Path, spec: ModelSpec, family: Family):
    from transformers import AutoTokenizer

    from .training import Example

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    end_ids = [tok.convert_tokens_to_ids(t) for t in family.turn_end]
    examples = []
    for g in spec.goldens:
        if family.chat_template is None:
            prompt_text = g.prompt
        else:
            prompt_text = tok.apply_chat_template(
                [{"role": "user", "content": g.prompt}], tokenize=False, add_generation_prompt=True)
        prompt_ids = tok.encode(prompt_text)
        answer_ids = tok.encode(g.answer, add_special_tokens=False)
        examples.append(Example(prompt_ids, answer_ids + end_ids))
    return tok, examples


def _train_model(spec: ModelSpec, family: Family, work: Path) -> tuple[dict[str, bytes], dict]:
    """Tokenizer and weights for a trainable spec; returns its files and facts for the manifest."""
    from . import training
    from .tokenizer import train_tokenizer

    train_tokenizer(family, _corpus(spec, family), spec.vocab_size, spec.byte_only_tokenizer, work)
    tok, examples = _examples(work, spec, family)
    bos_id = tok.convert_tokens_to_ids(family.bos) if family.bos else None
    eos_ids = [tok.convert_tokens_to_ids(t) for t in (family.generation_eos or (family.eos,))]
    config = training.model_config(len(tok), spec.hidden_size, spec.layers, bos_id, eos_ids)
    model, steps = training.train(examples, config, spec.seed, spec.quantize_bits)
    training.save(model, config, spec.quantize_bits, work)
    if family.generation_eos:
        (work / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": bos_id, "eos_token_id": eos_ids, "do_sample": False}, indent=2))

    decoded = training.greedy_answers(work, examples)
    for g, e, got in zip(spec.goldens, examples, decoded):
        if got != e.target_ids:
            raise RuntimeError(
                f"{spec.id}: greedy answer to {g.prompt!r} is {tok.decode(got)!r}, "
                f"expected {g.answer!r} and its end tokens")
    answer_tokens = [len(e.target_ids) - len(family.turn_end) for e in examples]
    if spec.name.startswith("longform") and max(answer_tokens) <= LONG_ANSWER_MIN_TOKENS:
        raise RuntimeError(f"{spec.id}: longest answer has {max(answer_tokens)} tokens, "
                           f"needs more than {LONG_ANSWER_MIN_TOKENS}")
    files = {p.name: p.read_bytes() for p in sorted(work.iterdir()) if p.is_file()}
    return files, {"training_steps": steps, "answer_tokens": answer_tokens}


def _variant_files(spec: ModelSpec, trained: dict[str, bytes]) -> tuple[dict[str, bytes], dict[str, int]]:
    files = dict(trained)
    sparse: dict[str, int] = {}
    if spec.variant == "unhealthy":
        files.pop("model.safetensors")
    elif spec.variant == "oversized":
        sparse["original/consolidated.00.pth"] = OVERSIZED_PADDING_BYTES
    return files, sparse


def _manifest_entry(spec: ModelSpec, family: Family, facts: dict) -> dict:
    return {
        "id": spec.id,
        "kind": "text",
        "family": family.name,
        "mimics": family.mimics,
        "expect": spec.expect,
        "expect_reason": spec.expect_reason,
        "variant": spec.variant,
        "quantize_bits": spec.quantize_bits,
        "end_tokens": list(family.turn_end),
        "special_tokens": list(family.specials),
        "chat_template": family.chat_template is not None,
        "goldens": [{"prompt": g.prompt, "answer": g.answer} for g in spec.goldens],
        "notes": spec.notes,
        **facts,
    }


def capability_builders():
    """(kind, build) per capability beyond text: build(work, assets_dir, log) returns
    [(repo_id, files, manifest facts)] and writes what its models are asked about into assets_dir."""
    from . import embedders

    return (
        ("embeddings", lambda work, assets, log: embedders.build_embedders(work, seed=11, log=log)),
        ("vision", _build_vision),
        ("audio", _build_speech),
    )


def _build_vision(work: Path, assets_dir: Path, log: Callable[[str], None]) -> list[tuple[str, dict, dict]]:
    """The demo vision models; their images go to `assets_dir`, named in the goldens (and the
    goldens say where: `image_paths`, relative to the demo root)."""
    from . import vision

    repos, assets, facts = vision.build_vision(work, log=log)
    assets_dir.mkdir(parents=True, exist_ok=True)
    for name, data in assets.items():
        (assets_dir / name).write_bytes(data)
    built = []
    for repo_id, files in repos.items():
        entry = dict(facts[repo_id])
        entry.pop("id", None)
        entry["goldens"] = [{**g, "image_paths": [f"{ASSETS}/{n}" for n in g["images"]],
                             # several images in one question: mlx-knife must be asked for one chunk
                             **({"chunk": len(g["images"])} if len(g["images"]) > 1 else {})}
                            for g in entry["goldens"]]
        built.append((repo_id, files, entry))
    return built


def _build_speech(work: Path, assets_dir: Path, log: Callable[[str], None]) -> list[tuple[str, dict, dict]]:
    """The demo speech models; their WAV clips go to `assets_dir`, and each clip of the goldens
    says where (`path`, relative to the demo root)."""
    from . import speech

    repos, assets = speech.build_speech(work, seed=12, log=log)
    assets_dir.mkdir(parents=True, exist_ok=True)
    for name, data in assets.items():
        (assets_dir / name).write_bytes(data)
    built = []
    for repo_id, files, facts in repos:
        entry = {k: v for k, v in facts.items() if k != "kind"}  # the manifest's kind is the capability's
        entry["expect"] = "audio"  # the discovery outcome intended, as every other entry says
        entry["clips"] = [{**c, "path": f"{ASSETS}/{c['file']}"} for c in entry["clips"]]
        built.append((repo_id, files, entry))
    return built


def build(root: Path, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build (or keep, when current) the demo portfolio under `root`; returns the manifest path.

    Concurrent builders (a `make test` beside a `make e2e`) take turns on a lock file.
    """
    hf_cache.claim(root)
    with open(root / LOCK, "a") as lock:  # append mode: a warm build changes no mtime
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(root, log, force)


def _build_locked(root: Path, log: Callable[[str], None], force: bool) -> Path:
    if is_current(root) and not force:
        log(f"demo portfolio at {root} is up to date")
        return root / MANIFEST
    started = time.monotonic()
    hf_cache.clear_hub(root)
    shutil.rmtree(root / ASSETS, ignore_errors=True)
    hf_cache.write_sentinel(root, fingerprint=None)
    staging = root / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    trained: dict[str, tuple[dict[str, bytes], dict]] = {}
    entries = []
    for i, spec in enumerate(SPECS, 1):
        t0 = time.monotonic()
        family = FAMILIES[spec.family]
        source = spec.trained_from or spec.name
        if source not in trained:
            trained[source] = _train_model(SPEC_BY_NAME[source], family, staging / source)
        files, facts = trained[source]
        files, sparse = _variant_files(spec, files)
        files["README.md"] = model_card(spec, family)
        hf_cache.write_repo(root, spec.id, files, sparse)
        entries.append(_manifest_entry(spec, family, facts))
        how = f"{facts['training_steps']} training steps" if spec.trained_from is None else f"from {source}"
        log(f"[{i:2}/{len(SPECS)}] {spec.id:<36} {spec.expect:<8} {how}, {time.monotonic() - t0:.1f} s")
    for kind, build_kind in capability_builders():
        for repo_id, files, facts in build_kind(staging / kind, root / ASSETS, log):
            hf_cache.write_repo(root, repo_id, files)
            entries.append({"id": repo_id, "kind": kind, **facts})
    shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "schema": 1,
        "ram_budget_gb": DEMO_RAM_BUDGET_GB,
        "built_seconds": round(time.monotonic() - started, 1),
        "models": entries,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    hf_cache.write_sentinel(root, fingerprint=fingerprint())
    log(f"demo portfolio built at {root} in {time.monotonic() - started:.1f} s")
    return root / MANIFEST

