"""The stationary distribution of the controlled chain of a solved model.

Under the logit policy :math:`\\pi` the state follows the Markov chain

.. math::

    P_\\pi = \\sum_a \\mathrm{diag}(\\pi_a) \\, P_a, \\qquad
    P_\\pi(s, s') = \\sum_a \\pi(a \\mid s) \\, P(s' \\mid s, a),

and a stationary distribution is a row vector :math:`\\mu \\ge 0` with :math:`\\mu P_\\pi = \\mu`.
Chains of economic models are often reducible because some state variables never change (a
market or a type that a unit keeps for ever): the *permanent* variables, those without a
transition factor. The chain then splits into one block per combination :math:`c` of permanent
values, and the stationary distribution is only determined up to the mass :math:`w_c` of each
block:

.. math::

    \\mu = \\sum_c w_c \\, \\mu_c, \\qquad \\mu_c P_\\pi = \\mu_c, \\qquad
    \\sum_{s \\in c} \\mu_c(s) = 1,

with equal masses :math:`w_c = 1 / C` by default. Within a block the chain must have a single
recurrent class; its transient states get mass zero.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Hashable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from ddc.kernels import bellman as kb
from ddc.model import Model
from ddc.solver import ConvergenceWarning, Solution, small_blas

__all__ = [
    "stationary_distribution",
    "stationary_from_policy",
    "stationary_batch",
    "permanent_variables",
    "block_structure",
    "BlockStructure",
    "block_weights",
    "MultipleRecurrentClassesError",
    "DIRECT_MAX_STATES",
    "DIRECT_MAX_NNZ",
]

DIRECT_MAX_STATES = 200_000
"""With ``method="auto"``: a sparse direct solve up to this many states (and
:data:`DIRECT_MAX_NNZ` entries of :math:`P_\\pi`), matrix-free GMRES above."""

DIRECT_MAX_NNZ = 5_000_000
"""With ``method="auto"``: a sparse direct solve while :math:`P_\\pi` has at most this many
entries (an upper bound from the factors' row lengths)."""

METHODS = ("auto", "direct", "gmres", "power")

NEGATIVE_TOL = 1e-13
"""Entries of a computed block distribution in ``[-NEGATIVE_TOL, 0)`` are round-off of a zero."""


class MultipleRecurrentClassesError(ValueError):
    """A block of the controlled chain has more than one recurrent class, so its stationary
    distribution is not unique."""


class BlockStructure(NamedTuple):
    """The split of the state space by the values of the permanent state variables.

    Attributes
    ----------
    names : tuple of str
        The permanent state variables (those that never change), in model order.
    keys : list
        One key per block, in block order: the label of the permanent variable (one permanent
        variable), a tuple of labels (several) or ``()`` (none: a single block).
    block : numpy.ndarray of int, shape (S,)
        Block number of every state (C order over the permanent variables).
    """

    names: tuple[str, ...]
    keys: list
    block: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        return len(self.keys)


def _rows_of_factor(ct, f: int, states: np.ndarray, a: int) -> np.ndarray:
    """Row index of factor ``f`` for ``states`` and action ``a`` (the compiled row formula)."""
    r = ct.row_offset[f] + a * ct.f_action_mult[f] + np.zeros(states.shape, dtype=np.int64)
    for g in range(ct.g_ptr[f], ct.g_ptr[f + 1]):
        r = r + ((states // ct.g_stride[g]) % ct.g_size[g]) * ct.g_mult[g]
    return r


def _is_identity_factor(ct, f: int) -> bool:
    """Whether factor ``f`` keeps its digit unchanged with probability one in every state and
    action (e.g. the identity factor compiled for a model whose variables never change)."""
    S = ct.n_states
    s = np.arange(S, dtype=np.int64)
    own = (s // ct.f_stride[f]) % ct.f_size[f]
    for a in range(ct.n_actions):
        r = _rows_of_factor(ct, f, s, a)
        lo, hi = ct.indptr[r], ct.indptr[r + 1]
        if np.any(hi - lo != 1):
            return False
        if np.any(ct.indices[lo] != own) or np.any(ct.data[lo] != 1.0):
            return False
    return True


def permanent_variables(model: Model, params=None) -> tuple[str, ...]:
    """State variables that never change under any action.

    A variable is permanent when no transition factor draws it: every compiled factor moves the
    digits of the flat state index from its stride ``f_stride`` up to ``f_stride * f_size``
    (one variable, or every variable for :class:`ddc.SparseTransitions`), and the variables
    outside every such range never change. A factor that keeps its variable unchanged with
    probability one in every state and action counts as no factor.

    Parameters
    ----------
    model : ddc.Model
        The model.
    params : optional
        Parameters at which to compile the transitions (defaults of the transition
        parameters when ``None``).

    Returns
    -------
    tuple of str
        Names of the permanent variables, in model order.

    Examples
    --------
    >>> import ddc
    >>> permanent_variables(ddc.models.membership())
    ('market',)
    """
    ct = model.compiled_transitions(params)
    strides = model.space.strides
    shape = np.asarray(model.space.shape, dtype=np.int64)
    moving = np.zeros(len(strides), dtype=bool)
    for f in range(len(ct.f_stride)):
        lo, hi = int(ct.f_stride[f]), int(ct.f_stride[f] * ct.f_size[f])
        covered = (strides >= lo) & (strides * shape <= hi)
        if covered.sum() == 1 and _is_identity_factor(ct, f):
            continue
        moving |= covered
    return tuple(n for n, m in zip(model.space.names, moving, strict=True) if not m)


def block_structure(model: Model, params=None) -> BlockStructure:
    """The blocks of states sharing the values of the permanent variables.

    Parameters
    ----------
    model : ddc.Model
        The model.
    params : optional
        Parameters at which to compile the transitions.

    Returns
    -------
    BlockStructure
    """
    names = permanent_variables(model, params)
    space = model.space
    if not names:
        return BlockStructure((), [()], np.zeros(space.size, dtype=np.int64))
    sizes = [space.variable(n).size for n in names]
    codes = [space.code_of(n) for n in names]
    block = np.ravel_multi_index(tuple(codes), tuple(sizes)).astype(np.int64)
    labels = [space.variable(n).values for n in names]
    combos = list(itertools.product(*labels))
    keys = [c[0] for c in combos] if len(names) == 1 else combos
    return BlockStructure(names, keys, block)


def block_weights(structure: BlockStructure,
                  weights: Mapping | pd.Series | np.ndarray | None = None) -> np.ndarray:
    """Masses of the blocks, normalized to sum to one.

    Parameters
    ----------
    structure : BlockStructure
        The blocks (see :func:`block_structure`).
    weights : mapping, pandas.Series or array, optional
        ``None``: equal mass :math:`1/C` per block. A mapping or Series keyed by the block keys
        (labels of the permanent variable, or tuples of labels for several), with a weight for
        every block; or an array with one weight per block in block order. Weights must be
        finite and non-negative with a positive sum; they are divided by their sum.

    Returns
    -------
    numpy.ndarray, shape (C,)
    """
    C = structure.n_blocks
    if weights is None:
        return np.full(C, 1.0 / C)
    if isinstance(weights, (Mapping, pd.Series)):
        given = dict(weights.items())
        keys = structure.keys
        unknown = [k for k in given if k not in keys]
        if unknown:
            raise KeyError(
                f"weights given for {unknown}, which are not values of the permanent state "
                f"variable(s) {list(structure.names)}; accepted keys: {keys}"
            )
        missing = [k for k in keys if k not in given]
        if missing:
            raise KeyError(
                f"weights miss the block(s) {missing} of the permanent state variable(s) "
                f"{list(structure.names)}; give a weight (possibly 0) for every one of {keys}"
            )
        w = np.array([given[k] for k in keys], dtype=float)
    else:
        w = np.asarray(weights, dtype=float).ravel()
        if w.shape != (C,):
            raise ValueError(f"weights must have one entry per block of the permanent variables "
                             f"{list(structure.names)} ({C}: {structure.keys}); got {w.size}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"weights must be finite and >= 0; the weight of block "
                         f"{structure.keys[k]!r} is {float(w[k])!r}")
    if w.sum() <= 0:
        raise ValueError("weights sum to 0; give at least one block a positive weight")
    return w / w.sum()


def _policy_matrix(pi: np.ndarray, ct) -> sp.csr_matrix:
    rows, cols, vals = kb.policy_matrix_coo(np.ascontiguousarray(pi, dtype=np.float64),
                                            *tuple(ct)[2:])
    S = ct.n_states
    return sp.csr_matrix((vals, (rows, cols)), shape=(S, S))


def _closed_classes(P: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Strongly connected components of ``P``'s graph and which of them are closed (recurrent)."""
    n_comp, labels = csgraph.connected_components(P, directed=True, connection="strong")
    coo = P.tocoo()
    leaving = (labels[coo.row] != labels[coo.col]) & (coo.data > 0)
    closed = np.ones(n_comp, dtype=bool)
    closed[labels[coo.row[leaving]]] = False
    return labels, closed


def _describe_state(model: Model, s: int) -> str:
    return ", ".join(f"{n}={v!r}" for n, v in zip(model.space.names, model.space.index[s],
                                                     strict=True))


def _direct(model: Model, pi: np.ndarray, ct, structure: BlockStructure,
            w: np.ndarray) -> np.ndarray:
    S = ct.n_states
    P = _policy_matrix(pi, ct)
    labels, closed = _closed_classes(P)
    recurrent = closed[labels]
    block = structure.block
    # one closed class per block
    pairs = np.unique(np.stack([block[recurrent], labels[recurrent]]), axis=1)
    per_block = np.bincount(pairs[0], minlength=structure.n_blocks)
    for c in np.flatnonzero(per_block != 1):
        classes = pairs[1][pairs[0] == c]
        examples = [int(np.flatnonzero(labels == k)[0]) for k in classes[:4]]
        where = "" if not structure.names else (
            f" with {dict(zip(structure.names, np.atleast_1d(structure.keys[c]), strict=True))}"
        )
        raise MultipleRecurrentClassesError(
            f"the controlled chain has {classes.size} recurrent classes in the block of "
            f"states{where}, so its stationary distribution is not unique; e.g. classes "
            f"containing the states " + "; ".join(f"({_describe_state(model, s)})"
                                                 for s in examples)
            + ". Give an initial distribution instead, or make the chain irreducible "
            "within each combination of the permanent state variables "
            f"{list(structure.names)}"
        )
    idx = np.flatnonzero(recurrent)
    n = idx.size
    Q = P[idx][:, idx]
    # balance equations mu (P - I) = 0, i.e. (P - I)' mu' = 0, on the recurrent states; in each
    # block one equation (dependent on the others) is replaced by mu(s_c) = 1 at one recurrent
    # state s_c (a sparse row, unlike the normalization row, which would make the LU dense);
    # each block is then scaled to its mass w_c
    M = (Q.T - sp.identity(n, format="csr")).tocoo()
    blk = block[idx]
    _, first = np.unique(blk, return_index=True)  # every block has recurrent states
    replaced = np.zeros(n, dtype=bool)
    replaced[first] = True
    keep = ~replaced[M.row]
    rows = np.concatenate([M.row[keep], first])
    cols = np.concatenate([M.col[keep], first])
    vals = np.concatenate([M.data[keep], np.ones(first.size)])
    A = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    b = np.zeros(n)
    b[first] = 1.0
    lu = spla.splu(A)
    x = lu.solve(b)
    x += lu.solve(b - A @ x)  # one step of iterative refinement
    sums = np.bincount(blk, weights=x, minlength=structure.n_blocks)
    x *= (w / sums)[blk]
    mu = np.zeros(S)
    mu[idx] = x
    return mu


def _gmres(pi: np.ndarray, ct, structure: BlockStructure, w: np.ndarray, tol: float,
           max_iter: int) -> np.ndarray:
    """Matrix-free GMRES on the nonsingular system
    :math:`(I - P_\\pi' + \\sum_c \\nu_c 1_c') \\mu = \\sum_c w_c \\nu_c`, with :math:`\\nu_c`
    uniform on block :math:`c`."""
    S = ct.n_states
    trans = tuple(ct)[2:]
    C = structure.n_blocks
    blk = structure.block
    counts = np.bincount(blk, minlength=C)
    nu = (1.0 / counts)[blk]
    W = np.empty_like(pi)
    out = np.empty(S)

    def matvec(x):
        np.multiply(pi, np.asarray(x).ravel()[:, None], out=W)
        kb.push_forward(W, out, *trans)
        return x.ravel() - out + nu * np.bincount(blk, weights=x.ravel(), minlength=C)[blk]

    op = spla.LinearOperator((S, S), matvec=matvec, dtype=np.float64)
    b = (w / counts)[blk]
    mu, info = spla.gmres(op, b, rtol=tol, atol=0.0, restart=100, maxiter=max_iter)
    if info != 0:
        resid = np.abs(matvec(mu) - b).sum()
        warnings.warn(f"GMRES for the stationary distribution did not reach rtol={tol:g} "
                      f"(info={info}, L1 residual {resid:.3e}); the chain may have several "
                      "recurrent classes in a block (try method='direct', which checks)",
                      ConvergenceWarning, stacklevel=3)
    return mu


def _power(pi: np.ndarray, ct, structure: BlockStructure, w: np.ndarray, tol: float,
           max_iter: int) -> np.ndarray:
    """Lazy power iteration ``mu <- (mu + mu P_pi) / 2`` (aperiodic, same fixed points)."""
    S = ct.n_states
    trans = tuple(ct)[2:]
    counts = np.bincount(structure.block, minlength=structure.n_blocks)
    mu = (w / counts)[structure.block]
    out = np.empty(S)
    W = np.empty_like(pi)
    for _ in range(max_iter):
        np.multiply(pi, mu[:, None], out=W)
        kb.push_forward(W, out, *trans)
        new = 0.5 * (mu + out)
        change = np.abs(new - mu).sum()
        mu = new
        if change <= tol:
            break
    else:
        warnings.warn(f"power iteration for the stationary distribution stopped after "
                      f"{max_iter} steps with L1 change {change:.3e} > tol={tol:g}",
                      ConvergenceWarning, stacklevel=3)
    return mu


def _auto_method(ct, S: int, A: int) -> str:
    nnz = S * A * int(np.prod(ct.row_nnz_max()))
    return "direct" if S <= DIRECT_MAX_STATES and nnz <= DIRECT_MAX_NNZ else "gmres"


def stationary_from_policy(model: Model, pi: np.ndarray, weights=None, params=None,
                           method: str = "auto", tol: float = 1e-14,
                           max_iter: int | None = None) -> np.ndarray:
    """Stationary distribution of :math:`P_\\pi` for a policy given as an array (no pandas).

    Parameters
    ----------
    model : ddc.Model
        The model (states and transitions).
    pi : numpy.ndarray, shape (S, A)
        Choice probabilities :math:`\\pi(a \\mid s)`, rows summing to one.
    weights : optional
        Masses of the blocks of permanent values (see :func:`block_weights`); equal by default.
    params : optional
        Parameters at which to compile the transitions (transition parameters).
    method : str
        ``"direct"``: checks that every block has a single recurrent class (strongly connected
        components of the graph of the assembled sparse :math:`P_\\pi`), then solves the
        balance equations :math:`(P_\\pi' - I) \\mu = 0` on the recurrent states by sparse LU,
        one (redundant) equation per block replaced by :math:`\\mu(s_c) = 1` at one of its
        states, with one step of iterative refinement, and scales each block to its mass
        :math:`w_c`; transient states get exactly 0. ``"gmres"``: matrix-free GMRES over the
        factored transitions on the nonsingular system
        :math:`(I - P_\\pi' + \\sum_c \\nu_c 1_c') \\mu = \\sum_c w_c \\nu_c`
        (:math:`\\nu_c` uniform on block :math:`c`, :math:`1_c` its indicator), for models whose
        :math:`P_\\pi` is too large to assemble; it does not check the recurrent classes.
        ``"power"``: the lazy power iteration :math:`\\mu \\leftarrow (\\mu + \\mu P_\\pi)/2`
        from the uniform distribution on each block (slow for slowly mixing chains; a
        reference). ``"auto"``: direct while the model has at most :data:`DIRECT_MAX_STATES`
        states and :math:`P_\\pi` at most :data:`DIRECT_MAX_NNZ` entries (or when the sparse
        LU runs out of memory), GMRES otherwise.
    tol : float
        GMRES: relative residual; power iteration: L1 change between steps.
    max_iter : int, optional
        GMRES restarts (of 100 iterations; 1,000 by default) or power steps (1,000,000).

    Returns
    -------
    numpy.ndarray, shape (S,)
        :math:`\\mu`, summing to :math:`w_c` over each block.

    Raises
    ------
    MultipleRecurrentClassesError
        If a block has more than one recurrent class (the distribution is not unique; checked
        by the direct method).
    """
    S, A = model.n_states, model.n_actions
    pi = np.ascontiguousarray(pi, dtype=np.float64)
    if pi.shape != (S, A):
        raise ValueError(f"pi must have shape ({S}, {A}) (states, actions); got {pi.shape}")
    if not np.all(np.isfinite(pi)) or np.any(pi < 0):
        raise ValueError("pi must be finite and non-negative")
    rows = np.abs(pi.sum(axis=1) - 1.0)
    if np.any(rows > 1e-10):
        s = int(np.argmax(rows))
        raise ValueError(f"pi's row for state ({_describe_state(model, s)}) sums to "
                         f"{pi[s].sum():.12g}, not 1")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ct = model.compiled_transitions(params)
    structure = block_structure(model, params)
    w = block_weights(structure, weights)
    chosen = _auto_method(ct, S, A) if method == "auto" else method
    if chosen == "direct":
        try:
            mu = _direct(model, pi, ct, structure, w)
        except MemoryError:
            if method != "auto":
                raise
            chosen = "gmres"
    if chosen == "gmres":
        mu = _gmres(pi, ct, structure, w, tol, 1_000 if max_iter is None else max_iter)
    elif chosen == "power":
        mu = _power(pi, ct, structure, w, tol, 1_000_000 if max_iter is None else max_iter)
    neg = mu < 0
    if neg.any():
        worst = int(np.argmin(mu))
        if mu[worst] < -NEGATIVE_TOL:
            raise FloatingPointError(
                f"the stationary distribution came out negative ({mu[worst]:.3e}) at state "
                f"({_describe_state(model, worst)}) with method={chosen!r}: the balance "
                "equations are ill-conditioned or the chain has several recurrent classes"
            )
        mu[neg] = 0.0  # round-off of a zero (|mu| <= NEGATIVE_TOL)
    if chosen != "direct":  # exact block masses (the direct solve scales them already)
        sums = np.bincount(structure.block, weights=mu, minlength=structure.n_blocks)
        mu *= np.divide(w, sums, out=np.zeros_like(w), where=sums > 0)[structure.block]
    return mu


BATCH_TOL = 1e-13
"""Tolerance of :func:`stationary_batch` on the L1 residual of a draw's balance equations."""

BATCH_DENSE_MAX = 2000
""":func:`stationary_batch` solves systems of up to this many states by dense LU (BLAS over all
draws at once; SuperLU solves many right-hand sides one by one), larger ones by sparse LU."""


def stationary_batch(model: Model, pi: np.ndarray, pi0: np.ndarray, mu0: np.ndarray,
                     weights=None, params=None, tol: float = BATCH_TOL,
                     max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Stationary distributions of many policies at once, preconditioned by a reference one.

    For policies :math:`\\pi_d` near a reference :math:`\\pi_0` whose stationary distribution
    :math:`\\mu_0` is known (bootstrap draws around a point estimate), the balance equations
    :math:`(P_{\\pi_d}' - I) \\mu_d = 0` are solved by iterative refinement with one LU of the
    same system at :math:`\\pi_0`: in each block of the permanent variables one equation is
    replaced by :math:`\\mu_d(s_c) = \\mu_0(s_c)` at the block's most likely state
    :math:`s_c`; every step is one sparse product and one solve for all draws; each block is
    then scaled to its mass :math:`w_c`.

    Parameters
    ----------
    model : ddc.Model
        The model (its transitions at ``params`` are common to the policies).
    pi : numpy.ndarray, shape (S, A, D)
        The policies.
    pi0 : numpy.ndarray, shape (S, A)
        The reference policy.
    mu0 : numpy.ndarray, shape (S,)
        Its stationary distribution (:func:`stationary_from_policy`).
    weights : optional
        Masses of the blocks (see :func:`block_weights`).
    params : optional
        Parameters at which to compile the transitions.
    tol : float
        L1 tolerance on the residual of the balance equations.
    max_iter : int
        Most refinement steps.

    Returns
    -------
    mu : numpy.ndarray, shape (S, D)
        The distributions (NaN for a draw that did not converge).
    converged : numpy.ndarray of bool, shape (D,)
        Which draws met the tolerance; solve the others with :func:`stationary_from_policy`.
    """
    from ddc.solver import stacked_transition_matrix

    S, A, D = pi.shape
    ct = model.compiled_transitions(params)
    structure = block_structure(model, params)
    w = block_weights(structure, weights)
    block = structure.block
    mu0 = np.asarray(mu0, dtype=float)
    mu = np.full((S, D), np.nan)
    done = np.zeros(D, dtype=bool)
    anchors = np.array([np.flatnonzero(block == c)[np.argmax(mu0[block == c])]
                        for c in range(structure.n_blocks)])
    if np.any(mu0[anchors] <= 0):
        return mu, done
    PT = stacked_transition_matrix(ct).T.tocsr()  # (S, A * S)
    M = (_policy_matrix(np.ascontiguousarray(pi0, dtype=np.float64), ct).T
         - sp.identity(S, format="csr")).tocoo()
    keep = ~np.isin(M.row, anchors)
    rows = np.concatenate([M.row[keep], anchors])
    cols = np.concatenate([M.col[keep], anchors])
    vals = np.concatenate([M.data[keep], np.ones(anchors.size)])
    system = sp.csc_matrix((vals, (rows, cols)), shape=(S, S))
    if S <= BATCH_DENSE_MAX:  # dense LU: BLAS on all draws at once, on one thread (small)
        with small_blas(S):
            lu_dense = sla.lu_factor(system.toarray())

        def solve(r):
            with small_blas(S):
                return sla.lu_solve(lu_dense, r)
    else:
        lu = spla.splu(system)

        def solve(r):
            return lu.solve(np.asfortranarray(r))
    b = np.zeros(S)
    b[anchors] = mu0[anchors]
    piT = np.ascontiguousarray(pi.transpose(1, 0, 2))  # (A, S, D)
    x = np.repeat(mu0[:, None], D, axis=1)
    left = np.arange(D)
    for _ in range(max_iter):
        xl = x[:, left]
        Ax = PT @ (piT[:, :, left] * xl[None]).reshape(A * S, left.size) - xl
        Ax[anchors] = xl[anchors]
        r = b[:, None] - Ax
        res = np.abs(r).sum(axis=0)
        ok = res <= tol
        mu[:, left[ok]] = xl[:, ok]
        done[left[ok]] = True
        still = ~ok & np.isfinite(res)
        left = left[still]
        if left.size == 0:
            break
        x[:, left] = xl[:, still] + solve(r[:, still])
    sums = np.zeros((structure.n_blocks, D))
    np.add.at(sums, block, np.where(done[None, :], mu, 0.0))
    scale = np.zeros_like(sums)
    np.divide(w[:, None], sums, out=scale, where=sums > 0)
    mu *= scale[block]
    return mu, done


def _solution_of(solution_or_model_and_params) -> Solution:
    obj = solution_or_model_and_params
    if isinstance(obj, Solution):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], Model):
        model, params = obj
        if isinstance(params, Solution):
            return params
        return model.solve(params)
    raise TypeError(
        "give a ddc.Solution or a tuple (model, params) with a ddc.Model and its parameters; "
        f"got {type(obj).__name__}"
    )


def stationary_distribution(solution_or_model_and_params: Solution | tuple[Model, object],
                            weights: Mapping[Hashable, float] | pd.Series | None = None,
                            method: str = "auto") -> pd.Series:
    """The stationary distribution of the controlled chain, by state.

    .. math::

        \\mu P_\\pi = \\mu, \\qquad P_\\pi = \\sum_a \\mathrm{diag}(\\pi_a) P_a, \\qquad
        \\sum_{s \\in c} \\mu(s) = w_c \\text{ for every block } c,

    where the blocks :math:`c` are the combinations of values of the permanent state variables
    (:func:`permanent_variables`), with equal masses :math:`w_c` by default.

    Parameters
    ----------
    solution_or_model_and_params : ddc.Solution or tuple
        A solved model, or ``(model, params)`` (then the model is solved at ``params``).
    weights : mapping or pandas.Series, optional
        Mass of each block, keyed by the permanent variable's labels (e.g. ``{0: 0.5, 1: 0.25,
        2: 0.25}`` by market), or tuples of labels for several permanent variables; normalized
        to sum to one. Equal masses by default.
    method : str
        ``"auto"``, ``"direct"``, ``"gmres"`` or ``"power"`` (see
        :func:`stationary_from_policy`).

    Returns
    -------
    pandas.Series
        :math:`\\mu(s)`, indexed by the state MultiIndex, summing to one.

    Examples
    --------
    >>> import ddc
    >>> model = ddc.models.membership()
    >>> mu = stationary_distribution(model.solve(model.true_params))
    >>> mu.groupby(level="market").sum().round(12).tolist()
    [0.333333333333, 0.333333333333, 0.333333333333]
    """
    sol = _solution_of(solution_or_model_and_params)
    mu = stationary_from_policy(sol.model, sol.pi, weights=weights, params=sol.params,
                                method=method)
    return pd.Series(mu, index=sol.model.space.index, name="mu")
