"""Where one IsoFLOP profile (loss against model size at one compute budget) has its minimum.

Methods, selectable because wide and lopsided grids bend a single parabola (Open-Athena's
scaling-law-analysis; Porian et al. 2024, Sec. 3):
- ``parabola``: least squares L = c0 + c1 u + c2 u^2 in u = ln N over the whole grid
  (Hoffmann et al. 2022, Approach 2);
- ``window``: the same parabola over a window around the best measured size: K sizes each side
  of it, or every size whose loss is within a relative margin of the best (at least 3 sizes);
- ``akima``: an Akima spline of ln L against ln N through every size, minimised exactly between
  the sizes (its pieces are cubics), a minimum at either end of the grid discarded (Porian et
  al. 2024, ``analysis.py``: ``interpolation`` with ``scipy.interpolate.Akima1DInterpolator``).

Each result carries a status, and the statuses have distinct remedies:
- ``edge``: the best measured size is the smallest or largest of the grid: widen the grid;
- ``off_bracket``: the fitted minimum lies outside the grid, or outside the bracket between the
  best measured size's neighbours where a unimodal profile must have it: a poor fit, narrow
  the window;
- ``no_minimum``: the fit opens downward or is flat, or the spline's minimum is at an end of
  the grid; excluded;
- ``too_few``: fewer than 3 distinct sizes; excluded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import Akima1DInterpolator

from analysis.errors import AnalysisError

METHODS = ("akima", "window", "parabola")
OK, EDGE, OFF_BRACKET, NO_MINIMUM, TOO_FEW = "ok", "edge", "off_bracket", "no_minimum", "too_few"
REMEDIES = {
    EDGE: "best measured size at the edge of its grid: widen the grid",
    OFF_BRACKET: "the fitted minimum lies outside the grid or away from the best measured size "
    "(a poor fit): narrow the window",
    NO_MINIMUM: "no minimum (the fitted curve has no interior minimum)",
    TOO_FEW: "fewer than 3 model sizes",
}


@dataclass(frozen=True)
class Method:
    """The defaults are the measured best (scripts/bench_isoflop_methods.py, docs/analysis.md)."""

    name: str = "window"
    window: int = 4  # ``window``: sizes each side of the best measured one
    margin: float | None = None  # ``window``: or every size within this relative loss margin

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise AnalysisError(
                f"unknown IsoFLOP method {self.name!r}; valid: {', '.join(METHODS)}"
            )
        if self.window < 1:
            raise AnalysisError(f"--window {self.window}: must be >= 1 size each side")
        if self.margin is not None and not self.margin > 0:
            raise AnalysisError(f"--margin {self.margin}: must be > 0 (e.g. 0.05 for 5%)")

    def describe(self) -> str:
        if self.name == "window":
            return (
                f"parabola within {self.margin:.0%} of the best loss"
                if self.margin is not None
                else f"parabola over the best size +- {self.window}"
            )
        return {
            "akima": "Akima spline of ln L on ln N",
            "parabola": "parabola over the whole grid",
        }[self.name]


DEFAULT_METHOD = Method()


@dataclass(frozen=True)
class Optimum:
    n_opt: float  # NaN when excluded
    loss_opt: float
    status: str  # OK, EDGE, OFF_BRACKET, NO_MINIMUM or TOO_FEW
    excluded: bool  # left out of the N_opt = k C^a regression
    n_sizes: int
    span: tuple[float, float]  # ln N range the fitted curve covers
    curve: Callable[[np.ndarray], np.ndarray] | None  # loss at ln N (for plots)

    @property
    def flagged(self) -> bool:
        return self.status in (EDGE, OFF_BRACKET) and not self.excluded

    @property
    def extrapolated(self) -> bool:
        """N_opt lies outside the sizes the curve was fitted on (a parabola's vertex past the
        grid's end): a guess, not a measurement."""
        with np.errstate(divide="ignore"):
            u = np.log(self.n_opt)
        return not self.excluded and not self.span[0] - 1e-9 <= u <= self.span[1] + 1e-9

    def message(self) -> str:
        outside = "; its N_opt lies outside the sizes measured (extrapolated)"
        return (
            REMEDIES[self.status]
            + (outside if self.extrapolated else "")
            + ("; excluded" if self.excluded else "")
        )


def locate(n: np.ndarray, loss: np.ndarray, weights: np.ndarray, method: Method) -> Optimum:
    """The minimum of one budget's profile; points with weight 0 are absent, repeated sizes
    (seeds, bootstrap copies) enter with their weighted mean loss."""
    u, mean, weight = _by_size(np.log(n), loss, weights)
    if u.size < 3:
        return Optimum(np.nan, np.nan, TOO_FEW, True, u.size, (np.nan, np.nan), None)
    best = int(np.argmin(mean))
    at_edge = best in (0, u.size - 1)
    if method.name == "akima":
        return _akima(u, mean, at_edge)
    chosen = (
        np.arange(u.size)
        if method.name == "parabola"
        else _window(mean, best, method.window, method.margin)
    )
    return _parabola(u, mean, weight, chosen, best, at_edge)


def _by_size(u: np.ndarray, loss: np.ndarray, weights: np.ndarray):
    present = weights > 0
    sizes, which = np.unique(u[present], return_inverse=True)
    weight = np.bincount(which, weights[present])
    return sizes, np.bincount(which, (weights * loss)[present]) / weight, weight


def _window(mean: np.ndarray, best: int, k: int, margin: float | None) -> np.ndarray:
    """Indices of the window: best +- k, or the contiguous run of sizes within ``margin`` of
    the best loss; widened to at least 3 sizes, toward the lower-loss neighbour first."""
    if margin is None:
        lo, hi = max(best - k, 0), min(best + k, mean.size - 1)
    else:
        inside = mean <= mean[best] * (1 + margin)
        lo = hi = best
        while lo > 0 and inside[lo - 1]:
            lo -= 1
        while hi < mean.size - 1 and inside[hi + 1]:
            hi += 1
    while hi - lo < 2:
        left = mean[lo - 1] if lo > 0 else np.inf
        right = mean[hi + 1] if hi < mean.size - 1 else np.inf
        lo, hi = (lo - 1, hi) if left <= right else (lo, hi + 1)
    return np.arange(lo, hi + 1)


def _parabola(
    u: np.ndarray,
    mean: np.ndarray,
    weight: np.ndarray,
    chosen: np.ndarray,
    best: int,
    at_edge: bool,
) -> Optimum:
    c2, c1, c0 = np.polyfit(u[chosen], mean[chosen], 2, w=np.sqrt(weight[chosen]))
    span = (float(u[chosen].min()), float(u[chosen].max()))

    def curve(x: np.ndarray) -> np.ndarray:
        return c0 + c1 * x + c2 * x**2

    if not c2 > 0:
        return Optimum(np.nan, np.nan, NO_MINIMUM, True, u.size, span, curve)
    u_opt = -c1 / (2 * c2)
    # a unimodal profile has its minimum between the best measured size's neighbours
    bracket = u[max(best - 1, 0)], u[min(best + 1, u.size - 1)]
    status = EDGE if at_edge else OK if bracket[0] <= u_opt <= bracket[1] else OFF_BRACKET
    with np.errstate(over="ignore"):  # a vertex far off the grid: N_opt = inf, left out later
        return Optimum(
            float(np.exp(u_opt)), float(curve(u_opt)), status, False, u.size, span, curve
        )


def _akima(u: np.ndarray, mean: np.ndarray, at_edge: bool) -> Optimum:
    spline = Akima1DInterpolator(u, np.log(mean))
    # the spline is piecewise cubic: its minimum is at a root of its derivative or at an end
    roots = spline.derivative().roots(extrapolate=False)
    candidates = np.concatenate([u[[0, -1]], roots[np.isfinite(roots)]])
    values = spline(candidates)
    i = int(np.argmin(values))
    span = (float(u[0]), float(u[-1]))

    def curve(x: np.ndarray) -> np.ndarray:
        return np.exp(spline(x))

    if i < 2:  # one of the grid's ends: no interior minimum (Porian et al. discard these)
        return Optimum(np.nan, np.nan, EDGE if at_edge else NO_MINIMUM, True, u.size, span, curve)
    return Optimum(
        float(np.exp(candidates[i])),
        float(np.exp(values[i])),
        EDGE if at_edge else OK,
        False,
        u.size,
        span,
        curve,
    )
