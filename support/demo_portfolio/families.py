"""Chat families the demo portfolio mimics: special tokens, chat template, end tokens.

Each family reproduces the tokenizer and template quirks of a real model family, so the
suite meets on tiny local models the same end-token traps it meets on real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Family:
    name: str
    specials: tuple[str, ...]  # added as special tokens, ids 0..k-1 in this order
    bos: str | None
    eos: str  # the tokenizer's eos_token
    pad: str | None
    chat_template: str | None  # None: a base model (text completions only)
    turn_end: tuple[str, ...]  # what the model emits after an answer (trained)
    generation_eos: tuple[str, ...] = field(default=())  # generation_config eos_token_id list
    mimics: str = ""


CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

MISTRAL_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

CHATML = Family(
    name="chatml",
    mimics="Qwen2.5 / ChatML",
    specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    bos=None, eos="<|im_end|>", pad="<|endoftext|>",
    chat_template=CHATML_TEMPLATE,
    turn_end=("<|im_end|>",),
    generation_eos=("<|im_end|>", "<|endoftext|>"),
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        CHATML,
        replace(CHATML, name="chatml-reasoning", mimics="Qwen3 / DeepSeek-R1 style <think> reasoning on ChatML",
                specials=(*CHATML.specials, "<think>", "</think>")),
        Family(
            name="llama3",
            mimics="Llama 3 header template, several eos ids",
            specials=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                      "<|end_header_id|>", "<|eot_id|>"),
            bos="<|begin_of_text|>", eos="<|end_of_text|>", pad=None,
            chat_template=LLAMA3_TEMPLATE,
            turn_end=("<|eot_id|>",),
            generation_eos=("<|end_of_text|>", "<|eot_id|>"),
        ),
        Family(
            name="phi3",
            mimics="Phi-3: turns end with <|end|>, tokenizer eos is <|endoftext|>",
            specials=("<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
            bos=None, eos="<|endoftext|>", pad="<|endoftext|>",
            chat_template=PHI3_TEMPLATE,
            turn_end=("<|end|>", "<|endoftext|>"),  # no generation_eos: the SUT must know <|end|> itself
        ),
        Family(
            name="mistral",
            mimics="Mistral [INST] ... [/INST] with </s>",
            specials=("<s>", "</s>", "[INST]", "[/INST]"),
            bos="<s>", eos="</s>", pad=None,
            chat_template=MISTRAL_TEMPLATE,
            turn_end=("</s>",),
        ),
        Family(
            name="base",
            mimics="a GPT-2 style base model: no chat template, <|endoftext|> ends a text",
            specials=("<|endoftext|>",),
            bos=None, eos="<|endoftext|>", pad=None,
            chat_template=None,
            turn_end=("<|endoftext|>",),
        ),
        Family(
            name="gemma",
            mimics="Gemma <start_of_turn>/<end_of_turn>, eos <eos>",
            specials=("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
            bos="<bos>", eos="<eos>", pad="<pad>",
            chat_template=GEMMA_TEMPLATE,
            turn_end=("<end_of_turn>",),
            generation_eos=("<eos>", "<end_of_turn>"),
        ),
    )
}
