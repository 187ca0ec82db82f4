"""Byte-level BPE tokenizers trained locally, with a family's special tokens and template."""

from __future__ import annotations

import json
from pathlib import Path

from .families import Family


def train_tokenizer(family: Family, corpus: list[str], vocab_size: int, byte_only: bool, out: Path) -> None:
    """Write tokenizer.json and tokenizer_config.json for `family` into `out`.

    `byte_only` keeps the vocabulary to the 256 byte symbols (no merges), so every
    multibyte UTF-8 character spans several tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    size = len(family.specials) + len(alphabet) if byte_only else vocab_size
    trainer = trainers.BpeTrainer(
        vocab_size=size, min_frequency=2, special_tokens=list(family.specials),
        initial_alphabet=alphabet, show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))

    added = {
        str(tok.token_to_id(t)): {
            "content": t, "lstrip": False, "normalized": False,
            "rstrip": False, "single_word": False, "special": True,
        }
        for t in family.specials
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": family.bos,
        "eos_token": family.eos,
        "pad_token": family.pad,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
    }
    if family.chat_template is not None:
        config["chat_template"] = family.chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))


def token_id(tokenizer_json: Path, token: str) -> int:
    """The id of a special token in a tokenizer.json written by `train_tokenizer`."""
    data = json.loads(tokenizer_json.read_text())
    for entry in data["added_tokens"]:
        if entry["content"] == token:
            return entry["id"]
    raise KeyError(f"{token} is not a special token of {tokenizer_json}")
