"""Training budgets: how far along a run is (a fraction in [0, 1]) and when it is over.

Schedules and ramps only ever see the fraction, so every budget drives them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from omegaconf import MISSING

from trainer.registry import Registry, check


@dataclass
class Progress:
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0  # training wall-clock, evaluation excluded


Fraction = Callable[[Progress], float]
BUDGETS: Registry[Callable[..., Fraction]] = Registry("budget")


@dataclass(frozen=True)
class Plan:
    steps: int
    tokens: int


@dataclass
class BudgetConfig:
    name: str = MISSING

    def plan(self, tokens_per_step_at: Callable[[float], int]) -> Optional[Plan]:
        """The steps and tokens a run will take, for a pre-flight plan; None if not known ahead.

        `tokens_per_step_at(f)` is the batch in tokens at budget fraction f (ramp x seq_len).
        Replays the loop's accounting (check the fraction, take a step), so it is exact for
        budgets that depend only on steps and tokens; O(steps) cheap Python calls.
        """
        fraction = BUDGETS.build(self)
        p = Progress()
        while (f := fraction(p)) < 1.0:
            p.steps += 1
            p.tokens += tokens_per_step_at(f)
        return Plan(p.steps, p.tokens)


@dataclass
class StepsBudgetConfig(BudgetConfig):
    name: str = "steps"
    steps: int = 300

    def __post_init__(self) -> None:
        check(self.steps > 0, "budget.steps", self.steps, "> 0 optimizer steps")


@dataclass
class TokensBudgetConfig(BudgetConfig):
    name: str = "tokens"
    # Near the demo's 300 steps x 2,048 tokens (16 sequences of 128) = 614,400, not equal: at
    # that batch it ends after 293 steps, with 600,064 tokens.
    tokens: int = 600_000

    def __post_init__(self) -> None:
        check(self.tokens > 0, "budget.tokens", self.tokens, "> 0 training tokens")


@dataclass
class SecondsBudgetConfig(BudgetConfig):
    """Training wall-clock, evaluation excluded (Cramming's budget); ends at the first step
    boundary past the deadline."""

    name: str = "seconds"
    seconds: float = 60.0

    def __post_init__(self) -> None:
        check(self.seconds > 0, "budget.seconds", self.seconds, "> 0 seconds of training")

    def plan(self, tokens_per_step_at: Callable[[float], int]) -> Optional[Plan]:
        return None  # throughput is only known once the run is on its hardware


@BUDGETS.register(StepsBudgetConfig)
def steps(cfg: StepsBudgetConfig) -> Fraction:
    return lambda p: min(p.steps / cfg.steps, 1.0)


@BUDGETS.register(TokensBudgetConfig)
def tokens(cfg: TokensBudgetConfig) -> Fraction:
    return lambda p: min(p.tokens / cfg.tokens, 1.0)


@BUDGETS.register(SecondsBudgetConfig)
def seconds(cfg: SecondsBudgetConfig) -> Fraction:
    return lambda p: min(p.seconds / cfg.seconds, 1.0)
