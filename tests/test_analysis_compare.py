"""Equal-budget comparisons from histories, winners from fitted laws, frontier, holdout check."""

import numpy as np
import pandas as pd
import pytest

from analysis.compare import compare_at_equal, history_frontier, pareto_front, winners_from_fits
from analysis.errors import AnalysisError
from analysis.groups import labels
from analysis.holdout import extrapolation_check
from analysis.powerlaw import PowerLawFit
from trainer import schema


def _runs_and_histories(curves):
    """curves: run_id -> (variant, lr, seed, diverged, tokens array, loss array)."""
    runs = pd.DataFrame([{"run_id": r, "model.name": v, "optim.lr": lr, "seed": s, "diverged": dv}
                         for r, (v, lr, s, dv, _, _) in curves.items()])
    hist = pd.concat([pd.DataFrame({"run_id": r, "step": np.arange(len(t)), schema.TOKENS: t,
                                    schema.FLOPS: 6e6 * t, schema.WALL_CLOCK: t / (2e3 if v == "mixer" else 1e3),
                                    "metric": schema.VAL_LOSS, "value": y})
                      for r, (v, _, _, _, t, y) in curves.items()], ignore_index=True)
    return runs, hist


def test_equal_tokens_and_wall_clock_pick_different_winners():
    t = np.geomspace(1e3, 1e6, 20)
    curves = {
        "tr-a": ("transformer", 1e-3, 0, False, t, 2 + 20 * t ** -0.3),
        "tr-b": ("transformer", 1e-3, 1, False, t, 2.02 + 20 * t ** -0.3),
        "tr-lr": ("transformer", 3e-3, 0, False, t, 2.5 + 20 * t ** -0.3),  # worse lr: not the variant's best
        "mx": ("mixer", 1e-3, 0, False, t * 1.0, 2.05 + 20 * t ** -0.3),
        "mx-nan": ("mixer", 1e-3, 1, True, t[:5], np.r_[3.0, 2.9, np.nan, np.nan, np.nan]),
    }
    runs, hist = _runs_and_histories(curves)
    cell = ["model.name", "optim.lr"]
    tok = compare_at_equal(runs, hist, schema.TOKENS, ["model.name"], cell, n_points=5)
    assert tok.excluded == ("mx-nan",)
    assert tok.common_range == (1e3, 1e6)
    assert (tok.table["winner"] == "transformer").all()
    # transformer = mean of its two seeds at lr 1e-3 (the best cell), sem over them
    expected = 2.01 + 20 * tok.table.index.to_numpy() ** -0.3
    np.testing.assert_allclose(tok.table["transformer"], expected, rtol=5e-3)   # linear interpolation
    assert tok.sem["transformer"].iloc[0] == pytest.approx(0.01, rel=1e-6)
    # the mixer runs twice as fast: at equal wall-clock it has seen 2x the tokens and wins
    wall = compare_at_equal(runs, hist, schema.WALL_CLOCK, ["model.name"], cell, n_points=5)
    assert wall.common_range == (pytest.approx(1.0), pytest.approx(500.0))
    assert (wall.table["winner"] == "mixer").all()


def test_no_shared_range_is_a_clear_error():
    t = np.geomspace(1e3, 1e4, 5)
    runs, hist = _runs_and_histories({"a": ("x", 1, 0, False, t, 3 - t / 1e5),
                                      "b": ("y", 1, 0, False, t * 100, 3 - t / 1e5)})
    with pytest.raises(AnalysisError, match="share no tokens range"):
        compare_at_equal(runs, hist, schema.TOKENS, ["model.name"], ["model.name"])


def test_winners_from_fitted_laws():
    meta = dict(irreducible=True, objective=0.0, n_points=10, x_min=1e15, x_max=1e18)
    fits = {"steep": PowerLawFit(E=2.0, A=1e3, alpha=0.2, **meta),    # 3.00, 2.25, 2.06
            "flat": PowerLawFit(E=1.2, A=30.0, alpha=0.08, **meta)}    # 3.09, 2.29, 1.83
    table = winners_from_fits(fits, [1e15, 1e18, 1e21])
    assert table["winner"].tolist() == ["steep", "steep", "flat"]
    assert table["extrapolated"].tolist() == [False, False, True]


def test_frontier_is_lower_envelope():
    t = np.geomspace(1e3, 1e6, 30)
    runs, hist = _runs_and_histories({
        "small": ("transformer", 1, 0, False, t, 3 + 10 * t ** -0.5),
        "big": ("transformer", 1, 1, False, t, 2.5 + 40 * t ** -0.5)})
    front = history_frontier(runs, hist, schema.TOKENS, labels(runs, ["model.name"]), n_bins=10)
    env = np.minimum(3 + 10 * front[schema.TOKENS] ** -0.5, 2.5 + 40 * front[schema.TOKENS] ** -0.5)
    np.testing.assert_allclose(front[schema.VAL_LOSS], env)
    assert front[schema.VAL_LOSS].is_monotonic_decreasing
    pts = pd.DataFrame({"x": [1, 2, 3, 4], "y": [5, 3, 4, 2]})
    assert pareto_front(pts, "x", "y")["x"].tolist() == [1, 2, 4]


def test_extrapolation_check_holds_out_the_largest_budget():
    budget = np.repeat([1e18, 1e19, 1e20, 1e21], 3)
    observed = 2 + 100 * budget ** -0.1
    check = extrapolation_check(budget, observed, lambda tr, te: 1.01 * observed[te])
    assert check.threshold == 1e21 and check.n_test == 3 and check.n_train == 9
    assert check.mean_abs_rel_error == pytest.approx(0.01)
    with pytest.raises(AnalysisError, match=">= 2 smaller budgets"):
        extrapolation_check(budget[6:], observed[6:], lambda tr, te: observed[te])
