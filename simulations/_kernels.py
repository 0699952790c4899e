"""Numba kernels of the panel simulator.

Pure functions over arrays. The transition arguments ``trans`` are the arrays of
:class:`ddc.transitions.CompiledTransitions` after its two integer sizes (``tuple(ct)[2:]``).
:mod:`simulations._kernels_numpy` holds the plain NumPy twin, used by the tests to check them on
the same uniforms.

Draws are by the inverse CDF: with :math:`u \\sim U[0, 1)` and probabilities
:math:`p_0, \\dots, p_{n-1}`, the draw is the first :math:`k` with
:math:`u < \\sum_{j \\le k} p_j` (so a zero-probability entry is never drawn); when round-off
leaves the total below :math:`u`, the last entry with positive probability.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _draw_action(pi, s, u):
    acc = 0.0
    last = -1
    for a in range(pi.shape[1]):
        p = pi[s, a]
        if p > 0.0:
            last = a
            acc += p
            if u < acc:
                return a
    return last


@njit(cache=True)
def state_tables(n_states, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride, g_size,
                 g_mult):
    """Per factor and state: the row of action 0 (``row_offset[f] + sum_g digit_g * g_mult[g]``;
    action ``a`` adds ``a * f_action_mult[f]``) and the state's own value of the factor's
    variable. Shapes (F, S); computed once so that the simulation loop has no divisions."""
    n_f = f_stride.shape[0]
    row0 = np.empty((n_f, n_states), dtype=np.int64)
    own = np.empty((n_f, n_states), dtype=np.int64)
    for f in range(n_f):
        for s in range(n_states):
            r = row_offset[f]
            for g in range(g_ptr[f], g_ptr[f + 1]):
                r += ((s // g_stride[g]) % g_size[g]) * g_mult[g]
            row0[f, s] = r
            own[f, s] = (s // f_stride[f]) % f_size[f]
    return row0, own


@njit(cache=True)
def _draw_next(s, a, U, i, t, row0, own, f_stride, f_action_mult, indptr, indices, data):
    """Next state from ``s`` under ``a``: each factor's value drawn from its row (all rows at
    the current state ``s``) with the uniform ``U[i, t, 1 + f]``."""
    nxt = s
    for f in range(f_stride.shape[0]):
        r = row0[f, s] + a * f_action_mult[f]
        u = U[i, t, 1 + f]
        acc = 0.0
        chosen = -1
        for k in range(indptr[r], indptr[r + 1]):
            p = data[k]
            if p > 0.0:
                chosen = indices[k]
                acc += p
                if u < acc:
                    break
        nxt += (chosen - own[f, s]) * f_stride[f]
    return nxt


@njit(cache=True)
def simulate_codes(s0, U, pi, f_stride, f_size, f_action_mult, row_offset, g_ptr, g_stride,
                   g_size, g_mult, indptr, indices, data):
    """Simulate state and action codes of ``n`` customers over ``T`` periods.

    Parameters
    ----------
    s0 : int64 array (n,)
        Initial flat state of each customer.
    U : float64 array (n, T, 1 + F)
        Uniforms on [0, 1): ``U[i, t, 0]`` draws the action in period ``t``, ``U[i, t, 1 + f]``
        the next value of factor ``f``'s variable (unused in the last period).
    pi : float64 array (S, A)
        Choice probabilities.

    Returns
    -------
    states, actions : int64 arrays (n, T)
        Flat state and action code of each customer and period.

    Notes
    -----
    Factor ``f``'s row for state ``i`` and action ``a`` is
    ``row_offset[f] + a * f_action_mult[f] + sum_g ((i // g_stride[g]) % g_size[g]) * g_mult[g]``
    over ``g`` in ``g_ptr[f]:g_ptr[f+1]``, evaluated at the current state for every factor; the
    next state is the current one with each factor's variable replaced by its draw.
    """
    n, T = U.shape[0], U.shape[1]
    row0, own = state_tables(pi.shape[0], f_stride, f_size, f_action_mult, row_offset, g_ptr,
                             g_stride, g_size, g_mult)
    states = np.empty((n, T), dtype=np.int64)
    actions = np.empty((n, T), dtype=np.int64)
    for i in range(n):
        s = s0[i]
        for t in range(T):
            a = _draw_action(pi, s, U[i, t, 0])
            states[i, t] = s
            actions[i, t] = a
            if t + 1 < T:
                s = _draw_next(s, a, U, i, t, row0, own, f_stride, f_action_mult, indptr,
                               indices, data)
    return states, actions
