"""Sufficient statistics of a panel's transitions: :class:`TransitionCounts`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class TransitionCounts:
    """Counts of the distinct observed transitions :math:`(s, a, s')`.

    Attributes
    ----------
    s, a, s_next : numpy.ndarray of int64
        The distinct observed triples (state, action, next state), sorted lexicographically.
    n : numpy.ndarray of int64
        How many rows show each triple.
    n_states, n_actions : int
        Sizes of the model.
    """

    s: np.ndarray
    a: np.ndarray
    s_next: np.ndarray
    n: np.ndarray
    n_states: int
    n_actions: int

    def __len__(self) -> int:
        return len(self.n)

    @property
    def total(self) -> int:
        """Number of observed transitions (rows with a next state)."""
        return int(self.n.sum())

    def to_csr(self) -> sp.csr_matrix:
        """The counts as a sparse matrix :math:`N[s A + a, s']` of shape ``(S * A, S)``.

        Row ``s * A + a`` matches ``Panel.counts.reshape(-1)``; dividing each row by its sum gives
        the frequency estimate of :math:`P(s' \\mid s, a)` where the pair was observed.
        """
        S, A = self.n_states, self.n_actions
        return sp.csr_matrix((self.n, (self.s * A + self.a, self.s_next)), shape=(S * A, S),
                             dtype=np.int64)


def _frozen(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    x.flags.writeable = False
    return x
