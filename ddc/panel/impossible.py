"""Probabilities of observed transitions under factored transitions: the check for
transitions of probability zero, and the factor rows that :meth:`Panel.factor_counts` uses."""

from __future__ import annotations

import numpy as np

from ddc.model import Model
from ddc.panel.counts import TransitionCounts
from ddc.transitions import CompiledTransitions


def _factor_rows(ct: CompiledTransitions, f: int, s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Row of factor ``f`` (counted from the factor's first row) for states ``s``, actions
    ``a``: ``a * action_mult + sum_g ((s // g_stride) % g_size) * g_mult``."""
    row = a * ct.f_action_mult[f]
    for g in range(ct.g_ptr[f], ct.g_ptr[f + 1]):
        row = row + ((s // ct.g_stride[g]) % ct.g_size[g]) * ct.g_mult[g]
    return np.asarray(row, dtype=np.int64)


def _triple_probabilities(model: Model, ct: CompiledTransitions, tc: TransitionCounts
                          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:math:`P(s' \\mid s, a)` of each distinct triple as the product of its factor entries,
    and, per factor (and for the variables without one), where it gives zero."""
    space = model.space
    s, a, sn = tc.s, tc.a, tc.s_next
    width = int(ct.f_size.max())
    n_rows = len(ct.indptr) - 1
    nnz_row = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(ct.indptr))
    nnz_key = nnz_row * width + ct.indices  # increasing: rows in order, indices sorted per row
    prob = np.ones(len(s))
    zero: dict[str, np.ndarray] = {}
    rest_s, rest_n = s.copy(), sn.copy()
    covered = set()
    for f in range(len(ct.f_stride)):
        stride, size = int(ct.f_stride[f]), int(ct.f_size[f])
        x, xn = (s // stride) % size, (sn // stride) % size
        rest_s -= x * stride
        rest_n -= xn * stride
        key = (ct.row_offset[f] + _factor_rows(ct, f, s, a)) * width + xn
        at = np.minimum(np.searchsorted(nnz_key, key), max(len(nnz_key) - 1, 0))
        found = nnz_key[at] == key if len(nnz_key) else np.zeros(len(key), dtype=bool)
        p = np.where(found, ct.data[at] if len(nnz_key) else 0.0, 0.0)
        prob *= p
        name = _factor_name(space, stride, size)
        covered.update(_variables_in(space, stride, size))
        zero[name] = p <= 0.0
    moved = rest_s != rest_n
    prob = np.where(moved, 0.0, prob)
    for name in space.names:
        if name not in covered:
            zero[f"{name} (never changes)"] = moved & (space.code_of(name)[s] !=
                                                      space.code_of(name)[sn])
    return prob, zero


def _variables_in(space, stride: int, size: int) -> list[str]:
    """State variables spanned by a factor acting on ``stride``, ``size`` of the flat index."""
    return [n for n, st, sz in zip(space.names, space.strides, space.shape, strict=True)
            if st >= stride and st * sz <= stride * size]


def _factor_name(space, stride: int, size: int) -> str:
    names = _variables_in(space, stride, size)
    return names[0] if len(names) == 1 else "transition matrix"
