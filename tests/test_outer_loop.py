"""NFXP's outer loop: Newton's method on the analytic Hessian from the CCP estimate.

The default outer loop (``Optimizer("newton")`` from the Hotz-Miller estimate) must reach the
optimum that BHHH reaches when it is run to a far tighter tolerance than its default, its
Hessian must be the one central differences approximate, and the standard errors come from that
analytic Hessian.
"""

import numpy as np
import pytest

import ddc
from ddc.solver import Solver, small_blas
from estimators import CCP, NFXP, Optimizer
from estimators.likelihood import ChoiceLikelihood
from estimators.optimize import maximize


@pytest.fixture(scope="module")
def rust():
    model = ddc.models.rust_bus(90)
    return model, ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=90)


@pytest.fixture(scope="module")
def newton_fit(rust):
    model, data = rust
    return NFXP(model, full_information=False).fit(data)


def test_newton_reaches_the_optimum_of_a_tightly_converged_bhhh(rust, newton_fit):
    model, data = rust
    tight = NFXP(model, full_information=False,
                 optimizer=Optimizer("bhhh", tol=1e-15)).fit(data)
    assert newton_fit.converged and tight.converged
    # BHHH's default tol (1e-8 on the decrement) leaves it about 6e-7 (relative) short of the
    # optimum; Newton's last step is quadratic, and both agree to the noise of the fixed point
    np.testing.assert_allclose(newton_fit.params, tight.params, rtol=1e-8)
    assert newton_fit.loglik == pytest.approx(tight.loglik, rel=1e-13)
    assert newton_fit.iterations <= 6 < tight.iterations
    assert "Newton-Raphson" in newton_fit.extra["optimizer"]


def test_default_start_is_the_ccp_estimate_and_zeros_reach_the_same_optimum(rust, newton_fit):
    model, data = rust
    est = NFXP(model, full_information=False)
    prep = est._prepare(data, {})
    start = est._default_start(prep)
    ccp = CCP(model).fit(data)
    np.testing.assert_allclose(start.to_numpy(), ccp.params[model.utility_params].to_numpy(),
                               rtol=1e-10)
    from_zeros = est.fit(data, start=np.zeros(len(model.utility_params)))
    assert from_zeros.converged
    np.testing.assert_allclose(from_zeros.params, newton_fit.params, rtol=1e-8)


def test_evaluation_hessian_is_the_analytic_one_and_differences_agree(rust, newton_fit):
    model, data = rust
    est = NFXP(model, full_information=False)
    prep = est._prepare(data, {})
    m = prep.transitions.model
    params = prep.params.copy()
    params[newton_fit.params.index] = newton_fit.params
    lik = ChoiceLikelihood(m, prep.data.counts, Solver())
    with small_blas(m.n_states):
        H = lik.evaluate(params, True, hessian=True).hessian
        np.testing.assert_allclose(H, lik.hessian(params), rtol=1e-12)
        # Richardson-extrapolated central differences of the analytic gradient (error O(h^4)
        # plus rounding eps |g| / h, about 1e-9 relative at h = 1e-3)
        num = np.empty_like(H)
        for k, name in enumerate(m.utility_params):
            cols = []
            for h in (1e-3, 2e-3):
                up, dn = params.copy(), params.copy()
                up[name] += h * abs(params[name])
                dn[name] -= h * abs(params[name])
                cols.append((lik.evaluate(up).grad - lik.evaluate(dn).grad)
                            / (2 * h * abs(params[name])))
            num[:, k] = (4 * cols[0] - cols[1]) / 3
    np.testing.assert_allclose(H, num, rtol=1e-7)
    # the results carry this Hessian (their standard errors add the first stage's correction)
    np.testing.assert_allclose(newton_fit.hessian, H, rtol=1e-10)


def test_newton_needs_a_hessian():
    with pytest.raises(ValueError, match="needs the objective's analytic Hessian"):
        maximize(lambda x, need: (-(x @ x), -2 * x, np.eye(x.size)), np.ones(2),
                 Optimizer("newton"))


def test_newton_takes_bhhh_steps_where_the_hessian_is_not_negative_definite():
    # f(x) = -log(1 + x^2) is convex for |x| > 1: the Hessian there is positive, so the first
    # step must be the BHHH one (g^2 as curvature), which still ascends
    def objective(x, need):
        f = -np.log1p(x[0] ** 2)
        g = np.array([-2 * x[0] / (1 + x[0] ** 2)])
        return f, g, np.outer(g, g) + 1e-12

    def hessian(x):
        return np.array([[-2 * (1 - x[0] ** 2) / (1 + x[0] ** 2) ** 2]])

    res = maximize(objective, np.array([3.0]), Optimizer("newton", tol=1e-14), hessian)
    assert res.converged and abs(res.x[0]) < 1e-6
