"""Tests of the panel simulator and the stationary distribution (``simulations``).

Statistical checks compare simulated frequencies with the stationary distribution within
``Z_FAMILY`` standard errors computed across customers (customers are independent; months within
a customer are not, so the per-customer average is the unit of observation), with a Bonferroni
bound over the cells compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import norm

import ddc
from ddc import Factor, FactoredTransitions, LinearUtility, Model, StateVariable
from ddc.kernels import bellman as kb
from ddc.kernels import bellman_numpy as kbn
from ddc.panel import Columns, prepare
from simulations import (
    MultipleRecurrentClassesError,
    permanent_variables,
    simulate,
    stationary_distribution,
    stationary_from_policy,
)
from simulations import _kernels as kern
from simulations import _kernels_numpy as kern_np
from simulations.simulate import allocate

ALPHA_FAMILY = 1e-3  # family-wise false-alarm probability of each statistical test


def z_bonferroni(n_cells: int) -> float:
    """Two-sided normal critical value for ``n_cells`` comparisons at ``ALPHA_FAMILY``."""
    return float(norm.ppf(1.0 - ALPHA_FAMILY / (2.0 * n_cells)))


@pytest.fixture(scope="module")
def membership():
    model = ddc.models.membership()
    return model, model.solve(model.true_params)


@pytest.fixture(scope="module")
def bus():
    model = ddc.models.rust_bus(n_states=90)
    return model, model.solve(model.true_params)


def _big_membership():
    model = ddc.models.membership(n_ship=4, n_video=3, lock_months=6)
    return model, model.solve(model.true_params)


def _dense_policy_matrix(model, sol):
    return kbn.policy_matrix(sol.pi, model.compiled_transitions(sol.params))


# ----------------------------------------------------------------------------- kernel vs twin
@pytest.mark.parametrize("which", ["membership", "bus", "membership_4x3"])
def test_kernel_equals_numpy_twin(which, membership, bus):
    model, sol = {"membership": membership, "bus": bus}.get(which) or _big_membership()
    ct = model.compiled_transitions(sol.params)
    trans = tuple(ct)[2:]
    rng = np.random.default_rng(11)
    n, T = 500, 30
    U = rng.random((n, T, 1 + len(ct.f_stride)))
    # edge uniforms: exactly 0 and the largest double below 1 (the round-off fallback)
    U[:20] = 0.0
    U[20:40] = np.nextafter(1.0, 0.0)
    s0 = rng.integers(0, model.n_states, size=n)
    states, actions = kern.simulate_codes(s0, U, sol.pi, *trans)
    states_np, actions_np = kern_np.simulate_codes(s0, U, sol.pi, *trans)
    np.testing.assert_array_equal(states, states_np)
    np.testing.assert_array_equal(actions, actions_np)
    # never an infeasible action, and every transition has positive probability
    assert model.feasible[states, actions].all()
    P = [kbn.transition_matrix(ct, a) for a in range(model.n_actions)]
    s, a, s_next = states[:, :-1].ravel(), actions[:, :-1].ravel(), states[:, 1:].ravel()
    probs = np.array([P[ai][si, sj] for si, ai, sj in zip(s, a, s_next, strict=True)])
    assert (probs > 0).all()


def test_kernel_draws_first_positive_entry_at_zero_and_last_at_one():
    """u = 0 draws the first value with positive probability; u -> 1 the last one."""
    model, sol = _two_state_model()
    ct = model.compiled_transitions()
    pi = np.array([[0.0, 1.0], [0.3, 0.7]])
    U = np.zeros((2, 2, 2))
    U[1] = np.nextafter(1.0, 0.0)
    states, actions = kern.simulate_codes(np.array([0, 0]), U, pi, *tuple(ct)[2:])
    assert actions[:, 0].tolist() == [1, 1]  # pi(0|0) = 0 is never drawn, even at u = 0
    assert states[:, 1].tolist() == [0, 1]


def _two_state_model():
    X = np.zeros((2, 2, 1))
    X[:, 1, 0] = 1.0
    model = Model([StateVariable("x", (0, 1))], ["stay", "go"], LinearUtility(X, ["theta"]),
                  FactoredTransitions([Factor("x", np.full((2, 2), 0.5))]), beta=0.9,
                  true_params=pd.Series({"theta": 0.5}))
    return model, model.solve(model.true_params)


# ----------------------------------------------------------------------------- seeding
def test_same_seed_same_panel(membership):
    model, sol = membership
    a = simulate(model, sol, n_customers=300, n_periods=12, seed=42)
    b = simulate(model, sol, n_customers=300, n_periods=12, seed=42)
    pd.testing.assert_frame_equal(a, b)
    c = simulate(model, sol, n_customers=300, n_periods=12, seed=43)
    assert not a.equals(c)


@pytest.mark.parametrize("seed", [
    pytest.param(np.random.default_rng(7), id="generator"),
    pytest.param(np.random.SeedSequence(7), id="seedsequence"),
])
def test_seed_types(membership, seed):
    model, sol = membership
    ref = simulate(model, sol, n_customers=100, n_periods=6, seed=7)
    pd.testing.assert_frame_equal(simulate(model, sol, n_customers=100, n_periods=6, seed=seed),
                                  ref)


def test_params_or_solution(membership):
    model, sol = membership
    from_params = simulate(model, model.true_params, n_customers=50, n_periods=5, seed=3)
    pd.testing.assert_frame_equal(from_params,
                                  simulate(model, sol, n_customers=50, n_periods=5, seed=3))


# ----------------------------------------------------------------------------- panel layout
def test_panel_layout(membership):
    model, sol = membership
    panel = simulate(model, sol, n_customers=31, n_periods=7, seed=0)
    assert list(panel.columns) == ["customer_id", "month", "market", "plan", "ship", "video",
                                   "action"]
    assert len(panel) == 31 * 7
    assert panel["month"].tolist() == list(range(7)) * 31
    assert panel["customer_id"].tolist() == list(np.repeat(np.arange(31), 7))
    assert list(panel["plan"].cat.categories) == list(model.space.variable("plan").values)
    assert list(panel["action"].cat.categories) == list(model.actions)
    for col in ("customer_id", "month", "market", "ship", "video"):
        assert panel[col].dtype == np.int64, col
    # equal numbers per market (31 = 11 + 10 + 10), market constant within a customer
    per_market = panel.groupby("market").customer_id.nunique()
    assert per_market.tolist() == [11, 10, 10]
    assert (panel.groupby("customer_id").market.nunique() == 1).all()
    # feasibility: locked annual months choose annual
    locked = panel["plan"].astype(str).str.startswith("annual_")
    assert (panel.loc[locked, "action"] == "annual").all()


def test_panel_follows_plan_transitions(membership):
    """The plan moves deterministically: monthly -> member, annual -> annual_11 ... -> member."""
    model, sol = membership
    panel = simulate(model, sol, n_customers=400, n_periods=15, seed=1)
    nxt = panel.groupby("customer_id")["plan"].shift(-1)
    plans = list(model.space.variable("plan").values)
    expected = {("none", "none"): "none", ("member", "none"): "none",
                ("none", "monthly"): "member", ("member", "monthly"): "member",
                ("none", "annual"): "annual_11", ("member", "annual"): "annual_11",
                ("annual_1", "annual"): "member"}
    for r in range(11, 1, -1):
        expected[(f"annual_{r}", "annual")] = f"annual_{r - 1}"
    have = nxt.notna()
    got = [expected[(p, a)] for p, a in zip(panel.loc[have, "plan"].astype(str),
                                            panel.loc[have, "action"].astype(str), strict=True)]
    assert got == nxt[have].astype(str).tolist()
    assert set(panel["plan"].astype(str)) <= set(plans)


def test_rust_bus_panel_uses_the_layout_and_the_column_mapping(bus):
    model, sol = bus
    panel = simulate(model, sol, n_customers=20, n_periods=10, seed=0)
    assert list(panel.columns) == ["bus_id", "month", "mileage", "action"]
    assert list(panel["action"].cat.categories) == ["keep", "replace"]
    cols = Columns(id_col="bus", time_col="yyyymm", action_col="choice",
                   states={"mileage": "odometer"})
    panel2 = simulate(model, sol, n_customers=20, n_periods=10, seed=0, columns=cols)
    assert list(panel2.columns) == ["bus", "yyyymm", "odometer", "choice"]
    pd.testing.assert_frame_equal(panel2.set_axis(panel.columns, axis=1), panel)
    # the same mapping reads it back, to the same coded panel
    np.testing.assert_array_equal(prepare(model, panel2, columns=cols).state,
                                  prepare(model, panel).state)
    with pytest.raises(KeyError, match="not state variables"):
        simulate(model, sol, n_customers=2, n_periods=2, columns={"miles": "x"})
    with pytest.raises(ValueError, match="more than one column"):
        simulate(model, sol, n_customers=2, n_periods=2, columns=Columns(id_col="mileage"))
    # after a replacement the mileage restarts from the bottom bins (increments 0, 1, 2)
    nxt = panel.groupby("bus_id")["mileage"].shift(-1)
    after = nxt[(panel["action"] == "replace") & nxt.notna()]
    assert (after <= 2).all()


# ----------------------------------------------------------------------------- initial states
def test_initial_distribution_point_mass(membership):
    model, sol = membership
    s = int(model.space.flat_index(market=2, plan="none", ship=0, video=1))
    p = np.zeros(model.n_states)
    p[s] = 1.0
    panel = simulate(model, sol, n_customers=25, n_periods=3, seed=0, initial=p)
    first = panel[panel.month == 0]
    assert (first.market == 2).all() and (first.plan == "none").all()
    assert (first.ship == 0).all() and (first.video == 1).all()
    as_series = pd.Series(p, index=model.space.index)
    pd.testing.assert_frame_equal(
        simulate(model, sol, n_customers=25, n_periods=3, seed=0, initial=as_series), panel)


def test_initial_states_frame(membership):
    model, sol = membership
    init = pd.DataFrame({"customer_id": [101, 7, 55], "market": [0, 1, 2],
                         "plan": ["annual_3", "member", "none"], "ship": [2, 0, 1],
                         "video": [1, 0, 0]})
    panel = simulate(model, sol, n_periods=4, seed=5, initial=init)
    first = panel[panel.month == 0].reset_index(drop=True)
    assert first["customer_id"].tolist() == [101, 7, 55]
    assert first["plan"].astype(str).tolist() == ["annual_3", "member", "none"]
    assert panel[panel.customer_id == 101]["plan"].astype(str).tolist() == [
        "annual_3", "annual_2", "annual_1", "member"]
    # integer codes of the string-valued plan are accepted too
    codes = init.assign(plan=[10, 1, 0])
    pd.testing.assert_frame_equal(simulate(model, sol, n_periods=4, seed=5, initial=codes),
                                  panel)


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"initial": pd.DataFrame({"market": [0], "plan": ["gold"], "ship": [0],
                                           "video": [0]})}, "'plan', row 0 has the value 'gold'",
                 id="bad-label"),
    pytest.param({"initial": pd.DataFrame({"market": [0], "ship": [0], "video": [0]})},
                 "lacks the state variable column", id="missing-column"),
    pytest.param({"initial": np.full(234, 1.0)}, "sums to 234", id="not-a-distribution"),
    pytest.param({"n_periods": 0}, "n_periods must be a positive integer", id="n-periods"),
    pytest.param({"n_customers": -3}, "n_customers must be a positive integer", id="n-customers"),
    pytest.param({"weights": {0: 1.0, 1: 1.0, 5: 1.0}}, "not values of the permanent",
                 id="weights-unknown"),
])
def test_simulate_errors(membership, kwargs, match):
    model, sol = membership
    with pytest.raises((ValueError, KeyError), match=match):
        simulate(model, sol, **kwargs)


def test_allocate():
    assert allocate(10, np.full(3, 1 / 3)).tolist() == [4, 3, 3]
    assert allocate(9, np.full(3, 1 / 3)).tolist() == [3, 3, 3]
    assert allocate(7, np.array([0.5, 0.0, 0.5])).tolist() == [4, 0, 3]


# ----------------------------------------------------------------------------- stationarity
def test_permanent_variables(membership, bus):
    assert permanent_variables(membership[0]) == ("market",)
    assert permanent_variables(bus[0]) == ()
    still = Model([StateVariable("a", (0, 1)), StateVariable("b", ("x", "y"))], ["go"],
                  LinearUtility(np.zeros((4, 1, 1)), ["theta"]), FactoredTransitions([]),
                  beta=0.5)
    assert permanent_variables(still) == ("a", "b")
    mu = stationary_from_policy(still, np.ones((4, 1)), weights={(0, "x"): 1, (0, "y"): 1,
                                                                (1, "x"): 2, (1, "y"): 0})
    np.testing.assert_allclose(mu, [0.25, 0.25, 0.5, 0.0], atol=1e-15)


@pytest.mark.parametrize("which", ["membership", "bus", "membership_4x3"])
def test_stationary_is_invariant(which, membership, bus):
    model, sol = {"membership": membership, "bus": bus}.get(which) or _big_membership()
    mu = stationary_distribution(sol)
    assert mu.index.equals(model.space.index)
    assert (mu >= 0).all()
    rows, cols, vals = kb.policy_matrix_coo(sol.pi, *tuple(model.compiled_transitions())[2:])
    P = sp.csr_matrix((vals, (rows, cols)), shape=(model.n_states,) * 2)
    np.testing.assert_allclose(P.T @ mu.to_numpy(), mu.to_numpy(), rtol=0, atol=1e-12)
    assert abs(mu.sum() - 1.0) < 1e-12
    if "market" in model.space.names:
        np.testing.assert_allclose(mu.groupby(level="market").sum() * model.space.shape[0], 1.0,
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("which", ["membership", "bus"])
def test_stationary_matches_dense_eigenvector(which, membership, bus):
    """Per block (market), the left eigenvector of the dense P_pi for eigenvalue 1."""
    model, sol = {"membership": membership, "bus": bus}[which]
    P = _dense_policy_matrix(model, sol)
    blocks = (model.space.code_of("market") if "market" in model.space.names
              else np.zeros(model.n_states, dtype=int))
    n_blocks = blocks.max() + 1
    expected = np.zeros(model.n_states)
    for c in range(n_blocks):
        idx = np.flatnonzero(blocks == c)
        vals, vecs = np.linalg.eig(P[np.ix_(idx, idx)].T)
        k = np.argmin(np.abs(vals - 1.0))
        v = np.real(vecs[:, k])
        expected[idx] = v / v.sum() / n_blocks
    mu = stationary_distribution(sol).to_numpy()
    np.testing.assert_allclose(mu, expected, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("method", ["gmres", "power"])
@pytest.mark.parametrize("which", ["membership", "bus", "membership_4x3"])
def test_matrix_free_methods_agree_with_direct(which, method, membership, bus):
    model, sol = {"membership": membership, "bus": bus}.get(which) or _big_membership()
    direct = stationary_from_policy(model, sol.pi, method="direct")
    other = stationary_from_policy(model, sol.pi, method=method)
    np.testing.assert_allclose(other, direct, rtol=0, atol=1e-12)


def test_stationary_weights(membership):
    model, sol = membership
    mu = stationary_distribution(sol, weights={0: 2.0, 1: 1.0, 2: 1.0})
    np.testing.assert_allclose(mu.groupby(level="market").sum(), [0.5, 0.25, 0.25], atol=1e-14)
    equal = stationary_distribution(sol)
    # within a market the conditional distribution does not depend on the weights
    np.testing.assert_allclose(mu.xs(1, level="market") * 4, equal.xs(1, level="market") * 3,
                               rtol=1e-12, atol=1e-15)
    pd.testing.assert_series_equal(stationary_distribution((model, model.true_params)), equal)
    with pytest.raises(KeyError, match=r"miss the block\(s\) \[2\]"):
        stationary_distribution(sol, weights={0: 1.0, 1: 1.0})
    with pytest.raises(ValueError, match="weight of block 1 is -1.0"):
        stationary_distribution(sol, weights={0: 1.0, 1: -1.0, 2: 1.0})


def _absorbing_model():
    """x in {0, 1, 2, 3}: 1 -> 0 or 2; 0 and 2 absorbing; 3 -> 0 (two recurrent classes)."""
    T = np.array([[1, 0, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=float)
    return Model([StateVariable("x", (0, 1, 2, 3))], ["go"],
                 LinearUtility(np.zeros((4, 1, 1)), ["theta"]),
                 FactoredTransitions([Factor("x", T)]), beta=0.5)


def test_multiple_recurrent_classes_raise():
    model = _absorbing_model()
    with pytest.raises(MultipleRecurrentClassesError, match="2 recurrent classes"):
        stationary_from_policy(model, np.ones((4, 1)))


def test_transient_states_get_zero_mass():
    T = np.array([[0.5, 0.5, 0], [0.2, 0.8, 0], [1.0, 0, 0]])
    model = Model([StateVariable("x", ("a", "b", "c"))], ["go"],
                  LinearUtility(np.zeros((3, 1, 1)), ["theta"]),
                  FactoredTransitions([Factor("x", T)]), beta=0.5)
    mu = stationary_from_policy(model, np.ones((3, 1)))
    np.testing.assert_allclose(mu, [2 / 7, 5 / 7, 0.0], rtol=1e-14)
    assert mu[2] == 0.0


# ----------------------------------------------------------------------------- moments
def _flat_states(model, panel: pd.DataFrame) -> np.ndarray:
    flat = np.zeros(len(panel), dtype=np.int64)
    for j, var in enumerate(model.space.variables):
        codes = pd.Categorical(panel[var.name], categories=list(var.values)).codes
        assert (codes >= 0).all(), var.name
        flat += codes.astype(np.int64) * model.space.strides[j]
    return flat


def _frequency_z(keys: np.ndarray, customers: np.ndarray, n_customers: int, n_periods: int,
                 expected: np.ndarray) -> np.ndarray:
    """|empirical frequency - expected| / standard error, per cell.

    The frequency of cell k is the mean over customers of c_i(k), the share of customer i's
    months in cell k; its standard error is sd_i(c_i(k)) / sqrt(n), floored at the i.i.d.
    binomial error sqrt(p (1 - p) / (n T)) (a lower bound: positive serial correlation only
    increases the variance) so that empty cells are judged too.
    """
    K = expected.size
    pair, counts = np.unique(customers * K + keys, return_counts=True)
    cell = pair % K
    share = counts / n_periods
    mean = np.bincount(cell, weights=share, minlength=K) / n_customers
    second = np.bincount(cell, weights=share ** 2, minlength=K) / n_customers
    var = np.maximum(second - mean ** 2, 0.0) * n_customers / (n_customers - 1)
    se = np.sqrt(var / n_customers)
    floor = np.sqrt(expected * (1 - expected) / (n_customers * n_periods))
    se = np.maximum(se, floor)
    return np.abs(mean - expected) / np.where(se > 0, se, np.inf)


@pytest.mark.parametrize("which, n_customers, n_periods", [
    pytest.param("membership", 20_000, 24, id="membership-20000x24"),
    pytest.param("bus", 4_000, 24, id="bus-4000x24"),
])
def test_simulated_frequencies_match_stationary(which, n_customers, n_periods, membership, bus):
    model, sol = {"membership": membership, "bus": bus}[which]
    mu = stationary_distribution(sol).to_numpy()
    panel = simulate(model, sol, n_customers=n_customers, n_periods=n_periods, seed=2024)
    s = _flat_states(model, panel)
    a = panel["action"].cat.codes.to_numpy().astype(np.int64)
    cust = panel[model.hooks.layout.id_col].to_numpy()
    S, A = model.n_states, model.n_actions
    z_states = _frequency_z(s, cust, n_customers, n_periods, mu)
    assert z_states.max() < z_bonferroni(S), (z_states.max(), np.argmax(z_states))
    expected_sa = (mu[:, None] * sol.pi).ravel()
    z_sa = _frequency_z(s * A + a, cust, n_customers, n_periods, expected_sa)
    n_cells = int((sol.pi > 0).sum())
    assert z_sa.max() < z_bonferroni(n_cells), (z_sa.max(), np.argmax(z_sa))
    # no mass where the stationary distribution or the policy has none
    assert (expected_sa[np.unique(s * A + a)] > 0).all()


def test_simulate_speed(membership):
    """10,000 customers x 36 months: well under a second once compiled."""
    import time

    model, sol = membership
    simulate(model, sol, n_customers=10, n_periods=2, seed=0)  # compile / warm up
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        simulate(model, sol, n_customers=10_000, n_periods=36, seed=0)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, best
