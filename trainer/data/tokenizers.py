"""Tokenizers: byte-level (default, nothing to train), BPE trained on the filtered training
split, or a pretrained `tokenizers` file (tokenizer.json).

Every tokenizer appends one separator id after each document when packing.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from trainer.registry import Registry, check, check_choice

SEP = "<sep>"
# End-of-text tokens by convention: GPT-2, T5/Llama-2, Llama-3, Gemma.
EOS_NAMES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")


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
    path: Optional[str] = None     # pretrained only: a tokenizer.json, or a directory holding one

    def __post_init__(self) -> None:
        check_choice("data.tokenizer.name", self.name, TOKENIZERS.names())
        check(self.vocab_size > 257, "data.tokenizer.vocab_size", self.vocab_size,
              "> 257 (the byte alphabet plus the separator)")

    def preflight(self) -> None:
        """What reads files: a pretrained tokenizer must exist and load."""
        self.expected_vocab_size()

    def file(self) -> Path:
        """The pretrained tokenizer.json."""
        why = "data.tokenizer.name=pretrained needs a tokenizer.json file or a directory that " \
              "contains one"
        check(self.path is not None, "data.tokenizer.path", self.path, why)
        p = Path(self.path).expanduser()
        p = p / "tokenizer.json" if p.is_dir() else p
        check(p.is_file(), "data.tokenizer.path", self.path, why)
        return p

    def inputs(self) -> list[Path]:
        """Files read besides the config, so the data cache is rebuilt when they change."""
        return [self.file()] if self.name == "pretrained" else []

    def expected_vocab_size(self) -> int:
        """The vocabulary size known before any data is prepared (model.params sizing needs
        it at pre-flight); bpe can fall short of it only on a corpus too small for its merges."""
        if self.name == "pretrained":
            f = self.file()
            return _pretrained_vocab_size(str(f), f.stat().st_size, f.stat().st_mtime_ns)
        return ByteTokenizer.vocab_size if self.name == "byte" else self.vocab_size


class ByteTokenizer:
    """UTF-8 bytes 0..255, separator 256."""

    vocab_size = 257
    sep_id = 256

    def encode_batch(self, docs: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(d.encode("utf-8"), dtype=np.uint8).astype(np.int64) for d in docs]

    def save(self, directory: Path) -> None:
        (directory / "tokenizer.json").write_text(json.dumps({"type": "byte"}))


class HFTokenizer:
    """A `tokenizers` Tokenizer; the separator is a special token of its vocabulary, added
    if missing."""

    def __init__(self, tok, sep_token: str = SEP):  # tok: tokenizers.Tokenizer
        self.tok = tok
        sep = tok.token_to_id(sep_token)
        if sep is None:
            tok.add_special_tokens([sep_token])
            sep = tok.token_to_id(sep_token)
        self.sep_id = sep
        self.vocab_size = tok.get_vocab_size()

    def encode_batch(self, docs: Sequence[str]) -> list[np.ndarray]:
        # No post-processor specials (BOS/CLS/EOS templates): the separator is added in packing.
        return [np.asarray(e.ids, dtype=np.int64)
                for e in self.tok.encode_batch(list(docs), add_special_tokens=False)]

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


def eos_token(file: Path, tok) -> Optional[str]:
    """The end-of-text token of a pretrained tokenizer: `eos_token` of a tokenizer_config.json
    beside the file (the `transformers` layout), else a special token with a conventional name."""
    config = file.parent / "tokenizer_config.json"
    if config.is_file():
        settings = _json_object(config)
        check(settings is not None, "data.tokenizer.path", str(config), "not a JSON object")
        eos = settings.get("eos_token")
        eos = eos.get("content") if isinstance(eos, dict) else eos
        if eos and tok.token_to_id(eos) is not None:
            return eos
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    return next((name for name in EOS_NAMES if name in special), None)


def load_pretrained(cfg: TokenizerConfig) -> HFTokenizer:
    return _load(cfg.file())


def _load(file: Path) -> HFTokenizer:
    """The separator is the tokenizer's end-of-text token if it has one, else an added <sep>."""
    from tokenizers import Tokenizer as HFTok

    tok, error = None, None
    try:
        tok = HFTok.from_file(str(file))
    except Exception as e:          # the Rust side raises a bare Exception
        error = e
    check(tok is not None, "data.tokenizer.path", str(file),
          f"not a `tokenizers` tokenizer.json ({str(error)[:200]})")
    return HFTokenizer(tok, eos_token(file, tok) or SEP)


def _json_object(path: Path) -> Optional[dict]:
    try:
        value = json.loads(path.read_bytes())
    except ValueError:              # JSONDecodeError and UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None


@functools.lru_cache(maxsize=32)
def _pretrained_vocab_size(file: str, size: int, mtime_ns: int) -> int:
    """Loaded once per file version: every job of a sweep asks at pre-flight."""
    return _load(Path(file)).vocab_size


@TOKENIZERS.register("bpe", TokenizerConfig)
def bpe(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return train_bpe(train_docs, cfg.vocab_size)


@TOKENIZERS.register("pretrained", TokenizerConfig)
def pretrained(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return load_pretrained(cfg)
