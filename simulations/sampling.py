"""What every panel simulator shares: id and output columns, allocation of units to blocks,
inverse-CDF draws, initial distributions and the long panel frame.

Used by :func:`simulations.simulate` (one model) and :func:`simulations.mixture.simulate_mixture`
(a mixture of types), which therefore do not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Columns
from ddc.solver import Solution

__all__ = ["allocate", "id_column", "n_units", "output_columns"]

CHUNK_CUSTOMERS = 65_536
"""Customers simulated per batch of uniforms (bounds memory; part of the seed's meaning)."""

PROB_SUM_TOL = 1e-8


def id_column(model: Model) -> str:
    """Name of the panel's id column: the model's data layout's (``model.hooks.layout.id_col``,
    ``"customer_id"`` by default)."""
    return output_columns(model).id_col


def output_columns(model: Model, columns: Columns | Mapping[str, str] | None = None
                   ) -> Columns:
    """The column names :func:`simulate` writes: those of ``columns``
    (:class:`ddc.panel.Columns`, or ``{state variable: column}``) where given, else the model's
    data layout (``model.hooks.layout``: id, period and action columns, state columns).

    Returns
    -------
    ddc.panel.Columns
        With every name set.
    """
    cols = Columns.of(columns)
    layout = model.hooks.layout
    unknown = sorted(set(cols.states) - set(model.space.names))
    if unknown:
        raise KeyError(f"columns: {unknown} are not state variables of model {model.name!r}; "
                       f"its state variables are {list(model.space.names)}")
    states = {v: cols.states.get(v, layout.column(v)) for v in model.space.names}
    out = Columns(id_col=cols.id_col or layout.id_col, time_col=cols.time_col or layout.time_col,
                  action_col=cols.action_col or layout.action_col, states=states)
    names = [out.id_col, out.time_col, *states.values(), out.action_col]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"columns: the names {dup} are given to more than one column "
                         f"({names}); every column needs its own name")
    return out


def allocate(n: int, weights: np.ndarray) -> np.ndarray:
    """Split ``n`` units over groups in proportion to ``weights`` (largest remainder).

    With equal weights the split is as equal as possible, the first groups taking one more.

    Parameters
    ----------
    n : int
        Number of units.
    weights : numpy.ndarray
        Non-negative weights summing to one.

    Returns
    -------
    numpy.ndarray of int
        Counts summing to ``n``.
    """
    exact = n * np.asarray(weights, dtype=float)
    counts = np.floor(exact + 1e-9).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:rest]] += 1
    elif rest < 0:  # floor(exact + 1e-9) overshot by round-off
        order = np.argsort(exact - counts, kind="stable")
        counts[order[:-rest]] -= 1
    return counts


def _inverse_cdf(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw indices from the probabilities ``p`` with uniforms ``u`` (first k with
    ``u * total < cumsum(p)[k]``); never an index of zero probability."""
    pos = p > 0
    cdf = np.cumsum(np.where(pos, p, 0.0))
    k = np.searchsorted(cdf, u * cdf[-1], side="right")
    return np.minimum(k, np.flatnonzero(pos)[-1])


def _resolve_solution(model: Model, params_or_solution) -> Solution:
    if isinstance(params_or_solution, Solution):
        sol = params_or_solution
        other = sol.model
        if other is not model and (other.space.names != model.space.names
                                   or other.space.shape != model.space.shape
                                   or other.actions != model.actions):
            raise ValueError(
                f"the solution is of a different model ({other!r}) than the one to simulate "
                f"({model!r}); solve this model, or pass its parameters"
            )
        return sol
    return model.solve(params_or_solution)


def _state_codes_from_frame(model: Model, frame: pd.DataFrame) -> np.ndarray:
    """Flat state index of each row of ``frame`` (a column per state variable, labels or codes
    of string-valued variables)."""
    space = model.space
    missing = [n for n in space.names if n not in frame.columns]
    if missing:
        raise KeyError(f"initial states: the DataFrame lacks the state variable column(s) "
                       f"{missing}; it needs one column per state variable {space.names}")
    flat = np.zeros(len(frame), dtype=np.int64)
    for j, var in enumerate(space.variables):
        col = frame[var.name]
        values = list(var.values)
        lookup = {v: k for k, v in enumerate(values)}
        labelled_by_strings = any(isinstance(v, str) for v in values)
        if labelled_by_strings and pd.api.types.is_integer_dtype(col.dtype):
            lookup = {k: k for k in range(len(values))}  # integer codes of string labels
        codes = col.astype(object).map(lookup)
        bad = codes.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"initial states: column {var.name!r}, row {frame.index[i]!r} has the value "
                f"{col.iloc[i]!r}, which is not a value of {var.name!r}; accepted: {values}"
                + (f" or codes 0..{len(values) - 1}" if labelled_by_strings else "")
            )
        flat += codes.to_numpy(dtype=np.int64) * space.strides[j]
    return flat


def _distribution_from(model: Model, initial) -> np.ndarray:
    """A probability vector over states from an array or a Series indexed by states."""
    S = model.n_states
    if isinstance(initial, pd.Series):
        target = model.space.index
        if not isinstance(initial.index, pd.MultiIndex) and target.nlevels == 1:
            target = target.get_level_values(0)
        if initial.index.nlevels != target.nlevels:
            raise ValueError("an initial distribution Series must be indexed by the states "
                             f"(levels {model.space.names}); its index has "
                             f"{initial.index.nlevels} level(s)")
        unknown = initial.index.difference(target)
        if len(unknown):
            raise KeyError(f"initial distribution: index entries {list(unknown[:5])} are "
                           f"not states of the model (levels {model.space.names})")
        if initial.index.has_duplicates:
            raise ValueError("initial distribution: the Series index has duplicate states")
        p = initial.reindex(target, fill_value=0.0).to_numpy(dtype=float)
    else:
        p = np.asarray(initial, dtype=float).ravel()
        if p.shape != (S,):
            raise ValueError(f"an initial distribution array needs one probability per state "
                             f"({S}); got {p.size}")
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        s = int(np.flatnonzero(bad)[0])
        raise ValueError(f"initial distribution: probability {p[s]!r} of state "
                         f"{model.space.index[s]} is not a finite non-negative number")
    if abs(p.sum() - 1.0) > PROB_SUM_TOL:
        raise ValueError(f"initial distribution sums to {p.sum():.12g}, not 1")
    return p


def _names(cols: Columns) -> list[str]:
    return [cols.id_col, cols.time_col, *cols.states.values(), cols.action_col]


def _panel(model: Model, ids: np.ndarray, states: np.ndarray, actions: np.ndarray,
           names: Columns | None = None) -> pd.DataFrame:
    names = output_columns(model) if names is None else names
    n, T = states.shape
    space = model.space
    flat = states.ravel()
    codes_table = space.codes
    cols: dict[str, object] = {
        names.id_col: np.repeat(ids, T),
        names.time_col: np.tile(np.arange(T, dtype=np.int64), n),
    }
    for j, var in enumerate(space.variables):
        codes = codes_table[flat, j]
        values = var.values
        col = names.states[var.name]
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            cols[col] = np.asarray(values, dtype=np.int64)[codes]
        elif all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
            cols[col] = np.asarray(values, dtype=float)[codes]
        else:
            cols[col] = pd.Categorical.from_codes(codes, categories=list(values))
    cols[names.action_col] = pd.Categorical.from_codes(actions.ravel(),
                                                       categories=list(model.actions))
    return pd.DataFrame(cols)


def n_units(n_customers: int | None, frame: pd.DataFrame | None) -> int:
    """How many units to simulate: one per row of an initial-state ``frame`` (``n_customers``,
    when given, must agree), else ``n_customers`` (1,000 by default), a positive integer."""
    if frame is not None:
        if n_customers is not None and n_customers != len(frame):
            raise ValueError(f"n_customers={n_customers} but the initial DataFrame has "
                             f"{len(frame)} rows (one per customer)")
        n_customers = len(frame)
    elif n_customers is None:
        n_customers = 1_000
    if not isinstance(n_customers, (int, np.integer)) or n_customers < 1:
        raise ValueError(f"n_customers must be a positive integer, got {n_customers!r}")
    return int(n_customers)
