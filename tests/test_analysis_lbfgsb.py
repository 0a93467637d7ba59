"""The lockstep L-BFGS-B driver must take scipy.optimize.minimize's exact path."""

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from analysis.lbfgsb import minimize_lbfgsb_batch
from analysis.lse import LSEProblem, grid_starts


def _rosen_batch(x, rows):
    return np.array([rosen(r) for r in x]), np.array([rosen_der(r) for r in x])


def test_matches_scipy_minimize_on_rosenbrock():
    starts = np.array([[-1.2, 1.0, 0.5], [2.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    batch = minimize_lbfgsb_batch(_rosen_batch, starts)
    for i, x0 in enumerate(starts):
        ref = minimize(rosen, x0, jac=rosen_der, method="L-BFGS-B")
        np.testing.assert_array_equal(batch.x[i], ref.x)
        assert batch.success[i] == ref.success and batch.nfev[i] == ref.nfev


def test_matches_scipy_minimize_on_lse_objective():
    rng = np.random.default_rng(0)
    n, d = 10 ** rng.uniform(7, 9, 50), 10 ** rng.uniform(9, 11, 50)
    loss = 1.8 + 400 / n**0.34 + 400 / d**0.28
    problem = LSEProblem(np.log(np.vstack([n, d])), np.log(loss))
    starts = grid_starts(2, True)[::450]
    batch = problem.solve(starts)
    for i, x0 in enumerate(starts):
        # solve minimises the objective divided by problem.scale, and reports it unscaled
        ref = minimize(
            lambda p: tuple(v[0] / problem.scale for v in problem.fun_grad(p[None])),
            x0,
            jac=True,
            method="L-BFGS-B",
        )
        np.testing.assert_allclose(batch.x[i], ref.x, rtol=1e-6, atol=1e-8)
        assert batch.fun[i] == pytest.approx(ref.fun * problem.scale, rel=1e-9, abs=1e-15)


def test_iteration_limit_is_reported_as_failure():
    batch = minimize_lbfgsb_batch(_rosen_batch, np.array([[-1.2, 1.0]]), maxiter=3)
    assert not batch.success[0]
