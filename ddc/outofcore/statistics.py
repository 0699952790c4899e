"""The sufficient statistics of a panel and the accumulator that builds them chunk by chunk.

:class:`SufficientStatistics` holds the counts the likelihood depends on (:math:`N(s, a)`, the
same over each unit's first row, :math:`N(s, a, s')` and the model's own transition statistics,
e.g. Rust's increments); :class:`_Accumulator` adds the counts of coded panels of complete units,
dense or as sorted (key, count) pairs for large state spaces, and merges across tasks
(:mod:`ddc.outofcore.reduction`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Panel, PanelError, TransitionCounts, _factor_rows
from ddc.transitions import FactoredTransitions

#: Above this many cells :math:`S \\cdot A \\cdot S` the transition counts are accumulated as
#: sorted (key, count) pairs instead of a dense array.
DENSE_TRANSITIONS_MAX = 1 << 22


@dataclass(frozen=True, eq=False)
class SufficientStatistics:
    """The counts that the likelihood of a panel depends on.

    Attributes
    ----------
    model : Model
        The model the rows were coded for.
    counts : numpy.ndarray of int64, shape (S, A)
        :math:`N(s, a)`: rows by state and action.
    first_counts : numpy.ndarray of int64, shape (S, A)
        The same counts over each unit's first row (its earliest period), so that
        ``counts - first_counts`` is the choice sample of an estimator that conditions on the
        first period (Rust's convention for his bus data; :meth:`choice_counts`).
    transition_counts : ddc.panel.TransitionCounts
        The distinct observed :math:`(s, a, s')` with their counts.
    increment_counts : numpy.ndarray of int64 or None
        For a model whose transition family estimates from its own column
        (:class:`ddc.transition_families.IncrementTransitions`, Rust's bus) and whose source has
        that column: the family's statistics (how many rows show each increment
        ``0, 1, ..., J-1``, missing values not counted); else ``None``.
    nobs : int
        Rows.
    n_units : int
        Units (distinct ids).
    id_col, time_col : str
        The id and period columns used.
    n_chunks : int
        Chunks read.
    seconds : float
        Wall time of the reduction.
    """

    model: Model
    counts: np.ndarray
    first_counts: np.ndarray
    transition_counts: TransitionCounts
    increment_counts: np.ndarray | None
    nobs: int
    n_units: int
    id_col: str = "id"
    time_col: str = "period"
    n_chunks: int = 1
    seconds: float = field(default=0.0, compare=False)

    def __repr__(self) -> str:
        inc = "" if self.increment_counts is None else \
            f", increments {self.increment_counts.tolist()}"
        return (f"SufficientStatistics({self.model.name!r}: {self.nobs:,} rows, "
                f"{self.n_units:,} units, {self.n_transitions:,} transitions "
                f"({len(self.transition_counts):,} distinct){inc}; {self.n_chunks} chunk(s), "
                f"{self.seconds:.2f} s)")

    @classmethod
    def from_panel(cls, panel: Panel, frame: pd.DataFrame | None = None) -> SufficientStatistics:
        """The statistics of a panel in memory (the reference the out-of-core reduction equals).

        Parameters
        ----------
        panel : ddc.panel.Panel
            A coded panel.
        frame : pandas.DataFrame, optional
            The frame it was coded from, to count the model's increment column if it has one.
        """
        acc = _Accumulator(panel.model)
        acc.n_chunks = 1
        acc.add_panel(panel, frame, _inc_column(panel.model, frame.columns if frame is not None
                                                else ()))
        return acc.result(panel.id_col, panel.time_col)

    @property
    def n_transitions(self) -> int:
        """Rows with a next state (all but each unit's last row)."""
        return self.transition_counts.total

    def choice_counts(self, drop_first: bool = False) -> np.ndarray:
        """:math:`N(s, a)` of the choice sample: all rows, or all but each unit's first row.

        Parameters
        ----------
        drop_first : bool
            Leave each unit's first period out (as ``estimators.data.choice_data(...,
            drop_first=True)``).

        Returns
        -------
        numpy.ndarray of int64, shape (S, A)
        """
        return self.counts - self.first_counts if drop_first else self.counts.copy()

    def loglik_choice(self, log_pi: np.ndarray, drop_first: bool = False) -> float:
        """:math:`\\sum_{s, a} N(s, a) \\log \\pi(a \\mid s)` over the cells with a count.

        Parameters
        ----------
        log_pi : array_like, shape (S, A)
            Log choice probabilities (``-inf`` at infeasible actions is fine: those cells have
            no count).
        drop_first : bool
            As in :meth:`choice_counts`.
        """
        lp = np.asarray(log_pi, dtype=np.float64)
        c = self.choice_counts(drop_first)
        if lp.shape != c.shape:
            raise ValueError(f"log_pi must have shape (states, actions) = {c.shape}, got "
                             f"{lp.shape}")
        used = c > 0
        return float(np.sum(c[used] * lp[used]))

    def factor_counts(self, params=None) -> dict[str, np.ndarray]:
        """Counts per transition factor, in the shape of each factor's table (as
        :meth:`ddc.panel.Panel.factor_counts`).

        Parameters
        ----------
        params : optional
            Parameters at which the transitions' structure is taken (defaults when ``None``).

        Returns
        -------
        dict
            Variable name -> int64 array of the factor table's shape.
        """
        model = self.model
        trans = model.transitions(params)
        if not isinstance(trans, FactoredTransitions):
            raise TypeError(f"factor_counts needs factored transitions; model {model.name!r} "
                            f"has {type(trans).__name__}. Use .transition_counts instead")
        ct = model.compiled_transitions(params)
        tc = self.transition_counts
        by_stride = {int(st): f for f, st in enumerate(ct.f_stride)}
        weights = tc.n.astype(np.float64)
        out = {}
        for factor in trans.factors:
            f = by_stride[int(model.space.strides[model.space.axis(factor.variable)])]
            size = int(ct.f_size[f])
            local = _factor_rows(ct, f, tc.s, tc.a)
            nxt = (tc.s_next // ct.f_stride[f]) % size
            c = np.bincount(local * size + nxt, weights=weights,
                            minlength=int(np.prod(factor.table.shape)))
            out[factor.variable] = np.rint(c).astype(np.int64).reshape(factor.table.shape)
        return out

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        """The statistics of two panels of distinct units stacked."""
        if not isinstance(other, SufficientStatistics):
            return NotImplemented
        if other.counts.shape != self.counts.shape:
            raise ValueError(f"cannot add statistics of models with (states, actions) "
                             f"{self.counts.shape} and {other.counts.shape}")
        acc = _Accumulator(self.model)
        for st in (self, other):
            acc.merge(_Accumulator.of(st))
        out = acc.result(self.id_col, self.time_col)
        return _replace(out, n_chunks=self.n_chunks + other.n_chunks,
                        seconds=self.seconds + other.seconds)


def _replace(st: SufficientStatistics, **changes) -> SufficientStatistics:
    from dataclasses import replace

    return replace(st, **changes)


class _Accumulator:
    """Running counts of complete units (picklable; merged across tasks)."""

    def __init__(self, model: Model):
        S, A = model.n_states, model.n_actions
        self.model = model
        self.S, self.A = S, A
        self.counts = np.zeros(S * A, dtype=np.int64)
        self.first = np.zeros(S * A, dtype=np.int64)
        self.dense = S * A * S <= DENSE_TRANSITIONS_MAX
        if S * A * S >= 2**62:
            raise ValueError(f"{S} states x {A} actions: (state, action, next state) keys "
                             "overflow 64-bit integers")
        self.trans = np.zeros(S * A * S if self.dense else 0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)  # sparse: sorted distinct keys and counts
        self.J = len(model.transition_params) + 1
        self.inc: np.ndarray | None = None
        self.nobs = 0
        self.n_units = 0
        self.n_chunks = 0

    def __getstate__(self):
        state = dict(self.__dict__)
        state["model"] = None  # the driver re-attaches its own model
        return state

    @classmethod
    def of(cls, st: SufficientStatistics) -> _Accumulator:
        acc = cls(st.model)
        acc.counts = st.counts.ravel().copy()
        acc.first = st.first_counts.ravel().copy()
        tc = st.transition_counts
        acc._add_keys((tc.s * acc.A + tc.a) * acc.S + tc.s_next, tc.n)
        acc.inc = None if st.increment_counts is None else st.increment_counts.copy()
        acc.nobs, acc.n_units, acc.n_chunks = st.nobs, st.n_units, st.n_chunks
        return acc

    def _add_keys(self, keys: np.ndarray, n: np.ndarray | None = None) -> None:
        if self.dense:
            if n is None:
                self.trans += np.bincount(keys, minlength=self.trans.size)
            else:
                np.add.at(self.trans, keys, n)
            return
        if n is None:
            keys, n = np.unique(keys, return_counts=True)
        all_keys = np.concatenate([self.keys, keys])
        all_n = np.concatenate([self.trans, n.astype(np.int64)])
        self.keys, inverse = np.unique(all_keys, return_inverse=True)
        self.trans = np.bincount(inverse.ravel(), weights=all_n,
                                 minlength=len(self.keys)).astype(np.int64)

    def add_panel(self, panel: Panel, frame: pd.DataFrame | None, inc_col: str | None) -> None:
        """Add the counts of a panel of complete units."""
        S, A = self.S, self.A
        s, a, sn = panel.state, panel.action, panel.next_state
        self.counts += np.bincount(s * A + a, minlength=S * A)
        first = np.ones(len(s), dtype=bool)
        first[1:] = panel.unit[1:] != panel.unit[:-1]
        self.first += np.bincount(s[first] * A + a[first], minlength=S * A)
        has = sn >= 0
        self._add_keys((s[has] * A + a[has]) * S + sn[has])
        if inc_col is not None and frame is not None:
            self._add_increments(frame, inc_col)
        self.nobs += panel.nobs
        self.n_units += panel.n_units

    def _add_increments(self, frame: pd.DataFrame, col: str) -> None:
        # the model's transition family counts its own column (additive over chunks)
        try:
            c = self.model.hooks.transition_family.statistics(self.model, frame)
        except ValueError as exc:
            raise PanelError(str(exc)) from None
        self.inc = c if self.inc is None else self.inc + c

    def merge(self, other: _Accumulator) -> None:
        self.counts += other.counts
        self.first += other.first
        if other.dense:
            if self.dense:
                self.trans += other.trans
            else:  # pragma: no cover - both sides share the model's layout
                nz = np.flatnonzero(other.trans)
                self._add_keys(nz.astype(np.int64), other.trans[nz])
        elif len(other.keys):
            self._add_keys(other.keys, other.trans)
        if other.inc is not None:
            self.inc = other.inc.copy() if self.inc is None else self.inc + other.inc
        self.nobs += other.nobs
        self.n_units += other.n_units
        self.n_chunks += other.n_chunks

    def result(self, id_col: str, time_col: str, seconds: float = 0.0) -> SufficientStatistics:
        S, A = self.S, self.A
        if self.dense:
            keys = np.flatnonzero(self.trans).astype(np.int64)
            n = self.trans[keys]
        else:
            keep = self.trans > 0
            keys, n = self.keys[keep], self.trans[keep]
        s, rest = np.divmod(keys, A * S)
        a, sn = np.divmod(rest, S)
        tc = TransitionCounts(_frozen(s), _frozen(a), _frozen(sn), _frozen(n.astype(np.int64)),
                              S, A)
        return SufficientStatistics(
            model=self.model, counts=_frozen(self.counts.reshape(S, A).copy()),
            first_counts=_frozen(self.first.reshape(S, A).copy()), transition_counts=tc,
            increment_counts=None if self.inc is None else _frozen(self.inc.copy()),
            nobs=int(self.nobs), n_units=int(self.n_units), id_col=id_col, time_col=time_col,
            n_chunks=int(self.n_chunks), seconds=float(seconds))


def _frozen(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    x.flags.writeable = False
    return x


def _inc_column(model: Model, columns: Iterable) -> str | None:
    """The column of the model's transition family, when it estimates from its own data (e.g.
    :class:`ddc.transition_families.IncrementTransitions`) and the source has it."""
    fam = model.hooks.transition_family
    if fam is None or not fam.has_statistics or len(model.transition_params) == 0 \
            or len(fam.columns) != 1:
        return None
    col = fam.columns[0]
    return col if col in set(columns) else None
