"""What every model family must provide, checked over the MODELS registry rather than by
convention: a declared role for every parameter, each row exactly once (its init, weight decay
and optimizer kind follow from it), and the FLOPs of its blocks' sequence mixing."""

import functools
import math

import pytest
import torch
from torch import nn

from tests.conftest import compose_job
from trainer.models import MODELS, build_model
from trainer.models.common import Block, CausalLM
from trainer.models.roles import Declared, Role, declarations

VOCAB = 257
FAMILIES = MODELS.names()
# Every family with biases (each Linear declares one more parameter), plus the variants that
# add or remove parameters: positions, ReZero gates, random synthesis, a plain MLP, DeepNet.
VARIANTS = [(name, ("model.bias=true",)) for name in FAMILIES] + [
    (
        "transformer",
        (
            "model.positions=scaled_sinusoidal",
            "model.rezero=true",
            "model.norm=none",
            "model.tie_embeddings=false",
        ),
    ),
    ("transformer", ("model.mlp=gelu", "model.positions=rotary")),
    ("synthesizer", ("model.synthesis=random",)),
    ("mixer", ("model.norm=post", "model.deepnet=true")),
]


@functools.lru_cache(maxsize=None)
def small(name: str, *overrides: str):
    gau = ("model.qk_dim=16",) if name == "gau" else ()
    return compose_job(
        f"model={name}", "model.d_model=32", "model.n_layers=2", "data.seq_len=24", *gau, *overrides
    ).model


def variant_id(v) -> str:
    return v if isinstance(v, str) else " ".join(v)


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=variant_id)
def test_every_parameter_has_exactly_one_role(name, overrides):
    model = build_model(small(name, *overrides), VOCAB, causal=True)
    times = {p: torch.zeros(len(p)) for p in model.parameters()}
    for d in declarations(model):
        times[d.param][d.rows] += 1
    assert all(bool((t == 1).all()) for t in times.values())


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_counts_its_sequence_mixing(name):
    model = build_model(small(name), VOCAB, causal=True)
    for block in model.blocks:
        assert type(block).mixing_flops_per_token is not Block.mixing_flops_per_token
        assert block.mixing_flops_per_token(24) > 0


class Undeclared(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(32, 32)

    def forward(self, x):
        return self.w(x)


class CountedBlock(Block):
    def mixing_flops_per_token(self, seq_len: int) -> int:
        return 0


def test_a_family_that_does_not_declare_its_parameters_cannot_be_built():
    cfg = small("transformer")
    with pytest.raises(
        TypeError,
        match=r"blocks\.0\.branches\.0\.f\.w\.weight has no declared "
        r"role.*blocks\.0\.branches\.0\.f\.w\.bias has no",
    ):
        CausalLM(cfg, VOCAB, [CountedBlock(cfg, Undeclared())])


def test_a_parameter_declared_twice_is_refused():
    class Twice(Undeclared):
        def param_roles(self):
            yield Declared(self.w.weight, Role.HIDDEN)
            yield Declared(self.w.weight, Role.OUTPUT, slice(0, 1))
            yield Declared(self.w.bias, Role.BIAS)

    cfg = small("transformer")
    with pytest.raises(TypeError, match=r"f\.w\.weight has rows declared twice"):
        CausalLM(cfg, VOCAB, [CountedBlock(cfg, Twice())])


def test_a_block_that_does_not_count_its_sequence_mixing_cannot_be_built():
    class Uncounted(Block):
        pass

    with pytest.raises(TypeError, match="abstract method.*mixing_flops_per_token"):
        Uncounted(small("transformer"), Undeclared())


def xavier(w: torch.Tensor) -> float:
    fan_out, fan_in = w.shape
    return math.sqrt(2 / (fan_in + fan_out))


@pytest.mark.parametrize(
    "name,overrides",
    [(name, ("model.bias=true",)) for name in FAMILIES]
    + [(name, ("model.norm=post", "model.deepnet=true")) for name in FAMILIES],
    ids=variant_id,
)
def test_init_follows_the_declared_roles(name, overrides):
    """GPT-2: N(0, 0.02), 0.02/sqrt(2L) into the residual stream, zero biases; DeepNet: Xavier
    per matrix, gain 1 for queries/keys and (8N)^(-1/4) per decoder layer for the rest."""
    cfg = small(name, *overrides)
    model = build_model(cfg, VOCAB, causal=True)
    M = sum(len(b.branches) for b in model.blocks)
    for d in declarations(model):
        w = d.tensor()
        if d.role is Role.BIAS:
            assert not w.any()
        elif d.role.hidden_matrix and cfg.deepnet:
            gain = 1.0 if d.role is Role.LOGIT else (4 * M) ** -0.25
            assert w.std().item() == pytest.approx(gain * xavier(w), rel=0.15), d.role
        elif d.role in (Role.HIDDEN, Role.LOGIT, Role.OUTPUT, Role.EMBEDDING):
            std = 0.02 / math.sqrt(2 * cfg.n_layers) if d.role is Role.OUTPUT else 0.02
            assert w.std().item() == pytest.approx(std, rel=0.15), d.role
