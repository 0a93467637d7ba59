"""IsoFLOP profiles: Chinchilla Approach 2 (Hoffmann et al. 2022, Sec. 3.2, Fig. 3).

Per compute budget C, the loss-minimising model size N_opt(C) (``optimum``: an Akima spline or
a parabola); then N_opt = k C^a by least squares of ln N_opt on ln C. Weighted (the default):
each budget weighs 1 / sigma^2, sigma the bootstrap standard deviation of its ln N_opt, floored
at a third of its grid's spacing and inflated by resamples / resamples that found a minimum
(Porian et al. 2024, ``analysis.py``: ``vectorized_interp_with_seed_noise`` and
``power_law_fit(weighted=True)``). With C = 6 N D, D_opt = C / (6 N_opt): b = 1 - a.

Budgets flagged by the optimum's diagnostics (``optimum.EDGE``, ``optimum.OFF_BRACKET``) are
kept unless ``drop_flagged``; the exponent is reported both with and without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Intervals, resample, summarize
from analysis.errors import AnalysisError
from analysis.lse import usable, user_weights
from analysis.optimum import DEFAULT_METHOD, REMEDIES, Method, Optimum, locate

# Porian et al. 2024 floor each optimum's sigma at min_std_factor = 0.33 of the grid spacing
SIGMA_FLOOR_SPACINGS = 0.33


@dataclass(frozen=True)
class Frontier:
    """N_opt = k C^a regressed on some budgets."""

    a: float
    k: float
    stderr: float  # of a: from the weights when weighted, from the residuals if not
    budgets: tuple[str, ...]  # the budgets regressed
    weighted: bool
    with_flagged: bool  # flagged budgets were allowed in

    def n_opt(self, compute: np.ndarray | float) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.k * np.asarray(compute, float) ** self.a


@dataclass(frozen=True)
class IsoFlopFit:
    method: Method
    budgets: pd.DataFrame  # per budget: compute, n_points, n_sizes, n_opt, loss_opt, status,
    #                            excluded, flagged, sigma (of ln N_opt; NaN without bootstrap)
    profiles: dict[str, Optimum]
    frontier: Frontier  # the reported law: weighted if possible, flagged budgets in
    #                            unless drop_flagged
    alternatives: dict[str, Frontier | None]  # the same law unweighted, and with / without
    #                                           flagged budgets (None: < 2 budgets left)
    intervals: Intervals | None

    @property
    def exponent(self) -> float:
        return self.frontier.a

    @property
    def coefficient(self) -> float:
        return self.frontier.k

    def n_opt(self, compute: np.ndarray | float) -> np.ndarray:
        return self.frontier.n_opt(compute)

    def d_opt(self, compute: np.ndarray | float) -> np.ndarray:
        return np.asarray(compute, float) / (6 * self.n_opt(compute))

    def messages(self) -> list[str]:
        """One line per kind of problem, naming the budgets flagged or excluded for it and
        saying what to do."""
        by_message: dict[str, list[str]] = {}
        for label in self.budgets.index[self.budgets["status"] != "ok"]:
            by_message.setdefault(self.profiles[label].message(), []).append(label)
        return [
            f"budget{'s' if len(labels) > 1 else ''} {', '.join(labels)}: {message}"
            for message, labels in by_message.items()
        ]


def fit_isoflop(
    budget: np.ndarray,
    compute: np.ndarray,
    n: np.ndarray,
    loss: np.ndarray,
    *,
    method: Method = DEFAULT_METHOD,
    weights: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
    weighted: bool = True,
    drop_flagged: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> IsoFlopFit:
    """``budget`` labels each point's compute budget, ``compute`` its FLOPs (a budget's C is the
    median over its points); ``weights``: the user's per-point weights (parabola methods only:
    a spline interpolates every point); ``seeds``: (n, k) each point's seed losses
    (``bootstrap.seed_matrix``). The bootstrap (``n_resamples``, 0 for none) resamples seeds
    within points when every point has >= 2, else points within budgets; it gives the
    intervals and the weights of the regression."""
    budget = np.asarray(budget).astype(str)
    compute, n, loss = (np.asarray(v, dtype=float) for v in (compute, n, loss))
    base = user_weights(weights, n.size)
    if base is not None and method.name == "akima" and np.unique(base[base > 0]).size > 1:
        raise AnalysisError(
            "weights: --method akima interpolates every point and cannot weight "
            "them; use --method window or parabola"
        )
    keep = usable(compute, n, loss) & (True if base is None else base > 0)
    base = np.where(keep, 1.0 if base is None else base, 0.0)
    profiles = _optima(budget, n, loss, base, method)
    table = _table(budget, compute, keep, profiles).sort_values("compute")
    sigma, intervals_of = pd.Series(np.nan, index=table.index), None
    if n_resamples > 0:
        draws = resample(
            n.size,
            n_resamples,
            seed,
            strata=budget,
            strata_name="budgets",
            seeds=None if seeds is None else np.asarray(seeds, dtype=float),
        )
        samples = [
            _optima(
                budget,
                n,
                loss if draws.values is None else draws.values[r],
                base * draws.weights[r],
                method,
            )
            for r in range(n_resamples)
        ]
        sigma = _sigma(table, samples, budget, n)
        intervals_of = _intervals_of(table, samples, level, seed, draws.what)
    table["sigma"] = sigma
    use_weights = weighted and bool(np.isfinite(sigma).any())
    regressions = {
        (w, f): _regress(table, w and use_weights, f) for w in (True, False) for f in (True, False)
    }
    primary = regressions[(use_weights, not drop_flagged)]
    if primary is None:
        raise AnalysisError(_too_few_message(table, drop_flagged))
    alternatives = {}
    if primary.weighted:
        alternatives["unweighted"] = regressions[(False, not drop_flagged)]
    if table["flagged"].any():
        other = "without" if not drop_flagged else "with"
        alternatives[f"{other} flagged budgets"] = regressions[(use_weights, drop_flagged)]
    intervals = intervals_of(primary) if intervals_of else None
    return IsoFlopFit(
        method=method,
        budgets=table,
        profiles=profiles,
        frontier=primary,
        alternatives=alternatives,
        intervals=intervals,
    )


def _optima(
    budget: np.ndarray, n: np.ndarray, loss: np.ndarray, weights: np.ndarray, method: Method
) -> dict[str, Optimum]:
    return {
        label: locate(n[mine], loss[mine], weights[mine], method)
        for label in pd.unique(budget)
        for mine in [budget == label]
    }


def _table(
    budget: np.ndarray, compute: np.ndarray, keep: np.ndarray, profiles: dict[str, Optimum]
) -> pd.DataFrame:
    rows = {
        label: dict(
            compute=float(np.median(compute[(budget == label) & keep]))
            if (keep & (budget == label)).any()
            else np.nan,
            n_points=int((keep & (budget == label)).sum()),
            n_sizes=opt.n_sizes,
            n_opt=opt.n_opt,
            loss_opt=opt.loss_opt,
            status=opt.status,
            excluded=opt.excluded,
            flagged=opt.flagged,
            extrapolated=opt.extrapolated,
        )
        for label, opt in profiles.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("budget")


def _sigma(
    table: pd.DataFrame, samples: list[dict[str, Optimum]], budget: np.ndarray, n: np.ndarray
) -> pd.Series:
    """Porian et al.'s sigma of ln N_opt per budget (module docstring)."""
    log_opt = np.log(
        pd.DataFrame([{b: o.n_opt for b, o in s.items()} for s in samples]).where(
            lambda v: (v > 0) & np.isfinite(v)
        )
    )
    found = log_opt.notna().sum()
    spacing = pd.Series(
        {
            b: np.median(np.diff(np.unique(np.log(n[budget == b]))))
            if np.unique(n[budget == b]).size > 1
            else np.nan
            for b in table.index
        }
    )
    sigma = np.maximum(log_opt.std(ddof=1), SIGMA_FLOOR_SPACINGS * spacing) * len(samples) / found
    return sigma.where(found >= 2).reindex(table.index)


def _regress(table: pd.DataFrame, weighted: bool, with_flagged: bool) -> Frontier | None:
    """Least squares of ln N_opt on ln C over the usable budgets; None with fewer than 2.
    N_opt <= 0 or non-finite never enters (a budget without a minimum has NaN)."""
    chosen = table[
        ~table["excluded"]
        & (with_flagged | ~table["flagged"])
        & (table["n_opt"] > 0)
        & np.isfinite(table["n_opt"])
        & (table["compute"] > 0)
    ]
    if weighted:
        chosen = chosen[np.isfinite(chosen["sigma"]) & (chosen["sigma"] > 0)]
    if len(chosen) < 2:
        return None
    return Frontier(
        *_line(
            chosen["compute"].to_numpy(),
            chosen["n_opt"].to_numpy(),
            chosen["sigma"].to_numpy() if weighted else None,
        ),
        budgets=tuple(chosen.index),
        weighted=weighted,
        with_flagged=with_flagged,
    )


def _line(
    compute: np.ndarray, n_opt: np.ndarray, sigma: np.ndarray | None
) -> tuple[float, float, float]:
    """(a, k, stderr of a) of ln N_opt = ln k + a ln C; weights 1/sigma^2 (numpy's w is 1/sigma)."""
    x, y = np.log(compute), np.log(n_opt)
    with np.errstate(over="ignore"):  # an absurd intercept (k = inf) is reported as such
        return _fit_line(x, y, sigma)


def _fit_line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None) -> tuple[float, float, float]:
    if sigma is not None:
        (a, lnk), cov = np.polyfit(x, y, 1, w=1 / sigma, cov="unscaled")
        return float(a), float(np.exp(lnk)), float(np.sqrt(cov[0, 0]))
    if x.size < 3:  # a line through two points: no residuals to estimate its error from
        a, lnk = np.polyfit(x, y, 1)
        return float(a), float(np.exp(lnk)), np.nan
    (a, lnk), cov = np.polyfit(x, y, 1, cov=True)
    return float(a), float(np.exp(lnk)), float(np.sqrt(cov[0, 0]))


def _intervals_of(
    table: pd.DataFrame, samples: list[dict[str, Optimum]], level: float, seed: int, what: str
):
    """A function of the reported regression giving its bootstrap intervals: each resample's
    optima regressed the same way (weighted by the full-data sigma), and each budget's N_opt."""
    located = table.index[~table["excluded"]]

    def intervals(primary: Frontier) -> Intervals:
        rows = []
        for s in samples:
            resampled = table.assign(
                n_opt=[s[b].n_opt for b in table.index],
                excluded=[s[b].excluded for b in table.index],
                flagged=[s[b].flagged for b in table.index],
            )
            line = _regress(resampled, primary.weighted, primary.with_flagged)
            rows.append(
                {
                    "a": line.a if line else np.nan,
                    "b": 1 - line.a if line else np.nan,
                    "k": line.k if line else np.nan,
                    **{f"N_opt[{b}]": s[b].n_opt for b in located},
                }
            )
        point = {
            "a": primary.a,
            "b": 1 - primary.a,
            "k": primary.k,
            **{f"N_opt[{b}]": table.loc[b, "n_opt"] for b in located},
        }
        return summarize(point, pd.DataFrame(rows), level=level, seed=seed, resampled=what)

    return intervals


def _too_few_message(table: pd.DataFrame, drop_flagged: bool) -> str:
    why = (
        "; ".join(
            f"{b}: {REMEDIES[row['status']]}"
            for b, row in table.iterrows()
            if row["status"] != "ok"
        )
        or "none"
    )
    left = "unflagged budgets" if drop_flagged else "budgets"
    return (
        f"IsoFLOP fit needs >= 2 {left} with an interior loss minimum (>= 3 model sizes "
        f"each); per budget: {why}"
    )


def frontier_predict(
    compute: np.ndarray, n_opt: np.ndarray, train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """N_opt at the ``test`` budgets from an unweighted frontier fitted on the ``train`` budgets."""
    a, k, _ = _line(compute[train], n_opt[train], None)
    return k * compute[test] ** a
