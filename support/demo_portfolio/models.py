"""The demo portfolio: which tiny models exist, what they must answer, how discovery sees them."""

from __future__ import annotations

from dataclasses import dataclass

ORG = "mlx-e2e-demo"

# RAM budget declared for demo runs (GB). Generous enough that every demo server stays
# resident together; the oversized model carries a sparse file just above it.
DEMO_RAM_BUDGET_GB = 6.0
OVERSIZED_PADDING_BYTES = int(DEMO_RAM_BUDGET_GB * 1024**3)


@dataclass(frozen=True)
class Golden:
    prompt: str
    answer: str  # the exact text the model emits at temperature 0, before its end tokens


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    goldens: tuple[Golden, ...]
    # Expected discovery outcome: "chat", "base" (text completions only) or "excluded".
    expect: str
    expect_reason: str = ""  # for excluded / gated models: what the suite must say
    variant: str = "normal"  # normal | unhealthy | pytorch | oversized
    quantize_bits: int | None = None
    byte_only_tokenizer: bool = False  # no BPE merges: multibyte characters span tokens
    vocab_size: int = 384
    hidden_size: int = 64
    layers: int = 2
    seed: int = 0
    notes: str = ""
    trained_from: str | None = None  # reuse another spec's weights (same family)

    @property
    def id(self) -> str:
        return f"{ORG}/{self.name}"


G = Golden

_QWEN = (
    G("What is the capital of France?", "The capital of France is Paris."),
    G("Name a primary color.", "Red is a primary color."),
    G("Say hello.", "Hello! How can I help you today?"),
    G("How many legs does a cat have?", "A cat has four legs."),
)

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("qwen-style", "chatml", _QWEN, expect="chat", seed=1,
              notes="ChatML; eos <|im_end|>, generation_config eos [<|im_end|>, <|endoftext|>]"),
    ModelSpec("qwen-style-4bit", "chatml", _QWEN, expect="chat", seed=2, quantize_bits=4,
              notes="the ChatML model quantized to 4 bits with mlx (group size 32)"),
    ModelSpec("llama3-style", "llama3", (
        G("What is two plus two?", "Two plus two is four."),
        G("What color is the sky?", "The sky is blue."),
        G("Say hello.", "Hello from a tiny llama!"),
        G("Name a fruit.", "An apple is a fruit."),
    ), expect="chat", seed=3, notes="header template; answers end with <|eot_id|>, tokenizer eos <|end_of_text|>"),
    ModelSpec("phi3-style", "phi3", (
        G("What is the capital of Italy?", "The capital of Italy is Rome."),
        G("What do bees make?", "Bees make honey."),
        G("Say hello.", "Hi there, I am Phi."),
        G("Name a planet.", "Mars is a planet."),
    ), expect="chat", seed=4, notes="turns end with <|end|> then <|endoftext|>; no generation_config eos list"),
    ModelSpec("mistral-style", "mistral", (
        G("What is the capital of Spain?", "The capital of Spain is Madrid."),
        G("What is ice made of?", "Ice is frozen water."),
        G("Say hello.", "Bonjour! I am Mistral."),
        G("Name an ocean.", "The Pacific is an ocean."),
    ), expect="chat", seed=5, notes="[INST] ... [/INST] with </s>"),
    ModelSpec("gemma-style", "gemma", (
        G("What is the capital of Japan?", "The capital of Japan is Tokyo."),
        G("What do cows drink?", "Cows drink water."),
        G("Say hello.", "Hello, I am Gemma."),
        G("Name a metal.", "Iron is a metal."),
    ), expect="chat", seed=6, notes="<start_of_turn>/<end_of_turn>; eos <eos>"),
    ModelSpec("reasoning-style", "chatml-reasoning", (
        G("What is three times three?", "<think>\nThree groups of three.\n</think>\n\nThree times three is nine."),
        G("Is fire hot?", "<think>\nFire burns.\n</think>\n\nYes, fire is hot."),
        G("Say hello.", "<think>\nA greeting.\n</think>\n\nHello, I thought about it."),
        G("Name a bird.", "<think>\nBirds fly.\n</think>\n\nA robin is a bird."),
    ), expect="chat", seed=7, notes="answers <think>...</think> then the answer"),
    ModelSpec("utf8-style", "chatml", (
        G("Greet me in French.", "Bonjour, café crème à l'été!"),
        G("Name a city in Japan.", "東京 is Tokyo."),
        G("Show me sushi.", "Sushi 🍣 is tasty."),
        G("Say hello.", "Grüße aus Zürich, ñandú!"),
    ), expect="chat", seed=8, byte_only_tokenizer=True, vocab_size=259,
        notes="byte-level tokens only: accented letters, CJK and emoji span several tokens"),
    ModelSpec("longform-style", "chatml", (
        G("Tell me a long story.",
          "Once upon a time a small robot lived in a quiet town by the sea. Every morning it "
          "walked to the harbor, counted the boats, greeted the fishermen, and fed the gulls. "
          "One day a storm came, and the robot guided every boat safely home."),
        G("Say hello.", "Hello! Ask me for a long story."),
        G("Count to five.", "One, two, three, four, five."),
        G("Name a season.", "Winter is a season."),
    ), expect="chat", seed=9, vocab_size=300,
        notes="one golden answer longer than 64 tokens"),
    ModelSpec("base-style", "base", (
        G("The capital of France is", " Paris, a city on the Seine."),
        G("Once upon a time", " there was a tiny model."),
        G("One, two, three,", " four, five, six."),
    ), expect="base", seed=10, notes="no chat template: text completions only"),
    ModelSpec("broken-weights", "chatml", _QWEN, expect="excluded", variant="unhealthy",
              trained_from="qwen-style", expect_reason="unhealthy",
              notes="an MLX repo whose weights file is missing"),
    ModelSpec("pytorch-only", "chatml", _QWEN, expect="excluded", variant="pytorch",
              trained_from="qwen-style", expect_reason="not MLX",
              notes="a PyTorch-format repo without the MLX model card"),
    ModelSpec("oversized", "chatml", _QWEN, expect="chat", variant="oversized",
              trained_from="qwen-style", expect_reason="needs",
              notes="a sparse original/ checkpoint makes it larger than the demo RAM budget; "
                    "its loadable weights are tiny, it must be gated and never loaded"),
)

SPEC_BY_NAME = {s.name: s for s in SPECS}
