"""Training budgets: how far along a run is (a fraction in [0, 1]) and when it is over.

Schedules and ramps only ever see the fraction, so every budget drives them the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from omegaconf import MISSING

from trainer.registry import Registry, check


@dataclass
class Progress:
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0           # training wall-clock, evaluation excluded


Fraction = Callable[[Progress], float]
BUDGETS: Registry[Callable[..., Fraction]] = Registry("budget")


@dataclass
class BudgetConfig:
    name: str = MISSING


@dataclass
class StepsBudgetConfig(BudgetConfig):
    name: str = "steps"
    steps: int = 300

    def __post_init__(self) -> None:
        check(self.steps > 0, "budget.steps", self.steps, "> 0 optimizer steps")


@dataclass
class TokensBudgetConfig(BudgetConfig):
    name: str = "tokens"
    tokens: int = 1_000_000

    def __post_init__(self) -> None:
        check(self.tokens > 0, "budget.tokens", self.tokens, "> 0 training tokens")


@BUDGETS.register("steps", StepsBudgetConfig)
def steps(cfg: StepsBudgetConfig) -> Fraction:
    return lambda p: min(p.steps / cfg.steps, 1.0)


@BUDGETS.register("tokens", TokensBudgetConfig)
def tokens(cfg: TokensBudgetConfig) -> Fraction:
    return lambda p: min(p.tokens / cfg.tokens, 1.0)
