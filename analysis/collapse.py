"""Collapse repeated seeds (mean / sem) and hyperparameter sweeps (min over e.g. the lr)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.errors import unknown
from trainer import schema

MEASURES = ("params_total", "params_non_embedding", "flops_per_token",
            schema.TOKENS, schema.FLOPS, schema.WALL_CLOCK)
# params that say where and as what a run was logged, not what it trained: sweep.run_name,
# sweep.id, sweep.parent_run_id, tracking.uri, ... differ between seeds of one configuration
BOOKKEEPING_PREFIXES = ("sweep.", "tracking.")


def config_columns(param_columns: Sequence[str], exclude: Sequence[str] = ("seed",)) -> list[str]:
    """The params that identify a configuration: all but bookkeeping and ``exclude``."""
    return [c for c in param_columns if c not in exclude and not c.startswith(BOOKKEEPING_PREFIXES)]


def check_columns(df: pd.DataFrame, columns: Sequence[str], option: str) -> None:
    for col in columns:
        if col not in df.columns:
            raise unknown(f"column for {option}", col, df.columns)


def collapse_seeds(runs: pd.DataFrame, by: Sequence[str], *,
                   value: str = schema.FINAL_VAL_LOSS) -> pd.DataFrame:
    """One row per cell ``by`` (the config minus the seed): mean and standard error of
    ``value`` over the cell's non-diverged runs, the mean of each measure (tokens, FLOPs,
    wall-clock, ...), and how many runs the cell had and how many diverged."""
    check_columns(runs, [*by, value], "collapsing seeds")
    runs = runs.assign(_ok=~runs["diverged"] & np.isfinite(runs[value].astype(float)))
    ok = runs[runs["_ok"]]
    cells = runs.groupby(list(by), dropna=False)
    out = pd.DataFrame({
        "n_runs": cells.size(),
        "n_diverged": cells["diverged"].sum().astype(int),
        value: ok.groupby(list(by), dropna=False)[value].mean(),
        f"{value}_sem": ok.groupby(list(by), dropna=False)[value].sem(),
        "n_seeds": ok.groupby(list(by), dropna=False).size(),
    })
    measures = [m for m in MEASURES if m in runs.columns]
    out = out.join(cells[measures].mean())
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["diverged"] = out["n_seeds"] == 0     # every seed of the cell diverged
    return out.reset_index()


def min_over(cells: pd.DataFrame, param: str, by: Sequence[str], *,
             value: str = schema.FINAL_VAL_LOSS) -> pd.DataFrame:
    """Per cell ``by``, the row whose ``value`` is lowest over the values of ``param`` (e.g. the
    best learning rate). Adds ``n_<param>`` (values tried) and ``<param>_at_edge`` (the best is
    the smallest or largest value tried, so the sweep may not bracket the optimum)."""
    check_columns(cells, [*by, param, value], f"--min-over {param}")
    finite = cells[np.isfinite(cells[value].astype(float))]
    groups = finite.groupby(list(by), dropna=False)
    best = finite.loc[groups[value].idxmin()].set_index(list(by))
    tried = cells.groupby(list(by), dropna=False)[param]
    best[f"n_{param}"] = tried.nunique()
    best[f"{param}_at_edge"] = (best[param] == tried.min()) | (best[param] == tried.max())
    return best.reset_index()
