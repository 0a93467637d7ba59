"""Flags on fitted quantities that are possible numerically but not plausibly true.

- Compute-optimal exponents a (N_opt ~ C^a) and b (D_opt ~ C^b) lie in [0, 1] when C = 6 N D:
  a > 1 would make D_opt shrink as compute grows (Hoffmann et al. 2022 find 0.49-0.50,
  Kaplan et al. 2020 0.73).
- Power-law exponents (alpha, beta) are positive: loss falls with scale.
- A percentile interval whose ends are an order of magnitude or more apart says the points do
  not determine that quantity (typically A against alpha).
"""

from __future__ import annotations

import numpy as np

from analysis.bootstrap import Intervals

BOUNDS = {"a": (0.0, 1.0), "b": (0.0, 1.0), "alpha": (0.0, np.inf), "beta": (0.0, np.inf)}
SPAN_DECADES = 1.0


def implausible(intervals: Intervals) -> list[str]:
    """One line per implausible estimate or interval."""
    lines = []
    for name, row in intervals.table.iterrows():
        lo, hi = BOUNDS.get(name, (-np.inf, np.inf))
        if not lo <= row["estimate"] <= hi:
            lines.append(f"{name} = {row['estimate']:.4g} is outside [{lo:g}, {hi:g}]: implausible")
        if row["lo"] > 0 and np.isfinite(row["hi"]):
            decades = np.log10(row["hi"] / row["lo"])
            if decades >= SPAN_DECADES:
                lines.append(
                    f"the interval of {name} spans {decades:.1f} orders of magnitude "
                    f"[{row['lo']:.3g}, {row['hi']:.3g}]: the points do not pin it down"
                )
    return lines
