"""Derivatives of the solution in every parameter, transition parameters included.

The analytic derivatives (implicit function theorem over the solved fixed point, with the
transition tables differentiated numerically but exactly enough) are checked against central
differences of complete solves, the oracle that needs no theory: step 1e-5, agreement to 1e-6
of the largest entry (the differences themselves are accurate to about 1e-8 here).
"""

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc import Factor, FactoredTransitions, SparseTransitions
from ddc.kernels import bellman_numpy as kn
from ddc.solver import transition_derivatives
from ddc.transitions import differentiate_transitions


def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def membership_with_transition_params():
    """The membership model with two transition parameters that move two factors, one of them
    nonlinearly and through both parameters (product rule and cross second derivatives)."""
    base = ddc.models.membership()
    tables = {f.variable: (f.table, f.given) for f in base.transitions().factors}

    def transitions(tp):
        a = logistic(tp["ship_stick"])
        c = a * tp["video_stick"]
        ship, ship_given = tables["ship"]
        video, video_given = tables["video"]
        return FactoredTransitions([
            Factor("plan", *tables["plan"]),
            Factor("ship", (1 - a) * ship + a * np.eye(ship.shape[-1]), given=ship_given),
            Factor("video", (1 - c) * video + c * np.eye(video.shape[-1]), given=video_given),
        ])

    tp = pd.Series({"ship_stick": -1.0, "video_stick": 0.4})
    model = base.replace(transitions=transitions, transition_params=tp)
    return model, model.params_series(base.true_params)


def bus(n_states, beta=0.9999):
    model = ddc.models.rust_bus(n_states, beta=beta)
    return model, model.true_params


def bus_as_sparse_matrices():
    """Rust's bus with its transitions given as one sparse matrix per action."""
    model, params = bus(90, beta=0.99)
    fn = model.transitions

    def transitions(tp):
        ct = model.replace(transitions=fn(pd.concat([params[:2], tp]))).compiled_transitions()
        return SparseTransitions([kn.transition_matrix(ct, a) for a in range(2)])

    sparse = model.replace(transitions=transitions)
    return sparse, params


MODELS = [
    pytest.param(lambda: bus(90), id="bus-90"),
    pytest.param(lambda: bus(175), id="bus-175"),
    pytest.param(membership_with_transition_params, id="membership-psi"),
    pytest.param(bus_as_sparse_matrices, id="bus-sparse"),
]


def central_difference(model, params, name, h, what):
    up, dn = params.copy(), params.copy()
    up[name] += h
    dn[name] -= h
    return (what(model.solve(up)) - what(model.solve(dn))) / (2 * h)


def masked_log_pi(sol):
    return np.where(sol.model.feasible, sol.log_pi, 0.0)


@pytest.mark.parametrize("make", MODELS)
def test_first_derivatives_match_differences_of_full_solves(make):
    model, params = make()
    sol = model.solve(params)
    dV = sol.dvalue_dparams()
    dlp = sol.dlogccp_dparams()
    assert dlp.shape == (model.n_states, model.n_actions, len(model.param_names))
    for k, name in enumerate(model.param_names):
        h = 1e-5 * max(1.0, abs(params[name]))
        fd_V = central_difference(model, params, name, h, lambda s: s.V)
        fd_lp = central_difference(model, params, name, h, masked_log_pi)
        np.testing.assert_allclose(dV[:, k], fd_V, rtol=0, atol=1e-6 * np.abs(fd_V).max(),
                                   err_msg=name)
        np.testing.assert_allclose(dlp[:, :, k], fd_lp, rtol=0, atol=1e-6 * np.abs(fd_lp).max(),
                                   err_msg=name)
    # the transition block alone, and the utility block equal to the older method
    K = len(model.utility_params)
    np.testing.assert_array_equal(sol.dlogccp_dpsi(), dlp[:, :, K:])
    np.testing.assert_allclose(dlp[:, :, :K], sol.dlogccp_dtheta(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", MODELS[1:3])
def test_second_derivatives_match_differences_of_first(make):
    model, params = make()
    sol = model.solve(params)
    d2 = sol.d2logccp_dparams()
    np.testing.assert_array_equal(d2, d2.transpose(0, 1, 3, 2))
    for k, name in enumerate(model.param_names):
        h = 1e-5 * max(1.0, abs(params[name]))
        fd = central_difference(model, params, name, h, lambda s: s.dlogccp_dparams())
        np.testing.assert_allclose(d2[:, :, :, k], fd, rtol=0, atol=1e-6 * np.abs(fd).max(),
                                   err_msg=name)


@pytest.mark.parametrize("make", MODELS[1:3])
def test_cross_derivatives_are_the_utility_by_transition_block(make):
    """The cross block (first derivatives of the transitions only) equals that block of the
    full second derivatives."""
    model, params = make()
    sol = model.solve(params)
    K = len(model.utility_params)
    dtrans = sol.transition_derivatives(None, second=True)
    cross = sol.d2logccp_dtheta_dpsi(dtrans)
    full = sol.d2logccp_dparams(None, dtrans)
    np.testing.assert_allclose(cross, full[:, :, :K, K:], rtol=0,
                               atol=1e-12 * np.abs(full[:, :, :K, K:]).max())


def test_cell_derivatives_match_differences_of_full_solves():
    """The Murphy-Topel cross derivative in the cells of a nonparametric first stage
    (exact table derivatives, :class:`estimators.first_stage.CellView`) against central
    differences of complete solves of the model whose transition parameters are the cells."""
    from estimators.base import prepare
    from estimators.first_stage import _cell_parts
    from simulations import simulate

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=300, n_periods=12, seed=5)
    ts = prepare(model, panel, None, "test").transitions
    view = _cell_parts(ts, None)
    pmodel = view.model
    params = pmodel.params_series(model.true_params[model.utility_params].to_numpy())
    cross = pmodel.solve(params).d2logccp_dtheta_dpsi(view.derivatives())
    assert cross.shape == (model.n_states, model.n_actions, len(model.utility_params),
                           len(view.psi))
    for k, name in list(enumerate(view.psi.index))[::4]:  # every fourth cell: a few seconds
        h = min(1e-5, 0.5 * params[name])
        fd = central_difference(pmodel, params, name, h, lambda s: s.dlogccp_dtheta())
        np.testing.assert_allclose(cross[:, :, :, k], fd, rtol=0,
                                   atol=1e-6 * np.abs(fd).max(), err_msg=name)


def test_table_derivatives_exact_for_a_known_function():
    """Richardson-extrapolated differences of the tables against the closed form: the ship
    factor is (1 - a) T + a I with a = logistic(psi_1), the video factor (1 - c) T + c I with
    c = a psi_2, so dP/dpsi_1 is the product rule's two terms with da (I - T) and
    psi_2 da (I - T) in place of those factors."""
    model, params = membership_with_transition_params()
    spec = model.transitions(params)
    a = logistic(params["ship_stick"])
    da = a * (1 - a)
    c = a * params["video_stick"]
    ship = (spec.factors[1].table - a * np.eye(3)) / (1 - a)
    video = (spec.factors[2].table - c * np.eye(2)) / (1 - c)
    terms = [spec.compile(model.space, model.n_actions, tables={"ship": da * (np.eye(3) - ship)}),
             spec.compile(model.space, model.n_actions,
                          tables={"video": params["video_stick"] * da * (np.eye(2) - video)})]
    W = np.random.default_rng(0).normal(size=model.n_states)
    exact = np.column_stack([sum(kn.transition_matrix(ct, act) for ct in terms) @ W
                             for act in range(model.n_actions)])
    d = transition_derivatives(model, params)
    np.testing.assert_allclose(d.expected(W)[:, :, 0], exact, rtol=0, atol=1e-11)
    assert d.second is None
    with pytest.raises(ValueError, match="second=True"):
        d.expected_second(W)


def test_step_backs_off_at_the_edge_of_the_domain():
    """At 175 states the implied last increment probability is 3/8156: with a first step of
    1e-3 every stencil leaves the simplex, so the steps are halved until they fit, and the
    derivatives are those of the default (smaller) step."""
    model, params = bus(175)
    names = list(model.transition_params.index)
    psi = params[names].to_numpy()

    def evaluate(x):
        return model.transitions(pd.concat([params[:2], pd.Series(x, index=names)]))

    wide = differentiate_transitions(evaluate, psi, names, model.space, model.n_actions,
                                     rel_step=1e-3)
    last = 1.0 - psi.sum()
    assert np.all(wide.steps < 1e-3) and np.all(2 * wide.steps <= last)
    W = model.solve(params).V
    np.testing.assert_allclose(wide.expected(W), transition_derivatives(model, params).expected(W),
                               rtol=0, atol=1e-9 * np.abs(W - W.mean()).max())


def test_rejected_everywhere_names_the_parameter():
    model, params = bus(90)
    psi0 = params[["theta_30", "theta_31"]].to_numpy()

    def evaluate(psi):
        if not np.array_equal(psi, psi0):
            raise ValueError("never valid away from the start")
        return model.transitions(params)

    with pytest.raises(ValueError, match="theta_30.*never valid"):
        differentiate_transitions(evaluate, psi0, ["theta_30", "theta_31"], model.space,
                                  model.n_actions)


def test_unknown_transition_parameter():
    model, params = bus(90)
    with pytest.raises(KeyError, match="not transition parameters"):
        model.solve(params).dlogccp_dparams(["RC"])


# ------------------------------------------------------------ a Jacobian declared in closed form
def numerical(model, params, second=False):
    """The transition derivatives by differences of the tables (the engine's route without
    the model's ``transition_jacobian`` hook): the twin of the closed form."""
    names = list(model.transition_params.index)

    def evaluate(x):
        return model.transitions(pd.concat([params[:2], pd.Series(x, index=names)]))

    return differentiate_transitions(evaluate, params[names].to_numpy(), names, model.space,
                                     model.n_actions, second=second)


@pytest.mark.parametrize("n_states", [90, 175])
def test_declared_jacobian_matches_the_differences(n_states):
    """Rust's bus declares its tables' derivatives in the increment probabilities (linear
    tables): the same as the Richardson differences up to their rounding (1e-9 of the spread of
    the vector they are applied to), second derivatives zero, and no step taken."""
    model, params = bus(n_states)
    assert model.hooks.transition_jacobian is not None
    W = model.solve(params).V
    scale = np.abs(W - W.mean()).max()
    closed = transition_derivatives(model, params, second=True)
    diff = numerical(model, params, second=True)
    assert np.all(closed.steps == 0) and np.all(diff.steps > 0)
    np.testing.assert_allclose(closed.expected(W), diff.expected(W), rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(closed.expected_second(W), diff.expected_second(W), rtol=0,
                               atol=1e-9 * scale)
    assert not np.any(closed.expected_second(W))
    # a subset of the parameters, in another order
    names = list(model.transition_params.index)[::-1][:2]
    sub = transition_derivatives(model, params, names)
    full = closed.expected(W)
    np.testing.assert_array_equal(sub.expected(W),
                                  full[:, :, [closed.names.index(n) for n in names]])


def test_new_transitions_drop_the_declared_jacobian():
    """The hook differentiates the transition function it was declared with: a model copy with
    other transitions falls back to differences, a copy with other parameters keeps it."""
    model, _ = bus(90)
    assert model.replace(beta=0.99).hooks.transition_jacobian is not None
    other = model.replace(transitions=lambda tp: model._transition_fn(tp))
    assert other.hooks.transition_jacobian is None
    assert other.hooks.transition_family is model.hooks.transition_family


@pytest.mark.parametrize("bad, match", [
    pytest.param(lambda d: d[:1], "1 derivative\\(s\\) for the 2 transition parameters",
                 id="count"),
    pytest.param(lambda d: [{"mileage": d[0]["mileage"][0]}, d[1]],
                 "factor 'mileage' in 'theta_30' has shape \\(90, 90\\)", id="shape"),
    pytest.param(lambda d: [d[0], {"engine": d[1]["mileage"]}],
                 "in 'theta_31' names \\['engine'\\]", id="factor"),
])
def test_bad_declared_jacobian_names_the_fault(bad, match):
    model, params = bus(90)
    declared = model.hooks.transition_jacobian
    hooks = model.hooks.replace(transition_jacobian=ddc.hooks.TransitionJacobian(
        lambda psi: bad(list(declared.first(psi))), affine=True))
    with pytest.raises(ValueError, match=match):
        transition_derivatives(model.replace(hooks=hooks), params)
    with pytest.raises(TypeError, match="must be callable"):
        ddc.hooks.TransitionJacobian(None)


def test_directional_transition_derivatives_stay_on_the_simplex_edge():
    """Derivatives along directions D (``transition_derivatives(..., directions=D)``) are the
    named derivatives combined by D at an interior point, to rounding; on the edge where the
    implied last increment probability is 0, where a step in any one parameter leaves the
    simplex (the named stencil shrinks to the rounding level of the domain check), the sum-zero
    directions differentiate with their full step."""
    from estimators.first_stage import sum_zero_directions

    bus = ddc.models.rust_bus(n_states=30, beta=0.99, theta_3=(0.3, 0.5, 0.15))
    names = list(bus.transition_params.index)
    D = sum_zero_directions(names)
    assert D.shape == (3, 2)
    np.testing.assert_allclose(D.to_numpy().sum(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(D.to_numpy().T @ D.to_numpy(), np.eye(2), atol=1e-14)
    W = np.random.default_rng(0).normal(size=bus.n_states)
    named = transition_derivatives(bus, bus.true_params, names).expected(W)
    along = transition_derivatives(bus, bus.true_params, directions=D)
    assert along.names == tuple(D.columns)
    np.testing.assert_allclose(along.expected(W), named @ D.to_numpy(), rtol=0, atol=1e-10)

    edge = bus.true_params.copy()
    edge[names] = [0.3, 0.5, 0.2]  # implied last probability 0
    assert transition_derivatives(bus, edge, names).steps.max() < 1e-11
    dir_edge = transition_derivatives(bus, edge, directions=D, second=True)
    np.testing.assert_allclose(dir_edge.steps, 1e-4)
    on_edge = dir_edge.expected(W)
    # the tables are linear in the probabilities: the same derivative as inside
    np.testing.assert_allclose(on_edge, named @ D.to_numpy(), rtol=0, atol=1e-10)
