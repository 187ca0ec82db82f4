"""Train a tiny Llama-architecture MLX model until it answers its golden prompts exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map
from mlx_lm.models import llama

# Greedy decoding must survive the SUT's defaults (repetition penalty 1.1 over the last
# 20 tokens) and 4-bit quantization, so training goes on until every golden token wins
# by a clear logit margin, also after that penalty.
REPETITION_PENALTY = 1.1
REPETITION_CONTEXT = 20
MIN_MARGIN = 3.0
STEP_CHUNK = 25
MAX_STEPS = 1000
GROUP_SIZE = 32  # quantization group size


@dataclass(frozen=True)
class Example:
    prompt_ids: list[int]
    target_ids: list[int]  # the answer followed by the end tokens


def model_config(vocab_size: int, hidden: int, layers: int, bos_id: int | None, eos_ids: list[int]) -> dict:
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 512,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "bos_token_id": bos_id,
        "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids,
        "torch_dtype": "float32",
    }


def _batch(examples: list[Example], vocab: int) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Inputs, targets, loss mask, and the mask of recently seen tokens (repetition penalty)."""
    seqs = [e.prompt_ids + e.target_ids for e in examples]
    width = max(map(len, seqs)) - 1
    inputs, targets, mask = [], [], []
    for e, s in zip(examples, seqs):
        pad = width - (len(s) - 1)
        inputs.append(s[:-1] + [0] * pad)
        targets.append(s[1:] + [0] * pad)
        start = len(e.prompt_ids) - 1
        mask.append([0] * start + [1] * len(e.target_ids) + [0] * pad)
    tokens, live = np.array(inputs), np.array(mask) > 0
    recent = np.zeros((*tokens.shape, vocab), dtype=bool)
    for r, c in zip(*np.nonzero(live)):
        recent[r, c, tokens[r, max(0, c + 1 - REPETITION_CONTEXT): c + 1]] = True
    return mx.array(inputs), mx.array(targets), mx.array(mask, dtype=mx.float32), mx.array(recent)


def _penalize(logits: mx.array, recent: mx.array) -> mx.array:
    """mlx-lm's repetition penalty, as the SUT applies it by default."""
    penal = mx.where(logits < 0, logits * REPETITION_PENALTY, logits / REPETITION_PENALTY)
    return mx.where(recent, penal, logits)


def _margins(logits: mx.array, targets: mx.array) -> mx.array:
    """Gap between the golden token's logit and its best rival, per position."""
    gold = mx.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    onehot = mx.arange(logits.shape[-1]) == targets[..., None]
    rival = mx.max(mx.where(onehot, -1e9, logits), axis=-1)
    return gold - rival


def _fake_quant(w: mx.array, bits: int) -> mx.array:
    """What nn.quantize would make of a matrix, with a straight-through gradient."""
    if w.ndim != 2 or w.shape[-1] % GROUP_SIZE:
        return w
    q = mx.dequantize(*mx.quantize(w, group_size=GROUP_SIZE, bits=bits), group_size=GROUP_SIZE, bits=bits)
    return w + mx.stop_gradient(q - w)


def worst_margin(model: nn.Module, examples: list[Example]) -> float:
    """Smallest logit gap between a golden token and its best rival (teacher forced), with
    and without the repetition penalty. Negative: greedy decoding would leave the answer."""
    inputs, targets, mask, recent = _batch(examples, model.args.vocab_size)
    logits = model(inputs).astype(mx.float32)
    both = mx.minimum(_margins(logits, targets), _margins(_penalize(logits, recent), targets))
    return mx.min(mx.where(mask > 0, both, 1e9)).item()


def optimise(model: nn.Module, loss_fn, opt, steps: int) -> None:
    """`steps` optimiser steps on `loss_fn(model)` (the demo models' one training loop)."""
    step = nn.value_and_grad(model, loss_fn)
    for _ in range(steps):
        _, grads = step(model)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)


def train(examples: list[Example], config: dict, seed: int, quantize_bits: int | None) -> tuple[nn.Module, int]:
    """Train from `seed` until the worst margin clears MIN_MARGIN; returns (model, steps)."""
    mx.random.seed(seed)
    args = llama.ModelArgs.from_dict(config)
    model = llama.Model(args)
    opt = optim.Adam(learning_rate=3e-3)
    inputs, targets, mask, recent = _batch(examples, args.vocab_size)

    def loss_fn(m):
        if quantize_bits is not None:  # quantization-aware: train through fake-quantized weights
            exact = m.parameters()
            m.update(tree_map(lambda w: _fake_quant(w, quantize_bits), exact))
            logits = m(inputs)
            m.update(exact)
        else:
            logits = m(inputs)
        ce = nn.losses.cross_entropy(logits, targets)
        # Hinge on the margin, also under the repetition penalty: greedy must be robust.
        short = nn.relu(2 * MIN_MARGIN - _margins(_penalize(logits, recent), targets))
        return ((ce + short) * mask).sum() / mask.sum()

    steps = 0
    while steps < MAX_STEPS:
        optimise(model, loss_fn, opt, STEP_CHUNK)
        steps += STEP_CHUNK
        if quantize_bits is None:
            if worst_margin(model, examples) >= MIN_MARGIN:
                return model, steps
            continue
        candidate = llama.Model(args)
        candidate.update(model.parameters())
        nn.quantize(candidate, group_size=GROUP_SIZE, bits=quantize_bits)
        if worst_margin(candidate, examples) >= MIN_MARGIN / 2:
            return candidate, steps
    raise RuntimeError(f"training did not converge within {MAX_STEPS} steps")


def save(model: nn.Module, config: dict, quantize_bits: int | None, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    if quantize_bits is not None:
        config = {**config, "quantization": {"group_size": GROUP_SIZE, "bits": quantize_bits}}
    (out / "config.json").write_text(json.dumps(config, indent=2))


def greedy_answers(model_dir: Path, examples: list[Example], max_tokens: int = 200) -> list[list[int]]:
    """Greedy decode each prompt with mlx-lm from the saved files: the builder's own check."""
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, _ = load(str(model_dir))
    results = []
    for e in examples:
        out: list[int] = []
        for tok, _ in generate_step(mx.array(e.prompt_ids), model, max_tokens=len(e.target_ids),
                                    sampler=lambda x: mx.argmax(x, axis=-1)):
            out.append(int(tok))
        results.append(out)
    return results
