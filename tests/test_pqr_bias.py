"""PQR in small samples: the fixed point on the model's policy (the default), the two-step
estimator it replaces (``fixed_point=False``) and the thin-cell diagnostic.

The fast tests check the algebra (the fixed point is exact at the true choice probabilities, its
delta-method coefficients are its derivatives, the log-odds map and its adjoint) and the
diagnostic; the slow one is the Monte Carlo of docs/irl.rst ("PQR in small samples").
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from scipy import stats

import ddc
from ddc.solver import ConvergenceWarning
from estimators import NFXP
from estimators.data import choice_data
from estimators.likelihood import ChoiceLikelihood
from estimators.pqr import PQR, RewardMap
from estimators.pqr_smallsample import (
    fixed_point_coefficients,
    log_odds,
    log_odds_adjoint,
    solve_fixed_point,
    thin_cells,
)
from simulations import monte_carlo, simulate


@pytest.fixture(scope="module")
def small():
    """3,000 customers x 24 months: the sample size where two-step PQR is biased."""
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=3_000, n_periods=24, seed=5)
    return model, panel


@pytest.fixture(scope="module")
def fitted(small):
    """The fixed point and two-step PQR with the transitions estimated (the default), without
    the first stage's correction of the covariance.

    The correction re-estimates the fit at every moved transition cell (48 refits, three
    quarters of a fit's time) and is checked in tests/test_first_stage.py; nothing here reads
    it. Without it the covariance is the delta method's on the first-stage choice
    probabilities alone, which the thin-cell shares decompose (test_thin_cells_reported).
    """
    model, panel = small
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PQR, "first_stage_correction", "own")  # the estimator's own: none
        return PQR(model).fit(panel), PQR(model, fixed_point=False).fit(panel)


def _setup(model, counts, params):
    est = PQR(model)
    rmap = RewardMap(model, params, est.structure)
    lik = ChoiceLikelihood(model, counts, est.solver)
    return est, rmap.features(), lik


def _log(model, pi):
    return np.where(model.feasible, np.log(np.where(model.feasible, pi, 1.0)), 0.0)


def _estimating_equation(est, counts, ell, Xt, sol):
    """g(theta) = X' W_theta D(ell_hat - ell_theta) by its definition (module notes)."""
    cells = est._cells(counts)
    w = est._cell_weights(counts, sol.pi)
    e = log_odds(ell, est.structure.anchor) - log_odds(_log(est.model, sol.pi),
                                                       est.structure.anchor)
    return np.einsum("c,ck->k", w[cells] * e[cells], Xt[cells])


# ------------------------------------------------------------------ the algebra
def test_log_odds_adjoint():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    c = rng.normal(size=(7, 3, 2))
    c[:, 0] = 0.0
    lhs = np.einsum("sa,sak->k", log_odds(x, 0), c)
    rhs = np.einsum("sa,sak->k", x, log_odds_adjoint(c, 0))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_fixed_point_is_exact_at_the_true_policy(small):
    # with the first stage at the true choice probabilities, theta_0 solves the estimating
    # equation exactly; Newton finds it from a start 10% away in every parameter
    model, panel = small
    truth = model.true_params
    counts = choice_data(model, panel).counts
    est, Xt, lik = _setup(model, counts, truth)
    ell = _log(model, model.solve(truth).pi)
    util = model.utility_params

    def solve(th):
        p = truth.copy()
        p[util] = th
        return lik.solve(p)

    fp = solve_fixed_point(solve, lambda pi, dl: est._weights_and_derivative(counts, pi, dl),
                           ell, Xt, est._cells(counts), est.structure.anchor,
                           1.1 * truth[util].to_numpy())
    assert fp.converged, fp.message
    np.testing.assert_allclose(fp.theta, truth[util].to_numpy(), atol=1e-8)


def test_estimating_equation_holds_at_the_estimate(small, fitted):
    model, panel = small
    res, two = fitted
    assert res.converged and two.converged
    counts = choice_data(model, panel).counts
    fm = res.extra["transitions"].model  # the model with the first-stage transitions
    est, Xt, lik = _setup(fm, counts, fm.true_params)
    p = fm.params_series(fm.true_params)
    p[res.params.index] = res.params
    ell = _log(model, res.extra["ccp_first_stage"])
    g = _estimating_equation(est, counts, ell, Xt, lik.solve(p))
    A = np.einsum("c,ck,cl->kl", est._cell_weights(counts, lik.solve(p).pi)[est._cells(counts)],
                  Xt[est._cells(counts)], Xt[est._cells(counts)])
    assert float(g @ np.linalg.solve(A, g)) < 1e-16
    # the two-step start is recorded and differs (by sampling noise, not by rounding)
    fpi = res.extra["fixed_point"]
    assert fpi["used"] and fpi["iterations"] >= 1
    assert list(fpi["two_step"].index) == list(two.params.index)
    np.testing.assert_allclose(fpi["two_step"].to_numpy(), two.params.to_numpy(), rtol=1e-12)
    assert not two.extra["fixed_point"]["used"]
    assert np.abs(res.params - two.params).max() > 1e-3


def test_two_step_is_the_projection(small, fitted):
    # fixed_point=False is the closed-form weighted least squares of the R-step's rewards
    model, panel = small
    _, two = fitted
    counts = choice_data(model, panel).counts
    fm = two.extra["transitions"].model  # the model with the first-stage transitions
    est = PQR(fm, fixed_point=False)
    rmap = RewardMap(fm, fm.true_params, est.structure)
    theta = est._estimate_rewards(counts, rmap, rmap.features())[0]
    np.testing.assert_allclose(two.params.to_numpy(), theta, rtol=1e-12)


def test_delta_method_coefficients_are_derivatives(small, fitted):
    # d theta* / d ell(s, a) from the implicit function theorem (J with the weights' derivative)
    # against central differences of the fixed point itself, in a few cells
    model, panel = small
    res, _ = fitted
    counts = choice_data(model, panel).counts
    model = res.extra["transitions"].model  # the model with the first-stage transitions
    est, Xt, lik = _setup(model, counts, model.true_params)
    util = model.utility_params
    ell = _log(model, res.extra["ccp_first_stage"])
    cells = est._cells(counts)
    a0 = est.structure.anchor

    def fixed_point(e):
        def solve(th):
            p = model.true_params.copy()
            p[util] = th
            return lik.solve(p)

        return solve_fixed_point(solve, lambda pi, dl: est._weights_and_derivative(
            counts, pi, dl), e, Xt, cells, a0, res.params.to_numpy(), tol=1e-12)

    fp = fixed_point(ell)
    G = fixed_point_coefficients(fp, Xt, cells, a0)
    N = counts.sum(axis=1)
    s_big = int(np.argmax(np.where(cells.any(axis=1), N, -1)))
    s_thin = int(np.argmin(np.where(cells.any(axis=1), N, np.inf)))
    h = 1e-5
    for s, a in [(s_big, 2), (s_big, a0), (s_thin, 2)]:
        e = np.zeros_like(ell)
        e[s, a] = h
        num = (fixed_point(ell + e).theta - fixed_point(ell - e).theta) / (2 * h)
        np.testing.assert_allclose(G[s, a], num, rtol=1e-4, atol=1e-7 * np.abs(G).max())


def test_non_convergence_is_loud(small):
    # the transitions held known: the first stage's re-estimations would fail the same way
    model, panel = small
    with pytest.warns(ConvergenceWarning, match="not converged in 1 steps"):
        res = PQR(model, max_iter=1, transitions="known").fit(panel)
    assert not res.converged


@pytest.mark.parametrize("kwargs, error", [
    pytest.param({"fixed_point": "yes"}, TypeError, id="fixed_point-str"),
    pytest.param({"max_iter": 0}, ValueError, id="max_iter-0"),
    pytest.param({"tol": -1.0}, ValueError, id="tol-negative"),
    pytest.param({"thin_count": 0}, ValueError, id="thin_count-0"),
])
def test_option_errors(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        PQR(ddc.models.membership(), **kwargs)


# ------------------------------------------------------------------ the diagnostic
def test_thin_cells_by_hand():
    counts = np.array([[50, 3, 0], [40, 40, 40], [0, 0, 0], [2, 30, 30]], dtype=float)
    feasible = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=bool)
    observed = np.array([True, True, False, True])
    var = np.array([[1.0, 0.0], [3.0, 1.0], [9.0, 9.0], [1.0, 1.0]])
    out = thin_cells(counts, feasible, observed, var, ["a", "b"], min_count=5)
    # state 0 (the infeasible action's zero does not count; 3 < 5) and state 3 (anchor 2 < 5)
    assert out.loc["a", "thin_states"] == 2 and out.loc["a", "states"] == 3
    np.testing.assert_allclose(out["variance_share"], [2 / 5, 1 / 2])


def test_thin_cells_reported(small, fitted):
    model, panel = small
    counts = choice_data(model, panel).counts
    for res in fitted:
        thin = res.extra["thin_cells"]
        assert list(thin.index) == model.utility_params
        N = counts.sum(axis=1)
        st = PQR(model).structure
        obs = st.choice & st.multi & (N > 0)
        low = np.where(model.feasible, counts, np.inf).min(axis=1) < 10
        assert (thin["thin_states"] == int((obs & low).sum())).all()
        assert (thin["states"] == int(obs.sum())).all()
        assert ((thin["variance_share"] >= 0) & (thin["variance_share"] <= 1)).all()
        # the shares decompose the delta-method variance (the fit's covariance, without the
        # first stage's correction): the states' terms N(s) sum_a pi Psi_k^2 add up to it, and
        # the share is the thin states' part
        N_pi = N[:, None] * res.extra["ccp_first_stage"]
        terms = np.einsum("sa,sak->sk", N_pi, res.extra["influence"] ** 2)
        np.testing.assert_allclose(terms[obs].sum(axis=0), np.diag(res.cov.to_numpy()),
                                   rtol=1e-10)
        np.testing.assert_allclose(thin["variance_share"],
                                   terms[obs & low].sum(axis=0) / terms[obs].sum(axis=0),
                                   rtol=1e-12)
        noted = any(n.startswith("thin cells:") for n in res.notes)
        assert noted == bool((thin["variance_share"] >= 0.10).any())


# ------------------------------------------------------------------ the Monte Carlo
@pytest.mark.slow
def test_monte_carlo_small_sample_bias():
    # docs/irl.rst "PQR in small samples": the first 40 of its 60 replications of 3,000 x 24 at
    # the default truth. Two-step PQR is biased (theta_annual up: the weights correlate with the
    # log-odds); the fixed point's bias is within Monte Carlo error of NFXP's on the same panels
    # (the MLE's own small-sample bias), parameter by parameter, and its intervals cover.
    model = ddc.models.membership()
    ests = {"fixed point": PQR, "two-step": functools.partial(PQR, fixed_point=False),
            "NFXP": NFXP}
    R = 40
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        mc = monte_carlo(model, model.true_params, ests, reps=R, n_customers=3_000,
                         n_periods=24, seed=2026, progress=False)
    s = mc.summary()
    assert (s["n"] == R).all(), mc.exclusions()
    z_family = float(stats.norm.isf(0.001 / (2 * 6)))  # Bonferroni over 6 parameters
    two = s.loc["two-step"]
    # two-step: theta_annual +0.13 (2.9 MC s.e.), theta_ship -3.5 and kappa_join -2.7 s.e. here
    assert (two["bias"].abs() > 3 * two["bias_se"]).any(), two[["bias", "bias_se"]]
    assert two.loc["theta_annual", "bias"] > 2 * two.loc["theta_annual", "bias_se"]
    fp = s.loc["fixed point"]
    t = mc.table
    paired = (t[t.estimator == "fixed point"].set_index(["rep", "param"])["estimate"]
              - t[t.estimator == "NFXP"].set_index(["rep", "param"])["estimate"])
    z = paired.groupby("param").mean() / (paired.groupby("param").std() / np.sqrt(R))
    assert (z.abs() < z_family).all(), z
    assert abs(fp.loc["theta_annual", "bias"]) < abs(two.loc["theta_annual", "bias"]) / 3
    # coverage of the 95% intervals: binomial error sqrt(.95 .05 / 40) = 0.034
    assert (fp["coverage"] >= 0.95 - z_family * np.sqrt(0.95 * 0.05 / R)).all(), fp["coverage"]
