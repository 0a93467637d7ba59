"""Stability knobs: z-loss, adaptive gradient clipping, and the non-finite step guard."""

import math

import pytest
import torch

from tests.conftest import compose_job, tiny
from trainer.loop import Trainer
from trainer.models import build_model
from trainer.objectives import OBJECTIVES
from trainer.optim.clipping import adaptive_clip_

TINY = tiny("train.threads=1")


def test_z_loss_adds_log_z_squared_in_training_only():
    job = compose_job(*TINY)
    model = build_model(job.model, 257, causal=True)
    x = torch.randint(0, 257, (2, 33))
    plain = model.loss(x[:, :-1], x[:, 1:], z_loss=0.0).item()
    z = torch.logsumexp(model(x[:, :-1]).float(), dim=-1).pow(2).mean().item()
    assert model.loss(x[:, :-1], x[:, 1:], z_loss=1e-2).item() == pytest.approx(
        plain + 1e-2 * z, rel=1e-5
    )
    objective = OBJECTIVES.build(job.objective, seed=0, z_loss=1e-2)
    assert objective(model, x, 0).item() == pytest.approx(plain + 1e-2 * z, rel=1e-5)
    assert objective(model, x).item() == pytest.approx(plain, rel=1e-6)  # evaluation


def trainer_for(cache_dir, *overrides):
    return Trainer(compose_job(*TINY, f"data.cache_dir={cache_dir}", *overrides))


def test_agc_bounds_each_row_update(cache_dir):
    # With plain SGD the update is lr * grad, so AGC's bound |g_row| <= agc * |w_row| is visible
    # in the weights: no row of any matrix moves by more than lr * agc * its norm (+ eps floor).
    t = trainer_for(
        cache_dir,
        "optim=sgd",
        "optim.lr=1.0",
        "optim.momentum=0",
        "optim.nesterov=false",
        "train.agc=0.01",
        "train.grad_clip=0",
        "schedule=constant",
    )
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    *_, finite = t.step()
    assert finite
    for n, p in t.model.named_parameters():
        if p.ndim == 2:
            moved = (p.detach() - before[n]).norm(dim=1)
            bound = 0.01 * before[n].norm(dim=1).clamp_min(1e-3)
            assert (moved <= bound * 1.0001 + 1e-7).all(), n


def test_non_finite_step_is_skipped_not_applied(cache_dir):
    t = trainer_for(cache_dir, "optim.lr=1e30", "schedule=constant")
    *_, finite = t.step()  # finite loss, weights sent past float32 range
    assert finite
    weights = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    *_, finite = t.step()
    assert not finite
    for n, p in t.model.named_parameters():  # the NaN step left every weight as it was
        assert torch.equal(p.detach(), weights[n]) or (
            torch.isnan(p).all() and torch.isnan(weights[n]).all()
        ), n


def test_stability_options_train(cache_dir):
    t = trainer_for(cache_dir, "train.agc=0.003", "train.z_loss=1e-4", "schedule=constant")
    losses = [t.step()[2] for _ in range(15)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0] - 0.3


def test_adaptive_clipping_is_pytorch_optimizers_agc_in_batched_kernels():
    from pytorch_optimizer.optimizer.agc import agc

    torch.manual_seed(0)
    model = build_model(compose_job(*TINY, "model.bias=true").model, 257, causal=True)
    for p in model.parameters():  # small matrix gradients pass, large vector ones clip
        p.grad = torch.randn_like(p) * (1e-4 if p.ndim > 1 else 1.0)
    p0 = next(p for p in model.parameters() if p.ndim > 1)
    p0.grad[0] *= 1e4  # one unit of a matrix clips, the others not
    before = [p.grad.clone() for p in model.parameters()]
    expected = [agc(p, p.grad, agc_clip_val=0.01) for p in model.parameters()]
    clipped = [not torch.equal(e, b) for e, b in zip(expected, before)]
    assert any(clipped) and not all(clipped)
    adaptive_clip_(model.parameters(), 0.01)
    assert all(torch.equal(e, p.grad) for e, p in zip(expected, model.parameters()))
