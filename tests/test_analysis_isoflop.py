"""Chinchilla Approach 2: IsoFLOP parabolas recover N_opt ~ C^a; edge minima are flagged."""

import warnings

import numpy as np
import pytest

from analysis.chinchilla import ChinchillaFit
from analysis.isoflop import GridEdgeWarning, bootstrap_isoflop, fit_isoflop

LAW = ChinchillaFit(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, objective=0, n_points=0,
                    n_starts=0, n_converged=0)


def _grid(budgets, spread=np.geomspace(1 / 8, 8, 9), noise=0.002, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"C{c:.0e}", c, LAW.n_opt(c) * f) for c in budgets for f in spread]
    budget, compute, n = map(np.array, zip(*rows))
    loss = LAW.predict(n, compute / (6 * n)) * np.exp(noise * rng.standard_normal(n.size))
    return budget, compute, n, loss


def test_recovers_compute_optimal_exponent():
    budget, compute, n, loss = _grid([1e19, 1e20, 1e21, 1e22])
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no edge warning for a centred grid
        fit = fit_isoflop(budget, compute, n, loss)
    assert fit.exponent == pytest.approx(LAW.a, abs=0.03)   # beta / (alpha + beta) = 0.452
    assert not fit.at_edge and fit.edge_budgets == ()
    assert np.allclose(fit.budgets["n_opt"] / LAW.n_opt(fit.budgets["compute"]), 1, rtol=0.15)
    assert fit.estimates()["b"] == pytest.approx(1 - fit.exponent)
    ci = bootstrap_isoflop(budget, compute, n, loss, fit, n_resamples=100, seed=0).table
    assert ci.loc["a", "lo"] < LAW.a < ci.loc["a", "hi"]


def test_minimum_at_grid_edge_warns_and_flags():
    budget, compute, n, loss = _grid([1e19, 1e20, 1e21])
    shifted = (budget == "C1e+21") & (n > LAW.n_opt(1e21) * 0.9)   # keep only sizes >= N_opt there
    keep = (budget != "C1e+21") | shifted
    with pytest.warns(GridEdgeWarning, match="C1e\\+21"):
        fit = fit_isoflop(budget[keep], compute[keep], n[keep], loss[keep])
    assert fit.at_edge and fit.edge_budgets == ("C1e+21",)
    assert bool(fit.budgets.loc["C1e+21", "at_edge"]) and not fit.budgets.loc["C1e+19", "at_edge"]


def test_nan_losses_are_ignored():
    budget, compute, n, loss = _grid([1e19, 1e20, 1e21], noise=0)
    loss[[0, 10]] = np.nan
    fit = fit_isoflop(budget, compute, n, loss)
    assert fit.budgets["n_points"].tolist() == [8, 8, 9]
    assert fit.exponent == pytest.approx(LAW.a, abs=0.03)
