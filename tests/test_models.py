"""Causality of every family, and the parameter/FLOP accounting the runs are tagged with."""
import pytest
import torch

from tests.conftest import compose_job
from trainer.config import GROUPS
from trainer.models import build_model

VOCAB = 257


def small(name: str):
    return compose_job(f"model={name}", "model.d_model=32", "model.n_layers=2",
                       "data.seq_len=24").model


@pytest.mark.parametrize("name", GROUPS["model"].names())
def test_future_tokens_do_not_change_earlier_logits(name):
    torch.manual_seed(0)
    model = build_model(small(name), VOCAB).eval()
    x = torch.randint(0, VOCAB, (2, 24))
    t = 11
    y = x.clone()
    y[:, t] = (y[:, t] + 1) % VOCAB                    # perturb one position
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6), "logits before t saw token t"
    assert not torch.allclose(a[:, t:], b[:, t:], atol=1e-6), "token t changed nothing after it"


@pytest.mark.parametrize("name", GROUPS["model"].names())
def test_param_counts_are_exact(name):
    cfg = small(name)
    model = build_model(cfg, VOCAB)
    total, non_emb = model.param_counts()
    assert total == sum(p.numel() for p in model.parameters())   # tied head counted once
    emb = VOCAB * cfg.d_model + (cfg.max_seq_len * cfg.d_model if name == "transformer" else 0)
    assert total - non_emb == emb


def test_mixer_stores_only_live_token_mixing_weights():
    cfg = small("mixer")
    model = build_model(cfg, VOCAB)
    mixing = model.blocks[0].tokens
    T = cfg.max_seq_len
    assert mixing.w1.numel() == mixing.w2.numel() == T * (T + 1) // 2


def test_flops_per_token_follows_palm_for_the_transformer():
    cfg = small("transformer")
    model = build_model(cfg, VOCAB)
    T, d, L = 24, cfg.d_model, cfg.n_layers
    block_params = sum(p.numel() for p in model.blocks.parameters())
    assert model.flops_per_token(T) == 6 * block_params + 12 * L * T * d + 6 * d * VOCAB


def test_shorter_sequences_than_max_are_supported():
    model = build_model(small("mixer"), VOCAB)
    assert model(torch.randint(0, VOCAB, (1, 10))).shape == (1, 10, VOCAB)
