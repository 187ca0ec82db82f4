"""The reference decoder: a plain mlx-lm greedy decode that the parity feature compares the SUT with.

It must reproduce the demo models' golden answers (they are trained to answer them at
temperature 0), keep a non-eos end token as text (what the model produced), stop at the token
limit, never write into the cache, and fail on a bad model with one clear line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import reference_decoder
from support.cache_manifest import compare, take
from support.demo_portfolio import load_manifest
from support.errors import HarnessError, SuiteError

TIMEOUT = 120.0


def _entry(root: Path, model_id: str) -> dict:
    return next(m for m in load_manifest(root)["models"] if m["id"] == model_id)


def _decode(root: Path, model_id: str, prompts: list[str], max_tokens: int = 64) -> reference_decoder.ReferenceRun:
    path = reference_decoder.snapshot_path(model_id, root)
    return reference_decoder.parse(reference_decoder.run(path, prompts, max_tokens, TIMEOUT))


def test_reproduces_the_golden_answers_of_a_demo_model(demo_root: Path) -> None:
    hub = demo_root / "hub"
    before = take(hub)
    goldens = _entry(demo_root, "mlx-e2e-demo/qwen-style")["goldens"]
    run = _decode(demo_root, "mlx-e2e-demo/qwen-style", [g["prompt"] for g in goldens])
    for golden in goldens:
        answer = run.answer_for(golden["prompt"])
        assert answer.text == golden["answer"], run.describe(golden["prompt"])
        assert answer.finish_reason == "stop" and answer.eos_id is not None
        assert answer.chat_prompt.startswith("<|im_start|>user\n" + golden["prompt"])
        assert answer.chat_prompt.endswith("<|im_start|>assistant\n")
    assert not compare(before, take(hub), root=hub), "the reference decoder wrote into the cache"


def test_a_non_eos_end_token_stays_in_the_text(demo_root: Path) -> None:
    """Phi-3 style: the turn ends with <|end|> (not an eos id there), then the eos <|endoftext|>."""
    golden = _entry(demo_root, "mlx-e2e-demo/phi3-style")["goldens"][0]
    run = _decode(demo_root, "mlx-e2e-demo/phi3-style", [golden["prompt"]])
    answer = run.answer_for(golden["prompt"])
    assert answer.text == golden["answer"] + "<|end|>", run.describe()
    assert answer.finish_reason == "stop"
    assert json.loads(run.result.stdout)["eos_token_ids"] == [answer.eos_id]


def test_stops_at_the_token_limit(demo_root: Path) -> None:
    longest = max(_entry(demo_root, "mlx-e2e-demo/longform-style")["goldens"], key=lambda g: len(g["answer"]))
    run = _decode(demo_root, "mlx-e2e-demo/longform-style", [longest["prompt"]], max_tokens=5)
    answer = run.answer_for(longest["prompt"])
    assert answer.finish_reason == "length" and answer.eos_id is None and len(answer.token_ids) == 5
    assert longest["answer"].startswith(answer.text) and answer.text != longest["answer"]


def test_a_bad_model_path_ends_with_a_clear_error_and_exit_2(tmp_path: Path) -> None:
    result = reference_decoder.run(tmp_path / "no-model-here", ["Say hello."], 8, TIMEOUT)
    assert result.returncode == reference_decoder.EXIT_ERROR
    assert result.stdout == ""
    assert f"reference_decoder: no model at {tmp_path / 'no-model-here'}" in result.stderr
    with pytest.raises(HarnessError, match=r"(?s)the reference decoder failed.*no-model-here"):
        reference_decoder.parse(result)


@pytest.mark.live  # the decoder subprocess imports mlx-lm
def test_a_model_that_cannot_load_ends_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    result = reference_decoder.run(tmp_path, ["Say hello."], 8, TIMEOUT)
    assert result.returncode == reference_decoder.EXIT_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reference_decoder: cannot decode with the model at {tmp_path}")


def test_a_model_missing_from_the_cache_is_one_line(demo_root: Path) -> None:
    with pytest.raises(SuiteError, match=r"^reference decoder: mlx-e2e-demo/no-such-model has no complete snapshot"):
        reference_decoder.snapshot_path("mlx-e2e-demo/no-such-model", demo_root)
