"""Objectives: clm is next-token prediction; mlm masks BERT-style, deterministically, scores
only the masked positions, and trains a bidirectional model."""

import pytest
import torch

from tests.conftest import compose_job
from trainer.models import build_model
from trainer.objectives import IGNORE, OBJECTIVES, MaskedLM, MLMConfig, mask_tokens

VOCAB = 257  # data vocabulary; the model gets one more id, [MASK]
MASK = VOCAB


def test_mlm_job_builds_a_bidirectional_model_with_a_mask_id():
    job = compose_job("objective=mlm")
    assert job.objective.causal is False and job.objective.extra_tokens == 1
    assert job.objective.mask_prob == 0.15


@pytest.mark.parametrize(
    "override,needle",
    [
        ("objective.mask_prob=0", "objective.mask_prob=0"),
        ("objective.replace_random=0.3", r"replace_mask \+ replace_random <= 1"),
        ("objective.extra_tokens=0", "objective.extra_tokens=0"),
    ],
)
def test_bad_mlm_values_fail_at_composition(override, needle):
    with pytest.raises(ValueError, match=needle):
        compose_job("objective=mlm", override)


def test_masking_follows_bert_80_10_10():
    x = torch.randint(0, VOCAB, (64, 200))
    inputs, targets = mask_tokens(x, MLMConfig(), MASK, torch.Generator().manual_seed(0))
    chosen = targets != IGNORE
    assert (chosen.sum(1) == 30).all()  # round(0.15 * 200) per sequence
    assert torch.equal(targets[chosen], x[chosen])
    assert torch.equal(inputs[~chosen], x[~chosen])  # unchosen positions untouched
    shown = inputs[chosen]
    as_mask = (shown == MASK).float().mean().item()
    unchanged = (shown == x[chosen]).float().mean().item()  # kept, or randomly the same id
    assert as_mask == pytest.approx(0.8, abs=0.03)
    assert unchanged == pytest.approx(0.1, abs=0.03)
    assert (inputs < MASK).sum() == (~chosen).sum() + (shown != MASK).sum()  # random ids < MASK


class Recorder:
    """Stands in for a model: records the targets mlm asks it to score."""

    vocab_size = VOCAB + 1

    def __init__(self):
        self.targets = []

    def loss(self, inputs, targets, *, z_loss):
        self.targets.append(targets)
        return torch.zeros(())


def test_masks_are_seeded_by_seed_and_step():
    w = torch.randint(0, VOCAB, (4, 33))

    def masks(seed, step, calls=1):
        loss, model = OBJECTIVES.build(MLMConfig(), seed=seed, z_loss=0.0), Recorder()
        for _ in range(calls):
            loss(model, w, step)
        return model.targets

    assert torch.equal(masks(0, 5)[0], masks(0, 5)[0])  # reproducible (and on resume)
    assert not torch.equal(masks(0, 5)[0], masks(0, 6)[0])  # new masks every step
    assert not torch.equal(masks(0, 5)[0], masks(1, 5)[0])  # and every seed
    first, second = masks(0, 5, calls=2)  # micro-batches of one step differ
    assert not torch.equal(first, second)
    fixed = masks(0, None)[0]  # evaluation: the same every time
    assert all(torch.equal(m, fixed) for m in masks(0, None, calls=2))


def test_each_rank_masks_its_micro_batches_its_own_way_and_evaluates_alike():
    w = torch.randint(0, VOCAB, (4, 33))

    def mask(rank, step):
        model = Recorder()
        MaskedLM(MLMConfig(), seed=0, z_loss=0.0, rank=rank)(model, w, step)
        return model.targets[0]

    assert torch.equal(mask(1, 5), mask(1, 5))
    assert not torch.equal(mask(0, 5), mask(1, 5))  # were equal: every rank masked alike
    assert torch.equal(mask(0, None), mask(1, None))


def test_mlm_model_sees_the_future_and_learns():
    torch.manual_seed(0)
    job = compose_job(
        "model=transformer",
        "model.d_model=32",
        "model.n_layers=1",
        "data.seq_len=16",
        "objective=mlm",
    )
    model = build_model(job.model, VOCAB + job.objective.extra_tokens, causal=job.objective.causal)
    x = torch.randint(0, VOCAB, (2, 16))
    y = x.clone()
    y[:, 10] = (y[:, 10] + 1) % VOCAB
    with torch.no_grad():
        assert not torch.allclose(model(x)[:, :10], model(y)[:, :10], atol=1e-5)

    loss = OBJECTIVES.build(job.objective, seed=0, z_loss=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    w = torch.randint(0, 16, (8, 17))
    losses = []
    for step in range(10):
        value = loss(model, w, step)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5, losses


def test_clm_is_next_token_prediction():
    model = build_model(
        compose_job("model=mixer", "model.d_model=16", "model.n_layers=1", "data.seq_len=8").model,
        VOCAB,
        causal=True,
    )
    w = torch.randint(0, VOCAB, (2, 9))
    loss = OBJECTIVES.build(compose_job().objective, seed=0, z_loss=0.0)
    plain = model.loss(w[:, :-1], w[:, 1:], z_loss=0.0)
    assert loss(model, w, 0).item() == pytest.approx(plain.item())
