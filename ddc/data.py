"""The data protocol of the estimators: a panel in memory and out-of-core sufficient statistics
behind one interface.

Every estimator reads its data through :class:`EstimationData`. The choice part of the
likelihood is

.. math:: \\ell_c(\\theta) = \\sum_i \\sum_t \\log \\pi(a_{it} \\mid s_{it}; \\theta)
          = \\sum_{s, a} n(s, a) \\log \\pi(a \\mid s; \\theta),

and the transition part :math:`\\sum_{s, a, s'} n(s, a, s') \\log P(s' \\mid s, a; \\psi)`, so the
counts :math:`n(s, a)` (:attr:`EstimationData.counts`) and :math:`n(s, a, s')`
(:attr:`EstimationData.transition_counts`) are all a likelihood estimator needs. Both
implementations carry them:

* :class:`PanelData`: a long panel in memory (a :class:`pandas.DataFrame` or a coded
  :class:`ddc.panel.Panel`); it also has the rows (:meth:`EstimationData.rows`), so per-row scores,
  clustered covariances and bootstraps over units are available;
* :class:`StatisticsData`: the sufficient statistics of :func:`ddc.outofcore.sufficient_statistics`
  (counts only; asking for rows raises :class:`RowsUnavailable` naming who asked).

Columns beyond the states and the action (e.g. the odometer increments from which a transition
family estimates itself) are reached with :meth:`EstimationData.column_counts` (value counts, on
both kinds) and :meth:`EstimationData.column` (per row, in memory only); time-invariant unit
characteristics (the covariates of a mixture's type shares) with
:meth:`EstimationData.unit_covariates` (one row per unit, in memory only).

:func:`estimation_data` turns whatever the user passed to ``fit`` into one of them; a value that
already is an :class:`EstimationData` passes through.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ddc.model import Model
from ddc.panel import Columns, Panel, PanelError, TransitionCounts, _fmt, prepare

__all__ = ["ChoiceRows", "EstimationData", "PanelData", "RowsUnavailable", "StatisticsData",
           "estimation_data"]


class RowsUnavailable(TypeError):
    """Something needs the panel's rows, but the data are sufficient statistics (counts only)."""


@dataclass(frozen=True)
class ChoiceRows:
    """The rows of the choice sample (in the coded panel's sorted order).

    Attributes
    ----------
    state, action, unit : numpy.ndarray of int64
        Per row of the choice sample: flat state index, action code, unit code.
    position : numpy.ndarray of int64
        Their row numbers in the coded panel (``0 .. n_panel_rows - 1``).
    n_panel_rows : int
        Rows of the coded panel (score arrays have this many rows; rows outside the choice
        sample, e.g. each unit's first period when it is conditioned on, are zero).
    """

    state: np.ndarray
    action: np.ndarray
    unit: np.ndarray
    position: np.ndarray
    n_panel_rows: int


class EstimationData(ABC):
    """What estimators read from the data: counts, transitions, units and extra columns.

    Attributes
    ----------
    model : ddc.Model
        The model the data were coded for.
    drop_first : bool
        Whether each unit's first period is left out of the choice sample (conditioned on).
    counts : numpy.ndarray of int64, shape (S, A)
        :math:`n(s, a)` of the choice sample.
    transition_counts : ddc.panel.TransitionCounts
        The observed :math:`(s, a, s')` with their counts (all rows with a next state).
    nobs : int
        Rows in the choice sample.
    n_units : int
        Units (distinct ids).
    has_rows : bool
        Whether :meth:`rows`, :meth:`column`, :meth:`unit_counts` are available.
    """

    model: Model
    drop_first: bool

    @property
    @abstractmethod
    def counts(self) -> np.ndarray: ...

    @property
    @abstractmethod
    def transition_counts(self) -> TransitionCounts: ...

    @property
    @abstractmethod
    def n_units(self) -> int: ...

    @property
    def nobs(self) -> int:
        """Rows in the choice sample."""
        return int(self.counts.sum())

    has_rows: bool = False

    def rows(self, who: str = "this estimator") -> ChoiceRows:
        """The choice sample's rows (:class:`ChoiceRows`).

        Raises
        ------
        RowsUnavailable
            The data are sufficient statistics; ``who`` is named in the message.
        """
        raise self._no_rows(who, "the panel's rows")

    def require_rows(self, who: str = "this estimator") -> Panel:
        """The coded panel, or :class:`RowsUnavailable` naming ``who`` needs it."""
        self.rows(who)
        return self.panel

    def column(self, name: str, who: str = "this estimator") -> np.ndarray:
        """Values of the extra column ``name`` per coded panel row (float, NaN where missing).

        Raises
        ------
        KeyError
            The data have no such column.
        RowsUnavailable
            The data are sufficient statistics.
        """
        raise self._no_rows(who, f"the column {name!r} row by row")

    def unit_counts(self, who: str = "this estimator") -> sp.csr_matrix:
        """Per-unit choice counts: a sparse ``(n_units, S * A)`` matrix whose row ``i`` holds
        :math:`n_i(s, a)` at column ``s * A + a`` (weights of a bootstrap or clustering by unit).

        Raises
        ------
        RowsUnavailable
            The data are sufficient statistics.
        """
        raise self._no_rows(who, "per-unit counts")

    def unit_covariates(self, names, who: str = "this estimator") -> pd.DataFrame:
        """Time-invariant columns ``names`` per unit: a DataFrame indexed by the unit ids in
        unit-code order (the panel's :attr:`~ddc.panel.Panel.ids`), one column per name, with
        each unit's value (as in the data: labels stay labels).

        Raises
        ------
        KeyError
            A column is not in the data (the message lists those there are), or the data are
            a coded panel without its DataFrame.
        ValueError
            A column is missing in some row, or varies within a unit (naming the unit and the
            two rows that differ).
        RowsUnavailable
            The data are sufficient statistics.
        """
        raise self._no_rows(who, f"the unit covariates {list(names)}")

    @abstractmethod
    def column_counts(self, name: str, size: int) -> np.ndarray:
        """How many rows hold each value ``0 .. size - 1`` of the integer column ``name``
        (missing values not counted).

        Raises
        ------
        KeyError
            The data have no such column (or the statistics did not count it).
        ValueError
            A value outside ``0 .. size - 1`` or not an integer, naming it (and its row when the
            rows are available).
        """

    @abstractmethod
    def check_transitions(self, params) -> None:
        """Raise :class:`ddc.panel.PanelError` if an observed transition has probability zero
        under the model's transitions at ``params``, naming it (its row and unit when the rows
        are available)."""

    def loglik(self, log_pi: np.ndarray) -> float:
        """:math:`\\sum_{s,a} n(s,a) \\log \\pi(a|s)` over the cells with a count."""
        c = self.counts
        mask = c > 0
        return float(np.sum(c[mask] * np.asarray(log_pi)[mask]))

    def _no_rows(self, who: str, what: str) -> RowsUnavailable:
        return RowsUnavailable(
            f"{who} needs {what}; the data are sufficient statistics computed out of core "
            "(counts only). Pass the panel itself (a DataFrame, a ddc.panel.Panel or a Parquet "
            "file read into memory), or use an estimator that works from counts")

    # ------------------------------------------------------------------ compatibility
    panel: Panel | None = None
    frame: pd.DataFrame | None = None
    stats: object | None = None


class PanelData(EstimationData):
    """A long panel in memory, with its choice sample.

    Parameters
    ----------
    panel : ddc.panel.Panel
        The coded panel.
    frame : pandas.DataFrame, optional
        The frame it was coded from (for extra columns such as increments).
    drop_first : bool
        Leave each unit's first period out of the choice sample.
    columns : mapping of str to str, optional
        Extra column name -> the frame's column holding it.
    """

    has_rows = True

    def __init__(self, panel: Panel, frame: pd.DataFrame | None = None, drop_first: bool = False,
                 columns: Mapping[str, str] | None = None):
        self.panel, self.frame = panel, frame
        self.model = panel.model
        self.drop_first = bool(drop_first)
        self.stats = None
        self._columns = dict(columns or {})
        used = np.ones(panel.nobs, dtype=bool)
        if self.drop_first and panel.nobs:
            first = np.ones(panel.nobs, dtype=bool)
            first[1:] = panel.unit[1:] != panel.unit[:-1]
            used &= ~first
        self.used = used
        self._all_used = bool(used.all())  # every row in the choice sample: no masked copies

    def __repr__(self) -> str:
        return (f"PanelData({self.model.name!r}: {self.nobs:,} choice rows of {self.panel.nobs:,}"
                f", {self.n_units:,} units)")

    @cached_property
    def counts(self) -> np.ndarray:
        S, A = self.model.n_states, self.model.n_actions
        rows = self._rows
        c = np.bincount(rows.state * A + rows.action, minlength=S * A)
        return c.astype(np.int64).reshape(S, A)

    @property
    def transition_counts(self) -> TransitionCounts:
        return self.panel.transition_counts

    @property
    def n_units(self) -> int:
        return self.panel.n_units

    @property
    def nobs(self) -> int:
        return self.panel.nobs if self._all_used else int(self.used.sum())

    # in-memory extras -----------------------------------------------------------------
    @cached_property
    def _rows(self) -> ChoiceRows:
        p = self.panel
        if self._all_used:  # the panel's own (read-only) arrays
            return ChoiceRows(p.state, p.action, p.unit, np.arange(p.nobs), p.nobs)
        return ChoiceRows(p.state[self.used], p.action[self.used], p.unit[self.used],
                          np.flatnonzero(self.used), p.nobs)

    def rows(self, who: str = "this estimator") -> ChoiceRows:
        return self._rows

    @property
    def state(self) -> np.ndarray:
        """States of the choice sample's rows."""
        return self._rows.state

    @property
    def action(self) -> np.ndarray:
        """Actions of the choice sample's rows."""
        return self._rows.action

    @property
    def unit(self) -> np.ndarray:
        """Unit codes of the choice sample's rows."""
        return self._rows.unit

    def column(self, name: str, who: str = "this estimator") -> np.ndarray:
        col = self._columns.get(name, self.model.hooks.layout.column(name))
        if self.frame is None or col not in self.frame.columns:
            have = "" if self.frame is None else f"; the data have {list(self.frame.columns)}"
            raise KeyError(f"{who} needs the column {col!r}"
                           + (f" (for {name!r})" if col != name else "")
                           + ", which is not in the data" + have
                           + ". Pass the DataFrame (not a coded Panel) with that column, or name "
                           "it with columns={...}")
        raw = self.frame[col]
        if isinstance(raw.dtype, np.dtype) and raw.dtype.kind in "fiu":  # numeric already
            return raw.to_numpy(dtype=float)[self.panel.position]
        if getattr(raw.dtype, "kind", "O") in "fiu":
            # a numeric extension column (Int64, Float64, Arrow numbers): numeric already, its
            # missing values NaN (what pandas.to_numeric would give, at a tenth of the cost)
            return raw.to_numpy(dtype=float, na_value=np.nan)[self.panel.position]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            from ddc.panel import _fmt

            raise ValueError(f"column {col!r} holds {_fmt(self.frame[col].iloc[i])} at row "
                             f"{_fmt(self.frame.index[i])}; it must be numeric (missing values "
                             "allowed)")
        return values.to_numpy(dtype=float, na_value=np.nan)[self.panel.position]

    def column_counts(self, name: str, size: int) -> np.ndarray:
        x = self.column(name)
        ok = ~np.isnan(x)
        bad = ok & ((x < 0) | (x >= size) | (x != np.round(x)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"column {name!r} has value {x[i]:g} at {self._where(i)}; "
                             f"integers 0..{size - 1} are accepted")
        return np.bincount(x[ok].astype(np.int64), minlength=size)

    def unit_counts(self, who: str = "this estimator") -> sp.csr_matrix:
        r = self._rows
        A = self.model.n_actions
        return sp.csr_matrix((np.ones(r.state.size), (r.unit, r.state * A + r.action)),
                             shape=(self.n_units, self.model.n_states * A))

    def unit_covariates(self, names, who: str = "this estimator") -> pd.DataFrame:
        names = [str(n) for n in names]
        p = self.panel
        cols = {n: self._columns.get(n, self.model.hooks.layout.column(n)) for n in names}
        have = [] if self.frame is None else list(self.frame.columns)
        missing = [c for c in cols.values() if c not in have]
        if missing:
            if self.frame is None:
                raise KeyError(f"{who} needs the column(s) {missing} per unit, but the data are "
                               "a coded Panel without its DataFrame; pass the DataFrame")
            raise KeyError(f"{who} needs the column(s) {missing} (time-invariant unit "
                           f"covariates), which are not in the data; the data have {have}. "
                           "Add them, or map them with columns={name: column}")
        start = np.flatnonzero(np.r_[True, p.unit[1:] != p.unit[:-1]])  # rows sorted by unit
        first_of_row = np.repeat(start, np.diff(np.r_[start, p.nobs]))
        out = {}
        for name, col in cols.items():
            values = self.frame[col].iloc[p.position]
            na = values.isna().to_numpy()
            if na.any():
                rows = np.flatnonzero(na)
                shown = "; ".join(self._where(int(i)) for i in rows[:5])
                raise ValueError(f"column {col!r} ({who}: a time-invariant covariate) is missing "
                                 f"in {rows.size} row(s): {shown}; give every row of a unit "
                                 "its value")
            codes = pd.factorize(values)[0]
            varies = np.flatnonzero(codes != codes[first_of_row])
            if varies.size:
                i = int(varies[0])
                j = int(first_of_row[i])
                unit = f"{p.id_col}={_fmt(p.ids[p.unit[i]])}"
                raise ValueError(
                    f"column {col!r} ({who}: a time-invariant covariate) varies within unit "
                    f"{unit}: {_fmt(values.iloc[j])} at {self._where(j)} but "
                    f"{_fmt(values.iloc[i])} at {self._where(i)}; it must be constant within "
                    f"each unit ({np.unique(p.unit[varies]).size} unit(s) vary)")
            out[name] = values.iloc[start].to_numpy()
        return pd.DataFrame(out, index=pd.Index(p.ids, name=p.id_col))

    def check_transitions(self, params) -> None:
        self.panel.check_transitions(params)

    def _where(self, i: int) -> str:
        p = self.panel
        from ddc.panel import _fmt

        return (f"row {_fmt(p.row[i])} ({p.id_col}={_fmt(p.ids[p.unit[i]])}, "
                f"{p.time_col}={int(p.time[i])})")


class StatisticsData(EstimationData):
    """Sufficient statistics computed out of core (:mod:`ddc.outofcore`): counts only.

    Parameters
    ----------
    stats : ddc.outofcore.SufficientStatistics
        The statistics.
    drop_first : bool
        Leave each unit's first period out of the choice sample.
    """

    has_rows = False

    def __init__(self, stats, drop_first: bool = False):
        self.stats = stats
        self.model = stats.model
        self.drop_first = bool(drop_first)
        self.panel = self.frame = None

    def __repr__(self) -> str:
        return f"StatisticsData({self.stats!r})"

    @cached_property
    def counts(self) -> np.ndarray:
        return np.asarray(self.stats.choice_counts(self.drop_first), dtype=np.int64)

    @property
    def transition_counts(self) -> TransitionCounts:
        return self.stats.transition_counts

    @property
    def n_units(self) -> int:
        return int(self.stats.n_units)

    def column_counts(self, name: str, size: int) -> np.ndarray:
        counted = getattr(self.stats, "column_counts", None)
        if isinstance(counted, Mapping) and name in counted:
            c = counted[name]
        else:
            # the reduction counts one extra column: that of the model's transition family
            c = self.stats.increment_counts
        if c is None:
            raise KeyError(f"the sufficient statistics have no counts of the column {name!r}; "
                           "compute them from a source that has it")
        c = np.asarray(c, dtype=np.int64)
        if len(c) > size and c[size:].any():
            raise ValueError(f"column {name!r} holds values up to {len(c) - 1}; integers "
                             f"0..{size - 1} are accepted")
        return np.pad(c[:size], (0, max(0, size - len(c))))

    def check_transitions(self, params) -> None:
        from ddc.panel import _state_text, _triple_probabilities

        model = self.model
        tc = self.transition_counts
        if len(tc.n) == 0:
            return
        prob, zero = _triple_probabilities(model, model.compiled_transitions(params), tc)
        bad = np.flatnonzero(prob <= 0.0)
        if bad.size == 0:
            return
        shown = []
        for t in bad[:5]:
            where = ", ".join(k for k, m in zero.items() if m[t])
            shown.append(f"state {_state_text(model.space, tc.s[t])}, action "
                         f"{model.actions[tc.a[t]]!r} -> next state "
                         f"{_state_text(model.space, tc.s_next[t])} ({tc.n[t]} rows; zero in: "
                         f"{where})")
        raise PanelError(f"{int(tc.n[bad].sum())} observed transition(s) have probability 0 "
                         f"under the transitions of model {model.name!r}: " + "; ".join(shown)
                         + ". Check the state columns and the periods' order, or the model's "
                         "transitions (the rows are not available in sufficient statistics: "
                         "load the panel and call Panel.impossible_transitions() to list them)")


def estimation_data(model: Model, data, *, drop_first: bool | None = None,
                    id_col: str | None = None, time_col: str | None = None,
                    action_col: str | None = None,
                    columns: Columns | Mapping[str, str] | None = None) -> EstimationData:
    """Validate and code ``data`` for ``model``: the one entry of every estimator's data.

    Parameters
    ----------
    model : ddc.Model
        The model.
    data : pandas.DataFrame, ddc.panel.Panel, ddc.outofcore.SufficientStatistics or EstimationData
        The long panel, a coded panel, sufficient statistics computed out of core, or data
        already prepared (returned as is when prepared for ``model`` and ``drop_first``).
    drop_first : bool, optional
        Leave each unit's first period out of the choice sample (conditioning on it); by default
        ``model.hooks.layout.drop_first_period``.
    id_col, time_col, action_col : str, optional
        Column names of the unit id, the period and the action (default: the model's layout).
    columns : ddc.panel.Columns or mapping of str to str, optional
        State variable (or extra variable, e.g. ``"increment"``) -> the column holding it, or
        the whole mapping (:class:`~ddc.panel.Columns`: also the id, period and action columns,
        the period and the time format; keywords given beside it must agree with it).

    Returns
    -------
    EstimationData

    Raises
    ------
    TypeError
        ``data`` is of none of the accepted kinds.
    ddc.panel.PanelError
        The panel does not fit the model (naming the rows at fault).
    """
    if drop_first is None:
        drop_first = bool(model.hooks.layout.drop_first_period)
    if isinstance(data, EstimationData):
        _same_model(model, data.model, "the prepared data")
        if data.drop_first != bool(drop_first):
            raise ValueError(f"the prepared data have drop_first={data.drop_first}, but "
                             f"drop_first={bool(drop_first)} was asked for; prepare them again")
        return data
    from ddc.outofcore import SufficientStatistics  # same layer; imported on use (no cycle)

    if isinstance(data, SufficientStatistics):
        _same_model(model, data.model, "the sufficient statistics")
        return StatisticsData(data, drop_first)
    if not isinstance(data, (pd.DataFrame, Panel)):
        raise TypeError(f"data must be a long panel (pandas DataFrame), a ddc.panel.Panel, "
                        f"ddc.outofcore.SufficientStatistics or ddc.data.EstimationData; got "
                        f"{type(data).__name__}")
    mapping = {k: v for k, v in (("id_col", id_col), ("time_col", time_col),
                                 ("action_col", action_col)) if v is not None}
    # state variables are mapped by the panel layer; other names (columns a transition family
    # reads, e.g. "increment") are renamed here so that the family finds them by their name
    extras = {}
    whole = None  # a Columns object: its names, period and time format go to the panel layer
    if isinstance(columns, Columns):
        whole = Columns.of(columns, **mapping)  # keywords beside it must agree with it
        mapping = {}
        columns = whole.states
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise TypeError(f"columns must be a ddc.panel.Columns or map variable names to "
                            f"column names; got {type(columns).__name__}")
        states = {k: v for k, v in columns.items() if k in model.space.names}
        extras = {k: v for k, v in columns.items() if k not in model.space.names}
        if whole is not None:
            import dataclasses

            mapping["columns"] = dataclasses.replace(whole, states=states)
        elif states:
            mapping["columns"] = states
    layout = model.hooks.layout
    if isinstance(data, pd.DataFrame):
        # the model's layout names its columns unless the call does; keys a version of
        # ddc.panel.prepare does not know are passed only when given
        for key in ("id_col", "time_col"):
            default = getattr(layout, key)
            if key not in mapping and default in data.columns and \
                    (whole is None or getattr(whole, key) is None):
                mapping[key] = default
    frame = data if isinstance(data, pd.DataFrame) else None
    if extras:
        missing = {k: v for k, v in extras.items() if frame is None or v not in frame.columns}
        if missing:
            raise KeyError(f"columns={missing}: no such column in the data; the mapping names "
                           f"state variables {list(model.space.names)} or extra columns a "
                           f"transition family reads (the data have "
                           f"{[] if frame is None else list(frame.columns)})")
        clash = [k for k in extras if k in frame.columns and extras[k] != k]
        if clash:
            raise ValueError(f"columns={extras}: the data already have column(s) {clash}; "
                             "drop or rename them first")
        frame = frame.rename(columns={v: k for k, v in extras.items()})
    panel = prepare(model, data if frame is None else frame, **mapping)
    return PanelData(panel, frame, drop_first)


def _same_model(model: Model, other: Model, what: str) -> None:
    if other is model:
        return
    if other.space.shape != model.space.shape or tuple(other.actions) != tuple(model.actions) \
            or not np.array_equal(other.feasible, model.feasible):
        raise ValueError(f"{what} were computed for model {other.name!r} ({other.space!r}, "
                         f"actions {list(other.actions)}), not for model {model.name!r} "
                         f"({model.space!r}, actions {list(model.actions)})")
