"""Numerical kernels (numba, ``cache=True``) and their plain NumPy twins.

The kernels compile on first use and numba keeps the machine code in its cache (next to the
sources, or in ``NUMBA_CACHE_DIR``); later processes load it. :func:`precompile` fills the
cache ahead of time, after installation::

    python -m ddc.kernels
"""

from __future__ import annotations

import time

__all__ = ["precompile"]


def precompile() -> float:
    """Compile every kernel (or load it from numba's cache) by solving two small models with
    every method and linear solver, and differentiating the solutions; returns the seconds
    taken (a few seconds with an empty cache, a fraction of one with a full one)."""
    import numpy as np

    import ddc
    from ddc.solver import PolicySystem, Solver

    start = time.perf_counter()
    bus = ddc.models.rust_bus(60, beta=0.95)
    params = bus.true_params
    for method in ("newton_kantorovich", "successive_approximation", "policy_iteration"):
        bus.solve(params, Solver(method))
    for linear_solver in ("dense", "sparse", "gmres", "banded"):
        sol = bus.solve(params, Solver(linear_solver=linear_solver))
        sol.policy_system.solve(np.ones(bus.n_states), transpose=True)
    sol.dlogccp_dparams()
    sol.transitions.push(sol.pi)
    member = ddc.models.membership()
    sol = member.solve(member.true_params)
    PolicySystem(sol.pi, member.beta, sol.transitions, Solver(linear_solver="gmres"),
                 member.feasible).solve(np.ones(member.n_states), transpose=True)
    member.solve(member.true_params, Solver(linear_solver="blocks")).dlogccp_dtheta()
    return time.perf_counter() - start
