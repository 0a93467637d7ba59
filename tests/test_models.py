"""Causality (and bidirectionality) of every family, the switches users ablate, and the
parameter/FLOP accounting the runs are tagged with."""

import functools
import math

import pytest
import torch

from tests.conftest import compose_job
from trainer.config import GROUPS
from trainer.models import build_model
from trainer.models.common import Residual, Rotary, SequenceMap

VOCAB = 257
T = 24
PERTURBED = 11  # the position whose token the causality tests change
FAMILIES = GROUPS["model"].names()
# Every family, plus the variants that change how tokens are mixed or positions enter.
VARIANTS = [(name, ()) for name in FAMILIES] + [
    ("transformer", ("model.positions=rotary",)),
    ("transformer", ("model.positions=scaled_sinusoidal", "model.norm=post")),
    ("synthesizer", ("model.synthesis=random",)),
    ("mixer", ("model.norm=none", "model.rezero=true")),
    ("gmlp", ("model.norm=post", "model.deepnet=true")),
]


def variant_id(v) -> str:
    return v if isinstance(v, str) else " ".join(v)


@functools.lru_cache(maxsize=None)
def small(name: str, *overrides: str):
    gau = ("model.qk_dim=16",) if name == "gau" else ()
    return compose_job(
        f"model={name}",
        "model.d_model=32",
        "model.n_layers=2",
        f"data.seq_len={T}",
        *gau,
        *overrides,
    ).model


def noisy(model):
    """Push every parameter off its init so no mixing path is dormant (ReZero gates at 0, gMLP's
    near-zero spatial weights): a leak through any mask must then show."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def logits_after_perturbing(model):
    x = torch.randint(0, VOCAB, (2, T))
    y = x.clone()
    y[:, PERTURBED] = (y[:, PERTURBED] + 1) % VOCAB
    with torch.no_grad():
        return model(x), model(y)


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=variant_id)
def test_future_tokens_do_not_change_earlier_logits(name, overrides):
    torch.manual_seed(0)
    a, b = logits_after_perturbing(noisy(build_model(small(name, *overrides), VOCAB, causal=True)))
    t = PERTURBED
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6), "logits before t saw token t"
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-4), "t reached nothing later"


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=variant_id)
def test_bidirectional_variant_sees_the_future(name, overrides):
    torch.manual_seed(0)
    model = noisy(build_model(small(name, *overrides), VOCAB, causal=False))
    a, b = logits_after_perturbing(model)
    t = PERTURBED
    assert not torch.allclose(a[:, :t], b[:, :t], atol=1e-4), "earlier logits ignored token t"


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_trains(name):
    torch.manual_seed(0)
    model = build_model(small(name), VOCAB, causal=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    w = torch.randint(0, 16, (4, T + 1))  # a small alphabet: quick to learn
    losses = []
    for _ in range(8):
        loss = model.loss(w[:, :-1], w[:, 1:], z_loss=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses
    with pytest.raises(TypeError, match="needs z_loss="):  # its one source: TrainConfig
        model(w[:, :-1], w[:, 1:])


@pytest.mark.parametrize("name", FAMILIES)
def test_param_counts_are_exact(name):
    cfg = small(name)
    model = build_model(cfg, VOCAB, causal=True)
    total, non_emb = model.param_counts()
    assert total == sum(p.numel() for p in model.parameters())  # tied head counted once
    positions = {"learned": cfg.max_seq_len * cfg.d_model, "scaled_sinusoidal": 1}
    assert total - non_emb == VOCAB * cfg.d_model + positions.get(cfg.positions, 0)


@pytest.mark.parametrize("name", ["mixer", "gmlp"])
def test_causal_maps_store_only_live_weights_and_full_maps_when_bidirectional(name):
    cfg = small(name)
    T_ = cfg.max_seq_len
    for causal, live in ((True, T_ * (T_ + 1) // 2), (False, T_ * T_)):
        maps = [
            m
            for m in build_model(cfg, VOCAB, causal=causal).modules()
            if isinstance(m, SequenceMap)
        ]
        assert maps and all(m.weight.numel() == live for m in maps)


def test_random_synthesizer_stores_a_causal_logit_map_per_head():
    cfg = small("synthesizer", "model.synthesis=random")
    (m,) = [
        m
        for m in build_model(cfg, VOCAB, causal=True).blocks[0].modules()
        if isinstance(m, SequenceMap)
    ]
    assert m.weight.shape == (cfg.n_heads, T * (T + 1) // 2)
    logits, past = m.matrix(T, fill=float("-inf")), torch.ones(T, T, dtype=torch.bool).tril()
    assert torch.isfinite(logits[:, past]).all() and torch.isinf(logits[:, ~past]).all()


def test_flops_per_token_follows_palm_for_the_transformer():
    cfg = small("transformer")
    model = build_model(cfg, VOCAB, causal=True)
    d, L = cfg.d_model, cfg.n_layers
    block_params = sum(p.numel() for p in model.blocks.parameters())
    assert model.flops_per_token(T) == 6 * block_params + 12 * L * T * d + 6 * d * VOCAB


@pytest.mark.parametrize(
    "name,mixing",
    [
        ("mixer", lambda c: 12 * T * c.d_model),  # two T x T maps per channel
        ("gmlp", lambda c: 6 * T * 3 * c.d_model),  # one map per gated channel (d_ffn/2)
        ("gau", lambda c: 6 * T * (c.qk_dim + 2 * c.d_model)),  # QK^T and AV
        ("synthesizer", lambda c: 6 * T * c.d_model),  # AV only
    ],
)
def test_flops_count_sequence_maps_per_channel_not_per_weight(name, mixing):
    cfg = small(name)
    model = build_model(cfg, VOCAB, causal=True)
    per_token = sum(p.numel() for p in model.blocks.parameters()) - sum(
        m.weight.numel() for m in model.blocks.modules() if isinstance(m, SequenceMap)
    )
    assert model.flops_per_token(T) == (
        6 * per_token + cfg.n_layers * mixing(cfg) + 6 * cfg.d_model * VOCAB
    )


def test_rezero_blocks_start_as_the_identity():
    model = build_model(small("mixer", "model.norm=none", "model.rezero=true"), VOCAB, causal=True)
    x = torch.randint(0, VOCAB, (1, T))
    with torch.no_grad():
        assert torch.equal(model(x), model.head(model.norm(model.embed(x))))
    gates = [m.gate for m in model.modules() if isinstance(m, Residual)]
    assert len(gates) == 4 and all(g.requires_grad and g.item() == 0 for g in gates)


def test_deepnet_scales_the_shortcut_and_the_init_by_depth():
    cfg = small("transformer", "model.norm=post", "model.deepnet=true")
    model = build_model(cfg, VOCAB, causal=True)
    branches = [m for m in model.modules() if isinstance(m, Residual)]
    N = cfg.n_layers  # decoder-only: alpha=(2N)^1/4, beta=(8N)^-1/4
    assert all(b.alpha == pytest.approx((2 * N) ** 0.25) for b in branches)
    q, k, v = model.blocks[0].branches[0].f.qkv.weight.split(cfg.d_model)  # one fused GEMM
    xavier = math.sqrt(2 / (2 * cfg.d_model))  # each d x d projection on its own
    assert v.std().item() == pytest.approx(xavier * (8 * N) ** -0.25, rel=0.15)
    assert q.std().item() == pytest.approx(xavier, rel=0.15)  # queries, keys: gain 1
    assert k.std().item() == pytest.approx(xavier, rel=0.15)


def test_attention_reads_queries_keys_and_values_from_the_rows_its_roles_declare():
    """qkv's rows are [q; k; v], head by head (roles and DeepNet's init rely on it): the
    module's output is causal softmax attention computed from those row blocks by hand."""
    torch.manual_seed(0)
    cfg = small("transformer", "model.n_heads=4")
    attn = build_model(cfg, VOCAB, causal=True).blocks[0].branches[0].f
    d, H = cfg.d_model, cfg.n_heads
    x = torch.randn(2, T, d)
    wq, wk, wv = attn.qkv.weight.split(d)
    q, k, v = ((x @ w.T).view(2, T, H, d // H).transpose(1, 2) for w in (wq, wk, wv))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // H)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    expected = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, T, d))
    with torch.no_grad():
        assert torch.allclose(attn(x), expected, atol=1e-5)


def test_deepnet_needs_post_norm_and_excludes_rezero():
    with pytest.raises(ValueError, match="model.deepnet=True.*model.norm=post"):
        small("transformer", "model.deepnet=true")
    with pytest.raises(ValueError, match="model.rezero=True"):
        small("mixer", "model.norm=post", "model.deepnet=true", "model.rezero=true")


def test_rotary_scores_depend_on_relative_position_only():
    torch.manual_seed(0)
    rot, q, k = Rotary(8, 16), torch.randn(8), torch.randn(8)

    def score(i, j):  # q at position i against k at position j
        qs, ks = torch.zeros(16, 8), torch.zeros(16, 8)
        qs[i], ks[j] = q, k
        return (rot(qs)[i] @ rot(ks)[j]).item()

    assert score(5, 2) == pytest.approx(score(12, 9), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_scaled_sinusoidal_positions_carry_one_learned_scale():
    model = build_model(
        small("transformer", "model.positions=scaled_sinusoidal"), VOCAB, causal=True
    )
    assert model.pos_scale.requires_grad and model.pos_scale.item() == pytest.approx(32**-0.5)


def test_rotary_is_refused_where_there_are_no_queries_and_keys():
    with pytest.raises(ValueError, match="model.positions='rotary'.*valid choices"):
        small("mixer", "model.positions=rotary")


def test_shorter_sequences_than_max_are_supported():
    for name in FAMILIES:
        model = build_model(small(name), VOCAB, causal=True)
        assert model(torch.randint(0, VOCAB, (1, 10))).shape == (1, 10, VOCAB)
