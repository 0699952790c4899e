"""Plain NumPy twins of :mod:`ddc.kernels.bellman`, used only by the tests.

They build dense ``S x S`` transition matrices and are meant for small models: they are the
slow, obviously correct reference that the numba kernels are checked against.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ddc.kernels.bellman import EULER_GAMMA
from ddc.transitions import CompiledTransitions


def transition_matrix(ct: CompiledTransitions, a: int) -> np.ndarray:
    """Dense ``P_a[s, s']`` as the product of the factors' rows."""
    S = ct.n_states
    s = np.arange(S)
    P = np.ones((S, S))
    rest_s = s.copy()
    for f in range(len(ct.f_stride)):
        stride, size = ct.f_stride[f], ct.f_size[f]
        x = (s // stride) % size
        rest_s = rest_s - x * stride
        cfg = a * ct.f_action_mult[f] + sum(
            ((s // ct.g_stride[g]) % ct.g_size[g]) * ct.g_mult[g]
            for g in range(ct.g_ptr[f], ct.g_ptr[f + 1])
        )
        rows = ct.row_offset[f] + cfg
        dense = np.zeros((S, size))
        for i, r in enumerate(rows):
            lo, hi = ct.indptr[r], ct.indptr[r + 1]
            dense[i, ct.indices[lo:hi]] = ct.data[lo:hi]
        P *= dense[:, x]  # column s' needs F(x_f(s') | s, a)
    P *= rest_s[:, None] == rest_s[None, :]
    return P


def expected_values(V: np.ndarray, ct: CompiledTransitions) -> np.ndarray:
    """``E[V(s') | s, a]`` with dense matrices, shape (S, A)."""
    return np.column_stack([transition_matrix(ct, a) @ V for a in range(ct.n_actions)])


def expected_values_columns(W: np.ndarray, ct: CompiledTransitions) -> np.ndarray:
    """``E[W(s', k) | s, a]`` for every column of ``W`` with dense matrices, shape (S, A, m)."""
    return np.stack([transition_matrix(ct, a) @ W for a in range(ct.n_actions)], axis=1)


def push_forward(w: np.ndarray, ct: CompiledTransitions) -> np.ndarray:
    """``sum_{s, a} w[s, a] P(s' | s, a)`` with dense matrices."""
    return sum(w[:, a] @ transition_matrix(ct, a) for a in range(ct.n_actions))


def bellman(V, u, feasible, beta, ct):
    """``(v, T(V), pi)`` with dense matrices and :func:`scipy.special.logsumexp`."""
    v = np.where(feasible, u + beta * expected_values(V, ct), -np.inf)
    TV = logsumexp(v, axis=1) + EULER_GAMMA
    pi = np.exp(v - (TV - EULER_GAMMA)[:, None])
    return v, TV, pi


def policy_matrix(pi: np.ndarray, ct: CompiledTransitions) -> np.ndarray:
    """Dense ``P_pi = sum_a diag(pi_a) P_a``."""
    return sum(pi[:, [a]] * transition_matrix(ct, a) for a in range(ct.n_actions))


def solve_dense(u, feasible, beta, ct, rtol=1e-13, max_iter=200):
    """Fixed point of the Bellman operator by policy iteration with dense solves.

    Stops at a residual of ``rtol * max(1, max|V|)``, or when the residual stops decreasing
    below ``1e-9 * max(1, max|V|)`` (the rounding floor of the values, reached at beta near 1).
    """
    S = u.shape[0]
    V = np.zeros(S)
    previous = np.inf
    for _ in range(max_iter):
        _, TV, pi = bellman(V, u, feasible, beta, ct)
        residual = np.max(np.abs(TV - V))
        scale = max(1.0, np.max(np.abs(TV)))
        if residual <= rtol * scale or (residual >= previous and residual <= 1e-9 * scale):
            return TV
        previous = residual
        ent = np.where(pi > 0, pi * np.log(np.where(pi > 0, pi, 1.0)), 0.0).sum(axis=1)
        r = np.where(feasible, pi * u, 0.0).sum(axis=1) - ent + EULER_GAMMA
        V = np.linalg.solve(np.eye(S) - beta * policy_matrix(pi, ct), r)
    raise RuntimeError("dense policy iteration did not converge")
