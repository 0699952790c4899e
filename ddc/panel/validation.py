"""Validating and coding a whole frame against a model: missing values, unknown labels,
unreadable periods, duplicates, gaps and infeasible actions, every fault reported with its rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel.coding import _code_labels, _column_kind, _factorize, _sort_order
from ddc.panel.columns import STATE_SIZES_ATTR, _Resolved
from ddc.panel.errors import (
    MAX_SHOWN,
    PanelError,
    _fmt,
    _n_rows,
    _RowDescriber,
    _rows_message,
    _state_text,
)
from ddc.panel.periods import _code_time


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


def _period_label(col: pd.Series, cols: _Resolved) -> Callable[[int], str]:
    """How a coded period prints in messages: the integer, or its calendar period."""
    if cols.time_format is None and _column_kind(col) in ("integer", "floating"):
        return str
    return lambda k: str(pd.Period(ordinal=int(k), freq=cols.period))


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
