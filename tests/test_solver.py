"""The Bellman solver: closed-form oracles, agreement of the methods, derivatives, twins.

Tolerances: algebraic identities and method agreement 1e-10 (the solver's tolerance is 1e-12);
finite-difference checks of derivatives 1e-6 (central differences with step 1e-5).
"""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import ddc
from ddc import Factor, FactoredTransitions, LinearUtility, Model, Solver, SparseTransitions
from ddc import StateVariable as SV
from ddc.kernels import bellman as kb
from ddc.kernels import bellman_numpy as kn

GAMMA = 0.5772156649015329
METHODS = ["newton_kantorovich", "successive_approximation", "policy_iteration"]


def random_factored_model(seed=0, beta=0.9, cross=True):
    """A small model with three variables, action-dependent factors, a factor conditioned on
    another variable (when ``cross``), a permanent variable and infeasible actions."""
    rng = np.random.default_rng(seed)
    space = [SV("g", (0, 1)), SV("x", ("lo", "mid", "hi")), SV("y", (0, 1, 2, 3))]
    S, A, K = 24, 3, 4

    def stochastic(*shape):
        t = rng.random(shape) ** 3
        t[t < 0.2] = 0.0  # some sparsity
        t[..., 0] += 1e-3
        return t / t.sum(axis=-1, keepdims=True)

    factors = [Factor("x", stochastic(A, 3, 3), given=("action", "x"))]
    if cross:
        factors.append(Factor("y", stochastic(A, 3, 4, 4), given=("action", "x", "y")))
    else:
        factors.append(Factor("y", stochastic(4, 4), given=("y",)))
    X = rng.normal(size=(S, A, K))
    feasible = np.ones((S, A), dtype=bool)
    feasible[::5, 2] = False
    feasible[1::7, 0] = False
    theta = rng.normal(size=K)
    model = Model(space, ["a", "b", "c"], LinearUtility(X, [f"t{k}" for k in range(K)]),
                  FactoredTransitions(factors), beta=beta, feasible=feasible)
    return model, theta


MODELS = [
    pytest.param(lambda: (ddc.models.membership(), ddc.models.membership().true_params),
                 id="membership"),
    pytest.param(lambda: (ddc.models.rust_bus(90, beta=0.95), ddc.models.rust_bus(90).true_params),
                 id="bus90-beta0.95"),
    pytest.param(lambda: random_factored_model(0), id="random-cross"),
    pytest.param(lambda: random_factored_model(1, beta=0.99, cross=False), id="random-0.99"),
]


@pytest.mark.parametrize("make", MODELS)
def test_methods_agree(make):
    model, params = make()
    sols = [model.solve(params, Solver(m)) for m in METHODS]
    for s in sols:
        assert s.converged
        assert s.residual <= 1e-12
    for s in sols[1:]:
        np.testing.assert_allclose(s.V, sols[0].V, rtol=0, atol=1e-10 / (1 - model.beta))
        np.testing.assert_allclose(s.pi, sols[0].pi, rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", MODELS)
def test_solution_is_fixed_point_of_dense_twin(make):
    model, params = make()
    sol = model.solve(params)
    ct = model.compiled_transitions(params)
    _, TV, pi = kn.bellman(sol.V, model.utilities(params), model.feasible, model.beta, ct)
    np.testing.assert_allclose(TV, sol.V, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pi, sol.pi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.V, kn.solve_dense(model.utilities(params), model.feasible,
                                                     model.beta, ct), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("linear_solver", ["dense", "sparse", "gmres"])
def test_linear_solvers_agree(linear_solver):
    model = ddc.models.membership()
    ref = model.solve(model.true_params, Solver(linear_solver="dense"))
    sol = model.solve(model.true_params, Solver(linear_solver=linear_solver))
    assert sol.converged and sol.linear_solver == linear_solver
    np.testing.assert_allclose(sol.V, ref.V, rtol=0, atol=1e-9)
    b = np.random.default_rng(3).normal(size=model.n_states)
    x = sol.policy_system.solve(b)
    P = kn.policy_matrix(sol.pi, model.compiled_transitions())
    np.testing.assert_allclose(x - model.beta * P @ x, b, atol=1e-8)
    y = sol.policy_system.solve(b, transpose=True)
    np.testing.assert_allclose(y - model.beta * P.T @ y, b, atol=1e-8)


def test_static_logit_when_beta_is_zero():
    """beta = 0: the model is a static logit, pi = softmax(u), V = logsumexp(u) + gamma."""
    model, theta = random_factored_model(2, beta=0.0)
    for method in METHODS:
        sol = model.solve(theta, Solver(method))
        u = np.where(model.feasible, model.utilities(theta), -np.inf)
        np.testing.assert_allclose(sol.V, logsumexp(u, axis=1) + GAMMA, atol=1e-13)
        np.testing.assert_allclose(sol.pi, np.exp(u - logsumexp(u, axis=1, keepdims=True)),
                                   atol=1e-14)


@pytest.mark.parametrize("beta", [0.5, 0.99, 0.9999])
def test_one_state_closed_form(beta):
    """One state: V = (log sum_a exp(u_a) + gamma) / (1 - beta), pi = softmax(u)."""
    u = np.array([0.3, -1.2, 2.0])
    X = u.reshape(1, 3, 1)
    model = Model([SV("s", (0,))], ["a", "b", "c"], LinearUtility(X, ["scale"]),
                  FactoredTransitions([]), beta=beta)
    sol = model.solve([1.0])
    assert sol.converged
    np.testing.assert_allclose(sol.V, (logsumexp(u) + GAMMA) / (1 - beta), rtol=1e-14)
    np.testing.assert_allclose(sol.pi[0], np.exp(u - logsumexp(u)), atol=1e-15)


@pytest.mark.parametrize("beta", [0.9, 0.9999])
def test_action_independent_transitions_closed_form(beta):
    """Two states whose transitions ignore the action: choices are static logits and
    V = (I - beta P)^{-1} (logsumexp(u) + gamma), solved by hand as a 2x2 system."""
    P = np.array([[0.7, 0.3], [0.4, 0.6]])
    u = np.array([[0.0, 1.0], [-0.5, 0.25]])
    X = u[:, :, None]
    model = Model([SV("s", (0, 1))], ["a", "b"], LinearUtility(X, ["one"]),
                  FactoredTransitions([Factor("s", P)]), beta=beta)
    sol = model.solve([1.0])
    r = logsumexp(u, axis=1) + GAMMA
    det = (1 - beta * P[0, 0]) * (1 - beta * P[1, 1]) - beta**2 * P[0, 1] * P[1, 0]
    V0 = ((1 - beta * P[1, 1]) * r[0] + beta * P[0, 1] * r[1]) / det
    V1 = ((1 - beta * P[0, 0]) * r[1] + beta * P[1, 0] * r[0]) / det
    np.testing.assert_allclose(sol.V, [V0, V1], rtol=1e-13)
    np.testing.assert_allclose(sol.pi, np.exp(u - logsumexp(u, axis=1, keepdims=True)),
                               atol=1e-13)


def test_two_state_replacement_model_by_hand():
    """Two states, keep (stay) or replace (go to state 0); utilities -c*s and -R.

    In state 0 both actions lead to state 0, so V0 = log(e^{beta V0} + e^{-R + beta V0}) + gamma
    gives V0 = (log(1 + e^{-R}) + gamma) / (1 - beta) in closed form; V1 then solves a scalar
    equation, found here by bisection (monotone in V1).
    """
    beta, c, R = 0.95, 1.5, 2.0
    X = np.zeros((2, 2, 2))
    X[1, 0, 0] = -1.0  # keep in state 1 costs c
    X[:, 1, 1] = -1.0  # replace costs R
    keep = np.eye(2)
    replace = np.array([[1.0, 0.0], [1.0, 0.0]])
    model = Model([SV("s", (0, 1))], ["keep", "replace"], LinearUtility(X, ["c", "R"]),
                  FactoredTransitions([Factor("s", np.stack([keep, replace]),
                                              given=("action", "s"))]), beta=beta)
    sol = model.solve([c, R])
    V0 = (np.log1p(np.exp(-R)) + GAMMA) / (1 - beta)

    def excess(V1):
        return np.logaddexp(-c + beta * V1, -R + beta * V0) + GAMMA - V1

    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    np.testing.assert_allclose(sol.V, [V0, 0.5 * (lo + hi)], rtol=1e-12)


@pytest.mark.parametrize("n_states", [90, 175])
def test_bus_at_beta_0_9999_converges_to_1e_12(n_states):
    bus = ddc.models.rust_bus(n_states=n_states, beta=0.9999)
    sol = bus.solve(bus.true_params)
    assert sol.converged and sol.residual <= 1e-12
    pi_pi = bus.solve(bus.true_params, Solver("policy_iteration"))
    np.testing.assert_allclose(pi_pi.pi, sol.pi, atol=1e-12)
    # replacement becomes more likely with mileage
    assert np.all(np.diff(sol.pi[:, 1]) > 0)


def test_warm_start_needs_fewer_steps():
    bus = ddc.models.rust_bus(90)
    sol = bus.solve(bus.true_params)
    moved = bus.true_params.add(pd.Series({"RC": 0.01, "theta_11": 0.01}), fill_value=0.0)
    warm = bus.solve(moved, V0=sol.V)
    cold = bus.solve(moved)
    assert warm.newton_steps < cold.newton_steps
    np.testing.assert_allclose(warm.pi, cold.pi, atol=1e-12)


def test_sparse_and_factored_transitions_agree():
    model, theta = random_factored_model(4)
    ct = model.compiled_transitions()
    mats = [kn.transition_matrix(ct, a) for a in range(model.n_actions)]
    sparse_model = model.replace(transitions=SparseTransitions(mats))
    a = model.solve(theta)
    b = sparse_model.solve(theta)
    np.testing.assert_allclose(a.V, b.V, rtol=1e-13)
    np.testing.assert_allclose(a.dvalue_dtheta(), b.dvalue_dtheta(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make", MODELS)
def test_derivatives_match_finite_differences(make):
    model, params = make()
    params = model.params_series(params)
    sol = model.solve(params)
    dV = sol.dvalue_dtheta()
    dlp = sol.dlogccp_dtheta()
    for k, name in enumerate(model.utility_params):
        h = 1e-5 * max(1.0, abs(params[name]))
        up, dn = params.copy(), params.copy()
        up[name] += h
        dn[name] -= h
        s_up, s_dn = model.solve(up), model.solve(dn)
        fd_V = (s_up.V - s_dn.V) / (2 * h)
        np.testing.assert_allclose(dV[:, k], fd_V, rtol=1e-6, atol=1e-6 * np.abs(fd_V).max())
        with np.errstate(invalid="ignore"):
            fd_lp = np.where(model.feasible, (s_up.log_pi - s_dn.log_pi) / (2 * h), 0.0)
        np.testing.assert_allclose(dlp[:, :, k], fd_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sol.dccp_dtheta().sum(axis=1), 0.0, atol=1e-10)


# ---------------------------------------------------------------- kernels against NumPy twins
@pytest.mark.parametrize("make", MODELS)
def test_kernels_equal_numpy_twins(make):
    model, params = make()
    ct = model.compiled_transitions(params)
    trans = tuple(ct)[2:]
    rng = np.random.default_rng(7)
    S, A = model.n_states, model.n_actions
    V = rng.normal(size=S)
    EV = np.empty((S, A))
    kb.expected_values(V, EV, *trans)
    np.testing.assert_allclose(EV, kn.expected_values(V, ct), atol=1e-12)
    W = rng.normal(size=(S, 3))
    EW = np.empty((S, A, 3))
    kb.expected_values_columns(W, EW, *trans)
    np.testing.assert_allclose(EW, kn.expected_values_columns(W, ct), atol=1e-12)
    for k in range(3):  # the columns' arithmetic is the vector kernel's, to the last bit
        kb.expected_values(np.ascontiguousarray(W[:, k]), EV, *trans)
        np.testing.assert_array_equal(EW[:, :, k], EV)
    w = rng.random((S, A))
    out = np.empty(S)
    kb.push_forward(w, out, *trans)
    np.testing.assert_allclose(out, kn.push_forward(w, ct), atol=1e-12)
    u = model.utilities(params)
    v, TV, pi = np.empty((S, A)), np.empty(S), np.empty((S, A))
    kb.bellman(V, u, model.feasible, model.beta, EV, v, TV, pi, *trans)
    v2, TV2, pi2 = kn.bellman(V, u, model.feasible, model.beta, ct)
    np.testing.assert_allclose(TV, TV2, atol=1e-12)
    np.testing.assert_allclose(pi, pi2, atol=1e-14)
    np.testing.assert_array_equal(np.isinf(v), np.isinf(v2))
    rows, cols, vals = kb.policy_matrix_coo(pi, *trans)
    P = np.zeros((S, S))
    np.add.at(P, (rows, cols), vals)
    np.testing.assert_allclose(P, kn.policy_matrix(pi, ct), atol=1e-14)
    x = rng.normal(size=S)
    mv = np.empty(S)
    kb.policy_matvec(x, pi, model.beta, np.empty((S, A)), mv, *trans)
    np.testing.assert_allclose(mv, x - model.beta * P @ x, atol=1e-12)
    kb.policy_matvec_transposed(x, pi, model.beta, np.empty((S, A)), mv, *trans)
    np.testing.assert_allclose(mv, x - model.beta * P.T @ x, atol=1e-12)


# ---------------------------------------------------------------- configuration
def test_solver_configuration_is_validated():
    with pytest.raises(ValueError, match="unknown solver method 'newton'.*newton_kantorovich"):
        Solver("newton")
    with pytest.raises(ValueError, match="unknown linear_solver 'lu'"):
        Solver(linear_solver="lu")
    with pytest.raises(ValueError, match="tol must be a positive number"):
        Solver(tol=0)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        Solver(max_iter=2.5)
    with pytest.raises(ValueError, match="on_failure"):
        Solver(on_failure="ignore")
    assert "Rust" in str(Solver())


def test_non_convergence_warns_or_raises():
    bus = ddc.models.rust_bus(90, beta=0.99)
    with pytest.warns(ddc.ConvergenceWarning, match="residual"):
        sol = bus.solve(bus.true_params, Solver("successive_approximation", max_iter=5))
    assert not sol.converged
    with pytest.raises(ddc.ConvergenceError, match="max_iter"):
        bus.solve(bus.true_params, Solver("successive_approximation", max_iter=5,
                                          on_failure="raise"))


def test_precompile_exercises_every_solver_path():
    """``python -m ddc.precompile`` after installation: every method and linear solver runs."""
    from ddc.precompile import precompile

    assert precompile() > 0.0


@pytest.mark.parametrize("shape", [(180, 90), (5, 7), (1, 1), (4, 3)], ids=str)
def test_compile_dense_rows_as_scipy_converts_them(shape):
    """The kernels' CSR layout of a dense table (built from its nonzeros directly) equals the
    layout from scipy's conversion of the same table, array for array and dtype for dtype."""
    import scipy.sparse as sp

    from ddc.transitions import _compile

    rng = np.random.default_rng(1)
    table = rng.normal(size=shape) * (rng.random(shape) < 0.3)
    table[0] = 0.0  # an empty row
    dense = _compile(10, 2, [(1, shape[1], 0, [], table)])
    converted = _compile(10, 2, [(1, shape[1], 0, [], sp.csr_matrix(table))])
    for field in dense._fields:
        a, b = getattr(dense, field), getattr(converted, field)
        assert np.array_equal(a, b), field
        assert np.asarray(a).dtype == np.asarray(b).dtype, field
