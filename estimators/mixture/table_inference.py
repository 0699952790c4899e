"""Standard errors of a mixture whose types have their own transition tables.

With ``transitions_by_type`` the estimate is the joint maximum of the mixture log-likelihood in
the internal parameters :math:`x` (utility parameters and share logits) and the free cells
:math:`\\phi = (\\phi_1, \\dots, \\phi_K)` of the types' tables (EM and the alternation of
:class:`~estimators.mixture.nfxp.MixtureNFXP`). Its covariance is the inverse of the joint
information, not the :math:`x` block alone: here the joint Hessian is formed by central
differences of the analytic joint gradient. (The parameters-only case has an analytic Hessian,
:meth:`~estimators.mixture.likelihood.MixtureLikelihood.hessian`; the joint one would in
addition need the second derivatives of the log CCPs in the cells and the posterior
covariance of the cell scores with their transition part; not done: this path's cost is in the
differences over the many cells, each an evaluation of every type.)

Unit :math:`i`'s score in type :math:`k`'s cells is

.. math::

    \\frac{\\partial \\ell_i}{\\partial \\phi_k} = q_{ik} \\Big( \\sum_{s,a} n_i(s,a)
    \\frac{\\partial \\log\\pi_k(a \\mid s)}{\\partial \\phi_k}
    + \\sum_{g,x'} C_i[g, x'] \\frac{\\partial \\log f_k(x' \\mid g)}{\\partial \\phi_k} \\Big),

the first term from the implicit function theorem at type :math:`k`'s fixed point (the tables
enter the value function; :meth:`ddc.Solution.dlogccp_dparams`), the second direct
(:math:`1/f` at the cell, :math:`-1/f` at its row's reference cell). In each estimated row the
free cells are the positive ones but the largest (the reference, one minus the others), as in
the one-type first stage (:func:`estimators.first_stage.first_stage_view`); cells estimated at
zero stay on the boundary with zero variance.

Factors shared by all types and estimated in the first stage (cells :math:`\\psi`) are
accounted for by Murphy and Topel's correction (:func:`estimators.first_stage.murphy_topel`)
on top: :math:`A` is minus the joint Hessian in :math:`(x, \\phi)`, :math:`C` its cross
derivative in :math:`\\psi` (the same differences of the joint gradient), :math:`V_\\psi` the
first stage's multinomial covariance and the scores the units' first-stage scores.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ddc.model import Model
from ddc.transitions import Factor, FactoredTransitions, TransitionDerivatives
from estimators.first_stage import _cell_view, murphy_topel
from estimators.first_stage.cells import CellLayout, cell_layout
from estimators.inference import group_sums
from estimators.likelihood import ChoiceLikelihood
from estimators.mixture.likelihood import logsumexp

__all__ = ["CellLayout", "JointScores", "cell_layout", "cell_model", "joint_scores",
           "joint_table_covariances"]


def cell_model(model: Model, tables: dict[str, np.ndarray], layouts: list[CellLayout]) -> Model:
    """``model`` with transitions ``tables`` (by variable; others the model's) whose free cells
    in ``layouts`` are its transition parameters, in the layouts' order."""
    transitions = cell_transitions(model, tables, layouts)
    names = [n for lay in layouts for n in lay.names]
    values = np.concatenate([lay.values for lay in layouts]) if layouts else np.zeros(0)
    return model.replace(transitions=transitions,
                         transition_params=pd.Series(values, index=names, dtype=float),
                         true_params=None)


def cell_transitions(model: Model, tables: dict[str, np.ndarray], layouts: list[CellLayout]):
    """The transition function of :func:`cell_model`: cells (a Series or vector in the
    layouts' order) -> :class:`ddc.FactoredTransitions`."""
    base = model.transitions()
    offsets = np.cumsum([0] + [len(lay.names) for lay in layouts])

    def transitions(tp) -> FactoredTransitions:
        x = tp.to_numpy(dtype=float) if isinstance(tp, pd.Series) else np.asarray(tp, float)
        flat = {v: np.asarray(t, float).reshape(-1, t.shape[-1]).copy()
                for v, t in tables.items()}
        for off, lay in zip(offsets, layouts, strict=False):
            for var, r, free, last, start in lay.rows:
                row = flat[var][r]
                row[free] = x[off + start:off + start + len(free)]
                row[last] = 1.0 - row[free].sum()
                if np.any(row < 0):
                    raise ValueError(f"cell probabilities of {var} row {r} leave the simplex")
        return FactoredTransitions([
            Factor(f.variable, flat[f.variable].reshape(f.table.shape), given=f.given)
            if f.variable in flat else f for f in base.factors])

    return transitions


def cell_derivatives(model: Model, transitions: FactoredTransitions, layouts: list[CellLayout]
                     ) -> TransitionDerivatives:
    """:math:`\\partial P / \\partial` each free cell, exact (the tables are linear in their
    cells): the factor's table replaced by :math:`+1` at the cell and :math:`-1` at its row's
    reference cell, the other factors at ``transitions`` (the product rule)."""
    shapes = {f.variable: f.table.shape for f in transitions.factors}
    first, names = [], []
    for lay in layouts:
        for var, r, free, last, start in lay.rows:
            for j, c in enumerate(free):
                d = np.zeros(shapes[var])
                flat = d.reshape(-1, shapes[var][-1])
                flat[r, c], flat[r, last] = 1.0, -1.0
                first.append([transitions.compile(model.space, model.n_actions,
                                                  tables={var: d})])
                names.append(lay.names[start + j])
    return TransitionDerivatives(names, np.ones(len(names)), first, None, model.n_states,
                                 model.n_actions)


def _log_table_derivative(type_trans, tables: dict[str, np.ndarray], lay: CellLayout
                          ) -> sp.csr_matrix:
    """``(cells, m)`` derivative of the flat :math:`\\log f` (the matrix's cell order) in the
    free cells: :math:`1/f` at a free cell, :math:`-1/f` at its row's reference cell."""
    offsets = dict(zip([f.variable for f in type_trans.factors], type_trans.offsets,
                       strict=True))
    rows, cols, vals = [], [], []
    for var, r, free, last, start in lay.rows:
        t = np.asarray(tables[var], float)
        width = t.shape[-1]
        p = t.reshape(-1, width)[r]
        base = offsets[var] + r * width
        for j, c in enumerate(free):
            rows += [base + c, base + last]
            cols += [start + j, start + j]
            vals += [1.0 / p[c], -1.0 / p[last]]
    return sp.csr_matrix((vals, (rows, cols)), shape=(type_trans.n_cells, len(lay.names)))


@dataclasses.dataclass
class JointScores:
    """The joint parametrisation of a fit with type tables: ``z = (x, phi_0, ..., phi_{K-1},
    psi)`` (internal parameters, each type's free cells, the shared first-stage cells) at the
    estimate ``z0``; ``evaluate(z)`` gives the mixture log-likelihood and its ``(N, len(z))``
    per-unit scores (``(-inf, None)`` where a fixed point fails or a row leaves the
    simplex)."""

    z0: np.ndarray
    evaluate: object
    tables_at: object
    n_x: int
    phi_offsets: np.ndarray
    layouts: list
    psi_layout: CellLayout
    Vpsi: np.ndarray
    S_rows: np.ndarray | None

    def scores(self, z: np.ndarray) -> np.ndarray | None:
        """Per-unit scores at ``z``."""
        return self.evaluate(z)[1]

    def tables(self, z: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Each type's tables of the by-type variables at ``z``."""
        off = self.phi_offsets
        return [self.tables_at(k, z[off[k]:off[k + 1]]) for k in range(len(self.layouts))]


def joint_scores(ml, x: np.ndarray, ts, panel) -> JointScores:
    """Build the joint parametrisation and its analytic per-unit scores (module docstring)."""
    mix, tt = ml.mix, ml.type_trans
    model = mix.model
    K = mix.n_types
    typed = list(mix.transitions_by_type)
    # shared first-stage cells psi (the factors not by type)
    shared_tables = {v: t for v, t in ts.tables.items() if v not in typed}
    if shared_tables:
        ts_shared = dataclasses.replace(ts, tables=shared_tables,
                                        counts={v: ts.counts[v] for v in shared_tables})
        _, psi, Vpsi, S_rows = _cell_view(ts_shared, panel)
        lay_psi = cell_layout(model, shared_tables, ts_shared.counts)
        assert lay_psi.names == list(psi.index)
    else:
        lay_psi, Vpsi, S_rows = CellLayout([], [], np.zeros(0)), np.zeros((0, 0)), None
    W = tt.weighted_counts(ml.evaluate(x, False).posteriors)
    lays = [cell_layout(model, ml.tables[k], W[k], tag=f"type {k}: ") for k in range(K)]
    all_tables = {f.variable: f.table for f in ml.mix.model.transitions().factors}
    models, liks, fns, dtrans = [], [], [], {}
    for k in range(K):
        tables_k = {**all_tables, **ml.tables[k]}
        chosen = {v: tables_k[v] for v in [*shared_tables, *typed]}
        pm = cell_model(model, chosen, [lay_psi, lays[k]])
        fns.append(cell_transitions(model, chosen, [lay_psi, lays[k]]))
        models.append(pm)
        liks.append(ChoiceLikelihood(pm, np.zeros((model.n_states, model.n_actions)),
                                     ml.solver))
    Pu = len(model.utility_params)
    nx, m_psi = len(x), len(lay_psi.names)
    m_phi = [len(lay.names) for lay in lays]
    phi_off = nx + np.cumsum([0] + m_phi)
    n_a = int(phi_off[-1])
    nz = n_a + m_psi
    z0 = np.concatenate([x, *[lay.values for lay in lays], lay_psi.values])
    B, T = ml.counts.matrix, tt.matrix

    def tables_at(k: int, phi: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for var in typed:
            t = np.asarray(ml.tables[k][var], float)
            flat = t.reshape(-1, t.shape[-1]).copy()
            out[var] = flat
        for var, r, free, last, start in lays[k].rows:
            flat = out[var]
            flat[r, free] = phi[start:start + len(free)]
            flat[r, last] = 1.0 - flat[r, free].sum()
        return {v: out[v].reshape(ml.tables[k][v].shape) for v in typed}

    def evaluate(z: np.ndarray) -> tuple[float, np.ndarray | None]:
        xz, psi_z = z[:nx], z[n_a:]
        lik_cols, dpi = [], []
        for k in range(K):
            phi_k = z[phi_off[k]:phi_off[k + 1]]
            util = ml.type_vector(xz, k)[:Pu]
            vec = np.concatenate([util, psi_z, phi_k])
            tab = tables_at(k, phi_k)
            if any(np.any(t < 0) for t in tab.values()):
                return -np.inf, None
            try:
                sol = liks[k].solve(vec)
            except ValueError:  # a shared cell outside the simplex
                return -np.inf, None
            if not sol.converged:
                return -np.inf, None
            names = list(models[k].transition_params.index)
            # exact derivatives of the tables (product rule: each term has the other factors'
            # tables at the point, so they move with the cells of the other factors)
            key = (k, psi_z.tobytes(), phi_k.tobytes())
            if key not in dtrans:
                if len(dtrans) > 4 * K:
                    dtrans.clear()
                dtrans[key] = cell_derivatives(
                    model, fns[k](np.concatenate([psi_z, phi_k])), [lay_psi, lays[k]])
            d = sol.dlogccp_dparams(names, dtrans[key])
            lp = liks[k].log_pi(sol)
            lf = tt.flat_log(tab)
            lik_cols.append(B @ np.where(np.isfinite(lp), lp, 0.0).ravel() + T @ lf)
            dpi.append((d, _log_table_derivative(tt, tab, lays[k])))
        L = np.column_stack(lik_cols)
        w = ml.unit_weights(xz)
        with np.errstate(divide="ignore"):
            M = L + np.log(w)
        Li = logsumexp(M, axis=1)
        ll = float(Li.sum())
        if not np.isfinite(ll):
            return -np.inf, None
        q = np.exp(M - Li[:, None])
        G = np.zeros((ml.counts.n_units, nz))
        SA = model.n_states * model.n_actions
        for k, (d, Dk) in enumerate(dpi):
            Bd = B @ d.reshape(SA, -1)  # (N, Pu + m_psi + m_phi_k)
            G[:, :len(ml.struct)] += (q[:, k:k + 1] * Bd[:, :Pu]) @ ml.maps[k]
            G[:, n_a:] += q[:, k:k + 1] * Bd[:, Pu:Pu + m_psi]
            G[:, phi_off[k]:phi_off[k + 1]] = q[:, k:k + 1] * (
                Bd[:, Pu + m_psi:] + np.asarray((T @ Dk).todense()))
        if K > 1:
            G[:, len(ml.struct):nx] = ml.share_scores(q, w)
        return ll, G

    return JointScores(z0, evaluate, tables_at, nx, phi_off, lays, lay_psi, Vpsi, S_rows)


def joint_table_covariances(ml, x: np.ndarray, ts, panel, J: np.ndarray):
    """Covariances of the reported parameters and of the type tables' cells from the joint
    information (module docstring).

    Parameters
    ----------
    ml : estimators.mixture.likelihood.MixtureLikelihood
        The likelihood at the estimate, holding the type tables (``ml.tables``).
    x : numpy.ndarray
        The internal estimate.
    ts : estimators.first_stage.TransitionEstimate
        The first stage (its shared estimated tables are corrected for).
    panel : ddc.panel.Panel
        The coded panel (first-stage scores by unit).
    J : numpy.ndarray
        :math:`\\partial(\\theta, w) / \\partial x`, internal to reported parameters.

    Returns
    -------
    covs : dict
        Covariance of the reported parameters by kind (``hessian``, ``opg``, ``sandwich``,
        ``cluster``).
    table_se : list of dict
        Per type, variable -> standard errors of the table's cells (the ``hessian`` kind;
        zero where not estimated).
    notes : list of str
    """
    js = joint_scores(ml, x, ts, panel)
    mix = ml.mix
    typed = list(mix.transitions_by_type)
    z0, scores, nx, phi_off = js.z0, js.scores, js.n_x, js.phi_offsets
    lays, Vpsi, S_rows = js.layouts, js.Vpsi, js.S_rows
    m_psi = len(js.psi_layout.names)
    m_phi = [len(lay.names) for lay in lays]
    n_a = int(phi_off[-1])
    nz = n_a + m_psi
    G0 = scores(z0)
    if G0 is None:
        raise RuntimeError("a type's fixed point failed at the estimate; no joint information")
    H = np.empty((nz, nz))
    for j in range(nz):
        h = (1e-5 if j < nx else 1e-6) * max(1.0, abs(z0[j]))
        if j >= nx:
            h = min(h, 0.5 * z0[j])
        up, dn = z0.copy(), z0.copy()
        up[j] += h
        dn[j] -= h
        g_up, g_dn = scores(up), scores(dn)
        if g_up is None or g_dn is None:
            raise RuntimeError(f"the joint likelihood is not finite near the estimate in "
                               f"coordinate {j}; no joint information")
        H[:, j] = (g_up.sum(axis=0) - g_dn.sum(axis=0)) / (2 * h)
    H = 0.5 * (H + H.T)
    # to the reported parameters (shares as probabilities); the cells as they are
    Jbig = np.eye(n_a)
    Jbig[:nx, :nx] = J
    Jinv = np.linalg.inv(Jbig)
    Ha = Jinv.T @ H[:n_a, :n_a] @ Jinv
    C = Jinv.T @ H[:n_a, n_a:]
    Ga = G0[:, :n_a] @ Jinv
    N = ml.counts.n_units
    S = group_sums(panel.unit, S_rows, N) if m_psi else np.zeros((N, 0))
    full = murphy_topel(Ha, Ga, np.arange(N), C, Vpsi, S)
    covs = {kind: V[:nx, :nx] for kind, V in full.items()}
    Vphi = full["hessian"][nx:, nx:]
    table_se = []
    for k, lay in enumerate(lays):
        off = phi_off[k] - nx
        Vk = Vphi[off:off + m_phi[k], off:off + m_phi[k]]
        se = {v: np.zeros_like(np.asarray(ml.tables[k][v], float)) for v in typed}
        for var, r, free, last, start in lay.rows:
            flat = se[var].reshape(-1, se[var].shape[-1])
            idx = list(range(start, start + len(free)))
            block = Vk[np.ix_(idx, idx)]
            flat[r, free] = np.sqrt(np.clip(np.diag(block), 0, None))
            flat[r, last] = np.sqrt(max(float(block.sum()), 0.0))
        table_se.append(se)
    notes = [f"standard errors from the joint information of the parameters and the "
             f"{sum(m_phi)} free cells of the types' tables of {typed}"
             + (f", corrected for the {m_psi} first-stage cells of the shared tables "
                "(Murphy-Topel)" if m_psi else "")]
    return covs, table_se, notes
