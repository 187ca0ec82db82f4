"""A reference answer about images: greedy decoding done directly with mlx-vlm, beside the SUT.

The plainest honest decode, each choice stated:

* the model is loaded with ``mlx_vlm.load`` from the snapshot folder in the same Hugging Face
  cache the SUT reads (the suite resolves it read-only, see ``reference_decoder.snapshot_path``);
* the prompt is formatted as mlx-knife 2.0.8 formats one model call: for several images in
  one call an ``[Image i]`` line per image, a blank line, then the question (``mlxk_prompt``;
  one image: the question alone), then mlx-vlm's own ``prompt_utils.apply_chat_template``
  with the number of images;
* decoding is mlx-vlm's ``generate`` at temperature 0 (argmax), no repetition penalty, no
  top-p, at most ``max_tokens`` tokens; the answer is its ``text`` as it returns it;
* the images are the files given, in order, all in one call (a question that mlx-knife
  chunks is compared per chunk by the caller).

It runs in a subprocess (``python -m support.vision_reference``) so the model's memory is
returned when it ends; one call answers all of a model's questions::

    python -m support.vision_reference --model-path SNAPSHOT --max-tokens 32 \\
        --question '{"prompt": "What color is this square?", "images": ["/abs/red.png"]}'

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
from .reference_decoder import EXIT_ERROR, module_command, parse_answers, print_answers, run_command



def mlxk_prompt(prompt: str, n_images: int) -> str:
    """The question as mlx-knife 2.0.8 puts it to the model for `n_images` images in one call."""
    if n_images < 2:
        return prompt
    return "\n".join(f"[Image {i}]" for i in range(1, n_images + 1)) + "\n\n" + prompt


@dataclass(frozen=True)
class Question:
    prompt: str
    images: tuple[str, ...]  # absolute file paths, in order


@dataclass(frozen=True)
class VisionReferenceAnswer:
    question: Question
    formatted: str  # the prompt after mlx-knife's prefix and mlx-vlm's chat template
    text: str
    finish_reason: str | None
    generation_tokens: int


@dataclass(frozen=True)
class VisionReferenceRun:
    result: CliResult
    answers: tuple[VisionReferenceAnswer, ...]

    def describe(self) -> str:
        lines = [f"vision reference: {' '.join(self.result.argv)}", f"exit code {self.result.returncode} "
                 f"after {self.result.seconds:.1f} s"]
        for a in self.answers:
            lines.append(f"  {a.question.prompt!r} with {[Path(i).name for i in a.question.images]}: formatted "
                         f"{a.formatted!r}\n  -> {a.text!r} ({a.generation_tokens} tokens, finish {a.finish_reason!r})")
        return "\n".join(lines)


def command(model_path: Path, questions: Sequence[Question], max_tokens: int) -> tuple[str, ...]:
    return module_command("support.vision_reference", model_path, max_tokens,
                          [("--question", json.dumps({"prompt": q.prompt, "images": list(q.images)})) for q in questions])


def run(model_path: Path, questions: Sequence[Question], max_tokens: int, timeout: float) -> CliResult:
    """The reference in a subprocess (offline, own process group), recorded as kind "reference"."""
    return run_command(command(model_path, questions, max_tokens), timeout)


def parse(result: CliResult) -> VisionReferenceRun:
    """The answers of a finished run; HarnessError (with the command and its output) otherwise."""
    return VisionReferenceRun(result, parse_answers(result, "the vision reference", lambda a: VisionReferenceAnswer(
        Question(a["prompt"], tuple(a["images"])), a["formatted"], a["text"], a["finish_reason"],
        a["generation_tokens"])))


# --- in the subprocess -----------------------------------------------------------------

def answer_all(model_path: str, questions: Sequence[Question], max_tokens: int) -> dict:
    import mlx_vlm
    from mlx_vlm.prompt_utils import apply_chat_template
    from mlx_vlm.utils import load_config

    model, processor = mlx_vlm.load(model_path)
    config = load_config(model_path)
    answers = []
    for q in questions:
        formatted = apply_chat_template(processor, config, mlxk_prompt(q.prompt, len(q.images)),
                                        num_images=len(q.images))
        out = mlx_vlm.generate(model, processor, formatted, list(q.images) or None, max_tokens=max_tokens,
                               temperature=0.0, verbose=False)
        answers.append({"prompt": q.prompt, "images": list(q.images), "formatted": formatted, "text": out.text,
                        "finish_reason": out.finish_reason, "generation_tokens": out.generation_tokens})
    return {"model_path": model_path, "max_tokens": max_tokens, "answers": answers}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.vision_reference",
                                     description="Greedy reference answers about images with mlx-vlm, as JSON.")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--question", action="append", required=True,
                        help='JSON: {"prompt": ..., "images": [absolute paths]} (repeat for more)')
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        questions = [Question(d["prompt"], tuple(d["images"])) for d in map(json.loads, args.question)]
    except (ValueError, KeyError, TypeError) as e:
        parser.error(f"--question must be JSON with prompt and images: {e}")
    missing = [i for q in questions for i in q.images if not Path(i).is_file()]
    if not (Path(args.model_path) / "config.json").is_file() or missing:
        print(f"vision_reference: no model at {args.model_path} or missing images {missing}", file=sys.stderr)
        return EXIT_ERROR
    return print_answers("vision_reference", args.model_path,
                         lambda: answer_all(args.model_path, questions, args.max_tokens))


if __name__ == "__main__":
    sys.exit(main())
