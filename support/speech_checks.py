"""Speech: the clips a speech model is asked to transcribe or translate, and what is checked in
what comes back (no model here; the driver uploads and runs, the `Then` steps judge).

A clip reaches the server the OpenAI way: a multipart form upload (`file`, `model`, and
optionally `language`, `prompt`, `response_format`) to `POST /v1/audio/transcriptions` or
`POST /v1/audio/translations`. OpenAI's response formats are json (`{"text": ...}`), text
(the transcript as text/plain), verbose_json (text, language, duration of the audio, segments),
srt and vtt (subtitles). On the command line: `mlxk run MODEL --audio FILE [--language xx]
[--translate]`, plain or `--json`.
"""

from __future__ import annotations

import io
import re
import wave
from dataclasses import dataclass
from pathlib import Path

from . import schemas
from .api_checks import check_error
from .cli_runner import CliResult, plain_answer
from .errors import HarnessError
from .expect import clipped, same_text, that
from .openai_http import Exchange

TRANSCRIBE, TRANSLATE = "transcribe", "translate"
TRANSLATE_CAPABILITY = "audio-translate-en"  # mlx-knife lists it for the models that translate
SUBTITLES = ("srt", "vtt")
DURATION_TOLERANCE_S = 0.1  # verbose_json's duration is the audio's length (a WAV header says it exactly)
NOT_AUDIO = b"This is plain text, not the bytes of a sound file.\n" * 8
MISSING_CLIP = "mlx-e2e-no-such-clip.wav"  # a file name no folder holds (made absolute by the driver)
UNKNOWN_LANGUAGE = "xx"  # no Whisper language has this code
DECODING_MARK = "frames/s"  # mlx-audio's progress bar on stderr: the model decoded the audio
TRANSLATION_WORDS = ("translat",)  # a refusal of translation says what it refuses
# Subtitles: an SRT cue ("1", "00:00:00,000 --> 00:00:01,200", text) and a WebVTT file ("WEBVTT", cues).
SRT_CUE = re.compile(r"^\s*1\s*\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\s*\n(?P<text>.+?)\s*(\n\n|$)", re.S)
VTT_CUE = re.compile(r"^WEBVTT[^\n]*\n(?:.*?\n)??\s*(?:\S+\n)?\d\d:(?:\d\d:)?\d\d\.\d{3} --> [\d:.]+[^\n]*\n"
                     r"(?P<text>.+?)\s*(\n\n|$)", re.S)


@dataclass(frozen=True)
class SpeechClip:
    """A clip and what a speech model must make of it (the demo manifest's `clips`)."""

    file: str  # asset name
    language: str  # Whisper language code: what detection finds
    seconds: float
    transcript: str  # "" when unknown (a user's model)
    translation: str | None = None  # the English translation; None when the model does not translate

    def golden(self, task: str) -> str:
        return self.transcript if task == TRANSCRIBE else self.translation or ""

    def describe(self) -> str:
        return f"{self.file} ({self.language}, {self.seconds:g} s)"


def clips_of(manifest: dict | None, model_id: str) -> tuple[SpeechClip, ...]:
    """The model's golden clips (demo), or () on a user's cache."""
    entry = next((m for m in (manifest or {}).get("models", []) if m["id"] == model_id), None)
    return tuple(SpeechClip(c["file"], c["language"], float(c["seconds"]), c["transcript"], c.get("translation"))
                 for c in (entry or {}).get("clips", ()))


def neutral_clip() -> tuple[SpeechClip, bytes]:
    """A clip for a user's speech model (no goldens): the demo's English tone pattern."""
    from .demo_portfolio import speech

    clip = speech.CLIPS[0]
    return SpeechClip(clip.filename, clip.language, clip.seconds, ""), speech.synthesize(clip)


def clip_bytes(root: Path, clip: SpeechClip) -> bytes:
    path = root / clip.file
    if not path.is_file():
        raise HarnessError(f"demo clip missing: {path} (rebuild: python -m support.demo_portfolio build --force)")
    return path.read_bytes()


def wav_seconds(data: bytes) -> float:
    """The length of a WAV file's audio, from its header (HarnessError when it is not a WAV)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError) as e:
        raise HarnessError(f"not a WAV file the suite can read: {e}") from None


def resampled(data: bytes, rate: int) -> bytes:
    """The WAV at another sample rate (linear interpolation, mono 16-bit): the same sound."""
    import numpy as np

    with wave.open(io.BytesIO(data)) as w:
        old, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
    n = int(len(pcm) * rate / old)
    from .demo_portfolio.speech import wav_bytes

    return wav_bytes(np.interp(np.arange(n) * old / rate, np.arange(len(pcm)), pcm).round().astype("<i2"), rate)


def audio_note(data: bytes) -> dict:
    """What the evidence of an upload says of its sound: the audio's length, when it is a WAV."""
    try:
        return {"audio_seconds": round(wav_seconds(data), 3)}
    except HarnessError:
        return {}


def bad_upload(name: str, good: bytes) -> dict:
    """The upload called `name` (the words of the feature's table), as `Sut.upload` arguments."""
    uploads = {
        "an empty file": {"data": b""},
        "bytes that are not audio": {"data": NOT_AUDIO, "filename": "not-audio.wav"},
        "a language no model knows": {"language": UNKNOWN_LANGUAGE},
    }
    if name not in uploads:
        raise HarnessError(f"the spec names a bad upload the suite does not know: {name!r}; known: {', '.join(uploads)}")
    return uploads[name]


def upload_fields(model: str, response_format: str | None = None, language: str | None = None) -> dict:
    """The form fields of a transcription or translation (only those given)."""
    fields = {"model": model, "response_format": response_format, "language": language}
    return {k: v for k, v in fields.items() if v is not None}


# --- checks of the server's answers ---------------------------------------------------------

def response_text(ex: Exchange, response_format: str | None, what: str) -> str:
    """The transcript of a successful answer in its format (json, verbose_json: the schema's
    `text`; text: the text/plain body); a failed check when it is not one."""
    evidence = ex.describe()
    that(ex.error is None and ex.status == 200, f"{what}: expected HTTP 200, got "
         f"{ex.status if ex.error is None else ex.error}", evidence)
    fmt = response_format or "json"
    if fmt == "text":
        that(ex.content_type.startswith("text/plain"), f"{what}: response_format text: expected content-type "
             f"text/plain, got {ex.content_type!r}", evidence)
        return ex.body_text
    schema = schemas.VERBOSE_TRANSCRIPTION if fmt == "verbose_json" else schemas.TRANSCRIPTION
    that(ex.content_type.startswith("application/json"), f"{what}: response_format {fmt}: expected content-type "
         f"application/json, got {ex.content_type!r}", evidence)
    schemas.validate(ex.json, schema, f"{what} ({fmt})", evidence)
    return ex.json["text"]  # type: ignore[index]


def check_golden(ex: Exchange, response_format: str | None, clip: SpeechClip, task: str, what: str) -> None:
    same_text(clip.golden(task), response_text(ex, response_format, what), what, ex.describe())


def language_names(code: str) -> tuple[str, ...]:
    """How a language may be reported: its Whisper code or its English name (OpenAI says "german")."""
    from mlx_audio.stt.models.whisper.tokenizer import LANGUAGES

    return (code, LANGUAGES[code]) if code in LANGUAGES else (code,)


def check_verbose(ex: Exchange, clip: SpeechClip, what: str) -> None:
    """verbose_json tells what was heard: the clip's language and the length of its audio."""
    response_text(ex, "verbose_json", what)
    doc = ex.json
    problems = []
    if doc["language"].lower() not in language_names(clip.language):  # type: ignore[index]
        problems.append(f"language {doc['language']!r}, expected one of {language_names(clip.language)}")
    if abs(float(doc["duration"]) - clip.seconds) > DURATION_TOLERANCE_S:  # type: ignore[index]
        problems.append(f"duration {doc['duration']!r} s, expected the audio's {clip.seconds:g} s "
                        f"(± {DURATION_TOLERANCE_S:g})")
    that(not problems, f"{what}: verbose_json of {clip.describe()}: " + "; ".join(problems), ex.describe())


def subtitle_text(ex: Exchange, fmt: str, what: str) -> str:
    """The text of the first cue of an SRT or WebVTT answer; a failed check when the body is none."""
    pattern = {"srt": SRT_CUE, "vtt": VTT_CUE}[fmt]
    m = pattern.match(ex.body_text.replace("\r\n", "\n"))
    that(m is not None, f"{what}: response_format {fmt}: expected {fmt} subtitles (a numbered cue with "
         f"timestamps) or a clean refusal, got HTTP {ex.status} {ex.content_type!r}: {clipped(ex.body_text)}",
         ex.describe())
    return m["text"]  # type: ignore[index]


def check_subtitles(ex: Exchange, fmt: str, clip: SpeechClip, what: str) -> None:
    """A subtitle format is honoured (the golden text in a cue) or refused cleanly (4xx): never
    answered in another format."""
    if ex.status is not None and 400 <= ex.status < 500:
        check_error(ex, range(400, 500))
        return
    that(ex.error is None and ex.status == 200, f"{what}: expected HTTP 200 with {fmt} or a 4xx refusal, got "
         f"{ex.status if ex.error is None else ex.error}", ex.describe())
    text = subtitle_text(ex, fmt, what)
    if clip.transcript:
        same_text(clip.transcript, text, f"{what}: the {fmt} cue", ex.describe())


def check_translation_refused(ex: Exchange, what: str) -> None:
    """Translation asked of a model that cannot translate: a clean 4xx that says so."""
    check_error(ex, range(400, 500))
    message = str(ex.json["error"].get("message", ""))  # type: ignore[index]
    that(refusal_said(message), f"{what}: the refusal does not say that translation is what is refused: {message!r}", ex.describe())


def refusal_said(text: str) -> bool:
    """A command line's refusal of translation says so."""
    return any(w in text.lower() for w in TRANSLATION_WORDS)


# --- checks of any answer (server or command line) ------------------------------------------

def answer_text(answer) -> str:
    """The transcript of a `support.driver.SpeechAnswer`: the server's in its format, the command
    line's printed text or its `--json` document's response; a failed check when there is none."""
    ev = answer.evidence
    what = f"{answer.way} {answer.task} of {answer.clip.describe()}"
    if not isinstance(ev, CliResult):
        return response_text(ev, answer.response_format, what)
    that(ev.returncode == 0 and not ev.timed_out, f"{what}: expected exit code 0, got "
         f"{'a timeout' if ev.timed_out else ev.returncode}", ev.describe())
    if answer.response_format != "--json":
        return plain_answer(ev)
    doc = schemas.parse_one_document(ev.stdout, "mlxk run --json", ev.describe())
    schemas.validate(doc, schemas.CLI_RUN_SUCCESS, "mlxk run --json", ev.describe())
    return doc["data"]["response"]  # type: ignore[index]


def check_answer(answer, task: str) -> None:
    """The answer is the clip's golden text for `task` (without goldens: some text)."""
    text, golden = answer_text(answer), answer.clip.golden(task)
    what = f"{answer.way} {task} of {answer.clip.describe()}"
    if golden:
        same_text(golden, text, what, answer.describe())
    else:
        that(bool(text.strip()), f"{what}: expected some text, got none", answer.describe())


def check_cli_translation_refused(result: CliResult) -> None:
    """`mlxk run --translate` with a model that cannot translate: exit 1, says so, decodes nothing."""
    out = result.stdout + result.stderr
    that(result.returncode == 1, f"--translate with a model that cannot translate: expected exit code 1, "
         f"got {result.returncode}", result.describe())
    that(refusal_said(out), "--translate refused without saying that translation is refused", result.describe())
    that(DECODING_MARK not in result.stderr, "--translate was refused only after the model decoded the audio "
         f"(mlx-audio's progress bar {DECODING_MARK!r} on stderr)", result.describe())


def check_cli_failure_names(result: CliResult, code: int, name: str) -> None:
    """A failed command: its exit code, and an error that names the file (no "None:" placeholder)."""
    out = result.stdout + result.stderr
    that(result.returncode == code, f"expected exit code {code}, got {result.returncode}", result.describe())
    that(name in out and "None:" not in out,
         f"expected the output to name {name!r} (and no 'None:' placeholder)", result.describe())
