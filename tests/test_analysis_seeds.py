"""Repeated seeds: cell means and standard errors, seed noise carried into the bootstraps, and
A-vs-B differences with an interval and a p-value, on synthetic runs with known noise."""

import numpy as np
import pandas as pd
import pytest

from analysis.bootstrap import SEEDS, seed_matrix
from analysis.chinchilla import ChinchillaFit, bootstrap_chinchilla, fit_chinchilla
from analysis.collapse import collapse_seeds
from analysis.compare import compare_at_equal
from analysis.groups import fit_groups
from analysis.lse import grid_starts
from analysis.significance import SIGNIFICANCE, difference
from trainer import schema

SIZES = np.geomspace(1e6, 1e9, 7)


def _runs(noise: float, n_seeds: int, seed: int = 0) -> pd.DataFrame:
    """Runs of L(N) = 2 + 300 N^-0.3 at each size, one per seed, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "model.name": "m",
            "size": n,
            "seed": s,
            "params_total": n,
            "diverged": False,
            schema.FINAL_VAL_LOSS: 2 + 300 * n**-0.3 + noise * rng.standard_normal(),
        }
        for n in SIZES
        for s in range(n_seeds)
    ]
    return pd.DataFrame(rows)


def test_collapse_gives_mean_sem_and_the_seed_values():
    runs = _runs(noise=0.02, n_seeds=4)
    cells = collapse_seeds(runs, ["model.name", "size"])
    assert len(cells) == SIZES.size and (cells["n_seeds"] == 4).all()
    first = runs[runs["size"] == SIZES[0]][schema.FINAL_VAL_LOSS]
    row = cells[cells["size"] == SIZES[0]].iloc[0]
    assert row[schema.FINAL_VAL_LOSS] == pytest.approx(first.mean())
    assert row[f"{schema.FINAL_VAL_LOSS}_sem"] == pytest.approx(first.std(ddof=1) / 2)
    assert sorted(row[f"{schema.FINAL_VAL_LOSS}_seeds"]) == sorted(first)


def test_power_law_bootstrap_resamples_seeds_and_widens_with_their_noise():
    widths = {}
    for noise in (0.002, 0.02):
        cells = collapse_seeds(_runs(noise=noise, n_seeds=5, seed=1), ["model.name", "size"])
        fits = fit_groups(
            cells, "params_total", schema.FINAL_VAL_LOSS, ["model.name"], n_resamples=200, seed=0
        )
        ci = fits.intervals["m"]
        assert ci.resampled == SEEDS
        assert ci.table.loc["alpha", "lo"] < 0.3 < ci.table.loc["alpha", "hi"]
        widths[noise] = ci.table.loc["alpha", "hi"] - ci.table.loc["alpha", "lo"]
    assert widths[0.02] > 3 * widths[0.002]  # 10x the seed noise, a much wider interval


def test_chinchilla_bootstrap_resamples_seeds_within_cells():
    law = ChinchillaFit.given(1.8, 400.0, 2000.0, 0.35, 0.37)
    n, d = (v.ravel() for v in np.meshgrid(np.geomspace(1e7, 1e9, 4), np.geomspace(1e9, 1e11, 4)))
    rng = np.random.default_rng(2)
    seeds = law.predict(n, d)[:, None] * np.exp(0.003 * rng.standard_normal((n.size, 3)))
    loss = seeds.mean(axis=1)
    fit = fit_chinchilla(
        n,
        d,
        loss,
        starts=grid_starts(2, True, a_grid=(0, 5, 10), e_grid=(0.5,), alpha_grid=(0.3, 0.6)),
    )
    ci = bootstrap_chinchilla(n, d, loss, fit, n_resamples=100, seed=0, seeds=seeds)
    assert ci.resampled == SEEDS and ci.table.loc["alpha", "failed"] < 10
    assert ci.table.loc["alpha", "lo"] < 0.35 < ci.table.loc["alpha", "hi"]


def test_one_seed_per_cell_falls_back_to_resampling_points():
    cells = collapse_seeds(_runs(noise=0.01, n_seeds=1), ["model.name", "size"])
    fits = fit_groups(cells, "params_total", schema.FINAL_VAL_LOSS, ["model.name"], n_resamples=20)
    assert fits.intervals["m"].resampled == "points"
    assert seed_matrix([(1.0,), (2.0, 3.0)]).tolist()[0][0] == 1.0


def test_difference_is_calibrated_on_known_noise():
    rng = np.random.default_rng(0)
    # no true difference: about 1% of comparisons reach p < 0.01 and ~95% of intervals cover 0
    tests = [
        difference(3 + 0.01 * rng.standard_normal(5), 3 + 0.01 * rng.standard_normal(5))
        for _ in range(400)
    ]
    assert np.mean([t.significant for t in tests]) < 0.03
    assert 0.91 < np.mean([t.lo <= 0 <= t.hi for t in tests]) < 0.99
    # A better by 2.5 noise-sd over 5 seeds each: significant, interval around the margin
    better = difference(3 + 0.01 * rng.standard_normal(5), 3.025 + 0.01 * rng.standard_normal(5))
    assert better.significant and better.p_value < SIGNIFICANCE and better.lo < 0.025 < better.hi
    worse = difference(3.025 + 0.01 * rng.standard_normal(5), 3 + 0.01 * rng.standard_normal(5))
    assert not worse.significant and worse.margin < 0 and worse.p_value > 0.5
    lone = difference([3.0], [3.1, 3.2])
    assert np.isnan(lone.p_value) and not lone.significant and "needs >= 2 seeds" in lone.describe()


def test_compare_reports_the_winners_margin_over_seeds():
    t = np.geomspace(1e3, 1e5, 6)
    rng = np.random.default_rng(4)
    runs, hist = [], []
    for variant, offset in (("a", 0.0), ("b", 0.05)):
        for s in range(4):
            run_id = f"{variant}{s}"
            runs.append({"run_id": run_id, "model.name": variant, "seed": s, "diverged": False})
            loss = 2 + offset + 10 * t**-0.3 + 0.01 * rng.standard_normal()
            hist.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "step": range(t.size),
                        schema.TOKENS: t,
                        schema.FLOPS: 6e6 * t,
                        schema.WALL_CLOCK: t / 1e3,
                        "metric": schema.VAL_LOSS,
                        "value": loss,
                    }
                )
            )
    res = compare_at_equal(
        pd.DataFrame(runs),
        pd.concat(hist),
        schema.TOKENS,
        ["model.name"],
        ["model.name"],
        n_points=4,
    )
    last = res.table.iloc[-1]
    assert last["winner"] == "a" and last["significant"] and last["p_value"] < SIGNIFICANCE
    assert last["margin_lo"] < 0.05 < last["margin_hi"]
    assert res.sem["a"].iloc[-1] == pytest.approx(0.01 / 2, rel=0.8)  # sd 0.01 over 4 seeds
