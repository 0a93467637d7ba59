"""Chinchilla Approach 2: optima that hold on wide, lopsided grids; diagnostics; the regression."""

import numpy as np
import pytest

from analysis.budgets import budget_bins, budget_label, nearest_budget
from analysis.chinchilla import ChinchillaFit
from analysis.errors import AnalysisError
from analysis.isoflop import fit_isoflop
from analysis.optimum import EDGE, NO_MINIMUM, OFF_BRACKET, OK, TOO_FEW, Method, locate
from analysis.synthetic import isoflop_sweep

LAW = ChinchillaFit.given(1.69, 406.4, 410.7, 0.34, 0.28)
BUDGETS = np.geomspace(1e18, 1e21, 7)


def _fit(sweep, **options):
    return fit_isoflop(sweep["budget"], sweep["compute"], sweep["n"], sweep["loss"], **options)


def test_default_recovers_a_on_wide_drifting_grids_where_one_parabola_misses():
    # 12 sizes over 4 decades per budget, the optimum drifting from the 2nd to the 10th size,
    # losses at the grid's ends up to ~3x the minimum, 0.2% noise
    sweep = isoflop_sweep(
        LAW, BUDGETS, sizes=12, decades=4.0, positions=np.linspace(1.5, 9.5, 7), noise=0.002, seed=0
    )
    per_budget = sweep.groupby("budget")["loss"]
    assert (per_budget.max() / per_budget.min()).max() > 2.5
    default = _fit(sweep, n_resamples=100)
    assert default.method == Method() and default.frontier.weighted
    assert default.exponent == pytest.approx(LAW.a, abs=0.01)  # a = beta / (alpha + beta)
    whole = _fit(sweep, method=Method("parabola"), n_resamples=0)
    assert abs(whole.exponent - LAW.a) > 0.1


def test_akima_interpolates_exactly_and_discards_end_minima():
    n = np.geomspace(1e8, 1e10, 9)
    loss = LAW.predict(n, 1e20 / (6 * n))
    found = locate(n, loss, np.ones(n.size), Method("akima"))
    assert found.status == OK and found.n_opt == pytest.approx(LAW.n_opt(1e20), rel=0.05)
    at_end = locate(n[4:], loss[4:], np.ones(5), Method("akima"))  # minimum below the grid
    assert at_end.status == EDGE and at_end.excluded and np.isnan(at_end.n_opt)


def test_diagnostics_have_distinct_causes_and_remedies():
    n = np.geomspace(1e8, 1e10, 9)
    loss = LAW.predict(n, 1e20 / (6 * n))
    window = Method("window", window=2)
    # best measured size at the grid's edge: widen the grid (kept, flagged)
    edge = locate(n[4:], loss[4:], np.ones(5), window)
    assert edge.status == EDGE and edge.flagged and "widen the grid" in edge.message()
    # its vertex lies below the smallest size: a guess, said so
    assert edge.extrapolated and edge.n_opt < n[4] and "(extrapolated)" in edge.message()
    inside = locate(n, loss, np.ones(9), window)
    assert inside.status == OK and not inside.extrapolated
    # one parabola over 4 decades, the minimum at the 2nd of 12 sizes: pulled off it
    wide = LAW.n_opt(1e20) * 10 ** np.linspace(-0.5, 3.5, 12)
    off = locate(wide, LAW.predict(wide, 1e20 / (6 * wide)), np.ones(12), Method("parabola"))
    assert off.status == OFF_BRACKET and off.flagged and "narrow the window" in off.message()
    # a fit that opens downward: no minimum, excluded
    cap = locate(n, -((np.log(n) - np.log(1e9)) ** 2), np.ones(9), Method("parabola"))
    assert cap.status == NO_MINIMUM and cap.excluded and "no minimum" in cap.message()
    assert "excluded" in cap.message()
    few = locate(n[:2], loss[:2], np.ones(2), window)
    assert few.status == TOO_FEW and few.excluded
    assert len({edge.message(), off.message(), cap.message(), few.message()}) == 4


def test_flagged_budgets_reported_with_and_without_and_dropped_on_request():
    sweep = isoflop_sweep(LAW, BUDGETS, sizes=9, decades=2.0, noise=0.0)
    last = sweep["budget"] == budget_label(BUDGETS[-1])
    small = last & (sweep["n"] > LAW.n_opt(BUDGETS[-1]) * 0.99)  # its best size at the edge
    sweep = sweep[~last | small]
    fit = _fit(sweep, n_resamples=0)
    edge_label = budget_label(BUDGETS[-1])
    assert fit.budgets.loc[edge_label, "status"] == EDGE and fit.budgets.loc[edge_label, "flagged"]
    assert not fit.budgets["extrapolated"].any()  # Akima's minima lie within their grids
    assert edge_label in fit.frontier.budgets
    assert any("widen the grid" in m and edge_label in m for m in fit.messages())
    without = fit.alternatives["without flagged budgets"]
    assert edge_label not in without.budgets and without.a == pytest.approx(LAW.a, abs=1e-3)
    dropped = _fit(sweep, n_resamples=0, drop_flagged=True)
    assert dropped.frontier == without
    assert edge_label in dropped.alternatives["with flagged budgets"].budgets


def test_no_minimum_never_reaches_the_regression():
    sweep = isoflop_sweep(LAW, BUDGETS[:4], sizes=9, decades=2.0, noise=0.0)
    cap = sweep["budget"] == budget_label(BUDGETS[0])
    sweep.loc[cap, "loss"] = 5 - (np.log(sweep.loc[cap, "n"]) - 18) ** 2 / 100  # opens downward
    fit = _fit(sweep, method=Method("parabola"), n_resamples=20)
    label = budget_label(BUDGETS[0])
    assert fit.budgets.loc[label, "status"] == NO_MINIMUM
    assert np.isnan(fit.budgets.loc[label, "n_opt"])
    assert label not in fit.frontier.budgets and fit.exponent == pytest.approx(LAW.a, abs=1e-3)
    assert f"N_opt[{label}]" not in fit.intervals.table.index
    with pytest.raises(AnalysisError, match=r"needs >= 2 budgets.*no minimum"):
        _fit(
            sweep[sweep["budget"].isin([label, budget_label(BUDGETS[1])])],
            method=Method("parabola"),
            n_resamples=0,
        )


def test_weighted_regression_discounts_the_noisy_budget():
    # one budget (away from the middle, where a point cannot tilt the line) measured with 30x
    # the noise of the others: its optimum is uncertain, its sigma larger, and the weighted
    # exponent closer to the truth than the unweighted one
    errors = []
    for seed in range(4):
        sweep = isoflop_sweep(LAW, BUDGETS, sizes=11, decades=2.5, noise=0.001, seed=seed)
        label = budget_label(BUDGETS[5])
        noisy = sweep["budget"] == label
        rng = np.random.default_rng(seed + 100)
        sweep.loc[noisy, "loss"] *= np.exp(0.03 * rng.standard_normal(noisy.sum()))
        fit = _fit(sweep, method=Method("window", window=2), n_resamples=200)
        assert fit.budgets.loc[label, "sigma"] >= fit.budgets["sigma"].drop(label).max()
        errors.append((abs(fit.exponent - LAW.a), abs(fit.alternatives["unweighted"].a - LAW.a)))
    weighted, unweighted = np.mean(errors, axis=0)
    assert weighted < unweighted / 2


def test_seeds_are_resampled_within_cells():
    sweep = isoflop_sweep(LAW, BUDGETS[:4], sizes=9, decades=2.0, noise=0.01, n_seeds=3, seed=1)
    cells = sweep.groupby(["budget", "n"], sort=False)["loss"]
    means = cells.mean().reset_index()
    seeds = np.vstack(cells.agg(list).to_numpy())
    fit = fit_isoflop(
        means["budget"],
        means["budget"].map(dict(zip(sweep["budget"], sweep["compute"]))),
        means["n"],
        means["loss"],
        seeds=seeds,
        n_resamples=100,
    )
    assert fit.intervals.resampled == "seeds within cells"
    assert fit.intervals.table.loc["a", "lo"] < LAW.a < fit.intervals.table.loc["a", "hi"]


def test_user_weights_apply_to_parabolas_and_are_refused_by_akima():
    sweep = isoflop_sweep(LAW, BUDGETS[:3], sizes=9, decades=2.0, noise=0.0)
    weights = np.where(sweep["n"] > 0, 1.0, 0.0)
    weights[::9] = 0.0  # the smallest size of each budget left out
    fit = _fit(sweep, weights=weights, n_resamples=0)
    assert (fit.budgets["n_points"] == 8).all()
    with pytest.raises(AnalysisError, match="akima interpolates every point"):
        _fit(sweep, weights=weights + 1, method=Method("akima"), n_resamples=0)


def test_budgets_are_labelled_as_written_and_grouped():
    assert [budget_label(v) for v in (6.3e18, 6e18, 1e21, 2.5e18, 150.0)] == [
        "6.3e18",
        "6e18",
        "1e21",
        "2.5e18",
        "150",
    ]
    x = np.array([5.98e18, 6.02e18, 6.1e18, 1e19, 1.01e19, np.nan])
    assert budget_bins(x)[:5].tolist() == [6e18, 6e18, 6e18, 1e19, 1e19]
    assert np.isnan(budget_bins(x)[5])
    nominal = nearest_budget(np.array([5.6e18, 6.5e18, 7e18, 9.5e18]), np.array([6e18, 1e19]))
    assert nominal[[0, 1, 3]].tolist() == [6e18, 6e18, 1e19] and np.isnan(nominal[2])
