"""Train a tiny Whisper-architecture model (mlx-audio's own classes) to exact golden transcripts.

The model is mlx-audio's `whisper.Model`: a convolutional audio front end (no encoder
blocks) and a 2-block text decoder over Whisper's full 51865-token vocabulary. On a busy
CPU a 51865-token softmax and attention over 1500 audio frames are slow to train, so:

- the audio encoder keeps its seeded initialisation (convolutions scaled up, so the audio,
  not the positional embedding, dominates its features); it runs once per mel spectrogram,
  in float16 as mlx-audio runs it;
- the decoder's cross-attention queries are zero: every block attends uniformly to the 1500
  audio frames, i.e. reads the mean of their values. Training uses that mean directly (exact,
  the value projection is affine). The values are made blind to what every 30 s window
  shares (its silence) and scaled up, so the 1-2 s of a clip carry a clear signal;
- training runs over the sub-vocabulary that greedy decoding of the goldens can touch (their
  tokens, all languages, all timestamps, the control tokens); every other embedding row is
  shrunk at initialisation so it never wins. The builder's greedy decode through mlx-audio
  afterwards is the full-vocabulary, full-attention check.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map

MIN_MARGIN = 3.0  # logit gap between each golden token and its best rival (float16 weights)
STEP_CHUNK = 5
MAX_STEPS = 400
LEARNING_RATE = 3e-3
CLIP_NORM = 0.3  # gradient norm clip: without it some seeds oscillate for hundreds of steps
CONV_SCALE = 4.0  # the encoder convolutions' initial weights, times this
VALUE_SCALE = 64.0  # the cross-attention values, times this (after blinding them to silence)
OTHER_ROWS_SCALE = 0.05  # embedding rows outside the sub-vocabulary, times this
N_FRAMES = 3000  # mel frames in Whisper's 30 s window


@dataclass(frozen=True)
class Sequence:
    """Decoder input `tokens`; `targets[i]` follows `tokens[i]`, with loss weight `mask[i]`."""

    tokens: list[int]
    targets: list[int]
    mask: list[float]
    mel: int  # index of the mel spectrogram (encoder input) this sequence reads


def _half_rounded(model: nn.Module) -> None:
    model.update(tree_map(lambda p: p.astype(mx.float16).astype(mx.float32), model.parameters()))


def init_model(dims, seed: int, vocab: list[int]):
    """mlx-audio's Whisper Model from `seed`: float32 holding float16 values (as saved)."""
    from mlx_audio.stt.models.whisper.whisper import Model

    mx.random.seed(seed)
    model = Model(dims, dtype=mx.float32)
    for conv in (model.encoder.conv1, model.encoder.conv2):
        conv.weight = conv.weight * CONV_SCALE
    emb = model.decoder.token_embedding
    inside = mx.zeros((dims.n_vocab, 1)).at[mx.array(vocab)].add(1.0) > 0
    emb.weight = emb.weight * mx.where(inside, 1.0, OTHER_ROWS_SCALE)
    _half_rounded(model)
    return model


def encoder_features(model, mels: mx.array) -> mx.array:
    """The encoder output for each mel (n, 3000, n_mels), computed in float16 as at inference."""
    from mlx_audio.stt.models.whisper.whisper import Model

    half = Model(model.dims, dtype=mx.float16)
    half.update(tree_map(lambda p: p.astype(mx.float16), model.parameters()))
    feats = half.encoder(mels.astype(mx.float16)).astype(mx.float32)
    mx.eval(feats)
    return feats


def read_the_audio(model, features: mx.array, n_clips: int) -> None:
    """Set the decoder's cross-attention up to read the clips (see the module docstring).

    Silence (an all-zero mel: the padding of the decoding window) reads as zero, and so does
    the offset of the language-detection window (padded with the log-mel floor instead).
    `features`: the clips' detection windows, then their decoding windows.
    """
    silence = mx.mean(encoder_features(model, mx.zeros((1, N_FRAMES, model.dims.n_mels)))[0], axis=0)
    pooled = mx.mean(features, axis=1)
    offset = mx.mean(pooled[:n_clips] - pooled[n_clips:], axis=0)
    u = offset / mx.linalg.norm(offset)
    blind = mx.eye(u.shape[0]) - u[:, None] * u[None, :]
    for block in model.decoder.blocks:
        attn = block.cross_attn
        attn.query.weight = mx.zeros_like(attn.query.weight)
        attn.query.bias = mx.zeros_like(attn.query.bias)
        attn.value.weight = (attn.value.weight @ blind) * VALUE_SCALE
        attn.value.bias = -(silence @ attn.value.weight.T)
    _half_rounded(model)


class _Batch:
    """The sequences in sub-vocabulary ids, padded to one width."""

    def __init__(self, seqs: list[Sequence], vocab: list[int], first_timestamp: int, languages: set[int]):
        width = max(len(s.tokens) for s in seqs)
        index = {t: i for i, t in enumerate(vocab)}

        def pad(rows):
            return [r + [0] * (width - len(r)) for r in rows]

        self.tokens = mx.array(pad([[index[t] for t in s.tokens] for s in seqs]))
        self.targets = mx.array(pad([[index[t] for t in s.targets] for s in seqs]))
        self.mask = mx.array(pad([s.mask for s in seqs]), dtype=mx.float32)
        self.mel = mx.array([s.mel for s in seqs])
        self.ts_cols = mx.array([i for i, t in enumerate(vocab) if t >= first_timestamp])
        self.is_lang = mx.array([t in languages for t in vocab])
        self.gold_is_ts = mx.array([t >= first_timestamp for t in vocab])[self.targets]
        self.gold_is_lang = self.is_lang[self.targets]


def _logits(decoder, batch: _Batch, pooled: mx.array) -> mx.array:
    """mlx-audio's TextDecoder forward with each block's cross-attention over one key (any:
    the queries are zero) whose value is the mean of the audio frames' values."""
    x = batch.tokens
    h = decoder.token_embedding(x) + decoder.positional_embedding[: x.shape[-1]]
    one_key = mx.zeros((x.shape[0], 1, pooled.shape[-1]))
    for block in decoder.blocks:
        v = block.cross_attn.value(pooled[batch.mel])[:, None, :]
        h, _, _ = block(h, xa=one_key, mask=decoder._mask, kv_cache=(None, (one_key, v)))
    return decoder.token_embedding.as_linear(decoder.ln(h))


def _margins(logits: mx.array, batch: _Batch) -> mx.array:
    """Gap between the golden token and its best rival, as mlx-audio decodes: a language
    (detection) competes with the other languages only; a text token also with the summed
    probability of all timestamps (ApplyTimestampRules samples a timestamp whenever that
    sum beats every text token); a timestamp with every other token."""
    gold = mx.take_along_axis(logits, batch.targets[..., None], axis=-1)[..., 0]
    onehot = mx.arange(logits.shape[-1]) == batch.targets[..., None]
    others = mx.where(onehot, -1e9, logits)
    rival = mx.max(others, axis=-1)
    rival_lang = mx.max(mx.where(batch.is_lang, others, -1e9), axis=-1)
    ts_mass = mx.logsumexp(logits[..., batch.ts_cols], axis=-1)
    rival = mx.where(batch.gold_is_ts, rival, mx.maximum(rival, ts_mass))
    rival = mx.where(batch.gold_is_lang, rival_lang, rival)
    return gold - rival


def train(model, features: mx.array, seqs: list[Sequence], vocab: list[int], first_timestamp: int,
          languages: set[int]) -> int:
    """Train the decoder until every golden token clears MIN_MARGIN with float16-rounded
    weights; returns the steps taken. `vocab`: the sub-vocabulary, sorted token ids."""
    decoder = model.decoder
    full = decoder.token_embedding
    sub = nn.Embedding(len(vocab), full.weight.shape[1])
    sub.weight = full.weight[mx.array(vocab)]
    decoder.token_embedding = sub
    for block in decoder.blocks:
        block.cross_attn.query.freeze()  # zero: uniform attention
        block.cross_attn.key.freeze()  # unused by uniform attention
    pooled = mx.mean(features, axis=1)
    batch = _Batch(seqs, vocab, first_timestamp, languages)

    def loss_fn(dec):
        logits = _logits(dec, batch, pooled)
        ce = nn.losses.cross_entropy(logits, batch.targets)
        short = nn.relu(2 * MIN_MARGIN - _margins(logits, batch))
        return ((ce + short) * batch.mask).sum() / batch.mask.sum()

    opt = optim.Adam(learning_rate=LEARNING_RATE)
    step = nn.value_and_grad(decoder, loss_fn)
    steps = 0
    try:
        while steps < MAX_STEPS:
            for _ in range(STEP_CHUNK):
                _, grads = step(decoder)
                grads, _ = optim.clip_grad_norm(grads, CLIP_NORM)
                opt.update(decoder, grads)
                mx.eval(decoder.parameters(), opt.state)
            steps += STEP_CHUNK
            if worst_margin(decoder, batch, pooled) >= MIN_MARGIN:
                return steps
        raise RuntimeError(f"speech model training did not converge within {MAX_STEPS} steps "
                           f"(worst margin {worst_margin(decoder, batch, pooled):.2f}, need {MIN_MARGIN})")
    finally:
        decoder.unfreeze()
        weight = full.weight
        weight[mx.array(vocab)] = sub.weight
        full.weight = weight
        decoder.token_embedding = full
        _half_rounded(model)


def worst_margin(decoder, batch: _Batch, pooled: mx.array) -> float:
    """Smallest margin over the trained positions, with the weights rounded to float16."""
    exact = decoder.parameters()
    _half_rounded(decoder)
    margins = _margins(_logits(decoder, batch, pooled), batch)
    decoder.update(exact)
    return mx.min(mx.where(batch.mask > 0, margins, 1e9)).item()
