"""Training-window order: seeded random (default), unigram curriculum and its reverse."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import compose_job
from trainer.data.order import (
    RandomOrderConfig,
    ReverseUnigramOrderConfig,
    UnigramOrderConfig,
    unigram_scores,
)
from trainer.data.prepare import Sequences

T = 8


def crafted_stream(easy_at: int = 5, n: int = 12) -> np.ndarray:
    """n windows of T tokens drawn from 40 ids, except window `easy_at`: the most common id
    repeated (common, repetitive text), so its mean unigram log-probability is the highest."""
    rng = np.random.default_rng(0)
    windows = rng.integers(1, 41, size=(n, T))
    windows[:, 0] = 0  # id 0 is the most frequent overall
    windows[easy_at] = 0
    return np.append(windows.reshape(-1), 0)  # + the last window's final target


def test_unigram_puts_the_easy_window_first_and_reverse_puts_it_last():
    tokens = crafted_stream()
    easy = tokens[5 * T : 6 * T + 1]
    uni = Sequences(tokens, T, seed=0, order=UnigramOrderConfig()).next(12)
    rev = Sequences(tokens, T, seed=0, order=ReverseUnigramOrderConfig()).next(12)
    assert (uni[0] == easy).all() and (rev[-1] == easy).all()
    scores = unigram_scores(tokens[:-1].reshape(12, T), 1.0)
    index = {tokens[i * T : i * T + T + 1].tobytes(): i for i in range(12)}
    uni_idx, rev_idx = ([index[w.tobytes()] for w in ws] for ws in (uni, rev))
    assert sorted(uni_idx) == sorted(rev_idx) == list(range(12))  # every window once
    assert (np.diff(scores[uni_idx]) <= 0).all() and (np.diff(scores[rev_idx]) >= 0).all()


def test_scores_are_mean_add_k_log_probabilities():
    inputs = np.array([[0, 0], [0, 1], [2, 2]])
    counts = np.array([3, 1, 2])  # ids 0, 1, 2 over the split
    logp = np.log((counts + 0.5) / (6 + 0.5 * 3))
    expected = [logp[0], (logp[0] + logp[1]) / 2, logp[2]]
    assert unigram_scores(inputs, 0.5) == pytest.approx(expected)


def test_a_curriculum_repeats_every_epoch_and_resumes_from_the_cursor():
    tokens = crafted_stream()
    s = Sequences(tokens, T, seed=0, order=UnigramOrderConfig())
    first = np.concatenate([s.next(5) for _ in range(6)])  # 30 windows: 2.5 epochs
    assert (first[:12] == first[12:24]).all()
    again = Sequences(tokens, T, seed=0, order=UnigramOrderConfig())
    again.cursor = 7
    assert (again.next(23) == first[7:]).all()


def test_random_is_the_default_and_reshuffles_each_epoch():
    tokens = np.arange(10 * T + 1)
    default = Sequences(tokens, T, seed=3).next(20)
    explicit = Sequences(tokens, T, seed=3, order=RandomOrderConfig()).next(20)
    assert (default == explicit).all()
    e0, e1 = default[:10, 0] // T, default[10:, 0] // T
    assert sorted(e0) == sorted(e1) == list(range(10)) and (e0 != e1).any()


def test_order_group_composes_and_validates():
    assert compose_job().order == RandomOrderConfig()
    assert compose_job("order=reverse_unigram", "order.smoothing=0.1").order.smoothing == 0.1
    with pytest.raises(ValueError, match="order.smoothing=0"):
        compose_job("order=unigram", "order.smoothing=0")
