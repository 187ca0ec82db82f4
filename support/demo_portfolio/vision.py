"""A tiny real vision-language model for the demo portfolio (mlx-vlm's `mistral3` architecture).

Mistral 3 / Pixtral layout: a Pixtral vision tower (patch conv, 2-D RoPE encoder), a patch
merger and projector, and a Mistral (Llama-style) language model. mlx-vlm 0.6.10 loads it with
its own numpy/PIL image processor (no torch, no torchvision), and mlx-lm loads its language
model for text-only prompts: the path `mlxk run` takes when no image is given. The builder
draws its images with PIL, trains the whole model with MLX from a fixed seed until greedy
decoding answers every golden exactly, then loads the saved files with mlx-vlm itself and
decodes every golden again through mlx-vlm's own prompt formatting and generation loop.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .families import Family
from .models import ORG

REPO_NAME = "vision-style"
QUANTIZE_BITS = 4
GROUP_SIZE = 32  # quantization group size (the language model is 64 wide)

IMAGE_SIZE = 32  # the processor's longest edge: every image is resized to fit
PATCH_SIZE = 8  # 4 x 4 patches, merged 2 x 2: four image tokens per image
MERGE_SIZE = 2
VISION_HIDDEN = 64
VISION_LAYERS = 1
VOCAB_SIZE = 384
SEED = 11
LEARNING_RATE = 3e-3
# The vision tower learns ten times slower: at the full rate its encoder blows one colour's
# direction up and the others collapse into one (green and blue tied, seeds 2, 3 and 5 of 12
# never converged); at a tenth, every seed of 1-12 converged in 30-100 steps.
VISION_LEARNING_RATE = LEARNING_RATE / 10
CHECK_EVERY = 10  # training steps between margin checks
MAX_STEPS = 400

MISTRAL3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST]' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ['image', 'image_url'] %}{{ '[IMG]' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '[/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

FAMILY = Family(
    name="mistral3-vision",
    mimics="Mistral 3 / Pixtral vision: [INST] ... [/INST], images as [IMG] rows, </s>",
    specials=("<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"),
    bos="<s>", eos="</s>", pad=None,
    chat_template=MISTRAL3_TEMPLATE,
    turn_end=("</s>",),
)

# Solid and two-colour squares, drawn by the builder (RGB).
COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@dataclass(frozen=True)
class VisionGolden:
    prompt: str
    images: tuple[str, ...]  # asset names, in the order they are attached
    answer: str


GOLDENS: tuple[VisionGolden, ...] = (
    VisionGolden("What color is this square?", ("red.png",), "The square is red."),
    VisionGolden("What color is this square?", ("green.png",), "The square is green."),
    VisionGolden("What color is this square?", ("blue.png",), "The square is blue."),
    VisionGolden("What colors are in this square?", ("red-blue.png",), "The left half is red, the right half is blue."),
    VisionGolden("What colors are these squares?", ("red.png", "blue.png"), "The first is red, the second is blue."),
    # mlx-knife sends a multi-image prompt one image per chunk by default (--chunk 1):
    VisionGolden("What colors are these squares?", ("red.png",), "The square is red."),
    VisionGolden("What colors are these squares?", ("blue.png",), "The square is blue."),
    VisionGolden("Say hello.", (), "Hello, I can see images."),
)


def draw_assets() -> dict[str, bytes]:
    """The golden images as PNG bytes (deterministic: same pixels, same bytes)."""
    from PIL import Image

    images = {f"{name}.png": Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), rgb) for name, rgb in COLORS.items()}
    split = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), COLORS["blue"])
    split.paste(Image.new("RGB", (IMAGE_SIZE // 2, IMAGE_SIZE), COLORS["red"]), (0, 0))
    images["red-blue.png"] = split
    out = {}
    for name, img in images.items():
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out[name] = buf.getvalue()
    return out


def mlxk_prompts(golden: VisionGolden) -> list[str]:
    """The prompt texts a golden reaches the model as: its own, and, for several images,
    the one mlx-knife 2.0.8 sends (it puts an `[Image i]` line per image of a chunk first)."""
    prompts = [golden.prompt]
    if len(golden.images) > 1:
        lines = "\n".join(f"[Image {i}]" for i in range(1, len(golden.images) + 1))
        prompts.append(f"{lines}\n\n{golden.prompt}")
    return prompts


def model_config(vocab_size: int, ids: dict[str, int]) -> dict:
    text = {
        "model_type": "mistral",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 512,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
    }
    vision = {
        "model_type": "pixtral",
        "hidden_size": VISION_HIDDEN,
        "num_hidden_layers": VISION_LAYERS,
        "intermediate_size": 2 * VISION_HIDDEN,
        "num_attention_heads": VISION_HIDDEN // 16,
        "head_dim": 16,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "num_channels": 3,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
    }
    return {
        "model_type": "mistral3",
        "architectures": ["Mistral3ForConditionalGeneration"],
        "text_config": text,
        "vision_config": vision,
        "image_token_index": ids["[IMG]"],
        "spatial_merge_size": MERGE_SIZE,
        "vision_feature_layer": -1,
        "multimodal_projector_bias": False,
        "projector_hidden_act": "gelu",
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "vocab_size": vocab_size,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }


def preprocessor_config() -> dict:
    return {
        "image_processor_type": "PixtralImageProcessor",
        "processor_class": "PixtralProcessor",
        "size": {"longest_edge": IMAGE_SIZE},
        "patch_size": {"height": PATCH_SIZE, "width": PATCH_SIZE},
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_convert_rgb": True,
        "resample": 3,
    }


def model_card(repo_id: str, quantize_bits: int | None) -> bytes:
    how = f"Its language model is quantized to {quantize_bits} bits by `mlx_vlm.convert`.\n" if quantize_bits else ""
    return (
        "---\nlibrary_name: mlx\ntags: [mlx, vision]\npipeline_tag: image-text-to-text\nlicense: mit\n---\n\n"
        f"# {repo_id}\n\nA tiny demo vision-language model built locally by mlx-e2e. It mimics {FAMILY.mimics}.\n"
        "mlx-vlm `mistral3`: a Pixtral vision tower, patch merger and a Mistral language model; it "
        f"names the colours of the squares the builder draws.\n{how}"
    ).encode()


def _new_model(config: dict):
    """An untrained mlx-vlm model for `config`, built the way `mlx_vlm.load` builds it."""
    import copy

    from mlx_vlm.utils import get_model_and_args, update_module_configs

    config = copy.deepcopy(config)
    arch, _ = get_model_and_args(config=config)
    args = arch.ModelConfig.from_dict(config)
    args = update_module_configs(args, arch, config, ["text", "vision", "perceiver", "projector", "audio"])
    return arch.Model(args)


@dataclass(frozen=True)
class _Case:
    golden: VisionGolden
    prompt: str  # the text the model sees (the golden's prompt, or mlx-knife's variant)
    formatted: str  # after mlx-vlm's chat template
    prompt_ids: list[int]
    target_ids: list[int]  # answer ids and the end token
    pixel_values: object  # mx.array (n_images, 3, H, W) or None
    image_sizes: list[tuple[int, int]]


def _cases(image_dir: Path, processor, config: dict, eos_id: int) -> list[_Case]:
    """Every golden in every prompt form, encoded exactly as mlx-vlm's generate encodes it."""
    from mlx_vlm.prompt_utils import apply_chat_template
    from mlx_vlm.utils import prepare_inputs

    tok = processor.tokenizer
    cases = []
    for g in GOLDENS:
        for prompt in mlxk_prompts(g):
            formatted = apply_chat_template(processor, config, prompt, num_images=len(g.images))
            paths = [str(image_dir / name) for name in g.images] or None
            inputs = prepare_inputs(processor, images=paths, prompts=formatted)
            sizes = [tuple(int(v) for v in s) for s in inputs["image_sizes"].tolist()] if paths else []
            answer = tok.encode(g.answer, add_special_tokens=False)
            cases.append(_Case(g, prompt, formatted, inputs["input_ids"][0].tolist(), answer + [eos_id],
                               inputs.get("pixel_values") if paths else None, sizes))
    return cases


class _Batch:
    """All cases teacher forced at once. Each distinct image goes through the vision tower once
    per step; its features are gathered into the [IMG] positions of every row that shows it."""

    def __init__(self, cases: list[_Case], vocab_size: int, image_token: int):
        import mlx.core as mx
        import numpy as np

        from .training import Example, _batch

        self.inputs, self.targets, self.mask, self.recent = _batch(
            [Example(c.prompt_ids, c.target_ids) for c in cases], vocab_size)
        names: list[str] = []
        pixels, sizes = [], []
        for c in cases:
            for i, name in enumerate(c.golden.images):
                if name not in names:
                    names.append(name)
                    pixels.append(c.pixel_values[i])
                    sizes.append(c.image_sizes[i])
        per_image = {s: (s[0] // (PATCH_SIZE * MERGE_SIZE)) * (s[1] // (PATCH_SIZE * MERGE_SIZE)) for s in sizes}
        starts = np.cumsum([0] + [per_image[s] for s in sizes])
        ids = np.array(self.inputs)
        index = np.zeros(ids.shape, dtype=np.int32)
        for row, c in enumerate(cases):
            rows = [np.arange(starts[names.index(n)], starts[names.index(n) + 1]) for n in c.golden.images]
            positions = np.nonzero(ids[row] == image_token)[0]
            wanted = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
            if len(positions) != len(wanted):
                raise RuntimeError(f"{REPO_NAME}: {c.prompt!r} has {len(positions)} image tokens, "
                                   f"its images give {len(wanted)} features")
            index[row, positions] = wanted
        self.pixels = mx.stack(pixels)
        self.sizes = sizes
        self.is_image = mx.array(ids == image_token)
        self.feature_index = mx.array(index)
        # Only the answer positions are scored: the language model head runs on those alone.
        live = np.flatnonzero(np.array(self.mask).reshape(-1) > 0)
        self.live = mx.array(live)
        self.live_targets = self.targets.reshape(-1)[self.live]
        self.live_recent = self.recent.reshape(-1, vocab_size)[self.live]

    def logits(self, model):
        """mlx-vlm's mistral3 forward at the answer positions, each image's features computed once."""
        import mlx.core as mx

        *_, hidden = model.vision_tower(self.pixels.transpose(0, 2, 3, 1), output_hidden_states=True,
                                        image_sizes=self.sizes)
        features = model.multi_modal_projector(hidden[model.vision_feature_layer].squeeze(0), self.sizes)
        lm = model.language_model
        tokens = lm.model.embed_tokens(self.inputs)
        embeds = mx.where(self.is_image[..., None], features[self.feature_index], tokens)
        out = lm.model(self.inputs, inputs_embeds=embeds)
        out = out.reshape(-1, out.shape[-1])[self.live]
        return lm.model.embed_tokens.as_linear(out) if lm.config.tie_word_embeddings else lm.lm_head(out)


def train(cases: list[_Case], config: dict, seed: int) -> tuple[object, int]:
    """Train from `seed` until every golden token wins by MIN_MARGIN (also under the SUT's
    repetition penalty), teacher forced on all cases at once; returns (model, steps)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from .training import MIN_MARGIN, _margins, _penalize, optimise

    mx.random.seed(seed)
    model = _new_model(config)
    opt = optim.MultiOptimizer([optim.Adam(learning_rate=VISION_LEARNING_RATE), optim.Adam(learning_rate=LEARNING_RATE)],
                               [lambda path, _: path.startswith("vision_tower")])
    batch = _Batch(cases, config["text_config"]["vocab_size"], config["image_token_index"])

    def loss_fn(m):
        logits = batch.logits(m)
        ce = nn.losses.cross_entropy(logits, batch.live_targets)
        short = nn.relu(2 * MIN_MARGIN - _margins(_penalize(logits, batch.live_recent), batch.live_targets))
        return (ce + short).mean()

    def worst() -> float:
        logits = batch.logits(model).astype(mx.float32)
        t, r = batch.live_targets, batch.live_recent
        return mx.min(mx.minimum(_margins(logits, t), _margins(_penalize(logits, r), t))).item()

    steps = 0
    while steps < MAX_STEPS:
        optimise(model, loss_fn, opt, CHECK_EVERY)
        steps += CHECK_EVERY
        if worst() >= MIN_MARGIN:
            return model, steps
    raise RuntimeError(f"{REPO_NAME}: training did not converge within {MAX_STEPS} steps")


def _corpus() -> list[str]:
    texts = [p for g in GOLDENS for p in mlxk_prompts(g)] + [g.answer for g in GOLDENS]
    return texts * 4


def verify(model_dir: Path, image_dir: Path, cases: list[_Case]) -> None:
    """Load the saved files with mlx-vlm and greedy-decode every case through mlx-vlm's own
    chat template and generate(), with and without the SUT's default repetition penalty
    (mlxk run: 1.1; mlxk serve: none); the text-only cases also through mlx-lm (`mlxk run`
    without an image). Raises on the first answer that differs."""
    import mlx_vlm
    from mlx_vlm.prompt_utils import apply_chat_template
    from mlx_vlm.utils import load_config

    from .training import Example, REPETITION_PENALTY, greedy_answers

    model, processor = mlx_vlm.load(str(model_dir))
    config = load_config(str(model_dir))
    for c in cases:
        formatted = apply_chat_template(processor, config, c.prompt, num_images=len(c.golden.images))
        images = [str(image_dir / n) for n in c.golden.images] or None
        for penalty in (None, REPETITION_PENALTY):
            out = mlx_vlm.generate(model, processor, formatted, images, max_tokens=len(c.target_ids),
                                   temperature=0.0, repetition_penalty=penalty, verbose=False)
            got = (out.text, out.finish_reason, out.generation_tokens)
            if got != (c.golden.answer, "stop", len(c.target_ids)):
                raise RuntimeError(
                    f"{REPO_NAME}: mlx-vlm answers {c.prompt!r} with images {list(c.golden.images)} "
                    f"(repetition penalty {penalty}) with {out.text!r}, finish {out.finish_reason!r} after "
                    f"{out.generation_tokens} tokens; expected {c.golden.answer!r} then </s> "
                    f"({len(c.target_ids)} tokens). Prompt as formatted: {formatted!r}")
    text_only = [c for c in cases if not c.golden.images]
    decoded = greedy_answers(model_dir, [Example(c.prompt_ids, c.target_ids) for c in text_only])
    for c, got in zip(text_only, decoded):
        if got != c.target_ids:
            raise RuntimeError(f"{REPO_NAME}: mlx-lm answers {c.prompt!r} with "
                               f"{processor.tokenizer.decode(got)!r}, expected {c.golden.answer!r} then </s>")


def quantize(model_dir: Path, out: Path, bits: int) -> None:
    """What a user runs to quantize an mlx-vlm model: `mlx_vlm.convert --quantize` (it
    quantizes the language model and keeps the vision tower and projector in float)."""
    import contextlib

    from mlx_vlm.convert import convert

    with contextlib.redirect_stdout(io.StringIO()):  # its [INFO] lines
        convert(str(model_dir), str(out), quantize=True, q_bits=bits, q_group_size=GROUP_SIZE)


def build_vision(work: Path, seed: int = SEED, log: Callable[[str], None] = print
                 ) -> tuple[dict[str, dict[str, bytes]], dict[str, bytes], dict[str, dict]]:
    """Build the demo vision model and its 4-bit variant in `work` (scratch space).

    Returns (repos, assets, facts): repo id -> files for `hf_cache.write_repo`, the golden
    images (name -> PNG bytes) for the demo root, and repo id -> manifest facts. Raises when
    training does not converge or mlx-vlm / mlx-lm do not answer a golden exactly.
    """
    started = time.monotonic()
    from . import training
    from .tokenizer import token_id, train_tokenizer

    model_dir, image_dir = work / "model", work / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    assets = draw_assets()
    for name, data in assets.items():
        (image_dir / name).write_bytes(data)

    train_tokenizer(FAMILY, _corpus(), VOCAB_SIZE, False, model_dir)
    ids = {t: token_id(model_dir / "tokenizer.json", t) for t in FAMILY.specials}
    config = model_config(VOCAB_SIZE, ids)
    (model_dir / "config.json").write_text(json.dumps(config, indent=2))
    (model_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=2))

    import mlx_vlm.models.mistral3  # noqa: F401  (registers mlx-vlm's torch-free Mistral3Processor)
    from mlx_vlm.utils import load_processor

    processor = load_processor(model_dir, add_detokenizer=False)
    cases = _cases(image_dir, processor, config, ids[FAMILY.eos])
    prepared = time.monotonic()
    model, steps = train(cases, config, seed)
    training.save(model, config, None, model_dir)
    trained = time.monotonic()
    verify(model_dir, image_dir, cases)
    quantized_dir = work / f"model-{QUANTIZE_BITS}bit"
    quantize(model_dir, quantized_dir, QUANTIZE_BITS)
    verify(quantized_dir, image_dir, cases)

    base_id = f"{ORG}/{REPO_NAME}"
    common = {
        "family": FAMILY.name,
        "mimics": FAMILY.mimics,
        "architecture": "mlx-vlm mistral3 (Pixtral vision tower, Mistral language model)",
        "expect": "vision",
        "end_tokens": list(FAMILY.turn_end),
        "special_tokens": list(FAMILY.specials),
        "image_size": IMAGE_SIZE,
        "image_tokens_per_image": (IMAGE_SIZE // (PATCH_SIZE * MERGE_SIZE)) ** 2,
        "goldens": [{"prompt": g.prompt, "images": list(g.images), "answer": g.answer} for g in GOLDENS],
        "training_steps": steps,
    }
    repos, facts = {}, {}
    for repo_id, folder, bits in ((base_id, model_dir, None),
                                  (f"{base_id}-{QUANTIZE_BITS}bit", quantized_dir, QUANTIZE_BITS)):
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        files["README.md"] = model_card(repo_id, bits)
        repos[repo_id] = files
        facts[repo_id] = {"id": repo_id, **common, "quantize_bits": bits,
                          "notes": f"quantized from {base_id} with mlx_vlm.convert" if bits else ""}
    seconds = round(time.monotonic() - started, 1)
    for entry in facts.values():
        entry["seconds"] = seconds  # one build makes both
    log(f"{base_id} (+{QUANTIZE_BITS}-bit): {steps} training steps; setup {prepared - started:.1f} s, training "
        f"{trained - prepared:.1f} s, mlx-vlm/mlx-lm checks {time.monotonic() - trained:.1f} s")
    return repos, assets, facts
