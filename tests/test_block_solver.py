"""The block / Schur-complement solve of the policy system against the dense system.

Oracle: the dense :math:`I - \\beta P_\\pi` built by the NumPy twin
(:func:`ddc.kernels.bellman_numpy.policy_matrix`) and solved by ``numpy.linalg.solve``;
agreement to 1e-10 of the solution's size (both are direct solves of systems with condition
number below :math:`2 / (1 - \\beta)`).
"""

import numpy as np
import pytest

import ddc
from ddc import Factor, FactoredTransitions, LinearUtility, Model, Solver
from ddc import StateVariable as SV
from ddc.block_solver import block_structure
from ddc.kernels import bellman_numpy as kn
from ddc.solver import PolicySystem


def membership(n_markets=4, n_ship=3, n_video=2):
    pm = np.linspace(11.99, 17.99, n_markets)
    return ddc.models.membership(n_ship=n_ship, n_video=n_video, prices_monthly=pm,
                                 prices_annual=10.0 * pm - 10.9)


def cyclic_model(seed=0, beta=0.95):
    """A permanent variable ``g`` (3 blocks), a stochastic ``x`` and a ``y`` conditioned on
    it; where ``x`` is "hi" only action 0 is feasible, and x can stay "hi", so the
    single-action states form cycles (no chain to unroll)."""
    rng = np.random.default_rng(seed)
    space = [SV("g", (0, 1, 2)), SV("x", ("lo", "mid", "hi")), SV("y", (0, 1, 2, 3))]
    S, A, K = 36, 3, 3

    def stochastic(*shape):
        t = rng.random(shape) + 0.05
        return t / t.sum(axis=-1, keepdims=True)

    factors = [Factor("x", stochastic(A, 3, 3), given=("action", "x")),
               Factor("y", stochastic(A, 3, 4, 4), given=("action", "x", "y"))]
    feasible = np.ones((S, A), dtype=bool)
    x = (np.arange(S) // 4) % 3
    feasible[x == 2, 1:] = False
    model = Model(space, ["a", "b", "c"], LinearUtility(rng.normal(size=(S, A, K)),
                                                        ["t0", "t1", "t2"]),
                  FactoredTransitions(factors), beta=beta, feasible=feasible)
    return model, rng.normal(size=K)


MODELS = [
    pytest.param(lambda: (membership(), membership().true_params), id="membership-4-markets"),
    pytest.param(cyclic_model, id="cyclic-single-action-states"),
]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transposed"])
def test_block_solve_equals_dense(make, transpose):
    model, params = make()
    sol = model.solve(params, Solver(linear_solver="dense"))
    st = block_structure(sol.transitions, model.feasible, model.beta)
    assert st is not None and st.n_blocks > 1 and st.L.size > 0
    system = PolicySystem(sol.pi, model.beta, sol.transitions, Solver(linear_solver="blocks"),
                          model.feasible)
    assert system.kind == "blocks"
    M = np.eye(model.n_states) - model.beta * kn.policy_matrix(sol.pi, sol.transitions)
    if transpose:
        M = M.T
    b = np.random.default_rng(1).normal(size=(model.n_states, 3))
    exact = np.linalg.solve(M, b)
    got = system.solve(b, transpose=transpose)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-10 * np.abs(exact).max())
    np.testing.assert_allclose(system.solve(b[:, 0], transpose=transpose), exact[:, 0], rtol=0,
                               atol=1e-10 * np.abs(exact).max())


@pytest.mark.parametrize("make", MODELS)
def test_solutions_and_derivatives_agree_with_sparse_lu(make):
    model, params = make()
    a = model.solve(params, Solver(linear_solver="sparse"))
    b = model.solve(params, Solver(linear_solver="blocks"))
    assert b.converged and b.linear_solver == "blocks"
    np.testing.assert_allclose(b.V, a.V, rtol=0, atol=1e-10 / (1 - model.beta))
    np.testing.assert_allclose(b.pi, a.pi, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.dlogccp_dtheta(), a.dlogccp_dtheta(), rtol=0, atol=1e-8)


def test_auto_picks_blocks_for_large_structured_models():
    model = membership(n_markets=6)  # 468 states > dense_max
    sol = model.solve(model.true_params)
    assert sol.linear_solver == "blocks" and sol.converged


def test_no_structure_is_refused_by_name():
    bus = ddc.models.rust_bus(90)
    assert block_structure(bus.compiled_transitions(), bus.feasible, bus.beta) is None
    with pytest.raises(ValueError, match="never change or states with a single feasible"):
        bus.solve(bus.true_params, Solver(linear_solver="blocks"))


def test_blocks_that_differ_are_not_shared():
    """A factor conditioned on the otherwise permanent variable: blocks differ, so ``g`` is
    kept inside the block (one block), and the single-action states are still eliminated."""
    model, theta = cyclic_model()
    factors = model.transitions().factors
    rng = np.random.default_rng(3)
    t = rng.random((3, 3, 3, 3)) + 0.05
    x_by_g = Factor("x", t / t.sum(axis=-1, keepdims=True), given=("g", "action", "x"))
    changed = model.replace(transitions=FactoredTransitions([x_by_g, factors[1]]))
    st = block_structure(changed.compiled_transitions(), changed.feasible, changed.beta)
    assert st is not None and st.n_blocks == 1
    a = changed.solve(theta, Solver(linear_solver="dense"))
    b = changed.solve(theta, Solver(linear_solver="blocks"))
    np.testing.assert_allclose(b.V, a.V, rtol=0, atol=1e-10 / (1 - changed.beta))
