"""Held-out extrapolation check: fit on the smaller budgets, score the prediction on the largest.

A scaling law is only useful for what it predicts beyond the data it saw; in-sample residuals
cannot show that (cf. Besiroglu et al. 2024, Sec. 4, on Hoffmann et al.'s out-of-range fits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError

FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(train mask, test mask) -> predictions for the test points, from a fit on the train points."""


@dataclass(frozen=True)
class Extrapolation:
    threshold: float  # points with budget >= threshold were held out
    n_train: int
    n_test: int
    table: pd.DataFrame  # per held-out point: budget, observed, predicted, rel_error
    mean_abs_rel_error: float
    max_abs_rel_error: float

    def summary(self) -> dict[str, float]:
        return {
            "holdout_threshold": self.threshold,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "mean_abs_rel_error": self.mean_abs_rel_error,
            "max_abs_rel_error": self.max_abs_rel_error,
        }


def extrapolation_check(
    budget: np.ndarray,
    observed: np.ndarray,
    fit_predict: FitPredict,
    *,
    holdout_frac: float | None = None,
) -> Extrapolation:
    """Hold out the largest budget (for continuous budgets: the top ``holdout_frac`` of them)."""
    budget, observed = np.asarray(budget, dtype=float), np.asarray(observed, dtype=float)
    threshold = budget.max() if holdout_frac is None else np.quantile(budget, 1 - holdout_frac)
    test = budget >= threshold
    train = ~test
    if not train.any() or np.unique(budget[train]).size < 2:
        raise AnalysisError(
            f"extrapolation check needs >= 2 smaller budgets below the held-out "
            f"{threshold:.3g}; got {np.unique(budget[train]).size}"
        )
    try:
        predicted = fit_predict(train, test)
    except AnalysisError as err:  # the fit's own message would not say which fit failed
        raise AnalysisError(f"the fit below the held-out {threshold:.3g} failed: {err}") from None
    rel_error = predicted / observed[test] - 1
    table = pd.DataFrame(
        {
            "budget": budget[test],
            "observed": observed[test],
            "predicted": predicted,
            "rel_error": rel_error,
        }
    )
    return Extrapolation(
        threshold=float(threshold),
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        table=table,
        mean_abs_rel_error=float(np.mean(np.abs(rel_error))),
        max_abs_rel_error=float(np.max(np.abs(rel_error))),
    )


def held_out(
    budget: np.ndarray,
    observed: np.ndarray,
    fit_predict: FitPredict,
    *,
    holdout_frac: float | None = None,
) -> Extrapolation | str:
    """``extrapolation_check``, or why it cannot run (e.g. too few budgets): a fit without a
    holdout says so, like a skipped group, rather than leaving it out without a word."""
    try:
        return extrapolation_check(budget, observed, fit_predict, holdout_frac=holdout_frac)
    except AnalysisError as err:
        return str(err)


def holdout_json(held: Extrapolation | str) -> dict:
    return {"skipped": held} if isinstance(held, str) else held.summary()
