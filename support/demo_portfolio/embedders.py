"""Embedding models for the demo portfolio: tiny encoders and a decoder embedder with golden facts.

What is built (`build_embedders`), from one seed:

* one tiny BERT encoder (WordPiece tokenizer trained locally, Hugging Face key names, float32
  safetensors) trained with MLX through the suite's own forward pass
  (`support.embedding_reference`) on a contrastive objective, for mean and CLS pooling at
  once; it is shipped three times, with three sentence-transformers sidecars:
  `bert-style-embed` (mean pooling, no prompts), `bge-style-embed` (CLS pooling, BGE's query
  instruction) and `arctic-style-embed` (CLS pooling, the same query instruction, a name
  without "bge": mlx-knife 2.0.8 infers pooling from the name and ignores the sidecar);
* `qwen3-style-embed`: a tiny Qwen3 decoder (mlx-lm loads it) trained on last-token pooling,
  with Qwen3-Embedding's query template `Instruct: {task}\\nQuery:{text}`;
* `xlm-roberta-style-embed`: an encoder of a type mlx-knife declares but does not vendor, so
  its refusal is exercised (it is never loaded).

Golden facts per model (the manifest's `embedding` entry): dimension, pooling, unit norm, the
query prefix, golden sentence triples whose paraphrase must be closer than the unrelated
sentence by `min_margin`, and the suite's own reference vectors of the golden sentences.
Each fact is checked here through the library the SUT loads with (mlx-knife's vendored BERT
loader and AutoTokenizer; mlx-lm for the decoder) before the model is shipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from .. import embedding_reference as ref
from .families import Family
from .models import ORG

# Paraphrase groups: what the models learn to put close together (and apart from the others).
GROUPS: tuple[tuple[str, ...], ...] = (
    ("The cat sits on the mat.", "A cat is sitting on the mat.", "The kitten rests on the rug."),
    ("How do I reset my password?", "I forgot my password, how can I change it?",
     "Help me recover my account password."),
    ("It is raining heavily outside.", "Heavy rain is falling outside.", "There is a big storm with lots of rain."),
    ("Stock markets fell sharply today.", "Share prices dropped a lot today.", "The stock market crashed this afternoon."),
    ("She plays the violin beautifully.", "Her violin playing is lovely.", "She is a wonderful violinist."),
)
# (anchor, paraphrase, unrelated): the paraphrase must win by MIN_MARGIN through the SUT.
TRIPLES = tuple((GROUPS[i][0], GROUPS[i][1], GROUPS[(i + 3) % len(GROUPS)][0]) for i in range(3))
MIN_MARGIN = 0.2
TRAIN_MARGIN = 0.5  # trained to this, so float differences and prefixes leave MIN_MARGIN
TEMPERATURE = 0.1  # of the contrastive loss
STEP_CHUNK = 10
MAX_STEPS = 600
REFERENCE_TOLERANCE = 1e-4  # max |component| difference between two float32 computations
DISTINCT_POOLING = 0.99  # CLS and mean vectors of a sentence must differ (cosine below this)
POOLING_APART = 0.5  # trained: cosine of a sentence's CLS and mean vectors at most this
LEARNING_RATE = 3e-3

BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
QWEN3_DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
QWEN3_FAMILY = Family(
    name="qwen3-embedding", specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    bos=None, eos="<|endoftext|>", pad="<|endoftext|>", chat_template=None, turn_end=(),
    mimics="Qwen3-Embedding (a causal decoder pooled on its last token)")

Log = Callable[[str], None]
Built = tuple[str, dict[str, bytes], dict]


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    pooling: str  # declared in 1_Pooling/config.json
    query_prompt: str  # declared in config_sentence_transformers.json ("" = none)
    notes: str


ENCODERS = (
    EncoderSpec("bert-style-embed", "mean", "",
                "BERT encoder, mean pooling (the sentence-transformers default), no prompts"),
    EncoderSpec("bge-style-embed", "cls", BGE_QUERY_PREFIX,
                "BGE style: CLS pooling, queries carry BGE's retrieval instruction"),
    EncoderSpec("arctic-style-embed", "cls", BGE_QUERY_PREFIX,
                "Snowflake arctic-embed style: a bert model whose sidecar declares CLS pooling and "
                "the BGE query instruction; its name does not say bge"),
)
DECODER_NAME = "qwen3-style-embed"
UNVENDORED_NAME = "xlm-roberta-style-embed"


def repo_id(name: str) -> str:
    return f"{ORG}/{name}"


# --- files ----------------------------------------------------------------------------

def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def model_card(name: str, mimics: str, notes: str) -> bytes:
    return (
        "---\nlibrary_name: mlx\ntags: [mlx, sentence-transformers, feature-extraction]\n"
        "pipeline_tag: feature-extraction\nlicense: mit\n---\n\n"
        f"# {repo_id(name)}\n\nA tiny demo embedding model built locally by mlx-e2e. It mimics {mimics}.\n"
        f"{notes}\n"
    ).encode()


def _sentence_transformers_files(pooling: str, dim: int, query_prompt: str) -> dict[str, bytes]:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pool = {"word_embedding_dimension": dim, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False}
    prompts = {"query": query_prompt} if query_prompt else {}
    return {
        "modules.json": _json(modules),
        ref.POOLING_SIDECAR: _json(pool),
        "config_sentence_transformers.json": _json({"prompts": prompts, "default_prompt_name": None}),
    }


def wordpiece_tokenizer(corpus: list[str], out: Path) -> dict[str, bytes]:
    """A lowercasing BERT WordPiece tokenizer for `corpus`: its files, also written to `out`.

    The vocabulary is every word the tokenizers library's BERT normalizer and pre-tokenizer
    find in the corpus, plus every character alone and as a ``##`` continuation (so any other
    word in those characters splits into pieces). Built, not trained: the library's
    WordPieceTrainer breaks frequency ties in hash order, so its vocabulary changes from one
    process to the next, and the demo portfolio is deterministic.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = sorted({w for text in corpus for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))})
    chars = sorted({c for w in words for c in w})
    pieces = list(BERT_SPECIALS) + chars + [f"##{c}" for c in chars] + [w for w in words if len(w) > 1]
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    config = {
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
        "mask_token": "[MASK]", "clean_up_tokenization_spaces": True,
    }
    files = {
        "tokenizer.json": (out / "tokenizer.json").read_bytes(),
        "vocab.txt": "".join(f"{t}\n" for t, _ in vocab).encode(),
        "tokenizer_config.json": _json(config),
        "special_tokens_map.json": _json({k: config[k] for k in
                                          ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token")}),
    }
    for rel, data in files.items():
        (out / rel).write_bytes(data)
    return files


def bert_config(vocab_size: int, model_type: str = "bert") -> dict:
    config = {
        "model_type": model_type,
        "architectures": ["BertModel" if model_type == "bert" else "XLMRobertaModel"],
        "vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "hidden_act": "gelu", "max_position_embeddings": 64,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "torch_dtype": "float32",
    }
    if model_type == "xlm-roberta":
        config.update(bos_token_id=2, eos_token_id=3)  # shapes stay those of the shipped weights
    return config


# --- training -------------------------------------------------------------------------

def _init_bert(config: dict) -> dict[str, mx.array]:
    """Hugging Face BERT initialisation (normal 0.02, LayerNorm 1/0, zero biases), HF key names."""
    h, i = config["hidden_size"], config["intermediate_size"]

    def normal(*shape):
        return mx.random.normal(shape) * 0.02

    def dense(prefix, n_out, n_in):
        return {f"{prefix}.weight": normal(n_out, n_in), f"{prefix}.bias": mx.zeros((n_out,))}

    def norm(prefix):
        return {f"{prefix}.weight": mx.ones((h,)), f"{prefix}.bias": mx.zeros((h,))}

    w = {"embeddings.word_embeddings.weight": normal(config["vocab_size"], h),
         "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], h),
         "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], h),
         **norm("embeddings.LayerNorm")}
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}"
        for part in ("query", "key", "value"):
            w |= dense(f"{p}.attention.self.{part}", h, h)
        w |= dense(f"{p}.attention.output.dense", h, h) | norm(f"{p}.attention.output.LayerNorm")
        w |= dense(f"{p}.intermediate.dense", i, h) | dense(f"{p}.output.dense", h, i)
        w |= norm(f"{p}.output.LayerNorm")
    w |= dense("pooler.dense", h, h)  # the HF pooler head: shipped, never used for embeddings
    return w


def _padded(rows: list[list[int]]) -> tuple[mx.array, mx.array, mx.array]:
    """Right-padded ids, their mask, and each row's last token position."""
    width = max(map(len, rows))
    ids = mx.array([r + [0] * (width - len(r)) for r in rows])
    mask = mx.array([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask, mx.array([len(r) - 1 for r in rows])


def _contrastive(vectors: mx.array, labels: np.ndarray) -> mx.array:
    """Supervised contrastive loss (Khosla et al. 2020) on unit vectors: each sentence's own group
    against all the others, at temperature TEMPERATURE. Unlike a hinge on similarities it has no
    minimum where every vector collapses onto one."""
    n = len(labels)
    eye = np.eye(n, dtype=bool)
    positives = mx.array((labels[:, None] == labels[None, :]) & ~eye, dtype=mx.float32)
    logits = mx.where(mx.array(eye), -1e9, (vectors @ vectors.T) / TEMPERATURE)
    log_prob = logits - mx.logsumexp(logits, axis=1, keepdims=True)
    return -((log_prob * positives).sum(axis=1) / positives.sum(axis=1)).mean()


def worst_margin(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Smallest same-group similarity minus largest cross-group similarity."""
    sims = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    cross = labels[:, None] != labels[None, :]
    return float(sims[same].min() - sims[cross].max())


def _train(loss_fn, params, check: Callable[[], float], what: str) -> int:
    """Adam on `params` (a dict, or an nn.Module) in chunks until `check()` reaches TRAIN_MARGIN."""
    opt = optim.Adam(learning_rate=LEARNING_RATE)
    is_module = isinstance(params, nn.Module)
    grad_fn = nn.value_and_grad(params, loss_fn) if is_module else mx.value_and_grad(loss_fn)
    steps = 0
    while steps < MAX_STEPS:
        for _ in range(STEP_CHUNK):
            if is_module:
                _, grads = grad_fn()
                opt.update(params, grads)
                mx.eval(params.parameters(), opt.state)
            else:
                _, grads = grad_fn(params)
                params.update(opt.apply_gradients(grads, params))
                mx.eval(params, opt.state)
        steps += STEP_CHUNK
        if check() >= TRAIN_MARGIN:
            return steps
    raise RuntimeError(f"{what}: contrastive training did not reach margin {TRAIN_MARGIN} "
                       f"within {MAX_STEPS} steps (got {check():.3f})")


def train_encoder(tokenizer_dir: Path, config: dict, seed: int) -> tuple[dict[str, mx.array], int]:
    """BERT weights that separate GROUPS under mean and under CLS pooling, and put a BGE-prefixed
    query (CLS) in its group too. Trained through the suite's own forward pass."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    texts = [t for g in GROUPS for t in g]
    labels = np.array([i for i, g in enumerate(GROUPS) for _ in g])
    queries = [BGE_QUERY_PREFIX + g[0] for g in GROUPS]
    q_labels = np.arange(len(GROUPS))
    ids, mask, _ = _padded([tok.encode(t).ids for t in texts])
    q_ids, q_mask, _ = _padded([tok.encode(t).ids for t in queries])
    cls_labels = np.concatenate([labels, q_labels])

    def vectors(w):
        h = ref.bert_hidden(w, config, ids, mask)
        qh = ref.bert_hidden(w, config, q_ids, q_mask)
        cls = mx.concatenate([ref.pool(h, "cls"), ref.pool(qh, "cls")])
        return ref.pool(h, "mean", mask), cls

    def loss_fn(w):
        mean, cls = vectors(w)
        # CLS and mean pooling must give different vectors, or a pooling check could not fail.
        apart = nn.relu((mean * cls[: len(texts)]).sum(axis=-1) - POOLING_APART).mean()
        return _contrastive(mean, labels) + _contrastive(cls, cls_labels) + apart

    def check():
        mean, cls = vectors(weights)
        return min(worst_margin(np.array(mean), labels), worst_margin(np.array(cls), cls_labels))

    mx.random.seed(seed)
    weights = _init_bert(config)
    steps = _train(loss_fn, weights, check, "bert encoder")
    return weights, steps


def decoder_config(vocab_size: int, eos_id: int) -> dict:
    return {
        "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": vocab_size,
        "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": True, "eos_token_id": eos_id, "torch_dtype": "float32",
    }


def qwen3_query(text: str, task: str = QWEN3_DEFAULT_TASK) -> str:
    """Qwen3-Embedding's query template (its model card), the decoder's query side."""
    return f"Instruct: {task}\nQuery:{text}"


def decoder_ids(tokenizer, text: str) -> list[int]:
    """Token ids of `text` ending in the eos token, the one Qwen3-Embedding pools on."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    return ids if ids and ids[-1] == tokenizer.eos_token_id else ids + [tokenizer.eos_token_id]


def decoder_vectors(model, tokenizer, texts: list[str]) -> np.ndarray:
    """Unit last-token vectors of the transformer body (mlx-lm's `model.model`, no LM head)."""
    rows = []
    for t in texts:
        h = model.model(mx.array([decoder_ids(tokenizer, t)]))[0, -1].astype(mx.float32)
        rows.append(np.array(h / mx.linalg.norm(h)))
    return np.stack(rows)


def train_decoder(tokenizer, config: dict, seed: int):
    """A Qwen3 model (mlx-lm) that separates GROUPS on its last token; each group's query too."""
    from mlx_lm.models import qwen3

    texts = [t for g in GROUPS for t in g] + [qwen3_query(g[0]) for g in GROUPS]
    labels = np.array([i for i, g in enumerate(GROUPS) for _ in g] + list(range(len(GROUPS))))
    ids, _, last = _padded([decoder_ids(tokenizer, t) for t in texts])
    mx.random.seed(seed)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))

    def vectors(m):
        h = m.model(ids)[mx.arange(len(texts)), last]  # causal: right padding never reaches back
        return h / mx.linalg.norm(h, axis=-1, keepdims=True)

    def check():
        return worst_margin(np.array(vectors(model)), labels)

    steps = _train(lambda: _contrastive(vectors(model), labels), model, check, "qwen3 decoder")
    return model, steps


# --- verification through the SUT's loading libraries -------------------------------

def _check(ok: bool, where: str, expected: str, got: str) -> None:
    if not ok:
        raise RuntimeError(f"{where}: expected {expected}, got {got}")


def golden_facts(vectors: Callable[[list[str]], np.ndarray], where: str, dim: int) -> list[dict]:
    """Check dimension, unit norm, determinism and the golden order of `vectors`; return the triples."""
    texts = sorted({t for tr in TRIPLES for t in tr})
    first, again = vectors(texts), vectors(texts)
    _check(first.shape == (len(texts), dim), where, f"{dim}-dimensional vectors", f"shape {first.shape}")
    norms = np.linalg.norm(first, axis=1)
    _check(bool(np.all(np.abs(norms - 1) < 1e-5)), where, "unit norm", f"norms {norms}")
    _check(np.array_equal(first, again), where, "identical vectors on a second call", "different ones")
    by_text = dict(zip(texts, first))
    triples = []
    for a, p, u in TRIPLES:
        margin = float(by_text[a] @ by_text[p] - by_text[a] @ by_text[u])
        _check(margin >= MIN_MARGIN, where, f"cos({a!r}, {p!r}) - cos({a!r}, {u!r}) >= {MIN_MARGIN}",
               f"{margin:.3f}")
        triples.append({"anchor": a, "paraphrase": p, "unrelated": u, "min_margin": MIN_MARGIN,
                        "margin_at_build": round(margin, 4)})
    return triples


def _vectors_table(texts: list[str], vectors: np.ndarray) -> list[dict]:
    return [{"text": t, "vector": [round(float(x), 6) for x in v]} for t, v in zip(texts, vectors)]


def verify_encoder(model_dir: Path, spec: EncoderSpec) -> dict:
    """Load with mlx-knife's vendored BERT and AutoTokenizer (as the SUT does), pool as the model
    declares, compare with the suite's reference, check the golden facts; returns the facts."""
    from mlxk2.core.encoders.bert import load_bert
    from transformers import AutoTokenizer

    where = f"{repo_id(spec.name)} (built in {model_dir})"
    reference = ref.load(model_dir)
    sut_tok = AutoTokenizer.from_pretrained(str(model_dir))
    model, config = load_bert(model_dir)
    dim = config["hidden_size"]

    def sut_side(texts, prefix=""):
        rows = []
        for t in texts:
            ids = sut_tok(prefix + t)["input_ids"]
            _check(ids == reference.token_ids(prefix + t), where,
                   f"AutoTokenizer ids of {t!r} = tokenizers ids {reference.token_ids(prefix + t)}", str(ids))
            rows.append(np.array(ref.pool(model(mx.array([ids])), spec.pooling)[0]))
        return np.stack(rows)

    triples = golden_facts(sut_side, where, dim)
    texts = sorted({t for tr in TRIPLES for t in tr})
    expected, got = reference.embed(texts), sut_side(texts)
    diff = float(np.abs(expected - got).max())
    _check(diff <= REFERENCE_TOLERANCE, where, f"vendored BERT = suite reference within {REFERENCE_TOLERANCE}",
           f"max difference {diff:.2e}")
    other = "mean" if spec.pooling == "cls" else "cls"
    alt = np.stack([np.array(ref.pool(model(mx.array([reference.token_ids(t)])), other)[0]) for t in texts])
    closest = float(np.max(np.sum(alt * got, axis=1)))
    _check(closest < DISTINCT_POOLING, where, f"{other} pooling to give other vectors (cosine < {DISTINCT_POOLING})",
           f"cosine {closest:.4f}: a pooling check could not fail")
    queries = [t[0] for t in TRIPLES]
    return {
        "route": "encoder", "model_type": "bert", "dimensions": dim, "pooling": spec.pooling,
        "normalized": True, "query_prefix": spec.query_prompt, "golden_triples": triples,
        "reference": "support.embedding_reference.load(snapshot).embed(texts, prefix)",
        "reference_tolerance": REFERENCE_TOLERANCE,
        "reference_vectors": _vectors_table(texts, expected),
        "query_vectors": _vectors_table(queries, reference.embed(queries, prefix=spec.query_prompt)),
    }


def verify_decoder(model_dir: Path) -> dict:
    """Load with mlx-lm (the SUT's decoder path) and check the golden facts; returns the facts."""
    from mlx_lm import load

    where = f"{repo_id(DECODER_NAME)} (built in {model_dir})"
    model, tokenizer = load(str(model_dir))
    dim = model.args.hidden_size
    triples = golden_facts(lambda texts: decoder_vectors(model, tokenizer, texts), where, dim)
    texts = sorted({t for tr in TRIPLES for t in tr})
    queries = [t[0] for t in TRIPLES]
    q_vectors = decoder_vectors(model, tokenizer, [qwen3_query(q) for q in queries])
    for (a, p, u), qv in zip(TRIPLES, q_vectors):
        d = decoder_vectors(model, tokenizer, [p, u])
        margin = float(qv @ d[0] - qv @ d[1])
        _check(margin >= MIN_MARGIN, where, f"query {a!r} closer to {p!r} than to {u!r} by {MIN_MARGIN}",
               f"{margin:.3f}")
    return {
        "route": "decoder", "model_type": "qwen3", "dimensions": dim, "pooling": "last_token",
        "normalized": True, "query_prefix": qwen3_query("{text}"), "golden_triples": triples,
        "reference": "mlx_lm.load(snapshot); unit vector of model.model(ids + [eos])[0, -1] "
                     "(support.demo_portfolio.embedders.decoder_vectors)",
        "reference_tolerance": REFERENCE_TOLERANCE,
        "reference_vectors": _vectors_table(texts, decoder_vectors(model, tokenizer, texts)),
        "query_vectors": _vectors_table(queries, q_vectors),
    }


# --- the build --------------------------------------------------------------------------

def _save_bert(weights: dict, out: Path) -> bytes:
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    return (out / "model.safetensors").read_bytes()


def _corpus() -> list[str]:
    texts = [t for g in GROUPS for t in g]
    return (texts + [BGE_QUERY_PREFIX] + [qwen3_query(t) for t in texts]) * 4


def build_embedders(work: Path, seed: int, log: Log = print) -> list[Built]:
    """Build, verify and return every embedder as (repo_id, files, facts); `work` is scratch space."""
    import time

    built: list[Built] = []
    t0 = time.monotonic()
    enc_dir = work / "bert-encoder"
    tok_files = wordpiece_tokenizer(_corpus(), enc_dir)
    vocab = len(json.loads(tok_files["tokenizer.json"])["model"]["vocab"])
    config = bert_config(vocab)
    (enc_dir / "config.json").write_bytes(_json(config))
    weights, steps = train_encoder(enc_dir, config, seed)
    weights_bytes = _save_bert(weights, enc_dir)
    log(f"    bert encoder: {steps} contrastive steps, {time.monotonic() - t0:.1f} s")
    for spec in ENCODERS:
        t1 = time.monotonic()
        d = work / spec.name
        d.mkdir(parents=True, exist_ok=True)
        files = {**tok_files, "config.json": _json(config), "model.safetensors": weights_bytes,
                 **_sentence_transformers_files(spec.pooling, config["hidden_size"], spec.query_prompt),
                 "README.md": model_card(spec.name, "a sentence-transformers BERT embedder", spec.notes)}
        for rel, data in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        facts = {**verify_encoder(d, spec), "expect": "embedding", "training_steps": steps, "notes": spec.notes}
        built.append((repo_id(spec.name), files, facts))
        log(f"    {repo_id(spec.name):<36} embedding {spec.pooling} pooling, verified, {time.monotonic() - t1:.1f} s")

    built.append(_build_decoder(work / DECODER_NAME, seed, log))

    xlm_config = bert_config(vocab, model_type="xlm-roberta")
    notes = ("an xlm-roberta encoder: a type mlx-knife declares as an embedder but does not vendor; "
             "its weights are the BERT demo's, never loaded")
    files = {**tok_files, "config.json": _json(xlm_config), "model.safetensors": weights_bytes,
             **_sentence_transformers_files("mean", xlm_config["hidden_size"], ""),
             "README.md": model_card(UNVENDORED_NAME, "an XLM-RoBERTa sentence embedder", notes)}
    built.append((repo_id(UNVENDORED_NAME), files, {
        "route": "encoder_declared", "model_type": "xlm-roberta", "expect": "refused",
        "refusal": "not vendor", "list_reason": "Embedding encoder not vendored: xlm-roberta",
        "notes": notes}))
    log(f"    {repo_id(UNVENDORED_NAME):<36} refused   (never loaded)")
    return built


def _build_decoder(out: Path, seed: int, log: Log) -> Built:
    import time

    from transformers import AutoTokenizer

    from .tokenizer import token_id, train_tokenizer

    t0 = time.monotonic()
    train_tokenizer(QWEN3_FAMILY, _corpus(), 420, byte_only=False, out=out)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    config = decoder_config(len(tokenizer), token_id(out / "tokenizer.json", QWEN3_FAMILY.eos))
    model, steps = train_decoder(tokenizer, config, seed)
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    (out / "config.json").write_bytes(_json(config))
    notes = "a Qwen3-Embedding style decoder: last-token pooling, instruction-prefixed queries"
    (out / "README.md").write_bytes(model_card(DECODER_NAME, QWEN3_FAMILY.mimics, notes))
    facts = {**verify_decoder(out), "expect": "embedding", "training_steps": steps, "notes": notes}
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    log(f"    {repo_id(DECODER_NAME):<36} embedding last-token, {steps} steps, verified, "
        f"{time.monotonic() - t0:.1f} s")
    return repo_id(DECODER_NAME), files, facts
