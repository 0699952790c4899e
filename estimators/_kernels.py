"""Numba kernels of the estimators' inference: pure functions over arrays.

:mod:`estimators._kernels_numpy` holds the plain NumPy twin, used only by the tests to check
them.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def keyed_group_sums(groups, keys, table, out):
    """``out[g] += table[keys[i]]`` for every row ``i`` with ``g = groups[i]``: the within-group
    sums of per-row vectors that depend on a row's key only, without forming the per-row
    ``(n, K)`` array. ``out`` (``n_groups x K``) is added to, in row order."""
    K = table.shape[1]
    for i in range(groups.shape[0]):
        g = groups[i]
        k = keys[i]
        for j in range(K):
            out[g, j] += table[k, j]
