"""Schedule and ramp math at budget fractions 0, 0.5 and 1; budgets as fractions."""
import pytest

from trainer.budgets import BUDGETS, Progress, StepsBudgetConfig, TokensBudgetConfig
from trainer.ramps import RAMPS, ConstantRampConfig, LinearRampConfig
from trainer.schedules import SCHEDULES, ConstantConfig, WarmupCooldownConfig


def test_constant_schedule():
    lr = SCHEDULES.build(ConstantConfig())
    assert [lr(f) for f in (0, 0.5, 1)] == [1, 1, 1]


def test_warmup_cooldown_trapezoid():
    lr = SCHEDULES.build(WarmupCooldownConfig(warmup=0.1, cooldown=0.2, final_ratio=0.0))
    assert lr(0) == 0
    assert lr(0.05) == pytest.approx(0.5)      # halfway up the warmup
    assert lr(0.5) == 1
    assert lr(0.9) == pytest.approx(0.5)       # halfway down the cooldown
    assert lr(1) == 0


def test_cooldown_ends_at_final_ratio():
    lr = SCHEDULES.build(WarmupCooldownConfig(warmup=0.0, cooldown=0.5, final_ratio=0.1))
    assert lr(0) == 1 and lr(0.5) == 1 and lr(1) == pytest.approx(0.1)


def test_constant_ramp():
    batch = RAMPS.build(ConstantRampConfig(start=32), 16)
    assert [batch(f) for f in (0, 0.5, 1)] == [32, 32, 32]


def test_linear_ramp_in_whole_micro_batches():
    batch = RAMPS.build(LinearRampConfig(start=16, end=64, fraction=0.5), 16)
    assert batch(0) == 16
    assert batch(0.25) == 32       # 16 + 0.5 * 48 = 40 -> whole micro-batches below: 32
    assert batch(0.5) == 64
    assert batch(1) == 64


def test_budget_fractions():
    steps = BUDGETS.build(StepsBudgetConfig(steps=200))
    tokens = BUDGETS.build(TokensBudgetConfig(tokens=1000))
    assert steps(Progress(steps=0)) == 0 and steps(Progress(steps=100)) == 0.5
    assert steps(Progress(steps=250)) == 1
    assert tokens(Progress(tokens=500)) == 0.5 and tokens(Progress(tokens=1000)) == 1
