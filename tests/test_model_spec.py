"""Model specification: inconsistent models fail at construction with a message naming the fault,
and the built-in models are the ones their documents describe.

The negative cases build a small two-variable model (``x`` in 0, 1, 2 and ``y`` in "lo", "hi";
6 states; actions "stay", "go") and break one thing at a time. The positive cases check
``ddc.models.membership()`` against docs/membership.rst (state space, plan transitions,
utility table, feasibility) and ``ddc.models.rust_bus()`` against Rust (1987): entries written
out by hand, not recomputed with the code under test. Tolerance: 1e-12 (exact arithmetic up to
rounding).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc import (
    CallableUtility,
    Factor,
    FactoredTransitions,
    LinearUtility,
    Model,
    SparseTransitions,
    StateSpace,
)
from ddc import StateVariable as SV
from ddc.kernels.bellman_numpy import transition_matrix
from ddc.models.membership import SHIP_MEMBER, SHIP_NONMEMBER, VIDEO_MEMBER, VIDEO_NONMEMBER

TOL = 1e-12
S, A = 6, 2  # the small model: x (3 values) x y (2 values), actions stay / go


# --------------------------------------------------------------------------- the small model


def uniform(*shape: int) -> np.ndarray:
    return np.full(shape, 1.0 / shape[-1])


def small_args(**changes) -> dict:
    """Constructor arguments of a consistent 6-state model; ``changes`` replace some."""
    X = np.zeros((S, A, 2))
    X[:, 1, 0] = 1.0  # theta_go * 1[a = go]
    X[:, 0, 1] = np.repeat([0.0, 1.0, 2.0], 2)  # theta_x * x when staying
    args = dict(
        states=[SV("x", (0, 1, 2)), SV("y", ("lo", "hi"))],
        actions=["stay", "go"],
        utility=LinearUtility(X, ["theta_go", "theta_x"]),
        transitions=FactoredTransitions([
            Factor("x", uniform(A, 3, 3), given=("action", "x")),
            Factor("y", uniform(2, 2)),
        ]),
        beta=0.9,
    )
    args.update(changes)
    return args


def small(**changes) -> Model:
    return Model(**small_args(**changes))


def row_off(table: np.ndarray, index: tuple[int, ...], by: float = -0.1) -> np.ndarray:
    """``table`` with one entry of the row at ``index`` moved by ``by`` (the row no longer sums
    to one)."""
    t = np.array(table, dtype=float)
    t[(*index, 0)] += by
    return t


def with_entry(table: np.ndarray, index: tuple, value) -> np.ndarray:
    """A copy of ``table`` (same dtype) with ``table[index] = value``."""
    t = np.array(table, copy=True)
    t[index] = value
    return t


def sparse_ok() -> list[np.ndarray]:
    return [np.eye(S), np.full((S, S), 1.0 / S)]


def sparse_with(a: int, index: tuple[int, int], value: float) -> list[np.ndarray]:
    mats = sparse_ok()
    mats[a] = mats[a].copy()
    mats[a][index] = value
    return mats


def cyclic() -> FactoredTransitions:
    return FactoredTransitions([
        Factor("x", uniform(2, 3, 3), given=("y", "x")),
        Factor("y", uniform(3, 2), given=("x",)),
    ])


def transition_fn_returning_array(tp: pd.Series):
    return np.eye(S)


# --------------------------------------------------------------------------- inconsistent models

INCONSISTENT = [
    # transition probabilities
    pytest.param(
        lambda: Factor("x", row_off(uniform(3, 3), (1,))),
        r"transition factor of 'x': the row at \(x=1\) sums to 0\.9, not 1",
        id="factor-row-sum"),
    pytest.param(
        lambda: Factor("x", row_off(uniform(A, 3, 3), (1, 2), by=0.25), given=("action", "x")),
        r"transition factor of 'x': the row at \(action=1, x=2\) sums to 1\.25, not 1",
        id="factor-row-sum-by-action"),
    pytest.param(
        lambda: Factor("x", with_entry(np.eye(3), (2, 0), -0.5)),
        r"transition factor of 'x': probabilities must be finite and >= 0; entry \(2, 0\)",
        id="factor-negative"),
    pytest.param(
        lambda: Factor("x", with_entry(uniform(3, 3), (0, 1), np.nan)),
        r"transition factor of 'x': probabilities must be finite and >= 0; entry \(0, 1\) .*nan",
        id="factor-nan"),
    pytest.param(
        lambda: Factor("x", with_entry(uniform(3, 3), (1, 1), np.inf)),
        r"transition factor of 'x': probabilities must be finite and >= 0; entry \(1, 1\) .*inf",
        id="factor-inf"),
    pytest.param(
        lambda: small(transitions=SparseTransitions(sparse_with(1, (3, 0), 0.0))),
        r"transition matrix of action 1: row 3 \(state \(.*1.*'hi'\)\) sums to 0\.8333\d+, not 1",
        id="sparse-row-sum"),
    pytest.param(
        lambda: small(transitions=SparseTransitions(sparse_with(0, (2, 3), -0.5))),
        r"transition matrix of action 0: entry at row 2, column 3 is -0\.5; probabilities must "
        r"be finite and >= 0",
        id="sparse-negative"),
    pytest.param(
        lambda: small(transitions=SparseTransitions(sparse_with(1, (0, 0), np.nan))),
        r"transition matrix of action 1: entry at row 0, column 0 is nan",
        id="sparse-nan"),
    # feasibility
    pytest.param(
        lambda: small(feasible=with_entry(np.ones((S, A), bool), (3, slice(None)), False)),
        r"state \(.*1.*'hi'\) \(flat index 3\) has no feasible action; 1 state\(s\) in all",
        id="state-without-feasible-action"),
    pytest.param(
        lambda: small(feasible=np.zeros((S, A), bool)),
        r"\(flat index 0\) has no feasible action; 6 state\(s\) in all",
        id="no-feasible-action-anywhere"),
    # shapes
    pytest.param(
        lambda: small(utility=LinearUtility(np.zeros((S - 1, A, 1)), ["t"])),
        r"utility is defined on \(5, 2\) \(states, actions\) but the model has 6 states and 2 "
        r"actions", id="features-vs-states"),
    pytest.param(
        lambda: small(utility=LinearUtility(np.zeros((S, A + 1, 1)), ["t"])),
        r"utility is defined on \(6, 3\) \(states, actions\) but the model has 6 states and 2 "
        r"actions", id="features-vs-actions"),
    pytest.param(
        lambda: small(utility=CallableUtility(lambda th: np.zeros((S, 3)), ["t"], (S, 3))),
        r"utility is defined on \(6, 3\)", id="callable-utility-shape"),
    pytest.param(
        lambda: LinearUtility(np.zeros((S, A, 2)), ["t"]),
        r"features have 2 parameter columns but 1 names were given: \['t'\]",
        id="features-vs-names"),
    pytest.param(
        lambda: LinearUtility(np.zeros((S, A)), ["t"]),
        r"features must have shape \(states, actions, parameters\); got 2 axes",
        id="features-two-axes"),
    pytest.param(
        lambda: LinearUtility(with_entry(np.zeros((S, A, 1)), (4, 1, 0), np.nan), ["t"]),
        r"feature 't' is not finite at state 4, action 1", id="features-nan"),
    pytest.param(
        lambda: small(feasible=np.ones((S, A + 1), bool)),
        r"feasible must have shape \(6, 2\) \(states, actions\); got \(6, 3\)",
        id="feasible-shape"),
    pytest.param(
        lambda: small(feasible=np.ones((S, A))),
        r"feasible must be a boolean array, got dtype float64", id="feasible-not-boolean"),
    pytest.param(
        lambda: Factor("x", uniform(A, 3, 3)),
        r"transition factor of 'x': table has 3 axes but given=\('x',\) needs 2",
        id="factor-axes-vs-given"),
    pytest.param(
        lambda: small(transitions=FactoredTransitions([Factor("x", uniform(2, 2))])),
        r"transition factor of 'x': table has shape \(2, 2\), expected \(3, 3\)",
        id="factor-shape-vs-variable"),
    pytest.param(
        lambda: small(transitions=FactoredTransitions([
            Factor("x", uniform(3, 3, 3), given=("action", "x"))])),
        r"transition factor of 'x': table has shape \(3, 3, 3\), expected \(2, 3, 3\) for "
        r"given=\('action', 'x'\)", id="factor-shape-vs-actions"),
    pytest.param(
        lambda: small(transitions=FactoredTransitions([
            Factor("x", uniform(3, 3, 3), given=("y", "x"))])),
        r"table has shape \(3, 3, 3\), expected \(2, 3, 3\) for given=\('y', 'x'\)",
        id="factor-shape-vs-given-variable"),
    pytest.param(
        lambda: small(transitions=SparseTransitions([np.eye(S)])),
        r"SparseTransitions has 1 matrices; the model has 2 actions", id="sparse-count"),
    pytest.param(
        lambda: small(transitions=SparseTransitions([np.eye(S + 1), np.eye(S + 1)])),
        r"transition matrix of action 0 has shape \(7, 7\), expected \(6, 6\)",
        id="sparse-shape"),
    # names
    pytest.param(
        lambda: small(transitions=FactoredTransitions([Factor("z", uniform(2, 2))])),
        r"transition factor for 'z', which is not a state variable of the model \(\['x', 'y'\]\)",
        id="factor-unknown-variable"),
    pytest.param(
        lambda: small(transitions=FactoredTransitions([
            Factor("x", uniform(2, 3, 3), given=("z", "x"))])),
        r"transition factor of 'x' is conditioned on 'z', which is neither 'action' nor a state "
        r"variable", id="given-unknown-variable"),
    pytest.param(
        lambda: small(transitions=cyclic()),
        r"transition factors of \['x', 'y'\] are conditioned on each other in a cycle",
        id="cyclic-conditioning"),
    pytest.param(
        lambda: FactoredTransitions([Factor("x", uniform(3, 3)), Factor("x", uniform(3, 3))]),
        r"at most one transition factor per state variable; got \['x', 'x'\]",
        id="two-factors-one-variable"),
    pytest.param(
        lambda: Factor("x", uniform(3, 3, 3), given=("x", "x")),
        r"transition factor of 'x': repeated names in \('x', 'x'\)", id="given-repeated"),
    pytest.param(
        lambda: small(states=[SV("x", (0, 1, 2)), SV("x", ("lo", "hi"))]),
        r"state variable names must be unique, got \['x', 'x'\]",
        id="duplicate-state-variable"),
    pytest.param(
        lambda: StateSpace([]), r"a state space needs at least one state variable",
        id="no-state-variables"),
    pytest.param(
        lambda: small(actions=["stay", "stay"]),
        r"action names must be unique, got \['stay', 'stay'\]", id="duplicate-action"),
    pytest.param(
        lambda: small(actions=[]), r"a model needs at least one action", id="no-actions"),
    pytest.param(
        lambda: SV("x", (0, 1, 1, 2)), r"state variable 'x' has duplicate values \[1\]",
        id="duplicate-value"),
    pytest.param(
        lambda: SV("x", ()), r"state variable 'x' has no values", id="variable-without-values"),
    pytest.param(
        lambda: LinearUtility(np.zeros((S, A, 2)), ["t", "t"]),
        r"parameter names must be unique, got \['t', 't'\]", id="duplicate-parameter-name"),
    # anchor, types
    pytest.param(
        lambda: small(anchor="jump"),
        r"anchor 'jump' is not an action; actions are \('stay', 'go'\)", id="anchor-not-action"),
    pytest.param(
        lambda: small(utility=np.zeros((S, A))),
        r"utility must be a LinearUtility or CallableUtility", id="utility-type"),
    pytest.param(
        lambda: small(transitions=np.eye(S)),
        r"transitions must be FactoredTransitions, SparseTransitions or a callable",
        id="transitions-type"),
    pytest.param(
        lambda: small(transitions=transition_fn_returning_array,
                      transition_params=pd.Series({"p": 0.5})),
        r"the transition function must return FactoredTransitions or SparseTransitions, got "
        r"ndarray", id="transition-function-return-type"),
    # true parameters are checked like any other parameters
    pytest.param(
        lambda: small(true_params=pd.Series({"theta_go": 1.0, "theta_x": 0.5, "foo": 1.0})),
        r"unknown parameter\(s\) \['foo'\]", id="true-params-unknown"),
    pytest.param(
        lambda: small(true_params=pd.Series({"theta_go": np.inf, "theta_x": 0.5})),
        r"parameter\(s\) \['theta_go'\] are not finite", id="true-params-infinite"),
]


@pytest.mark.parametrize(("build", "match"), INCONSISTENT)
def test_inconsistent_model_fails_naming_the_fault(build, match):
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        build()


@pytest.mark.parametrize(
    "beta",
    [
        pytest.param(-0.1, id="negative"),
        pytest.param(1.0, id="one"),
        pytest.param(1.5, id="above-one"),
        pytest.param("0.9", id="string"),
        pytest.param(None, id="none"),
        pytest.param(np.nan, id="nan"),
        pytest.param(np.inf, id="inf"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
    ],
)
def test_beta_outside_unit_interval_is_rejected(beta):
    with pytest.raises(ValueError, match=r"the discount factor beta must be a number in \[0, 1\)"
                                         r"; got " + repr(beta).replace(".", r"\.")):
        small(beta=beta)


@pytest.mark.parametrize("beta", [pytest.param(0.0, id="zero"), pytest.param(0.9999, id="0.9999"),
                                  pytest.param(np.float64(0.5), id="numpy-float")])
def test_beta_in_unit_interval_is_accepted(beta):
    assert small(beta=beta).beta == float(beta)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        pytest.param({"theta_go": 1.0, "theta_x": 0.5, "foo": 2.0}, KeyError,
                     r"unknown parameter\(s\) \['foo'\]; the model's parameters are "
                     r"\['theta_go', 'theta_x'\]", id="unknown-name"),
        pytest.param({"theta_go": 1.0}, KeyError,
                     r"missing utility parameter\(s\) \['theta_x'\]; give all of "
                     r"\['theta_go', 'theta_x'\]", id="missing-name"),
        pytest.param({"theta_go": np.nan, "theta_x": 0.5}, ValueError,
                     r"parameter\(s\) \['theta_go'\] are not finite", id="nan"),
        pytest.param(pd.Series({"theta_go": 1.0, "theta_x": -np.inf}), ValueError,
                     r"parameter\(s\) \['theta_x'\] are not finite", id="minus-inf-series"),
        pytest.param([1.0, np.inf], ValueError,
                     r"parameter\(s\) \['theta_x'\] are not finite", id="inf-array"),
        pytest.param([1.0, 2.0, 3.0], ValueError,
                     r"expected 2 utility parameters \['theta_go', 'theta_x'\] or all 2",
                     id="wrong-count"),
        pytest.param({"theta_go": "a", "theta_x": 0.5}, ValueError,
                     r"parameter values must be numbers", id="not-a-number"),
        pytest.param(pd.Series([1.0, 2.0, 0.5], index=["theta_go", "theta_go", "theta_x"]),
                     ValueError, r"theta_go", id="duplicate-name"),
    ],
)
def test_bad_params_are_rejected(params, error, match):
    model = small()
    with pytest.raises(error, match=match):
        model.params_series(params)
    with pytest.raises(error, match=match):
        model.solve(params)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        pytest.param({"theta_30": 1.5}, r"increment probabilities must lie in \[0, 1\]: "
                                         r"\{'theta_30': 1\.5\}", id="above-one"),
        pytest.param({"theta_31": -0.1}, r"increment probabilities must lie in \[0, 1\]: "
                                          r"\{'theta_31': -0\.1\}", id="negative"),
        pytest.param({"theta_30": 0.6, "theta_31": 0.6}, r"sum to 1\.2 > 1", id="sum-above-one"),
        pytest.param({"theta_30": np.nan}, r"parameter\(s\) \['theta_30'\] are not finite",
                     id="nan"),
    ],
)
def test_bus_transition_params_are_checked(params, match):
    bus = ddc.models.rust_bus(90)
    with pytest.raises(ValueError, match=match):
        bus.solve({"RC": 9.0, "theta_11": 2.0, **params})


def test_bus_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"n_states must be an integer >= 2, got 1"):
        ddc.models.rust_bus(1)
    with pytest.raises(ValueError, match=r"sum to 1\.4 > 1"):
        ddc.models.rust_bus(90, theta_3=[0.7, 0.7])


def test_replace_checks_like_the_constructor():
    model = small()
    with pytest.raises(TypeError, match=r"Model\.replace got unknown argument\(s\) \['gamma'\]"):
        model.replace(gamma=0.9)
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\); got 1\.0"):
        model.replace(beta=1.0)
    with pytest.raises(ValueError, match=r"has no feasible action"):
        model.replace(feasible=np.zeros((S, A), bool))


@pytest.mark.parametrize("value", [pytest.param(-0.5, id="negative"),
                                   pytest.param(np.nan, id="nan")])
def test_sparse_bad_entry_is_located(value):
    with pytest.raises(ValueError, match=r"row 2\D.*column 3\D.*" + str(value).replace(".", r"\.")):
        small(transitions=SparseTransitions(sparse_with(0, (2, 3), value)))


def test_state_labels_in_messages_are_plain():
    with pytest.raises(ValueError, match=r"state \(1, 'hi'\) \(flat index 3\)"):
        small(feasible=with_entry(np.ones((S, A), bool), (3, slice(None)), False))


# --------------------------------------------------------------------------- the small model works


def test_small_model_is_consistent():
    model = small()
    assert (model.n_states, model.n_actions) == (S, A)
    assert model.param_names == ["theta_go", "theta_x"]
    sol = model.solve([0.3, -0.2])
    assert sol.converged


def test_state_space_flat_index_agrees_with_index():
    space = ddc.models.membership().space
    index = space.index
    labels = {name: np.asarray(index.get_level_values(name), dtype=object)
              for name in space.names}
    np.testing.assert_array_equal(space.flat_index(labels), np.arange(space.size))
    for i in (0, 1, 17, 100, space.size - 1):
        assert int(space.flat_index(dict(zip(space.names, index[i], strict=True)))) == i
    # C order, the last variable fastest: strides (13 * 6, 6, 2, 1)
    np.testing.assert_array_equal(space.strides, [78, 6, 2, 1])
    assert int(space.flat_index(market=2, plan="annual_1", ship=1, video=0)) == \
        2 * 78 + 12 * 6 + 1 * 2 + 0


def test_model_replace_changes_beta_only():
    model = ddc.models.membership()
    other = model.replace(beta=0.95)
    assert other.beta == 0.95 and model.beta == 0.99
    assert other.space is model.space and other.actions == model.actions
    pd.testing.assert_series_equal(other.true_params, model.true_params)
    np.testing.assert_array_equal(other.feasible, model.feasible)
    assert other.anchor == "none" and other.hooks is model.hooks
    a, b = model.solve(model.true_params), other.solve(model.true_params)
    assert a.converged and b.converged
    assert not np.allclose(a.V, b.V)
    np.testing.assert_allclose(
        other.utilities(model.true_params), model.utilities(model.true_params), rtol=0, atol=0)


# --------------------------------------------------------------------------- membership


@pytest.fixture(scope="module")
def membership():
    return ddc.models.membership()


def state(model: Model, **labels) -> int:
    return int(model.space.flat_index(labels))


def test_membership_state_space(membership):
    m = membership
    assert m.n_states == 234 == 3 * 13 * 3 * 2
    assert m.space.names == ["market", "plan", "ship", "video"]
    assert m.space.variable("plan").values == (
        "none", "member", *(f"annual_{r}" for r in range(11, 0, -1)))
    assert m.actions == ("none", "monthly", "annual")
    assert m.anchor == "none"
    assert m.param_names == ["theta_0", "theta_ship", "theta_video", "theta_annual",
                             "alpha_price", "kappa_join"]
    from ddc.models.membership import prices

    np.testing.assert_array_equal(prices(m)["monthly"], [14.99, 12.99, 16.99])
    np.testing.assert_array_equal(prices(m)["annual"], [139.0, 119.0, 159.0])


def test_membership_feasibility(membership):
    m = membership
    plan = m.space.values_of("plan")
    deciding = np.isin(plan, ["none", "member"])
    assert deciding.sum() == 3 * 2 * 3 * 2
    assert m.feasible[deciding].all()
    np.testing.assert_array_equal(m.feasible[~deciding], [[False, False, True]] * (234 - 36))


# Utility at the true parameters (theta_0 -1, theta_ship .8, theta_video .5, theta_annual 1,
# alpha .05, kappa 3), by hand: b = -1 + .8 ship + .5 video.
UTILITY_CASES = [
    # market, plan, ship, video, action, utility
    pytest.param(1, "none", 2, 1, "annual", (-1 + 1.6 + 0.5) + 1.0 - 0.05 * 119.0 - 3.0,
                 id="m1-none-annual"),
    pytest.param(1, "none", 2, 1, "monthly", (-1 + 1.6 + 0.5) - 0.05 * 12.99 - 3.0,
                 id="m1-none-monthly"),
    pytest.param(0, "member", 0, 0, "monthly", -1.0 - 0.05 * 14.99, id="m0-member-monthly"),
    pytest.param(2, "member", 1, 0, "annual", (-1 + 0.8) + 1.0 - 0.05 * 159.0,
                 id="m2-member-annual"),
    pytest.param(2, "none", 1, 1, "monthly", (-1 + 0.8 + 0.5) - 0.05 * 16.99 - 3.0,
                 id="m2-none-monthly"),
    pytest.param(0, "annual_5", 2, 0, "annual", -1 + 1.6, id="m0-locked-annual"),
    pytest.param(2, "annual_1", 0, 1, "annual", -1 + 0.5, id="m2-last-locked-annual"),
    pytest.param(1, "member", 1, 1, "none", 0.0, id="none-is-zero"),
    pytest.param(0, "none", 0, 0, "none", 0.0, id="none-is-zero-2"),
]


@pytest.mark.parametrize(("market", "plan", "ship", "video", "action", "expected"),
                         UTILITY_CASES)
def test_membership_utility_table(membership, market, plan, ship, video, action, expected):
    u = membership.utilities(membership.true_params)
    s = state(membership, market=market, plan=plan, ship=ship, video=video)
    assert u[s, membership.action_code(action)] == pytest.approx(expected, abs=TOL)


def test_membership_utility_of_none_is_zero_everywhere(membership):
    u = membership.utilities(membership.true_params)
    np.testing.assert_array_equal(u[:, 0], 0.0)


@pytest.fixture(scope="module")
def membership_matrices(membership):
    ct = membership.compiled_transitions()
    return [transition_matrix(ct, a) for a in range(membership.n_actions)]


def marginal(P: np.ndarray, codes: np.ndarray, size: int) -> np.ndarray:
    """``M[s, k] = P(x' = k | s)`` for the variable whose codes at every state are ``codes``."""
    return P @ (codes[:, None] == np.arange(size)[None, :])


# (plan now, action) -> plan next, as in docs/membership.rst
PLAN_CASES = [
    pytest.param("none", "none", "none", id="none-none"),
    pytest.param("member", "none", "none", id="member-lapses"),
    pytest.param("none", "monthly", "member", id="none-monthly"),
    pytest.param("member", "monthly", "member", id="member-monthly"),
    pytest.param("none", "annual", "annual_11", id="none-annual"),
    pytest.param("member", "annual", "annual_11", id="member-annual"),
    *(pytest.param(f"annual_{r}", "annual", f"annual_{r - 1}", id=f"annual_{r}")
      for r in range(11, 1, -1)),
    pytest.param("annual_1", "annual", "member", id="annual_1-member"),
]


@pytest.mark.parametrize(("plan", "action", "plan_next"), PLAN_CASES)
def test_membership_plan_transitions(membership, membership_matrices, plan, action, plan_next):
    m = membership
    P = membership_matrices[m.action_code(action)]
    plans = m.space.variable("plan").values
    rows = np.flatnonzero(m.space.values_of("plan") == plan)
    M = marginal(P[rows], m.space.code_of("plan"), len(plans))
    expected = np.zeros(len(plans))
    expected[plans.index(plan_next)] = 1.0
    np.testing.assert_allclose(M, np.tile(expected, (len(rows), 1)), rtol=0, atol=TOL)


@pytest.mark.parametrize("action", ["none", "monthly", "annual"])
def test_membership_market_never_changes_and_rows_sum_to_one(membership, membership_matrices,
                                                            action):
    m = membership
    P = membership_matrices[m.action_code(action)]
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=TOL)
    M = marginal(P, m.space.code_of("market"), 3)
    np.testing.assert_allclose(M, np.eye(3)[m.space.code_of("market")], rtol=0, atol=TOL)


@pytest.mark.parametrize(
    ("action", "ship", "video"),
    [pytest.param("none", SHIP_NONMEMBER, VIDEO_NONMEMBER, id="non-member"),
     pytest.param("monthly", SHIP_MEMBER, VIDEO_MEMBER, id="monthly"),
     pytest.param("annual", SHIP_MEMBER, VIDEO_MEMBER, id="annual")],
)
def test_membership_engagement_transitions(membership, membership_matrices, action, ship, video):
    m = membership
    P = membership_matrices[m.action_code(action)]
    # the matrices of docs/membership.rst, written out
    np.testing.assert_array_equal(SHIP_NONMEMBER[0], [0.85, 0.13, 0.02])
    np.testing.assert_array_equal(SHIP_MEMBER[2], [0.02, 0.13, 0.85])
    np.testing.assert_array_equal(VIDEO_NONMEMBER[:, 1], [0.02, 0.50])
    np.testing.assert_array_equal(VIDEO_MEMBER[:, 1], [0.15, 0.90])
    for name, T in (("ship", ship), ("video", video)):
        codes = m.space.code_of(name)
        M = marginal(P, codes, T.shape[0])
        np.testing.assert_allclose(M, T[codes], rtol=0, atol=TOL)


def test_membership_finer_engagement_grid():
    m = ddc.models.membership(n_ship=5, n_video=4)
    assert m.n_states == 3 * 13 * 5 * 4 == 780
    assert m.space.variable("ship").values == (0, 1, 2, 3, 4)
    # utility features: the level scaled to the default range, ship in [0, 2], video in [0, 1]
    X = m.utility.features
    k = list(m.utility_params).index
    np.testing.assert_allclose(X[:, 1, k("theta_ship")], 0.5 * m.space.code_of("ship"))
    np.testing.assert_allclose(X[:, 1, k("theta_video")], m.space.code_of("video") / 3)
    for factor in m.transitions().factors[1:]:  # ship and video, by action
        T = factor.table
        name = factor.variable
        assert T.shape == ((3, 5, 5) if name == "ship" else (3, 4, 4))
        assert np.all(T >= 0)
        np.testing.assert_allclose(T.sum(axis=-1), 1.0, rtol=0, atol=TOL, err_msg=name)
    ct = m.compiled_transitions()
    for a in range(m.n_actions):
        np.testing.assert_allclose(transition_matrix(ct, a).sum(axis=1), 1.0, rtol=0, atol=TOL)
    assert m.solve(m.true_params).converged


# --------------------------------------------------------------------------- Rust's bus


@pytest.mark.parametrize("n_states", [90, 175])
def test_bus_utilities(n_states):
    bus = ddc.models.rust_bus(n_states)
    assert bus.actions == ("keep", "replace") and bus.space.names == ["mileage"]
    params = bus.true_params
    u = bus.utilities(params)
    x = np.arange(n_states)
    np.testing.assert_allclose(u[:, 0], -0.001 * params["theta_11"] * x, rtol=0, atol=TOL)
    np.testing.assert_allclose(u[:, 1], -params["RC"], rtol=0, atol=TOL)
    assert u[89, 0] == pytest.approx(-0.001 * params["theta_11"] * 89, abs=TOL)


def test_bus_90_parameters_are_table_ix():
    bus = ddc.models.rust_bus(90)
    assert bus.param_names == ["RC", "theta_11", "theta_30", "theta_31"]
    pd.testing.assert_series_equal(
        bus.true_params,
        pd.Series([9.7558, 2.6275, 0.3489, 0.6394], index=bus.param_names, name="params"))


def test_bus_90_increment_transitions():
    bus = ddc.models.rust_bus(90)
    p0, p1 = 0.3489, 0.6394
    p2 = 1.0 - p0 - p1
    ct = bus.compiled_transitions()
    keep, replace = transition_matrix(ct, 0), transition_matrix(ct, 1)
    for x in (0, 10, 87):
        expected = np.zeros(90)
        expected[[x, x + 1, x + 2]] = [p0, p1, p2]
        np.testing.assert_allclose(keep[x], expected, rtol=0, atol=TOL, err_msg=f"x={x}")
    # the top bins absorb the mass that would pass the last bin
    assert keep[88, 88] == pytest.approx(p0, abs=TOL)
    assert keep[88, 89] == pytest.approx(p1 + p2, abs=TOL)
    assert keep[89, 89] == pytest.approx(1.0, abs=TOL)
    np.testing.assert_allclose(keep.sum(axis=1), 1.0, rtol=0, atol=TOL)
    # replace: from bin 0, whatever the mileage
    first = np.zeros(90)
    first[:3] = [p0, p1, p2]
    np.testing.assert_allclose(replace, np.tile(first, (90, 1)), rtol=0, atol=TOL)


def test_bus_transition_params_move_the_matrix():
    bus = ddc.models.rust_bus(90)
    params = bus.params_series({"RC": 9.0, "theta_11": 2.0, "theta_30": 0.5, "theta_31": 0.25})
    keep = transition_matrix(bus.compiled_transitions(params), 0)
    np.testing.assert_allclose(keep[5, 5:8], [0.5, 0.25, 0.25], rtol=0, atol=TOL)
    assert keep[89, 89] == pytest.approx(1.0, abs=TOL)
