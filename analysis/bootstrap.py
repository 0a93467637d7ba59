"""Seeded nonparametric bootstrap: resample, refit, report percentile intervals.

What is resampled follows the data (Efron & Tibshirani 1993, ch. 9 and 6.5):
- points carry repeated seeds (every cell has >= 2): the seeds within each cell, so each
  resample keeps the design (the sizes and budgets that were run) and varies the cell means
  by the seed noise that was measured;
- otherwise the points themselves (within strata, e.g. compute budgets, when given).

Hand-written rather than ``scipy.stats.bootstrap`` because resamples are expressed as per-point
multiplicities and per-point values (so all refits of a power law run as one batched L-BFGS-B,
``lse.LSEProblem``), and because resampling within strata or within ragged groups of seeds is
not something scipy offers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.lse import LSEProblem

Estimates = Mapping[str, float]

# A refit starts at the full-data optimum, where scipy's default ftol (relative to max(|f|, 1),
# and f ~ 1e-3 here) stops it after a few steps and the intervals come out ~10x too narrow.
# With these, the Chinchilla bootstrap SEs match Besiroglu et al. 2024's (A ~120, alpha ~0.015).
REFIT_TOLERANCES = dict(gtol=1e-8, ftol=1e-12)

SEEDS = "seeds within cells"
POINTS = "points"


@dataclass(frozen=True)
class Intervals:
    """Point estimates with bootstrap percentile intervals, one row per quantity."""

    table: pd.DataFrame  # index: quantity; columns: estimate, lo, hi, se, failed
    level: float
    n_resamples: int
    seed: int
    resampled: str = POINTS  # what was resampled: POINTS (maybe "within ...") or SEEDS

    @property
    def n_failed(self) -> int:
        """Resamples that failed for at least one quantity (its estimate is missing)."""
        return int(self.table["failed"].max()) if len(self.table) else 0


@dataclass(frozen=True)
class Resamples:
    weights: np.ndarray  # (S, n) multiplicity of each point in each resample
    values: np.ndarray | None  # (S, n) each point's value in each resample; None: unchanged
    what: str  # what was resampled, for the report


def seed_matrix(seeds: Sequence[Sequence[float]]) -> np.ndarray:
    """(n, max seeds) array of each point's seed values, NaN-padded."""
    width = max((len(s) for s in seeds), default=0)
    out = np.full((len(seeds), max(width, 1)), np.nan)
    for i, s in enumerate(seeds):
        out[i, : len(s)] = s
    return out


def resample(
    n_points: int,
    n_resamples: int,
    seed: int,
    *,
    strata: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
    strata_name: str = "",
) -> Resamples:
    """Resamples of seeds within cells when ``seeds`` ((n, k) NaN-padded, see ``seed_matrix``)
    gives every point at least two; otherwise of points, within ``strata`` when given."""
    rng = np.random.default_rng(seed)
    if seeds is not None and (np.isfinite(seeds).sum(axis=1) >= 2).all():
        return Resamples(
            weights=np.ones((n_resamples, n_points)),
            values=_seed_means(seeds, n_resamples, rng),
            what=SEEDS,
        )
    what = f"{POINTS} within {strata_name}" if strata is not None and strata_name else POINTS
    return Resamples(
        weights=_point_counts(n_points, n_resamples, rng, strata).astype(float),
        values=None,
        what=what,
    )


def _point_counts(
    n_points: int, n_resamples: int, rng: np.random.Generator, strata: np.ndarray | None
) -> np.ndarray:
    """(S, n) multiplicities; with ``strata`` each stratum is resampled on its own, keeping
    its size."""
    if strata is None:
        return rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_resamples)
    counts = np.zeros((n_resamples, n_points), dtype=int)
    for stratum in pd.unique(strata):
        members = np.flatnonzero(strata == stratum)
        counts[:, members] = rng.multinomial(
            members.size, np.full(members.size, 1.0 / members.size), size=n_resamples
        )
    return counts


def _seed_means(seeds: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n): each point's mean over a with-replacement draw of as many of its seeds as it has."""
    counts = np.isfinite(seeds).sum(axis=1)  # seeds per point (>= 2)
    n, width = seeds.shape
    # the first counts[i] entries of row i hold its seeds: draw indices below counts[i]
    picks = (rng.random((n_resamples, n, width)) * counts[None, :, None]).astype(int)
    drawn = seeds[np.arange(n)[None, :, None], picks]
    used = np.arange(width)[None, None, :] < counts[None, :, None]
    return np.where(used, drawn, 0.0).sum(axis=2) / counts[None, :]


def summarize(
    point: Estimates, samples: pd.DataFrame, *, level: float, seed: int, resampled: str = POINTS
) -> Intervals:
    """Percentile intervals (Efron & Tibshirani 1993, ch. 13) from per-resample estimates; NaN
    marks a quantity a resample could not estimate: each quantity uses the rest and counts
    those as ``failed``."""
    samples = samples.reindex(columns=list(point))
    tail = 100 * (1 - level) / 2
    values = samples.to_numpy(dtype=float)
    # a quantity no resample could estimate is NaN, an ill-posed one can overflow: both are
    # reported as such (and counted as failed), not warned about
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = (
            np.nanpercentile(values, [tail, 100 - tail], axis=0)
            if len(values)
            else np.full((2, values.shape[1]), np.nan)
        )  # no resamples asked for
        se = np.nanstd(values, axis=0, ddof=1)
    table = pd.DataFrame(
        {
            "estimate": pd.Series(point, dtype=float),
            "lo": lo,
            "hi": hi,
            "se": se,
            "failed": (~np.isfinite(values)).sum(axis=0),
        },
        index=list(point),
    )
    table.index.name = "quantity"
    return Intervals(
        table=table, level=level, n_resamples=len(samples), seed=seed, resampled=resampled
    )


def bootstrap_lse(
    problem: LSEProblem,
    best: np.ndarray,
    estimates: Callable[[np.ndarray], Estimates],
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
    seeds: np.ndarray | None = None,
) -> Intervals:
    """Refit ``problem`` on resamples, each started from the full-data optimum ``best`` (a
    rerun of the whole start grid per resample costs grid-size times more for the same basin);
    ``seeds``: each point's seed losses (see ``resample``)."""
    draws = resample(problem.log_y.size, n_resamples, seed, seeds=seeds)
    log_y = None if draws.values is None else np.log(draws.values)
    result = problem.solve(
        np.tile(best, (n_resamples, 1)), weights=draws.weights, log_y=log_y, **REFIT_TOLERANCES
    )
    point = estimates(best)
    failed = dict.fromkeys(point, np.nan)
    rows = [
        estimates(x) if ok else failed
        for x, ok in zip(result.x, result.success & np.isfinite(result.fun))
    ]
    return summarize(point, pd.DataFrame(rows), level=level, seed=seed, resampled=draws.what)
