"""Chinchilla's joint law L(N, D) = E + A/N^alpha + B/D^beta and its compute-optimal frontier.

Functional form: Hoffmann et al. 2022 eq. (2) ("Approach 3"); fitting method (LSE
parametrisation, summed Huber loss with delta = 1e-3, L-BFGS-B from a 4,500-point grid, best
converged run): Besiroglu et al. 2024, Sec. 2, via the generic ``lse`` fitter.
Frontier: Hoffmann et al. 2022 eq. (4) with C = 6 N D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import DEFAULT_LEVEL, Intervals, bootstrap_lse
from analysis.budgets import budget_label
from analysis.lse import LSEProblem, grid_starts, require_points, usable, user_weights

# Hoffmann et al. 2022's published fit, unrounded [ln A, ln B, ln E, alpha, beta] as recovered
# by Besiroglu et al. 2024 (their Sec. 3); this is also the lse layout [a, b, e, alpha, beta].
HOFFMANN_2022_PARAMS = np.array([6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083])


@dataclass(frozen=True)
class ChinchillaFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float  # summed Huber loss at the optimum
    n_points: int
    n_starts: int
    n_converged: int

    @classmethod
    def given(cls, E: float, A: float, B: float, alpha: float, beta: float) -> ChinchillaFit:
        """A law given by its parameters (a paper's, a synthetic sweep's truth), not fitted."""
        return cls(E, A, B, alpha, beta, objective=np.nan, n_points=0, n_starts=0, n_converged=0)

    @classmethod
    def from_params(cls, params: np.ndarray, **meta) -> ChinchillaFit:
        """From the lse layout [a, b, e, alpha, beta] (A = e^a, B = e^b, E = e^e)."""
        a, b, e, alpha, beta = map(float, params)
        return cls(E=np.exp(e), A=np.exp(a), B=np.exp(b), alpha=alpha, beta=beta, **meta)

    @property
    def params(self) -> np.ndarray:
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])

    # Hoffmann et al. 2022 eq. (4): N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b
    @property
    def a(self) -> float:
        return self.beta / (self.alpha + self.beta) if self.frontier_defined else np.nan

    @property
    def b(self) -> float:
        return self.alpha / (self.alpha + self.beta) if self.frontier_defined else np.nan

    @property
    def frontier_defined(self) -> bool:
        """Eq. (4) needs loss to fall with both counts: alpha > 0 and beta > 0."""
        return self.alpha > 0 and self.beta > 0

    @property
    def G(self) -> float:
        # an exponent <= 0 (loss not falling with N or D): no frontier, G is NaN, not a warning
        if not self.frontier_defined:
            return np.nan
        with np.errstate(all="ignore"):  # overflow to inf: reported as not finite
            return float(
                (np.float64(self.alpha) * self.A / (self.beta * self.B))
                ** (1 / (self.alpha + self.beta))
            )

    def predict(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + self.A * n**-self.alpha + self.B * d**-self.beta

    def n_opt(self, compute: np.ndarray | float) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.G * (np.asarray(compute, float) / 6) ** self.a

    def d_opt(self, compute: np.ndarray | float) -> np.ndarray:
        with np.errstate(all="ignore"):
            return (np.asarray(compute, float) / 6) ** self.b / self.G

    def estimates(self, compute: tuple[float, ...] = ()) -> dict[str, float]:
        """Parameters, frontier exponents and N_opt, D_opt at each compute budget in ``compute``."""
        out = {
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "a": self.a,
            "b": self.b,
            "G": self.G,
        }
        for c in compute:
            out[f"N_opt@{budget_label(c)}"] = float(self.n_opt(c))
            out[f"D_opt@{budget_label(c)}"] = float(self.d_opt(c))
        return out


def _problem(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    weights: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
) -> tuple[LSEProblem, np.ndarray | None]:
    """The problem on the usable points, and those points' seed losses."""
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    weights = user_weights(weights, n.size)
    keep = usable(n, d, loss) if weights is None else usable(n, d, loss) & (weights > 0)
    require_points(int(keep.sum()), 5, "Chinchilla fit")
    problem = LSEProblem(
        log_x=np.log(np.vstack([n[keep], d[keep]])),
        log_y=np.log(loss[keep]),
        weights=None if weights is None else weights[keep],
    )
    return problem, None if seeds is None else np.asarray(seeds, dtype=float)[keep]


def fit_chinchilla(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    starts: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> ChinchillaFit:
    """Fit on parameters ``n``, tokens ``d``; default starts: Besiroglu et al.'s 4,500-point
    grid; ``weights`` (one per point, >= 0) scale each point's term of the objective."""
    problem, _ = _problem(n, d, loss, weights)
    starts = grid_starts(2, irreducible=True) if starts is None else starts
    params, objective, n_converged = problem.fit(starts)
    return ChinchillaFit.from_params(
        params,
        objective=objective,
        n_points=problem.log_y.size,
        n_starts=len(starts),
        n_converged=n_converged,
    )


def objective_at(params: np.ndarray, n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> float:
    """The fitting objective at given parameters, e.g. ``HOFFMANN_2022_PARAMS``."""
    f, _ = _problem(n, d, loss)[0].fun_grad(np.atleast_2d(params))
    return float(f[0])


def bootstrap_chinchilla(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    fit: ChinchillaFit,
    *,
    n_resamples: int,
    seed: int,
    level: float = DEFAULT_LEVEL,
    compute: tuple[float, ...] = (),
    weights: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
) -> Intervals:
    """``seeds``: (n, k) each point's seed losses (``bootstrap.seed_matrix``); with >= 2 per
    point the seeds are resampled within points, else the points are."""
    problem, seeds = _problem(n, d, loss, weights, seeds)
    meta = dict(objective=np.nan, n_points=fit.n_points, n_starts=1, n_converged=1)
    return bootstrap_lse(
        problem,
        fit.params,
        lambda p: ChinchillaFit.from_params(p, **meta).estimates(compute),
        n_resamples=n_resamples,
        seed=seed,
        level=level,
        seeds=seeds,
    )
