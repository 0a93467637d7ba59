"""Runs' loss curves read on a shared axis (tokens, FLOPs or wall-clock).

``reached_by``: the loss a run had reached by each budget T (its best, or its last evaluation
at or before T), NaN before its first evaluation: the fair value at equal wall-clock, since a
run that ended earlier still has its result at T. ``at_budgets``: the loss at exactly each
budget, interpolated in log-log between the evaluations around it and NaN outside the run's
range (Porian et al. 2024, ``analysis.py``: ``fetch_flop``), which ``curve_points`` uses to read
IsoFLOP profiles off the curves of a sweep over model sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.budgets import budget_label
from analysis.errors import AnalysisError
from trainer import schema

HOW = ("best", "last")


def run_curves(
    runs: pd.DataFrame, histories: pd.DataFrame, axis: str, metric: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """run_id -> its finite (``axis``, value) points in axis order, and the runs left out:
    diverged, or without a finite point."""
    values = histories[histories["metric"] == metric]
    by_run = dict(tuple(values.groupby("run_id")[[axis, "value"]]))
    curves, excluded = {}, []
    for run_id, diverged in runs[["run_id", "diverged"]].itertuples(index=False):
        points = by_run.get(run_id, pd.DataFrame(columns=[axis, "value"])).astype(float)
        points = points[np.isfinite(points).all(axis=1)].sort_values(axis)
        if diverged or points.empty:
            excluded.append(run_id)
        else:
            curves[run_id] = points
    return curves, excluded


def reached_by(curve: pd.DataFrame, axis: str, grid: np.ndarray, how: str = "best") -> np.ndarray:
    """Per grid value T: the lowest (``best``) or the latest (``last``) value at axis <= T."""
    values = curve["value"].to_numpy()
    if how == "best":
        values = np.minimum.accumulate(values)
    index = np.searchsorted(curve[axis].to_numpy(), grid, side="right") - 1
    return np.where(index >= 0, values[np.maximum(index, 0)], np.nan)


def at_budgets(curve: pd.DataFrame, axis: str, grid: np.ndarray) -> np.ndarray:
    """Per grid value: the value interpolated in log-log inside the curve's range, else NaN."""
    x, y = curve[axis].to_numpy(), curve["value"].to_numpy()
    ok = (x > 0) & (y > 0)
    if ok.sum() < 1:
        return np.full(len(grid), np.nan)
    return np.exp(np.interp(np.log(grid), np.log(x[ok]), np.log(y[ok]), left=np.nan, right=np.nan))


def curve_points(
    runs: pd.DataFrame,
    histories: pd.DataFrame,
    budgets: Sequence[float] | None,
    metric: str,
    size: str,
    min_sizes: int = 3,
    n_auto: int = 6,
) -> pd.DataFrame:
    """One row per run and FLOP budget C inside its curve: the run's row with ``flops`` = C,
    ``tokens`` at C, ``metric`` at C (``at_budgets``) and the budget's label in ``budget``.
    ``budgets`` None: ``n_auto`` budgets spaced evenly in log over the range where the curves
    of at least ``min_sizes`` distinct ``size`` values overlap."""
    curves, _ = run_curves(runs, histories, schema.FLOPS, metric)
    if not curves:
        raise AnalysisError(f"no run has a finite {metric} curve against {schema.FLOPS}")
    meta = runs.set_index("run_id")
    if budgets is None:
        budgets = _covered(curves, meta[size], min_sizes, n_auto)
    budgets = np.asarray(budgets, dtype=float)
    rows = []
    for run_id, curve in curves.items():
        run = meta.loc[run_id]
        for c, loss in zip(budgets, at_budgets(curve, schema.FLOPS, budgets)):
            if np.isfinite(loss):
                rows.append(
                    {
                        **run.to_dict(),
                        "run_id": run_id,
                        schema.FLOPS: c,
                        metric: loss,
                        # FLOPs grow in proportion to tokens within a run
                        schema.TOKENS: c * run[schema.TOKENS] / run[schema.FLOPS],
                        "budget": budget_label(c),
                    }
                )
    return pd.DataFrame(rows)


def _covered(
    curves: dict[str, pd.DataFrame], sizes: pd.Series, min_sizes: int, count: int
) -> np.ndarray:
    ranges = pd.DataFrame(
        {
            "lo": [c[schema.FLOPS].iloc[0] for c in curves.values()],
            "hi": [c[schema.FLOPS].iloc[-1] for c in curves.values()],
            "size": sizes.loc[list(curves)].to_numpy(),
        }
    )
    grid = np.geomspace(ranges["lo"].min(), ranges["hi"].max(), 200)
    covering = [ranges[(ranges["lo"] <= c) & (ranges["hi"] >= c)]["size"].nunique() for c in grid]
    inside = grid[np.asarray(covering) >= min_sizes]
    if inside.size == 0:
        raise AnalysisError(
            f"no FLOP budget lies on the curves of >= {min_sizes} model sizes: "
            f"give budgets with --budgets C [C ...] or sweep sizes whose curves overlap"
        )
    # evenly spaced over the covered points only: the covered stretches may have gaps (sizes
    # whose curves do not meet), and a budget in a gap would have fewer than min_sizes sizes
    return np.unique(inside[np.round(np.linspace(0, inside.size - 1, count)).astype(int)])
