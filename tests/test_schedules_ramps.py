"""Schedule and ramp math at budget fractions 0, 0.5 and 1; budgets as fractions and plans."""

import math

import pytest
import torch

from tests.conftest import compose_job
from trainer.budgets import (
    BUDGETS,
    Plan,
    Progress,
    SecondsBudgetConfig,
    StepsBudgetConfig,
    TokensBudgetConfig,
)
from trainer.ramps import RAMPS, ConstantRampConfig, LinearRampConfig, StagedRampConfig
from trainer.schedules import (
    SCHEDULES,
    ConstantConfig,
    CosineConfig,
    InverseSqrtConfig,
    LinearConfig,
    OneCycleConfig,
    WarmupCooldownConfig,
)


def test_constant_schedule():
    lr = SCHEDULES.build(ConstantConfig())
    assert [lr(f) for f in (0, 0.5, 1)] == [1, 1, 1]


def test_warmup_cooldown_trapezoid():
    lr = SCHEDULES.build(WarmupCooldownConfig(warmup=0.1, cooldown=0.2, final_ratio=0.0))
    assert lr(0) == 0
    assert lr(0.05) == pytest.approx(0.5)  # halfway up the warmup
    assert lr(0.5) == 1
    assert lr(0.9) == pytest.approx(0.5)  # halfway down the cooldown
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
    assert batch(0.25) == 32  # 16 + 0.5 * 48 = 40 -> whole micro-batches below: 32
    assert batch(0.5) == 64
    assert batch(1) == 64


def test_budget_fractions():
    steps = BUDGETS.build(StepsBudgetConfig(steps=200))
    tokens = BUDGETS.build(TokensBudgetConfig(tokens=1000))
    assert steps(Progress(steps=0)) == 0 and steps(Progress(steps=100)) == 0.5
    assert steps(Progress(steps=250)) == 1
    assert tokens(Progress(tokens=500)) == 0.5 and tokens(Progress(tokens=1000)) == 1


# --- schedules ------------------------------------------------------------------------------
def at(cfg, *fs):
    lr = SCHEDULES.build(cfg)
    return [lr(f) for f in fs]


def test_cosine_decays_to_final_ratio_along_half_a_cosine():
    assert at(CosineConfig(warmup=0.0, final_ratio=0.1), 0, 0.5, 1) == pytest.approx([1, 0.55, 0.1])
    # with a warmup, the cosine spans the rest of the budget: its midpoint is at 0.6
    assert at(CosineConfig(warmup=0.2, final_ratio=0.0), 0, 0.1, 0.6, 1) == pytest.approx(
        [0, 0.5, 0.5, 0]
    )


def test_linear_warmup_then_linear_decay():
    assert at(LinearConfig(warmup=0.0), 0, 0.5, 1) == pytest.approx([1, 0.5, 0])
    assert at(LinearConfig(warmup=0.5, final_ratio=0.2), 0, 0.25, 0.5, 1) == pytest.approx(
        [0, 0.5, 1, 0.2]
    )


def test_inverse_sqrt_peaks_at_the_end_of_warmup():
    # lr ~ min(f / w, sqrt(w / f)) with w = 0.04
    assert at(InverseSqrtConfig(warmup=0.04), 0, 0.02, 0.04, 0.5, 1) == pytest.approx(
        [0, 0.5, 1, math.sqrt(0.08), 0.2]
    )


def test_one_cycle_matches_torch_one_cycle_lr():
    cfg = OneCycleConfig(warmup=0.3, initial_ratio=0.04, final_ratio=4e-6)
    assert at(cfg, 0, 0.3, 0.65, 1) == pytest.approx([0.04, 1, (1 + 4e-6) / 2, 4e-6])
    # torch's OneCycleLR over 1001 steps (its phases end at step pct_start * total - 1)
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1.0, total_steps=1001, pct_start=0.3, cycle_momentum=False
    )
    ref = []
    for _ in range(1001):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert at(cfg, 0.1, 0.5, 0.9) == pytest.approx([ref[100], ref[500], ref[900]], abs=5e-3)


def test_warmup_and_cooldown_in_steps_need_budget_steps():
    # Cramming's convention: < 1 is a budget fraction, >= 1 a number of optimizer steps
    lr = SCHEDULES.build(WarmupCooldownConfig(warmup=100, cooldown=200, budget_steps=1000))
    assert [lr(f) for f in (0.05, 0.5, 0.9)] == pytest.approx([0.5, 1, 0.5])
    assert compose_job(
        "schedule=cosine", "schedule.warmup=30", "budget.steps=300"
    ).schedule.fraction("warmup") == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"schedule.warmup=200.0.*only budget=steps"):
        compose_job("budget=tokens", "schedule.warmup=200")
    with pytest.raises(ValueError, match=r"schedule.cooldown=400.0.*budget.steps=300"):
        compose_job("schedule.cooldown=400")
    with pytest.raises(ValueError, match=r"schedule.warmup=2.5.*whole number"):
        compose_job("schedule=linear", "schedule.warmup=2.5")
    with pytest.raises(ValueError, match="schedule.warmup"):
        InverseSqrtConfig(warmup=0.0)


# --- ramps ----------------------------------------------------------------------------------
def test_staged_ramp_holds_each_stage_until_the_next():
    cfg = StagedRampConfig(start=16, stages=[[0, 16], [0.3, 32], [0.6, 64]])
    batch = RAMPS.build(cfg, 16)
    assert [batch(f) for f in (0, 0.29, 0.3, 0.5, 0.6, 1)] == [16, 16, 32, 32, 64, 64]
    assert max(cfg.batch_sizes()) == 64
    assert StagedRampConfig(start=64, stages=[[0, 64], [0.5, 16]]).batch_sizes() == [64, 16]


@pytest.mark.parametrize(
    "stages,needle",
    [
        ([], "non-empty"),
        ([[0.1, 16]], "start at 0"),
        ([[0, 16], [0.5, 32], [0.4, 64]], "increase"),
        ([[0, 16], [1.0, 32]], "below 1"),
        ([[0, 16], [0.5, 0]], "> 0"),
        ([[0, 16], [0.5, 24.5]], "whole numbers"),
    ],
)
def test_staged_ramp_validation(stages, needle):
    with pytest.raises(ValueError, match=needle):
        StagedRampConfig(start=stages[0][1] if stages else 16, stages=stages)


def test_staged_ramp_composes_and_checks_micro_batches():
    job = compose_job("ramp=staged", "ramp.stages=[[0,8],[0.5,24]]", "train.micro_batch=8")
    assert job.ramp.start == 8 and max(job.ramp.batch_sizes()) == 24
    # A middle stage that is not whole micro-batches fails at composition (pre-flight).
    with pytest.raises(
        ValueError, match="ramp=staged batch size=40.*multiple of train.micro_batch=16"
    ):
        compose_job("ramp=staged", "ramp.stages=[[0,16],[0.5,40],[0.7,64]]")


# --- budgets --------------------------------------------------------------------------------
def test_seconds_budget_fraction():
    seconds = BUDGETS.build(SecondsBudgetConfig(seconds=3))
    assert seconds(Progress(steps=99, seconds=1.5)) == 0.5
    assert seconds(Progress(seconds=4)) == 1
    with pytest.raises(ValueError, match="budget.seconds=0.0"):
        compose_job("budget=seconds", "budget.seconds=0")


def test_budget_plans():
    ramp = RAMPS.build(LinearRampConfig(start=16, end=32, fraction=0.5), 16)
    per_step = lambda f: ramp(f) * 10  # noqa: E731  (10 tokens per sequence)
    # 100 steps: 16 sequences while the ramp is below 32 (f < 0.5), then 32
    assert StepsBudgetConfig(steps=100).plan(per_step) == Plan(100, 50 * 160 + 50 * 320)
    # 4 x 160 tokens take f to 0.64, where batches are 320: 960, then 1280 (the step that
    # crosses the budget still runs, as in the loop)
    assert TokensBudgetConfig(tokens=1000).plan(per_step) == Plan(6, 4 * 160 + 2 * 320)
    assert SecondsBudgetConfig(seconds=60).plan(per_step) is None
