"""Seeded nonparametric bootstrap: resample points, refit, report percentile intervals.

Hand-written rather than ``scipy.stats.bootstrap`` because resamples are expressed as per-point
multiplicities (so all refits of a power law run as one batched L-BFGS-B, ``lse.LSEProblem``) and
IsoFLOP fits need resampling *within* each compute budget, which scipy does not offer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.lse import LSEProblem

Estimates = Mapping[str, float]

# A refit starts at the full-data optimum, where scipy's default ftol (relative to max(|f|, 1),
# and f ~ 1e-3 here) stops it after a few steps and the intervals come out ~10x too narrow.
# With these, the Chinchilla bootstrap SEs match Besiroglu et al. 2024's (A ~120, alpha ~0.015).
REFIT_TOLERANCES = dict(gtol=1e-8, ftol=1e-12)


@dataclass(frozen=True)
class Intervals:
    """Point estimates with bootstrap percentile intervals, one row per quantity."""
    table: pd.DataFrame   # index: quantity; columns: estimate, lo, hi, se
    level: float
    n_resamples: int
    n_failed: int         # resamples whose refit failed (excluded from the percentiles)
    seed: int


def resample_counts(n_points: int, n_resamples: int, seed: int,
                    strata: np.ndarray | None = None) -> np.ndarray:
    """(n_resamples, n_points) multiplicities of each point in each resample (rows sum to n);
    with ``strata``, each stratum is resampled on its own so it keeps its size."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_resamples)
    counts = np.zeros((n_resamples, n_points), dtype=int)
    for stratum in pd.unique(strata):
        members = np.flatnonzero(strata == stratum)
        counts[:, members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size),
                                             size=n_resamples)
    return counts


def summarize(point: Estimates, samples: pd.DataFrame, *, level: float, seed: int) -> Intervals:
    """Percentile intervals (Efron & Tibshirani 1993, ch. 13) from per-resample estimates; NaN
    marks a quantity a resample could not estimate, and each quantity uses the rest."""
    samples = samples.reindex(columns=list(point))
    tail = 100 * (1 - level) / 2
    values = samples.to_numpy(dtype=float)
    # a quantity no resample could estimate is NaN, an ill-posed one can overflow: both are
    # reported as such, not warned about
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(values, [tail, 100 - tail], axis=0)
        se = np.nanstd(values, axis=0, ddof=1)
    table = pd.DataFrame({"estimate": pd.Series(point, dtype=float), "lo": lo, "hi": hi, "se": se},
                         index=list(point))
    table.index.name = "quantity"
    return Intervals(table=table, level=level, n_resamples=len(samples),
                     n_failed=int(samples.isna().any(axis=1).sum()), seed=seed)


def bootstrap_lse(problem: LSEProblem, best: np.ndarray, estimates: Callable[[np.ndarray], Estimates],
                  *, n_resamples: int, seed: int, level: float = 0.95) -> Intervals:
    """Refit ``problem`` on resamples, each started from the full-data optimum ``best`` (a
    rerun of the whole start grid per resample costs grid-size times more for the same basin)."""
    counts = resample_counts(problem.log_y.size, n_resamples, seed)
    result = problem.solve(np.tile(best, (n_resamples, 1)), weights=counts.astype(float),
                           **REFIT_TOLERANCES)
    point = estimates(best)
    failed = dict.fromkeys(point, np.nan)
    rows = [estimates(x) if ok else failed
            for x, ok in zip(result.x, result.success & np.isfinite(result.fun))]
    return summarize(point, pd.DataFrame(rows), level=level, seed=seed)


def bootstrap_refit(n_points: int, refit: Callable[[np.ndarray], Estimates], point: Estimates, *,
                    n_resamples: int, seed: int, level: float = 0.95,
                    strata: np.ndarray | None = None) -> Intervals:
    """Bootstrap for fits that are cheap to redo one by one: ``refit(weights)`` returns the
    estimates on the resample whose per-point multiplicities are ``weights``."""
    counts = resample_counts(n_points, n_resamples, seed, strata)
    return summarize(point, pd.DataFrame([refit(w) for w in counts]), level=level, seed=seed)
