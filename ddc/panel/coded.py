"""The coded panel: :class:`Panel` (validated, coded, reduced to sufficient statistics) and
:func:`prepare`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel.coding import _factorize
from ddc.panel.columns import ACTION_COLUMN, Columns
from ddc.panel.counts import TransitionCounts, _frozen
from ddc.panel.errors import (
    ImpossibleTransitionError,
    PanelError,
    _fmt,
    _n_rows,
    _rows_message,
    _state_text,
)
from ddc.panel.impossible import _factor_rows, _triple_probabilities
from ddc.panel.validation import _code_frame, _infeasible_message
from ddc.transitions import FactoredTransitions


class Panel:
    """A long panel validated against a model, coded, and reduced to sufficient statistics.

    Parameters
    ----------
    model : Model
        The model whose states and actions the panel is checked against.
    data : pandas.DataFrame
        One row per unit and period, with columns: the id (``id_col``), the period
        (``time_col``, integers, consecutive within a unit), one per state variable
        (``model.space.names``) and ``action``. Other columns are ignored. State columns hold
        the variable's values (e.g. plan ``"annual_3"``, mileage ``17``); a variable whose
        values are strings also accepts integer codes ``0..n-1``. The action column holds
        action names (``model.actions``) or integer codes ``0..A-1``, decided by the column's
        dtype (strings or categorical with string categories: names; integers: codes; a column
        mixing both is an error). Categorical columns work.
    id_col : str, optional
        The unit id column; by default the model's (``model.hooks.layout.id_col``) or the first
        of :data:`ID_COLUMNS` present.
    time_col : str, optional
        The period column; by default the model's or the first of :data:`TIME_COLUMNS`
        present. It holds integers (consecutive within a unit), dates, pandas periods or ISO
        strings such as ``"2022-01"``; dates are counted in the model's period (months by
        default; see :class:`Columns`).
    action_col : str, optional
        The action column; by default the model's (``"action"``).
    columns : Columns or mapping, optional
        The whole mapping (:class:`Columns`), or ``{state variable: column}`` where the data's
        names differ from the model's. Keywords given beside it must agree with it.

    Raises
    ------
    PanelError
        Listing every problem found: missing columns, missing values, non-integer periods,
        state values or actions not in the model, duplicate (id, period) pairs, gaps in a
        unit's periods, actions infeasible in their state. Each names the first offending rows
        by the frame's index labels (``row 17 (customer_id=3, month=5): ...``).

    Attributes
    ----------
    model : Model
    state, action, next_state, unit, time : numpy.ndarray of int64
        Per row, sorted by unit then period: the flat state index, the action code, the flat
        index of the unit's state in the next row (``-1`` for a unit's last row), the unit code
        (position in :attr:`ids`) and the period.
    row : numpy.ndarray
        The original frame's index label of each row (in the sorted order).
    position : numpy.ndarray of int64
        The original frame's integer position of each row (``data.iloc[panel.position]`` is the
        sorted frame).
    ids : pandas.Index
        The distinct unit ids, sorted; ``ids[unit]`` is each row's id.
    id_col, time_col : str
        The names used in messages.

    See Also
    --------
    prepare : the same, returning an already prepared panel unchanged.
    Panel.from_codes : a panel from precomputed codes (simulation, out-of-core data).
    """

    def __init__(self, model: Model, data: pd.DataFrame, id_col: str | None = None,
                 time_col: str | None = None, *, action_col: str | None = None,
                 columns: Columns | Mapping[str, str] | None = None):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a ddc.Model, got {type(model).__name__}")
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame (a long panel, one row per unit "
                            f"and period), got {type(data).__name__}")
        cols = Columns.of(columns, id_col=id_col, time_col=time_col, action_col=action_col)
        coded = _code_frame(model, data, cols.resolve(model, list(data.columns)))
        self._set(model, **coded)

    # ------------------------------------------------------------------ construction
    def _set(self, model: Model, *, state, action, next_state, unit, time, row, position, ids,
             id_col, time_col, next_is_following) -> None:
        self.model = model
        self.state = _frozen(state)
        self.action = _frozen(action)
        self.next_state = _frozen(next_state)
        self.unit = _frozen(unit)
        self.time = _frozen(time)
        self.row = _frozen(row)
        self.position = _frozen(position)
        self.ids = ids
        self.id_col = id_col
        self.time_col = time_col
        # whether a row's next state is the following row (panels built from a frame)
        self._next_is_following = next_is_following

    @classmethod
    def from_codes(cls, model: Model, state: np.ndarray, action: np.ndarray,
                   next_state: np.ndarray, unit: np.ndarray, time: np.ndarray | None = None
                   ) -> Panel:
        """A panel from precomputed codes (simulation output, out-of-core chunks).

        Parameters
        ----------
        model : Model
        state : array_like of int
            Flat state index of each row, in ``0..S-1``.
        action : array_like of int
            Action code of each row, in ``0..A-1``.
        next_state : array_like of int
            Flat index of the unit's next state, or ``-1`` where there is none (taken as given:
            rows need not be in order, and a chunk may hold the next state of a row whose next
            row is elsewhere).
        unit : array_like
            Unit id of each row (any integers or labels; coded in sorted order).
        time : array_like of int, optional
            Period of each row; by default the position of the row among its unit's rows.

        Raises
        ------
        PanelError
            For arrays of different lengths or non-integer dtype, codes out of range, or actions
            infeasible in their state (naming the first rows).
        """
        if not isinstance(model, Model):
            raise TypeError(f"model must be a ddc.Model, got {type(model).__name__}")
        arrays = {"state": state, "action": action, "next_state": next_state, "unit": unit}
        if time is not None:
            arrays["time"] = time
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        problems = []
        for k, v in arrays.items():
            if v.ndim != 1:
                problems.append(f"{k} must be a 1-d array, got shape {v.shape}")
            elif k != "unit" and v.size and not np.issubdtype(v.dtype, np.integer):
                problems.append(f"{k} must hold integer codes, got dtype {v.dtype}")
        lengths = {k: len(v) for k, v in arrays.items() if v.ndim == 1}
        if len(set(lengths.values())) > 1:
            problems.append(f"the arrays must have one entry per row; lengths {lengths}")
        if problems:
            raise PanelError(problems)
        S, A = model.n_states, model.n_actions
        n = len(arrays["state"])
        s, a, sn = (arrays[k].astype(np.int64) for k in ("state", "action", "next_state"))
        units, ids = _factorize(pd.Series(arrays["unit"]))

        def where(pos: int) -> str:
            return f"row {pos} (unit={_fmt(ids[units[pos]])})"

        checks = [("state", s, 0, S, f"flat state indices 0..{S - 1}"),
                  ("action", a, 0, A, f"action codes 0..{A - 1}"),
                  ("next_state", sn, -1, S, f"-1 (no next state) or 0..{S - 1}")]
        for name, v, lo, hi, accepted in checks:
            bad = np.flatnonzero((v < lo) | (v >= hi))
            if bad.size:
                problems.append(_rows_message(
                    f"{name}: {_n_rows(bad.size)} outside the model's range", bad,
                    lambda p, v=v: f"{where(p)}: {int(v[p])}", f"accepted: {accepted}"))
        if not problems:
            bad = np.flatnonzero(~model.feasible[s, a])
            if bad.size:
                problems.append(_infeasible_message(model, bad, s, a, where))
        if units.size and (units < 0).any():
            bad = np.flatnonzero(units < 0)
            problems.append(_rows_message(f"unit: {_n_rows(bad.size)} with a missing id", bad,
                                          lambda p: f"row {p}", "give every row a unit id"))
        if problems:
            raise PanelError(problems)
        if time is None:
            order = np.argsort(units, kind="stable")
            sorted_units = units[order]
            start = np.r_[0, np.flatnonzero(np.diff(sorted_units)) + 1] if n else np.zeros(0, int)
            group_len = np.diff(np.r_[start, n])
            rank = np.arange(n) - np.repeat(start, group_len)
            t = np.empty(n, dtype=np.int64)
            t[order] = rank
        else:
            t = arrays["time"].astype(np.int64)
        panel = cls.__new__(cls)
        panel._set(model, state=s, action=a, next_state=sn, unit=units.astype(np.int64), time=t,
                   row=np.arange(n), position=np.arange(n, dtype=np.int64), ids=ids,
                   id_col="unit", time_col="period", next_is_following=False)
        return panel

    def with_model(self, model: Model) -> Panel:
        """The same panel bound to another model with the same states, actions and feasibility
        (e.g. ``model.replace(beta=...)``)."""
        if model is self.model:
            return self
        if not _same_structure(self.model, model):
            raise PanelError(
                f"this panel was coded for model {self.model.name!r} ({self.model.space!r}, "
                f"actions {list(self.model.actions)}); model {model.name!r} ({model.space!r}, "
                f"actions {list(model.actions)}) has other states, actions or feasibility. "
                "Prepare the panel's DataFrame for the new model instead")
        panel = Panel.__new__(Panel)
        cached = ("counts", "multi_choice", "_triples")
        panel.__dict__.update({k: v for k, v in self.__dict__.items() if k not in cached})
        panel.model = model
        return panel

    # ------------------------------------------------------------------ sizes
    @property
    def nobs(self) -> int:
        """Number of rows (unit-periods)."""
        return len(self.state)

    @property
    def n_units(self) -> int:
        """Number of distinct units."""
        return len(self.ids)

    @property
    def n_periods(self) -> int:
        """Number of distinct periods."""
        return len(np.unique(self.time))

    @property
    def n_transitions(self) -> int:
        """Number of rows with a next state (all but each unit's last row)."""
        return int(np.count_nonzero(self.next_state >= 0))

    @cached_property
    def next_row(self) -> np.ndarray:
        """``(nobs,)`` index of the row holding the same unit's next period, ``-1`` where the
        panel has none (a unit's last row, or a next state whose row is not in this panel)."""
        order = np.lexsort((self.time, self.unit))
        follows = ((self.unit[order][1:] == self.unit[order][:-1])
                   & (np.diff(self.time[order]) == 1) & (self.next_state[order][:-1] >= 0))
        out = np.full(self.nobs, -1, dtype=np.int64)
        out[order[:-1][follows]] = order[1:][follows]
        return _frozen(out)

    def __len__(self) -> int:
        return self.nobs

    def __repr__(self) -> str:
        span = (f", {self.time_col}s {int(self.time.min())}-{int(self.time.max())}"
                if self.nobs else "")
        return (f"Panel({self.model.name!r}: {self.nobs} rows, {self.n_units} units "
                f"({self.id_col}){span}, {self.n_transitions} transitions; "
                f"{self.model.n_states} states, {self.model.n_actions} actions)")

    # ------------------------------------------------------------------ sufficient statistics
    @cached_property
    def counts(self) -> np.ndarray:
        """``(S, A)`` counts :math:`N(s, a)` of rows by state and action (all rows, including
        states with a single feasible action)."""
        S, A = self.model.n_states, self.model.n_actions
        c = np.bincount(self.state * A + self.action, minlength=S * A).astype(np.int64)
        return _frozen(c.reshape(S, A))

    @cached_property
    def multi_choice(self) -> np.ndarray:
        """``(S,)`` bool: states with more than one feasible action (those that carry choice
        information)."""
        return _frozen(self.model.feasible.sum(axis=1) > 1)

    @property
    def n_choice_obs(self) -> int:
        """Number of rows whose state has more than one feasible action."""
        return int(self.counts[self.multi_choice].sum())

    def loglik_choice(self, log_pi: np.ndarray) -> float:
        """Choice part of the log-likelihood from the counts.

        .. math::

            \\ell = \\sum_{s: |A(s)| > 1} \\sum_a N(s, a) \\log \\pi(a \\mid s).

        Parameters
        ----------
        log_pi : array_like, shape (S, A)
            Log choice probabilities (e.g. ``Solution.log_pi``); entries of pairs never observed
            are not read, so ``-inf`` at infeasible actions is fine.

        Returns
        -------
        float
            ``-inf`` if an observed action has probability zero.
        """
        lp = np.asarray(log_pi, dtype=np.float64)
        S, A = self.model.n_states, self.model.n_actions
        if lp.shape != (S, A):
            raise ValueError(f"log_pi must have shape (states, actions) = ({S}, {A}), got "
                             f"{lp.shape}")
        used = (self.counts > 0) & self.multi_choice[:, None]
        return float(np.sum(self.counts[used] * lp[used]))

    @cached_property
    def _triples(self) -> tuple[TransitionCounts, np.ndarray, np.ndarray]:
        """Distinct observed triples, the rows having a next state, and each such row's triple."""
        S, A = self.model.n_states, self.model.n_actions
        rows = np.flatnonzero(self.next_state >= 0)
        s, a, sn = self.state[rows], self.action[rows], self.next_state[rows]
        if S * A * S <= max(4 * rows.size, 2**20):
            # few possible triples: count them directly (np.unique's output, without a sort)
            key = (s * A + a) * S + sn
            n_all = np.bincount(key, minlength=S * A * S)
            uniq = np.flatnonzero(n_all)
            rank = np.zeros(n_all.size, dtype=np.int64)
            rank[uniq] = np.arange(uniq.size)
            inverse, n = rank[key], n_all[uniq]
            us, rest = np.divmod(uniq, A * S)
            ua, usn = np.divmod(rest, S)
        elif S * A * S < 2**62:
            key = (s * A + a) * S + sn
            uniq, inverse, n = np.unique(key, return_inverse=True, return_counts=True)
            us, rest = np.divmod(uniq, A * S)
            ua, usn = np.divmod(rest, S)
        else:  # keys would overflow int64: unique rows of a (k, 3) array
            stacked = np.column_stack([s, a, sn])
            uniq, inverse, n = np.unique(stacked, axis=0, return_inverse=True,
                                         return_counts=True)
            us, ua, usn = uniq.T
        tc = TransitionCounts(_frozen(us.astype(np.int64)), _frozen(ua.astype(np.int64)),
                              _frozen(usn.astype(np.int64)), _frozen(n.astype(np.int64)), S, A)
        return tc, rows, inverse.ravel()

    @property
    def transition_counts(self) -> TransitionCounts:
        """Distinct observed :math:`(s, a, s')` with their counts :math:`N(s, a, s')` (rows with
        a next state); ``.to_csr()`` gives the ``(S * A, S)`` sparse count matrix."""
        return self._triples[0]

    @property
    def triple_of_row(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows having a next state (ascending) and, for each, the index of its
        :math:`(s, a, s')` in :attr:`transition_counts`: a per-row quantity that depends on the
        triple only is computed once per distinct triple and gathered with it."""
        _, rows, inverse = self._triples
        return rows, inverse

    def factor_counts(self, params=None) -> dict[str, np.ndarray]:
        """Counts per transition factor, in the shape of each factor's table.

        For factor *j* of variable :math:`x_j`, conditioned on ``given`` (``"action"`` and/or
        state variables), entry ``[g_1, ..., g_k, x']`` counts the observed transitions whose
        current values of ``given`` are ``(g_1, ..., g_k)`` and whose next value of :math:`x_j`
        is :math:`x'`:

        .. math::

            C_j[g, x'] = \\sum_{s, a, s'} N(s, a, s') \\, 1[G_j(s, a) = g] \\, 1[x_j(s') = x'].

        Normalizing over the last axis gives the frequency (maximum likelihood) estimate of the
        factor, where its row was observed.

        Parameters
        ----------
        params : optional
            Parameters at which the model's transitions are taken (only their structure is
            used); the defaults when ``None``.

        Returns
        -------
        dict
            Variable name -> int64 array of the factor table's shape, in the factors' order.
            Variables without a factor (they never change) have no entry.
        """
        trans = self.model.transitions(params)
        if not isinstance(trans, FactoredTransitions):
            raise TypeError(
                f"factor_counts needs factored transitions; model {self.model.name!r} has "
                f"{type(trans).__name__}. Use Panel.transition_counts (or .to_csr()) instead")
        ct = self.model.compiled_transitions(params)
        tc = self.transition_counts
        by_stride = {int(st): f for f, st in enumerate(ct.f_stride)}
        weights = tc.n.astype(np.float64)  # exact below 2**53 rows
        out = {}
        for factor in trans.factors:
            f = by_stride[int(self.model.space.strides[self.model.space.axis(factor.variable)])]
            size = int(ct.f_size[f])
            local = _factor_rows(ct, f, tc.s, tc.a)
            nxt = (tc.s_next // ct.f_stride[f]) % size
            n_cells = int(np.prod(factor.table.shape))
            c = np.bincount(local * size + nxt, weights=weights, minlength=n_cells)
            out[factor.variable] = np.rint(c).astype(np.int64).reshape(factor.table.shape)
        return out

    def impossible_transitions(self, params=None) -> pd.DataFrame:
        """Observed transitions that have probability zero under the model's transitions.

        The probability of each distinct observed triple is computed directly as the product of
        its factors' entries, :math:`\\prod_j F_j(x_j(s') \\mid G_j(s, a))`, times the indicator
        that variables without a factor did not change.

        Parameters
        ----------
        params : optional
            Parameters at which the transitions are taken (defaults when ``None``).

        Returns
        -------
        pandas.DataFrame
            One row per distinct impossible ``(s, a, s')``, in the order of first occurrence:
            the state's labels (one column per state variable), ``action``, the next state's
            labels (``next_<variable>``), ``count`` (rows showing it), ``first_row`` (the frame's
            index label of the first such row) and ``zero_in`` (the variables whose transition
            gives probability zero). Empty if every observed transition is possible.
        """
        bad_rows, zero_in = self._impossible(params)
        tc, rows, inverse = self._triples
        space = self.model.space
        cols = [*space.names, "action", *(f"next_{v}" for v in space.names), "count",
                "first_row", "zero_in"]
        if bad_rows.size == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        triple_of_row = inverse[np.searchsorted(rows, bad_rows)]
        triples, first = np.unique(triple_of_row, return_index=True)
        order = np.argsort(first, kind="stable")
        triples, first = triples[order], first[order]
        out = {}
        for name in space.names:
            out[name] = space.values_of(name)[tc.s[triples]]
        out["action"] = np.asarray(self.model.actions, dtype=object)[tc.a[triples]]
        for name in space.names:
            out[f"next_{name}"] = space.values_of(name)[tc.s_next[triples]]
        out["count"] = tc.n[triples]
        out["first_row"] = self.row[bad_rows[first]]
        out["zero_in"] = [zero_in(int(r)) for r in bad_rows[first]]
        return pd.DataFrame(out, columns=cols)

    def check_transitions(self, params=None) -> None:
        """Raise :class:`PanelError` if some observed transition has probability zero under the
        model's transitions at ``params``, naming the first such rows."""
        bad_rows, zero_in = self._impossible(params)
        if bad_rows.size == 0:
            return
        space = self.model.space

        def describe(i: int) -> str:
            nxt = f" -> row {_fmt(self.row[i + 1])}" if self._next_is_following else ""
            return (f"{self._where(i)}{nxt}: state {_state_text(space, self.state[i])}, action "
                    f"{self.model.actions[self.action[i]]!r}, next state "
                    f"{_state_text(space, self.next_state[i])} (zero in: {zero_in(i)})")

        raise ImpossibleTransitionError(_rows_message(
            f"{_n_rows(bad_rows.size)} move to a next state that has probability 0 under the "
            f"transitions of model {self.model.name!r}", bad_rows, describe,
            "check the state columns (and the periods' order), or the model's transitions; "
            "Panel.impossible_transitions() lists them all (estimators: "
            "impossible='drop' leaves such units out, counted in the results)"), bad_rows)

    def impossible_rows(self, params=None) -> np.ndarray:
        """Positions (in the panel's sorted order) of the rows whose transition to the unit's
        next row has probability zero under the model's transitions at ``params``."""
        return self._impossible(params)[0]

    def without_units(self, units: np.ndarray) -> Panel:
        """The panel without the units whose codes (positions in :attr:`ids`) are ``units``.

        Whole units are removed, so every kept row keeps its next state.
        """
        units = np.unique(np.asarray(units, dtype=np.int64))
        keep_ids = np.setdiff1d(np.arange(len(self.ids)), units)
        recode = np.full(len(self.ids), -1, dtype=np.int64)
        recode[keep_ids] = np.arange(len(keep_ids))
        keep = recode[self.unit] >= 0
        panel = Panel.__new__(Panel)
        panel._set(self.model, state=self.state[keep], action=self.action[keep],
                   next_state=self.next_state[keep], unit=recode[self.unit[keep]],
                   time=self.time[keep], row=self.row[keep], position=self.position[keep],
                   ids=self.ids[keep_ids], id_col=self.id_col, time_col=self.time_col,
                   next_is_following=self._next_is_following)
        return panel

    def _impossible(self, params) -> tuple[np.ndarray, Callable[[int], str]]:
        """Panel rows (ascending) of impossible transitions, and a function naming the factors
        at fault for such a row."""
        tc, rows, inverse = self._triples
        ct = self.model.compiled_transitions(params)
        prob, zero = _triple_probabilities(self.model, ct, tc)
        impossible = prob <= 0.0
        # per distinct triple first: the rows are looked at only when some triple is impossible
        bad_rows = rows[impossible[inverse]] if impossible.any() else rows[:0]

        def zero_in(i: int) -> str:
            t = inverse[np.searchsorted(rows, i)]
            return ", ".join(name for name, mask in zero.items() if mask[t])

        return bad_rows, zero_in

    # ------------------------------------------------------------------ views
    def to_frame(self) -> pd.DataFrame:
        """The coded panel as a labelled DataFrame (sorted by unit and period, indexed by the
        original row labels): id, period, the state variables' labels and the action name."""
        space = self.model.space
        out = {self.id_col: self.ids[self.unit], self.time_col: self.time}
        for name in space.names:
            out[name] = space.values_of(name)[self.state]
        out[ACTION_COLUMN] = np.asarray(self.model.actions, dtype=object)[self.action]
        return pd.DataFrame(out, index=pd.Index(self.row, name=None))

    def _where(self, i: int) -> str:
        return (f"row {_fmt(self.row[i])} ({self.id_col}={_fmt(self.ids[self.unit[i]])}, "
                f"{self.time_col}={int(self.time[i])})")


def prepare(model: Model, data: pd.DataFrame | Panel, id_col: str | None = None,
            time_col: str | None = None, *, action_col: str | None = None,
            columns: Columns | Mapping[str, str] | None = None) -> Panel:
    """Validate and code a long panel for ``model``; see :class:`Panel`.

    A :class:`Panel` already prepared for ``model`` (or for a model with the same states,
    actions and feasibility) is returned as is, so estimators can accept either.

    Parameters
    ----------
    model : Model
    data : pandas.DataFrame or Panel
    id_col, time_col, action_col : str, optional
        Column names (defaults: the model's data layout, see :class:`Columns`).
    columns : Columns or mapping, optional
        The column mapping, or ``{state variable: column}``.

    Examples
    --------
    >>> import pandas as pd, ddc
    >>> bus = ddc.models.rust_bus(n_states=10)
    >>> df = pd.DataFrame({"bus_id": [7, 7], "month": [3, 4], "mileage": [2, 3],
    ...                    "action": ["keep", "kept"]})
    >>> prepare(bus, df)
    Traceback (most recent call last):
    ...
    ddc.panel.PanelError: column 'action': 1 row holds an action that is not one of the model's ...
    """
    if isinstance(data, Panel):
        return data.with_model(model)
    return Panel(model, data, id_col=id_col, time_col=time_col, action_col=action_col,
                 columns=columns)


def _same_structure(m1: Model, m2: Model) -> bool:
    return (m1.space.names == m2.space.names
            and [v.values for v in m1.space.variables] == [v.values for v in m2.space.variables]
            and m1.actions == m2.actions
            and np.array_equal(m1.feasible, m2.feasible))
