"""Where a model's data are in a table: the :class:`Columns` mapping, its defaults, and
:func:`standardize` (a table renamed to the model's own column names, periods parsed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ddc.model import Model
from ddc.panel.errors import PanelError, _RowDescriber
from ddc.panel.periods import DEFAULT_PERIOD, _code_time

#: Id columns looked for, in order, after the model's declared ``hooks.layout.id_col``, when
#: ``id_col`` is not given.
ID_COLUMNS = ("customer_id", "unit_id", "id")

#: Time columns looked for, in order, when ``time_col`` is not given.
TIME_COLUMNS = ("month", "period")

#: The column of the chosen action.
ACTION_COLUMN = "action"

#: Key of ``DataFrame.attrs`` where a data source records, per state column, how many values it
#: was coded for (``{"mileage": 90}``); a model whose state variable has another number of values
#: is refused, since the codes would mean other states (e.g. bins of another width).
STATE_SIZES_ATTR = "ddc_state_sizes"


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


def _pick_column(columns: list, defaults: tuple[str, ...], what: str, arg: str) -> str:
    for c in defaults:
        if c in columns:
            return c
    raise PanelError(f"no {what} column: none of {list(defaults)} is among the frame's columns "
                     f"{columns}; name it with {arg}=...")


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
