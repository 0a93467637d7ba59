"""Fair comparisons of variants: loss at equal wall-clock, tokens or FLOPs.

From the histories: at each budget T of a grid, each run's best (or last) val loss reached by
T; seeds are averaged, a variant is represented by its best configuration at T, and a variant
with no run evaluated by T is absent there and cannot win. The winner's margin over the
runner-up comes with an interval and a p-value over seeds.
From fitted curves: which variant's law predicts the lowest loss at a given budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import DEFAULT_LEVEL
from analysis.collapse import labels
from analysis.curves import HOW, reached_by, run_curves
from analysis.errors import AnalysisError, unknown
from analysis.powerlaw import PowerLawFit
from analysis.significance import difference
from trainer import schema

COMPARE_AXES = {"wall_clock": schema.WALL_CLOCK, "tokens": schema.TOKENS, "flops": schema.FLOPS}
VERDICT = ("winner", "absent", "margin", "margin_lo", "margin_hi", "p_value", "significant")


@dataclass(frozen=True)
class EqualBudget:
    axis: str  # history column, e.g. "wall_clock_s"
    table: pd.DataFrame  # index: axis value; per variant its loss (NaN: absent); winner
    #                                (None unless every variant is present), absent, and the
    #                                winner's margin over the runner-up: margin, margin_lo,
    #                                margin_hi, p_value, significant (significance.difference)
    sem: pd.DataFrame  # per variant: standard error over seeds (NaN for one seed)
    common_range: tuple[float, float] | None  # what every run covers; None if nothing
    excluded: tuple[str, ...]  # runs left out: diverged, or without a finite point
    how: str  # "best" or "last" loss reached by each budget


def compare_at_equal(
    runs: pd.DataFrame,
    histories: pd.DataFrame,
    axis: str,
    variant: Sequence[str],
    cell: Sequence[str],
    *,
    metric: str = schema.VAL_LOSS,
    n_points: int = 8,
    how: str = "best",
    level: float = DEFAULT_LEVEL,
) -> EqualBudget:
    """``variant``: columns naming a variant (e.g. model.name); ``cell``: columns naming one
    configuration (the config minus the seed). At each budget T of a grid from the first
    evaluation of any run to the last, a run's value is the best (or last) loss it reached by
    T (``curves.reached_by``); a cell's is the mean over its seeds, present only when every
    seed is; a variant's is its best cell's, absent when no cell is present. A winner is named
    only where every variant is present, with its margin over the runner-up tested over
    their seeds (``significance.difference``)."""
    if axis not in COMPARE_AXES.values():
        raise unknown("comparison axis", axis, COMPARE_AXES.values())
    if how not in HOW:
        raise unknown("--at", how, HOW)
    curves, excluded = run_curves(runs, histories, axis, metric)
    meta = runs.set_index("run_id").loc[list(curves)]
    names = labels(meta, variant)
    if names.nunique() < 2:
        raise AnalysisError(
            f"need >= 2 variants of {'/'.join(variant)} with a finite {metric} "
            f"history to compare; have {sorted(names.unique())}"
        )
    first = np.array([c[axis].iloc[0] for c in curves.values()])
    last = np.array([c[axis].iloc[-1] for c in curves.values()])
    lo, hi = first.min(), last.max()
    grid = np.geomspace(lo, hi, n_points) if lo > 0 and hi > lo else np.linspace(lo, hi, n_points)
    values = pd.DataFrame(
        {run_id: reached_by(c, axis, grid, how) for run_id, c in curves.items()},
        index=pd.Index(grid, name=axis),
    ).T
    cells = labels(meta, cell).to_numpy()
    by_cell = values.groupby([names.to_numpy(), cells])
    # a cell is present at T only when all its seeds are: a mean over the seeds that happen
    # to have started would favour whichever seeds were fastest
    mean = by_cell.mean().where(by_cell.count() == by_cell.size().to_numpy()[:, None])
    sem = by_cell.sem()
    rows, sems = [], []
    for g in grid:
        row, sem_row, seeds = {}, {}, {}
        for v in sorted(names.unique()):
            present = mean.loc[v, g].dropna()
            if present.empty:
                row[v] = sem_row[v] = np.nan
                continue
            best = present.idxmin()
            row[v], sem_row[v] = present[best], sem.loc[(v, best), g]
            seeds[v] = values.loc[(names == v).to_numpy() & (cells == best), g].to_numpy()
        rows.append({**row, **_verdict(pd.Series(row), seeds, level)})
        sems.append(sem_row)
    index = pd.Index(grid, name=axis)
    table = pd.DataFrame(rows, index=index).reindex(columns=[*sorted(names.unique()), *VERDICT])
    sems = pd.DataFrame(sems, index=index)
    cover = (float(first.max()), float(last.min())) if first.max() <= last.min() else None
    return EqualBudget(
        axis=axis, table=table, sem=sems, common_range=cover, excluded=tuple(excluded), how=how
    )


def _verdict(losses: pd.Series, seeds: Mapping[str, np.ndarray], level: float) -> dict:
    """Winner (only when every variant is present), the absent variants, and the winner's
    margin over the runner-up with its interval and p-value."""
    present = losses.dropna().sort_values()
    absent = ", ".join(losses.index[losses.isna()])
    if len(present) < len(losses):
        return dict(winner=None, absent=absent)
    test = difference(seeds[present.index[0]], seeds[present.index[1]], level)
    return dict(
        winner=present.index[0],
        absent=absent,
        margin=test.margin,
        margin_lo=test.lo,
        margin_hi=test.hi,
        p_value=test.p_value,
        significant=test.significant,
    )


def winners_from_fits(fits: Mapping[str, PowerLawFit], budgets: Sequence[float]) -> pd.DataFrame:
    """Predicted loss of every variant's fitted law at each budget, the winner, and whether
    that budget lies outside some variant's fitted range (an extrapolation)."""
    budgets = np.asarray(budgets, dtype=float)
    table = pd.DataFrame(
        {v: fit.predict(budgets) for v, fit in fits.items()}, index=pd.Index(budgets, name="budget")
    )
    table["winner"] = table.idxmin(axis=1)
    table["extrapolated"] = [
        any(not f.x_min <= b <= f.x_max for f in fits.values()) for b in budgets
    ]
    return table


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows no other row beats on both x and y (lowest y so far in order of x)."""
    ok = points[np.isfinite(points[x].astype(float)) & np.isfinite(points[y].astype(float))]
    ok = ok.sort_values([x, y])
    best_before = ok[y].astype(float).cummin().shift(fill_value=np.inf)
    return ok[ok[y] < best_before]


def history_frontier(
    runs: pd.DataFrame,
    histories: pd.DataFrame,
    axis: str,
    group: pd.Series,
    *,
    metric: str = schema.VAL_LOSS,
    n_bins: int = 30,
) -> pd.DataFrame:
    """Per group, the lower envelope of every run's ``metric`` curve against ``axis`` (Kaplan
    et al. 2020, Fig. 1: the compute-efficient frontier), thinned to the lowest point per
    1/n_bins of the axis' log range so dense early steps do not dominate a fit.
    Columns: group, ``axis``, ``metric``, diverged (False: non-finite points are dropped)."""
    values = histories[histories["metric"] == metric][["run_id", axis, "value"]]
    values = values.merge(
        pd.DataFrame({"run_id": runs["run_id"], "group": group.to_numpy()}), on="run_id"
    )
    values = values[np.isfinite(values[axis]) & np.isfinite(values["value"]) & (values[axis] > 0)]
    fronts = []
    for name, pts in values.groupby("group"):
        log_x = np.log(pts[axis])
        edges = np.linspace(log_x.min(), log_x.max(), n_bins + 1)
        lowest = pts.loc[pts.groupby(np.digitize(log_x, edges[1:-1]))["value"].idxmin()]
        fronts.append(pareto_front(lowest, axis, "value").assign(group=name))
    columns = ["group", axis, metric, "diverged"]
    if not fronts:
        return pd.DataFrame(columns=columns)
    return pd.concat(fronts).rename(columns={"value": metric}).assign(diverged=False)[columns]
