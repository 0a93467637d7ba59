"""One fitter for every power-law form: L = E + sum_k A_k x_k^-alpha_k, fitted in log space.

Hoffmann et al. 2022 (App. D.2) and Besiroglu et al. 2024 ("Chinchilla scaling: a replication
attempt", Sec. 2) fit
    log L_hat = LSE(a_1 - alpha_1 log x_1, ..., a_K - alpha_K log x_K, e),   A_k = e^a_k, E = e^e
by minimising  sum_i Huber_delta(log L_hat_i - log L_i)  (delta = 1e-3, a SUM over points) with
L-BFGS-B from every point of a grid, keeping the lowest objective among converged runs.
K = 1 gives the saturating law E + A x^-alpha, K = 2 Chinchilla's L(N, D); without the e term
(``irreducible=False``) K = 1 is Kaplan et al. 2020's pure power law.

Parameter vector layout: [a_1..a_K, e, alpha_1..alpha_K] (e absent when not irreducible),
so K = 2 is Epoch's [a, b, e, alpha, beta].
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import huber

from analysis.errors import AnalysisError
from analysis.lbfgsb import BatchResult, minimize_lbfgsb_batch

HUBER_DELTA = 1e-3
# Besiroglu et al. 2024's initialisation grid (their Sec. 2): 6 x 6 x 5 x 5 x 5 = 4,500 starts
# for K = 2
EPOCH_A_GRID = tuple(np.arange(0.0, 30.0, 5.0))  # a, b in {0, 5, ..., 25}
EPOCH_E_GRID = tuple(np.arange(-1.0, 1.5, 0.5))  # e in {-1, -0.5, ..., 1}
EPOCH_ALPHA_GRID = tuple(np.arange(0.0, 2.5, 0.5))  # alpha, beta in {0, 0.5, ..., 2}
_BLOCK_ELEMENTS = 2**15
# L-BFGS-B's stopping rules for a run started at (or near) an optimum: with scipy's defaults
# (ftol relative to max(|f|, 1), and f ~ 0.05 here, see LSEProblem.scale) it stops after a
# few steps. With these, the Chinchilla bootstrap SEs match Besiroglu et al. 2024's (A ~120,
# alpha ~0.015).
TIGHT_TOLERANCES = dict(gtol=1e-8, ftol=1e-12)


def grid_starts(
    n_terms: int,
    irreducible: bool,
    a_grid: Sequence[float] = EPOCH_A_GRID,
    e_grid: Sequence[float] = EPOCH_E_GRID,
    alpha_grid: Sequence[float] = EPOCH_ALPHA_GRID,
) -> np.ndarray:
    """Cartesian grid of start vectors in the layout above."""
    axes = [a_grid] * n_terms + ([e_grid] if irreducible else []) + [alpha_grid] * n_terms
    return np.array(list(itertools.product(*axes)), dtype=float)


@dataclass(frozen=True)
class LSEProblem:
    log_x: np.ndarray  # (K, n) log of the K input variables, one row each
    log_y: np.ndarray  # (n,) log loss
    irreducible: bool = True  # include the E term
    delta: float = HUBER_DELTA
    weights: np.ndarray | None = None  # (n,) the user's per-point weights on the Huber terms

    @property
    def n_terms(self) -> int:
        return self.log_x.shape[0]

    @cached_property
    def scale(self) -> float:
        """The objective of the best constant law, log L = the weighted mean of log_y: what
        ``solve`` divides the objective by, so that L-BFGS-B's stopping rules (absolute: gtol on
        the gradient, ftol relative to max(|f|, 1)) hold relative to the data's own spread.

        Without it they depended on the data's scale: exact losses L = 2 + 10 C^-0.3 over
        C = 1e15..1e23 (L 2.0003 -> 2.0000, so f ~ 1e-8 from any start) stopped at alpha = 0.666,
        f = 2e-9 against 2e-32 at the truth. Divided by this (1.6e-8 there) the fit returns
        alpha = 0.3 to 1e-7, from the grid alone. One constant per problem, from the full data:
        every bootstrap refit divides by the same one, so their objectives stay comparable."""
        weights = np.ones_like(self.log_y) if self.weights is None else self.weights
        centre = np.average(self.log_y, weights=weights)
        spread = float(np.sum(weights * huber(self.delta, self.log_y - centre)))
        return spread if np.isfinite(spread) and spread > 0 else 1.0  # constant data: as is

    def fun_grad(
        self, params: np.ndarray, weights: np.ndarray | None = None, log_y: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objective and analytic gradient for S parameter vectors (S, p); weights (S, n) are
        per-point multiplicities (a bootstrap resample), None = every point once; log_y (S, n)
        gives each vector its own data (a resample of seeds), None = ``self.log_y``."""
        k = self.n_terms
        lse, softmax = _log_sum_exp(self._terms(params, self.log_x))
        residual = lse - (self.log_y if log_y is None else log_y)
        loss = huber(self.delta, residual)
        dloss = np.clip(residual, -self.delta, self.delta)  # Huber'(r)
        if self.weights is not None:
            weights = self.weights if weights is None else weights * self.weights
        if weights is not None:
            loss, dloss = loss * weights, dloss * weights
        # d lse / d a_k = softmax_k, d lse / d e = softmax_e, d lse / d alpha_k = -softmax_k log x_k
        grad_coef = np.einsum("skn,sn->sk", softmax, dloss)
        grad_exp = -np.einsum("skn,kn,sn->sk", softmax[:, :k], self.log_x, dloss)
        return loss.sum(axis=1), np.concatenate([grad_coef, grad_exp], axis=1)

    def solve(
        self,
        starts: np.ndarray,
        weights: np.ndarray | None = None,
        log_y: np.ndarray | None = None,
        **options: float,
    ) -> BatchResult:
        """One L-BFGS-B run per row of ``starts``; ``weights`` and ``log_y`` (S, n) give each
        run its own data (see ``fun_grad``); ``options`` are L-BFGS-B's (ftol, gtol, ...), which
        apply to the objective divided by ``scale``; the result's ``fun`` is in its own units."""
        # Evaluate in blocks of ~256 KiB temporaries: they stay in cache and under glibc's mmap
        # threshold (fresh page faults per call); measured 2x faster than one big block.
        chunk = max(1, _BLOCK_ELEMENTS // ((self.n_terms + 1) * self.log_y.size))

        scale = self.scale

        def rows_of(per_run: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
            return None if per_run is None else per_run[rows]

        def scaled(p: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            f, g = self.fun_grad(p, rows_of(weights, rows), rows_of(log_y, rows))
            return f / scale, g / scale

        result = minimize_lbfgsb_batch(scaled, starts, chunk_rows=chunk, **options)
        return dataclasses.replace(result, fun=result.fun * scale)

    def fit(self, starts: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Best converged solution: (params, objective, number of converged starts)."""
        result = self.solve(starts)
        converged = np.flatnonzero(result.success & np.isfinite(result.fun))
        if converged.size == 0:
            raise AnalysisError(f"none of the {len(starts)} L-BFGS-B starts converged")
        best = converged[np.argmin(result.fun[converged])]
        x, fun = result.x[best], float(result.fun[best])
        # scipy's default ftol is relative to max(|f|, 1) while f (over ``scale``) is < 1: where
        # the objective is flat the grid's best stops short of the optimum its bootstrap refits
        # reach (an offset E below the losses stopped at 0.006, refits at 1e-4..3e-4). One
        # polish suffices once the objective is scaled: repeating it (fresh L-BFGS-B memory)
        # moved no exact power law's alpha by more than 1e-8, nor the Chinchilla fit's.
        polished = self.solve(x[None], **TIGHT_TOLERANCES)
        if polished.success[0] and polished.fun[0] <= fun:
            x, fun = polished.x[0], float(polished.fun[0])
        return x, fun, int(converged.size)

    def misfit(self, params: np.ndarray, log_y: np.ndarray | None = None) -> float:
        """RMS of the log residuals at ``params`` over the standard deviation of ``self.log_y``
        (both weighted by the user's weights): sqrt(1 - R^2) in log space for a least-squares
        fit, 0 for a law through every point, NaN for constant losses. ``log_y`` (n, k),
        NaN-padded: several values per point (its seeds), each against the law there."""
        log_hat, _ = _log_sum_exp(self._terms(np.atleast_2d(params), self.log_x))
        observed = self.log_y[:, None] if log_y is None else np.asarray(log_y, dtype=float)
        point_weights = np.ones_like(self.log_y) if self.weights is None else self.weights
        weights = np.where(np.isfinite(observed), point_weights[:, None], 0.0)
        residual = np.where(weights > 0, log_hat[0][:, None] - observed, 0.0)
        rms = np.sqrt(np.average(residual**2, weights=weights))
        centre = np.average(self.log_y, weights=point_weights)
        spread = np.sqrt(np.average((self.log_y - centre) ** 2, weights=point_weights))
        return float(rms / spread) if spread > 0 else np.nan

    def _terms(self, params: np.ndarray, log_x: np.ndarray) -> np.ndarray:
        """(S, K[+1], n) log terms a_k - alpha_k log x_k [and e]; the term axis sits before the
        point axis so the reductions over it are contiguous elementwise ops."""
        k = self.n_terms
        terms = np.empty((len(params), k + self.irreducible, log_x.shape[1]))
        terms[:, :k] = params[:, :k, None] - params[:, -k:, None] * log_x
        if self.irreducible:
            terms[:, k] = params[:, k : k + 1]
        return terms


def _log_sum_exp(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LSE over axis 1 and its softmax (the LSE gradient) from one exp pass; written out
    because scipy.special.logsumexp and softmax would each exponentiate the (S, K, n) block."""
    top = terms.max(axis=1, keepdims=True)
    exp = np.exp(terms - top)
    total = exp.sum(axis=1, keepdims=True)
    return (top + np.log(total))[:, 0], exp / total


def user_weights(weights: np.ndarray | Sequence[float] | None, n: int) -> np.ndarray | None:
    """The user's per-point weights as floats, checked: finite, >= 0, one per point."""
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (n,):
        raise AnalysisError(f"weights: {weights.size} values for {n} points")
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise AnalysisError(f"weights must be finite and >= 0; got {weights[bad][:3].tolist()}")
    return weights


def usable(*arrays: np.ndarray) -> np.ndarray:
    """Mask of points where every array is finite and positive (logs are taken of all)."""
    stacked = np.vstack([np.asarray(a, dtype=float) for a in arrays])
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(stacked) & (stacked > 0), axis=0)


def require_points(n_usable: int, n_params: int, what: str) -> None:
    if n_usable <= n_params:
        raise AnalysisError(
            f"{what}: {n_usable} usable points (finite, positive), "
            f"need at least {n_params + 1} to fit {n_params} parameters"
        )
