"""The banded-plus-low-rank solve of the policy system against the dense system.

Oracle: the dense :math:`I - \\beta P_\\pi` from the NumPy twin
(:func:`ddc.kernels.bellman_numpy.policy_matrix`) solved by ``numpy.linalg.solve``; agreement
to 1e-10 of the solution's size.
"""

import numpy as np
import pytest

import ddc
from ddc import Solver
from ddc.banded_solver import banded_structure
from ddc.kernels import bellman_numpy as kn
from ddc.solver import PolicySystem


@pytest.mark.parametrize("n_states", [90, 175, 600])
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transposed"])
def test_banded_solve_equals_dense(n_states, transpose):
    bus = ddc.models.rust_bus(n_states, beta=0.9999)
    sol = bus.solve(bus.true_params, Solver(linear_solver="dense", dense_max=1000))
    st = banded_structure(sol.transitions, bus.n_actions)
    assert st is not None and st.reset == [1] and st.lower == 0
    system = PolicySystem(sol.pi, bus.beta, sol.transitions, Solver(linear_solver="banded"))
    M = np.eye(n_states) - bus.beta * kn.policy_matrix(sol.pi, sol.transitions)
    if transpose:
        M = M.T
    b = np.random.default_rng(2).normal(size=(n_states, 3))
    exact = np.linalg.solve(M, b)
    got = system.solve(b, transpose=transpose)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-10 * np.abs(exact).max())
    np.testing.assert_allclose(system.solve(b[:, 1], transpose=transpose), exact[:, 1], rtol=0,
                               atol=1e-10 * np.abs(exact).max())


def test_auto_picks_banded_and_agrees_with_dense():
    bus = ddc.models.rust_bus(175)
    a = bus.solve(bus.true_params, Solver(linear_solver="dense"))
    b = bus.solve(bus.true_params)
    assert b.linear_solver == "banded"
    np.testing.assert_allclose(b.V, a.V, rtol=0, atol=1e-12 / (1 - bus.beta))
    np.testing.assert_allclose(b.dlogccp_dparams(), a.dlogccp_dparams(), rtol=0, atol=1e-9)


def test_wide_band_is_refused_by_name():
    model = ddc.models.membership()
    assert banded_structure(model.compiled_transitions(), model.n_actions) is None
    with pytest.raises(ValueError, match="narrow band"):
        model.solve(model.true_params, Solver(linear_solver="banded"))
