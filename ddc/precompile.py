"""Fill numba's cache ahead of time, after installation::

    python -m ddc.precompile

The kernels (:mod:`ddc.kernels`) compile on first use and numba keeps the machine code in its
cache (next to the sources, or in ``NUMBA_CACHE_DIR``); later processes load it. This module
drives the solver through every kernel, so it lives beside the solver, not among the kernels
(which stay pure functions over arrays).
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


if __name__ == "__main__":
    print(f"ddc kernels compiled (or loaded from numba's cache) in {precompile():.1f} s")
