"""One-variable laws L(x) = E + A x^-alpha, x = parameters, tokens, FLOPs or wall-clock.

Saturating form: Hoffmann et al. 2022 eq. (2) restricted to one variable (the E term is the
entropy of natural text). Pure form (E = 0): Kaplan et al. 2020 eq. (1.1)-(1.3),
L(x) = (x_c / x)^alpha, i.e. A = x_c^alpha. Both are fitted by the generic ``lse`` fitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import DEFAULT_LEVEL, Intervals, bootstrap_lse
from analysis.errors import AnalysisError
from analysis.lse import LSEProblem, grid_starts, require_points, usable, user_weights


@dataclass(frozen=True)
class PowerLawFit:
    E: float  # irreducible loss (0 for the pure power law)
    A: float
    alpha: float
    irreducible: bool
    objective: float  # summed Huber loss at the optimum
    n_points: int
    x_min: float  # range of the fitted x, to tell interpolation from extrapolation
    x_max: float

    @classmethod
    def from_params(cls, params: np.ndarray, irreducible: bool, **meta) -> PowerLawFit:
        """From the lse layout [a, (e,) alpha]."""
        return cls(
            E=float(np.exp(params[1])) if irreducible else 0.0,
            A=float(np.exp(params[0])),
            alpha=float(params[-1]),
            irreducible=irreducible,
            **meta,
        )

    @property
    def params(self) -> np.ndarray:
        e = [np.log(self.E)] if self.irreducible else []
        return np.array([np.log(self.A), *e, self.alpha])

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return self.E + self.A * np.asarray(x, dtype=float) ** -self.alpha

    def formula(self, x: str = "x") -> str:
        """The fitted law with its numbers, e.g. 'L = 1.69 + 12.3 x^-0.310'; the exponent is
        -alpha written out, so a negative alpha (loss rising with x) reads 'x^0.038'."""
        head = f"L = {self.E:.3g} + " if self.irreducible else "L = "
        exponent = f"{-self.alpha:.3f}"
        if exponent == "-0.000":  # -alpha rounding to zero from below
            exponent = "0.000"
        return f"{head}{self.A:.3g} {x}^{exponent}"

    def estimates(self) -> dict[str, float]:
        if self.irreducible:
            return {"E": self.E, "A": self.A, "alpha": self.alpha}
        # Kaplan's parametrisation (x_c / x)^alpha: x_c = A^(1/alpha). With alpha near 0 this
        # overflows (inf) and at alpha = 0 it is undefined (NaN): reported as such, not raised
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            x_c = np.float64(self.A) ** (1.0 / np.float64(self.alpha))
        return {"A": self.A, "alpha": self.alpha, "x_c": float(x_c)}


def _points(
    x: np.ndarray,
    y: np.ndarray,
    irreducible: bool,
    weights: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """The usable points (finite, positive) and their weights and seed losses, checked."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    weights = user_weights(weights, x.size)
    keep = usable(x, y) if weights is None else usable(x, y) & (weights > 0)
    require_points(int(keep.sum()), 2 + irreducible, "power-law fit")
    distinct = np.unique(x[keep]).size
    if distinct < 2 + irreducible:
        raise AnalysisError(
            f"power-law fit: {distinct} distinct x values, need at least {2 + irreducible}"
        )
    return (
        x[keep],
        y[keep],
        None if weights is None else weights[keep],
        None if seeds is None else np.asarray(seeds, dtype=float)[keep],
    )


def _problem(
    x: np.ndarray, y: np.ndarray, irreducible: bool, weights: np.ndarray | None
) -> LSEProblem:
    return LSEProblem(
        log_x=np.log(x)[None, :], log_y=np.log(y), irreducible=irreducible, weights=weights
    )


def fit_power_law(
    x: np.ndarray,
    y: np.ndarray,
    *,
    irreducible: bool = True,
    starts: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> PowerLawFit:
    """Best fit over ``starts`` (default: Besiroglu et al.'s grid for one term, 150 starts);
    non-finite or non-positive points (diverged runs) are dropped; ``weights`` (one per point,
    >= 0) scale each point's term of the objective."""
    x, y, weights, _ = _points(x, y, irreducible, weights)
    starts = grid_starts(1, irreducible) if starts is None else starts
    params, objective, _ = _problem(x, y, irreducible, weights).fit(starts)
    return PowerLawFit.from_params(
        params,
        irreducible,
        objective=objective,
        n_points=x.size,
        x_min=float(x.min()),
        x_max=float(x.max()),
    )


def bootstrap_power_law(
    x: np.ndarray,
    y: np.ndarray,
    fit: PowerLawFit,
    *,
    n_resamples: int,
    seed: int,
    level: float = DEFAULT_LEVEL,
    weights: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
) -> Intervals:
    """``seeds``: (n, k) each point's seed values (``bootstrap.seed_matrix``); with >= 2 per
    point the seeds are resampled within points, else the points are."""
    x, y, weights, seeds = _points(x, y, fit.irreducible, weights, seeds)
    meta = dict(objective=np.nan, n_points=x.size, x_min=fit.x_min, x_max=fit.x_max)
    return bootstrap_lse(
        _problem(x, y, fit.irreducible, weights),
        fit.params,
        lambda p: PowerLawFit.from_params(p, fit.irreducible, **meta).estimates(),
        n_resamples=n_resamples,
        seed=seed,
        level=level,
        seeds=seeds,
    )
