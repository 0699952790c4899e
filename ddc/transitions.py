"""Transitions of the state: independent factors per state variable, or a sparse matrix per action.

Given the current state :math:`s = (x_1, \\dots, x_J)` and action :math:`a`, the next state's
variables are drawn independently, each from its own factor:

.. math::

    P(s' \\mid s, a) = \\prod_j F_j(x_j' \\mid x_{G_j}, a),

where :math:`G_j` is the set of current state variables factor *j* is conditioned on (usually
:math:`x_j` itself, possibly others). A variable without a factor never changes. Expectations
:math:`E[V(s') \\mid s, a]` are computed factor by factor (a sequence of mode products of the value
tensor), never through a dense :math:`S \\times S` matrix: the cost per action is
:math:`S \\sum_j \\mathrm{nnz}_j` where :math:`\\mathrm{nnz}_j` is the number of nonzeros
in a row of factor *j*.

For the factor-by-factor contraction, a factor conditioned on another factor's variable must be
applied after it; conditioning therefore has to be acyclic across factors (a factor may always be
conditioned on its own variable and on variables that never change).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from ddc.statespace import StateSpace

__all__ = ["Factor", "FactoredTransitions", "SparseTransitions", "CompiledTransitions",
           "TransitionDerivatives", "differentiate_transitions"]

ROW_SUM_TOL = 1e-10


@dataclass(frozen=True, eq=False)
class Factor:
    """Transition probabilities of one state variable.

    Parameters
    ----------
    variable : str
        The state variable whose next value this factor draws.
    table : array_like
        Probabilities with one axis per name in ``given`` (in that order) followed by a last axis
        over the next value of ``variable``. Every row (last axis) must sum to one, including rows
        of infeasible actions (give any distribution there; it is never used).
    given : sequence of str
        What the distribution is conditioned on: ``"action"`` and/or names of state variables
        (their current values). Default ``(variable,)``: a Markov chain independent of the action.

    Examples
    --------
    Shipping engagement whose matrix depends on the action taken (3 actions, 3 levels):

    >>> import numpy as np
    >>> stay = np.eye(3)
    >>> Factor("ship", np.stack([stay, stay, stay]), given=("action", "ship")).given
    ('action', 'ship')
    """

    variable: str
    table: np.ndarray
    given: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        given = (self.variable,) if self.given is None else tuple(self.given)
        object.__setattr__(self, "given", given)
        table = np.asarray(self.table, dtype=np.float64)
        object.__setattr__(self, "table", table)
        if table.ndim != len(given) + 1:
            raise ValueError(
                f"transition factor of {self.variable!r}: table has {table.ndim} axes but "
                f"given={given} needs {len(given) + 1} (one per conditioning name, then the next "
                f"value of {self.variable!r})"
            )
        if len(set(given)) != len(given):
            raise ValueError(f"transition factor of {self.variable!r}: repeated names in {given}")
        # one pass in the common case: no entry NaN or negative, and finite row sums (so no
        # entry infinite); otherwise the entry at fault is named below
        sums = table.sum(axis=-1) if (table >= 0).all() else None
        if (sums is None or not np.isfinite(sums).all()) and \
                (not np.all(np.isfinite(table)) or np.any(table < 0)):
            bad = np.argwhere(~np.isfinite(table) | (table < 0))[0]
            raise ValueError(
                f"transition factor of {self.variable!r}: probabilities must be finite and "
                f">= 0; entry {tuple(int(i) for i in bad)} is {float(table[tuple(bad)])!r}"
            )
        if np.any(np.abs(sums - 1.0) > ROW_SUM_TOL):
            bad = np.argwhere(np.abs(sums - 1.0) > ROW_SUM_TOL)[0]
            where = ", ".join(f"{g}={int(i)}" for g, i in zip(given, bad, strict=True))
            raise ValueError(
                f"transition factor of {self.variable!r}: the row at ({where}) sums to "
                f"{sums[tuple(bad)]:.12g}, not 1 (rows are distributions over the next value)"
            )


class CompiledTransitions(NamedTuple):
    """Flat arrays describing factored transitions, for the numba kernels.

    Factors are stored in the order in which the expectation applies them. For factor *f*:
    the variable's stride and size in the flat state index; ``action_mult`` (the multiplier of
    the action in the row index, 0 if the factor ignores the action); its conditioning state
    dimensions ``g_stride, g_size, g_mult`` in ``g_ptr[f]:g_ptr[f+1]``; and its rows, in CSR form
    (``indptr, indices, data``), starting at ``row_offset[f]``.
    """

    n_states: int
    n_actions: int
    f_stride: np.ndarray
    f_size: np.ndarray
    f_action_mult: np.ndarray
    row_offset: np.ndarray
    g_ptr: np.ndarray
    g_stride: np.ndarray
    g_size: np.ndarray
    g_mult: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def expected(self, W: np.ndarray) -> np.ndarray:
        """:math:`E[W(s') \\mid s, a]`: a vector (S,) gives (S, A); a matrix (S, K) gives
        (S, A, K). Factor by factor (numba kernel), never through a dense matrix."""
        from ddc.kernels.bellman import expected_values, expected_values_columns

        trans = tuple(self)[2:]
        S, A = self.n_states, self.n_actions
        W = np.asarray(W, dtype=np.float64)
        if W.ndim == 1:
            out = np.empty((S, A))
            expected_values(np.ascontiguousarray(W), out, *trans)
            return out
        out = np.empty((S, A, W.shape[1]))
        expected_values_columns(np.ascontiguousarray(W), out, *trans)
        return out

    def push(self, w: np.ndarray) -> np.ndarray:
        """:math:`\\sum_{s,a} w(s, a) P(s' \\mid s, a)`: (S, A) gives (S,); (S, A, K) gives
        (S, K). One step forward of a distribution over states and actions."""
        from ddc.kernels.bellman import push_forward

        trans = tuple(self)[2:]
        S = self.n_states
        w = np.asarray(w, dtype=np.float64)
        if w.ndim == 2:
            out = np.empty(S)
            push_forward(np.ascontiguousarray(w), out, *trans)
            return out
        out = np.empty((S, w.shape[2]))
        tmp = np.empty(S)
        for k in range(w.shape[2]):
            push_forward(np.ascontiguousarray(w[:, :, k]), tmp, *trans)
            out[:, k] = tmp
        return out

    def row_nnz_max(self) -> np.ndarray:
        """Largest number of nonzeros of a row, per factor."""
        out = np.zeros(len(self.f_stride), dtype=np.int64)
        counts = np.diff(self.indptr)
        for f in range(len(out)):
            stop = self.row_offset[f + 1] if f + 1 < len(out) else len(counts)
            out[f] = counts[self.row_offset[f] : stop].max(initial=0)
        return out


def _compile(
    n_states: int,
    n_actions: int,
    parts: list[tuple[int, int, int, list[tuple[int, int, int]], np.ndarray]],
) -> CompiledTransitions:
    """Pack factor descriptions ``(stride, size, action_mult, dims, rows)`` into flat arrays."""
    f_stride, f_size, f_amult, row_offset, g_ptr = [], [], [], [], [0]
    g_stride, g_size, g_mult = [], [], []
    indptr_parts, indices_parts, data_parts = [], [], []
    n_rows = 0
    nnz = 0
    for stride, size, amult, dims, rows in parts:
        f_stride.append(stride)
        f_size.append(size)
        f_amult.append(amult)
        row_offset.append(n_rows)
        for gs, gn, gm in dims:
            g_stride.append(gs)
            g_size.append(gn)
            g_mult.append(gm)
        g_ptr.append(len(g_stride))
        if isinstance(rows, np.ndarray) and rows.ndim == 2:
            # dense rows: the nonzeros in row-major order (what scipy's conversion gives, sorted
            # indices), without its COO detour
            r, c = np.nonzero(rows)
            counts = np.bincount(r, minlength=rows.shape[0])
            indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            indices, values, m = c, rows[r, c], rows.shape[0]
        else:
            csr = sp.csr_matrix(rows)
            csr.sort_indices()
            indptr, indices, values, m = csr.indptr, csr.indices, csr.data, csr.shape[0]
        indptr_parts.append(indptr[:-1] + nnz)
        indices_parts.append(indices)
        data_parts.append(values)
        n_rows += m
        nnz += int(indptr[-1])
    indptr_parts.append(np.array([nnz]))

    def i64(x):
        return np.asarray(x, dtype=np.int64)

    return CompiledTransitions(
        n_states=int(n_states),
        n_actions=int(n_actions),
        f_stride=i64(f_stride),
        f_size=i64(f_size),
        f_action_mult=i64(f_amult),
        row_offset=i64(row_offset),
        g_ptr=i64(g_ptr),
        g_stride=i64(g_stride),
        g_size=i64(g_size),
        g_mult=i64(g_mult),
        indptr=i64(np.concatenate(indptr_parts)),
        indices=i64(np.concatenate(indices_parts)),
        data=np.ascontiguousarray(np.concatenate(data_parts), dtype=np.float64),
    )


class FactoredTransitions:
    """Transitions as independent factors, one per changing state variable.

    Parameters
    ----------
    factors : sequence of Factor
        At most one factor per state variable; variables without a factor never change.

    Notes
    -----
    :meth:`compile` checks the factors against a state space and the number of actions (sizes,
    names) and orders them so that every factor comes after the factors of the variables it is
    conditioned on.
    """

    def __init__(self, factors: Sequence[Factor]):
        factors = tuple(factors)
        names = [f.variable for f in factors]
        if len(set(names)) != len(names):
            raise ValueError(f"at most one transition factor per state variable; got {names}")
        self.factors = factors

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.variable} | {', '.join(f.given)}" for f in self.factors)
        return f"FactoredTransitions({parts})"

    def compile(self, space: StateSpace, n_actions: int,
                tables: Mapping[str, np.ndarray] | None = None) -> CompiledTransitions:
        """Check the factors against ``space`` and pack them for the kernels.

        ``tables`` replaces the tables of some factors (by variable name) with arrays of the
        same shape that need not be distributions: derivatives of the tables in a parameter
        (:func:`differentiate_transitions`), compiled into the same layout.
        """
        tables = {} if tables is None else dict(tables)
        by_name = {f.variable: f for f in self.factors}
        for name, t in tables.items():
            if name not in by_name or np.shape(t) != by_name[name].table.shape:
                raise ValueError(f"replacement table for {name!r} does not match a factor of "
                                 f"{self!r}")
        for f in self.factors:
            if f.variable not in space.names:
                raise ValueError(
                    f"transition factor for {f.variable!r}, which is not a state variable of the "
                    f"model ({space.names})"
                )
            expected = []
            for g in f.given:
                if g == "action":
                    expected.append(n_actions)
                elif g in space.names:
                    expected.append(space.variable(g).size)
                else:
                    raise ValueError(
                        f"transition factor of {f.variable!r} is conditioned on {g!r}, which is "
                        f"neither 'action' nor a state variable ({space.names})"
                    )
            expected.append(space.variable(f.variable).size)
            if f.table.shape != tuple(expected):
                raise ValueError(
                    f"transition factor of {f.variable!r}: table has shape {f.table.shape}, "
                    f"expected {tuple(expected)} for given={f.given} (+ next value)"
                )
        order = _topological_order(by_name)
        parts = []
        for name in order:
            f = by_name[name]
            j = space.axis(name)
            dims, mult, amult = [], 1, 0
            # the row index is C-order over `given`: last given varies fastest
            for g, n in reversed(list(zip(f.given, f.table.shape[:-1], strict=True))):
                if g == "action":
                    amult = mult
                else:
                    dims.append((int(space.strides[space.axis(g)]), int(n), mult))
                mult *= n
            table = tables.get(name, f.table)
            rows = table.reshape(-1, table.shape[-1])
            parts.append((int(space.strides[j]), space.variable(name).size, amult, dims, rows))
        if not parts:  # nothing ever changes: an identity factor on the last variable
            j = len(space.names) - 1
            n = space.shape[j]
            parts.append((1, n, 0, [(1, n, 1)], np.eye(n)))
        return _compile(space.size, n_actions, parts)


def _topological_order(by_name: dict[str, Factor]) -> list[str]:
    deps = {n: {g for g in f.given if g in by_name and g != n} for n, f in by_name.items()}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(deps):
        ready = [n for n in deps if n not in done and deps[n] <= done]
        if not ready:
            cyc = sorted(n for n in deps if n not in done)
            raise ValueError(
                f"transition factors of {cyc} are conditioned on each other in a cycle; the "
                "factored expectation needs acyclic conditioning. Merge those variables into one "
                "state variable with a joint factor, or give the transitions as SparseTransitions"
            )
        order.extend(ready)
        done.update(ready)
    return order


class SparseTransitions:
    """Transitions given as one sparse ``S x S`` matrix per action.

    Parameters
    ----------
    matrices : sequence of scipy.sparse matrices or dense arrays
        ``matrices[a][s, s']`` is :math:`P(s' \\mid s, a)`; one per action, rows summing to one.
    """

    def __init__(self, matrices: Sequence):
        self.matrices = tuple(sp.csr_matrix(m, dtype=np.float64) for m in matrices)

    def __repr__(self) -> str:
        return f"SparseTransitions({len(self.matrices)} actions)"

    def compile(self, space: StateSpace, n_actions: int,
                tables: Mapping[str, Sequence] | None = None) -> CompiledTransitions:
        """Check the matrices against ``space`` and pack them for the kernels.

        ``tables={"matrices": [...]}`` packs other matrices of the same shapes in their place
        without checking them as distributions (derivatives, see
        :func:`differentiate_transitions`).
        """
        S = space.size
        if tables:
            if set(tables) != {"matrices"} or len(tables["matrices"]) != n_actions:
                raise ValueError("SparseTransitions.compile takes tables={'matrices': [one "
                                 "matrix per action]}")
            mats = [sp.csr_matrix(m, dtype=np.float64) for m in tables["matrices"]]
            if any(m.shape != (S, S) for m in mats):
                raise ValueError(f"replacement matrices must be ({S}, {S})")
            return _compile(S, n_actions, [(1, S, S, [(1, S, 1)], sp.vstack(mats, format="csr"))])
        if len(self.matrices) != n_actions:
            raise ValueError(
                f"SparseTransitions has {len(self.matrices)} matrices; the model has "
                f"{n_actions} actions (one matrix per action)"
            )
        for a, m in enumerate(self.matrices):
            if m.shape != (S, S):
                raise ValueError(f"transition matrix of action {a} has shape {m.shape}, "
                                 f"expected ({S}, {S})")
            bad = ~np.isfinite(m.data) | (m.data < 0)
            if bad.any():
                coo = m.tocoo()
                k = np.flatnonzero(~np.isfinite(coo.data) | (coo.data < 0))[0]
                raise ValueError(f"transition matrix of action {a}: entry at row {coo.row[k]}, "
                                 f"column {coo.col[k]} is {float(coo.data[k])!r}; probabilities "
                                 "must be finite and >= 0")
            sums = np.asarray(m.sum(axis=1)).ravel()
            bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)
            if bad.size:
                raise ValueError(
                    f"transition matrix of action {a}: row {int(bad[0])} (state "
                    f"{space.label(bad[0])}) sums to {sums[bad[0]]:.12g}, not 1"
                )
        rows = sp.vstack(self.matrices, format="csr")
        return _compile(S, n_actions, [(1, S, S, [(1, S, 1)], rows)])


TransitionSpec = FactoredTransitions | SparseTransitions | Callable


def deterministic_factors(ct: CompiledTransitions) -> CompiledTransitions | None:
    """The factors of ``ct`` whose every row puts probability one on a single value.

    Returns ``None`` when there are none. Used to precondition iterative solves: with the
    stochastic factors replaced by the identity, :math:`I - \\beta \\tilde P_\\pi` has at most
    ``A`` nonzeros a row and is cheap to factorize exactly.
    """
    counts = np.diff(ct.indptr)
    n_f = len(ct.f_stride)
    bounds = [*ct.row_offset.tolist(), len(counts)]
    keep = [f for f in range(n_f) if np.all(counts[bounds[f]:bounds[f + 1]] == 1)]
    if not keep:
        return None
    parts = []
    for f in keep:
        lo, hi = bounds[f], bounds[f + 1]
        g = range(ct.g_ptr[f], ct.g_ptr[f + 1])
        dims = [(int(ct.g_stride[k]), int(ct.g_size[k]), int(ct.g_mult[k])) for k in g]
        start, stop = ct.indptr[lo], ct.indptr[hi]
        rows = sp.csr_matrix(
            (ct.data[start:stop], ct.indices[start:stop], ct.indptr[lo:hi + 1] - start),
            shape=(hi - lo, int(ct.f_size[f])),
        )
        parts.append((int(ct.f_stride[f]), int(ct.f_size[f]), int(ct.f_action_mult[f]), dims,
                      rows))
    return _compile(ct.n_states, ct.n_actions, parts)


# ----------------------------------------------------------------------------- derivatives
def _components(spec: FactoredTransitions | SparseTransitions) -> dict:
    """The parts of a transition specification that parameters move, by name."""
    if isinstance(spec, FactoredTransitions):
        return {f.variable: f.table for f in spec.factors}
    if isinstance(spec, SparseTransitions):
        return {"matrices": spec.matrices}
    raise TypeError("transitions must be FactoredTransitions or SparseTransitions, got "
                    f"{type(spec).__name__}")


def _combine(coefs: Sequence[float], values: Sequence, denoise: bool = False):
    """``sum_i coefs[i] * values[i]`` for arrays or tuples of sparse matrices.

    With ``denoise``, entries no larger than the rounding error of the sum,
    :math:`8 \\epsilon \\sum_i |c_i| \\max |v_i|`, are set to zero: a difference quotient
    cannot tell them from zero (second differences of tables linear in a parameter are pure
    rounding), and zero terms are skipped.
    """
    if isinstance(values[0], tuple):
        out = tuple(sp.csr_matrix(sum(c * v[a] for c, v in zip(coefs, values, strict=True)))
                    for a in range(len(values[0])))
        if denoise:
            for a, m in enumerate(out):
                bound = 8 * np.finfo(float).eps * sum(
                    abs(c) * abs(v[a]).max(initial=0.0) for c, v in zip(coefs, values,
                                                                          strict=True))
                m.data[np.abs(m.data) <= bound] = 0.0
                m.eliminate_zeros()
        return out
    out = coefs[0] * values[0]
    for c, v in zip(coefs[1:], values[1:], strict=True):
        out = out + c * v
    if denoise:
        bound = 8 * np.finfo(float).eps * sum(abs(c) * np.abs(v).max(initial=0.0)
                                              for c, v in zip(coefs, values, strict=True))
        out = np.where(np.abs(out) <= bound, 0.0, out)
    return out


def _is_zero(value) -> bool:
    if isinstance(value, tuple):
        return all(m.count_nonzero() == 0 for m in value)
    return not np.any(value)


def _centered(W: np.ndarray) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    return W - 0.5 * (W.max() + W.min())


class TransitionDerivatives:
    """Derivatives of the transitions in transition parameters, compiled for the kernels.

    The transition probabilities of a factored model are a product of factors,
    :math:`P(s' \\mid s, a) = \\prod_j F_j`, so by the product rule

    .. math::

        \\frac{\\partial P}{\\partial \\psi_k} = \\sum_j \\frac{\\partial F_j}{\\partial \\psi_k}
        \\prod_{i \\ne j} F_i, \\qquad
        \\frac{\\partial^2 P}{\\partial \\psi_k \\partial \\psi_l} = \\sum_j
        \\frac{\\partial^2 F_j}{\\partial \\psi_k \\partial \\psi_l} \\prod_{i \\ne j} F_i
        + \\sum_{j \\ne m} \\frac{\\partial F_j}{\\partial \\psi_k}
        \\frac{\\partial F_m}{\\partial \\psi_l} \\prod_{i \\ne j, m} F_i .

    Each term is a :class:`CompiledTransitions` with some factors' tables replaced by their
    derivatives; :meth:`expected` applies the sum of the terms to a vector, factor by factor,
    like the transitions themselves. Built by :func:`differentiate_transitions`.

    Attributes
    ----------
    names : tuple of str
        The transition parameters, in order.
    steps : numpy.ndarray
        The difference step used for each parameter.
    first : list of list of CompiledTransitions
        ``first[k]``: the terms of :math:`\\partial P / \\partial \\psi_k` (empty if zero).
    second : dict or None
        ``second[(k, l)]`` (``k <= l``): the terms of the second derivative, when computed.
    """

    def __init__(self, names, steps, first, second, n_states: int, n_actions: int):
        self.names = tuple(names)
        self.steps = np.asarray(steps, dtype=float)
        self.first = first
        self.second = second
        self.n_states, self.n_actions = int(n_states), int(n_actions)

    def __repr__(self) -> str:
        return (f"TransitionDerivatives({list(self.names)}, second="
                f"{self.second is not None})")

    def expected(self, W: np.ndarray) -> np.ndarray:
        """:math:`\\sum_{s'} \\partial P(s' \\mid s, a) / \\partial \\psi_k \\, W(s')`, shape
        (S, A, P), for a vector ``W`` of shape (S,); shape (S, A, P, m) for a matrix ``W`` of
        shape (S, m) (each column as a vector would give it).

        The rows of a derivative of distributions sum to zero, so ``W`` is centered first
        (:math:`W - (\\max W + \\min W)/2`, column by column): mathematically the same, it
        keeps the rounding error of the differenced tables from being multiplied by the level
        of ``W`` (values are in the thousands at :math:`\\beta` near one).
        """
        W = np.asarray(W, dtype=np.float64)
        if W.ndim == 2:
            W = W - 0.5 * (W.max(axis=0) + W.min(axis=0))
            out = np.zeros((self.n_states, self.n_actions, len(self.names), W.shape[1]))
        else:
            W = _centered(W)
            out = np.zeros((self.n_states, self.n_actions, len(self.names)))
        for k, terms in enumerate(self.first):
            for ct in terms:
                out[:, :, k] += ct.expected(W)
        return out

    def expected_second(self, W: np.ndarray) -> np.ndarray:
        """:math:`\\sum_{s'} \\partial^2 P / \\partial \\psi_k \\partial \\psi_l \\, W(s')`,
        shape (S, A, P, P), symmetric in the last two axes."""
        if self.second is None:
            raise ValueError("second derivatives were not computed; call "
                             "differentiate_transitions(..., second=True)")
        W = _centered(W)
        P = len(self.names)
        out = np.zeros((self.n_states, self.n_actions, P, P))
        for (k, l), terms in self.second.items():
            for ct in terms:
                e = ct.expected(W)
                out[:, :, k, l] += e
                if k != l:
                    out[:, :, l, k] += e
        return out


def differentiate_transitions(
    evaluate: Callable[[np.ndarray], FactoredTransitions | SparseTransitions],
    psi: np.ndarray,
    names: Sequence[str],
    space: StateSpace,
    n_actions: int,
    second: bool = False,
    rel_step: float = 1e-4,
    jacobian=None,
) -> TransitionDerivatives:
    """Derivatives of the transition tables in the transition parameters.

    The transition function is the user's code, so its tables are differentiated numerically,
    but only the tables (no fixed point is solved): for each parameter, Richardson-extrapolated
    central differences of the tables,

    .. math::

        \\frac{\\partial F}{\\partial \\psi_k} \\approx
        \\frac{8 [F(\\psi + h e_k) - F(\\psi - h e_k)] - [F(\\psi + 2h e_k) - F(\\psi - 2h e_k)]}
        {12 h},

    with error :math:`O(h^4)` (zero for tables polynomial of degree up to 4 in :math:`\\psi_k`,
    such as probabilities that are the parameters themselves) plus rounding, about
    :math:`\\epsilon / h \\approx 10^{-12}` at the default :math:`h = 10^{-4}`. With
    ``second=True`` also the second derivatives: on the diagonal the fourth-order five-point
    formula, across parameters the central second
    difference along :math:`h_k e_k + h_l e_l` less the diagonal terms (error
    :math:`O(h^2)`, rounding :math:`\\epsilon / h^2`); entries of second derivatives within
    their rounding error are set to zero (those of tables linear in the parameters, for
    example), and zero terms dropped.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(psi) -> FactoredTransitions | SparseTransitions``: the transitions at a
        vector of transition parameters.
    psi : numpy.ndarray
        Where to differentiate.
    names : sequence of str
        Names of the entries of ``psi`` (for messages and the result).
    space : StateSpace
        The model's states.
    n_actions : int
        Number of actions.
    second : bool
        Also compute second derivatives.
    rel_step : float
        The step :math:`h_k` is ``rel_step * max(1, |psi_k|)``, halved (up to 30 times) while
        ``evaluate`` rejects a point of the stencil with a ``ValueError`` (a parameter near the
        edge of its domain).
    jacobian : ddc.hooks.TransitionJacobian, optional
        The tables' first derivatives in closed form: ``jacobian.first(psi)`` replaces the
        differences (no step; ``steps`` are then zero), for the entries of ``psi`` in order.
        With ``second=True`` it is used only when ``jacobian.affine`` (the tables' second
        derivatives are then zero, the products of first derivatives of different factors
        remain); otherwise everything is differenced as without it.

    Returns
    -------
    TransitionDerivatives
    """
    psi = np.asarray(psi, dtype=float)
    P = psi.size
    base = evaluate(psi)
    comp0 = _components(base)
    keys = list(comp0)
    if jacobian is not None and (not second or jacobian.affine):
        return _from_jacobian(base, comp0, jacobian, psi, names, space, n_actions, second)

    def at(x):
        comp = _components(evaluate(x))
        if list(comp) != keys:
            raise ValueError("the transition function returned differently structured "
                             f"transitions at {x} ({list(comp)} vs {keys})")
        return comp

    def stencil(direction, offsets):
        scale = 1.0
        last = None
        for _ in range(31):
            try:
                return scale, [at(psi + o * scale * direction) for o in offsets]
            except ValueError as err:
                last = err
                scale *= 0.5
        where = dict(zip(names, psi.tolist(), strict=True))
        raise ValueError(f"cannot differentiate the transitions at {where}: the transition "
                         f"function rejects every step along {direction} "
                         f"(last error: {last})")

    steps = np.empty(P)
    d1: list[dict] = []
    d2: dict[tuple[int, int], dict] = {}
    for k in range(P):
        e = np.zeros(P)
        e[k] = rel_step * max(1.0, abs(psi[k]))
        # the far points first: where a step leaves the domain, they fail first
        scale, (p2, m2, p1, m1) = stencil(e, (2.0, -2.0, 1.0, -1.0))
        h = steps[k] = scale * e[k]
        d1.append({c: _combine([1 / (12 * h), -8 / (12 * h), 8 / (12 * h), -1 / (12 * h)],
                               [m2[c], m1[c], p1[c], p2[c]]) for c in keys})
        if second:
            w = 1 / (12 * h * h)
            d2[(k, k)] = {c: _combine([-w, 16 * w, -30 * w, 16 * w, -w],
                                      [m2[c], m1[c], comp0[c], p1[c], p2[c]], True)
                          for c in keys}
    if second:
        for k in range(P):
            for l in range(k + 1, P):
                d = np.zeros(P)
                d[k], d[l] = steps[k], steps[l]
                scale, (m1, p1) = stencil(d, (-1.0, 1.0))
                tk, tl = scale * steps[k], scale * steps[l]
                d2[(k, l)] = {c: _combine(
                    [1 / (2 * tk * tl), -2 / (2 * tk * tl), 1 / (2 * tk * tl),
                     -tk / (2 * tl), -tl / (2 * tk)],
                    [m1[c], comp0[c], p1[c], d2[(k, k)][c], d2[(l, l)][c]], True)
                    for c in keys}

    def compiled(replace: dict):
        return base.compile(space, n_actions, tables=replace)

    first = [[compiled({c: dk[c]}) for c in keys if not _is_zero(dk[c])] for dk in d1]
    sec = None
    if second:
        sec = {}
        for (k, l), dkl in d2.items():
            terms = [compiled({c: dkl[c]}) for c in keys if not _is_zero(dkl[c])]
            for c in keys:
                for c2 in keys:
                    if c != c2 and not _is_zero(d1[k][c]) and not _is_zero(d1[l][c2]):
                        terms.append(compiled({c: d1[k][c], c2: d1[l][c2]}))
            sec[(k, l)] = terms
    return TransitionDerivatives(names, steps, first, sec, space.size, n_actions)


def _from_jacobian(base, comp0: dict, jacobian, psi: np.ndarray, names: Sequence[str],
                   space: StateSpace, n_actions: int, second: bool) -> TransitionDerivatives:
    """:func:`differentiate_transitions` from a closed-form Jacobian of the tables (affine
    tables when ``second``: no second derivative of a table, only products of first
    derivatives of two different factors)."""
    if not isinstance(base, FactoredTransitions):
        raise TypeError("a TransitionJacobian differentiates FactoredTransitions; the transition "
                        f"function returned {type(base).__name__}")
    P = psi.size
    got = list(jacobian.first(psi.copy()))
    if len(got) != P:
        raise ValueError(f"the transition Jacobian gave {len(got)} derivative(s) for the "
                         f"{P} transition parameters {list(names)}")
    d1 = []
    for k, dk in enumerate(got):
        unknown = [c for c in dk if c not in comp0]
        if unknown:
            raise ValueError(f"the transition Jacobian's derivative in {names[k]!r} names "
                             f"{unknown}, which are not factors of the transitions "
                             f"({list(comp0)})")
        row = {}
        for c in comp0:
            if c not in dk:
                continue
            t = np.asarray(dk[c], dtype=np.float64)
            if t.shape != comp0[c].shape:
                raise ValueError(f"the transition Jacobian's derivative of factor {c!r} in "
                                 f"{names[k]!r} has shape {t.shape}; the table has "
                                 f"{comp0[c].shape}")
            if not np.all(np.isfinite(t)):
                raise ValueError(f"the transition Jacobian's derivative of factor {c!r} in "
                                 f"{names[k]!r} is not finite")
            if np.any(t):
                row[c] = t
        d1.append(row)

    def compiled(replace: dict):
        return base.compile(space, n_actions, tables=replace)

    first = [[compiled({c: t}) for c, t in dk.items()] for dk in d1]
    sec = None
    if second:
        sec = {(k, l): [compiled({c: d1[k][c], c2: d1[l][c2]})
                        for c in d1[k] for c2 in d1[l] if c != c2]
               for k in range(P) for l in range(k, P)}
    return TransitionDerivatives(names, np.zeros(P), first, sec, space.size, n_actions)
