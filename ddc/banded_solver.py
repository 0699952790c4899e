"""The policy system :math:`(I - \\beta P_\\pi) x = b` as a banded matrix plus a low-rank term.

Detected from the compiled transitions, never from a model's name: an action whose transition
rows are the same in every state (a *reset*: Rust's engine replacement sends every bus to the
same mileage distribution) contributes a rank-one term
:math:`\\beta\\,\\mathrm{diag}(\\pi_a)\\,\\mathbf 1 q_a' = u_a q_a'` with
:math:`u_a = \\beta \\pi_a`; when the other actions' transitions move the state by a few steps
only (mileage goes up by at most a few bins), the rest is banded:

.. math::

    I - \\beta P_\\pi = B - U Q', \\qquad
    B = I - \\beta \\sum_{a \\notin R} \\mathrm{diag}(\\pi_a) P_a, \\qquad
    U = \\beta [\\pi_a]_{a \\in R}, \\quad Q = [q_a]_{a \\in R}.

:math:`B` is factorized by banded LU (LAPACK ``gbtrf``, :math:`O(S w^2)` for bandwidth
:math:`w` instead of :math:`O(S^3)`), and the Woodbury identity adds the reset actions:

.. math::

    x = B^{-1} b + W (I - Q' W)^{-1} Q' B^{-1} b, \\qquad W = B^{-1} U,

and for the transposed system
:math:`x = B^{-T} b + B^{-T} Q (I - U' B^{-T} Q)^{-1} U' B^{-T} b`.
A Newton step of the bus model then costs :math:`O(S)`.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ddc.kernels import bellman as kb

__all__ = ["BandedStructure", "BandedSystem", "banded_structure"]

#: Use the banded form when the band (lower + upper + 1) is at most this share of the states.
MAX_BAND_SHARE = 0.125
#: At most this many reset actions (the Woodbury term is dense in them).
MAX_RESETS = 4


class BandedStructure:
    """Policy-independent parts of the banded solve: each action's transition entries, which
    actions reset, the bandwidths."""

    def __init__(self, ct, n_actions: int):
        self.ct = ct  # keeps the cache key (the id of ct) alive
        S = int(ct.n_states)
        self.n_states = S
        trans = tuple(ct)[2:]
        self.reset: list[int] = []
        self.q: list[np.ndarray] = []
        self.moves: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        lower = upper = 0
        for a in range(n_actions):
            pi = np.zeros((S, n_actions))
            pi[:, a] = 1.0
            r, c, v = kb.policy_matrix_coo(pi, *trans)
            P = sp.csr_matrix((v, (r, c)), shape=(S, S))
            P.sum_duplicates()
            counts = np.diff(P.indptr)
            if counts.min() == counts.max() and counts[0] > 0:
                k = counts[0]
                idx = P.indices.reshape(S, k)
                val = P.data.reshape(S, k)
                if np.array_equal(idx, np.broadcast_to(idx[0], idx.shape)) and \
                        np.array_equal(val, np.broadcast_to(val[0], val.shape)):
                    q = np.zeros(S)
                    q[idx[0]] = val[0]
                    self.reset.append(a)
                    self.q.append(q)
                    continue
            coo = P.tocoo()
            rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
            if rows.size:
                lower = max(lower, int(np.max(rows - cols)))
                upper = max(upper, int(np.max(cols - rows)))
            self.moves.append((a, rows, cols, coo.data))
        self.lower, self.upper = lower, upper
        self.Q = np.column_stack(self.q) if self.q else np.zeros((S, 0))
        # where each moving entry lands in gbtrf's column-major band storage (B[i, j] at
        # ab[kl + ku + i - j, j]), fixed for all policies: a factorization then scatters the
        # policy-weighted entries with one bincount
        nrows = 2 * lower + upper + 1
        self.band_shape = (nrows, S)
        if self.moves:
            self._slots = np.concatenate([c * nrows + (lower + upper + r - c)
                                          for _, r, c, _ in self.moves])
            self._rows = np.concatenate([r for _, r, _, _ in self.moves])
            self._acts = np.concatenate([np.full(r.size, a) for a, r, _, _ in self.moves])
            self._vals = np.concatenate([v for _, _, _, v in self.moves])

    @property
    def band(self) -> int:
        return self.lower + self.upper + 1

    def worth_it(self) -> bool:
        return (len(self.reset) <= MAX_RESETS and self.moves != []
                and self.band <= MAX_BAND_SHARE * self.n_states)


_CACHE: OrderedDict = OrderedDict()


def banded_structure(ct, n_actions: int) -> BandedStructure | None:
    """The :class:`BandedStructure` of ``ct`` (cached for the last few transitions), or
    ``None`` when the band is too wide or there are too many reset actions to pay."""
    key = (id(ct), n_actions)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    found = None
    if _band_may_pay(ct, n_actions):
        st = BandedStructure(ct, n_actions)
        found = st if st.worth_it() else None
    _CACHE[key] = found
    while len(_CACHE) > 8:
        _CACHE.popitem(last=False)
    return found


def _band_may_pay(ct, n_actions: int) -> bool:
    """A cheap necessary condition for :meth:`BandedStructure.worth_it`: some action's entries
    lie within a band of at most :data:`MAX_BAND_SHARE` of the states. The structure's band is
    at least every moving action's own band, and it needs a moving action; so when even the
    narrowest action's band is too wide, building the structure (sparse matrices per action)
    would only be thrown away -- as it is on every likelihood evaluation of a model with wide
    transitions."""
    S = int(ct.n_states)
    trans = tuple(ct)[2:]
    for a in range(n_actions):
        pi = np.zeros((S, n_actions))
        pi[:, a] = 1.0
        r, c, _ = kb.policy_matrix_coo(pi, *trans)
        if r.size == 0:
            return True  # an action without entries: let the structure decide
        d = np.asarray(r, dtype=np.int64) - np.asarray(c, dtype=np.int64)
        if int(d.max()) + int(-d.min()) + 1 <= MAX_BAND_SHARE * S:
            return True
    return False


class BandedSystem:
    """:math:`(I - \\beta P_\\pi)` at one policy: banded LU of :math:`B` and the Woodbury
    correction for the reset actions (see the module docstring)."""

    def __init__(self, st: BandedStructure, pi: np.ndarray, beta: float):
        self.st = st
        S = st.n_states
        kl, ku = st.lower, st.upper
        # gbtrf's storage: kl extra rows for the fill-in, then the band; B[i, j] sits at
        # ab[kl + ku + i - j, j] (column-major: entry (row, j) at j * nrows + row)
        nrows = st.band_shape[0]
        flat = np.bincount(st._slots, weights=(-beta) * pi[st._rows, st._acts] * st._vals,
                           minlength=nrows * S)
        ab = flat.reshape(st.band_shape, order="F")
        ab[kl + ku, :] += 1.0
        lub, piv, info = lapack.dgbtrf(ab, kl, ku, overwrite_ab=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"banded LU failed (info={info})")
        self._lu, self._piv = lub, piv
        self.U = beta * pi[:, st.reset] if st.reset else np.zeros((S, 0))
        self._W = self._B_solve(self.U, False) if st.reset else None
        self._C = None if not st.reset else _inverse(np.eye(len(st.reset)) - st.Q.T @ self._W)
        self._WT = self._CT = None

    def _B_solve(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        x, info = lapack.dgbtrs(self._lu, self.st.lower, self.st.upper, b, self._piv,
                                trans=1 if transpose else 0)
        if info != 0:
            raise np.linalg.LinAlgError(f"banded solve failed (info={info})")
        return x

    def solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        """Solve :math:`(I - \\beta P_\\pi) x = b` (or the transposed system)."""
        b = np.asarray(b, dtype=np.float64)
        y = self._B_solve(b, transpose)
        if not self.st.reset:
            return y
        Q = self.st.Q
        if not transpose:
            return y + self._W @ (self._C @ (Q.T @ y))
        if self._WT is None:
            self._WT = self._B_solve(Q, True)
            self._CT = _inverse(np.eye(Q.shape[1]) - self.U.T @ self._WT)
        return y + self._WT @ (self._CT @ (self.U.T @ y))


def _inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of the small Woodbury capacitance matrix (one entry per reset action: most often
    a scalar, inverted without LAPACK's overhead)."""
    if M.shape == (1, 1):
        if M[0, 0] == 0.0 or not np.isfinite(M[0, 0]):
            raise np.linalg.LinAlgError("singular Woodbury capacitance in the banded solve")
        return np.array([[1.0 / M[0, 0]]])
    return np.linalg.inv(M)
