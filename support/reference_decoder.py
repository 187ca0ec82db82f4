"""A reference answer: greedy decoding done directly with mlx-lm, beside the SUT, to compare with it.

What it does, and why each choice (the point is to be the plainest honest decode):

* the model is loaded with ``mlx_lm.load`` from the snapshot folder in the same Hugging Face
  cache the SUT reads (resolved read-only with ``snapshot_download(local_files_only=True)``);
* the prompt is formatted as mlx-knife formats a chat request: one user message,
  ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)``, then
  ``tokenizer.encode(text)`` (special tokens added as that call adds them);
* decoding is greedy (temperature 0 = argmax of the log-probabilities), with no repetition
  penalty and no top-p, through ``mlx_lm.generate.generate_step``; it stops at any of the
  tokenizer's eos ids (``TokenizerWrapper.eos_token_ids``: the tokenizer's eos plus
  ``generation_config.json``'s list) or after ``max_tokens`` tokens;
* the answer is ``tokenizer.decode(ids, skip_special_tokens=False,
  clean_up_tokenization_spaces=False)`` of the generated ids without the eos id that ended
  generation: nothing else is stripped, so a special token the model emits that is not an eos
  id (Phi-3's ``<|end|>``) is part of the reference text, as the model produced it.

The decode runs in a subprocess (``python -m support.reference_decoder``), so that the memory
of the model it loads is returned when it ends; one call decodes all of a model's prompts::

    python -m support.reference_decoder --model-path SNAPSHOT --prompt P1 --prompt P2 --max-tokens 64

prints one JSON document on stdout (see ``decode_all``); on any error it prints one line to
stderr and exits 2. ``run`` starts that subprocess from the suite, bounded and recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .cli_runner import CliResult, run_cli
from .errors import HarnessError, SuiteError

EXIT_ERROR = 2


# --- in the suite's process ------------------------------------------------------------

def snapshot_path(model_id: str, hf_home: Path) -> Path:
    """The model's snapshot folder in ``hf_home``'s cache, resolved without writing or downloading."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, cache_dir=Path(hf_home) / "hub", local_files_only=True))
    except LocalEntryNotFoundError as e:
        raise SuiteError(f"reference decoder: {model_id} has no complete snapshot in {hf_home}/hub "
                         f"({type(e).__name__})") from None


@dataclass(frozen=True)
class ReferenceAnswer:
    prompt: str
    chat_prompt: str  # the templated text that was encoded
    prompt_tokens: int
    token_ids: tuple[int, ...]  # generated ids, without the eos id that ended generation
    eos_id: int | None  # the eos id that ended generation; None when max_tokens ended it
    finish_reason: str  # "stop" (an eos id) or "length"
    text: str


@dataclass(frozen=True)
class ReferenceRun:
    """One subprocess call: its command line and output (a CliResult, kept as evidence) and answers."""

    result: CliResult
    answers: tuple[ReferenceAnswer, ...]

    def answer_for(self, prompt: str) -> ReferenceAnswer:
        return next(a for a in self.answers if a.prompt == prompt)

    def describe(self, prompt: str | None = None) -> str:
        """The command and, for ``prompt`` (or every prompt), what the reference decoded."""
        head = (f"reference decoder: {' '.join(self.result.argv)}\n"
                f"exit code {self.result.returncode} after {self.result.seconds:.1f} s")
        lines = [head]
        for a in self.answers:
            if prompt is None or a.prompt == prompt:
                lines.append(f"  prompt {a.prompt!r}: {a.prompt_tokens} prompt tokens, chat prompt "
                             f"{a.chat_prompt!r}\n  generated ids {list(a.token_ids)} then "
                             f"{'eos id ' + str(a.eos_id) if a.eos_id is not None else 'max_tokens'} "
                             f"(finish_reason {a.finish_reason!r})\n  text {a.text!r}")
        return "\n".join(lines)


def module_command(module: str, model_path: Path, max_tokens: int, options: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """A reference module's command line: this interpreter, `python -m module`, the model and options."""
    argv = [sys.executable, "-m", module, "--model-path", str(model_path), "--max-tokens", str(max_tokens)]
    for flag, value in options:
        argv += [flag, value]
    return tuple(argv)


def run_command(argv: Sequence[str], timeout: float) -> CliResult:
    """Run a reference in a subprocess (offline, own process group), killed on timeout, kind "reference"."""
    return run_cli(argv[:1], argv[1:], None, timeout, kind="reference")


def parse_answers(result: CliResult, what: str, build) -> tuple:
    """`build(answer)` for each answer a finished reference printed; HarnessError (with the command
    and its output) when it failed or printed no valid answer document."""
    if result.returncode != 0:
        raise HarnessError(f"{what} failed (a harness problem, not the SUT's):\n" + result.describe(limit=2000))
    try:
        return tuple(build(a) for a in json.loads(result.stdout)["answers"])
    except (ValueError, KeyError, TypeError) as e:
        raise HarnessError(f"{what} printed no valid answer document ({e}):\n"
                           + result.describe(limit=2000)) from None


def command(model_path: Path, prompts: Sequence[str], max_tokens: int) -> tuple[str, ...]:
    """The subprocess' command line: this interpreter, this module."""
    return module_command("support.reference_decoder", model_path, max_tokens, [("--prompt", p) for p in prompts])


def run(model_path: Path, prompts: Sequence[str], max_tokens: int, timeout: float) -> CliResult:
    """Run the reference decoder in a subprocess (offline, own process group), killed on timeout."""
    return run_command(command(model_path, prompts, max_tokens), timeout)


def parse(result: CliResult) -> ReferenceRun:
    """The answers of a finished run; HarnessError (with the command and its output) otherwise."""
    return ReferenceRun(result, parse_answers(result, "the reference decoder", lambda a: ReferenceAnswer(
        a["prompt"], a["chat_prompt"], a["prompt_tokens"], tuple(a["token_ids"]), a["eos_id"],
        a["finish_reason"], a["text"])))


# --- in the subprocess -----------------------------------------------------------------

def decode_all(model_path: str, prompts: Sequence[str], max_tokens: int) -> dict:
    """Load the model once and decode every prompt greedily; the JSON document the CLI prints."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, tokenizer = load(model_path)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the tokenizer in {model_path} has no chat template")
    eos_ids = set(tokenizer.eos_token_ids)

    def argmax(logprobs: mx.array) -> mx.array:
        return mx.argmax(logprobs, axis=-1)

    answers = []
    for prompt in prompts:
        chat_prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                    add_generation_prompt=True)
        prompt_ids = list(tokenizer.encode(chat_prompt))
        ids: list[int] = []
        eos_id = None
        for token, _ in generate_step(mx.array(prompt_ids), model, max_tokens=max_tokens, sampler=argmax,
                                      logits_processors=None):
            token_id = int(token.item() if hasattr(token, "item") else token)
            if token_id in eos_ids:
                eos_id = token_id
                break
            ids.append(token_id)
        text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        answers.append({"prompt": prompt, "chat_prompt": chat_prompt, "prompt_tokens": len(prompt_ids),
                        "token_ids": ids, "eos_id": eos_id,
                        "finish_reason": "stop" if eos_id is not None else "length", "text": text})
    return {"model_path": model_path, "max_tokens": max_tokens, "eos_token_ids": sorted(eos_ids),
            "answers": answers}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.reference_decoder",
                                     description="Greedy reference answers with mlx-lm, as JSON on stdout.")
    parser.add_argument("--model-path", required=True, help="a model snapshot folder (config, weights, tokenizer)")
    parser.add_argument("--prompt", action="append", required=True, help="a user prompt (repeat for more)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens to generate at most (default 64)")
    args = parser.parse_args(argv)
    if args.max_tokens < 1:
        parser.error(f"--max-tokens must be at least 1, got {args.max_tokens}")
    path = Path(args.model_path)
    if not (path / "config.json").is_file():
        print(f"reference_decoder: no model at {path} (expected a snapshot folder with config.json)",
              file=sys.stderr)
        return EXIT_ERROR
    return print_answers("reference_decoder", path, lambda: decode_all(str(path), args.prompt, args.max_tokens))


def print_answers(name: str, model_path, compute) -> int:
    """Print the document `compute()` returns (exit 0), or one stderr line and EXIT_ERROR when it
    raises: one line for the suite's failure message, whatever the model library raised."""
    try:
        doc = compute()
    except Exception as e:  # noqa: BLE001
        print(f"{name}: cannot decode with the model at {model_path}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
