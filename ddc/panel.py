"""Panel data: validate a long panel against a model, code it, reduce it to sufficient statistics.

A long panel has one row per unit and period: an id column, an integer time column, one column
per state variable and the column ``action``. :class:`Panel` checks it against a
:class:`~ddc.model.Model` (every fault is reported with the rows, values and what is accepted;
nothing is dropped or clipped), codes it into flat arrays, and reduces it to the counts that the
likelihood needs. With :math:`N(s, a)` the number of rows in state *s* choosing *a*, and
:math:`N(s, a, s')` the number of those followed by the same unit in state :math:`s'` the next
period,

.. math::

    \\ell_{choice}(\\theta) = \\sum_{s: |A(s)| > 1} \\sum_a N(s, a) \\log \\pi_\\theta(a \\mid s),
    \\qquad
    \\ell_{trans}(\\theta) = \\sum_{s, a, s'} N(s, a, s') \\log P_\\theta(s' \\mid s, a),

so that evaluating the likelihood costs :math:`O(S \\cdot A)` (plus the number of distinct
observed transitions), not :math:`O(\\text{rows})`. For factored transitions
:math:`P(s' \\mid s, a) = \\prod_j F_j(x_j' \\mid x_{G_j}, a)`, the transition part separates by
factor, and :meth:`Panel.factor_counts` gives each factor's counts in the shape of its table, so
that a frequency estimate of the factor is its counts normalized over the last axis.

Examples
--------
>>> import pandas as pd
>>> import ddc
>>> bus = ddc.models.rust_bus(n_states=10)
>>> data = pd.DataFrame({"bus_id": [1, 1, 1, 2, 2], "month": [0, 1, 2, 0, 1],
...                      "mileage": [0, 1, 2, 5, 0], "action": ["keep", "keep", "replace",
...                                                               "replace", "keep"]})
>>> panel = prepare(bus, data)
>>> panel.nobs, panel.n_units, panel.n_transitions
(5, 2, 3)
>>> panel.counts[:3]
array([[2, 0],
       [1, 0],
       [0, 1]])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ddc.model import Model
from ddc.transitions import CompiledTransitions, FactoredTransitions

__all__ = [
    "ACTION_COLUMN",
    "ID_COLUMNS",
    "TIME_COLUMNS",
    "Columns",
    "Panel",
    "ImpossibleTransitionError",
    "PanelError",
    "STATE_SIZES_ATTR",
    "TransitionCounts",
    "prepare",
    "standardize",
]

#: Id columns looked for, in order, after the model's declared ``hooks.layout.id_col``, when
#: ``id_col`` is not given.
ID_COLUMNS = ("customer_id", "unit_id", "id")
#: Time columns looked for, in order, when ``time_col`` is not given.
TIME_COLUMNS = ("month", "period")
#: The column of the chosen action.
ACTION_COLUMN = "action"
#: How many offending rows an error message shows.
MAX_SHOWN = 5
#: The model's period when neither the call nor the model's data layout declares one (pandas
#: frequency: calendar months).
DEFAULT_PERIOD = "M"
#: Key of ``DataFrame.attrs`` where a data source records, per state column, how many values it
#: was coded for (``{"mileage": 90}``); a model whose state variable has another number of values
#: is refused, since the codes would mean other states (e.g. bins of another width).
STATE_SIZES_ATTR = "ddc_state_sizes"


class PanelError(ValueError):
    """A panel does not fit the model; the message lists every problem found.

    Attributes
    ----------
    problems : list of str
        One entry per kind of fault (missing values, unknown labels, gaps, ...), each naming the
        column, the first offending rows and what would be accepted.
    """

    def __init__(self, problems: str | Sequence[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems with the panel:\n" + "\n".join(
                f"- {p}" for p in self.problems)
        super().__init__(message)


class ImpossibleTransitionError(PanelError):
    """Observed transitions that have probability zero under the model: data the model cannot
    have generated (a plan jump, a market switch, a bin the state cannot reach). The message
    names the first rows, their units and periods, and the two states.

    Attributes
    ----------
    rows : numpy.ndarray
        Panel positions (sorted order) of every offending row (empty for sufficient
        statistics, which have no rows).
    """

    def __init__(self, problems: str | Sequence[str], rows: np.ndarray | None = None):
        super().__init__(problems)
        self.rows = np.zeros(0, dtype=np.int64) if rows is None else np.asarray(rows)


@dataclass(frozen=True)
class Columns:
    """Where a model's data are in a table, and how its periods are written.

    Every way data enter the package takes it: :func:`prepare` (and the estimators' ``fit``),
    :func:`simulations.simulate` (the names of the columns it writes),
    :func:`ddc.outofcore.sufficient_statistics` and the command line (``--id-col``,
    ``--time-col``, ``--action-col``, ``--column VAR=COL``, ``--time-format``). A field left
    ``None`` takes the model's own declaration (``model.hooks.layout``: its id, period and action
    columns and the columns of its state variables) and, failing that, the first of
    :data:`ID_COLUMNS` / :data:`TIME_COLUMNS` present.

    Parameters
    ----------
    id_col, time_col, action_col : str, optional
        The unit id, period and action columns.
    states : mapping of str to str
        State variable -> column, where they differ from the model's names.
    period : str, optional
        The model's period as a pandas frequency (``"M"`` months, ``"Q"``, ``"Y"``, ``"W"``,
        ``"D"``; by default the layout's ``period`` if it declares one, else months). Dates and
        pandas periods in the time column are converted to it, and gaps and duplicates are
        counted in it: two rows of a unit in the same month are a duplicate, a missing month is
        a gap. Integer periods are taken as they are (consecutive integers).
    time_format : str, optional
        A :func:`~datetime.datetime.strptime` format for a time column written as text or as
        integers, e.g. ``"%Y%m"`` for YYYYMM integers such as ``202201``. Without it, integers
        are periods as they are and strings are read as ISO dates (``"2022-01"``,
        ``"2022-01-31"``).

    Examples
    --------
    >>> import pandas as pd, ddc
    >>> bus = ddc.models.rust_bus(n_states=10)
    >>> df = pd.DataFrame({"bus": [7, 7, 7], "yyyymm": [202211, 202212, 202301],
    ...                    "odometer": [2, 3, 3], "choice": ["keep", "keep", "keep"]})
    >>> cols = Columns(id_col="bus", time_col="yyyymm", action_col="choice",
    ...                states={"mileage": "odometer"}, time_format="%Y%m")
    >>> prepare(bus, df, columns=cols).n_transitions
    2
    """

    id_col: str | None = None
    time_col: str | None = None
    action_col: str | None = None
    states: Mapping[str, str] = field(default_factory=dict)
    period: str | None = None
    time_format: str | None = None

    def __post_init__(self) -> None:
        for attr in ("id_col", "time_col", "action_col", "period", "time_format"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"Columns.{attr} must be a non-empty string or None; got "
                                f"{value!r}")
        if not isinstance(self.states, Mapping):
            raise TypeError(f"Columns.states must map state variables to column names; got "
                            f"{type(self.states).__name__}")
        bad = {k: v for k, v in self.states.items()
               if not isinstance(k, str) or not isinstance(v, str) or not v}
        if bad:
            raise TypeError(f"Columns.states must map variable names to column names "
                            f"(strings); got {bad}")
        object.__setattr__(self, "states", dict(self.states))
        if self.period is not None:
            try:
                pd.Period("2000-01-01", freq=self.period)
            except (ValueError, TypeError):
                raise ValueError(f"Columns.period {self.period!r} is not a pandas frequency; "
                                 "accepted e.g. 'M' (months), 'Q', 'Y', 'W', 'D'") from None

    @classmethod
    def of(cls, columns: Columns | Mapping[str, str] | None = None, **fields) -> Columns:
        """A :class:`Columns` from a Columns, a mapping ``{state variable: column}`` or None,
        with ``fields`` (``id_col=...``) that are not None set on it."""
        if columns is None:
            base = cls()
        elif isinstance(columns, Columns):
            base = columns
        elif isinstance(columns, Mapping):
            base = cls(states=columns)
        else:
            raise TypeError(f"columns must be a ddc.panel.Columns or a mapping {{state variable: "
                            f"column}}; got {type(columns).__name__}")
        given = {k: v for k, v in fields.items() if v is not None}
        if not given:
            return base
        clash = {k: (getattr(base, k), v) for k, v in given.items()
                 if getattr(base, k) is not None and getattr(base, k) != v}
        if clash:
            raise ValueError(f"the column mapping is given twice, differently: {clash}")
        import dataclasses

        return dataclasses.replace(base, **given)

    def resolve(self, model: Model, available: Sequence[str]) -> _Resolved:
        """The columns to read from a table with the columns ``available``."""
        layout = getattr(getattr(model, "hooks", None), "layout", None)
        unknown = sorted(set(self.states) - set(model.space.names))
        if unknown:
            raise PanelError(f"the column mapping names {unknown}, which are not state "
                             f"variables of model {model.name!r}; its state variables are "
                             f"{list(model.space.names)}")
        available = list(available)
        id_col = self.id_col or _pick_column(
            available, _defaults(getattr(layout, "id_col", None), ID_COLUMNS), "id", "id_col")
        time_col = self.time_col or _pick_column(
            available, _defaults(getattr(layout, "time_col", None), TIME_COLUMNS), "time",
            "time_col")
        action_col = self.action_col or getattr(layout, "action_col", None) or ACTION_COLUMN
        states = {}
        for var in model.space.names:
            col = self.states.get(var)
            if col is None and layout is not None:
                col = layout.column(var)
            states[var] = col or var
        period = self.period or getattr(layout, "period", None) or DEFAULT_PERIOD
        time_format = self.time_format or getattr(layout, "time_format", None)
        return _Resolved(id_col, time_col, action_col, states, period, time_format)


@dataclass(frozen=True)
class _Resolved:
    """A :class:`Columns` with every name decided for one table."""

    id_col: str
    time_col: str
    action_col: str
    states: dict[str, str]
    period: str
    time_format: str | None

    @property
    def required(self) -> list[str]:
        return [self.id_col, self.time_col, *self.states.values(), self.action_col]

    def model_columns(self) -> list[str]:
        return [*self.states.values(), self.action_col]


def _defaults(first: str | None, rest: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(([first] if first else []) + list(rest)))


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


def standardize(model: Model, data: pd.DataFrame, columns: Columns | Mapping[str, str] | None
                = None, **names: str | None) -> pd.DataFrame:
    """The table renamed to the model's own column names, periods parsed.

    For code that reads the model's default names (an estimator's ``fit(frame)``, the command
    line): the id, period, action and state columns of ``columns`` are renamed to the model's
    layout (``model.hooks.layout``); a time column read with ``time_format`` is replaced by
    pandas periods of the model's period. Other columns are kept as they are. Values are not
    checked here (:func:`prepare` does that).

    Parameters
    ----------
    model : Model
    data : pandas.DataFrame
    columns : Columns or mapping, optional
        As in :func:`prepare`.
    **names : str, optional
        ``id_col=``, ``time_col=``, ``action_col=``, as in :func:`prepare`.

    Returns
    -------
    pandas.DataFrame
        A new frame (the input is not modified).

    Raises
    ------
    PanelError
        For a missing column, a column that the renaming would duplicate, or a period that
        cannot be read.
    """
    cols = Columns.of(columns, **names)
    r = cols.resolve(model, list(data.columns))
    missing = [c for c in r.required if c not in data.columns]
    if missing:
        raise PanelError(f"missing column(s) {missing}; the columns are {list(data.columns)}")
    layout = getattr(getattr(model, "hooks", None), "layout", None)
    to = {r.id_col: getattr(layout, "id_col", None) or ID_COLUMNS[0],
          r.time_col: getattr(layout, "time_col", None) or TIME_COLUMNS[0],
          r.action_col: getattr(layout, "action_col", None) or ACTION_COLUMN}
    for var, col in r.states.items():
        to[col] = layout.column(var) if layout is not None else var
    rename = {k: v for k, v in to.items() if k != v}
    kept = [c for c in data.columns if c not in to]
    clash = sorted(str(c) for c in kept if c in set(to.values()))
    if clash:
        raise PanelError(f"column(s) {clash} of the table would be shadowed by the renaming "
                         f"{rename}; rename or drop them first")
    out = data.rename(columns=rename)
    if r.time_format is not None:
        where = _RowDescriber(data, r.id_col, r.time_col)
        col = data[r.time_col]
        ordinal, bad, msg = _code_time(col, col.isna().to_numpy(), r.time_col, where, r.period,
                                       r.time_format)
        if msg:
            raise PanelError(msg)
        periods = pd.PeriodIndex.from_ordinals(ordinal, freq=r.period)
        out[to[r.time_col]] = pd.Series(periods, index=out.index).where(~col.isna().to_numpy())
    return out


# ---------------------------------------------------------------------- coding a frame
def _code_frame(model: Model, data: pd.DataFrame, cols: _Resolved) -> dict:
    space = model.space
    columns = list(data.columns)
    id_col, time_col, action_col = cols.id_col, cols.time_col, cols.action_col
    state_cols = cols.states
    required = cols.required
    missing = [c for c in required if c not in data.columns]
    if missing:
        mapped = {v: c for v, c in state_cols.items() if c != v}
        how = f" (state variables mapped to columns {mapped})" if mapped else ""
        raise PanelError(
            f"missing column(s) {missing}; a panel for model {model.name!r} needs the columns "
            f"{required}{how} (the id and period, one per state variable, and the action; other "
            f"columns are ignored; map other names with id_col=, time_col=, action_col=, "
            f"columns={{variable: column}}). The frame has {columns}")
    dup = [] if data.columns.is_unique else \
        sorted({str(c) for c in required if np.count_nonzero(data.columns == c) > 1})
    if dup:
        raise PanelError(f"column(s) {dup} appear more than once in the frame; keep one of each")
    if len(set(required)) != len(required):
        raise PanelError(f"the id column {id_col!r}, the period column {time_col!r}, the action "
                         f"column {action_col!r} and the state columns "
                         f"{list(state_cols.values())} must all differ")
    _check_declared_sizes(model, data)
    n = len(data)
    if n == 0:
        raise PanelError(f"the panel has no rows (columns {columns})")

    where = _RowDescriber(data, id_col, time_col)
    problems: list[str] = []

    # missing values (none in a NumPy column of integers or booleans: no Series built)
    series = {c: data[c] for c in required}
    na = {c: np.zeros(n, dtype=bool) if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub"
          else s.isna().to_numpy() for c, s in series.items()}
    any_na = np.zeros(n, dtype=bool)
    for c in required:
        bad = np.flatnonzero(na[c])
        if bad.size:
            any_na |= na[c]
            problems.append(_rows_message(
                f"column {c!r}: {bad.size} missing value{'s' if bad.size > 1 else ''}", bad,
                where, "every row needs a value in each required column (drop or fill them "
                "explicitly before preparing the panel)"))

    # periods
    t, t_bad, msg = _code_time(series[time_col], na[time_col], time_col, where, cols.period,
                               cols.time_format)
    if msg:
        problems.append(msg)

    # ids
    unit, ids = _factorize(series[id_col])

    # state variables and action
    state = np.zeros(n, dtype=np.int64)  # sum_j code_j * stride_j, accumulated per variable
    label_bad = np.zeros(n, dtype=bool)
    for j, var in enumerate(space.variables):
        col = state_cols[var.name]
        c, bad, msg = _code_labels(series[col], na[col], var.values, col,
                                   f"a value that is not a value of state variable {var.name!r}",
                                   where)
        state += c * np.int64(space.strides[j])
        label_bad |= bad
        if msg:
            problems.append(msg)
    action, a_bad, msg = _code_labels(
        series[action_col], na[action_col], model.actions, action_col,
        "an action that is not one of the model's actions", where)
    if msg:
        problems.append(msg)

    # duplicates and gaps, among rows with a usable id and period
    # (units with an unusable period are left out: their gaps would be artefacts)
    key_ok = ~na[id_col] & ~na[time_col] & ~t_bad
    if not key_ok.all():
        key_ok &= ~np.isin(unit, unit[~key_ok])
    if key_ok.all():
        # already in order (the usual case): no permuted copies
        order, identity = _sort_order(unit, t)
    else:
        k_pos = np.flatnonzero(key_ok)
        order, identity = k_pos[_sort_order(unit[k_pos], t[k_pos])[0]], False
    u_o, t_o = (unit, t) if identity else (unit[order], t[order])
    same = u_o[1:] == u_o[:-1]
    dt = np.diff(t_o)
    dup = np.flatnonzero(same & (dt == 0))
    if dup.size:
        problems.append(_duplicates_message(dup, order, where, data, id_col, time_col))
    gap = np.flatnonzero(same & (dt > 1))
    if gap.size:
        problems.append(_gaps_message(gap, order, t_o, where, data, id_col, time_col,
                                      _period_label(data[time_col], cols)))

    # feasibility, among rows with a known state and action
    known = ~(any_na | label_bad | a_bad)
    infeasible = known & ~np.take(model.feasible.ravel(), state * model.n_actions + action)
    bad = np.flatnonzero(infeasible)
    if bad.size:
        problems.append(_infeasible_message(model, bad, state, action, where))

    if problems:
        raise PanelError(problems)

    # all rows are usable: sort by unit and period, link each row to the next
    if identity:  # the periods may be a view of the frame's column: the panel owns its copy
        t = np.array(t)
    else:
        state, action, unit, t = state[order], action[order], unit[order], t[order]
    next_state = np.full(n, -1, dtype=np.int64)
    follows = unit[1:] == unit[:-1]
    next_state[:-1] = np.where(follows, state[1:], -1)
    row = data.index.to_numpy(copy=True) if identity else data.index.to_numpy()[order]
    return dict(state=state, action=action.astype(np.int64, copy=False), next_state=next_state,
                unit=unit.astype(np.int64, copy=False), time=t, row=row,
                position=order.astype(np.int64, copy=False), ids=ids, id_col=id_col,
                time_col=time_col,
                next_is_following=True)


def _check_declared_sizes(model: Model, data: pd.DataFrame) -> None:
    """Refuse a frame whose source declares a state column coded for another state space."""
    declared = data.attrs.get(STATE_SIZES_ATTR)
    if not isinstance(declared, dict):
        return
    problems = [
        f"column {var.name!r} was coded for {declared[var.name]} values of the state variable "
        f"(the frame's attrs[{STATE_SIZES_ATTR!r}], recorded by the data source), but model "
        f"{model.name!r} has {var.size}: the same code would mean another state. Build the data "
        f"for {var.size} values, or use a model with {declared[var.name]}"
        for var in model.space.variables
        if var.name in declared and declared[var.name] != var.size
    ]
    if problems:
        raise PanelError(problems)


def _pick_column(columns: list, defaults: tuple[str, ...], what: str, arg: str) -> str:
    for c in defaults:
        if c in columns:
            return c
    raise PanelError(f"no {what} column: none of {list(defaults)} is among the frame's columns "
                     f"{columns}; name it with {arg}=...")


class _RowDescriber:
    """``row 17 (customer_id=3, month=5)`` for an integer position in the original frame."""

    def __init__(self, data: pd.DataFrame, id_col: str, time_col: str):
        self.index = data.index
        self._data = data
        self.id_col, self.time_col = id_col, time_col

    @cached_property
    def ids(self) -> pd.Series:
        return self._data[self.id_col]  # read when a row is described (rarely: errors)

    @cached_property
    def times(self) -> pd.Series:
        return self._data[self.time_col]

    def __call__(self, pos: int) -> str:
        return (f"row {_fmt(self.index[pos])} ({self.id_col}={_fmt(self.ids.iloc[pos])}, "
                f"{self.time_col}={_fmt(self.times.iloc[pos])})")

    def key(self, pos: int) -> str:
        return f"{self.id_col}={_fmt(self.ids.iloc[pos])}"


def _column_kind(col: pd.Series) -> str:
    """``integer``, ``floating``, ``string``, ``boolean``, ``mixed`` or ``other``; for a
    categorical column, the kind of its categories."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return _index_kind(col.dtype.categories)
    return _index_kind(col)


def _index_kind(x: pd.Series | pd.Index) -> str:
    dtype = x.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "floating"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        kind = pd.api.types.infer_dtype(x, skipna=True)
        if kind in ("integer", "floating", "string", "boolean", "empty"):
            return kind
        if kind == "mixed-integer-float":
            return "floating"
        if kind in ("mixed", "mixed-integer"):
            return "mixed"
        return "other"
    return "other"


def _code_labels(col: pd.Series, na: np.ndarray, values: tuple, name: str, what: str,
                 where: _RowDescriber) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Codes of a column of labels (or integer codes for string-valued variables).

    Returns the codes (0 where unknown or missing), the mask of rows with an unknown value, and
    a message (or None)."""
    n = len(col)
    kind = _column_kind(col)
    string_values = all(isinstance(v, str) for v in values)
    code_text = f"integer codes 0..{len(values) - 1}"
    accepted = f"accepted: {list(values)}" + (f" or {code_text}" if string_values else "")
    if kind == "mixed":
        sample = np.flatnonzero(~na)[:10_000]
        first: dict[str, int] = {}
        for pos, value in zip(sample.tolist(), col.iloc[sample].tolist(), strict=True):
            first.setdefault(type(value).__name__, pos)
        examples = "; ".join(f"{where(p)}: {_fmt(col.iloc[p])} ({tp})"
                             for tp, p in list(first.items())[:MAX_SHOWN])
        return (np.zeros(n, dtype=np.int64), ~na,
                f"column {name!r} mixes values of different types ({examples}); give values "
                f"of one type ({accepted})")
    as_codes = string_values and kind in ("integer", "floating")
    lookup = pd.RangeIndex(len(values)) if as_codes else pd.Index(list(values), dtype=object)
    codes = _integer_codes(col, lookup)
    if codes is None:
        # code the distinct values only: categories, or pandas' factorization of the column
        if isinstance(col.dtype, pd.CategoricalDtype):
            value_codes, distinct = col.array.codes, col.dtype.categories
        else:
            value_codes, distinct = pd.factorize(col)
        if kind == "string" and string_values and len(distinct) <= 64:
            # a few labels: looked up in a dict (as the object index would hash them)
            first: dict = {}
            for i, v in enumerate(values):
                first.setdefault(v, i)
            mapping = np.array([first.get(c, -1) for c in distinct] + [-1], dtype=np.int64)
        else:
            mapping = np.append(lookup.get_indexer(distinct), -1).astype(np.int64)
        codes = mapping[value_codes]  # value code -1 (missing) -> mapping[-1] = -1
    unknown = codes < 0
    if not unknown.any():
        return codes, unknown, None
    bad = unknown & ~na
    codes = np.where(unknown, 0, codes)
    if not bad.any():
        return codes, bad, None
    pos = np.flatnonzero(bad)
    unknown = pd.unique(col.iloc[pos[:10_000]].astype(object))
    shown = ", ".join(_fmt(v) for v in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
    if as_codes:
        head = (f"column {name!r} holds integer codes; {_n_rows(pos.size, 'holds', 'hold')} "
                f"a code outside 0..{len(values) - 1}"
                f"{' or not a whole number' if kind == 'floating' else ''} ({shown})")
    else:
        hint = ""
        if kind == "string" and not string_values:
            hint = " (the column holds strings; the model's values are numbers)"
        head = f"column {name!r}: {_n_rows(pos.size, 'holds', 'hold')} {what} ({shown}){hint}"
    return codes, bad, _rows_message(head, pos, lambda p: f"{where(p)}: {_fmt(col.iloc[p])}",
                                     accepted)


#: Widest range of an integer column coded through a lookup table (wider: hashing).
_TABLE_SPAN = 1 << 16


def _integer_codes(col: pd.Series, lookup: pd.Index) -> np.ndarray | None:
    """The codes (position in ``lookup``, -1 where absent) of a column of NumPy integers,
    through a table over the column's range: the same codes as hashing the column
    (``pd.factorize``) and looking its distinct values up, at a fraction of the cost. ``None``
    when it does not apply (another dtype, values that are not integers, a wide range)."""
    if not (isinstance(col.dtype, np.dtype) and np.issubdtype(col.dtype, np.integer)) \
            or len(col) == 0:
        return None
    values = list(lookup)
    if not all(isinstance(v, (int, np.integer)) for v in values):
        return None
    arr = col.to_numpy()
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo >= _TABLE_SPAN:
        return None
    arr = arr.astype(np.int64, copy=False)  # narrow integers: arr - lo must not wrap
    table = np.full(hi - lo + 1, -1, dtype=np.int64)
    for i, v in reversed(list(enumerate(values))):  # the first position of a repeated value
        if lo <= int(v) <= hi:
            table[int(v) - lo] = i
    return table[arr - lo]


def _code_time(col: pd.Series, na: np.ndarray, name: str, where: _RowDescriber,
               period: str = DEFAULT_PERIOD, time_format: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Integer periods; returns the periods (0 where unusable), the mask of unreadable values
    and a message (or None).

    Integers are periods as they are; dates (datetime64, ``datetime.date``), pandas periods and
    strings (ISO dates such as ``"2022-01"``, or ``time_format``) become the ordinal of their
    period of frequency ``period`` (months since 1970-01 for ``"M"``), so that consecutive
    periods are consecutive integers."""
    n = len(col)
    ok = ~na
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    kind = _column_kind(col)
    accepted = ("give whole numbers, consecutive within each unit, or dates, pandas periods or "
                "ISO strings such as '2022-01' (other formats: time_format=..., e.g. '%Y%m')")
    if time_format is not None:
        text = col.astype(object).where(ok, None).map(
            lambda v: None if v is None else (str(int(v)) if isinstance(v, (int, np.integer))
                                              or (isinstance(v, float) and v.is_integer())
                                              else str(v)))
        stamps = pd.to_datetime(text, format=time_format, errors="coerce")
        return _period_ordinals(stamps, ok, period, col, name, where,
                                f"that does not match time_format {time_format!r}", accepted)
    if kind == "integer":
        return col.to_numpy(dtype=np.int64, na_value=0), np.zeros(n, dtype=bool), None
    if isinstance(col.dtype, pd.PeriodDtype):
        return _period_ordinals(col, ok, period, col, name, where, "", accepted)
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        stamps = col.dt.tz_localize(None) if getattr(col.dt, "tz", None) is not None else col
        return _period_ordinals(stamps, ok, period, col, name, where, "", accepted)
    if kind == "floating":
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(np.where(ok, vals, 0.0))
        whole = finite & (np.floor(np.where(finite, vals, 0.0)) == np.where(finite, vals, 0.0))
        bad = ok & ~whole
        t = np.where(ok & whole, vals, 0.0).astype(np.int64)
        hint = ""
    else:
        inferred = pd.api.types.infer_dtype(col, skipna=True)
        if inferred == "period":
            try:
                return _period_ordinals(pd.Series(pd.PeriodIndex(col.where(ok, None)),
                                                  index=col.index), ok, period, col, name,
                                        where, "", accepted)
            except (ValueError, TypeError):
                pass
        if inferred in ("datetime", "datetime64", "date"):
            stamps = pd.to_datetime(col.where(ok, None), errors="coerce")
            return _period_ordinals(stamps, ok, period, col, name, where, "", accepted)
        if inferred == "string":
            values = col.where(ok, "").astype(str)
            numeric = values.str.fullmatch(r"\s*[-+]?\d+\s*") & ok
            if numeric[ok].all() and ok.any():
                bad = ok.copy()
                t = np.zeros(n, dtype=np.int64)
                hint = (" (numbers stored as text: convert them with pandas.to_numeric, or "
                        "give time_format=..., e.g. '%Y%m' for YYYYMM)")
            else:
                return _period_ordinals(_parse_period_strings(col, ok, period), ok, period,
                                        col, name, where, "that is not an ISO date or a "
                                        "period such as '2022Q1'", accepted)
        else:
            bad = ok.copy()
            t = np.zeros(n, dtype=np.int64)
            hint = ""
    if not bad.any():
        return t, bad, None
    pos = np.flatnonzero(bad)
    return t, bad, _rows_message(
        f"column {name!r} must hold integer periods; {_n_rows(pos.size, 'holds', 'hold')} a "
        f"value that is not a whole number (dtype {col.dtype}){hint}", pos,
        lambda p: f"{where(p)}: {_fmt(col.iloc[p])}", accepted)


def _parse_period_strings(col: pd.Series, ok: np.ndarray, period: str) -> pd.Series:
    """Periods of frequency ``period`` from strings: ISO dates (``"2022-01"``,
    ``"2022-01-31"``) or pandas period strings (``"2022Q1"``); NaT where unreadable. Each
    distinct string is parsed once."""
    codes, uniques = pd.factorize(col.where(ok, None))
    parsed = []
    for text in uniques:
        value = pd.NaT
        try:
            value = pd.Timestamp(pd.to_datetime(str(text), format="ISO8601")).to_period(period)
        except (ValueError, TypeError, OverflowError):
            try:
                value = pd.Period(str(text), freq=period)
            except (ValueError, TypeError, OverflowError):
                value = pd.NaT
        parsed.append(value)
    lookup = pd.array(parsed + [pd.NaT], dtype=pd.PeriodDtype(period))
    return pd.Series(lookup[codes], index=col.index)


def _period_ordinals(values: pd.Series, ok: np.ndarray, period: str, original: pd.Series,
                     name: str, where: _RowDescriber, what: str, accepted: str
                     ) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Ordinals of ``values`` (datetimes or periods) in the frequency ``period``; rows that are
    given (``ok``) but unreadable (NaT) are reported."""
    n = len(values)
    values = pd.Series(values, index=original.index)
    if isinstance(values.dtype, pd.PeriodDtype):
        periods = values.dt.asfreq(period, how="start")
        readable = periods.notna().to_numpy()
        ords = np.zeros(n, dtype=np.int64)
        ords[readable] = periods[readable].map(lambda p: p.ordinal).to_numpy(dtype=np.int64)
    else:
        stamps = pd.to_datetime(values, errors="coerce")
        readable = stamps.notna().to_numpy()
        ords = np.zeros(n, dtype=np.int64)
        if readable.any():
            ords[readable] = stamps[readable].dt.to_period(period).array.asi8
    bad = ok & ~readable
    if not bad.any():
        return ords, bad, None
    pos = np.flatnonzero(bad)
    return ords, bad, _rows_message(
        f"column {name!r} must hold periods; {_n_rows(pos.size, 'holds', 'hold')} a value "
        f"{what or 'that is not a date or period'} (dtype {original.dtype})", pos,
        lambda p: f"{where(p)}: {_fmt(original.iloc[p])}", accepted)


def _period_label(col: pd.Series, cols: _Resolved) -> Callable[[int], str]:
    """How a coded period prints in messages: the integer, or its calendar period."""
    if cols.time_format is None and _column_kind(col) in ("integer", "floating"):
        return str
    return lambda k: str(pd.Period(ordinal=int(k), freq=cols.period))


def _sort_order(unit: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stable order by unit, then period, and whether it is the identity (rows already sorted,
    as usual)."""
    if unit.size == 0:
        return np.zeros(0, dtype=np.int64), True
    du = np.diff(unit)
    if bool(np.all(du >= 0)) and bool(np.all((np.diff(t) >= 0) | (du != 0))):
        return np.arange(unit.size), True
    t_min, t_span = int(t.min()), int(t.max()) - int(t.min()) + 1
    if (int(unit.max()) + 1) * t_span < 2**62:
        key = unit * t_span + (t - t_min)
        return np.argsort(key, kind="stable"), False
    return np.lexsort((t, unit)), False


def _factorize(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes of the ids in sorted order of the distinct ids, and those ids."""
    if isinstance(ids.dtype, np.dtype) and np.issubdtype(ids.dtype, np.integer) and len(ids):
        arr = ids.to_numpy()
        change = arr[1:] != arr[:-1]
        if bool(np.all(arr[1:] >= arr[:-1])):  # ids in order (a sorted panel): no hashing
            starts = np.r_[0, np.flatnonzero(change) + 1]
            codes = np.repeat(np.arange(starts.size, dtype=np.int64),
                              np.diff(np.r_[starts, arr.size]))
            return codes, pd.Index(arr[starts])
    try:
        codes, uniques = pd.factorize(ids, sort=True)
    except TypeError:  # ids of types that do not sort together
        codes, uniques = pd.factorize(ids, sort=False)
    return codes.astype(np.int64), pd.Index(uniques)


def _duplicates_message(dup: np.ndarray, order: np.ndarray, where: _RowDescriber,
                        data: pd.DataFrame, id_col: str, time_col: str) -> str:
    """``dup`` holds sorted positions k whose row shares (id, period) with row k + 1; a run of
    consecutive k is one repeated pair."""
    run_start = np.r_[True, np.diff(dup) > 1]
    run_end = np.r_[np.diff(dup) > 1, True]
    starts, ends = dup[run_start], dup[run_end] + 1
    shown = []
    for k, stop in zip(starts[:MAX_SHOWN].tolist(), ends[:MAX_SHOWN].tolist(), strict=True):
        rows = ", ".join(_fmt(data.index[p]) for p in order[k : stop + 1])
        p = order[k]
        shown.append(f"{where.key(p)}, {time_col}={_fmt(data[time_col].iloc[p])} at rows {rows}")
    more = f"; and {starts.size - MAX_SHOWN} more" if starts.size > MAX_SHOWN else ""
    n_rows = int(np.sum(ends - starts + 1))
    return (f"{starts.size} duplicate ({id_col}, {time_col}) pair{'s' if starts.size > 1 else ''}"
            f" ({n_rows} rows); first: " + "; ".join(shown) + more +
            f". Give one row per {id_col} and {time_col}")


def _gaps_message(gap: np.ndarray, order: np.ndarray, t_o: np.ndarray, where: _RowDescriber,
                  data: pd.DataFrame, id_col: str, time_col: str,
                  label: Callable[[int], str] = str) -> str:
    missing_periods = int(np.sum(np.diff(t_o)[gap] - 1))
    shown = []
    for k in gap[:MAX_SHOWN]:
        lo, hi = int(t_o[k]), int(t_o[k + 1])
        span = (f"{time_col} {label(lo + 1)}" if hi - lo == 2 else
                f"{time_col}s {label(lo + 1)}{'-' if label is str else ' to '}{label(hi - 1)}")
        p, q = order[k], order[k + 1]
        shown.append(f"{where.key(p)} has no row for {span} (between row "
                     f"{_fmt(data.index[p])}, {time_col} {label(lo)}, and row "
                     f"{_fmt(data.index[q])}, {time_col} {label(hi)})")
    more = f"; and {gap.size - MAX_SHOWN} more" if gap.size > MAX_SHOWN else ""
    hint = ""
    col = data[time_col]
    if label is str and _column_kind(col) == "integer" and len(col):
        v = col.to_numpy()
        if v.min() >= 100001 and v.max() <= 999912 and np.all((v % 100 >= 1) & (v % 100 <= 12)):
            hint = (f" The {time_col} values look like YYYYMM dates: give "
                    "time_format='%Y%m' (command line: --time-format %Y%m)")
    return (f"{gap.size} gap{'s' if gap.size > 1 else ''} in units' periods ({missing_periods} "
            f"missing {time_col}{'s' if missing_periods > 1 else ''}); first: " +
            "; ".join(shown) + more + f". Each {id_col} needs consecutive {time_col}s (split a "
            "unit with a real gap into separate ids)." + hint)


def _infeasible_message(model: Model, bad: np.ndarray, state: np.ndarray, action: np.ndarray,
                        where: Callable[[int], str]) -> str:
    actions = np.asarray(model.actions, dtype=object)

    def describe(p: int) -> str:
        s = int(state[p])
        feasible = list(actions[model.feasible[s]])
        return (f"{where(p)}: action {actions[action[p]]!r} in state "
                f"{_state_text(model.space, s)}, feasible there: {feasible}")

    return _rows_message(f"{_n_rows(bad.size, 'chooses', 'choose')} an action that is "
                         "infeasible in its state", bad, describe,
                         "check the action and state columns (e.g. the plan's lock)")


def _state_text(space, s: int) -> str:
    labels = space.index[int(s)]
    return "(" + ", ".join(f"{n}={_fmt(v)}" for n, v in zip(space.names, labels, strict=True)) \
        + ")"


# ---------------------------------------------------------------------- transitions
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


# ---------------------------------------------------------------------- helpers
def _rows_message(head: str, pos: np.ndarray, describe: Callable[[int], str], accepted: str
                  ) -> str:
    shown = "; ".join(describe(int(p)) for p in pos[:MAX_SHOWN])
    more = f"; and {pos.size - MAX_SHOWN} more" if pos.size > MAX_SHOWN else ""
    return f"{head}; first: {shown}{more}. {accepted[0].upper()}{accepted[1:]}"


def _n_rows(k: int, verb_one: str = "", verb_many: str = "") -> str:
    verb = verb_one if k == 1 else verb_many
    return f"{k} row{'s' if k != 1 else ''}" + (f" {verb}" if verb else "")


def _fmt(v: Hashable) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 2**53 else repr(v)
    return repr(v) if isinstance(v, str) else str(v)


def _frozen(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    x.flags.writeable = False
    return x


def _same_structure(m1: Model, m2: Model) -> bool:
    return (m1.space.names == m2.space.names
            and [v.values for v in m1.space.variables] == [v.values for v in m2.space.variables]
            and m1.actions == m2.actions
            and np.array_equal(m1.feasible, m2.feasible))
