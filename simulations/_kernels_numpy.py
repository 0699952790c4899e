"""Plain NumPy twin of :mod:`simulations._kernels`, used only by the tests.

Vectorized over customers with a Python loop over periods; the same inverse-CDF rule on the same
uniforms, so it gives exactly the same codes as the numba kernel.
"""

from __future__ import annotations

import numpy as np


def _first_hit(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Column of the first ``k`` with ``u < cumsum(probs)[k]`` in each row, else the last column
    with positive probability."""
    cum = np.cumsum(np.where(probs > 0, probs, 0.0), axis=1)
    hit = u[:, None] < cum
    pos = probs > 0
    last = probs.shape[1] - 1 - np.argmax(pos[:, ::-1], axis=1)
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), last)


def simulate_codes(s0, U, pi, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride,
                   g_size, g_mult, indptr, indices, data):
    """NumPy twin of :func:`simulations._kernels.simulate_codes` (same arguments and result)."""
    n, T = U.shape[0], U.shape[1]
    n_f = len(f_stride)
    # each factor's rows as padded dense arrays of (probability, next value)
    n_rows = len(indptr) - 1
    ends = list(row_offset[1:]) + [n_rows]
    padded = []
    for f in range(n_f):
        rows = np.arange(row_offset[f], ends[f])
        lengths = indptr[rows + 1] - indptr[rows]
        width = int(lengths.max())
        P = np.zeros((rows.size, width))
        X = np.zeros((rows.size, width), dtype=np.int64)
        for j, r in enumerate(rows):
            lo, hi = indptr[r], indptr[r + 1]
            P[j, : hi - lo] = data[lo:hi]
            X[j, : hi - lo] = indices[lo:hi]
        padded.append((P, X))
    states = np.empty((n, T), dtype=np.int64)
    actions = np.empty((n, T), dtype=np.int64)
    s = np.asarray(s0, dtype=np.int64).copy()
    for t in range(T):
        a = _first_hit(pi[s], U[:, t, 0])
        states[:, t] = s
        actions[:, t] = a
        nxt = s.copy()
        for f in range(n_f):
            r = a * f_action_mult[f]
            for g in range(g_ptr[f], g_ptr[f + 1]):
                r = r + ((s // g_stride[g]) % g_size[g]) * g_mult[g]
            P, X = padded[f]
            k = _first_hit(P[r], U[:, t, 1 + f])
            new = X[r, k]
            nxt = nxt + (new - (s // f_stride[f]) % f_size[f]) * f_stride[f]
        s = nxt
    return states, actions
