"""Errors of the panel layer and how they name rows: :class:`PanelError`,
:class:`ImpossibleTransitionError` and the helpers that write their messages."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import cached_property

import numpy as np
import pandas as pd

#: How many offending rows an error message shows.
MAX_SHOWN = 5


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


def _state_text(space, s: int) -> str:
    labels = space.index[int(s)]
    return "(" + ", ".join(f"{n}={_fmt(v)}" for n, v in zip(space.names, labels, strict=True)) \
        + ")"


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
