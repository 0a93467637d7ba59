"""Flags on fitted quantities that are possible numerically but not plausibly true.

- Compute-optimal exponents a (N_opt ~ C^a) and b (D_opt ~ C^b) lie in [0, 1] when C = 6 N D:
  a > 1 would make D_opt shrink as compute grows (Hoffmann et al. 2022 find 0.49-0.50,
  Kaplan et al. 2020 0.73).
- Power-law exponents (alpha, beta) are positive: loss falls with scale. With alpha or beta
  <= 0 a Chinchilla law has no compute-optimal frontier (a, b, G, N_opt, D_opt): one line says
  so instead of one per undefined quantity.
- An estimate that is not a finite number (e.g. Kaplan's x_c = A^(1/alpha) overflowing as
  alpha nears 0) is not a result.
- A percentile interval whose ends are an order of magnitude or more apart says the points do
  not determine that quantity (typically A against alpha).
- An interval of zero width over many resamples says the opposite of precision: no resample
  moved the estimate, so the points do not determine it either. Every resample is refitted
  cold as well as from the full-data optimum (``bootstrap.bootstrap_lse``), so this now takes
  cold refits that all end worse than a warm one which stayed put (typically with E far below
  the losses, where its log-parametrised gradient vanishes).
  So does an interval far narrower than the standard deviation of the same resamples: a
  unimodal spread puts about 4 se between the ends of a 95% interval, so an interval under
  NARROW se wide means a few resamples lie far from the rest. With warm refits only, those
  were the few that moved while the rest stayed at their start (on a real sweep: E = 0.00024
  [0.00024026, 0.00024032] with se 1.9e-5, while cold refits put E anywhere up to 1.8); with
  cold refits, a heavy tail (the Mixer's Chinchilla fit on the sweep of
  tests/test_analysis_edges.py, 200 resamples: B = 11.3 [10.1, 86.7] with se 2.2e5).
  Neither is flagged where the law goes through every point (noise-free data): there no
  resample can move the optimum, so a zero width is the precision the points have (see
  ``EXACT_FIT``).
"""

from __future__ import annotations

import numpy as np

from analysis.bootstrap import Intervals

BOUNDS = {"a": (0.0, 1.0), "b": (0.0, 1.0), "alpha": (0.0, np.inf), "beta": (0.0, np.inf)}
SPAN_DECADES = 1.0
# the quantities of a Chinchilla law's compute-optimal frontier, Hoffmann et al. 2022 eq. (4)
FRONTIER = ("a", "b", "G")
FRONTIER_AT = ("N_opt@", "D_opt@")
# an interval no wider than this relative to its estimate, over at least MIN_MOVED resamples
ZERO_WIDTH = 1e-9
MIN_MOVED = 10
# an interval narrower than this many of the resamples' standard deviations
NARROW = 0.1
# Neither flag applies where the fit's log residuals (RMS) are at most this fraction of the
# log losses' spread (Intervals.misfit): a resample only reweights the points, so when every
# residual vanishes (noise-free data) every resample refits to the same optimum and a zero
# width is precision. With any residual (seed noise is ~1e-3 of a loss) every parameter the
# points determine moves, and one that stays put lies in a flat direction. Exact laws fit to
# 1e-11..2e-8; a flat direction the fit stops short in stays above 1e-6 (Kaplan's L(N) with E).
EXACT_FIT = 1e-6


def _frontier_undefined(table) -> str:
    """Why a Chinchilla law's frontier is undefined ('' when it is defined or not a Chinchilla
    table): an exponent <= 0 or not estimated."""
    if not {"alpha", "beta"} <= set(table.index) or "G" not in table.index:
        return ""
    bad = [
        f"{name} = {table.at[name, 'estimate']:.4g}"
        for name in ("alpha", "beta")
        if not table.at[name, "estimate"] > 0
    ]
    if not bad:
        return ""
    return (
        f"the compute-optimal frontier (a, b, G, N_opt, D_opt) is undefined because "
        f"{' and '.join(bad)} <= 0: loss does not fall with "
        f"{' and '.join('N' if b.startswith('alpha') else 'D' for b in bad)}"
    )


def _unidentified(name: str, row, moved: float, exact: bool) -> list[str]:
    """A line when the interval is too narrow to mean precision: zero width, or far narrower
    than the resamples' own standard deviation; none when the fit is ``exact`` (EXACT_FIT)."""
    estimate, width = row["estimate"], row["hi"] - row["lo"]
    if exact or moved < MIN_MOVED or not np.isfinite(estimate):
        return []
    interval = f"interval [{row['lo']:.4g}, {row['hi']:.4g}], se {row['se']:.2g} over {moved:.0f}"
    if width <= ZERO_WIDTH * abs(estimate):
        return [
            f"{name} = {estimate:.4g} is not identified: no resample moved it ({interval} "
            f"resamples), so its zero width is not precision"
        ]
    if width < NARROW * row["se"]:
        return [
            f"{name} = {estimate:.4g} is not identified: its interval is far narrower than the "
            f"resamples' spread ({interval} resamples): a few resamples' fits lie far from the "
            f"rest, so the narrow interval is not precision"
        ]
    return []


def implausible(intervals: Intervals) -> list[str]:
    """One line per implausible estimate or interval."""
    lines = []
    table = intervals.table
    undefined = _frontier_undefined(table)
    exact = bool(intervals.misfit <= EXACT_FIT)  # False where not measured (NaN)
    for name, row in table.iterrows():
        if undefined and (name in FRONTIER or str(name).startswith(FRONTIER_AT)):
            continue
        lo, hi = BOUNDS.get(name, (-np.inf, np.inf))
        estimate = row["estimate"]
        if not np.isfinite(estimate) and (lo, hi) == (-np.inf, np.inf):
            lines.append(
                f"{name} = {estimate:.4g} is not a finite number at the fitted parameters "
                f"(it overflows or is undefined there): implausible"
            )
        elif not lo <= estimate <= hi:
            lines.append(f"{name} = {estimate:.4g} is outside [{lo:g}, {hi:g}]: implausible")
        if row["lo"] > 0 and np.isfinite(row["hi"]):
            # a difference of logs: hi / lo itself overflows for intervals like [1e-13, 1e300]
            decades = np.log10(row["hi"]) - np.log10(row["lo"])
            if decades >= SPAN_DECADES:
                lines.append(
                    f"the interval of {name} spans {decades:.1f} orders of magnitude "
                    f"[{row['lo']:.3g}, {row['hi']:.3g}]: the points do not pin it down"
                )
        lines += _unidentified(name, row, intervals.n_resamples - row["failed"], exact)
    if undefined:
        lines.append(undefined)
    return lines
