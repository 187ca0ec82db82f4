"""Demo speech models: a tiny Whisper-architecture model trained to exact golden transcripts.

Two repos share one trained model:

- `whisper-style`: multilingual, so mlx-knife lists it with `audio` and `audio-translate-en`;
  each clip has a golden transcript (its own language) and a golden English translation.
- `whisper-tiny.en-style`: named like OpenAI's English-only checkpoints, so mlx-knife lists
  it with `audio` only and must refuse to translate with it (before loading it).

The repos follow the mlx-community Whisper layout: `config.json` (MLX dimensions,
`model_type: whisper`) and float16 weights, no HuggingFace processor. mlx-audio 0.4.8 loads
it; its tokenizer comes from OpenAI's Whisper vocabulary (`multilingual.tiktoken`, whose
only local copy is the one mlx-knife vendors; mlx-knife's bridge for mlx-audio#645 supplies
the same tokenizer at run time). The clips are tone patterns synthesised here (16 kHz mono
16-bit WAV); the model reads them through mlx-audio's own log-mel front end, so what it
transcribes depends on the audio.
"""

from __future__ import annotations

import base64
import io
import json
import time
import wave
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Callable

import numpy as np

from .models import ORG

SAMPLE_RATE = 16000
# mlx-knife 2.0.8 gives Whisper this initial prompt on transcription when the caller gives
# none (operations/run.py, core/server/handlers/audio.py), and none on translation; a chat
# completion with input_audio and no text gets CHAT_PROMPT instead (tools/vision_adapter.py).
# The model is trained for exactly these flows (a caller's own prompt is untrained).
DEFAULT_PROMPT = "Transcribe this audio."
CHAT_PROMPT = "Transcribe what is spoken in this audio."
FLOWS = (  # (task, initial prompt)
    ("transcribe", DEFAULT_PROMPT), ("transcribe", CHAT_PROMPT), ("translate", None))
LANGUAGE_WEIGHT = 10  # loss weight of language detection: few positions, all from the audio
TIME_PRECISION = 0.02  # seconds per timestamp token (30 s / 1500 audio frames)
N_LANGUAGES = 99
LANGUAGES = (  # Whisper's language order, the first ones: their tokens follow <|startoftranscript|>
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
    "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
    "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
    "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su",
)
DIMS = {  # mlx-audio ModelDimensions; n_audio_ctx 1500 and n_vocab 51865 are fixed by Whisper
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 64, "n_audio_head": 4, "n_audio_layer": 0,
    "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 64, "n_text_head": 4, "n_text_layer": 2,
}


@dataclass(frozen=True)
class Clip:
    name: str
    language: str  # Whisper language code, what auto-detection must find
    transcript: str
    translation: str  # the English translation (the translate task)
    tones: tuple[tuple[float, float], ...]  # one (low, high) frequency pair per syllable
    seconds: float

    @property
    def filename(self) -> str:
        return f"{self.name}.wav"


CLIPS: tuple[Clip, ...] = (
    Clip("hello-en", "en", "hello world", "hello world", ((440, 880), (660, 1320)), 1.2),
    Clip("eins-de", "de", "eins zwei drei", "one two three", ((300, 1200), (500, 2000), (700, 2800)), 1.5),
    Clip("guten-de", "de", "guten Morgen", "good morning",
         ((900, 350), (1200, 450), (1500, 600), (1800, 750)), 1.8),
)


@dataclass(frozen=True)
class SpeechSpec:
    name: str
    translate: bool  # mlx-knife must list `audio-translate-en` and translate with it
    notes: str

    @property
    def id(self) -> str:
        return f"{ORG}/{self.name}"


SPEECH_SPECS: tuple[SpeechSpec, ...] = (
    SpeechSpec("whisper-style", True, "multilingual Whisper architecture: transcribes an English "
               "and two German clips, translates them to English"),
    SpeechSpec("whisper-tiny.en-style", False, "named like an English-only Whisper (.en): "
               "mlx-knife must refuse --translate and /v1/audio/translations; same weights"),
)


# -- the clips

def synthesize(clip: Clip, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The clip as a mono 16-bit WAV (16 kHz: what the model is trained on): one enveloped
    two-tone syllable per pair."""
    n = int(sample_rate * clip.seconds)
    t = np.arange(n) / sample_rate
    signal = np.zeros(n)
    width = n // len(clip.tones)
    for i, (low, high) in enumerate(clip.tones):
        part = slice(i * width, (i + 1) * width)
        envelope = np.sin(np.pi * np.arange(width) / width)
        tones = 0.5 * np.sin(2 * np.pi * low * t[part]) + 0.3 * np.sin(2 * np.pi * high * t[part])
        signal[part] = envelope * tones
    return wav_bytes(np.round(signal * 0.8 * 32767).astype("<i2"), sample_rate)


def wav_bytes(pcm, sample_rate: int) -> bytes:
    """16-bit mono samples (a numpy int16 array) as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


# -- the tokenizer (OpenAI's Whisper vocabulary, its special tokens in Whisper's order)

def vocabulary_file() -> Path:
    spec = find_spec("mlxk2")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "whisper" / "multilingual.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"Whisper vocabulary not found at {path}: the speech models need "
                           f"OpenAI's multilingual.tiktoken (installed with mlx-knife)")
    return path


def whisper_encoding():
    """tiktoken's Encoding of multilingual Whisper: 50257 BPE tokens, then the specials."""
    import tiktoken

    ranks = {}
    for line in vocabulary_file().read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    specials = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|{c}|>" for c in LANGUAGES],
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                "<|nospeech|>", "<|notimestamps|>", *[f"<|{i * TIME_PRECISION:.2f}|>" for i in range(1501)]]
    if len(LANGUAGES) != N_LANGUAGES or len(ranks) + len(specials) != DIMS["n_vocab"]:
        raise RuntimeError(f"{vocabulary_file()}: {len(ranks)} tokens and {len(specials)} specials, "
                           f"expected {DIMS['n_vocab']} in all (multilingual Whisper)")
    return tiktoken.Encoding(
        name="multilingual", explicit_n_vocab=DIMS["n_vocab"],
        pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks=ranks, special_tokens={s: len(ranks) + i for i, s in enumerate(specials)})


class HFStyleTokenizer:
    """The part of a HuggingFace tokenizer that mlx-audio's HFTokenizerWrapper calls,
    over tiktoken: the builder's own way to run mlx-audio's Whisper decoding."""

    def __init__(self, encoding):
        self.encoding = encoding
        self.specials = {t: encoding.encode_single_token(t) for t in encoding.special_tokens_set}
        self.eos_token_id = self.unk_token_id = encoding.eot_token

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:  # mlx-audio never skips
        return self.encoding.decode(list(ids))

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.specials.get(token, self.unk_token_id)


def _special(enc, token: str) -> int:
    return enc.encode_single_token(token)


# -- training data: what mlx-audio feeds the decoder, and what it must answer

def _mels(wav_paths: list[Path]):
    """Per clip the two mel spectrograms mlx-audio's Whisper.generate encodes: the first 30 s
    window of the padded audio (language detection) and the content zero-padded (decoding)."""
    import mlx.core as mx
    from mlx_audio.stt.models.whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim
    from mlx_audio.stt.utils import load_audio

    detect, decode = [], []
    for path in wav_paths:
        mel = log_mel_spectrogram(load_audio(str(path)), n_mels=DIMS["n_mels"], padding=N_SAMPLES)
        content = mel.shape[-2] - N_FRAMES
        detect.append(pad_or_trim(mel, N_FRAMES, axis=-2))
        decode.append(pad_or_trim(mel[:content], N_FRAMES, axis=-2))
    return mx.stack(detect + decode)


def expected_tokens(enc, clip: Clip, task: str) -> list[int]:
    """What greedy decoding must emit after the task token: one segment from 0.00 s to the
    clip's end, the text, then <|endoftext|>."""
    first = _special(enc, "<|0.00|>")
    end = first + round(clip.seconds / TIME_PRECISION)
    text = clip.transcript if task == "transcribe" else clip.translation
    return [first, *enc.encode_ordinary(" " + text), end, enc.eot_token]


def training_sequences(enc, clips: tuple[Clip, ...]):
    from .speech_training import Sequence

    sot, prev = _special(enc, "<|startoftranscript|>"), _special(enc, "<|startofprev|>")
    seqs = []
    for i, clip in enumerate(clips):
        lang = _special(enc, f"<|{clip.language}|>")
        seqs.append(Sequence([sot], [lang], [LANGUAGE_WEIGHT], mel=i))  # language detection
        for task, prompt in FLOWS:
            prefix = [prev, *enc.encode_ordinary(" " + prompt)] if prompt else []
            body = expected_tokens(enc, clip, task)
            full = prefix + [sot, lang, _special(enc, f"<|{task}|>")] + body
            mask = [0] * (len(prefix) + 2) + [1] * len(body)  # the language is given here
            seqs.append(Sequence(full[:-1], full[1:], mask, mel=len(clips) + i))
    return seqs


def candidate_tokens(enc, seqs) -> list[int]:
    """Every token a golden decode or its rules can touch: the goldens' own tokens, all
    languages, all timestamps, the control tokens."""
    first_ts = _special(enc, "<|0.00|>")
    controls = [enc.eot_token] + [_special(enc, t) for t in (
        "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
        "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>")]
    langs = [_special(enc, f"<|{c}|>") for c in LANGUAGES]
    used = {t for s in seqs for t in s.tokens + s.targets}
    return sorted(used | set(controls) | set(langs) | set(range(first_ts, DIMS["n_vocab"])))


# -- build and verify

def model_card(spec: SpeechSpec) -> bytes:
    return (
        "---\nlibrary_name: mlx\ntags: [mlx, whisper, mlx-audio]\n"
        "pipeline_tag: automatic-speech-recognition\nlicense: mit\n---\n\n"
        f"# {spec.id}\n\nA tiny demo speech model built locally by mlx-e2e: Whisper architecture "
        f"(mlx-audio), {spec.notes}.\n"
    ).encode()


def verify(model_dir: Path, wav_paths: list[Path], enc) -> None:
    """Greedy-decode every clip through mlx-audio (load + generate_transcription, as
    mlx-knife calls it); raise on any difference from the goldens."""
    import tempfile
    import warnings
    from types import SimpleNamespace

    from mlx_audio.stt.generate import generate_transcription
    from mlx_audio.stt.utils import load_model

    with warnings.catch_warnings():  # no HuggingFace processor: the mlx-community layout
        warnings.filterwarnings("ignore", message="Could not load WhisperProcessor")
        model = load_model(model_dir)
    model._processor = SimpleNamespace(tokenizer=HFStyleTokenizer(enc))
    cases = [(clip, path, task, prompt) for clip, path in zip(CLIPS, wav_paths) for task, prompt in FLOWS]
    with tempfile.TemporaryDirectory(prefix="speech-verify-") as out:
        for clip, path, task, prompt in cases:
            kwargs = {"initial_prompt": prompt} if prompt else {}
            result = generate_transcription(
                model=model, audio=str(path), output_path=str(Path(out) / "t"), verbose=None,
                temperature=0.0, task=task, chunk_duration=30.0, **kwargs)
            want_tokens = expected_tokens(enc, clip, task)[:-1]
            want_text = " " + (clip.transcript if task == "transcribe" else clip.translation)
            got = [s["tokens"] for s in result.segments]
            if result.language != clip.language or result.text != want_text or got != [want_tokens]:
                raise RuntimeError(
                    f"speech model {model_dir}: greedy {task} of {clip.filename} (prompt {prompt!r}) "
                    f"through mlx-audio: expected language {clip.language!r}, text {want_text!r}, "
                    f"one segment {want_tokens}; got language {result.language!r}, "
                    f"text {result.text!r}, segments {got}")


def build_speech(work: Path, seed: int = 12, log: Callable[[str], None] = print):
    """Train the speech model in `work` (a scratch directory) and verify it through mlx-audio.

    Returns (repos, assets): repos is a list of (repo_id, files, facts), files for
    `hf_cache.write_repo`, facts for the manifest; assets maps WAV file names to their bytes.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_audio.stt.models.whisper.whisper import ModelDimensions

    from . import speech_training as training

    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    assets = {c.filename: synthesize(c) for c in CLIPS}
    wav_paths = []
    for name, data in assets.items():
        (work / name).write_bytes(data)
        wav_paths.append(work / name)

    enc = whisper_encoding()
    seqs = training_sequences(enc, CLIPS)
    candidates = candidate_tokens(enc, seqs)
    model = training.init_model(ModelDimensions(**DIMS), seed, candidates)
    features = training.encoder_features(model, _mels(wav_paths))
    training.read_the_audio(model, features, len(CLIPS))
    languages = {_special(enc, f"<|{c}|>") for c in LANGUAGES}
    steps = training.train(model, features, seqs, candidates, _special(enc, "<|0.00|>"), languages)

    model_dir = work / "model"
    model_dir.mkdir(exist_ok=True)
    weights = {k: v.astype(mx.float16) for k, v in tree_flatten(model.parameters())}
    mx.save_safetensors(str(model_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (model_dir / "config.json").write_text(json.dumps({"model_type": "whisper", **DIMS}, indent=2) + "\n")
    verify(model_dir, wav_paths, enc)

    trained = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}
    seconds = round(time.monotonic() - started, 1)
    repos = []
    for spec in SPEECH_SPECS:
        files = {**trained, "README.md": model_card(spec)}
        facts = {
            "kind": "speech",
            "translate": spec.translate,
            "capabilities": ["audio", "audio-translate-en"] if spec.translate else ["audio"],
            "prompts": {"transcribe": DEFAULT_PROMPT, "chat": CHAT_PROMPT},
            "clips": [{"file": c.filename, "language": c.language, "seconds": c.seconds,
                       "transcript": c.transcript,
                       **({"translation": c.translation} if spec.translate else {})} for c in CLIPS],
            "training_steps": steps,
            "seconds": seconds,
            "notes": spec.notes,
        }
        repos.append((spec.id, files, facts))
    log(f"speech models {', '.join(s.name for s in SPEECH_SPECS)}: {steps} training steps, "
        f"verified through mlx-audio, {seconds:.1f} s")
    return repos, assets
