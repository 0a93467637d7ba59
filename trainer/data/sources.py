"""Where documents come from: the `data` config group. Each option yields a list of strings."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from omegaconf import MISSING

from trainer.data.tokenizers import TokenizerConfig
from trainer.registry import Registry, check

Source = Callable[[], list[str]]
SOURCES: Registry[Callable[..., Source]] = Registry("data")


@dataclass
class DataConfig:
    name: str = MISSING
    seq_len: int = 128
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    val_fraction: float = 0.05      # share of documents held out, chosen by content hash
    cache_dir: str = ".cache/lmsweep"   # preprocessed data, keyed by a hash of this config

    def __post_init__(self) -> None:
        check(self.seq_len > 0, "data.seq_len", self.seq_len, "> 0 tokens")
        check(0 < self.val_fraction < 1, "data.val_fraction", self.val_fraction, "in (0, 1)")

    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser().resolve()


@dataclass
class ShakespeareConfig(DataConfig):
    name: str = "shakespeare"
    doc_chars: int = 2000           # paragraphs are grouped into documents of at least this

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.doc_chars > 0, "data.doc_chars", self.doc_chars, "> 0 characters")


@SOURCES.register("shakespeare", ShakespeareConfig)
def shakespeare(cfg: ShakespeareConfig) -> Source:
    from trainer.data.corpus import shakespeare_documents

    return lambda: shakespeare_documents(cfg.cache_path(), cfg.doc_chars)
