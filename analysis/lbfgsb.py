"""Many independent L-BFGS-B minimisations advanced in lockstep, with one batched evaluation.

Why hand-driven: ``scipy.optimize.minimize`` solves one problem per call, so a 4,500-start
fit pays Python overhead on ~300k tiny evaluations (~20 s). SciPy's L-BFGS-B is a
reverse-communication routine (``setulb`` returns ``task == FG`` whenever it wants f and g),
so here we keep one ``setulb`` state per problem, exactly as ``scipy.optimize._lbfgsb_py.
_minimize_lbfgsb`` does, and answer all pending FG requests with a single vectorised call.
The iterates are the ones ``minimize(method="L-BFGS-B")`` produces with its default options
(tests/test_analysis_lbfgsb.py checks that, so a SciPy upgrade that changes this private
interface fails loudly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import _lbfgsb
from threadpoolctl import threadpool_limits

# scipy's task codes (scipy/optimize/_lbfgsb_py.py: status_messages)
_NEW_X, _FG, _CONVERGENCE, _STOP = 1, 3, 4, 5
_ITERATIONS_REACHED, _EVALUATIONS_REACHED = 504, 502

BatchFunGrad = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(x: (k, p) points, rows: (k,) problem indices) -> (f: (k,), g: (k, p))."""


@dataclass(frozen=True)
class BatchResult:
    x: np.ndarray  # (S, p) final points
    fun: np.ndarray  # (S,) final objective values
    success: np.ndarray  # (S,) bool, scipy's ``OptimizeResult.success`` (task CONVERGENCE)
    nfev: np.ndarray  # (S,) evaluations per problem


def minimize_lbfgsb_batch(
    fun_grad: BatchFunGrad,
    x0: np.ndarray,
    *,
    maxcor: int = 10,
    ftol: float = 2.2204460492503131e-09,
    gtol: float = 1e-5,
    maxiter: int = 15000,
    maxfun: int = 15000,
    maxls: int = 20,
    chunk_rows: int = 64,
) -> BatchResult:
    """Unbounded L-BFGS-B from every row of ``x0``; defaults are scipy's."""
    x = np.array(x0, dtype=np.float64, order="C")
    n_problems, n = x.shape
    m = maxcor
    factr = ftol / np.finfo(float).eps
    f = np.zeros(n_problems)
    g = np.zeros((n_problems, n))
    wa = np.zeros((n_problems, 2 * m * n + 5 * n + 11 * m * m + 8 * m))
    iwa = np.zeros((n_problems, 3 * n), np.int32)
    task = np.zeros((n_problems, 2), np.int32)
    ln_task = np.zeros((n_problems, 2), np.int32)
    lsave = np.zeros((n_problems, 4), np.int32)
    isave = np.zeros((n_problems, 44), np.int32)
    dsave = np.zeros((n_problems, 29))
    lower, upper, nbd = np.zeros(n), np.zeros(n), np.zeros(n, np.int32)  # nbd 0 = unbounded
    nit = np.zeros(n_problems, int)
    nfev = np.zeros(n_problems, int)

    active = np.arange(n_problems)
    # setulb's BLAS/LAPACK calls are on 2n x 2m matrices: a threaded BLAS only adds hand-offs
    # (measured 5x slower on an idle 2-core box, 80x with another process busy)
    with threadpool_limits(limits=1, user_api="blas"):
        while active.size:
            for i in active:
                _lbfgsb.setulb(
                    m,
                    x[i],
                    lower,
                    upper,
                    nbd,
                    float(f[i]),
                    g[i],
                    factr,
                    gtol,
                    wa[i],
                    iwa[i],
                    task[i],
                    lsave[i],
                    isave[i],
                    dsave[i],
                    maxls,
                    ln_task[i],
                )
            state = task[active, 0]
            wants_fg = active[state == _FG]
            # chunks keep the evaluation's temporaries small (see LSEProblem.solve)
            for start in range(0, wants_fg.size, chunk_rows):
                rows = wants_fg[start : start + chunk_rows]
                f[rows], g[rows] = fun_grad(x[rows], rows)
            nfev[wants_fg] += 1
            new_x = active[state == _NEW_X]
            nit[new_x] += 1
            # as in scipy: limits are checked at the end of an iteration, and a stopped problem
            # gets one more setulb call before it leaves the loop
            task[new_x[nit[new_x] >= maxiter]] = (_STOP, _ITERATIONS_REACHED)
            task[new_x[(nit[new_x] < maxiter) & (nfev[new_x] > maxfun)]] = (
                _STOP,
                _EVALUATIONS_REACHED,
            )
            active = active[(state == _FG) | (state == _NEW_X)]
    return BatchResult(x=x, fun=f, success=task[:, 0] == _CONVERGENCE, nfev=nfev)
