"""Learning-rate schedules as functions of the budget fraction f in [0, 1].

Writing them against f rather than steps lets one schedule serve step, token and wall-clock
budgets alike (Cramming, Geiping & Goldstein 2022, drives its schedules by elapsed/budget).
Each returns the multiplier applied to optim.lr.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
class WarmupCooldownConfig(ScheduleConfig):
    """Trapezoid / warmup-stable-decay: linear up over `warmup`, flat, linear down over `cooldown`.

    Cramming (Sec. 4.3) found both a warmup and a cooldown necessary; WSD in lingua's lr_wsd.
    """

    name: str = "warmup_cooldown"
    warmup: float = 0.1            # fraction of the budget
    cooldown: float = 0.2          # fraction of the budget
    final_ratio: float = 0.0       # lr at f=1, as a fraction of the peak

    def __post_init__(self) -> None:
        check(0 <= self.warmup <= 1, "schedule.warmup", self.warmup, "a budget fraction in [0, 1]")
        check(0 <= self.cooldown <= 1, "schedule.cooldown", self.cooldown, "a budget fraction in [0, 1]")
        check(self.warmup + self.cooldown <= 1, "schedule.warmup+cooldown",
              self.warmup + self.cooldown, "warmup and cooldown must fit in the budget (sum <= 1)")
        check(0 <= self.final_ratio <= 1, "schedule.final_ratio", self.final_ratio, "in [0, 1]")


@SCHEDULES.register("constant", ConstantConfig)
def constant(cfg: ConstantConfig) -> Schedule:
    return lambda f: 1.0


@SCHEDULES.register("warmup_cooldown", WarmupCooldownConfig)
def warmup_cooldown(cfg: WarmupCooldownConfig) -> Schedule:
    def lr(f: float) -> float:
        f = min(max(f, 0.0), 1.0)
        if cfg.warmup > 0 and f < cfg.warmup:
            return f / cfg.warmup
        if cfg.cooldown > 0 and f > 1.0 - cfg.cooldown:
            left = (1.0 - f) / cfg.cooldown          # 1 -> 0 over the cooldown
            return cfg.final_ratio + left * (1.0 - cfg.final_ratio)
        return 1.0

    return lr
