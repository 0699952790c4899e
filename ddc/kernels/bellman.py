"""Numba kernels of the logit Bellman operator over factored transitions.

Every kernel is a pure function over arrays; outputs are passed in where they are large. The
transition arguments ``trans`` are the arrays of :class:`ddc.transitions.CompiledTransitions`
after its two integer sizes, i.e. ``tuple(ct)[2:]``. :mod:`ddc.kernels.bellman_numpy` holds a
plain NumPy twin of each kernel, used by the tests to check them.

The Bellman operator, with type-I extreme value shocks of scale 1, is

.. math::

    v(s, a) = u(s, a) + \\beta \\, E[V(s') \\mid s, a], \\qquad
    T(V)(s) = m(s) + \\log \\sum_{a \\in A(s)} e^{v(s, a) - m(s)} + \\gamma,

with :math:`m(s) = \\max_{a \\in A(s)} v(s, a)` (log-sum-exp with a per-row maximum) and the
logit choice probabilities :math:`\\pi(a \\mid s) = e^{v(s,a) - T(V)(s) + \\gamma}`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EULER_GAMMA = 0.5772156649015329


@njit(cache=True)
def _row_of(i, a, f, f_action_mult, row_offset, g_ptr, g_stride, g_size, g_mult):
    cfg = a * f_action_mult[f]
    for g in range(g_ptr[f], g_ptr[f + 1]):
        cfg += ((i // g_stride[g]) % g_size[g]) * g_mult[g]
    return row_offset[f] + cfg


@njit(cache=True)
def _apply_factor(inp, out, a, f, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride,
                  g_size, g_mult, indptr, indices, data):
    """out[s] = sum_x' F_f(x' | s, a) inp[s with variable f set to x']."""
    stride = f_stride[f]
    size = f_size[f]
    for i in range(inp.shape[0]):
        base = i - ((i // stride) % size) * stride
        r = _row_of(i, a, f, f_action_mult, row_offset, g_ptr, g_stride, g_size, g_mult)
        acc = 0.0
        for k in range(indptr[r], indptr[r + 1]):
            acc += data[k] * inp[base + indices[k] * stride]
        out[i] = acc


@njit(cache=True)
def _apply_factor_transposed(inp, out, a, f, f_stride, f_size, f_action_mult, row_offset, g_ptr,
                             g_stride, g_size, g_mult, indptr, indices, data):
    """out[s'] = sum_s inp[s] F_f(x'_f | s, a), s' = s with variable f set to x'_f."""
    stride = f_stride[f]
    size = f_size[f]
    out[:] = 0.0
    for i in range(inp.shape[0]):
        w = inp[i]
        if w == 0.0:
            continue
        base = i - ((i // stride) % size) * stride
        r = _row_of(i, a, f, f_action_mult, row_offset, g_ptr, g_stride, g_size, g_mult)
        for k in range(indptr[r], indptr[r + 1]):
            out[base + indices[k] * stride] += data[k] * w


@njit(cache=True)
def expected_values(V, out, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                    g_mult, indptr, indices, data):
    """``out[s, a] = E[V(s') | s, a]`` for every state and action (``out`` has shape (S, A))."""
    S = V.shape[0]
    n_f = f_stride.shape[0]
    buf_a = np.empty(S)
    buf_b = np.empty(S)
    for a in range(out.shape[1]):
        src = V
        for f in range(n_f):
            dst = buf_a if f % 2 == 0 else buf_b
            _apply_factor(src, dst, a, f, f_stride, f_size, f_action_mult, row_offset, g_ptr,
                          g_stride, g_size, g_mult, indptr, indices, data)
            src = dst
        for i in range(S):
            out[i, a] = src[i]


@njit(cache=True)
def _apply_factor_columns(inp, out, a, f, f_stride, f_size, f_action_mult, row_offset, g_ptr,
                          g_stride, g_size, g_mult, indptr, indices, data):
    """:func:`_apply_factor` on every column of ``inp`` (S, m) at once: each row's index work
    is done once for all columns, the sums taken in the same order."""
    stride = f_stride[f]
    size = f_size[f]
    m = inp.shape[1]
    for i in range(inp.shape[0]):
        base = i - ((i // stride) % size) * stride
        r = _row_of(i, a, f, f_action_mult, row_offset, g_ptr, g_stride, g_size, g_mult)
        for c in range(m):
            out[i, c] = 0.0
        for k in range(indptr[r], indptr[r + 1]):
            w = data[k]
            j = base + indices[k] * stride
            for c in range(m):
                out[i, c] += w * inp[j, c]


@njit(cache=True)
def expected_values_columns(W, out, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride,
                            g_size, g_mult, indptr, indices, data):
    """``out[s, a, k] = E[W(s', k) | s, a]`` for every column ``k`` of ``W`` (S, m), with the
    arithmetic of :func:`expected_values` on each column (``out``: (S, A, m))."""
    S, m = W.shape
    buf_a = np.empty((S, m))
    buf_b = np.empty((S, m))
    n_f = f_stride.shape[0]
    for a in range(out.shape[1]):
        src = W
        for f in range(n_f):
            dst = buf_a if f % 2 == 0 else buf_b
            _apply_factor_columns(src, dst, a, f, f_stride, f_size, f_action_mult, row_offset,
                                  g_ptr, g_stride, g_size, g_mult, indptr, indices, data)
            src = dst
        for i in range(S):
            for k in range(m):
                out[i, a, k] = src[i, k]


@njit(cache=True)
def push_forward(w, out, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                 g_mult, indptr, indices, data):
    """``out[s'] = sum_{s, a} w[s, a] P(s' | s, a)``: one step of a distribution (``w``: (S, A))."""
    S = w.shape[0]
    n_f = f_stride.shape[0]
    buf_a = np.empty(S)
    buf_b = np.empty(S)
    out[:] = 0.0
    for a in range(w.shape[1]):
        src = np.ascontiguousarray(w[:, a])
        for f in range(n_f - 1, -1, -1):
            dst = buf_a if f % 2 == 0 else buf_b
            _apply_factor_transposed(src, dst, a, f, f_stride, f_size, f_action_mult, row_offset,
                                     g_ptr, g_stride, g_size, g_mult, indptr, indices, data)
            src = dst
        for i in range(S):
            out[i] += src[i]


@njit(cache=True)
def logit_step(EV, u, feasible, beta, v_out, V_out, pi_out):
    """Choice-specific values, ex-ante value and logit CCPs from ``EV[s, a] = E[V(s')|s, a]``.

    Returns nothing; fills ``v_out`` (S, A; ``-inf`` where infeasible), ``V_out`` (S) and
    ``pi_out`` (S, A; 0 where infeasible).
    """
    S, A = u.shape
    for i in range(S):
        m = -np.inf
        for a in range(A):
            if feasible[i, a]:
                x = u[i, a] + beta * EV[i, a]
                v_out[i, a] = x
                if x > m:
                    m = x
            else:
                v_out[i, a] = -np.inf
        total = 0.0
        for a in range(A):
            if feasible[i, a]:
                e = np.exp(v_out[i, a] - m)
                pi_out[i, a] = e
                total += e
            else:
                pi_out[i, a] = 0.0
        for a in range(A):
            pi_out[i, a] /= total
        V_out[i] = m + np.log(total) + EULER_GAMMA


@njit(cache=True)
def bellman(V, u, feasible, beta, EV, v_out, V_out, pi_out, f_stride, f_size, f_action_mult,
            row_offset, g_ptr, g_stride, g_size, g_mult, indptr, indices, data):
    """One application of the logit Bellman operator: ``V_out = T(V)``; fills ``EV``, ``v_out``,
    ``pi_out`` too."""
    expected_values(V, EV, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                    g_mult, indptr, indices, data)
    logit_step(EV, u, feasible, beta, v_out, V_out, pi_out)


@njit(cache=True)
def successive_approximation(V, u, feasible, beta, tol, max_iter, EV, v_out, V_out, pi_out,
                             f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                             g_mult, indptr, indices, data):
    """Iterate ``V <- T(V)`` in place until ``max|T(V) - V| <= tol`` or ``max_iter`` steps.

    With ``stop_ratio`` semantics left to the caller, returns ``(iterations, residual,
    last_ratio)`` where ``last_ratio`` is the ratio of the last two residuals (the observed
    contraction rate). On return ``V`` holds the last iterate and ``V_out`` its image ``T(V)``.
    """
    residual = np.inf
    ratio = 0.0
    it = 0
    S = V.shape[0]
    while it < max_iter:
        bellman(V, u, feasible, beta, EV, v_out, V_out, pi_out, f_stride, f_size, f_action_mult,
                row_offset, g_ptr, g_stride, g_size, g_mult, indptr, indices, data)
        it += 1
        r = 0.0
        for i in range(S):
            d = abs(V_out[i] - V[i])
            if d > r:
                r = d
        if residual < np.inf and residual > 0.0:
            ratio = r / residual
        residual = r
        if r <= tol:
            break
        for i in range(S):
            V[i] = V_out[i]
    return it, residual, ratio


@njit(cache=True)
def policy_matvec(x, pi, beta, EX, out, f_stride, f_size, f_action_mult, row_offset, g_ptr,
                  g_stride, g_size, g_mult, indptr, indices, data):
    """``out = (I - beta P_pi) x`` with ``P_pi = sum_a diag(pi_a) P_a``, matrix-free."""
    expected_values(x, EX, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                    g_mult, indptr, indices, data)
    S, A = pi.shape
    for i in range(S):
        acc = 0.0
        for a in range(A):
            acc += pi[i, a] * EX[i, a]
        out[i] = x[i] - beta * acc


@njit(cache=True)
def policy_matvec_transposed(y, pi, beta, W, out, f_stride, f_size, f_action_mult, row_offset,
                             g_ptr, g_stride, g_size, g_mult, indptr, indices, data):
    """``out = (I - beta P_pi)' y``, matrix-free (``W`` is (S, A) scratch)."""
    S, A = pi.shape
    for i in range(S):
        for a in range(A):
            W[i, a] = pi[i, a] * y[i]
    push_forward(W, out, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                 g_mult, indptr, indices, data)
    for i in range(S):
        out[i] = y[i] - beta * out[i]


@njit(cache=True)
def _row_product_count(i, a, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride,
                       g_size, g_mult, indptr):
    n = 1
    for f in range(f_stride.shape[0]):
        r = _row_of(i, a, f, f_action_mult, row_offset, g_ptr, g_stride, g_size, g_mult)
        n *= indptr[r + 1] - indptr[r]
    return n


@njit(cache=True)
def policy_matrix_coo(pi, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                      g_mult, indptr, indices, data):
    """Entries ``(rows, cols, vals)`` of ``P_pi = sum_a diag(pi_a) P_a`` (duplicates not summed).

    Each row of ``P_a`` is the product of its factors' rows; only states and actions with
    ``pi[s, a] > 0`` contribute.
    """
    S, A = pi.shape
    n_f = f_stride.shape[0]
    total = 0
    for i in range(S):
        for a in range(A):
            if pi[i, a] > 0.0:
                total += _row_product_count(i, a, f_stride, f_size, f_action_mult, row_offset,
                                            g_ptr, g_stride, g_size, g_mult, indptr)
    rows = np.empty(total, dtype=np.int64)
    cols = np.empty(total, dtype=np.int64)
    vals = np.empty(total)
    r_of = np.empty(n_f, dtype=np.int64)
    pos = np.empty(n_f, dtype=np.int64)
    k = 0
    for i in range(S):
        for a in range(A):
            p = pi[i, a]
            if p <= 0.0:
                continue
            base = i
            for f in range(n_f):
                r_of[f] = _row_of(i, a, f, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                                  g_mult)
                pos[f] = indptr[r_of[f]]
                base -= ((i // f_stride[f]) % f_size[f]) * f_stride[f]
                if indptr[r_of[f] + 1] == indptr[r_of[f]]:
                    base = -1
            if base < 0:
                continue
            while True:  # odometer over the product of the factors' rows
                col = base
                val = p
                for f in range(n_f):
                    col += indices[pos[f]] * f_stride[f]
                    val *= data[pos[f]]
                rows[k] = i
                cols[k] = col
                vals[k] = val
                k += 1
                f = n_f - 1
                while f >= 0:
                    pos[f] += 1
                    if pos[f] < indptr[r_of[f] + 1]:
                        break
                    pos[f] = indptr[r_of[f]]
                    f -= 1
                if f < 0:
                    break
    return rows[:k], cols[:k], vals[:k]


@njit(cache=True)
def policy_system_dense(pi, beta, M, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride,
                        g_size, g_mult, indptr, indices, data):
    """Fill the dense ``M = I - beta P_pi`` (small state spaces only)."""
    rows, cols, vals = policy_matrix_coo(pi, f_stride, f_size, f_action_mult, row_offset, g_ptr,
                                         g_stride, g_size, g_mult, indptr, indices, data)
    M[:, :] = 0.0
    for i in range(M.shape[0]):
        M[i, i] = 1.0
    for k in range(rows.shape[0]):
        M[rows[k], cols[k]] -= beta * vals[k]
