"""Equal-budget comparisons from histories, winners from fitted laws, frontier, holdout check."""

import numpy as np
import pandas as pd
import pytest

from analysis.compare import compare_at_equal, history_frontier, pareto_front, winners_from_fits
from analysis.errors import AnalysisError
from analysis.groups import labels
from analysis.holdout import extrapolation_check
from analysis.load import empty_histories
from analysis.powerlaw import PowerLawFit
from trainer import schema


def _runs_and_histories(curves):
    """curves: run_id -> (variant, lr, seed, diverged, tokens array, loss array)."""
    runs = pd.DataFrame(
        [
            {"run_id": r, "model.name": v, "optim.lr": lr, "seed": s, "diverged": dv}
            for r, (v, lr, s, dv, _, _) in curves.items()
        ]
    )
    hist = pd.concat(
        [
            pd.DataFrame(
                {
                    "run_id": r,
                    "step": np.arange(len(t)),
                    schema.TOKENS: t,
                    schema.FLOPS: 6e6 * t,
                    schema.WALL_CLOCK: t / (2e3 if v == "mixer" else 1e3),
                    "metric": schema.VAL_LOSS,
                    "value": y,
                }
            )
            for r, (v, _, _, _, t, y) in curves.items()
        ],
        ignore_index=True,
    )
    return runs, hist


def _reached(t, y, grid):
    """The last (here also the best: the curves fall) value at t <= each grid value."""
    index = np.searchsorted(t, grid, side="right") - 1
    return np.where(index >= 0, y[np.maximum(index, 0)], np.nan)


def test_equal_tokens_and_wall_clock_pick_different_winners():
    t = np.geomspace(1e3, 1e6, 20)
    curves = {
        "tr-a": ("transformer", 1e-3, 0, False, t, 2 + 20 * t**-0.3),
        "tr-b": ("transformer", 1e-3, 1, False, t, 2.02 + 20 * t**-0.3),
        # a worse lr: not the variant's best
        "tr-lr": ("transformer", 3e-3, 0, False, t, 2.5 + 20 * t**-0.3),
        "mx": ("mixer", 1e-3, 0, False, t * 1.0, 2.05 + 20 * t**-0.3),
        "mx-nan": ("mixer", 1e-3, 1, True, t[:5], np.r_[3.0, 2.9, np.nan, np.nan, np.nan]),
    }
    runs, hist = _runs_and_histories(curves)
    cell = ["model.name", "optim.lr"]
    tok = compare_at_equal(runs, hist, schema.TOKENS, ["model.name"], cell, n_points=5)
    assert tok.excluded == ("mx-nan",)
    assert tok.common_range == (1e3, 1e6) and tok.how == "best"
    assert (tok.table["winner"] == "transformer").all() and (tok.table["absent"] == "").all()
    # transformer = mean of its two seeds at lr 1e-3 (the best cell), what they reached by T
    grid = tok.table.index.to_numpy()
    np.testing.assert_allclose(tok.table["transformer"], _reached(t, 2.01 + 20 * t**-0.3, grid))
    assert tok.sem["transformer"].iloc[0] == pytest.approx(0.01, rel=1e-6)
    # the mixer runs twice as fast: at equal wall-clock it has seen 2x the tokens and wins,
    # until the transformer has finished too (at 1000 s: both done, the better loss wins)
    wall = compare_at_equal(runs, hist, schema.WALL_CLOCK, ["model.name"], cell, n_points=5)
    assert wall.table.index[0] == pytest.approx(0.5) and wall.table.index[-1] == pytest.approx(1000)
    assert wall.common_range == (pytest.approx(1.0), pytest.approx(500.0))  # what every run covers
    assert wall.table["winner"].tolist()[1:] == ["mixer"] * 3 + ["transformer"]
    assert wall.table["absent"].iloc[0] == "transformer"  # at 0.5 s only the mixer had a point


def test_a_variant_absent_at_a_budget_is_never_the_winner_there():
    # the mixer's first evaluation comes at 1e4 tokens: before that it is absent, however bad
    # the transformer's loss; after the transformer stops, its best result still counts
    t = np.geomspace(1e3, 1e5, 9)
    runs, hist = _runs_and_histories(
        {
            "tr": ("transformer", 1, 0, False, t, 3 + 0 * t),
            "mx": ("mixer", 1, 0, False, t * 10, 2.5 + 0 * t),
        }
    )
    res = compare_at_equal(runs, hist, schema.TOKENS, ["model.name"], ["model.name"], n_points=5)
    early = res.table.index < 1e4
    assert early.any() and res.table.loc[early, "winner"].isna().all()
    assert (res.table.loc[early, "absent"] == "mixer").all()
    assert res.table.loc[early, "mixer"].isna().all()
    assert (res.table.loc[~early, "winner"] == "mixer").all()
    assert res.table["transformer"].iloc[-1] == 3.0  # at 1e6 tokens: what it reached by 1e5
    assert res.common_range == (1e4, 1e5)
    apart = compare_at_equal(
        *_runs_and_histories(
            {"a": ("x", 1, 0, False, t, 3 - t / 1e6), "b": ("y", 1, 0, False, t * 1e3, 3 - t / 1e6)}
        ),
        schema.TOKENS,
        ["model.name"],
        ["model.name"],
    )
    assert apart.common_range is None  # no range that every run covers


def test_last_instead_of_best():
    t = np.array([1.0, 2.0, 3.0])
    runs, hist = _runs_and_histories(
        {
            "a": ("x", 1, 0, False, t, np.array([3.0, 2.0, 2.5])),
            "b": ("y", 1, 0, False, t, np.array([3.0, 2.4, 2.4])),
        }
    )
    best = compare_at_equal(runs, hist, schema.TOKENS, ["model.name"], ["model.name"], n_points=3)
    last = compare_at_equal(
        runs, hist, schema.TOKENS, ["model.name"], ["model.name"], n_points=3, how="last"
    )
    assert best.table["x"].iloc[-1] == 2.0 and best.table["winner"].iloc[-1] == "x"
    assert last.table["x"].iloc[-1] == 2.5 and last.table["winner"].iloc[-1] == "y"


def test_winners_from_fitted_laws():
    meta = dict(irreducible=True, objective=0.0, n_points=10, x_min=1e15, x_max=1e18)
    fits = {
        "steep": PowerLawFit(E=2.0, A=1e3, alpha=0.2, **meta),  # 3.00, 2.25, 2.06
        "flat": PowerLawFit(E=1.2, A=30.0, alpha=0.08, **meta),
    }  # 3.09, 2.29, 1.83
    table = winners_from_fits(fits, [1e15, 1e18, 1e21])
    assert table["winner"].tolist() == ["steep", "steep", "flat"]
    assert table["extrapolated"].tolist() == [False, False, True]


def test_frontier_is_lower_envelope():
    t = np.geomspace(1e3, 1e6, 30)
    runs, hist = _runs_and_histories(
        {
            "small": ("transformer", 1, 0, False, t, 3 + 10 * t**-0.5),
            "big": ("transformer", 1, 1, False, t, 2.5 + 40 * t**-0.5),
        }
    )
    front = history_frontier(runs, hist, schema.TOKENS, labels(runs, ["model.name"]), n_bins=10)
    env = np.minimum(3 + 10 * front[schema.TOKENS] ** -0.5, 2.5 + 40 * front[schema.TOKENS] ** -0.5)
    np.testing.assert_allclose(front[schema.VAL_LOSS], env)
    assert front[schema.VAL_LOSS].is_monotonic_decreasing
    pts = pd.DataFrame({"x": [1, 2, 3, 4], "y": [5, 3, 4, 2]})
    assert pareto_front(pts, "x", "y")["x"].tolist() == [1, 2, 4]


def test_extrapolation_check_holds_out_the_largest_budget():
    budget = np.repeat([1e18, 1e19, 1e20, 1e21], 3)
    observed = 2 + 100 * budget**-0.1
    check = extrapolation_check(budget, observed, lambda tr, te: 1.01 * observed[te])
    assert check.threshold == 1e21 and check.n_test == 3 and check.n_train == 9
    assert check.mean_abs_rel_error == pytest.approx(0.01)
    with pytest.raises(AnalysisError, match=">= 2 smaller budgets"):
        extrapolation_check(budget[6:], observed[6:], lambda tr, te: observed[te])


def test_no_finite_curve_is_a_clear_error_not_an_ambiguous_series():
    # labels() of no rows is an empty Series (it was a DataFrame, whose nunique() < 2 raised
    # "the truth value of a Series is ambiguous")
    runs = pd.DataFrame({"run_id": ["r1", "r2"], "diverged": False, "model.name": ["a", "b"]})
    assert isinstance(labels(runs.iloc[:0], ["model.name"]), pd.Series)
    with pytest.raises(AnalysisError, match="need >= 2 variants of model.name"):
        compare_at_equal(runs, empty_histories(), schema.TOKENS, ["model.name"], ["model.name"])
