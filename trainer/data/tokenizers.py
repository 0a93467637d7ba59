"""Tokenizers: byte-level (default, nothing to train) and BPE trained on the training split.

Every tokenizer appends one separator id after each document when packing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from trainer.registry import Registry, check, check_choice

SEP = "<sep>"


class Tokenizer(Protocol):
    vocab_size: int
    sep_id: int

    def encode_batch(self, docs: Sequence[str]) -> list[np.ndarray]: ...
    def save(self, directory: Path) -> None: ...


TOKENIZERS: Registry = Registry("data.tokenizer")


@dataclass
class TokenizerConfig:
    name: str = "byte"
    vocab_size: int = 4096         # bpe only: merges learned up to this size

    def __post_init__(self) -> None:
        check_choice("data.tokenizer.name", self.name, TOKENIZERS.names())
        check(self.vocab_size > 257, "data.tokenizer.vocab_size", self.vocab_size,
              "> 257 (the byte alphabet plus the separator)")


class ByteTokenizer:
    """UTF-8 bytes 0..255, separator 256."""

    vocab_size = 257
    sep_id = 256

    def encode_batch(self, docs: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(d.encode("utf-8"), dtype=np.uint8).astype(np.int64) for d in docs]

    def save(self, directory: Path) -> None:
        (directory / "tokenizer.json").write_text(json.dumps({"type": "byte"}))


class HFTokenizer:
    """A `tokenizers` Tokenizer; the separator is a special token of its vocabulary."""

    def __init__(self, tok):  # tok: tokenizers.Tokenizer
        self.tok = tok
        sep = tok.token_to_id(SEP)
        if sep is None:
            tok.add_special_tokens([SEP])
            sep = tok.token_to_id(SEP)
        self.sep_id = sep
        self.vocab_size = tok.get_vocab_size()

    def encode_batch(self, docs: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int64) for e in self.tok.encode_batch(list(docs))]

    def save(self, directory: Path) -> None:
        self.tok.save(str(directory / "tokenizer.json"))


def train_bpe(docs: Sequence[str], vocab_size: int) -> HFTokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenization) learned with `tokenizers`."""
    from tokenizers import Tokenizer as HFTok, decoders, models, pre_tokenizers, trainers

    tok = HFTok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SEP],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    return HFTokenizer(tok)


@TOKENIZERS.register("byte", TokenizerConfig)
def byte(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return ByteTokenizer()


@TOKENIZERS.register("bpe", TokenizerConfig)
def bpe(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return train_bpe(train_docs, cfg.vocab_size)
