"""The demo vision model: built into a temporary cache, listed as vision by the SUT, and
answering every golden through `mlxk run --image` exactly.

The build itself already decodes every golden with mlx-vlm and mlx-lm (it raises otherwise);
these tests ask the SUT's real command line, the way a user does.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from support.cli_runner import run_cli
from support.demo_portfolio import hf_cache
from support.demo_portfolio.models import ORG
from support.demo_portfolio.vision import FAMILY, GOLDENS, IMAGE_SIZE, QUANTIZE_BITS, REPO_NAME, build_vision

pytestmark = pytest.mark.live  # builds the vision models and runs the SUT's command line

MODEL_ID = f"{ORG}/{REPO_NAME}"
QUANTIZED_ID = f"{MODEL_ID}-{QUANTIZE_BITS}bit"
RUN_TIMEOUT = 120.0
MLXK = (str(Path(sys.executable).parent / "mlxk"),)
# mlx-knife 2.0.8 prints, before the answer, a table mapping each image to its file.
MAPPING = re.compile(r"<details>\n<summary>[^\n]*</summary>\n\n<!-- mlxk:filenames -->\n(.*?)\n</details>\n\n",
                     re.DOTALL)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(HF cache root, image folder, facts by repo id): one build for the module (~25 s cold)."""
    base = tmp_path_factory.mktemp("vision")
    repos, assets, facts = build_vision(base / "work", log=lambda _: None)
    assert sorted(repos) == sorted(facts) == [MODEL_ID, QUANTIZED_ID]
    root = base / "cache"
    hf_cache.claim(root)
    for repo_id, files in repos.items():
        hf_cache.write_repo(root, repo_id, files)
    images = base / "images"
    images.mkdir()
    for name, data in assets.items():
        (images / name).write_bytes(data)
    return root, images, facts


def sections(stdout: str) -> list[tuple[str, str]]:
    """(mapping table, answer) per chunk of a `mlxk run --image` output, in order."""
    found = []
    pos = 0
    while (m := MAPPING.match(stdout, pos)) is not None:
        end = stdout.find("<details>", m.end())
        end = len(stdout) if end < 0 else end
        found.append((m[1], stdout[m.end():end].rstrip("\n")))
        pos = end
    assert pos == len(stdout), f"unparsed output from offset {pos}: {stdout[pos:]!r}"
    return found


def test_template_renders_string_and_list_content_alike() -> None:
    """mlx-lm (`mlxk run` without an image) sends string content, mlx-vlm a list of parts."""
    from jinja2 import Template

    from support.demo_portfolio.vision import MISTRAL3_TEMPLATE

    def render(messages):
        return Template(MISTRAL3_TEMPLATE).render(messages=messages, bos_token="<s>", eos_token="</s>")

    text = [{"role": "user", "content": "Say hello."}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]
    assert render(text) == render(parts) == "<s>[INST]Say hello.[/INST]"
    images = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Q?"}]},
              {"role": "assistant", "content": "A."}]
    assert render(images) == "<s>[INST][IMG][IMG]Q?[/INST]A.</s>"


def test_mlxk_prompt_forms() -> None:
    from support.demo_portfolio.vision import mlxk_prompts

    two = next(g for g in GOLDENS if len(g.images) == 2)
    assert mlxk_prompts(two) == [two.prompt, f"[Image 1]\n[Image 2]\n\n{two.prompt}"]
    assert all(mlxk_prompts(g) == [g.prompt] for g in GOLDENS if len(g.images) < 2)


def test_assets_are_deterministic() -> None:
    from support.demo_portfolio.vision import draw_assets

    assert draw_assets() == draw_assets()


def test_facts_and_assets(built: tuple[Path, Path, dict]) -> None:
    from PIL import Image

    _, images, facts = built
    for repo_id, entry in facts.items():
        assert entry["id"] == repo_id
        assert entry["goldens"] == [{"prompt": g.prompt, "images": list(g.images), "answer": g.answer} for g in GOLDENS]
        assert entry["end_tokens"] == list(FAMILY.turn_end) and entry["training_steps"] > 0
    assert (facts[MODEL_ID]["quantize_bits"], facts[QUANTIZED_ID]["quantize_bits"]) == (None, QUANTIZE_BITS)
    pixels = {}
    for name in {n for g in GOLDENS for n in g.images}:
        img = Image.open(io.BytesIO((images / name).read_bytes()))
        assert (img.format, img.size) == ("PNG", (IMAGE_SIZE, IMAGE_SIZE)), name
        pixels[name] = img.convert("RGB").tobytes()
    assert len(set(pixels.values())) == len(pixels), "two golden images have the same pixels"
    # The model must read the image: one question, different images, different answers.
    by_prompt: dict[tuple[str, int], set[str]] = {}
    for g in GOLDENS:
        by_prompt.setdefault((g.prompt, len(g.images)), set()).add(g.answer)
    assert max(len(a) for a in by_prompt.values()) >= 3, by_prompt


def test_list_and_show_report_vision(built: tuple[Path, Path, dict]) -> None:
    root, _, _ = built
    listed = run_cli(MLXK, ["list", "--json"], root, RUN_TIMEOUT)
    assert listed.returncode == 0, listed.describe()
    models = {m["name"]: m for m in json.loads(listed.stdout)["data"]["models"]}
    assert sorted(models) == [MODEL_ID, QUANTIZED_ID], listed.describe()
    for model_id, got in models.items():
        seen = {k: got.get(k) for k in ("framework", "health", "runtime_compatible", "model_type", "capabilities")}
        where = f"{model_id}: mlxk list --json says {seen}"
        assert (got["framework"], got["health"], got["runtime_compatible"]) == ("MLX", "healthy", True), where
        assert got["model_type"] == "chat" and {"chat", "vision"} <= set(got["capabilities"]), where

        shown = run_cli(MLXK, ["show", model_id, "--json"], root, RUN_TIMEOUT)
        assert shown.returncode == 0, shown.describe()
        data = json.loads(shown.stdout)["data"]
        assert "vision" in data["model"]["capabilities"], shown.describe()
        assert data["metadata"]["model_type"] == "mistral3", shown.describe()


def run_cases() -> list:
    """Every golden on the float model; on the 4-bit one, one golden of each prompt shape
    (the build decodes all of them on both through mlx-vlm already)."""
    shapes = {}
    for g in GOLDENS:
        shapes.setdefault((g.prompt, len(g.images)), g)
    cases = [(MODEL_ID, g) for g in GOLDENS] + [(QUANTIZED_ID, g) for g in shapes.values()]
    return [pytest.param(m, g, id=f"{m}:{g.prompt}|{'+'.join(g.images) or 'text'}") for m, g in cases]


@pytest.mark.parametrize(("model_id", "golden"), run_cases())
def test_run_prints_golden_answer(model_id: str, golden, built: tuple[Path, Path, dict]) -> None:
    root, images, _ = built
    args = ["run", model_id, "--prompt", golden.prompt, "--temperature", "0"]
    if golden.images:
        # one chunk for all images: mlx-knife's default (--chunk 1) asks about each image alone
        args += ["--image", *(str(images / n) for n in golden.images), "--chunk", str(len(golden.images))]
    result = run_cli(MLXK, args, root, RUN_TIMEOUT)
    assert result.returncode == 0, result.describe()
    if not golden.images:
        assert result.stdout == golden.answer + "\n", (
            f"expected stdout: {golden.answer + chr(10)!r}\nactual stdout:   {result.stdout!r}\n{result.describe()}")
        return
    found = sections(result.stdout.rstrip("\n") + "\n")
    assert [a for _, a in found] == [golden.answer], f"expected the answer {golden.answer!r}\n{result.describe()}"
    table = found[0][0]
    for name in golden.images:
        assert f"| {name} |" in table, f"{name} missing from the image table {table!r}"


def test_run_default_chunk_answers_each_image_alone(built: tuple[Path, Path, dict]) -> None:
    """Without --chunk, mlx-knife 2.0.8 sends each image with the whole prompt on its own."""
    root, images, _ = built
    pair = next(g for g in GOLDENS if len(g.images) == 2)
    alone = {g.images[0]: g.answer for g in GOLDENS if g.prompt == pair.prompt and len(g.images) == 1}
    assert set(alone) == set(pair.images), "every image of the two-image golden needs a one-image golden"
    result = run_cli(MLXK, ["run", MODEL_ID, "--prompt", pair.prompt, "--temperature", "0",
                            "--image", *(str(images / n) for n in pair.images)], root, RUN_TIMEOUT)
    assert result.returncode == 0, result.describe()
    found = sections(result.stdout.rstrip("\n") + "\n")
    assert [a for _, a in found] == [alone[n] for n in pair.images], result.describe()
