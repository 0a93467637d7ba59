"""Chinchilla Approach 3: Epoch's replication on the reference data, and recovery of known laws."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.chinchilla import (
    HOFFMANN_2022_PARAMS,
    ChinchillaFit,
    bootstrap_chinchilla,
    fit_chinchilla,
    objective_at,
)
from analysis.errors import AnalysisError
from analysis.lse import grid_starts

DATA = Path(__file__).parent / "data" / "epoch_chinchilla_svg_extracted_data.csv"
SMALL_GRID = dict(a_grid=(0.0, 10.0, 20.0), e_grid=(-1.0, 0.0, 1.0), alpha_grid=(0.0, 0.5, 1.0))


@pytest.fixture(scope="module")
def reference():
    df = pd.read_csv(DATA)
    loss = df["loss"].to_numpy()
    df = df[loss < np.sort(loss)[-5]]  # Besiroglu et al. drop the 5 highest-loss points
    n = df["Model Size"].to_numpy()
    return n, df["Training FLOP"].to_numpy() / (6 * n), df["loss"].to_numpy()


def test_reproduces_epoch_replication_with_full_grid(reference):
    n, d, loss = reference
    assert n.size == 240
    starts = grid_starts(2, irreducible=True)
    assert len(starts) == 4500
    fit = fit_chinchilla(n, d, loss, starts=starts)
    # Besiroglu et al. 2024, Table 1: E 1.817, alpha 0.348, beta 0.366; a = beta/(alpha+beta) 0.513
    assert fit.E == pytest.approx(1.817, abs=0.005)
    assert fit.alpha == pytest.approx(0.348, abs=0.005)
    assert fit.beta == pytest.approx(0.366, abs=0.005)
    assert fit.a == pytest.approx(0.513, abs=0.01)
    assert fit.objective == pytest.approx(0.0010183, rel=1e-3)
    hoffmann = objective_at(HOFFMANN_2022_PARAMS, n, d, loss)
    assert hoffmann == pytest.approx(0.0012312, rel=1e-3)
    assert fit.objective < hoffmann


def test_recovers_known_law_from_noisy_synthetic_data():
    rng = np.random.default_rng(0)
    truth = ChinchillaFit.given(1.9, 300.0, 900.0, 0.32, 0.30)
    n = 10 ** rng.uniform(7, 10, 300)
    d = 10 ** rng.uniform(9, 12, 300)
    loss = truth.predict(n, d) * np.exp(0.002 * rng.standard_normal(300))
    fit = fit_chinchilla(n, d, loss, starts=grid_starts(2, True, **SMALL_GRID))
    assert fit.E == pytest.approx(1.9, rel=0.02)
    assert fit.alpha == pytest.approx(0.32, abs=0.02)
    assert fit.beta == pytest.approx(0.30, abs=0.02)
    assert fit.a == pytest.approx(truth.a, abs=0.02)
    c = np.array([1e20, 1e22])
    assert np.allclose(fit.n_opt(c) / truth.n_opt(c), 1, rtol=0.3)


def test_frontier_closed_form():
    fit = ChinchillaFit.given(1.69, 406.4, 410.7, 0.34, 0.28)
    c = 1e23
    n, d = fit.n_opt(c), fit.d_opt(c)
    assert 6 * n * d == pytest.approx(c)  # the frontier spends exactly C = 6 N D
    # and N_opt minimises the loss along that iso-compute line
    grid = n * np.geomspace(0.5, 2, 201)
    assert grid[np.argmin(fit.predict(grid, c / (6 * grid)))] == pytest.approx(n, rel=0.01)


def test_bootstrap_is_seeded_and_covers_the_estimate(reference):
    n, d, loss = reference
    fit = ChinchillaFit.from_params(
        np.array([6.169, 7.670, 0.5972, 0.3473, 0.3672]),
        objective=np.nan,
        n_points=240,
        n_starts=1,
        n_converged=1,
    )
    one = bootstrap_chinchilla(n, d, loss, fit, n_resamples=50, seed=3, compute=(1e21,))
    two = bootstrap_chinchilla(n, d, loss, fit, n_resamples=50, seed=3, compute=(1e21,))
    pd.testing.assert_frame_equal(one.table, two.table)
    t = one.table
    assert set(t.index) == {
        "E",
        "A",
        "B",
        "alpha",
        "beta",
        "a",
        "b",
        "G",
        "N_opt@1e21",
        "D_opt@1e21",
    }
    assert (t["lo"] <= t["estimate"] * 1.001).all() and (t["estimate"] * 0.999 <= t["hi"]).all()
    # Besiroglu et al. 2024 report bootstrap SEs of ~0.02 for alpha and beta
    assert 0.005 < t.loc["alpha", "se"] < 0.05


def test_too_few_points_is_a_clear_error():
    with pytest.raises(AnalysisError, match="5 usable points.*need at least 6"):
        fit_chinchilla([1e8, 2e8, 3e8, 4e8, 5e8, np.nan], [1e9] * 6, [3.0] * 6)
