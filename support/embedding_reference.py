"""The suite's own sentence embedding for a BERT encoder: an independent forward pass, to compare with the SUT.

Written from the published architecture (BERT, Devlin et al. 2018, as Hugging Face's
``BertModel`` computes it), not from mlx-knife's vendored copy:

* the token ids are what the model's ``tokenizer.json`` gives (``tokenizers.Tokenizer``,
  which adds ``[CLS]`` and ``[SEP]`` through the file's post-processor);
* embeddings = word + absolute position (0..L-1) + token type 0, then LayerNorm;
* each layer: multi-head self-attention (scaled dot product; a padding mask only in batches),
  residual and LayerNorm, then a feed-forward block with the config's activation (``gelu`` is
  the exact erf form), residual and LayerNorm;
* pooling is what the model declares in its sentence-transformers sidecar
  (``1_Pooling/config.json``: ``pooling_mode_cls_token`` or ``pooling_mode_mean_tokens``), then
  L2 normalisation.

Weights are read with ``mlx.core.load`` from the model's ``model.safetensors`` (Hugging Face
key names). ``bert_hidden`` is a pure function of a weight dict, so the demo portfolio builder
trains through it with ``mlx.core.value_and_grad``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mlx.core as mx
import numpy as np

POOLING_SIDECAR = "1_Pooling/config.json"


def _layer_norm(x: mx.array, w: dict, prefix: str, eps: float) -> mx.array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) * mx.rsqrt(var + eps) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]


def _linear(x: mx.array, w: dict, prefix: str) -> mx.array:
    return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]


def _activation(name: str):
    name = (name or "gelu").lower()
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + mx.erf(x / math.sqrt(2.0)))
    if name == "relu":
        return lambda x: mx.maximum(x, 0.0)
    raise ValueError(f"embedding reference: hidden_act {name!r} is not implemented (gelu, relu)")


def bert_hidden(weights: dict, config: dict, ids: mx.array, mask: mx.array | None = None) -> mx.array:
    """Last hidden state (B, L, H) of a BERT encoder for token ids (B, L).

    `mask` (B, L; 1 = token, 0 = padding) keeps padding out of attention; without it every
    position is a token, as for one unpadded sentence.
    """
    eps = float(config.get("layer_norm_eps", 1e-12))
    heads = int(config["num_attention_heads"])
    act = _activation(config.get("hidden_act", "gelu"))
    b, length = ids.shape
    x = (weights["embeddings.word_embeddings.weight"][ids]
         + weights["embeddings.position_embeddings.weight"][mx.arange(length)][None]
         + weights["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, weights, "embeddings.LayerNorm", eps)
    hidden = x.shape[-1]
    d = hidden // heads
    bias = 0.0 if mask is None else ((1.0 - mask.astype(x.dtype)) * -1e9)[:, None, None, :]
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def split(t):
            return t.reshape(b, length, heads, d).transpose(0, 2, 1, 3)

        q = split(_linear(x, weights, f"{p}.attention.self.query"))
        k = split(_linear(x, weights, f"{p}.attention.self.key"))
        v = split(_linear(x, weights, f"{p}.attention.self.value"))
        scores = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(d) + bias
        ctx = (mx.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, length, hidden)
        x = _layer_norm(_linear(ctx, weights, f"{p}.attention.output.dense") + x,
                        weights, f"{p}.attention.output.LayerNorm", eps)
        ff = _linear(act(_linear(x, weights, f"{p}.intermediate.dense")), weights, f"{p}.output.dense")
        x = _layer_norm(ff + x, weights, f"{p}.output.LayerNorm", eps)
    return x


def pool(hidden: mx.array, mode: str, mask: mx.array | None = None) -> mx.array:
    """Sentence vectors (B, H), L2-normalised: the CLS token or the mean over tokens."""
    if mode == "cls":
        v = hidden[:, 0, :]
    elif mode == "mean":
        m = mx.ones(hidden.shape[:2]) if mask is None else mask.astype(hidden.dtype)
        v = (hidden * m[..., None]).sum(axis=1) / m.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"embedding reference: pooling {mode!r} is not cls or mean")
    return v / mx.linalg.norm(v, axis=-1, keepdims=True)


def declared_pooling(model_dir: Path) -> str:
    """The pooling the model declares in its sentence-transformers sidecar: "cls" or "mean"."""
    path = Path(model_dir) / POOLING_SIDECAR
    sidecar = json.loads(path.read_text())
    modes = [m for m, key in (("cls", "pooling_mode_cls_token"), ("mean", "pooling_mode_mean_tokens"))
             if sidecar.get(key)]
    if len(modes) != 1:
        raise ValueError(f"{path} declares {modes or 'no'} pooling; expected exactly one of cls, mean")
    return modes[0]


@dataclass
class Encoder:
    """A loaded BERT embedder: `embed(texts)` gives unit vectors as numpy float32 rows."""

    config: dict
    weights: dict
    tokenizer: object  # tokenizers.Tokenizer
    pooling: str

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def embed(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        rows = []
        for text in texts:  # one sentence at a time, unpadded, as an embedding server does
            ids = mx.array([self.token_ids(prefix + text)])
            vec = pool(bert_hidden(self.weights, self.config, ids), self.pooling)
            rows.append(np.array(vec[0].astype(mx.float32)))
        return np.stack(rows)


def load(model_dir: Path) -> Encoder:
    """Read a BERT embedder from a model folder (a snapshot of the Hugging Face cache)."""
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise ValueError(f"{model_dir}/config.json: model_type is {config.get('model_type')!r}, "
                         f"the reference computes bert only")
    weights = mx.load(str(model_dir / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return Encoder(config, weights, tokenizer, declared_pooling(model_dir))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
