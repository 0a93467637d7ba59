"""Batch-size ramps as functions of the budget fraction: f -> global batch in sequences.

The micro-batch is fixed (memory is), so a ramp grows the number of gradient-accumulation
steps; batches are whole multiples of train.micro_batch, as in Cramming's schedule_batch_size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from omegaconf import MISSING

from trainer.registry import Registry, check

Ramp = Callable[[float], int]
RAMPS: Registry[Callable[..., Ramp]] = Registry("ramp")


@dataclass
class RampConfig:
    name: str = MISSING
    start: int = 16                # global batch (sequences) at f = 0

    def __post_init__(self) -> None:
        check(self.start > 0, "ramp.start", self.start, "a batch size in sequences, > 0")

    def max_batch(self) -> int:
        return self.start


@dataclass
class ConstantRampConfig(RampConfig):
    name: str = "constant"


@dataclass
class LinearRampConfig(RampConfig):
    name: str = "linear"
    end: int = 64                  # global batch reached at f = fraction
    fraction: float = 0.5          # share of the budget spent ramping

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.end >= self.start, "ramp.end", self.end,
              f"must be >= ramp.start={self.start} (a ramp grows the batch)")
        check(0 < self.fraction <= 1, "ramp.fraction", self.fraction, "a budget fraction in (0, 1]")

    def max_batch(self) -> int:
        return self.end


def _whole_micro_batches(batch: float, micro: int) -> int:
    """The most whole micro-batches that do not exceed `batch` (at least one)."""
    return max(micro, int(batch // micro) * micro)


@RAMPS.register("constant", ConstantRampConfig)
def constant(cfg: ConstantRampConfig, micro_batch: int) -> Ramp:
    size = _whole_micro_batches(cfg.start, micro_batch)
    return lambda f: size


@RAMPS.register("linear", LinearRampConfig)
def linear(cfg: LinearRampConfig, micro_batch: int) -> Ramp:
    def batch(f: float) -> int:
        t = min(max(f, 0.0) / cfg.fraction, 1.0)
        return _whole_micro_batches(cfg.start + t * (cfg.end - cfg.start), micro_batch)

    return batch
