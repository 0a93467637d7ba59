"""Fair comparisons of variants: loss at equal wall-clock, tokens or FLOPs.

From the histories: each run's val_loss curve is interpolated onto a common grid of the axis,
only inside the range that run measured (no curve is extrapolated) and over the range every
variant covers; seeds are averaged, and a variant is represented by its best configuration at
each grid point.
From fitted curves: which variant's law predicts the lowest loss at a given budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError, unknown
from analysis.groups import labels
from analysis.powerlaw import PowerLawFit
from trainer import schema

COMPARE_AXES = {"wall_clock": schema.WALL_CLOCK, "tokens": schema.TOKENS, "flops": schema.FLOPS}


@dataclass(frozen=True)
class EqualBudget:
    axis: str                      # history column, e.g. "wall_clock_s"
    table: pd.DataFrame            # index: axis value; one loss column per variant; "winner"
    sem: pd.DataFrame              # same shape: standard error over seeds (NaN for one seed)
    common_range: tuple[float, float]
    excluded: tuple[str, ...]      # runs left out: diverged, or fewer than two finite points


def compare_at_equal(runs: pd.DataFrame, histories: pd.DataFrame, axis: str,
                     variant: Sequence[str], cell: Sequence[str], *,
                     metric: str = schema.VAL_LOSS, n_points: int = 8) -> EqualBudget:
    """``variant``: columns naming a variant (e.g. model.name); ``cell``: columns naming one
    configuration (the config minus the seed). Each run's curve is interpolated only inside its
    own range; runs sharing a cell are seeds and are averaged; a variant's loss at a grid point
    is that of its best configuration there; the grid spans the range every variant covers,
    which is the range every run covers when all runs span the same range (the usual A/B case).
    A variant whose runs leave a gap at some grid point has NaN there and cannot win it."""
    if axis not in COMPARE_AXES.values():
        raise unknown("comparison axis", axis, COMPARE_AXES.values())
    curves, excluded = {}, []
    values = histories[histories["metric"] == metric]
    for run_id, diverged in runs[["run_id", "diverged"]].itertuples(index=False):
        points = values[values["run_id"] == run_id][[axis, "value"]].astype(float)
        points = points[np.isfinite(points).all(axis=1)].sort_values(axis)
        if diverged or len(points) < 2:
            excluded.append(run_id)
        else:
            curves[run_id] = points
    meta = runs.set_index("run_id").loc[list(curves)]
    names = labels(meta, variant)
    if names.nunique() < 2:
        raise AnalysisError(f"need >= 2 variants of {'/'.join(variant)} with a finite {metric} "
                            f"history to compare; have {sorted(names.unique())}")
    span = pd.DataFrame({"lo": [c[axis].iloc[0] for c in curves.values()],
                         "hi": [c[axis].iloc[-1] for c in curves.values()]}, index=names.index)
    cover = span.groupby(names.to_numpy()).agg({"lo": "min", "hi": "max"})
    lo, hi = cover["lo"].max(), cover["hi"].min()
    if not lo < hi:
        raise AnalysisError(f"the variants share no {axis} range: one ends at {hi:.4g}, "
                            f"another starts at {lo:.4g}")
    grid = np.geomspace(lo, hi, n_points) if lo > 0 else np.linspace(lo, hi, n_points)
    interp = pd.DataFrame({run_id: np.interp(grid, c[axis], c["value"], left=np.nan, right=np.nan)
                           for run_id, c in curves.items()}, index=pd.Index(grid, name=axis)).T
    interp["variant"] = names.to_numpy()
    interp["cell"] = labels(meta, cell).to_numpy()
    by_cell = interp.groupby(["variant", "cell"])
    mean, sem = by_cell.mean(), by_cell.sem()
    table = mean.groupby(level="variant").min().T.set_axis(pd.Index(grid, name=axis))
    sems = {}
    for v in table.columns:   # the sem of the configuration that is best at each grid point
        m, se = mean.xs(v, level="variant"), sem.xs(v, level="variant")
        sems[v] = [se.loc[m[g].idxmin(), g] if m[g].notna().any() else np.nan for g in grid]
    sems = pd.DataFrame(sems, index=table.index)
    table["winner"] = table.idxmin(axis=1)
    return EqualBudget(axis=axis, table=table, sem=sems, common_range=(float(lo), float(hi)),
                       excluded=tuple(excluded))


def winners_from_fits(fits: Mapping[str, PowerLawFit], budgets: Sequence[float]) -> pd.DataFrame:
    """Predicted loss of every variant's fitted law at each budget, the winner, and whether
    that budget lies outside some variant's fitted range (an extrapolation)."""
    budgets = np.asarray(budgets, dtype=float)
    table = pd.DataFrame({v: fit.predict(budgets) for v, fit in fits.items()},
                         index=pd.Index(budgets, name="budget"))
    table["winner"] = table.idxmin(axis=1)
    table["extrapolated"] = [any(not f.x_min <= b <= f.x_max for f in fits.values()) for b in budgets]
    return table



def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows no other row beats on both x and y (lowest y so far in order of x)."""
    ok = points[np.isfinite(points[x].astype(float)) & np.isfinite(points[y].astype(float))]
    ok = ok.sort_values([x, y])
    best_before = ok[y].astype(float).cummin().shift(fill_value=np.inf)
    return ok[ok[y] < best_before]


def history_frontier(runs: pd.DataFrame, histories: pd.DataFrame, axis: str, group: pd.Series, *,
                     metric: str = schema.VAL_LOSS, n_bins: int = 30) -> pd.DataFrame:
    """Per group, the lower envelope of every run's ``metric`` curve against ``axis`` (Kaplan
    et al. 2020, Fig. 1: the compute-efficient frontier), thinned to the lowest point per
    1/n_bins of the axis' log range so dense early steps do not dominate a fit.
    Columns: group, ``axis``, ``metric``, diverged (False: non-finite points are dropped)."""
    values = histories[histories["metric"] == metric][["run_id", axis, "value"]]
    values = values.merge(pd.DataFrame({"run_id": runs["run_id"], "group": group.to_numpy()}), on="run_id")
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
