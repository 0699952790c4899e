"""IRL estimators: anchor-action PQR and maximum causal entropy IRL.

Tolerances, tiered by purpose: algebraic identities (the PQR map at the true choice probabilities,
its adjoint, the gradient identity of MCE IRL and NFXP) to 1e-9 relative; optimizer agreement
(MaxEntIRL and NFXP find the same maximum) in standard errors to 1e-4; statistical recovery by
|z| <= 4.4, a Bonferroni bound at a family-wise level of 1e-4 over six parameters (as in
test_estimators.py), and for reward tables with one entry per choice cell the Bonferroni bound
over the cells at the same level.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

import ddc
from ddc.kernels import bellman_numpy as kn
from estimators.ccp import logit_ccps
from estimators.data import choice_data
from estimators.likelihood import ChoiceLikelihood
from estimators.maxent import (
    MaxEntIRL,
    decision_measure,
    discounted_occupancy,
    horizon_root_status,
    horizon_visits,
)
from estimators.nfxp import NFXP
from estimators.optimize import Optimizer
from estimators.pqr import (
    PQR,
    RewardMap,
    anchor_features,
    anchor_rewards,
    anchor_structure,
    flexible_logit,
)
from simulations import simulate

Z_MAX = 4.4


def bonferroni(n_tests, family=1e-4):
    return float(stats.norm.isf(family / (2 * n_tests)))


@pytest.fixture(scope="module")
def membership():
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=20_000, n_periods=36, seed=7)
    return model, panel


@pytest.fixture(scope="module")
def pqr_default(membership):
    model, panel = membership
    return PQR(model, bootstrap=40, seed=1).fit(panel)


@pytest.fixture(scope="module")
def nfxp_tight(membership):
    model, panel = membership
    return NFXP(model, optimizer=Optimizer(tol=1e-12)).fit(panel)


@pytest.fixture(scope="module")
def bus():
    data = ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=90)
    return ddc.models.rust_bus(n_states=90, beta=0.9999), data


def true_log_ccps(model):
    sol = model.solve(model.true_params)
    with np.errstate(divide="ignore"):
        return np.where(model.feasible, np.log(np.where(model.feasible, sol.pi, 1.0)), 0.0)


MODELS = [pytest.param(lambda: ddc.models.membership(), id="membership"),
          pytest.param(lambda: ddc.models.rust_bus(n_states=90), id="bus")]


# ------------------------------------------------------------------ PQR: the algebra
@pytest.mark.parametrize("make", MODELS)
def test_pqr_map_recovers_normalized_rewards_at_true_ccps(make):
    model = make()
    st = anchor_structure(model)
    rmap = RewardMap(model, model.true_params, st)
    r = rmap(true_log_ccps(model))
    expected = anchor_rewards(model, model.true_params).to_numpy()
    cells = rmap.cell
    assert np.all(np.isnan(r[~cells])) and np.all(np.isnan(expected[~cells]))
    scale = np.abs(expected[cells]).max()
    np.testing.assert_allclose(r[cells], expected[cells], rtol=0, atol=1e-9 * scale)
    assert np.all(r[st.choice, st.anchor] == 0.0)


@pytest.mark.parametrize("q_step", ["table", "features"])
@pytest.mark.parametrize("make", MODELS)
def test_pqr_adjoint(make, q_step):
    model = make()
    st = anchor_structure(model)
    basis = weights = None
    if q_step == "features":
        basis, weights = PQR(model, q_step="features")._basis(np.ones(model.feasible.shape))
    rmap = RewardMap(model, model.true_params, st, q_step, basis=basis, weights=weights)
    rng = np.random.default_rng(0)
    c = rng.normal(size=(model.n_states, model.n_actions, 3))
    d = rng.normal(size=(model.n_states, model.n_actions)) * model.feasible
    lhs = np.einsum("sak,sa->k", np.where(rmap.cell[:, :, None], c, 0.0), np.nan_to_num(rmap(d)))
    rhs = np.einsum("sak,sa->k", rmap.adjoint(c), d)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9)


def test_membership_annual_bundle_is_the_documented_formula():
    # docs/membership.rst: r~(s, annual) = u(s, annual) + sum_{k=1..11} beta^k E[b(s_k)]
    model = ddc.models.membership()
    truth = model.true_params
    r = anchor_rewards(model, truth)
    ct = model.compiled_transitions()
    P = kn.transition_matrix(ct, model.action_code("annual"))
    u = model.utilities(truth)
    X = model.utility.features[:, 1, :]  # monthly: b - price terms; b's features
    k = list(model.utility_params).index
    b = truth["theta_0"] + truth["theta_ship"] * X[:, k("theta_ship")] \
        + truth["theta_video"] * X[:, k("theta_video")]
    plan = model.space.values_of("plan")
    for s in np.flatnonzero(np.isin(plan, ["none", "member"]))[::7]:
        dist = np.zeros(model.n_states)
        dist[s] = 1.0
        total = u[s, 2]
        for k in range(1, 12):  # the annual plan's 12-month lock
            dist = dist @ P
            assert np.all(np.isin(plan[dist > 0], [f"annual_{12 - k}"]))
            total += model.beta**k * dist @ b
        assert r.iloc[s]["annual"] == pytest.approx(total, abs=1e-10)
        # monthly leads to a choice state: its reward is the one-period utility
        assert r.iloc[s]["monthly"] == pytest.approx(u[s, 1], abs=1e-10)


def test_bus_rewards_are_differences_from_the_anchor():
    # the anchor's utility (-RC) does not vary with the state: PQR's rewards are u - u(anchor)
    bus = ddc.models.rust_bus(n_states=90)
    r = anchor_rewards(bus, bus.true_params)
    u = bus.utilities(bus.true_params)
    np.testing.assert_allclose(r["keep"].to_numpy(), u[:, 0] - u[:, 1], atol=1e-8)
    np.testing.assert_allclose(r["replace"].to_numpy(), 0.0, atol=0)


def test_state_dependent_anchor_utility_is_not_a_difference():
    # with u(s, a0) varying by state, PQR's normalization shapes rewards by a potential:
    # r~ = u + phi - beta E phi, not u - u(., a0); the map still reproduces it exactly
    bus = ddc.models.rust_bus(n_states=20, beta=0.9)
    X = bus.utility.features.copy()
    X[:, 1, 1] = -0.001 * np.arange(20) * 50.0  # replacement cost rising with mileage
    model = bus.replace(utility=ddc.LinearUtility(X, bus.utility_params))
    st = anchor_structure(model)
    rmap = RewardMap(model, model.true_params, st)
    r = rmap(true_log_ccps(model))
    Xt = anchor_features(model, model.true_params)
    theta = model.true_params.to_numpy()[:2]
    np.testing.assert_allclose(r[:, 0], Xt[:, 0] @ theta, atol=1e-9)
    u = model.utilities(model.true_params)
    assert np.abs(r[:, 0] - (u[:, 0] - u[:, 1])).max() > 1e-3


# ------------------------------------------------------------------ PQR: estimation
def test_pqr_recovers_membership_truth(membership, pqr_default):
    model, _ = membership
    res = pqr_default
    truth = model.true_params[res.params.index]
    assert res.converged
    assert res.cov_type == "delta"
    z = (res.params - truth) / res.std_errors
    assert np.all(np.abs(z) < Z_MAX), z
    # the delta method, its per-unit clustering and the bootstrap estimate the same variance;
    # a bootstrap standard error from 40 resamples is itself uncertain by about 1/sqrt(80) = 11%
    ratio_cluster = res.std_errors_of("cluster") / res.std_errors_of("delta")
    np.testing.assert_allclose(ratio_cluster, 1.0, atol=0.1)
    ratio_boot = res.std_errors_of("bootstrap") / res.std_errors_of("delta")
    assert np.all((ratio_boot > 0.6) & (ratio_boot < 1.5)), ratio_boot


def test_pqr_rewards_state_by_state(membership, pqr_default):
    model, _ = membership
    truth = anchor_rewards(model, model.true_params)
    r, se = pqr_default.extra["rewards"], pqr_default.extra["rewards_se"]
    cells = se.notna().to_numpy()
    assert cells.sum() == 72  # 36 observed choice states x (monthly, annual)
    z = ((r - truth) / se).to_numpy()[cells]
    assert np.abs(z).max() < bonferroni(cells.sum())
    # the fitted rewards X~ theta-hat: their largest error in standard errors is a Scheffe
    # statistic, below sqrt(chi2_K)
    Xt = np.nan_to_num(pqr_default.extra["features"])
    V = pqr_default.cov.to_numpy()
    fit_se = np.sqrt(np.einsum("sak,kl,sal->sa", Xt, V, Xt))[cells]
    err = (pqr_default.extra["rewards_fitted"] - truth).to_numpy()[cells]
    assert np.abs(err / fit_se).max() < np.sqrt(stats.chi2.ppf(1 - 1e-4, 6))


def test_anchor_support_is_reported(membership, pqr_default):
    model, panel = membership
    support = pqr_default.extra["anchor_support"]
    assert support.name == "anchor_support"
    assert support.index.equals(model.space.index)
    counts = choice_data(model, panel).counts
    N = counts.sum(axis=1)
    st = anchor_structure(model)
    seen = (N > 0) & st.choice
    np.testing.assert_allclose(support.to_numpy()[seen], counts[seen, 0] / N[seen])
    assert support[~seen].isna().all()  # locked months (no anchor) and unobserved states
    low = seen & (support.to_numpy() < 0.02)
    assert (any("anchor support" in n for n in pqr_default.notes)) == bool(low.any())
    loud = PQR(model, support_threshold=0.5).fit(panel)
    n_low = int((seen & (support.to_numpy() < 0.5)).sum())
    assert any(f"less than 50% of visits in {n_low} of 36 observed choice states" in n
               for n in loud.notes)


def test_pqr_large_state_variant_agrees_with_table(membership):
    model, panel = membership
    table = PQR(model, policy="logit").fit(panel)
    feats = PQR(model, policy="logit", q_step="features").fit(panel)
    truth = model.true_params[table.params.index]
    assert np.all(np.abs((feats.params - truth) / feats.std_errors) < Z_MAX)
    # the LSTD evaluation of the anchor's Q on main effects and two-way interactions is an
    # approximation (see the next test); the two agree within the sampling error
    assert np.all(np.abs(feats.params - table.params) < table.std_errors)


@pytest.mark.parametrize("order, bound", [(3, 1e-9), (2, 0.5)], ids=["order-3", "order-2"])
def test_lstd_q_step_at_true_ccps(membership, pqr_default, order, bound):
    # at the true choice probabilities the tabular Q-step is exact; LSTD on dummies with
    # interactions up to order 3 spans W on the anchor states here (exact), and order 2 leaves
    # an approximation bias below half a standard error (bound: in standard errors for order 2,
    # absolute for order 3)
    model, panel = membership
    counts = choice_data(model, panel).counts
    est = PQR(model, q_step="features", order=order)
    basis, weights = est._basis(counts)
    rmap = RewardMap(model, model.true_params, est.structure, "features", basis=basis,
                     weights=weights)
    sol = model.solve(model.true_params)
    theta, _ = est._project(rmap(true_log_ccps(model)), rmap.features(),
                            est._cell_weights(counts, sol.pi))
    bias = theta - model.true_params.to_numpy()
    scale = pqr_default.std_errors.to_numpy() if order == 2 else 1.0
    assert np.all(np.abs(bias / scale) < bound), bias


def test_pqr_with_another_anchor(membership):
    # 'monthly' is a valid anchor too (feasible wherever there is a choice, and its transitions
    # stay there); its utility varies with the state (price, benefits, joining cost), so the
    # projection uses the potential-shaped features. Same truth, another normalization.
    model, panel = membership
    res = PQR(model, anchor="monthly").fit(panel)
    truth = model.true_params[res.params.index]
    assert np.all(np.abs((res.params - truth) / res.std_errors) < Z_MAX)


def test_flexible_logit_is_logit_ccps():
    # the counts-based Newton fit has the same likelihood as statsmodels' row-level MNLogit
    # (whose own Newton iterations stop short on this small sample: hence 1e-5)
    import statsmodels.api  # noqa: F401 - it sets its warning filters on import

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=200, n_periods=4, seed=3)
    cd = choice_data(model, panel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = logit_ccps(model, cd)
    fit = flexible_logit(model, cd.counts)
    assert fit.converged
    np.testing.assert_allclose(fit.pi, reference, atol=1e-5)


def test_pqr_input_errors():
    model = ddc.models.membership()
    with pytest.raises(ValueError, match="anchor"):
        PQR(model.replace(anchor=None))
    feas = model.feasible.copy()
    locked = ~feas[:, 0]
    feas[locked, 1] = True  # locked months with two actions but no anchor
    with pytest.raises(ValueError, match="offers .* but not the anchor 'none'"):
        PQR(model.replace(feasible=feas))
    feas = model.feasible.copy()
    member = model.space.values_of("plan") == "member"
    feas[member, :2] = False  # members may only take the annual plan: 'monthly' leads there
    with pytest.raises(ValueError, match="the anchor 'monthly' leads from state"):
        PQR(model.replace(feasible=feas), anchor="monthly")
    with pytest.raises(ValueError, match="unknown policy 'tabular'"):
        PQR(model, policy="tabular")
    with pytest.raises(ValueError, match="bootstrap"):
        PQR(model, bootstrap=1)
    util = ddc.CallableUtility(lambda th: np.zeros((model.n_states, 3)), ["a"],
                               (model.n_states, 3))
    with pytest.raises(TypeError, match="LinearUtility"):
        PQR(model.replace(utility=util, true_params=None, hooks=ddc.Hooks()))


# ------------------------------------------------------------------ MaxEntIRL
@pytest.mark.parametrize("shift", [0.0, 0.3, -0.5])
def test_feature_count_gradient_is_the_likelihood_gradient(membership, shift):
    model, panel = membership
    cd = choice_data(model, panel)
    lik = ChoiceLikelihood(model, cd.counts, ddc.Solver())
    params = model.true_params + shift * np.linspace(-1, 1, 6) * np.abs(model.true_params)
    measure = decision_measure(model, cd.counts, model.compiled_transitions())
    ll, grad, _ = MaxEntIRL(model).gradient(lik, params, measure)
    ev = lik.evaluate(params, True)
    assert ll == pytest.approx(ev.loglik, rel=1e-12)
    np.testing.assert_allclose(grad, ev.grad, rtol=1e-8, atol=1e-8 * np.abs(ev.grad).max())


def test_forward_pass_iterate_equals_closed_form(membership):
    model, panel = membership
    cd = choice_data(model, panel)
    sol = model.solve(model.true_params)
    m = decision_measure(model, cd.counts, model.compiled_transitions())
    d_solve, _ = discounted_occupancy(sol, m, "solve")
    d_iter, steps = discounted_occupancy(sol, m, "iterate", tol=1e-13)
    assert steps > 1000  # beta = 0.99: the discounted forward pass is long
    np.testing.assert_allclose(d_iter, d_solve, atol=1e-9 * np.abs(d_solve).max())


def test_maxent_equals_nfxp(membership, nfxp_tight):
    model, panel = membership
    res = MaxEntIRL(model).fit(panel)
    assert res.converged
    se = nfxp_tight.std_errors
    assert np.all(np.abs(res.params - nfxp_tight.params) < 1e-4 * se)
    assert res.loglik == pytest.approx(nfxp_tight.loglik, abs=1e-6)
    np.testing.assert_allclose(res.std_errors, se, rtol=1e-4)
    # at the estimate, empirical and expected feature counts agree to the rounding level
    grad = res.extra["gradient"].to_numpy()
    assert np.all(np.abs(grad * se.to_numpy()) < 1e-3)


def test_textbook_feature_matching_is_a_different_estimator(membership, nfxp_tight):
    model, panel = membership
    res = MaxEntIRL(model, feature_counts="horizon").fit(panel)
    assert res.converged and res.cov_type == "cluster"
    truth = model.true_params[res.params.index]
    # consistent: recovers the truth within its own standard errors
    assert np.all(np.abs((res.params - truth) / res.std_errors) < Z_MAX)
    # its moments hold at its estimate ...
    counts = choice_data(model, panel).counts
    emp = np.einsum("sa,sak->k", counts, np.where(model.feasible[:, :, None],
                                                     model.utility.features, 0.0))
    assert np.all(np.abs(res.extra["moments"].to_numpy()) < 1e-6 * np.abs(emp))
    # ... but it is not the MLE: it differs from NFXP in finite samples, has a lower likelihood
    # and (a method-of-moments estimator) larger standard errors
    se = nfxp_tight.std_errors
    assert np.max(np.abs(res.params - nfxp_tight.params) / se) > 0.1
    assert res.loglik < nfxp_tight.loglik - 1e-3
    assert np.all(res.std_errors > se)


def test_horizon_root_at_rounding_level_is_converged():
    # Regression: with the transitions estimated in a first stage (the default since 5dc51b9),
    # hybr can end at the root of the window moments with status 5 ("not making good
    # progress"): its last steps change the moments (sums over every row) only by rounding.
    # This panel is one where it does (as does the 720,000-row panel of docs/irl.rst); the fit
    # was reported as not converged although the point is a root.
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=2_000, n_periods=24, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ddc.ConvergenceWarning)
        res = MaxEntIRL(model, feature_counts="horizon").fit(panel)
    assert res.converged
    assert "status 5" in res.extra["message"]  # the case this test is about
    # a root, checked without hybr: the Newton step J^-1 m left, in the estimate's own standard
    # errors, is at the rounding level (the template's decrement m'S^-1 m is its squared length)
    m = res.extra["moments"].to_numpy()
    step = np.linalg.solve(res.extra["moment_jacobian"], m)
    assert np.max(np.abs(step) / res.std_errors.to_numpy()) < 1e-6
    assert res.extra["convergence"].decrement < 1e-12


@pytest.mark.parametrize("success, status, moment, converged", [
    pytest.param(True, 1, 1e-9, True, id="xtol"),
    pytest.param(False, 5, 1e-9, True, id="no-progress-at-root"),
    pytest.param(False, 3, 1e-9, True, id="xtol-too-small-at-root"),
    pytest.param(False, 5, 1e-2, False, id="no-progress-away-from-root"),
    pytest.param(True, 1, 1e-2, False, id="xtol-away-from-root"),
    pytest.param(False, 2, 1e-9, False, id="maxfev"),
])
def test_horizon_root_status(success, status, moment, converged):
    ok, message = horizon_root_status(success, status, "hybr's\n message", moment)
    assert ok is converged
    assert "hybr's message" in message
    if not converged:
        assert f"{moment:.1e}" in message


def test_horizon_forward_pass_equals_backward_recursion(membership):
    model, panel = membership
    cd = choice_data(model, panel.iloc[: 36 * 500 - 7])  # uneven windows: the last unit's cut
    est = MaxEntIRL(model, feature_counts="horizon")
    initial, horizon, _ = est._windows(cd)
    assert len(np.unique(horizon)) == 2
    sol = model.solve(model.true_params)
    X = est._features()
    forward = np.einsum("s,sa,sak->k", horizon_visits(sol, initial, horizon), sol.pi, X)
    backward = est._unit_expected(sol, initial, horizon).sum(axis=0)
    np.testing.assert_allclose(forward, backward, rtol=1e-11)


# ------------------------------------------------------------------ Rust's bus
def test_bus_maxent_equals_nfxp(bus):
    model, data = bus
    nfxp = NFXP(model, full_information=False, optimizer=Optimizer(tol=1e-12)).fit(data)
    res = MaxEntIRL(model).fit(data)
    assert res.converged
    assert np.all(np.abs(res.params - nfxp.params) < 1e-4 * nfxp.std_errors)
    assert res.loglik == pytest.approx(nfxp.loglik, abs=1e-6)


def test_bus_pqr(bus):
    model, data = bus
    nfxp = NFXP(model).fit(data)
    util = ["RC", "theta_11"]
    # two-step PQR (fixed_point=False since the fixed point became the default; a row of
    # docs/irl.rst's bus table, where the fixed point with the logit now converges too: that
    # table is checked by tests/test_docs_examples.py)
    res = PQR(model, policy="logit", fixed_point=False).fit(data)
    # Hausman scale: NFXP is efficient, so Var(PQR - NFXP) = Var(PQR) - Var(NFXP)
    scale = np.sqrt(res.std_errors[util] ** 2 - nfxp.std_errors[util] ** 2)
    assert np.all(np.abs(res.params[util] - nfxp.params[util]) / scale < Z_MAX)
    # replacements are rare (61 in 8,260 bus-months, none below bin 24): anchor support is poor
    # and PQR says so; with frequencies the anchor's log-probability where it is never chosen
    # is set by the smoothing, and RC with it
    support = res.extra["anchor_support"].dropna()
    assert (support < 0.02).mean() > 0.5
    assert any("anchor support: 'replace'" in n for n in res.notes)
    rc = [PQR(model, smoothing=a, fixed_point=False).fit(data).params["RC"] for a in (0.5, 0.1)]
    assert abs(rc[0] - rc[1]) > nfxp.std_errors["RC"]
