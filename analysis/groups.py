"""Per-group (architecture, optimizer, ...) power-law fits with intervals and a holdout check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Intervals
from analysis.budgets import budget_bins
from analysis.collapse import labels, seed_values
from analysis.errors import AnalysisError
from analysis.holdout import Extrapolation, held_out
from analysis.lse import usable
from analysis.powerlaw import PowerLawFit, bootstrap_power_law, fit_power_law


@dataclass(frozen=True)
class GroupFits:
    x: str
    y: str
    fits: dict[str, PowerLawFit]
    intervals: dict[str, Intervals]
    extrapolation: dict[str, Extrapolation | str]  # str: why none was held out (too few budgets)
    skipped: dict[str, str]  # group -> why it was not fitted

    def table(self) -> pd.DataFrame:
        """Long table: group, quantity, estimate, lo, hi, se, plus fit diagnostics."""
        rows = []
        for group, fit in self.fits.items():
            held = self.extrapolation[group]
            t = (
                self.intervals[group]
                .table.reset_index()
                .assign(
                    group=group,
                    x=self.x,
                    y=self.y,
                    n_points=fit.n_points,
                    objective=fit.objective,
                    holdout_mean_abs_rel_error=(
                        np.nan if isinstance(held, str) else held.mean_abs_rel_error
                    ),
                )
            )
            rows.append(t)
        cols = [
            "group",
            "x",
            "y",
            "quantity",
            "estimate",
            "lo",
            "hi",
            "se",
            "n_points",
            "objective",
            "holdout_mean_abs_rel_error",
        ]
        return pd.concat(rows, ignore_index=True)[cols]


def fit_groups(
    points: pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    *,
    irreducible: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    weight: str | None = None,
) -> GroupFits:
    """Fit L = E + A x^-alpha (or A x^-alpha) to each group's (x, y) points; groups with too few
    usable points are skipped with the reason, and an error is raised when none is left.
    ``weight``: a column of per-point weights; a ``<y>_seeds`` column (``collapse_seeds``)
    makes the bootstrap resample seeds within points. Rows flagged in a ``diverged`` column are
    not fitted: a diverged run's best_val_loss (before the blow-up) is finite, but no result."""
    if "diverged" in points:
        points = points[~points["diverged"].eq(True)]
    fits, intervals, held, skipped = {}, {}, {}, {}
    for group, rows in points.groupby(labels(points, by), sort=True):
        xs, ys = rows[x].to_numpy(float), rows[y].to_numpy(float)
        ws = rows[weight].to_numpy(float) if weight else None
        seeds = seed_values(rows, y)
        try:
            fit = fit_power_law(xs, ys, irreducible=irreducible, weights=ws)
        except AnalysisError as err:
            skipped[group] = str(err)
            continue
        fits[group] = fit
        intervals[group] = bootstrap_power_law(
            xs, ys, fit, n_resamples=n_resamples, seed=seed, level=level, weights=ws, seeds=seeds
        )
        held[group] = _holdout(xs, ys, np.ones(xs.size) if ws is None else ws, irreducible)
    if not fits:
        raise AnalysisError(f"no group could be fitted on {x!r}: {first_reasons(skipped)}")
    return GroupFits(x=x, y=y, fits=fits, intervals=intervals, extrapolation=held, skipped=skipped)


def _holdout(x: np.ndarray, y: np.ndarray, w: np.ndarray, irreducible: bool) -> Extrapolation | str:
    ok = usable(x, y) & (w > 0)
    x, y, w = x[ok], y[ok], w[ok]
    return held_out(
        budget_bins(x),
        y,
        lambda train, test: fit_power_law(
            x[train], y[train], irreducible=irreducible, weights=w[train]
        ).predict(x[test]),
    )


def first_reasons(skipped: dict[str, str]) -> str:
    """The first three groups left out, with their reasons, and how many more: an error's
    tail that stays one readable line however many groups a sweep has."""
    shown = "; ".join(f"{g}: {why}" for g, why in list(skipped.items())[:3])
    more = f"; and {len(skipped) - 3} more groups" if len(skipped) > 3 else ""
    return shown + more
