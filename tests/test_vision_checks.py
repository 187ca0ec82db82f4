"""The vision support code without a model: requests, image tables, checks, the reference's
command line and parsing, the builder's manifest entries."""

from __future__ import annotations

import base64
import io
import json

import pytest

from support import vision_checks as vc, vision_reference
from support.cli_runner import CliResult
from support.errors import HarnessError
from support.openai_http import Exchange

TABLE = ("<details>\n<summary>📸 Image Metadata (1 image)</summary>\n\n<!-- mlxk:filenames -->\n"
         "| Image | Filename | Original | Location | Date | Camera |\n|-------|----------|----------|----------|------|--------|\n"
         "| 1 | image_1349b0f0.jpeg | image_1349b0f0.png | - | - | - |\n\n</details>\n\n")


def test_image_payload_puts_data_urls_before_the_question():
    png = vc.png((255, 0, 0))
    payload = vc.image_payload("m", "What color?", [png, png], chunk=2, max_tokens=8)
    parts = payload["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == png
    assert (payload["chunk"], payload["temperature"], payload["max_tokens"]) == (2, 0, 8)
    assert "chunk" not in vc.image_payload("m", "Q", [png])


def test_png_is_a_real_square():
    from PIL import Image

    img = Image.open(io.BytesIO(vc.png((0, 0, 255), size=8)))
    assert (img.format, img.size, img.getpixel((3, 3))) == ("PNG", (8, 8), (0, 0, 255))


def test_model_text_takes_out_every_image_table_and_nothing_else():
    two = f"{TABLE}The square is red.\n\n{TABLE}The square is blue."
    assert vc.model_text(TABLE + "The square is red.") == "The square is red."
    assert vc.model_text(two) == "The square is red.\n\nThe square is blue."
    other = "<details>\n<summary>mine</summary>\nnot mlx-knife's\n</details>\n\nText."
    assert vc.model_text(other) == other  # a model's own <details> stays
    assert vc.image_table(other) is None and vc.image_table(TABLE + "x") is not None


def test_answers_given_image_by_image_are_read_in_order():
    two = f"{TABLE}The square is red.\n\n{TABLE}The square is blue."
    assert vc.texts_after_tables(two) == ["The square is red.", "The square is blue."]
    assert vc.texts_after_tables("The square is red.") == []
    goldens = (vc.VisionGolden("Q?", ("red.png",), "Red."), vc.VisionGolden("Q?", ("blue.png",), "Blue."),
               vc.VisionGolden("Other?", ("green.png",), "Green."))
    pair = vc.VisionGolden("Q?", ("blue.png", "red.png"), "", chunk=2)
    assert vc.answers_alone(goldens, pair) == ["Blue.", "Red."]
    with pytest.raises(HarnessError, match="green.png"):
        vc.answers_alone(goldens, vc.VisionGolden("Q?", ("red.png", "green.png"), ""))
    vc.check_answered_in_image_order(two, ["The square is red.", "The square is blue."], "answer")
    with pytest.raises(AssertionError, match=r"in the order the images were sent.*got \['The square is red."):
        vc.check_answered_in_image_order(two, ["The square is blue.", "The square is red."], "answer")


def test_check_text_alone_fails_on_the_table_only():
    vc.check_text_alone("The square is red.", "answer")
    with pytest.raises(AssertionError, match="table of image files"):
        vc.check_text_alone(TABLE + "The square is red.", "answer")


def test_bad_image_payloads():
    red = vc.png((255, 0, 0))
    url = lambda name: vc.bad_image_payload(name, "m", red)["messages"][0]["content"][0]["image_url"]["url"]
    assert base64.b64decode(url("bytes that are not an image").split(",", 1)[1]) == vc.NOT_AN_IMAGE
    assert url("an unsupported URL scheme").startswith("file://")
    assert base64.b64decode(url("an image to a text-only model").split(",", 1)[1]) == red
    with pytest.raises(HarnessError, match="does not know"):
        vc.bad_image_payload("a typo", "m", red)


def test_oversized_png_is_a_real_png_over_the_limit():
    data = vc.oversized_png()
    assert len(data) > vc.OVERSIZED_BYTES and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert vc.oversized_png() is data  # made once per process


def test_redacted_request_cuts_long_data_urls_only():
    payload = vc.image_payload("m", "Q", [vc.png((1, 2, 3))])
    cut = vc.redacted_request(payload, limit=30)
    assert cut["messages"][0]["content"][0]["image_url"]["url"].endswith("chars)")
    assert cut["messages"][0]["content"][1] == {"type": "text", "text": "Q"}
    assert payload["messages"][0]["content"][0]["image_url"]["url"].startswith("data:")  # the original is kept


def test_leaked_paths():
    assert vc.leaked_paths("failed: cannot identify image file '/tmp/tmpx_qa.png'") == ["/tmp/tmpx_qa.png"]
    assert vc.leaked_paths("Image size (21.3 MB) exceeds limit (20 MB)") == []


def _stream(texts: list[str], usage: dict | None = None) -> Exchange:
    ex = Exchange("POST", "u", request_json={"messages": []}, status=200, streamed=True)
    ex.chunk_texts = texts
    ex.events = [{"usage": usage, "choices": []}] if usage else []
    return ex


def test_streamed_in_pieces_and_usage():
    vc.check_streamed_in_pieces(_stream(["The", " square"]), "s")
    with pytest.raises(AssertionError, match="1 content chunk"):
        vc.check_streamed_in_pieces(_stream(["", "The square is red."]), "s")
    vc.check_reports_usage(_stream(["a"], {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}), "s")
    with pytest.raises(AssertionError, match="carries none"):
        vc.check_reports_usage(_stream(["a"]), "s")


def test_goldens_of_reads_the_manifest_entry_with_images():
    manifest = {"models": [{"id": "v", "goldens": [
        {"prompt": "Q?", "images": ["red.png"], "answer": "Red."},
        {"prompt": "Two?", "images": ["red.png", "blue.png"], "answer": "Both.", "chunk": 2},
        {"prompt": "Say hello.", "images": [], "answer": "Hello."}]}]}
    got = vc.goldens_of(manifest, "v")
    assert [(g.prompt, g.images, g.chunk) for g in got] == [("Q?", ("red.png",), None),
                                                           ("Two?", ("red.png", "blue.png"), 2)]
    assert vc.goldens_of(None, "v") == () and vc.goldens_of(manifest, "other") == ()


def test_reference_prompt_form_and_command_line(tmp_path):
    assert vision_reference.mlxk_prompt("Q?", 1) == "Q?"
    assert vision_reference.mlxk_prompt("Q?", 2) == "[Image 1]\n[Image 2]\n\nQ?"
    q = vision_reference.Question("Q?", ("/a/red.png",))
    argv = vision_reference.command(tmp_path, [q], 16)
    assert argv[1:3] == ("-m", "support.vision_reference")
    assert json.loads(argv[argv.index("--question") + 1]) == {"prompt": "Q?", "images": ["/a/red.png"]}


def _result(code: int, stdout: str) -> CliResult:
    return CliResult(("python", "-m", "support.vision_reference"), code, stdout, "", 1.0, 60.0, "reference")


def test_reference_parse():
    doc = {"answers": [{"prompt": "Q?", "images": ["/a/red.png"], "formatted": "<s>[INST][IMG]Q?[/INST]",
                        "text": "Red.", "finish_reason": "stop", "generation_tokens": 3}]}
    run = vision_reference.parse(_result(0, json.dumps(doc)))
    assert run.answers[0].text == "Red." and "Red." in run.describe()
    with pytest.raises(HarnessError, match="harness problem"):
        vision_reference.parse(_result(2, ""))
    with pytest.raises(HarnessError, match="no valid answer document"):
        vision_reference.parse(_result(0, "{}"))


def test_reference_main_refuses_a_missing_model(tmp_path, capsys):
    code = vision_reference.main(["--model-path", str(tmp_path), "--question", '{"prompt": "Q", "images": []}'])
    assert code == vision_reference.EXIT_ERROR and "no model" in capsys.readouterr().err


def test_builder_lists_vision_among_the_capabilities():
    from support.demo_portfolio import builder

    assert [kind for kind, _ in builder.capability_builders()] == ["embeddings", "vision", "audio"]


def test_image_flags():
    from pathlib import Path

    from support.targets import MlxKnife

    t = MlxKnife(("mlxk",), Path("/x"))
    assert t.image_flags(["/a.png", "/b.png"], 2) == ("--image", "/a.png", "/b.png", "--chunk", "2")
    assert t.image_flags(["/a.png"], None) == ("--image", "/a.png")
