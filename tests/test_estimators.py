"""NFXP, CCP and NPL: Rust (1987) reproduced, membership parameters recovered, failures reported.

Provenance of the oracle numbers: Rust, J. (1987), Econometrica 55(5), Table IX (90 states) and
Table X (175 states), as listed in ddc/datasets/rust1987/PROVENANCE.md. Rust's tables report
four significant digits for RC and theta_11, three decimals for log-likelihoods.
"""

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import ddc
from estimators import CCP, NFXP, NPL, PQR, MaxEntIRL, Optimizer
from estimators.identification import IdentificationError
from simulations import simulate


def rust_data(groups, n_states):
    return ddc.datasets.load_rust_bus(groups=groups, n_states=n_states)  # shipped with ddc


def half_unit_4th_digit(x):
    """Half a unit in the 4th significant digit of ``x``: agreement "to 4 digits"."""
    return 0.5 * 10 ** (np.floor(np.log10(abs(x))) - 3)


RUST_TABLES = [
    # groups, n_states, beta, RC, theta_11, loglik, (theta_3...), id
    pytest.param((1, 2, 3, 4), 90, 0.9999, 9.7558, 2.6275, -6055.25, (0.3489, 0.6394),
                 id="table-IX-groups-1-4"),
    pytest.param((1, 2, 3, 4), 90, 0.0, 7.3055, 70.2769, -6061.641, (0.3489, 0.6394),
                 id="table-IX-beta-0"),
    pytest.param((4,), 90, 0.9999, 10.075, 2.293, -3304.155, (0.3919, 0.5953),
                 id="table-IX-group-4"),
    pytest.param((1, 2, 3), 90, 0.9999, 11.727, 4.8259, -2708.366, None,
                 id="table-IX-groups-1-3"),
    pytest.param((1, 2, 3, 4), 175, 0.9999, 9.7687, 1.3428, -8607.889,
                 (0.1071, 0.5152, 0.3621, 0.0143), id="table-X-175-states"),
]


@pytest.mark.parametrize("groups, n_states, beta, rc, theta_11, loglik, theta_3", RUST_TABLES)
def test_nfxp_reproduces_rust_1987(groups, n_states, beta, rc, theta_11, loglik, theta_3):
    data = rust_data(groups, n_states)
    res = NFXP(ddc.models.rust_bus(n_states=n_states, beta=beta)).fit(data)
    assert res.converged
    assert res.params["RC"] == pytest.approx(rc, abs=half_unit_4th_digit(rc))
    assert res.params["theta_11"] == pytest.approx(theta_11, abs=half_unit_4th_digit(theta_11))
    # log-likelihoods to the published rounding (3 decimals; -6055.25 to 2)
    decimals = len(str(loglik).split(".")[1])
    assert res.loglik == pytest.approx(loglik, abs=0.5 * 10**-decimals + 1e-9)
    if theta_3 is not None:
        # the increment frequencies of the data; Table IX/X print them rounded to 4 decimals,
        # and two of them differ in the last digit from the counts of the data (.3488 vs .3489,
        # .1070 vs .1071, .3622 vs .3621): see the notes of ddc.datasets.load_rust_bus
        got = res.params[[f"theta_3{j}" for j in range(len(theta_3))]].to_numpy()
        np.testing.assert_allclose(got, theta_3, atol=1.5e-4)


def test_rust_choice_and_transition_parts_group_4():
    # Table IX, group 4: choice part -163.584, transition part -3140.571
    res = NFXP(ddc.models.rust_bus(90)).fit(rust_data((4,), 90))
    assert res.loglik_parts["choice"] == pytest.approx(-163.584, abs=5e-4)
    assert res.loglik_parts["transition"] == pytest.approx(-3140.571, abs=5e-4)


# ------------------------------------------------------------------ membership recovery
@pytest.fixture(scope="module")
def membership_panel():
    model = ddc.models.membership()
    return model, simulate(model, model.true_params, n_customers=20_000, n_periods=36, seed=11)


# With 6 parameters and a family-wise level of 1e-4, each |z| must stay below the two-sided
# Bonferroni bound (4.31).
Z_MAX = float(norm.isf(1e-4 / (2 * 6)))


@pytest.mark.parametrize("estimator", [
    pytest.param(lambda m: NFXP(m), id="NFXP"),
    pytest.param(lambda m: CCP(m), id="CCP-frequency"),
    pytest.param(lambda m: NPL(m), id="NPL"),
])
def test_membership_recovery(membership_panel, estimator):
    model, panel = membership_panel
    res = estimator(model).fit(panel)
    assert res.converged
    z = (res.params - model.true_params) / res.std_errors
    assert np.all(np.abs(z) < Z_MAX), z.to_dict()


def test_npl_fixed_point_is_the_mle(membership_panel):
    """Aguirregabiria and Mira (2002): in single-agent models the converged NPL estimate is the
    maximum likelihood estimate. Both are run to tight tolerances (NFXP: Newton decrement 1e-12,
    i.e. about 1e-6 standard errors from the maximum; NPL: steps below 1e-11), so they must agree
    to 1e-5 standard errors."""
    model, panel = membership_panel
    nfxp = NFXP(model, optimizer=Optimizer(tol=1e-12)).fit(panel)
    npl = NPL(model, tol=1e-11).fit(panel)
    assert nfxp.converged and npl.converged
    np.testing.assert_array_less(np.abs(npl.params - nfxp.params), 1e-5 * nfxp.std_errors)
    assert npl.loglik == pytest.approx(nfxp.loglik, abs=1e-8)


def test_ccp_logit_first_stage_close_to_frequency(membership_panel):
    model, panel = membership_panel
    small = panel[panel["customer_id"] % 5 == 0]  # customers of every market
    a = CCP(model, first_stage="logit").fit(small)
    b = CCP(model).fit(small)
    assert a.converged and b.converged
    assert np.all(np.abs(a.params - b.params) < 2 * b.std_errors)


# ------------------------------------------------------------------ failures and bad input
def collinear_model():
    base = ddc.models.membership()
    X = base.utility.features
    X2 = np.concatenate([X, 2.0 * X[:, :, [1]]], axis=2)  # a copy of theta_ship, doubled
    names = [*base.utility_params, "theta_ship_copy"]
    truth = pd.concat([base.true_params, pd.Series({"theta_ship_copy": 0.0})])
    return base.replace(utility=ddc.LinearUtility(X2, names), true_params=truth), base


@pytest.mark.parametrize("estimator", [NFXP, CCP, NPL], ids=lambda e: e.__name__)
def test_collinear_features_are_named(estimator):
    model, base = collinear_model()
    panel = simulate(base, base.true_params, n_customers=300, n_periods=12, seed=0)
    with pytest.raises(IdentificationError, match="theta_ship.*theta_ship_copy"):
        estimator(model).fit(panel)


def test_outer_non_convergence_is_reported():
    model = ddc.models.rust_bus(90)
    data = rust_data((4,), 90)
    with pytest.warns(ddc.ConvergenceWarning, match="NFXP did not converge"):
        res = NFXP(model, optimizer=Optimizer(max_iter=2), full_information=False).fit(data)
    assert not res.converged
    with pytest.raises(ddc.ConvergenceError, match="NFXP did not converge"):
        NFXP(model, optimizer=Optimizer(max_iter=2), full_information=False,
             on_failure="raise").fit(data)


@pytest.mark.parametrize("start, error, match", [
    pytest.param({"RC": 1.0, "bogus": 2.0}, KeyError, "unknown starting value", id="unknown"),
    pytest.param({"RC": np.nan}, ValueError, "finite", id="nan"),
])
def test_bad_starting_values(start, error, match):
    with pytest.raises(error, match=match):
        NFXP(ddc.models.rust_bus(90)).fit(rust_data((4,), 90), start=start)


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"method": "newton-raphson"}, "unknown optimizer method", id="method"),
    pytest.param({"tol": -1.0}, "tol must be a positive number", id="tol"),
    pytest.param({"max_iter": 0}, "max_iter must be a positive integer", id="max_iter"),
])
def test_optimizer_configuration_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Optimizer(**kwargs)


def test_ccp_options_are_validated():
    model = ddc.models.membership()
    with pytest.raises(ValueError, match="first_stage must be"):
        CCP(model, first_stage="kernel")
    with pytest.raises(ValueError, match="smoothing must be positive"):
        CCP(model, smoothing=0.0).fit(simulate(model, model.true_params, n_customers=30,
                                               n_periods=3, seed=0))


@pytest.mark.parametrize("groups, n_states, se_rc, se_theta_11", [
    pytest.param((1, 2, 3, 4), 90, 1.227, 0.618, id="table-IX-groups-1-4"),
    pytest.param((4,), 90, 1.582, 0.639, id="table-IX-group-4"),
    pytest.param((1, 2, 3), 90, 2.602, 1.792, id="table-IX-groups-1-3"),
    pytest.param((1, 2, 3, 4), 175, 1.226, 0.315, id="table-X-175-states"),
])
def test_rust_standard_errors_are_bhhh(groups, n_states, se_rc, se_theta_11):
    """Rust's published standard errors (Tables IX and X) are those of the outer product of the
    full-information scores (BHHH), with each month's term of his likelihood
    P(d_t | x_t) p(x_t | x_{t-1}, d_{t-1}) one observation: reproduced to the printed digits
    (half a unit of the third decimal). Pairing a month's choice with the move *out* of it
    instead gives 0.63850 for group 4's theta_11 (printed 0.639) and 2.6026 for groups 1-3's RC
    (printed 2.602). The observed-information (Hessian) ones are smaller, a sign that the
    information matrix equality fails in this model and sample."""
    res = NFXP(ddc.models.rust_bus(n_states)).fit(rust_data(groups, n_states))
    assert res.converged
    se = res.std_errors_of("opg")
    assert se["RC"] == pytest.approx(se_rc, abs=5e-4)
    assert se["theta_11"] == pytest.approx(se_theta_11, abs=5e-4)


def test_transition_probability_estimated_at_zero_is_held_at_the_boundary():
    """An increment never observed gives a first-stage probability of exactly 0; the
    full-information stage cannot difference across the simplex's edge, so it holds that
    parameter at 0 (with a note) and estimates the others (found in the Su-Judd study, where
    the true probability of a 4-bin move is .0002)."""
    from simulations.studies import add_bus_increments

    truth_model = ddc.models.rust_bus(n_states=90, beta=0.99, theta_3=(0.4, 0.0))
    panel = simulate(truth_model, truth_model.true_params, n_customers=60, n_periods=80, seed=3)
    panel = add_bus_increments(panel, truth_model)
    model = ddc.models.rust_bus(n_states=90, beta=0.99)
    res = NFXP(model, drop_first=False).fit(panel)
    assert res.converged
    assert "theta_31" not in res.params.index
    assert res.fixed_params["theta_31"] == 0.0
    assert "theta_30" in res.params.index and np.isfinite(res.std_errors["theta_30"])
    assert any("boundary" in n for n in res.notes)


def _bus_joint_loglik(model, n_sa, n_inc, x):
    """Rust's joint log-likelihood and its gradient at ``x = (RC, theta_11, p0, p1)`` with
    three increments (``p2 = 1 - p0 - p1``), written from scratch for the tests: the bus's
    transition matrices, a Newton solve of the integrated Bellman equation and the implicit
    function theorem (only the utility's features are read from the model)."""
    S, beta = model.n_states, model.beta
    X = model.utility.jacobian(x[:2])  # (S, A, 2): the features of RC and theta_11
    u = X @ x[:2]
    rows = np.arange(S)

    def mats(q):  # keep: up by j bins w.p. q_j, piled at the top; replace: as from bin 0
        keep = np.zeros((S, S))
        for j, qj in enumerate(q):
            np.add.at(keep, (rows, np.minimum(rows + j, S - 1)), qj)
        return np.stack([keep, np.broadcast_to(keep[0], (S, S))])

    p = np.array([x[2], x[3], 1.0 - x[2] - x[3]])
    P = mats(p)
    dP = [mats([1.0, 0.0, -1.0]), mats([0.0, 1.0, -1.0])]  # d/dp0, d/dp1
    V = np.zeros(S)
    for _ in range(100):
        v = u + beta * np.einsum("axy,y->xa", P, V)
        top = v.max(axis=1)
        V_new = top + np.log(np.exp(v - top[:, None]).sum(axis=1))
        resid = V_new - V
        if np.abs(resid).max() < 1e-13 * max(1.0, np.abs(V).max()):
            break
        pi = np.exp(v - V_new[:, None])
        V = V + np.linalg.solve(np.eye(S) - beta * np.einsum("xa,axy->xy", pi, P), resid)
    v = u + beta * np.einsum("axy,y->xa", P, V)
    top = v.max(axis=1)
    V = top + np.log(np.exp(v - top[:, None]).sum(axis=1))
    pi = np.exp(v - V[:, None])
    seen = n_inc > 0
    ll = float(np.sum(n_sa * np.log(pi)) + n_inc[seen] @ np.log(p[seen]))
    direct = np.concatenate([X, beta * np.stack([np.einsum("axy,y->xa", d, V) for d in dP],
                                                axis=2)], axis=2)
    Ppi = np.einsum("xa,axy->xy", pi, P)
    dV = np.linalg.solve(np.eye(S) - beta * Ppi, np.einsum("xa,xak->xk", pi, direct))
    dv = direct + beta * np.einsum("axy,yk->xak", P, dV)
    dlogpi = dv - np.einsum("xa,xak->xk", pi, dv)[:, None, :]
    g = np.einsum("xa,xak->k", n_sa, dlogpi)
    g[2:] += [n_inc[j] / p[j] - (n_inc[2] / p[2] if seen[2] else 0.0) for j in (0, 1)]
    return ll, g


@pytest.fixture(scope="module")
def never_seen_last_increment():
    """A Rust-bus panel whose last (implied) increment is never observed: theta_3 = (.4, .6)."""
    from simulations.studies import add_bus_increments

    truth_model = ddc.models.rust_bus(n_states=90, beta=0.99, theta_3=(0.4, 0.6))
    panel = simulate(truth_model, truth_model.true_params, n_customers=60, n_periods=80, seed=3)
    panel = add_bus_increments(panel, truth_model)
    model = ddc.models.rust_bus(n_states=90, beta=0.99)
    counts = np.bincount(panel["increment"].dropna().astype(int), minlength=3)
    assert counts[2] == 0 and counts[:2].min() > 0
    n_sa = np.zeros((model.n_states, 2))
    np.add.at(n_sa, (panel["mileage"].to_numpy(int),
                     (panel["action"] == "replace").to_numpy(int)), 1.0)
    return model, panel, counts, n_sa, NFXP(model, drop_first=False).fit(panel)


def test_full_information_holds_only_the_implied_last_increment_when_never_seen(
        never_seen_last_increment, tmp_path):
    """Rust's layout makes the last increment probability 1 - sum of the parameters. When that
    increment is never observed its estimate is 0, on the simplex boundary: full information
    holds it there (it is not a parameter; the notes say so) and estimates everything else
    jointly, moving the increment probabilities only along directions that keep their sum at 1.
    This replaces the fallback to two-step of issue 11 (its test asserted the fallback; the
    API deliberately changed): ``res.extra["fallback"]`` is now empty here."""
    model, panel, counts, _, res = never_seen_last_increment
    two = NFXP(model, drop_first=False, full_information=False).fit(panel)
    assert res.converged
    assert res.extra["fallback"] == ""
    assert not any("fell back" in n for n in res.notes)
    assert res.extra["implied_held"] == "1 - (theta_30 + theta_31) = 0"
    assert any("implied last probability 1 - (theta_30 + theta_31) = 0" in n
               and "held there" in n for n in res.notes)
    assert list(res.params.index) == ["RC", "theta_11", "theta_30", "theta_31"]
    assert len(res.fixed_params) == 0
    # three directions moved (RC, theta_11 and one along theta_30 - theta_31): AIC/BIC count 3
    assert res.df_model == 3 and res.n_params == 4
    assert res.aic == pytest.approx(-2 * res.loglik + 6, rel=1e-14)
    assert re.search(r"No\. parameters: +4 \(3 free\)", str(res.summary()))
    from estimators import load_results

    back = load_results(res.save(tmp_path / "boundary.json"), model)
    assert back.df_model == 3 and back.aic == res.aic
    np.testing.assert_array_equal(back.cov.to_numpy(), res.cov.to_numpy())
    assert res.params["theta_30"] + res.params["theta_31"] == pytest.approx(1.0, abs=1e-13)
    # the covariance is that of the one free direction: the two probabilities move together
    V = res.cov.to_numpy()
    assert V[2, 2] == pytest.approx(V[3, 3], rel=1e-10)
    assert V[2, 3] == pytest.approx(-V[2, 2], rel=1e-10)
    assert np.all(np.isfinite(res.std_errors)) and np.all(res.std_errors > 0)
    for kind in ("opg", "sandwich", "cluster"):
        assert np.all(np.isfinite(res.std_errors_of(kind)))
    # full information moved the estimate from two-step and raised the joint likelihood
    assert res.loglik > two.loglik
    assert not np.allclose(res.params[["RC", "theta_11"]], two.params, rtol=1e-8)
    assert two.extra["fallback"] == ""  # two-step asked for: nothing fell back


def test_boundary_full_information_equals_a_constrained_scipy_maximum(
        never_seen_last_increment):
    """The estimate with the implied last increment held at 0 is the maximum of the joint
    likelihood on {p0 + p1 = 1}: the gradient of a from-scratch likelihood
    (:func:`_bus_joint_loglik`) is ~0 in the free directions there (measured: 2e-10 in the
    utility parameters, 4e-7 along p0 - p1, against 4.7e3 off the constraint; Newton decrement
    below the optimizer's 1e-8), and scipy's SLSQP with that
    equality constraint, started elsewhere, finds the same point (parameters and log-likelihood
    to ~1e-8) and the same standard errors (its Hessian on the constraint by differences of
    the exact gradient)."""
    from scipy.optimize import minimize

    model, _, counts, n_sa, res = never_seen_last_increment
    names = ["RC", "theta_11", "theta_30", "theta_31"]
    x_hat = res.params[names].to_numpy()
    ll, g = _bus_joint_loglik(model, n_sa, counts, x_hat)
    assert ll == pytest.approx(res.loglik, abs=1e-8)
    D = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1 / np.sqrt(2)], [0, 0, -1 / np.sqrt(2)]])
    # the Hessian on the constraint, -(D' H D), by central differences of the exact gradient
    Hz = np.empty((3, 3))
    for k in range(3):
        h = 1e-5 * D[:, k] * max(1.0, abs(x_hat @ D[:, k]))
        Hz[:, k] = (D.T @ (_bus_joint_loglik(model, n_sa, counts, x_hat + h)[1]
                           - _bus_joint_loglik(model, n_sa, counts, x_hat - h)[1])
                    / (2 * np.linalg.norm(h)))
    Hz = 0.5 * (Hz + Hz.T)
    # first-order conditions on the constraint: the Newton decrement of the from-scratch
    # gradient in the free directions is below the optimizer's stopping rule (1e-8) ...
    g_free = D.T @ g
    assert g_free @ np.linalg.solve(-Hz, g_free) < NFXP(model).optimizer.tol, g_free
    # ... while off it the gradient is large: the multiplier of p0 + p1 = 1
    assert g[2] == pytest.approx(g[3], rel=1e-9) and abs(g[2]) > 1.0

    def negative(x):
        f, grad = _bus_joint_loglik(model, n_sa, counts, x)
        return -f, -grad

    x0 = np.array([x_hat[0] + 1.0, x_hat[1] - 0.5, 0.45, 0.55])
    sol = minimize(negative, x0, jac=True, method="SLSQP",
                   bounds=[(None, None), (None, None), (1e-9, 1.0), (1e-9, 1.0)],
                   constraints=[{"type": "eq", "fun": lambda x: x[2] + x[3] - 1.0,
                                 "jac": lambda x: np.array([0.0, 0.0, 1.0, 1.0])}],
                   options={"ftol": 1e-16, "maxiter": 500})
    assert sol.success, sol.message
    np.testing.assert_allclose(sol.x, x_hat, rtol=0, atol=1e-8)
    assert -sol.fun == pytest.approx(res.loglik, abs=1e-8)
    # standard errors: (-D' H D)^-1 mapped back by D
    se = np.sqrt(np.diag(D @ np.linalg.inv(-Hz) @ D.T))
    np.testing.assert_allclose(res.std_errors[names].to_numpy(), se, rtol=1e-5)


def test_nfxp_from_out_of_core_sufficient_statistics(tmp_path):
    """NFXP on sufficient statistics reduced out of core (Parquet, in small chunks) gives the
    estimate of the in-memory panel exactly: the likelihood only needs the counts."""
    from ddc.outofcore import sufficient_statistics

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=1500, n_periods=24, seed=5)
    path = tmp_path / "panel.parquet"
    panel.to_parquet(path)
    stats = sufficient_statistics(model, path, chunk_rows=5_000)
    a = NFXP(model).fit(panel)
    b = NFXP(model).fit(stats)
    np.testing.assert_allclose(b.params, a.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.std_errors, a.std_errors, rtol=1e-8)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-8)


@pytest.mark.parametrize("estimator", [CCP, NPL, PQR, MaxEntIRL], ids=lambda e: e.__name__)
def test_count_estimators_take_sufficient_statistics(estimator):
    """The data protocol: every estimator whose point estimate needs only the counts n(s, a)
    gives the same estimate from out-of-core sufficient statistics as from the panel."""
    from ddc.outofcore import sufficient_statistics

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=800, n_periods=24, seed=5)
    stats = sufficient_statistics(model, panel, chunk_rows=3_000)
    a = estimator(model).fit(panel)
    b = estimator(model).fit(stats)
    np.testing.assert_allclose(b.params, a.params, rtol=0, atol=1e-8)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-6)
    assert b.converged and b.nobs == a.nobs and b.n_units == a.n_units
    assert np.all(np.isfinite(b.std_errors))


@pytest.mark.parametrize("make, match", [
    pytest.param(lambda m: PQR(m, bootstrap=5), "PQR's bootstrap over units needs", id="pqr-boot"),
    pytest.param(lambda m: MaxEntIRL(m, feature_counts="horizon"), "horizon.*needs",
                 id="maxent-horizon"),
])
def test_row_estimators_name_what_needs_rows(make, match):
    from ddc.data import RowsUnavailable
    from ddc.outofcore import sufficient_statistics

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=200, n_periods=12, seed=5)
    with pytest.raises(RowsUnavailable, match=match):
        make(model).fit(sufficient_statistics(model, panel))


def test_nfxp_bus_from_sufficient_statistics_reproduces_group_4():
    from ddc.outofcore import sufficient_statistics

    data = rust_data((4,), 90)
    res = NFXP(ddc.models.rust_bus(90)).fit(sufficient_statistics(ddc.models.rust_bus(90), data))
    assert res.loglik == pytest.approx(-3304.155, abs=5e-4)
    assert res.params["RC"] == pytest.approx(10.075, abs=half_unit_4th_digit(10.075))


# ------------------------------------------------------------------ the data protocol
@pytest.mark.parametrize("drop_first", [False, True], ids=["all-rows", "drop-first"])
def test_panel_and_sufficient_statistics_implement_one_protocol(drop_first):
    """ddc.data: a panel in memory and out-of-core sufficient statistics answer the same
    questions with the same numbers; what only rows can answer is refused by name."""
    from ddc.data import PanelData, RowsUnavailable, StatisticsData, estimation_data
    from ddc.outofcore import sufficient_statistics

    bus = ddc.models.rust_bus(90)
    frame = rust_data((4,), 90)
    mem = estimation_data(bus, frame, drop_first=drop_first)
    out = estimation_data(bus, sufficient_statistics(bus, frame, chunk_rows=1_000),
                          drop_first=drop_first)
    assert isinstance(mem, PanelData) and isinstance(out, StatisticsData)
    np.testing.assert_array_equal(mem.counts, out.counts)
    assert (mem.nobs, mem.n_units) == (out.nobs, out.n_units)
    assert mem.nobs == int(mem.counts.sum())
    for field in ("s", "a", "s_next", "n"):
        np.testing.assert_array_equal(getattr(mem.transition_counts, field),
                                      getattr(out.transition_counts, field))
    J = len(bus.transition_params) + 1
    np.testing.assert_array_equal(mem.column_counts("increment", J),
                                  out.column_counts("increment", J))
    # per-unit counts add up to the counts; rows are those of the choice sample
    U = mem.unit_counts()
    assert U.shape == (mem.n_units, bus.n_states * bus.n_actions)
    np.testing.assert_array_equal(np.asarray(U.sum(axis=0)).reshape(mem.counts.shape),
                                  mem.counts)
    assert mem.rows().state.size == mem.nobs
    for ask in (out.rows, out.unit_counts, lambda: out.column("increment")):
        with pytest.raises(RowsUnavailable, match="sufficient statistics"):
            ask()
    assert estimation_data(bus, mem, drop_first=drop_first) is mem
    with pytest.raises(ValueError, match="drop_first"):
        estimation_data(bus, mem, drop_first=not drop_first)


def test_data_protocol_names_a_bad_extra_column_value():
    from ddc.data import estimation_data

    bus = ddc.models.rust_bus(90)
    frame = rust_data((4,), 90).copy()
    frame.loc[frame.index[10], "increment"] = 7
    data = estimation_data(bus, frame)
    with pytest.raises(ValueError,
                       match=r"column 'increment' has value 7 at row 10 \(bus_id=5297, month="):
        data.column_counts("increment", len(bus.transition_params) + 1)
    with pytest.raises(KeyError, match="'fuel'"):
        data.column("fuel")
    with pytest.raises(TypeError, match="data must be a long panel"):
        estimation_data(bus, frame.to_numpy())


def test_full_information_falls_back_when_a_parametric_simplex_group_is_held_whole():
    """The generic parametric first stage (``SimplexParameters`` groups) holds a group whose
    implied last probability is on the boundary whole (its central differences cannot step
    along the edge). When that leaves no transition parameter free, NFXP's full information is
    the two-step estimator, and ``res.extra["fallback"]`` says so (the family case above no
    longer falls back)."""
    from models_entry import entry_model

    from ddc.transition_families import SimplexParameters

    chain = np.tile([0.3, 0.4, 0.3, 0.0], (4, 1))  # demand level 3 is never reached

    def transitions(tp):
        q = tp[["q0", "q1", "q2"]].to_numpy(dtype=float)
        if np.any(q < 0) or q.sum() > 1 + 1e-12:
            raise ValueError(f"q must lie in the simplex, got {q}")
        row = np.append(q, max(0.0, 1.0 - q.sum()))
        return ddc.FactoredTransitions([base.transitions().factors[0],
                                        ddc.Factor("demand", np.tile(row, (4, 1)))])

    base = entry_model(demand_chain=chain)
    model = base.replace(transitions=transitions,
                         transition_params=pd.Series({"q0": 0.25, "q1": 0.25, "q2": 0.25}),
                         true_params=pd.concat([base.true_params,
                                                pd.Series({"q0": 0.3, "q1": 0.4, "q2": 0.3})]),
                         hooks=base.hooks.replace(
                             transition_family=SimplexParameters(["q0", "q1", "q2"])))
    panel = simulate(base, base.true_params, n_customers=300, n_periods=20, seed=1)
    assert not (panel["demand"] == 3).any()
    res = NFXP(model).fit(panel)
    two = NFXP(model, full_information=False).fit(panel)
    assert res.converged
    assert res.extra["fallback"].startswith(
        "full information fell back to two-step because the implied last probability of the "
        "simplex group(s) [['q0', 'q1', 'q2']] is on the boundary")
    assert list(res.params.index) == ["theta_d", "FC"]
    np.testing.assert_array_equal(res.params.to_numpy(), two.params.to_numpy())
    assert two.extra["fallback"] == ""
