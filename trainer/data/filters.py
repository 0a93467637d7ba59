"""Document filters applied to the training split (validation stays fixed, so a filter that
drops hard text cannot lower the validation loss by changing the test).

`filter=chain` runs several filters in order; `apply` runs any filter config and counts what
each step kept, for the prepared data's stats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainer.registry import Registry, check, check_choice

Filter = Callable[[Sequence[str]], list[str]]
FILTERS: Registry[Callable[..., Filter]] = Registry("filter")


@dataclass
class FilterConfig:
    name: str = MISSING

    def steps_in_order(self) -> list["FilterConfig"]:
        """The single filters this config runs, in order (a chain is flattened)."""
        return [self]


@dataclass
class NoFilterConfig(FilterConfig):
    name: str = "none"


@dataclass
class CompressibilityConfig(FilterConfig):
    """Keep a document only if ntokens < threshold * nchars (Cramming, Sec. 4.4, `remove_trash`).

    Byte tokens never compress, so the count uses a BPE learned on the training split
    (Cramming's `remove_trash: self` also measures with a freshly trained tokenizer), on a
    bounded sample of it (`tokenizers.training_sample`: 2 MiB of text at the default
    vocab_size). A counter of fixed size also keeps the threshold's meaning when the corpus
    grows: trained on everything, a larger corpus would get a better-fitting counter and keep
    more at the same threshold, and each document would be scored by merges it helped learn.
    Measured on the default corpus (scripts/bench_data.py): per-document ratios correlate at
    0.975 with those of a counter trained on all 5 MB, which compresses 0.4% better; as the
    default threshold sits near the median ratio, that shift decides 6% of the documents
    (kept: 46% against 49%).
    """

    name: str = "compressibility"
    threshold: float = 0.3
    vocab_size: int = 8192  # of the measuring BPE

    def __post_init__(self) -> None:
        check(
            0 < self.threshold <= 1,
            "filter.threshold",
            self.threshold,
            "tokens per character in (0, 1]",
        )
        check(self.vocab_size > 257, "filter.vocab_size", self.vocab_size, "> 257")


@dataclass
class DedupConfig(FilterConfig):
    """Drop exact duplicate documents, keeping the first occurrence."""

    name: str = "dedup"


@dataclass
class LengthConfig(FilterConfig):
    """Keep a document only if min_chars <= len(doc) <= max_chars: both bounds inclusive,
    lengths in Unicode code points, max_chars null for no upper bound.

    Defaults: Gopher's quality filter keeps documents of 50 to 100,000 words (Rae et al. 2021,
    App. A, MassiveText quality filters), at ~6 characters per English word.
    """

    name: str = "length"
    min_chars: int = 300
    max_chars: Optional[int] = 600_000

    def __post_init__(self) -> None:
        check(self.min_chars >= 0, "filter.min_chars", self.min_chars, ">= 0 characters")
        check(
            self.max_chars is None or self.max_chars >= self.min_chars,
            "filter.max_chars",
            self.max_chars,
            f"null or >= filter.min_chars={self.min_chars}",
        )


@dataclass
class ChainConfig(FilterConfig):
    """Several filters in order, each on what the previous one kept. A step is a mapping with
    the step's `name` and any of its fields; the rest take that filter's defaults."""

    name: str = "chain"
    # Cramming's raw-data preprocessing order: trash removal, then deduplication
    # (cramming/data/pretraining_preparation.py, raw_dataset_preprocessing).
    steps: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "compressibility"}, {"name": "dedup"}]
    )

    def __post_init__(self) -> None:
        check(
            len(self.steps) > 0,
            "filter.steps",
            self.steps,
            "at least one step, e.g. [{name: dedup}, {name: length}]",
        )
        self.steps_in_order()  # validates every step

    def steps_in_order(self) -> list[FilterConfig]:
        out = []
        for i, step in enumerate(self.steps):
            where = f"filter.steps[{i}]"
            check(
                isinstance(step, Mapping) and "name" in step,
                where,
                step,
                "a mapping with a filter name, e.g. {name: dedup}",
            )
            check_choice(f"{where}.name", step["name"], FILTERS.names())
            # The step's own schema type-checks it and rejects unknown keys, as for `filter=`.
            schema = OmegaConf.structured(FILTERS[step["name"]].config_cls)
            try:
                cfg = OmegaConf.to_object(OmegaConf.merge(schema, step))
            except (OmegaConfBaseException, ValueError) as e:
                raise ValueError(f"{where}={step!r} is invalid: {e}") from e
            out.extend(cfg.steps_in_order())
        return out


def apply(cfg: FilterConfig, docs: Sequence[str]) -> tuple[list[str], list[dict]]:
    """Run every step of `cfg`; returns the kept documents and one count record per step."""
    counts = []
    for step in cfg.steps_in_order():
        kept = FILTERS.build(step)(docs)
        counts.append(
            {
                "name": step.name,
                "docs_in": len(docs),
                "docs_out": len(kept),
                "chars_in": sum(map(len, docs)),
                "chars_out": sum(map(len, kept)),
            }
        )
        docs = kept
    return list(docs), counts


@FILTERS.register(NoFilterConfig)
def none(cfg: NoFilterConfig) -> Filter:
    return list


@FILTERS.register(CompressibilityConfig)
def compressibility(cfg: CompressibilityConfig) -> Filter:
    from trainer.data.tokenizers import train_bpe

    def keep(docs: Sequence[str]) -> list[str]:
        counts = train_bpe(docs, cfg.vocab_size).count(docs)
        return [d for d, n in zip(docs, counts) if n < cfg.threshold * len(d)]

    return keep


@FILTERS.register(DedupConfig)
def dedup(cfg: DedupConfig) -> Filter:
    return lambda docs: list(dict.fromkeys(docs))  # dicts keep insertion order


@FILTERS.register(LengthConfig)
def length(cfg: LengthConfig) -> Filter:
    hi = float("inf") if cfg.max_chars is None else cfg.max_chars
    return lambda docs: [d for d in docs if cfg.min_chars <= len(d) <= hi]


@FILTERS.register(ChainConfig)
def chain(cfg: ChainConfig) -> Filter:
    return lambda docs: apply(cfg, docs)[0]
