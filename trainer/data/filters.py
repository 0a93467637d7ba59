"""Document filters applied to the training split (validation stays fixed, so a filter that
drops hard text cannot lower the validation loss by changing the test)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from omegaconf import MISSING

from trainer.registry import Registry, check

Filter = Callable[[Sequence[str]], list[str]]
FILTERS: Registry[Callable[..., Filter]] = Registry("filter")


@dataclass
class FilterConfig:
    name: str = MISSING


@dataclass
class NoFilterConfig(FilterConfig):
    name: str = "none"


@dataclass
class CompressibilityConfig(FilterConfig):
    """Keep a document only if ntokens < threshold * nchars (Cramming, Sec. 4.4, `remove_trash`).

    Byte tokens never compress, so the count uses a BPE learned on the training split
    (Cramming's `remove_trash: self` also measures with a freshly trained tokenizer).
    """

    name: str = "compressibility"
    threshold: float = 0.3
    vocab_size: int = 8192          # of the measuring BPE

    def __post_init__(self) -> None:
        check(0 < self.threshold <= 1, "filter.threshold", self.threshold,
              "tokens per character in (0, 1]")
        check(self.vocab_size > 257, "filter.vocab_size", self.vocab_size, "> 257")


@FILTERS.register("none", NoFilterConfig)
def none(cfg: NoFilterConfig) -> Filter:
    return list


@FILTERS.register("compressibility", CompressibilityConfig)
def compressibility(cfg: CompressibilityConfig) -> Filter:
    from trainer.data.tokenizers import train_bpe

    def keep(docs: Sequence[str]) -> list[str]:
        counts = [len(ids) for ids in train_bpe(docs, cfg.vocab_size).encode_batch(docs)]
        return [d for d, n in zip(docs, counts) if n < cfg.threshold * len(d)]

    return keep
