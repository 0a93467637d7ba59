"""IsoFLOP profiles: Chinchilla Approach 2 (Hoffmann et al. 2022, Sec. 3.2, Fig. 3).

Per compute budget C, fit a parabola to loss against log N; its vertex is N_opt(C). Then
regress log N_opt on log C: N_opt = k C^a (their Table 2: a = 0.49). With C = 6 N D,
D_opt = C / (6 N_opt), so D_opt's exponent is b = 1 - a.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.bootstrap import Intervals, bootstrap_refit
from analysis.errors import AnalysisError
from analysis.lse import usable


class GridEdgeWarning(UserWarning):
    """A budget's loss minimum lies at the edge of its model-size grid: N_opt is extrapolated."""


@dataclass(frozen=True)
class IsoFlopFit:
    budgets: pd.DataFrame     # per budget: compute, n_points, c0, c1, c2, n_opt, loss_opt, at_edge
    exponent: float           # a in N_opt = k C^a
    coefficient: float        # k
    exponent_stderr: float    # OLS standard error of a (scipy.stats.linregress)
    edge_budgets: tuple[str, ...]

    @property
    def at_edge(self) -> bool:
        return bool(self.edge_budgets)

    def n_opt(self, compute: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.asarray(compute, float) ** self.exponent

    def d_opt(self, compute: np.ndarray | float) -> np.ndarray:
        return np.asarray(compute, float) / (6 * self.n_opt(compute))

    def estimates(self) -> dict[str, float]:
        out = {"a": self.exponent, "b": 1 - self.exponent, "k": self.coefficient}
        out.update({f"N_opt[{b}]": float(v) for b, v in self.budgets["n_opt"].items()})
        return out


def _parabola(log_n: np.ndarray, loss: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Weighted least-squares L = c0 + c1 u + c2 u^2 (u = ln N) and its vertex."""
    c2, c1, c0 = np.polyfit(log_n, loss, 2, w=np.sqrt(weights))
    has_min = c2 > 0
    u_opt = -c1 / (2 * c2) if has_min else np.nan
    return dict(c0=c0, c1=c1, c2=c2, n_opt=np.exp(u_opt),
                loss_opt=c0 + c1 * u_opt + c2 * u_opt ** 2)


def fit_isoflop(budget: np.ndarray, compute: np.ndarray, n: np.ndarray, loss: np.ndarray, *,
                weights: np.ndarray | None = None, warn: bool = True) -> IsoFlopFit:
    """``budget`` labels each run's compute budget, ``compute`` its FLOPs (a budget's C is the
    median over its runs); ``weights`` are per-run multiplicities (bootstrap)."""
    budget = np.asarray(budget).astype(str)
    compute, n, loss = (np.asarray(v, dtype=float) for v in (compute, n, loss))
    weights = np.ones(n.size) if weights is None else np.asarray(weights, dtype=float)
    keep = usable(compute, n, loss)
    rows = {}
    for label in pd.unique(budget[keep]):
        grid = keep & (budget == label)
        sampled = grid & (weights > 0)
        if np.unique(n[sampled]).size < 3:
            continue
        fit = _parabola(np.log(n[sampled]), loss[sampled], weights[sampled])
        # "edge": the best observed size is the smallest or largest of the budget's grid, or
        # the vertex falls outside it; either way N_opt is an extrapolation
        best_n = n[sampled][np.argmin(loss[sampled])]
        at_edge = (best_n in (n[grid].min(), n[grid].max())
                   or not n[grid].min() <= fit["n_opt"] <= n[grid].max())
        rows[label] = dict(compute=float(np.median(compute[grid])), n_points=int(grid.sum()),
                           at_edge=bool(at_edge), **fit)
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("budget")
    usable_budgets = table[np.isfinite(table["n_opt"])] if len(table) else table
    if len(usable_budgets) < 2:
        raise AnalysisError(f"IsoFLOP fit needs >= 2 compute budgets with >= 3 model sizes and a "
                            f"loss minimum; usable: {list(usable_budgets.index)} of "
                            f"{list(pd.unique(budget))}")
    edges = tuple(table.index[table["at_edge"]])
    if warn and edges:
        warnings.warn(f"IsoFLOP budgets {list(edges)}: loss minimum at the edge of the model-size "
                      f"grid, N_opt there is extrapolated; widen those grids", GridEdgeWarning,
                      stacklevel=2)
    a, k, stderr = _frontier(usable_budgets["compute"].to_numpy(), usable_budgets["n_opt"].to_numpy())
    return IsoFlopFit(budgets=table.sort_values("compute"), exponent=a, coefficient=k,
                      exponent_stderr=stderr, edge_budgets=edges)


def _frontier(compute: np.ndarray, n_opt: np.ndarray) -> tuple[float, float, float]:
    """OLS of ln N_opt on ln C: (a, k, stderr of a)."""
    reg = stats.linregress(np.log(compute), np.log(n_opt))
    return float(reg.slope), float(np.exp(reg.intercept)), float(reg.stderr)


def frontier_predict(compute: np.ndarray, n_opt: np.ndarray, train: np.ndarray,
                     test: np.ndarray) -> np.ndarray:
    """N_opt at the ``test`` budgets from the frontier fitted on the ``train`` budgets."""
    a, k, _ = _frontier(compute[train], n_opt[train])
    return k * compute[test] ** a


def bootstrap_isoflop(budget: np.ndarray, compute: np.ndarray, n: np.ndarray, loss: np.ndarray,
                      fit: IsoFlopFit, *, n_resamples: int, seed: int,
                      level: float = 0.95) -> Intervals:
    """Runs are resampled within each budget, so every budget keeps its number of runs."""
    point = fit.estimates()

    def refit(weights: np.ndarray) -> dict[str, float]:
        try:
            return fit_isoflop(budget, compute, n, loss, weights=weights, warn=False).estimates()
        except AnalysisError:   # too few budgets left in this resample
            return dict.fromkeys(point, np.nan)

    return bootstrap_refit(len(np.asarray(n)), refit, point, n_resamples=n_resamples, seed=seed,
                           level=level, strata=np.asarray(budget).astype(str))
