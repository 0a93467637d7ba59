"""The order in which training windows are visited: the `order` config group.

An order maps an epoch to a permutation of the window indices, so a loader's position is one
integer (its cursor) and a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from omegaconf import MISSING

from trainer.registry import Registry, check

Order = Callable[[int], np.ndarray]  # epoch -> permutation of range(n windows)
ORDERS: Registry[Callable[..., Order]] = Registry("order")


@dataclass
class OrderConfig:
    name: str = MISSING


@dataclass
class RandomOrderConfig(OrderConfig):
    """A fresh seeded permutation every epoch."""

    name: str = "random"


@dataclass
class UnigramOrderConfig(OrderConfig):
    """Easy (common) text first: windows sorted by mean k-smoothed unigram log-probability,
    highest first; the same order every epoch.

    From Cramming's `_sort_tokenized_dataset_by_unigram` (cramming/data/curriculum_sorting.py,
    Geiping & Goldstein 2022): p(t) = (count(t) + k) / (N + k * V) with k = 1, counts over the
    training split, a sequence scored by its mean log p. Note Cramming's `unigram-curriculum`
    argsorts ascending (least likely first); that direction is `reverse_unigram` here.
    """

    name: str = "unigram"
    smoothing: float = 1.0  # k, Cramming's k_smoothing

    def __post_init__(self) -> None:
        check(self.smoothing > 0, "order.smoothing", self.smoothing, "> 0 (add-k smoothing)")


@dataclass
class ReverseUnigramOrderConfig(UnigramOrderConfig):
    """Hard (rare) text first: the unigram order reversed."""

    name: str = "reverse_unigram"


def unigram_scores(inputs: np.ndarray, smoothing: float) -> np.ndarray:
    """Mean smoothed unigram log-probability of each row of `inputs` (windows x tokens).

    V is the number of distinct ids seen, not the vocabulary: an id that never occurs only
    shifts every score by the same constant, so the order is the same.
    """
    counts = np.bincount(inputs.reshape(-1))
    logp = np.log((counts + smoothing) / (counts.sum() + smoothing * len(counts)))
    rows = max(1, 2**20 // inputs.shape[1])  # bound the gathered float array
    return np.concatenate(
        [logp[inputs[i : i + rows]].mean(axis=1) for i in range(0, len(inputs), rows)]
    )


@ORDERS.register(RandomOrderConfig)
def shuffled(cfg: RandomOrderConfig, inputs: np.ndarray, seed: int) -> Order:
    return lambda epoch: np.random.default_rng([seed, epoch]).permutation(len(inputs))


@ORDERS.register(UnigramOrderConfig)
@ORDERS.register(ReverseUnigramOrderConfig)
def by_unigram(cfg: UnigramOrderConfig, inputs: np.ndarray, seed: int) -> Order:
    scores = unigram_scores(inputs, cfg.smoothing)
    order = np.argsort(scores if cfg.name == "reverse_unigram" else -scores, kind="stable")
    return lambda epoch: order
