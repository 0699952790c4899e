"""Type-specific transition tables of a mixture (``ddc.Mixture(..., transitions_by_type=...)``).

For the by-type factors :math:`f_k(x' \\mid g)` (``g``: the factor's conditioning cell, its
given state variables and the action), unit :math:`i`'s observed transitions give counts
:math:`C_i[g, x']` (a sparse ``units x cells`` matrix, all by-type factors side by side, built
once). Type :math:`k`'s transition log-likelihood of unit :math:`i` is then one sparse product,

.. math:: \\ell^{tr}_{ik} = \\sum_{j, g, x'} C_{ij}[g, x'] \\log f_{jk}(x' \\mid g),

which the mixture likelihood adds to the type's choice log-likelihood before the posteriors are
formed. EM's M-step for the tables is closed form: the posterior-weighted cell frequencies

.. math:: f_{jk}(x' \\mid g) = \\frac{\\sum_i q_{ik} C_{ij}[g, x']}
          {\\sum_i q_{ik} \\sum_{y} C_{ij}[g, y]},

in every row the model declares random (more than one positive cell) and that some unit visits
with positive weight; other rows keep their current values, structural zeros stay zero.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ddc.mixture import Mixture
from ddc.panel import Panel
from estimators.first_stage import _given_rows

__all__ = ["TypeTransitions"]


class TypeTransitions:
    """Per-unit counts of the by-type factors' transitions, their log-likelihood and M-step.

    Parameters
    ----------
    mix : ddc.Mixture
        A mixture with ``transitions_by_type``.
    panel : ddc.panel.Panel
        The coded panel (its units in the order of the mixture likelihood's units).
    """

    def __init__(self, mix: Mixture, panel: Panel):
        model = mix.model
        self.variables = list(mix.transitions_by_type)
        self.factors = [f for f in model.transitions().factors if f.variable in self.variables]
        has = panel.next_state >= 0
        s, a, sn = panel.state[has], panel.action[has], panel.next_state[has]
        unit = panel.unit[has]
        cols, self.offsets, off = [], [], 0
        for f in self.factors:
            width = f.table.shape[-1]
            rows = _given_rows(model, f, s, a)
            cols.append(off + rows * width + model.space.code_of(f.variable)[sn])
            self.offsets.append(off)
            off += f.table.size
        self.n_cells = off
        col = np.concatenate(cols)
        row = np.tile(unit, len(self.factors))
        B = sp.csr_matrix((np.ones(col.size), (row, col)), shape=(panel.n_units, off))
        B.sum_duplicates()
        self.matrix = B
        self._BT = B.T.tocsr()
        # rows each factor declares random (more than one positive cell)
        self.random = [((f.table > 0).sum(axis=-1) > 1).reshape(-1) for f in self.factors]

    def flat_log(self, tables: dict[str, np.ndarray]) -> np.ndarray:
        """:math:`\\log f` of one type's tables, flat in the matrix's cell order (``-inf`` at
        zeros)."""
        with np.errstate(divide="ignore"):
            return np.concatenate([np.log(np.asarray(tables[f.variable], float)).ravel()
                                   for f in self.factors])

    def unit_loglik(self, tables: list[dict[str, np.ndarray]]) -> np.ndarray:
        """``(N, K)`` transition log-likelihoods :math:`\\ell^{tr}_{ik}` of the types' tables."""
        return np.column_stack([self.matrix @ self.flat_log(t) for t in tables])

    def weighted_counts(self, q: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Per type, the posterior-weighted counts :math:`\\sum_i q_{ik} C_i` of every factor
        in its table's shape."""
        out = []
        for k in range(q.shape[1]):
            w = self._BT @ q[:, k]
            out.append({f.variable: w[o:o + f.table.size].reshape(f.table.shape)
                        for f, o in zip(self.factors, self.offsets, strict=True)})
        return out

    def m_step(self, q: np.ndarray, current: list[dict[str, np.ndarray]]
               ) -> list[dict[str, np.ndarray]]:
        """EM's M-step: the posterior-weighted cell frequencies (module docstring); rows with
        no weight keep ``current``."""
        out = []
        for Wk, cur in zip(self.weighted_counts(q), current, strict=True):
            new = {}
            for f, random in zip(self.factors, self.random, strict=True):
                width = f.table.shape[-1]
                W = Wk[f.variable].reshape(-1, width)
                tot = W.sum(axis=1)
                est = random & (tot > 0)
                t = np.asarray(cur[f.variable], float).reshape(-1, width).copy()
                t[est] = W[est] / tot[est, None]
                new[f.variable] = t.reshape(f.table.shape)
            out.append(new)
        return out

    @staticmethod
    def change(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> float:
        """Largest absolute difference between two sets of type tables."""
        return max((float(np.max(np.abs(x[v] - y[v]))) for x, y in zip(a, b, strict=True)
                    for v in x), default=0.0)

    def other_loglik(self, model, panel: Panel) -> float:
        """Transition log-likelihood of the factors that are *not* by type (shared by all
        types; they factor out of the mixture) under ``model``'s tables."""
        tc = panel.transition_counts
        if len(tc.n) == 0:
            return 0.0
        total = 0.0
        with np.errstate(divide="ignore"):
            for f in model.transitions().factors:
                if f.variable in self.variables:
                    continue
                width = f.table.shape[-1]
                rows = _given_rows(model, f, tc.s, tc.a)
                p = f.table.reshape(-1, width)[rows, model.space.code_of(f.variable)[tc.s_next]]
                total += float(np.sum(tc.n * np.log(p)))
        return total
