"""Plain NumPy twin of :mod:`estimators._kernels`, used only by the tests."""

from __future__ import annotations

import numpy as np


def keyed_group_sums(groups: np.ndarray, keys: np.ndarray, table: np.ndarray,
                     out: np.ndarray) -> None:
    """``out[g] += table[keys[i]]`` for every row ``i`` with ``g = groups[i]`` (through the
    per-row array, as ``np.add.at`` adds it in row order)."""
    np.add.at(out, groups, table[keys])
