"""The policy system :math:`(I - \\beta P_\\pi) x = b` solved through the model's structure.

Two kinds of structure are detected from the compiled transitions and the feasibility mask,
never from a model's name:

**Permanent variables.** A state variable that no factor draws and no factor is conditioned on
never changes, and the transitions of the other variables are the same whatever its value. The
system is then block diagonal, one block per combination of the permanent variables' values
(the membership model's markets), and every block has the same transition matrices
:math:`P_a` (only the policy differs).

**Single-action states.** In a state with one feasible action (the membership model's locked
annual months) the policy is fixed, :math:`\\pi = 1`, so those rows of the system do not depend
on the policy. Ordering each block as single-action states :math:`L` then the others :math:`F`,

.. math::

    \\begin{pmatrix} I - \\beta P_{LL} & -\\beta P_{LF} \\\\ -\\beta P_{FL}(\\pi)
    & I - \\beta P_{FF}(\\pi) \\end{pmatrix}
    \\begin{pmatrix} x_L \\\\ x_F \\end{pmatrix} = \\begin{pmatrix} b_L \\\\ b_F \\end{pmatrix},

and eliminating :math:`x_L` leaves the Schur complement on the free states

.. math::

    S(\\pi) = I - \\beta \\sum_a \\mathrm{diag}(\\pi_{a,F}) R_a, \\qquad
    R_a = P_{a,FF} + \\beta P_{a,FL} Z, \\qquad Z = (I - \\beta P_{LL})^{-1} P_{LF},

where :math:`R_a` (the transition from a free state to the next free state, the locked
stretch in between discounted) and the factorization of :math:`I - \\beta P_{LL}` do not depend
on the policy: they are computed once per transitions and discount factor, for one block, and
shared by all blocks. A Newton step then costs one batched dense factorization of the small
:math:`S(\\pi)` of every block plus triangular solves; no fill-in of a large sparse LU.

Solving, with :math:`y_L = (I - \\beta P_{LL})^{-1} b_L`:
:math:`x_F = S^{-1} (b_F + \\beta P_{FL}(\\pi) y_L)`, :math:`x_L = y_L + \\beta Z x_F`; and for
the transposed system, with :math:`w = (I - \\beta P_{LL})^{-T} b_L`:
:math:`x_F = S^{-T} (b_F + \\beta P_{LF}' w)`,
:math:`x_L = (I - \\beta P_{LL})^{-T} (b_L + \\beta P_{FL}(\\pi)' x_F)`.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ddc.kernels import bellman as kb

__all__ = ["BlockStructure", "BlockSystem", "block_structure"]

#: Largest reduced block (free states per block) factorized densely.
MAX_FREE = 3000


class BlockStructure:
    """Policy-independent parts of the block/Schur solve (see the module docstring).

    Attributes
    ----------
    index : numpy.ndarray of int, shape (n_blocks, b)
        ``index[k, w]``: the state at position ``w`` of block ``k``.
    L, F : numpy.ndarray of int
        Positions in a block of the single-action and the free states.
    R : numpy.ndarray, shape (A, nF, nF)
        The free-to-free transitions with the single-action stretches folded in.
    """

    def __init__(self, ct, feasible: np.ndarray, beta: float):
        self.ct = ct  # keeps the cache key (the id of ct) alive
        S, A = feasible.shape
        self.n_states, self.n_actions = S, A
        index = _blocks(ct)
        if index is None:
            raise ValueError("no block structure")
        self.index = index
        n_blocks, b = index.shape
        feas = feasible[index]  # (n_blocks, b, A)
        if not np.array_equal(feas, np.broadcast_to(feas[0], feas.shape)):
            raise ValueError("feasibility differs across blocks")
        feas0 = feas[0]
        single = feas0.sum(axis=1) == 1
        self.L = np.flatnonzero(single)
        self.F = np.flatnonzero(~single)
        if self.F.size == 0 or self.F.size > MAX_FREE:
            raise ValueError("no free states, or too many per block to factorize densely")
        self.beta = float(beta)
        pos = np.empty(S, dtype=np.int64)
        pos[index] = np.arange(b)[None, :]
        rows0 = index[0]
        trans = tuple(ct)[2:]

        def block_matrix(weights):  # weights (b, A) on block 0's states -> sparse b x b
            pi = np.zeros((S, A))
            pi[rows0] = weights
            r, c, v = kb.policy_matrix_coo(pi, *trans)
            return sp.csr_matrix((v, (pos[r], pos[c])), shape=(b, b))

        P = [block_matrix(np.eye(A)[[a] * b]) for a in range(A)]
        L, F = self.L, self.F
        beta = self.beta
        self.P_FL = [p[F][:, L].tocsr() for p in P]  # (nF, nL) per action
        P_FF = [p[F][:, F].toarray() for p in P]
        if L.size:
            Psingle = block_matrix(feas0.astype(float))  # the one feasible action's rows
            P_LL = Psingle[L][:, L].tocsc()
            self.P_LF = Psingle[L][:, F].tocsr()
            A_LL = (sp.identity(L.size, format="csc") - beta * P_LL).tocsc()
            triangular = sp.tril(P_LL, k=-1).nnz == 0 or sp.triu(P_LL, k=1).nnz == 0
            self.lu_LL = spla.splu(A_LL, permc_spec="NATURAL" if triangular else "COLAMD")
            Z = self.lu_LL.solve(self.P_LF.toarray())
            self.Z = Z
            self.R = np.stack([P_FF[a] + beta * (self.P_FL[a] @ Z) for a in range(A)])
        else:
            self.P_LF = None
            self.lu_LL = None
            self.Z = None
            self.R = np.stack(P_FF)

    @property
    def n_blocks(self) -> int:
        return self.index.shape[0]

    def nbytes(self) -> int:
        """Memory held, in bytes (approximately)."""
        total = self.R.nbytes + self.index.nbytes
        if self.Z is not None:
            total += self.Z.nbytes + self.P_LF.data.nbytes * 2
            total += (self.lu_LL.L.nnz + self.lu_LL.U.nnz) * 12
        return int(total + sum(p.data.nbytes * 2 for p in self.P_FL))


def _blocks(ct) -> np.ndarray | None:
    """``index[k, w]`` of the blocks over the variables no factor touches, or ``None`` when
    there is a single block."""
    S = int(ct.n_states)
    moving = {}
    for stride, size in zip(ct.f_stride.tolist(), ct.f_size.tolist(), strict=True):
        moving[stride] = size
    for stride, size in zip(ct.g_stride.tolist(), ct.g_size.tolist(), strict=True):
        moving[stride] = size
    within = np.zeros(1, dtype=np.int64)
    for stride, size in moving.items():
        within = (within[:, None] + stride * np.arange(size)[None, :]).ravel()
    s = np.arange(S, dtype=np.int64)
    base = s.copy()
    for stride, size in moving.items():
        base -= ((s // stride) % size) * stride
    blocks = np.unique(base)
    if blocks.size * within.size != S:
        return None
    index = blocks[:, None] + np.sort(within)[None, :]
    if not np.array_equal(np.sort(index.ravel()), s):
        return None
    return index


_CACHE: OrderedDict = OrderedDict()


def block_structure(ct, feasible: np.ndarray, beta: float) -> BlockStructure | None:
    """The :class:`BlockStructure` of ``ct`` (cached for the last few transitions), or
    ``None`` when the model has neither permanent variables nor single-action states, or its
    blocks differ."""
    key = (id(ct), float(beta), feasible.shape, hash(feasible.tobytes()))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        found = BlockStructure(ct, feasible, beta)
        if found.n_blocks == 1 and found.L.size == 0:
            found = None
    except ValueError:
        found = None
    _CACHE[key] = found
    while len(_CACHE) > 4:
        _CACHE.popitem(last=False)
    return found


class BlockSystem:
    """:math:`(I - \\beta P_\\pi)` at one policy, solved block by block through the Schur
    complement on the free states (see the module docstring)."""

    def __init__(self, structure: BlockStructure, pi: np.ndarray):
        st = self.st = structure
        piF = pi[st.index[:, st.F]]  # (n_blocks, nF, A)
        self.piF = piF
        S_mat = np.einsum("kfa,afh->kfh", piF, st.R)
        S_mat *= -st.beta
        S_mat[:, np.arange(st.F.size), np.arange(st.F.size)] += 1.0
        if st.F.size <= 64:
            # many small blocks: explicit inverses, batched (solves become batched products)
            self.S_inv, self._lu = np.linalg.inv(S_mat), None
        else:  # fewer, larger blocks: LU (a third of the flops of an inverse)
            self.S_inv, self._lu = None, [sla.lu_factor(m, overwrite_a=True, check_finite=False)
                                          for m in S_mat]

    def _schur_solve(self, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        # rhs: (n_blocks, nF, m)
        if self._lu is None:
            return np.matmul(self.S_inv.transpose(0, 2, 1) if transpose else self.S_inv, rhs)
        return np.stack([sla.lu_solve(lu, r, trans=1 if transpose else 0, check_finite=False)
                         for lu, r in zip(self._lu, rhs, strict=True)])

    def _lu_solve(self, y: np.ndarray, transpose: bool) -> np.ndarray:
        # y: (nL, m)
        return self.st.lu_LL.solve(np.asfortranarray(y), trans="T" if transpose else "N")

    def solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        """Solve :math:`(I - \\beta P_\\pi) x = b` (or its transpose); ``b`` of shape (S,) or
        (S, m)."""
        st = self.st
        b = np.asarray(b, dtype=np.float64)
        vector = b.ndim == 1
        B = b[:, None] if vector else b
        m = B.shape[1]
        K, nL, nF = st.n_blocks, st.L.size, st.F.size
        Bb = B[st.index]  # (K, b, m)
        bF = Bb[:, st.F, :]
        beta = st.beta
        if nL:
            bL = Bb[:, st.L, :]
            # (nL, K*m) for the shared factorization
            flatL = bL.transpose(1, 0, 2).reshape(nL, K * m)
        if not transpose:
            rhs = bF
            if nL:
                yL = self._lu_solve(flatL, False)  # (nL, K*m)
                for a in range(st.n_actions):
                    t = (st.P_FL[a] @ yL).reshape(nF, K, m).transpose(1, 0, 2)
                    rhs = rhs + beta * self.piF[:, :, a, None] * t
            xF = self._schur_solve(rhs, False)  # (K, nF, m)
            if nL:
                flatF = xF.transpose(1, 0, 2).reshape(nF, K * m)
                xL = yL + beta * (st.Z @ flatF)
        else:
            rhs = bF
            if nL:
                w = self._lu_solve(flatL, True)
                t = (st.P_LF.T @ w).reshape(nF, K, m).transpose(1, 0, 2)
                rhs = rhs + beta * t
            xF = self._schur_solve(rhs, True)
            if nL:
                acc = flatL.copy()
                for a in range(st.n_actions):
                    wa = (self.piF[:, :, a, None] * xF).transpose(1, 0, 2).reshape(nF, K * m)
                    acc += beta * (st.P_FL[a].T @ wa)
                xL = self._lu_solve(acc, True)
        out = np.empty((st.n_states, m))
        out[st.index[:, st.F]] = xF
        if nL:
            out[st.index[:, st.L]] = xL.reshape(nL, K, m).transpose(1, 0, 2)
        return out[:, 0] if vector else out
