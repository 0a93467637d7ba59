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

from analysis.lbfgsb import BatchResult
from analysis.lse import TIGHT_TOLERANCES, LSEProblem, grid_starts

Estimates = Mapping[str, float]

# Every resample is also refitted from one cold start, a point of Besiroglu et al.'s grid
# (lse.py) that holds in any units of x: each power term starts at e^0 x^-0 = 1 and E at
# e^-1, so the start's loss, K + 0.37, lies among language-model losses. e = -1 rather than
# +1: cheaper, and on 1,000 resamples of Epoch's Hoffmann data it ended more than 1e-4
# (relative) above the warm refit's objective on 2, below it on 267.
# One start, because a cold refit costs about 2.5 warm ones (~130 L-BFGS-B evaluations against
# ~50 there): per scripts/bench_fits.py, 1,000 resamples took 0.7 s warm only, 2.4 s with
# this start, 4.9 s with a second (e = 1). More starts: more values in these tuples.
COLD_GRID = dict(a_grid=(0.0,), e_grid=(-1.0,), alpha_grid=(0.0,))

SEEDS = "seeds within cells"
POINTS = "points"

DEFAULT_LEVEL = 0.95  # of every interval: the bootstraps', and significance's over seeds
DEFAULT_RESAMPLES = 200  # python -m analysis takes more where --level asks for them


@dataclass(frozen=True)
class Intervals:
    """Point estimates with bootstrap percentile intervals, one row per quantity."""

    table: pd.DataFrame  # index: quantity; columns: estimate, lo, hi, se, failed
    level: float
    n_resamples: int
    seed: int
    resampled: str = POINTS  # what was resampled: POINTS (maybe "within ...") or SEEDS
    # the full-data fit's log residuals (RMS, over the log losses' standard deviation, see
    # LSEProblem.misfit): ~0 on noise-free data, where no resample can move the optimum;
    # NaN where not measured (then read as not exact, see plausibility)
    misfit: float = np.nan

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
    point: Estimates,
    samples: pd.DataFrame,
    *,
    level: float,
    seed: int,
    resampled: str = POINTS,
    misfit: float = np.nan,
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
        table=table,
        level=level,
        n_resamples=len(samples),
        seed=seed,
        resampled=resampled,
        misfit=misfit,
    )


def bootstrap_lse(
    problem: LSEProblem,
    best: np.ndarray,
    estimates: Callable[[np.ndarray], Estimates],
    *,
    n_resamples: int,
    seed: int,
    level: float,
    seeds: np.ndarray | None = None,
) -> Intervals:
    """Refit ``problem`` on resamples, each from the full-data optimum ``best`` and from the
    ``cold_starts``, keeping its lowest converged objective; ``seeds``: each point's seed
    losses (see ``resample``).

    Warm starts alone hide a flat direction: where the points do not determine a parameter
    (a term negligible at every point, e.g. E = e^e far below the losses) its gradient
    vanishes and every refit stays where it started. On a real sweep that gave the Mixer's
    E = 0.00024 the interval [0.00024026, 0.00024032] (se 1.9e-5), while refits started
    elsewhere put E anywhere from 2e-4 to 1.8. A cold refit of such a resample ends far from
    the warm one at about the same objective, so the interval comes out as wide as the flat
    direction is long; where the points do determine the law it ends in the warm refit's
    basin (often a little lower: warm refits stop short) or in a worse one, which loses."""
    draws = resample(problem.log_y.size, n_resamples, seed, seeds=seeds)
    starts = np.vstack([best, cold_starts(problem)])
    # one batched solve, resample-major: rows s * k .. s * k + k - 1 refit resample s
    k = len(starts)
    log_y = None if draws.values is None else np.repeat(np.log(draws.values), k, axis=0)
    # every refit's objective is divided by the full data's ``problem.scale`` (one constant),
    # so the tolerances below mean the same for all and the lowest per resample is comparable
    result = problem.solve(
        np.tile(starts, (n_resamples, 1)),
        weights=np.repeat(draws.weights, k, axis=0),
        log_y=log_y,
        **TIGHT_TOLERANCES,  # scipy's defaults: ~10x too narrow intervals
    )
    x, ok = _lowest_per_resample(result, n_resamples, k)
    point = estimates(best)
    failed = dict.fromkeys(point, np.nan)
    # a cold refit can run a coefficient past e^709 (a term fitted to a kink in a few points):
    # that estimate overflows to inf and counts as failed (see summarize), not warned about
    with np.errstate(over="ignore"):
        rows = [estimates(params) if good else failed for params, good in zip(x, ok)]
    # residuals against what is resampled: each seed where seeds are, else each point
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN padding, as in seed_matrix
        observed = None if draws.values is None else np.log(seeds)
    return summarize(
        point,
        pd.DataFrame(rows),
        level=level,
        seed=seed,
        resampled=draws.what,
        misfit=problem.misfit(best, observed),
    )


def cold_starts(problem: LSEProblem) -> np.ndarray:
    """``COLD_GRID`` in ``problem``'s parameter layout."""
    return grid_starts(problem.n_terms, problem.irreducible, **COLD_GRID)


def _lowest_per_resample(
    result: BatchResult, n_resamples: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(S, p) each resample's converged run with the lowest objective among its ``k``
    consecutive rows (ties go to the first, the warm start), and (S,) whether it has one."""
    fun = np.where(result.success & np.isfinite(result.fun), result.fun, np.inf)
    fun = fun.reshape(n_resamples, k)
    runs = result.x.reshape(n_resamples, k, result.x.shape[1])
    return runs[np.arange(n_resamples), fun.argmin(axis=1)], np.isfinite(fun.min(axis=1))
