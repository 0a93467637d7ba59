"""Every optimizer trains, checkpoints with weights_only, and reports its state memory right."""

from __future__ import annotations

import functools
import io

import pytest
import torch
from torch import nn

from tests.conftest import compose_job
from trainer.models import build_model
from trainer.models.roles import Declared, Role, param_kinds
from trainer.optim import OPTIMIZERS, build_optimizer, state_bytes_per_param

VOCAB = 16


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: threads only add contention on the shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def tiny_job(name: str, d_model: int):
    return compose_job(
        f"optim={name}", f"model.d_model={d_model}", "model.n_layers=1", "data.seq_len=8"
    )


def tiny_lm(name: str, d_model: int = 16):
    job = tiny_job(name, d_model)
    torch.manual_seed(0)
    model = build_model(job.model, VOCAB, causal=True)
    return model, build_optimizer(job.optim, model)


def step(model, opt, batch: torch.Tensor) -> float:
    loss = model.loss(batch[:, :-1], batch[:, 1:], z_loss=0.0)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_reduces_the_loss_and_its_state_loads_weights_only(name):
    model, opt = tiny_lm(name)
    batch = torch.randint(0, VOCAB, (4, 9), generator=torch.Generator().manual_seed(0))
    losses = [step(model, opt, batch) for _ in range(20)]
    assert losses[-1] < losses[0] - 0.05, losses  # its YAML defaults, on one fixed batch

    # Checkpoints load with weights_only=True, and a resumed run continues bit for bit.
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed_model, resumed = tiny_lm(name)
    resumed_model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["optimizer"])
    assert step(resumed_model, resumed, batch) == step(model, opt, batch)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)


M, N = 16, 64  # > 512 entries: ScalableShampoo leaves smaller tensors to its graft


class OneMatrix(nn.Module):
    """A single M x N hidden matrix, so every state tensor can be predicted."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(N, M, bias=False)])

    def param_roles(self):
        yield Declared(self.blocks[0].weight, Role.HIDDEN)


# bytes of fp32 state for one M x N matrix, per pytorch-optimizer 4.1.0 / torch 2.13 internals
EXPECTED_BYTES = {
    "adam": 4 * (2 * M * N + 1),  # exp_avg, exp_avg_sq, step (0-d tensor)
    "adamw": 4 * (2 * M * N + 1),
    "sgd": 4 * M * N,  # momentum_buffer
    "lion": 4 * M * N,  # exp_avg
    "tiger": 4 * M * N,
    "muon": 4 * M * N,  # momentum_buffer (a hidden matrix)
    "sm3": 4 * (M * N + M + N),  # momentum, row and column accumulators
    "adafactor": 4 * (M + N),  # row and column EMAs
    "shampoo": 4 * (3 * M * N + 2 * (M * M + N * N)),  # momentum, graft (RMSProp: 2), L, R, roots
    "soap": 4 * (2 * M * N + 2 * (M * M + N * N)),  # Adam moments; GG and Q are lists of 2 matrices
}


def test_every_optimizer_has_an_expected_state_size():
    assert sorted(EXPECTED_BYTES) == OPTIMIZERS.names()


@pytest.mark.parametrize("name", sorted(EXPECTED_BYTES))
def test_state_bytes_per_param_counts_every_tensor_once(name):
    model = OneMatrix()
    opt = build_optimizer(compose_job(f"optim={name}").optim, model)
    x = torch.randn(3, N, generator=torch.Generator().manual_seed(0))
    model.blocks[0](x).square().sum().backward()
    opt.step()  # the loop measures after its first step
    opt.zero_grad(set_to_none=True)
    assert state_bytes_per_param(opt) == pytest.approx(EXPECTED_BYTES[name] / (M * N))
    # an alias of a buffer is the same memory
    state = next(iter(opt.state.values()))
    state["alias"] = [next(t for t in state.values() if torch.is_tensor(t))]
    assert state_bytes_per_param(opt) == pytest.approx(EXPECTED_BYTES[name] / (M * N))


def test_sm3_state_is_about_half_of_adams():
    """Anil et al. 2019: SM3's accumulators are O(m + n) per matrix; with momentum its state
    is one buffer to Adam's two."""

    def bytes_after_one_step(name):
        model, opt = tiny_lm(name, d_model=64)
        step(model, opt, torch.randint(0, VOCAB, (2, 9)))
        return state_bytes_per_param(opt)

    adam, sm3 = bytes_after_one_step("adam"), bytes_after_one_step("sm3")
    assert adam == pytest.approx(8, abs=0.01)
    assert 0.5 <= sm3 / adam < 0.52


def groups_by(opt, key):
    return {
        value: {p for g in opt.param_groups if g[key] == value for p in g["params"]}
        for value in {g[key] for g in opt.param_groups}
    }


@pytest.mark.parametrize(
    "model_overrides",
    [(), ("model=gau", "model.qk_dim=8"), ("model.rezero=true", "model.norm=none")],
)
def test_groups_follow_the_declared_roles(model_overrides):
    """Decay for weights only and Muon for the blocks' matrices, by role: never GAU's per-dim
    Q/K scales (2-D, yet vectors), a ReZero gate or a norm's gain."""
    job = compose_job(
        "optim=muon", "model.d_model=16", "model.n_layers=1", "data.seq_len=8", *model_overrides
    )
    model = build_model(job.model, VOCAB, causal=True)
    opt = build_optimizer(job.optim, model)
    kinds = param_kinds(model)
    by_decay, by_muon = groups_by(opt, "weight_decay"), groups_by(opt, "use_muon")
    assert by_decay[0.0] == {p for p, k in kinds.items() if not k.decayed}
    assert by_muon[True] == {p for p, k in kinds.items() if k.hidden_matrix}
    assert by_muon[True] | by_muon[False] == set(model.parameters())
    assert model.embed.weight in by_muon[False]
    vectors = {
        p
        for m in model.modules()
        for n, p in m.named_parameters(recurse=False)
        if n in ("qk_scale", "qk_offset", "gate") or isinstance(m, nn.LayerNorm)
    }
    assert vectors and not vectors & (by_muon[True] | by_decay[job.optim.weight_decay])


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ("optim=sgd optim.weight_decay=0.1", "optim.weight_decay=0.1 is invalid: torch SGD's"),
        ("optim=sgd optim.momentum=0 optim.nesterov=true", "Nesterov needs optim.momentum > 0"),
        ("optim=lion optim.beta2=1.0", "optim.beta2=1.0"),
        ("optim=adafactor optim.decay_rate=0.5", "optim.decay_rate=0.5"),
        ("optim=muon optim.ns_steps=0", "optim.ns_steps=0"),
        ("optim=soap optim.precondition_frequency=0", "optim.precondition_frequency=0"),
    ],
)
def test_bad_optimizer_values_name_the_field(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        compose_job(*overrides.split())
