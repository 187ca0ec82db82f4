"""Questions about images: the requests a vision model is asked, the images they carry, and what
is checked in the answers (no model here; the driver sends, the `Then` steps judge).

An image reaches the server the OpenAI way: a `data:` URL (base64) in an `image_url` part of the
user message, text part after the images. mlx-knife 2.0.8 also takes a request field `chunk`
(images per model call; default 1: every image is asked about on its own) and `mlxk run` takes
`--image PATH ...` and `--chunk N`.

mlx-knife writes, ahead of the model's answer, a table mapping its hashed image names to the
files (a `<details>` block with an `<!-- mlxk:filenames -->` marker), into `message.content` and
onto stdout. The spec says the answer is the model's text only: `image_table` finds that table
so that a check can name it, never so that a check strips it.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import HarnessError
from .expect import clipped, that
from .openai_http import CHAT, Client, Exchange, chat_payload

# The table mlx-knife 2.0.8 puts before an image answer.
IMAGE_TABLE = re.compile(r"<details>\s*<summary>.*?</details>\s*", re.DOTALL)
IMAGE_TABLE_MARKER = "<!-- mlxk:filenames -->"
# End and template tokens of vision chat templates that must never show in an answer.
VISION_FORBIDDEN = ("[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]", "<image>", "<|image|>",
                    "<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<start_of_image>", "<end_of_image>")
OVERSIZED_BYTES = 21 * 1024 * 1024  # over mlx-knife's 20 MB per image, under its 50 MB per request
NOT_AN_IMAGE = b"This is plain text, not the bytes of an image.\n" * 4
MISSING_IMAGE = "mlx-e2e-no-such-image.png"  # a file name no folder holds (made absolute by the driver)
MAX_TOKENS_AFTER_BAD = 16
# A user's cache has no demo images: the neutral question is about a square the suite draws.
NEUTRAL_COLORS = {"red.png": (255, 0, 0), "blue.png": (0, 0, 255)}


@dataclass(frozen=True)
class VisionGolden:
    """A question about images and its exact answer (the demo manifest's goldens with images)."""

    prompt: str
    images: tuple[str, ...]  # asset names, in order
    answer: str
    chunk: int | None = None  # images per model call the question needs (None: mlx-knife's default)

    def describe(self) -> str:
        return f"{self.prompt!r} about {', '.join(self.images)}" + (f" (chunk {self.chunk})" if self.chunk else "")


NEUTRAL_QUESTION = VisionGolden("What color is this square?", ("red.png",), "")


def goldens_of(manifest: dict | None, model_id: str) -> tuple[VisionGolden, ...]:
    """The model's questions about images; per-chunk goldens (one image of a multi-image
    question alone) are kept: mlx-knife's default chunking asks exactly those."""
    entry = next((m for m in (manifest or {}).get("models", []) if m["id"] == model_id), None)
    return tuple(VisionGolden(g["prompt"], tuple(g["images"]), g["answer"], g.get("chunk"))
                 for g in (entry or {}).get("goldens", ()) if g.get("images"))


def png(rgb: tuple[int, int, int], size: int = 32) -> bytes:
    """A solid square as PNG bytes (for a user's portfolio, which has no demo assets)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="PNG")
    return buf.getvalue()


@lru_cache(maxsize=1)
def oversized_png() -> bytes:
    """A real PNG over mlx-knife's per-image limit: uncompressed noise, deterministic."""
    import numpy as np
    from PIL import Image

    side = int((OVERSIZED_BYTES / 3) ** 0.5) + 16
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=0)
    data = buf.getvalue()
    if len(data) <= OVERSIZED_BYTES:
        raise HarnessError(f"the oversized PNG has only {len(data)} bytes, wanted over {OVERSIZED_BYTES}")
    return data


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_parts(urls: list[str], prompt: str) -> list[dict]:
    """The user content: one image_url part per image, then the question."""
    return [*({"type": "image_url", "image_url": {"url": u}} for u in urls), {"type": "text", "text": prompt}]


def image_payload(model: str, prompt: str, images: list[bytes], chunk: int | None = None, **sampling) -> dict:
    """A chat request with `images` (PNG bytes) before the question; temperature 0 unless given."""
    payload = chat_payload(model, prompt, **sampling)
    payload["messages"][0]["content"] = image_parts([data_url(i) for i in images], prompt)
    if chunk is not None:
        payload["chunk"] = chunk
    return payload


def bad_image_payload(name: str, model: str, good_image: bytes) -> dict:
    """The bad image request called `name` (the words of the feature's table)."""
    prompt = "What color is this square?"
    urls = {
        "bytes that are not an image": data_url(NOT_AN_IMAGE),
        "an unsupported URL scheme": "file:///etc/hostname",
        "an image over the size limit": None,
        "an image to a text-only model": data_url(good_image),
    }
    if name not in urls:
        raise HarnessError(f"the spec names a bad image request the suite does not know: {name!r}; "
                           f"known: {', '.join(urls)}")
    if name == "an image over the size limit":
        return image_payload(model, prompt, [oversized_png()], max_tokens=MAX_TOKENS_AFTER_BAD)
    payload = chat_payload(model, prompt, max_tokens=MAX_TOKENS_AFTER_BAD)
    payload["messages"][0]["content"] = image_parts([urls[name]], prompt)
    return payload


def send_bad_image(client: Client, name: str, model: str, good_image: bytes) -> Exchange:
    return client.post_json(CHAT, bad_image_payload(name, model, good_image))


def image_table(text: str) -> str | None:
    """mlx-knife's image table in `text` (None when there is none)."""
    m = IMAGE_TABLE.search(text)
    return m[0] if m and IMAGE_TABLE_MARKER in m[0] else None


def leaked_paths(text: str) -> list[str]:
    """Absolute file paths of the server's machine shown to a client (temp files, home folders)."""
    return sorted(set(re.findall(r"(?:/tmp|/var/folders|/private/var|/home|/Users)/[^\s'\"]+", text)))


def redacted_request(payload: dict, limit: int = 80) -> dict:
    """The request as evidence without megabytes of base64: long data URLs are cut."""
    def cut(v):
        if isinstance(v, str) and v.startswith("data:") and len(v) > limit:
            return f"{v[:limit]}... ({len(v)} chars)"
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        if isinstance(v, list):
            return [cut(x) for x in v]
        return v
    return cut(payload)


def asset_bytes(root: Path, names: tuple[str, ...]) -> list[bytes]:
    """The demo's golden images (HarnessError when the build left one out)."""
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise HarnessError(f"demo assets missing from {root}: {missing} (rebuild: python -m support.demo_portfolio build --force)")
    return [(root / n).read_bytes() for n in names]


# --- checks of answers about images --------------------------------------------------------

def model_text(text: str) -> str:
    """The answer with mlx-knife's image tables taken out (each, with the blank line after it):
    what the model said. Only for the checks that compare the model's words; the check that
    the answer is the model's text alone is `check_text_alone`."""
    return IMAGE_TABLE.sub(lambda m: "" if IMAGE_TABLE_MARKER in m[0] else m[0], text)


def texts_after_tables(text: str) -> list[str]:
    """The model's texts of an answer given image by image (chunks): the text after each of
    mlx-knife's image tables, in order (stripped)."""
    tables = [m for m in IMAGE_TABLE.finditer(text) if IMAGE_TABLE_MARKER in m[0]]
    ends = [m.start() for m in tables[1:]] + [len(text)]
    return [text[m.end():end].strip() for m, end in zip(tables, ends)]


def answers_alone(goldens: tuple[VisionGolden, ...], several: VisionGolden) -> list[str]:
    """The golden answers of `several`'s question about each of its images alone, in its image order."""
    alone = {g.images[0]: g.answer for g in goldens if g.prompt == several.prompt and len(g.images) == 1}
    missing = [n for n in several.images if n not in alone]
    if missing:
        raise HarnessError(f"the demo has no golden of {several.prompt!r} about {missing} alone")
    return [alone[n] for n in several.images]


def check_answered_in_image_order(text: str, expected: list[str], what: str, evidence: str = "") -> None:
    """An answer given image by image holds one text per image, each the golden answer about that
    image alone, in the order the images were sent."""
    got = texts_after_tables(text)
    that(got == expected, f"{what}: expected one answer per image, in the order the images were sent: "
                          f"{expected!r}; got {got!r} from {clipped(text)}", evidence)


def check_text_alone(text: str, what: str, evidence: str = "") -> None:
    """A failed check when the answer holds mlx-knife's image table (hashed file names)."""
    table = image_table(text)
    that(table is None, f"{what}: expected the model's text alone; the answer starts with a table of image "
                        f"files ({len(table or '')} chars): {clipped(text)}", evidence)


def check_reports_usage(ex: Exchange, what: str) -> None:
    """Usage as for chat: in the batch body, or (asked with stream_options) in a final stream chunk."""
    if ex.streamed:
        found = [e["usage"] for e in ex.events if isinstance(e, dict) and e.get("usage")]
        that(bool(found), f"{what}: the stream asked for usage (stream_options.include_usage) and carries none",
             ex.describe())
        usage = found[-1]
    else:
        usage = (ex.json or {}).get("usage") if isinstance(ex.json, dict) else None
        that(isinstance(usage, dict), f"{what}: no usage in the answer", ex.describe())
    that(usage.get("completion_tokens", 0) > 0 and usage.get("prompt_tokens", 0) > 0,
         f"{what}: usage counts no prompt or completion tokens: {usage}", ex.describe())


def check_streamed_in_pieces(ex: Exchange, what: str) -> None:
    """A stream is streamed: the answer arrives in more than one content chunk."""
    pieces = [t for t in ex.chunk_texts if t]
    that(len(pieces) > 1, f"{what}: the whole answer came in {len(pieces)} content chunk(s); expected it "
                          f"token by token (a stream that sends everything at the end is a batch answer late)",
         ex.describe())


def check_no_paths(text: str, what: str, evidence: str = "") -> None:
    paths = leaked_paths(text)
    that(not paths, f"{what} shows file paths of the machine {paths}: {clipped(text)}", evidence)
