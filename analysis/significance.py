"""Is variant A better than B? Welch's t-test over seeds, with the difference's interval.

A claimed improvement needs several seeds and p < 0.01 (modded-nanogpt's record rule: a new
record must show p < 0.01 that its mean loss is below the target, over several runs). Here:
one-sided Welch's t-test (``scipy.stats.ttest_ind``, unequal variances) that A's mean loss is
below B's, and the two-sided confidence interval of the difference of the means.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.bootstrap import DEFAULT_LEVEL

SIGNIFICANCE = 0.01


@dataclass(frozen=True)
class Difference:
    margin: float  # mean(B) - mean(A): how much lower A's loss is (> 0: A is better)
    lo: float  # confidence interval of the margin at ``level``
    hi: float
    p_value: float  # one-sided: mean(A) < mean(B)
    n_a: int
    n_b: int

    @property
    def significant(self) -> bool:
        return bool(self.p_value < SIGNIFICANCE)

    def describe(self) -> str:
        if not np.isfinite(self.p_value):
            return (
                f"margin {self.margin:.4g} (a test needs >= 2 seeds each; have {self.n_a}, "
                f"{self.n_b})"
            )
        verdict = "significant" if self.significant else f"not significant at p < {SIGNIFICANCE}"
        return (
            f"margin {self.margin:.4g} [{self.lo:.4g}, {self.hi:.4g}], p = {self.p_value:.2g} "
            f"over {self.n_a} vs {self.n_b} seeds: {verdict}"
        )


def difference(a: np.ndarray, b: np.ndarray, level: float = DEFAULT_LEVEL) -> Difference:
    """A's losses ``a`` against B's ``b`` (one per seed; non-finite ones are left out)."""
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    margin = float(b.mean() - a.mean()) if a.size and b.size else np.nan
    if a.size < 2 or b.size < 2:
        return Difference(margin, np.nan, np.nan, np.nan, a.size, b.size)
    with warnings.catch_warnings():  # seeds with identical losses: scipy warns, the answer stands
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_ind(b, a, equal_var=False).confidence_interval(level)
        p = stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue
    return Difference(margin, float(interval.low), float(interval.high), float(p), a.size, b.size)
