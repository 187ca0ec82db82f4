"""The suite's own BERT sentence embedding (support.embedding_reference): pooling, padding, layout.

Its agreement with mlx-knife's vendored encoder on a trained model is checked where the demo
embedders are built and through the CLI (test_demo_embedders.py); here it is checked against
first principles and against an independent implementation of each piece (mlx.nn).
"""

from __future__ import annotations

import json
import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from support import embedding_reference as ref
from support.demo_portfolio.embedders import _init_bert, bert_config

CONFIG = bert_config(vocab_size=40)


@pytest.fixture(scope="module")
def weights() -> dict:
    mx.random.seed(7)
    w = _init_bert(CONFIG)
    # Initialisation leaves biases at 0 and LayerNorms at 1/0: randomise them so every term counts.
    return {k: (mx.random.normal(v.shape) * 0.3 + (1.0 if k.endswith("LayerNorm.weight") else 0.0))
            if k.endswith(("bias", "LayerNorm.weight")) else v * 10 for k, v in w.items()}


def test_gelu_is_the_exact_erf_form():
    x = mx.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    got = np.array(ref._activation("gelu")(x))
    expected = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in [-2.0, -0.5, 0.0, 1.0, 3.0]]
    assert np.allclose(got, expected, atol=1e-6), f"expected exact gelu {expected}, got {got}"
    assert np.allclose(got, np.array(nn.gelu(x)), atol=1e-6)
    assert not np.allclose(got, np.array(nn.gelu_approx(x)), atol=1e-6), "erf and tanh gelu must differ here"


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="hidden_act 'swish'"):
        ref._activation("swish")


def test_layer_norm_matches_mlx_nn():
    x = mx.random.normal((2, 3, 8))
    ln = nn.LayerNorm(8, eps=1e-12)
    ln.weight, ln.bias = mx.random.normal((8,)), mx.random.normal((8,))
    got = ref._layer_norm(x, {"n.weight": ln.weight, "n.bias": ln.bias}, "n", 1e-12)
    assert np.allclose(np.array(got), np.array(ln(x)), atol=1e-5)


def test_padding_changes_no_token_and_no_pooled_vector(weights):
    rows = [[2, 7, 9, 11, 3], [2, 5, 3]]
    ids = mx.array([rows[0], rows[1] + [0, 0]])
    mask = mx.array([[1] * 5, [1, 1, 1, 0, 0]])
    batch = ref.bert_hidden(weights, CONFIG, ids, mask)
    for i, row in enumerate(rows):
        alone = ref.bert_hidden(weights, CONFIG, mx.array([row]))
        assert np.allclose(np.array(batch[i, : len(row)]), np.array(alone[0]), atol=1e-5), f"row {i}"
        for mode in ("cls", "mean"):
            a = np.array(ref.pool(batch, mode, mask)[i])
            b = np.array(ref.pool(alone, mode)[0])
            assert np.allclose(a, b, atol=1e-5), f"{mode} pooling of row {i} depends on padding"


def test_pooling_picks_cls_or_the_mean_and_normalises():
    hidden = mx.array([[[3.0, 4.0], [1.0, 0.0], [2.0, 2.0]]])
    assert np.allclose(np.array(ref.pool(hidden, "cls")), [[0.6, 0.8]])
    mean = np.array([2.0, 2.0]) / np.linalg.norm([2.0, 2.0])
    assert np.allclose(np.array(ref.pool(hidden, "mean")), [mean])
    masked = ref.pool(hidden, "mean", mx.array([[1, 1, 0]]))  # mean of the first two rows: (2, 2)
    assert np.allclose(np.array(masked), [mean])
    with pytest.raises(ValueError, match="'max' is not cls or mean"):
        ref.pool(hidden, "max")


def test_position_and_token_type_embeddings_count(weights):
    """Reversing a sentence changes its vectors (positions); token type 0 is added to every token."""
    ids = mx.array([[2, 7, 9, 3]])
    forward = np.array(ref.bert_hidden(weights, CONFIG, ids))
    backward = np.array(ref.bert_hidden(weights, CONFIG, ids[:, ::-1]))
    assert not np.allclose(forward[0, 1], backward[0, 2], atol=1e-3), "positions are ignored"
    no_type = {**weights, "embeddings.token_type_embeddings.weight":
               mx.zeros_like(weights["embeddings.token_type_embeddings.weight"])}
    assert not np.allclose(forward, np.array(ref.bert_hidden(no_type, CONFIG, ids)), atol=1e-3)


def test_agrees_with_an_mlx_nn_transformer_encoder(weights):
    """The same weights in mlx.nn's own post-norm TransformerEncoderLayer pieces give the same state."""
    eps = CONFIG["layer_norm_eps"]
    ids = mx.array([[2, 7, 9, 11, 3]])
    w = weights

    def linear(prefix, n_in, n_out):
        lin = nn.Linear(n_in, n_out)
        lin.weight, lin.bias = w[f"{prefix}.weight"], w[f"{prefix}.bias"]
        return lin

    def norm(prefix):
        ln = nn.LayerNorm(CONFIG["hidden_size"], eps=eps)
        ln.weight, ln.bias = w[f"{prefix}.weight"], w[f"{prefix}.bias"]
        return ln

    h, inter = CONFIG["hidden_size"], CONFIG["intermediate_size"]
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:5]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = norm("embeddings.LayerNorm")(x)
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        att = nn.MultiHeadAttention(h, CONFIG["num_attention_heads"], bias=True)
        att.query_proj = linear(f"{p}.attention.self.query", h, h)
        att.key_proj = linear(f"{p}.attention.self.key", h, h)
        att.value_proj = linear(f"{p}.attention.self.value", h, h)
        att.out_proj = linear(f"{p}.attention.output.dense", h, h)
        x = norm(f"{p}.attention.output.LayerNorm")(att(x, x, x) + x)
        ff = linear(f"{p}.output.dense", inter, h)(nn.gelu(linear(f"{p}.intermediate.dense", h, inter)(x)))
        x = norm(f"{p}.output.LayerNorm")(ff + x)
    got = ref.bert_hidden(weights, CONFIG, ids)
    assert np.allclose(np.array(got), np.array(x), atol=1e-4)


def _sidecar(tmp_path, **modes):
    path = tmp_path / ref.POOLING_SIDECAR
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False, **modes}))
    return tmp_path


def test_declared_pooling_reads_the_sentence_transformers_sidecar(tmp_path):
    assert ref.declared_pooling(_sidecar(tmp_path / "a", pooling_mode_cls_token=True)) == "cls"
    assert ref.declared_pooling(_sidecar(tmp_path / "b", pooling_mode_mean_tokens=True)) == "mean"
    with pytest.raises(ValueError, match="expected exactly one of cls, mean"):
        ref.declared_pooling(_sidecar(tmp_path / "c", pooling_mode_cls_token=True, pooling_mode_mean_tokens=True))
    with pytest.raises(ValueError, match="declares no pooling"):
        ref.declared_pooling(_sidecar(tmp_path / "d"))


def test_load_refuses_other_model_types(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    with pytest.raises(ValueError, match="model_type is 'xlm-roberta', the reference computes bert only"):
        ref.load(tmp_path)


def test_cosine():
    assert ref.cosine([1, 0], [0, 2]) == 0
    assert ref.cosine([1, 1], [2, 2]) == pytest.approx(1)
    assert ref.cosine([1, 0], [-3, 0]) == pytest.approx(-1)
