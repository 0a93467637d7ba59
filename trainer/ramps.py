"""Batch-size ramps as functions of the budget fraction: f -> global batch in sequences.

The micro-batch is fixed (memory is), so a ramp grows the number of gradient-accumulation
steps; batches are whole multiples of train.micro_batch, as in Cramming's schedule_batch_size.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, List

from omegaconf import MISSING

from trainer.registry import Registry, check

Ramp = Callable[[float], int]
RAMPS: Registry[Callable[..., Ramp]] = Registry("ramp")


@dataclass
class RampConfig:
    name: str = MISSING
    start: int = 16  # global batch (sequences) at f = 0

    def __post_init__(self) -> None:
        check(self.start > 0, "ramp.start", self.start, "a batch size in sequences, > 0")

    def batch_sizes(self) -> list[int]:
        """The sizes the ramp is anchored at; each must be whole micro-batches (JobConfig)."""
        return [self.start]


@dataclass
class ConstantRampConfig(RampConfig):
    name: str = "constant"


@dataclass
class LinearRampConfig(RampConfig):
    name: str = "linear"
    end: int = 64  # global batch reached at f = fraction
    fraction: float = 0.5  # share of the budget spent ramping

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.end >= self.start,
            "ramp.end",
            self.end,
            f"must be >= ramp.start={self.start} (a ramp grows the batch)",
        )
        check(0 < self.fraction <= 1, "ramp.fraction", self.fraction, "a budget fraction in (0, 1]")

    def batch_sizes(self) -> list[int]:
        return [self.start, self.end]


@dataclass
class StagedRampConfig(RampConfig):
    """Piecewise-constant batch: stage [f, size] holds from budget fraction f to the next stage
    (modded-nanogpt's table of training stages). `start` is the first stage's size (YAML)."""

    name: str = "staged"
    stages: List[Any] = field(default_factory=lambda: [[0.0, 16], [0.3, 32], [0.6, 64]])

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            len(self.stages) > 0
            and all(isinstance(s, (list, tuple)) and len(s) == 2 for s in self.stages),
            "ramp.stages",
            self.stages,
            "a non-empty list of [budget fraction, batch size] pairs",
        )
        fractions, sizes = [s[0] for s in self.stages], [s[1] for s in self.stages]
        check(
            all(_is_number(f) for f in fractions)
            and fractions[0] == 0
            and fractions[-1] < 1
            and all(a < b for a, b in zip(fractions, fractions[1:])),
            "ramp.stages",
            self.stages,
            "budget fractions must start at 0 and increase, staying below 1",
        )
        check(
            all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in sizes),
            "ramp.stages",
            self.stages,
            "batch sizes must be whole numbers of sequences, > 0",
        )
        check(
            self.start == sizes[0],
            "ramp.start",
            self.start,
            f"follows the first stage's size, {sizes[0]}; change ramp.stages instead",
        )

    def batch_sizes(self) -> list[int]:
        return [s[1] for s in self.stages]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _whole_micro_batches(batch: float, micro: int) -> int:
    """The most whole micro-batches that do not exceed `batch` (at least one)."""
    return max(micro, int(batch // micro) * micro)


@RAMPS.register(ConstantRampConfig)
def constant(cfg: ConstantRampConfig, micro_batch: int) -> Ramp:
    size = _whole_micro_batches(cfg.start, micro_batch)
    return lambda f: size


@RAMPS.register(LinearRampConfig)
def linear(cfg: LinearRampConfig, micro_batch: int) -> Ramp:
    def batch(f: float) -> int:
        t = min(max(f, 0.0) / cfg.fraction, 1.0)
        return _whole_micro_batches(cfg.start + t * (cfg.end - cfg.start), micro_batch)

    return batch


@RAMPS.register(StagedRampConfig)
def staged(cfg: StagedRampConfig, micro_batch: int) -> Ramp:
    starts, sizes = [s[0] for s in cfg.stages], [s[1] for s in cfg.stages]
    return lambda f: sizes[bisect.bisect_right(starts, max(f, 0.0)) - 1]
