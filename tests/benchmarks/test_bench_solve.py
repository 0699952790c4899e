"""Benchmarks of the Bellman solver: one full solve from V = 0 to ``tol = 1e-12``.

Run with::

    python -m pytest tests/benchmarks --benchmark-only

(the default test run skips them: ``--benchmark-skip`` is in the pytest ``addopts``). Round
counts are sized so that the file runs in about two minutes on two cores. Each benchmark asserts
that its solution converged; none asserts a time.

Groups (pytest-benchmark prints one table per group):

* ``bus-90``, ``bus-175``: Rust's bus at beta = 0.9999 with the default solver (Newton-Kantorovich
  polyalgorithm, dense LU) against two plain NumPy baselines: the test twin
  :func:`ddc.kernels.bellman_numpy.solve_dense` (policy iteration with dense matrices, which it
  rebuilds from the factors at every step), and the same policy iteration with the dense
  ``P_a`` built once beforehand (pure linear algebra, the fairer baseline). Both run with one
  BLAS thread, as the solver's dense LU does.
* ``bus-2000``: 2,000 mileage bins (sparse LU).
* ``membership-234``: the default membership model, Newton-Kantorovich against successive
  approximation (beta = 0.99, about 2,700 contraction steps).
* ``membership-100100``, ``membership-26000``, ``membership-1001000``: 385 markets x 13 plans x
  5 ship x 4 video = 100,100 states, 10 markets x 13 plans x 20 ship x 10 video = 26,000 states
  (dense engagement rows: 200 nonzeros a row instead of 20) and 3,850 markets = 1,001,000
  states, solved to ``tol = 1e-10`` with the default (block/Schur) solver, with sparse LU of
  the whole system (the former default), and by plain SciPy policy iteration with prebuilt
  sparse matrices and ``spsolve``. Peak memory of the process is in ``extra_info``.
* ``startup``: a fresh Python process importing ``ddc`` and solving ``rust_bus(175)``, with an
  empty numba cache (compilation) and with a warm one. The import and first-solve times are
  stored in ``extra_info`` (``--benchmark-json`` keeps them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import ThreadpoolController

import ddc
from ddc import Solver
from ddc.kernels import bellman as kb
from ddc.kernels import bellman_numpy as kn
from ddc.kernels.bellman import EULER_GAMMA

BUS_BETA = 0.9999
# the twin's default rtol (1e-13 of max |V|) is below the rounding floor of the residual at
# beta = 0.9999 (about 4.5e-13 of max |V| ~ 4,400); 1e-12 is reachable
DENSE_RTOL = 1e-12


def solved(sol):
    """Check a Solution (a correctness check, not a timing assertion) and return it."""
    assert sol.converged, sol
    assert sol.residual <= 1e-12, sol
    return sol


# --------------------------------------------------------------------------- Rust's bus


@pytest.fixture(scope="module", params=[90, 175, 2000], ids=lambda n: f"{n}")
def bus(request):
    model = ddc.models.rust_bus(n_states=request.param, beta=BUS_BETA)
    model.solve(model.true_params)  # compile the kernels and the transitions
    return model


def test_bus_newton_kantorovich(benchmark, bus):
    benchmark.group = f"bus-{bus.n_states}"
    rounds = {90: 100, 175: 100, 2000: 20}[bus.n_states]
    sol = benchmark.pedantic(bus.solve, args=(bus.true_params,), rounds=rounds, warmup_rounds=1)
    solved(sol)
    benchmark.extra_info.update(iterations=sol.iterations, newton_steps=sol.newton_steps,
                                linear_solver=sol.linear_solver)


def dense_policy_iteration(u, feasible, beta, P, rtol=DENSE_RTOL, max_iter=200):
    """Logit policy iteration with prebuilt dense ``P[a]`` (S x S), plain NumPy."""
    S = u.shape[0]
    u = np.where(feasible, u, 0.0)
    V = np.zeros(S)
    eye = np.eye(S)
    for _ in range(max_iter):
        v = np.where(feasible, u + beta * np.einsum("ast,t->sa", P, V), -np.inf)
        vmax = v.max(axis=1, keepdims=True)
        e = np.exp(v - vmax)
        TV = np.log(e.sum(axis=1)) + vmax[:, 0] + EULER_GAMMA
        if np.max(np.abs(TV - V)) <= rtol * max(1.0, np.max(np.abs(TV))):
            return TV
        pi = e / e.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            logpi = np.where(pi > 0, np.log(pi), 0.0)
        r = (pi * (u - logpi)).sum(axis=1) + EULER_GAMMA
        V = np.linalg.solve(eye - beta * np.einsum("sa,ast->st", pi, P), r)
    raise RuntimeError("dense policy iteration did not converge")


@pytest.mark.parametrize("n_states", [90, 175])
@pytest.mark.parametrize("baseline", ["solve_dense", "prebuilt_dense"])
def test_bus_numpy_baseline(benchmark, n_states, baseline):
    benchmark.group = f"bus-{n_states}"
    model = ddc.models.rust_bus(n_states=n_states, beta=BUS_BETA)
    params = model.true_params
    u = model.utilities(params)
    ct = model.compiled_transitions(params)
    if baseline == "solve_dense":
        rounds = 10
        args = (u, model.feasible, model.beta, ct, DENSE_RTOL)
        fn = kn.solve_dense
    else:
        rounds = 50
        P = np.stack([kn.transition_matrix(ct, a) for a in range(model.n_actions)])
        args = (u, model.feasible, model.beta, P)
        fn = dense_policy_iteration

    blas = ThreadpoolController()  # inspected once: threadpool_limits() costs a millisecond

    def run(*a):
        # one BLAS thread, as the solver uses for dense LU: on a busy two-core machine a
        # multi-threaded OpenBLAS solve of a 175 x 175 system can take 100 times longer
        with blas.limit(limits=1, user_api="blas"):
            return fn(*a)

    V = benchmark.pedantic(run, args=args, rounds=rounds, warmup_rounds=1)
    # converged (it raises otherwise) to the same fixed point: a residual of 1e-12 * max |V|
    # bounds the error by that / (1 - beta)
    ref = model.solve(params).V
    np.testing.assert_allclose(V, ref, rtol=0, atol=1e-12 * np.abs(ref).max() / (1 - BUS_BETA))


# --------------------------------------------------------------------------- membership


@pytest.fixture(scope="module")
def membership():
    model = ddc.models.membership()
    model.solve(model.true_params)
    return model


@pytest.mark.benchmark(group="membership-234")
def test_membership_newton_kantorovich(benchmark, membership):
    sol = benchmark.pedantic(membership.solve, args=(membership.true_params,), rounds=100,
                             warmup_rounds=1)
    solved(sol)
    benchmark.extra_info.update(iterations=sol.iterations, newton_steps=sol.newton_steps)


@pytest.mark.benchmark(group="membership-234")
def test_membership_successive_approximation(benchmark, membership):
    solver = Solver("successive_approximation")
    sol = benchmark.pedantic(membership.solve, args=(membership.true_params, solver), rounds=10,
                             warmup_rounds=1)
    solved(sol)
    benchmark.extra_info.update(iterations=sol.iterations)


def large_membership(n_markets: int, n_ship: int, n_video: int):
    """A membership model with ``n_markets`` price regimes: monthly prices evenly spread over
    $11.99-17.99 and annual prices ``10 * monthly - 10.90`` (the default markets' relation:
    12.99 -> 119, 14.99 -> 139, 16.99 -> 159)."""
    pm = np.linspace(11.99, 17.99, n_markets)
    return ddc.models.membership(n_ship=n_ship, n_video=n_video, prices_monthly=pm,
                                 prices_annual=10.0 * pm - 10.9)


LARGE = {"100100": (385, 5, 4), "26000": (10, 20, 10), "1001000": (3850, 5, 4)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``VmHWM``), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


@pytest.mark.parametrize(
    ("size", "linear_solver", "rounds"),
    [pytest.param("100100", "auto", 3, id="100100-states-5x4-engagement"),
     pytest.param("100100", "sparse", 1, id="100100-states-sparse-LU"),
     pytest.param("26000", "auto", 3, id="26000-states-20x10-engagement"),
     pytest.param("26000", "sparse", 1, id="26000-states-sparse-LU"),
     pytest.param("1001000", "auto", 1, id="1001000-states-5x4-engagement")],
)
def test_membership_large(benchmark, size, linear_solver, rounds):
    """Default solver (``auto``: the block/Schur solve of :mod:`ddc.block_solver`, the
    structure computed in the warm-up round) and, for comparison, sparse LU of the whole
    system (the former default)."""
    n_markets, n_ship, n_video = LARGE[size]
    benchmark.group = f"membership-{size}"
    model = large_membership(n_markets, n_ship, n_video)
    assert model.n_states == n_markets * 13 * n_ship * n_video
    solver = Solver(linear_solver=linear_solver, tol=1e-10)
    sol = benchmark.pedantic(model.solve, args=(model.true_params, solver), rounds=rounds,
                             warmup_rounds=1)
    assert sol.converged and sol.residual <= 1e-10, sol
    benchmark.extra_info.update(n_states=model.n_states, iterations=sol.iterations,
                                newton_steps=sol.newton_steps, linear_solver=sol.linear_solver,
                                row_nnz=int(np.prod(model.compiled_transitions().row_nnz_max())),
                                peak_rss_mb=peak_rss_mb())


def sparse_policy_iteration(u, feasible, beta, P, tol=1e-10, max_iter=200):
    """Logit policy iteration with prebuilt sparse ``P[a]`` and SuperLU, plain SciPy."""
    S = u.shape[0]
    u = np.where(feasible, u, 0.0)
    V = np.zeros(S)
    eye = sp.identity(S, format="csc")
    for _ in range(max_iter):
        v = np.where(feasible, u + beta * np.column_stack([Pa @ V for Pa in P]), -np.inf)
        vmax = v.max(axis=1, keepdims=True)
        e = np.exp(v - vmax)
        TV = np.log(e.sum(axis=1)) + vmax[:, 0] + EULER_GAMMA
        if np.max(np.abs(TV - V)) <= tol:
            return TV
        pi = e / e.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            logpi = np.where(pi > 0, np.log(pi), 0.0)
        r = (pi * (u - logpi)).sum(axis=1) + EULER_GAMMA
        P_pi = sum(sp.diags(pi[:, a]) @ P[a] for a in range(len(P)))
        V = spla.spsolve((eye - beta * P_pi).tocsc(), r)
    raise RuntimeError("sparse policy iteration did not converge")


@pytest.mark.parametrize("size", ["100100", "26000"])
def test_membership_large_scipy_baseline(benchmark, size):
    """The same fixed point by plain SciPy: policy iteration, ``P_a`` prebuilt as sparse
    matrices, SuperLU (``spsolve``) at every step."""
    benchmark.group = f"membership-{size}"
    model = large_membership(*LARGE[size])
    params = model.true_params
    ct = model.compiled_transitions(params)
    P = []
    for a in range(model.n_actions):  # rows of P_a through the kernel that assembles P_pi
        pi = np.zeros((model.n_states, model.n_actions))
        pi[:, a] = 1.0
        r, c, v = kb.policy_matrix_coo(pi, *tuple(ct)[2:])
        P.append(sp.csr_matrix((v, (r, c)), shape=(model.n_states, model.n_states)))
    u = model.utilities(params)
    V = benchmark.pedantic(sparse_policy_iteration, args=(u, model.feasible, model.beta, P),
                           rounds=1, warmup_rounds=0)
    ref = model.solve(params).V
    np.testing.assert_allclose(V, ref, rtol=0, atol=1e-9 / (1 - model.beta))


# --------------------------------------------------------------------------- start-up


STARTUP = """
import time
t0 = time.perf_counter()
import ddc
t1 = time.perf_counter()
m = ddc.models.rust_bus(175)
s = m.solve(m.true_params)
t2 = time.perf_counter()
import json
print(json.dumps({"import_s": t1 - t0, "first_solve_s": t2 - t1, "converged": s.converged}))
"""


def run_fresh_process(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", STARTUP], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="startup")
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_startup_import_and_first_solve(benchmark, tmp_path, cache):
    """Wall time of a fresh process: import ddc, build and solve rust_bus(175). ``cold``: an empty
    numba cache directory per round (every kernel compiles); ``warm``: the cache filled by the
    warm-up round."""
    counter = iter(range(100))

    def fresh_dir():
        d = tmp_path / f"numba-{next(counter)}"
        d.mkdir()
        return (str(d),), {}

    if cache == "cold":
        info = benchmark.pedantic(run_fresh_process, setup=fresh_dir, rounds=2)
    else:
        info = benchmark.pedantic(run_fresh_process, args=(str(tmp_path),), rounds=3,
                                  warmup_rounds=1)
    assert info["converged"]
    benchmark.extra_info.update(import_s=info["import_s"], first_solve_s=info["first_solve_s"])
