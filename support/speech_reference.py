"""A reference transcription: greedy decoding done directly with mlx-audio, beside the SUT.

The plainest honest transcription, each choice stated:

* the model is loaded with ``mlx_audio.stt.utils.load_model`` from the snapshot folder in the
  same Hugging Face cache the SUT reads (resolved read-only, see ``reference_decoder.snapshot_path``);
* a Whisper repo in the mlx-community layout ships no HuggingFace processor, and mlx-audio 0.4.8
  has no tokenizer of its own for it (mlx-audio#645): the reference gives it OpenAI's
  multilingual Whisper vocabulary over tiktoken (``demo_portfolio.speech.HFStyleTokenizer``),
  never the SUT's tokenizer code;
* decoding is mlx-audio's ``generate_transcription`` as mlx-knife 2.0.8 documents its call:
  temperature 0, 30 s chunks, the task, the language when given, and the initial prompt
  "Transcribe this audio." on transcription only (none on translation, and then no conditioning
  on previous text); the answer is the result's ``text`` with its surrounding spaces removed.

It runs in a subprocess (``python -m support.speech_reference``) so the model's memory is returned
when it ends; one call answers all clips::

    python -m support.speech_reference --model-path SNAPSHOT \\
        --clip '{"audio": "/abs/hello-en.wav", "task": "transcribe", "language": null}'

prints one JSON document on stdout; on any error one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .cli_runner import CliResult
from .reference_decoder import EXIT_ERROR, parse_answers, print_answers, run_command

DEFAULT_PROMPT = "Transcribe this audio."  # mlx-knife's initial prompt on transcription


@dataclass(frozen=True)
class Ask:
    audio: str  # absolute path
    task: str  # "transcribe" | "translate"
    language: str | None = None


@dataclass(frozen=True)
class SpeechReferenceAnswer:
    ask: Ask
    text: str
    language: str | None  # what mlx-audio detected (or was given)


@dataclass(frozen=True)
class SpeechReferenceRun:
    result: CliResult
    answers: tuple[SpeechReferenceAnswer, ...]

    def describe(self) -> str:
        lines = [f"speech reference: {' '.join(self.result.argv)}",
                 f"exit code {self.result.returncode} after {self.result.seconds:.1f} s"]
        lines += [f"  {a.ask.task} {Path(a.ask.audio).name} (language {a.ask.language}): {a.text!r}, "
                  f"detected {a.language!r}" for a in self.answers]
        return "\n".join(lines)


def command(model_path: Path, asks: Sequence[Ask]) -> tuple[str, ...]:
    argv = [sys.executable, "-m", "support.speech_reference", "--model-path", str(model_path)]
    for a in asks:
        argv += ["--clip", json.dumps({"audio": a.audio, "task": a.task, "language": a.language})]
    return tuple(argv)


def run(model_path: Path, asks: Sequence[Ask], timeout: float) -> CliResult:
    """The reference in a subprocess (offline, own process group), recorded as kind "reference"."""
    return run_command(command(model_path, asks), timeout)


def parse(result: CliResult) -> SpeechReferenceRun:
    """The answers of a finished run; HarnessError (with the command and its output) otherwise."""
    return SpeechReferenceRun(result, parse_answers(result, "the speech reference", lambda a: SpeechReferenceAnswer(
        Ask(a["audio"], a["task"], a["language_given"]), a["text"], a["language"])))


# --- in the subprocess -----------------------------------------------------------------

def transcribe_all(model_path: str, asks: Sequence[Ask]) -> dict:
    import tempfile
    import warnings
    from types import SimpleNamespace

    from mlx_audio.stt.generate import generate_transcription
    from mlx_audio.stt.utils import load_model

    from .demo_portfolio.speech import HFStyleTokenizer, whisper_encoding

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Could not load WhisperProcessor")
        model = load_model(Path(model_path))
    if getattr(model, "_processor", None) is None:
        if not getattr(model, "is_multilingual", False):
            raise RuntimeError("an English-only Whisper without a processor: the reference has only the "
                               "multilingual vocabulary")
        model._processor = SimpleNamespace(tokenizer=HFStyleTokenizer(whisper_encoding()))
    answers = []
    with tempfile.TemporaryDirectory(prefix="speech-reference-") as out:
        for a in asks:
            kwargs = {"initial_prompt": DEFAULT_PROMPT} if a.task == "transcribe" else {
                "condition_on_previous_text": False}
            if a.language:
                kwargs["language"] = a.language
            result = generate_transcription(model=model, audio=a.audio, output_path=str(Path(out) / "t"),
                                            verbose=None, temperature=0.0, task=a.task, chunk_duration=30.0,
                                            **kwargs)
            answers.append({"audio": a.audio, "task": a.task, "language_given": a.language,
                            "text": result.text.strip(), "language": getattr(result, "language", None)})
    return {"model_path": model_path, "answers": answers}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.speech_reference",
                                     description="Greedy reference transcriptions with mlx-audio, as JSON.")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--clip", action="append", required=True,
                        help='JSON: {"audio": absolute path, "task": "transcribe"|"translate", "language": null}')
    args = parser.parse_args(argv)
    try:
        asks = [Ask(d["audio"], d["task"], d.get("language")) for d in map(json.loads, args.clip)]
    except (ValueError, KeyError, TypeError) as e:
        parser.error(f"--clip must be JSON with audio and task: {e}")
    missing = [a.audio for a in asks if not Path(a.audio).is_file()]
    if not (Path(args.model_path) / "config.json").is_file() or missing:
        print(f"speech_reference: no model at {args.model_path} or missing clips {missing}", file=sys.stderr)
        return EXIT_ERROR
    return print_answers("speech_reference", args.model_path, lambda: transcribe_all(args.model_path, asks))


if __name__ == "__main__":
    sys.exit(main())
