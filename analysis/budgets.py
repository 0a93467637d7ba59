"""Compute budgets: which runs share one, and how a budget is written (6e18, not 6.3e+18).

Runs share a budget either by clustering (``budget_bins``: nothing given) or by being within
10% of a budget the user names (``nearest_budget``: e.g. Hoffmann et al.'s 6e18 ... 3e21).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fclusterdata

# Runs meant for one budget land a little apart (FLOPs per token differ with the model's
# shape, batches round); runs more than this many decades apart belong to different budgets.
BUDGET_GAP_DECADES = 0.05
BUDGET_TOLERANCE = 0.1  # a run counts toward a named budget within 10% of it


def budget_label(value: float) -> str:
    """Two significant digits in compact scientific notation (6e18, 2.5e18, 1e21); plain
    below 1e4."""
    if not np.isfinite(value):
        return "nan"
    if 1e-3 <= abs(value) < 1e4:
        return np.format_float_positional(float(f"{value:.2g}"), trim="-")
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def budget_bins(x: np.ndarray) -> np.ndarray:
    """Each value replaced by its budget: values within BUDGET_GAP_DECADES of a neighbour
    (single linkage in log10) form one budget, represented by its median to two significant
    digits. Non-finite or non-positive values stay NaN."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    if ok.sum() == 1:
        out[ok] = float(budget_label(x[ok][0]))
    elif ok.any():
        clusters = fclusterdata(
            np.log10(x[ok])[:, None], t=BUDGET_GAP_DECADES, criterion="distance", method="single"
        )
        values = x[ok]
        budget = {c: float(budget_label(np.median(values[clusters == c]))) for c in set(clusters)}
        out[ok] = [budget[c] for c in clusters]
    return out


def nearest_budget(
    x: np.ndarray, budgets: np.ndarray, tolerance: float = BUDGET_TOLERANCE
) -> np.ndarray:
    """Each value's nearest budget in ``budgets`` when within ``tolerance`` (relative) of it,
    else NaN (Porian et al. 2024, ``analysis.py``: ``fetch_flop``, flop_tolerance=0.1)."""
    x, budgets = np.asarray(x, dtype=float), np.asarray(budgets, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.abs(np.log(x[:, None] / budgets[None, :]))
    nearest = np.nanargmin(np.where(np.isfinite(distance), distance, np.inf), axis=1)
    close = distance[np.arange(x.size), nearest] <= np.log1p(tolerance)
    return np.where(close, budgets[nearest], np.nan)
