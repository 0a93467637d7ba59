"""Learning-rate schedules as functions of the budget fraction f in [0, 1].

Writing them against f rather than steps lets one schedule serve step, token and wall-clock
budgets alike (Cramming, Geiping & Goldstein 2022, drives its schedules by elapsed/budget).
Each returns the multiplier applied to optim.lr.

Warmup and cooldown lengths follow Cramming's convention: a value below 1 is a fraction of the
budget, a value >= 1 a number of optimizer steps. Steps become a fraction through budget.steps,
which conf/schedule/*.yaml copy into `budget_steps` by interpolation; under a token or
wall-clock budget the number of steps is not known in advance, so step counts are refused at
validation rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from omegaconf import MISSING

from trainer.registry import Registry, check

Schedule = Callable[[float], float]
SCHEDULES: Registry[Callable[..., Schedule]] = Registry("schedule")


@dataclass
class ScheduleConfig:
    name: str = MISSING


@dataclass
class ConstantConfig(ScheduleConfig):
    name: str = "constant"


@dataclass
class WarmupConfig(ScheduleConfig):
    """A schedule with a linear warmup from 0 over `warmup` (a budget fraction, or steps)."""

    warmup: float = 0.1
    budget_steps: Optional[int] = None  # budget.steps under budget=steps, else None (YAML)

    def fraction(self, field: str) -> float:
        """The budget fraction `field` spans: values < 1 are fractions, values >= 1 steps."""
        value, name = getattr(self, field), f"schedule.{field}"
        check(value >= 0, name, value, "a budget fraction in [0, 1) or a number of steps >= 1")
        if value < 1:
            return value
        check(
            float(value).is_integer(),
            name,
            value,
            "values >= 1 count optimizer steps: a whole number",
        )
        check(
            self.budget_steps is not None,
            name,
            value,
            "values >= 1 count optimizer steps, which only budget=steps can convert to a budget "
            "fraction; give a fraction in [0, 1)",
        )
        check(
            value <= self.budget_steps,
            name,
            value,
            f"more steps than the budget's budget.steps={self.budget_steps}",
        )
        return value / self.budget_steps


@dataclass
class WarmupCooldownConfig(WarmupConfig):
    """Trapezoid / warmup-stable-decay: linear up over `warmup`, flat, linear down over `cooldown`.

    Cramming (Sec. 4.3) found both a warmup and a cooldown necessary; WSD in lingua's lr_wsd.
    """

    name: str = "warmup_cooldown"
    cooldown: float = 0.2  # budget fraction, or steps
    final_ratio: float = 0.0  # lr at f=1, as a fraction of the peak

    def __post_init__(self) -> None:
        total = self.fraction("warmup") + self.fraction("cooldown")
        check(
            total <= 1,
            "schedule.warmup+cooldown",
            total,
            "warmup and cooldown must fit in the budget (sum of their fractions <= 1)",
        )
        check_ratio("final_ratio", self.final_ratio)


@dataclass
class DecayConfig(WarmupConfig):
    """Warmup, then decay from the peak to `final_ratio` over the rest of the budget."""

    final_ratio: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.fraction("warmup") < 1,
            "schedule.warmup",
            self.warmup,
            "the warmup must leave part of the budget to decay over",
        )
        check_ratio("final_ratio", self.final_ratio)


@dataclass
class CosineConfig(DecayConfig):
    name: str = "cosine"
    final_ratio: float = 0.1


@dataclass
class LinearConfig(DecayConfig):
    name: str = "linear"


@dataclass
class InverseSqrtConfig(WarmupConfig):
    name: str = "inverse_sqrt"
    warmup: float = 0.04  # the paper's 4,000 of 100,000 steps

    def __post_init__(self) -> None:
        check(
            self.fraction("warmup") > 0,
            "schedule.warmup",
            self.warmup,
            "> 0: the decay sqrt(warmup / f) is anchored at the end of the warmup",
        )


@dataclass
class OneCycleConfig(DecayConfig):
    name: str = "one_cycle"
    warmup: float = 0.3  # torch's pct_start
    initial_ratio: float = 0.04  # 1 / div_factor
    final_ratio: float = 4e-6  # initial_ratio / final_div_factor

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ratio("initial_ratio", self.initial_ratio)


def check_ratio(field: str, value: float) -> None:
    check(0 <= value <= 1, f"schedule.{field}", value, "a fraction of the peak lr, in [0, 1]")


def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def cos_anneal(a: float, b: float, t: float) -> float:
    """From a at t=0 to b at t=1 along half a cosine (SGDR, Loshchilov & Hutter 2017, eq. 5)."""
    return b + (a - b) * (1 + math.cos(math.pi * t)) / 2


def clamp(f: float) -> float:
    return min(max(f, 0.0), 1.0)


@SCHEDULES.register(ConstantConfig)
def constant(cfg: ConstantConfig) -> Schedule:
    return lambda f: 1.0


@SCHEDULES.register(WarmupCooldownConfig)
def warmup_cooldown(cfg: WarmupCooldownConfig) -> Schedule:
    warmup, cooldown = cfg.fraction("warmup"), cfg.fraction("cooldown")

    def lr(f: float) -> float:
        f = clamp(f)
        if f < warmup:
            return f / warmup
        if f > 1.0 - cooldown:
            return lerp(cfg.final_ratio, 1.0, (1.0 - f) / cooldown)  # 1 -> final over the cooldown
        return 1.0

    return lr


def two_phase(
    cfg: WarmupConfig, up: Callable[[float], float], down: Callable[[float], float]
) -> Schedule:
    """`up(t)` over the warmup, then `down(t)` over the rest; t runs 0 -> 1 within each phase."""
    warmup = cfg.fraction("warmup")

    def lr(f: float) -> float:
        f = clamp(f)
        return up(f / warmup) if f < warmup else down((f - warmup) / (1.0 - warmup))

    return lr


@SCHEDULES.register(CosineConfig)
def cosine(cfg: CosineConfig) -> Schedule:
    return two_phase(cfg, lambda t: t, lambda t: cos_anneal(1.0, cfg.final_ratio, t))


@SCHEDULES.register(LinearConfig)
def linear(cfg: LinearConfig) -> Schedule:
    # BERT (Devlin et al. 2019, App. A.2): linear warmup, then linear decay.
    return two_phase(cfg, lambda t: t, lambda t: lerp(1.0, cfg.final_ratio, t))


@SCHEDULES.register(InverseSqrtConfig)
def inverse_sqrt(cfg: InverseSqrtConfig) -> Schedule:
    # Vaswani et al. 2017, eq. 3: lr ~ min(step^-0.5, step * warmup^-1.5), scaled to peak at 1.
    warmup = cfg.fraction("warmup")
    return lambda f: min(clamp(f) / warmup, math.sqrt(warmup / max(clamp(f), warmup)))


@SCHEDULES.register(OneCycleConfig)
def one_cycle(cfg: OneCycleConfig) -> Schedule:
    # Smith & Topin 2019; torch.optim.lr_scheduler.OneCycleLR (anneal_strategy="cos",
    # three_phase=False): cosine up from initial_ratio to 1, cosine down to final_ratio.
    # OneCycleLR also cycles momentum inversely; that is left to the optimizer here.
    return two_phase(
        cfg,
        lambda t: cos_anneal(cfg.initial_ratio, 1.0, t),
        lambda t: cos_anneal(1.0, cfg.final_ratio, t),
    )
