"""The first stage seen as parameters :math:`\\psi`: the free cells of a nonparametric estimate
(:class:`CellView`, with the exact derivatives of the tables in them) or the free transition
parameters (:func:`first_stage_view`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Panel
from ddc.transitions import Factor, FactoredTransitions, TransitionDerivatives
from estimators.first_stage.cells import _cell_layout, _given_rows
from estimators.first_stage.estimate import TransitionEstimate


@dataclass
class CellView:
    """The nonparametric first stage seen as parameters: the free cells of every estimated row
    (:func:`_cell_parts`).

    Attributes
    ----------
    ts : TransitionEstimate
        The first stage.
    psi : pandas.Series
        The free cells' estimates, named ``variable[given values]->next value``.
    cov : numpy.ndarray
        Their multinomial covariance (block diagonal by row).
    layout : list of tuple
        ``(variable, row, free cells, last cell, position in psi)`` per estimated row
        (:func:`_cell_layout`).
    triple_scores : numpy.ndarray or None
        ``(T + 1, P)``: the transition scores of each distinct observed :math:`(s, a, s')` of
        the panel (:attr:`ddc.panel.Panel.transition_counts`), and a last row of zeros.
    triple : numpy.ndarray or None
        ``(n_rows,)``: each panel row's triple (``T`` for a row without a next state).
    """

    ts: TransitionEstimate
    psi: pd.Series
    cov: np.ndarray
    layout: list
    triple_scores: np.ndarray | None
    triple: np.ndarray | None

    @property
    def model(self) -> Model:
        """The parametric model: transition parameters = the cells, defaults = the
        estimates."""
        ts, layout = self.ts, self.layout
        base = ts.model.transitions()
        by_var = {f.variable: f for f in base.factors}

        def transitions(tp: pd.Series) -> FactoredTransitions:
            x = tp.to_numpy(dtype=float)
            tables = {v: by_var[v].table.reshape(-1, by_var[v].table.shape[-1]).copy()
                      for v in ts.tables}
            for var, r, free, last, start in layout:
                row = tables[var][r]
                row[free] = x[start:start + len(free)]
                row[last] = 1.0 - row[free].sum()
                if np.any(row < 0):
                    raise ValueError(f"cell probabilities of {var} row {r} leave the simplex")
            return FactoredTransitions([
                Factor(f.variable, tables[f.variable].reshape(f.table.shape), given=f.given)
                if f.variable in tables else f for f in base.factors])

        return ts.model.replace(transitions=transitions, transition_params=self.psi,
                                true_params=None)

    def derivatives(self) -> TransitionDerivatives:
        """The derivatives of the transitions in the cells, exact: moving free cell ``c`` of
        row ``r`` by :math:`h` moves the row's last cell by :math:`-h`, so the derivative of the
        factor's table is :math:`e_{r,c} - e_{r,\\mathrm{last}}` (the other factors unchanged);
        compiled for :meth:`ddc.Solution.d2logccp_dtheta_dpsi`."""
        model = self.ts.model
        base = model.transitions()
        by_var = {f.variable: f for f in base.factors}
        first = []
        for var, r, free, last, _start in self.layout:
            shape = by_var[var].table.shape
            for c in free:
                d = np.zeros(shape).reshape(-1, shape[-1])
                d[r, c], d[r, last] = 1.0, -1.0
                first.append([base.compile(model.space, model.n_actions,
                                           tables={var: d.reshape(shape)})])
        return TransitionDerivatives(list(self.psi.index), np.zeros(len(first)), first, None,
                                     model.n_states, model.n_actions)


def _cell_parts(ts: TransitionEstimate, panel: Panel | None) -> CellView:
    """The nonparametric estimate as parameters: the free cells of every estimated row
    (:func:`_cell_layout`), their multinomial covariance and, with a panel, the transition
    scores per distinct observed triple (a row's scores depend on its :math:`(s, a, s')`
    only)."""
    model = ts.model
    layout, names = _cell_layout(ts)
    values, blocks = [], []
    for var, r, free, _, start in layout:
        K = ts.tables[var].shape[-1]
        p = ts.tables[var].reshape(-1, K)[r]
        N = ts.counts[var].reshape(-1, K)[r].sum()
        values += [float(p[c]) for c in free]
        pf = p[free]
        blocks.append((start, (np.diag(pf) - np.outer(pf, pf)) / N))
    P = len(names)
    cov = np.zeros((P, P))
    for start, b in blocks:
        cov[start:start + len(b), start:start + len(b)] = b
    psi = pd.Series(values, index=names, dtype=float)
    per_triple = which = None
    if panel is not None:
        by_var = {f.variable: f for f in model.transitions().factors}
        tc = panel.transition_counts
        rows, inverse = panel.triple_of_row
        per_triple = np.zeros((len(tc.n) + 1, P))
        for var, r, free, last, start in layout:
            at = np.flatnonzero(_given_rows(model, by_var[var], tc.s, tc.a) == r)
            nxt = model.space.code_of(var)[tc.s_next[at]]
            p = ts.tables[var].reshape(-1, by_var[var].table.shape[-1])[r]
            for c, cell in enumerate(free):
                per_triple[at, start + c] = np.where(nxt == cell, 1.0 / p[cell], 0.0) \
                    - np.where(nxt == last, 1.0 / p[last], 0.0)
        which = np.full(panel.nobs, len(tc.n))
        which[rows] = inverse
    return CellView(ts, psi, cov, layout, per_triple, which)


def _cell_view(ts: TransitionEstimate, panel: Panel | None):
    """The nonparametric estimate as parameters (:func:`_cell_parts`): the parametric model
    (transition parameters = cells, defaults = the estimates), the cells, their multinomial
    covariance and the per-row transition scores (``None`` without a panel)."""
    view = _cell_parts(ts, panel)
    scores = None if panel is None else view.triple_scores[view.triple]
    return view.model, view.psi, view.cov, scores


def first_stage_view(ts: TransitionEstimate, panel: Panel | None):
    """The first stage as parameters :math:`\\psi` for a covariance correction: the free
    transition parameters, or the free cells of a nonparametric estimate (:func:`_cell_view`).

    Returns
    -------
    tuple or None
        ``(pmodel, psi, Vpsi, S, what)``: the model with :math:`\\psi` as its transition
        parameters, their values (Series), covariance, per-row transition scores (``None``
        without a panel) and a phrase naming them; ``None`` when nothing was estimated.
    """
    if ts.tables:
        pmodel, psi, Vpsi, S = _cell_view(ts, panel)
        return pmodel, psi, Vpsi, S, f"{len(psi)} estimated transition cells"
    if len(ts.params) and ts.free:
        names = ts.params.index.tolist()
        where = [names.index(n) for n in ts.free]
        S = ts.row_scores[:, where] if panel is not None else None
        # by position (label indexing of a string index costs a tenth of a millisecond)
        return (ts.model, ts.params.iloc[where], ts.cov[np.ix_(where, where)], S,
                f"{len(ts.free)} first-stage transition parameters")
    return None
