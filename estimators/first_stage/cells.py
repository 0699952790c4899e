"""The nonparametric first stage: cell-frequency tables of fixed factored transitions, their
unvisited rows, and the layout of the estimated (free) cells."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import ImpossibleTransitionError, TransitionCounts
from ddc.transitions import Factor, FactoredTransitions
from estimators.first_stage.estimate import TransitionEstimate, TransitionOptions
from estimators.first_stage.transition_likelihood import _base_params, transition_log_probs


# ---------------------------------------------------------------------- nonparametric
def factor_counts(model: Model, tc: TransitionCounts) -> dict[str, np.ndarray]:
    """Observed counts per factor of the model's (fixed) factored transitions, in each table's
    shape: :math:`C_j[g, x'] = \\sum n(s, a, s') 1[G_j(s, a) = g] 1[x_j(s') = x']`."""
    trans = model.transitions()
    out = {}
    for factor in trans.factors:
        rows = _given_rows(model, factor, tc.s, tc.a)
        nxt = model.space.code_of(factor.variable)[tc.s_next]
        K = factor.table.shape[-1]
        c = np.bincount(rows * K + nxt, weights=tc.n.astype(np.float64),
                        minlength=factor.table.size)
        out[factor.variable] = np.rint(c).astype(np.int64).reshape(factor.table.shape)
    return out


def _given_rows(model: Model, factor: Factor, s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Flat row index of ``factor``'s table (C order over ``given``) for states and actions."""
    codes = [a if g == "action" else model.space.code_of(g)[s] for g in factor.given]
    if not codes:
        return np.zeros(len(s), dtype=np.int64)
    return np.ravel_multi_index(tuple(np.asarray(c, dtype=np.int64) for c in codes),
                                factor.table.shape[:-1]).astype(np.int64)


def _reachable_rows(model: Model, factor: Factor) -> np.ndarray:
    """Rows of ``factor`` that some feasible (state, action) uses."""
    s, a = np.nonzero(model.feasible)
    out = np.zeros(int(np.prod(factor.table.shape[:-1])), dtype=bool)
    out[_given_rows(model, factor, s, a)] = True
    return out


def _row_label(model: Model, factor: Factor, r: int) -> dict:
    idx = np.unravel_index(r, factor.table.shape[:-1])
    out = {}
    for g, i in zip(factor.given, idx, strict=True):
        v = model.actions[int(i)] if g == "action" else model.space.variable(g).values[int(i)]
        out[g] = v.item() if isinstance(v, np.generic) else v
    return out


def _nonparametric(model: Model, tc: TransitionCounts, n_rows: int,
                   options: TransitionOptions) -> TransitionEstimate:
    trans = model.transitions()
    counts = factor_counts(model, tc)
    factors, tables, kept_counts, unvisited = [], {}, {}, []
    n_cells = 0
    for factor in trans.factors:
        T = factor.table
        K = T.shape[-1]
        rows = T.reshape(-1, K)
        C = counts[factor.variable].reshape(-1, K)
        support = rows > 0
        off = np.argwhere((C > 0) & ~support)
        if len(off):  # the data preparation refuses these first; kept as a guard
            r, x = off[0]
            raise ImpossibleTransitionError(
                f"transition factor of {factor.variable!r}: {int(C[r, x])} observed "
                f"transition(s) from {_row_label(model, factor, int(r))} to "
                f"{factor.variable}={model.space.variable(factor.variable).values[x]!r}, which the "
                "model declares impossible (a structural zero)")
        random = support.sum(axis=1) > 1
        if not random.any():
            factors.append(factor)  # deterministic: nothing to estimate
            continue
        N = C.sum(axis=1)
        est = random & (N > 0)
        missing = random & (N == 0) & _reachable_rows(model, factor)
        if missing.any() and options.unvisited == "raise":
            r = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"transition factor of {factor.variable!r}: the row "
                f"{_row_label(model, factor, r)} is never visited in the data "
                f"({int(missing.sum())} such row(s)), so its distribution cannot be estimated. "
                "Pass TransitionOptions(unvisited='model') to keep the model's values there, or "
                "transitions='known'")
        new = rows.copy()
        new[est] = C[est] / N[est, None]
        unvisited += [(factor.variable, _row_label(model, factor, int(r)))
                      for r in np.flatnonzero(missing)]
        n_cells += int(est.sum())
        tables[factor.variable] = new.reshape(T.shape)
        kept_counts[factor.variable] = C.reshape(T.shape)
        factors.append(Factor(factor.variable, new.reshape(T.shape), given=factor.given))
    est_model = model.replace(transitions=FactoredTransitions(factors)) if tables else model
    ll = float(np.sum(tc.n * transition_log_probs(est_model, _base_params(model), tc.s, tc.a,
                                                  tc.s_next))) if len(tc.n) else 0.0
    notes = []
    if tables:
        notes.append(f"transitions estimated by cell frequencies ({', '.join(tables)}: "
                     f"{n_cells} conditioning rows)")
    if unvisited:
        shown = "; ".join(f"{v} | {g}" for v, g in unvisited[:3])
        notes.append(f"{len(unvisited)} transition row(s) never visited in the data kept at the "
                     f"model's values (first: {shown})")
    method = "cell frequencies (nonparametric)" if tables else \
        "deterministic transitions (nothing to estimate)"
    return TransitionEstimate(
        pd.Series(dtype=float), np.zeros((0, 0)), ll, int(np.sum(tc.n)), np.zeros((n_rows, 0)),
        method, model=est_model, tables=tables, counts=kept_counts,
        unvisited=pd.DataFrame(unvisited, columns=["variable", "given"]), notes=notes)


def _cell_layout(ts: TransitionEstimate) -> tuple[list[tuple], list[str]]:
    """The free cells of a nonparametric estimate (:func:`cell_layout` of its tables): returns
    ``[(variable, row, free cells, last, start), ...]`` (``start``: the position of the row's
    first free cell among all) and the cells' names ``"<var>[<given>]-><value>"``."""
    lay = cell_layout(ts.model, ts.tables, ts.counts)
    return lay.rows, lay.names


@dataclasses.dataclass
class CellLayout:
    """Free cells of some tables: per estimated row ``(variable, row, free cells, reference
    cell, position of the first free cell in the parameter vector)``."""

    rows: list[tuple[str, int, list[int], int, int]]
    names: list[str]
    values: np.ndarray


def cell_layout(model: Model, tables: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                tag: str = "") -> CellLayout:
    """The free cells of ``tables`` (estimated rows: more than one positive cell and a
    positive count), named ``<var>[<tag><conditioning values>]-><next value>``."""
    factors = {f.variable: f for f in model.transitions().factors}
    rows_out, names, values = [], [], []
    for var, table in tables.items():
        width = table.shape[-1]
        rows = table.reshape(-1, width)
        N = np.asarray(counts[var]).reshape(-1, width).sum(axis=1)
        vals = model.space.variable(var).values
        for r in np.flatnonzero((N > 0) & ((rows > 0).sum(axis=1) > 1)):
            p = rows[r]
            pos = np.flatnonzero(p > 0)
            last = int(pos[np.argmax(p[pos])])
            free = [int(c) for c in pos if c != last]
            label = ", ".join(f"{k}={v}" for k, v in
                              _row_label(model, factors[var], int(r)).items())
            rows_out.append((var, int(r), free, last, len(names)))
            names += [f"{var}[{tag}{label}]->{vals[c]}" for c in free]
            values += [float(p[c]) for c in free]
    return CellLayout(rows_out, names, np.array(values, dtype=float))
