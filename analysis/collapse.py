"""Collapse repeated seeds (mean / sem) and hyperparameter sweeps (min over e.g. the lr).

Cells are told apart by the string form of their config values, so params that only some runs
have (an SM3 run's ``optim.momentum`` in a sweep with Adam) are just another value ("nan"), not
missing group keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.bootstrap import seed_matrix
from analysis.errors import AnalysisError, unknown
from trainer import schema

MEASURES = (
    "params_total",
    "params_non_embedding",
    "flops_per_token",
    schema.TOKENS,
    schema.FLOPS,
    schema.WALL_CLOCK,
)
# params that say where and as what a run was logged, not what it trained: sweep.run_name,
# sweep.id, sweep.parent_run_id, tracking.uri, ... differ between seeds of one configuration
BOOKKEEPING_PREFIXES = ("sweep.", "tracking.")
SEED_COLUMN = "seed"  # the param of a run's seed (trainer/config.py: JobConfig.seed)


def config_columns(
    param_columns: Sequence[str], exclude: Sequence[str] = (SEED_COLUMN,)
) -> list[str]:
    """The params that identify a configuration: all but bookkeeping and ``exclude``."""
    return [c for c in param_columns if c not in exclude and not c.startswith(BOOKKEEPING_PREFIXES)]


def check_columns(df: pd.DataFrame, columns: Sequence[str], option: str) -> None:
    for col in columns:
        if col not in df.columns:
            raise unknown(f"column for {option}", col, df.columns)


def check_numeric(df: pd.DataFrame, column: str, option: str) -> None:
    """Refuse a column holding values that are not numbers (NaN and inf are numbers: a diverged
    run's loss), naming the numeric columns there are."""
    values = df[column]
    bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
    if bad.any():
        numeric = sorted(
            str(c)
            for c in df.columns
            if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        )
        raise AnalysisError(
            f"{option} {column!r} must be a numeric column (it holds {values[bad].iloc[0]!r}); "
            f"numeric columns: {', '.join(numeric) or '(none)'}"
        )


def labels(df: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """One string per row naming its group: the ``by`` values joined by '/' ('all' if no by)."""
    if not by:
        return pd.Series("all", index=df.index)
    if df.empty:  # agg over no rows would give a DataFrame, not a Series
        return pd.Series(index=df.index, dtype=str)
    return df[list(by)].map(str).agg("/".join, axis=1)  # map, not astype: NaN -> "nan"


def collapse_seeds(
    runs: pd.DataFrame, by: Sequence[str], *, value: str = schema.FINAL_VAL_LOSS
) -> pd.DataFrame:
    """One row per cell ``by`` (the config minus the seed): mean and standard error of
    ``value`` over the cell's non-diverged runs and those runs' values (``<value>_seeds``, for
    bootstraps that resample seeds within cells), the mean of each measure (tokens, FLOPs,
    wall-clock, ...), and how many runs the cell had and how many diverged."""
    check_columns(runs, [*by, value], "collapsing seeds")
    key = labels(runs, by)
    ok = ~runs["diverged"].astype(bool) & np.isfinite(runs[value].astype(float))
    cells = runs.groupby(key, sort=False)
    good = runs[ok].groupby(key[ok], sort=False)[value]
    out = cells[list(by)].first()
    out["n_runs"] = cells.size()
    out["n_diverged"] = cells["diverged"].sum().astype(int)
    out[value] = good.mean()
    out[f"{value}_sem"] = good.sem()
    out[f"{value}_seeds"] = good.agg(tuple)
    out[f"{value}_seeds"] = out[f"{value}_seeds"].apply(lambda s: s if isinstance(s, tuple) else ())
    out["n_seeds"] = good.size().reindex(out.index).fillna(0).astype(int)
    measures = [m for m in MEASURES if m in runs.columns and m not in by]
    out = out.join(cells[measures].mean())
    out["diverged"] = out["n_seeds"] == 0  # every seed of the cell diverged
    return out.reset_index(drop=True)


def seed_values(points: pd.DataFrame, value: str) -> np.ndarray | None:
    """Each point's seed values of ``value`` (its ``<value>_seeds`` from ``collapse_seeds``) as
    a ``bootstrap.seed_matrix``; None for points not collapsed over seeds."""
    column = f"{value}_seeds"
    return seed_matrix(points[column]) if column in points else None


def min_over(
    cells: pd.DataFrame, param: str, by: Sequence[str], *, value: str = schema.FINAL_VAL_LOSS
) -> pd.DataFrame:
    """Per cell ``by``, the row whose ``value`` is lowest over the values of ``param`` (e.g. the
    best learning rate). Adds ``n_<param>`` (values tried) and ``<param>_at_edge`` (a numeric
    best that is the smallest or largest value tried: the sweep may not bracket the optimum)."""
    check_columns(cells, [*by, param, value], f"--min-over {param}")
    key = labels(cells, by)
    finite = np.isfinite(cells[value].astype(float))
    best = cells.loc[cells[finite].groupby(key[finite], sort=False)[value].idxmin()]
    tried = cells.groupby(key, sort=False)[param]
    best_key = key[best.index]
    best[f"n_{param}"] = best_key.map(tried.nunique()).to_numpy()
    if pd.api.types.is_numeric_dtype(cells[param]):
        best[f"{param}_at_edge"] = (best[param] == best_key.map(tried.min())) | (
            best[param] == best_key.map(tried.max())
        )
    else:
        best[f"{param}_at_edge"] = False
    return best.reset_index(drop=True)
