"""Murphy-Topel covariances of the utility parameters that account for the first stage: the
cross derivative, the rows by kind, and the corrected covariance kinds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.panel import Panel
from estimators.first_stage.cell_view import CellView, _cell_parts, first_stage_view
from estimators.first_stage.estimate import TransitionEstimate


@dataclass
class _RowKinds:
    """The rows of a panel by kind: ``key[i]`` is row ``i``'s kind, and a per-row quantity that
    depends on the kind only is a table with a row per kind (:func:`_row_kinds`)."""

    key: np.ndarray
    count: np.ndarray
    choice: np.ndarray
    corrected: np.ndarray

    def outer(self, table: np.ndarray) -> np.ndarray:
        """:math:`\\sum_i x_i x_i'` over the panel's rows, :math:`x_i` = the row's ``table``
        row."""
        return (table * self.count[:, None]).T @ table

    def group_sums(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """Within-group sums of the corrected scores (``n_groups x K``)."""
        from estimators._kernels import keyed_group_sums

        out = np.zeros((n_groups, self.corrected.shape[1]))
        keyed_group_sums(np.ascontiguousarray(groups, dtype=np.int64), self.key,
                         np.ascontiguousarray(self.corrected), out)
        return out


def _row_kinds(view: CellView, panel: Panel, cell_scores: np.ndarray, used: np.ndarray | None,
               CV: np.ndarray) -> _RowKinds:
    """The kinds of the panel's rows for the Murphy-Topel scores: a row with a next state is of
    the kind of its triple :math:`(s, a, s')` (``0 .. T-1``), a unit's last row of the kind of
    its cell :math:`(s, a)` (``T + s A + a``), and rows outside the choice sample (``used``
    false) of the same kinds shifted by ``T + S A``, their choice score being zero. ``choice``
    holds the choice scores :math:`s_\\theta` by kind, ``corrected`` the corrected scores
    :math:`s_\\theta + C V_\\psi s_\\psi`."""
    S, A, K = cell_scores.shape
    tc = panel.transition_counts
    T = len(tc.n)
    n_kinds = T + S * A
    triple = view.triple
    key = np.where(triple < T, triple, T + panel.state * A + panel.action)
    if used is not None and not used.all():
        key[~used] += n_kinds
    by_cell = np.ascontiguousarray(cell_scores, dtype=np.float64).reshape(S * A, K)
    choice = np.zeros((2 * n_kinds, K))
    choice[:T] = by_cell[tc.s * A + tc.a]
    choice[T:n_kinds] = by_cell
    corrected = choice.copy()
    trans = view.triple_scores[:T] @ CV.T
    corrected[:T] += trans
    corrected[n_kinds:n_kinds + T] += trans
    count = np.bincount(key, minlength=2 * n_kinds).astype(np.float64)
    return _RowKinds(key.astype(np.int64, copy=False), count, choice, corrected)


#: Largest number of first-stage parameters the covariance correction handles.
MAX_CORRECTED = 2_000


def first_stage_covariances(ts: TransitionEstimate, counts: np.ndarray, solver, params: pd.Series,
                            hessian: np.ndarray, scores: np.ndarray | None,
                            groups: np.ndarray | None, panel: Panel | None,
                            solution=None, cell_scores: np.ndarray | None = None,
                            used: np.ndarray | None = None
                            ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Covariances of the utility parameters that account for the first stage (Murphy and
    Topel 1985).

    With :math:`A = -\\partial^2 \\ell_c / \\partial\\theta\\partial\\theta'`,
    :math:`C = \\partial^2 \\ell_c / \\partial\\theta \\partial\\psi' = \\sum_{s,a} n(s,a)\\,
    \\partial^2 \\log\\pi(a \\mid s) / \\partial\\theta\\partial\\psi'` in the first-stage
    parameters :math:`\\psi` (the free transition parameters, or the free cells of a
    nonparametric estimate), analytic by the second-order implicit function theorem
    (:meth:`ddc.Solution.d2logccp_dtheta_dpsi`: one solve of the factorized policy system,
    no fixed point solved again), :math:`V_\\psi` the first stage's covariance and
    :math:`s_{\\psi i}` its per-row scores, the estimate expands as
    :math:`\\hat\\theta - \\theta \\approx A^{-1} \\sum_i (s_{\\theta i} + C V_\\psi s_{\\psi i})`,
    the two stages' scores being uncorrelated (they are the choice and transition parts of one
    likelihood). So

    * ``"hessian"``: :math:`A^{-1} + A^{-1} C V_\\psi C' A^{-1}`;
    * ``"opg"``, ``"sandwich"``, ``"cluster"``: the usual formulas with the corrected scores
      :math:`\\tilde s_i = s_{\\theta i} + C V_\\psi s_{\\psi i}` (``"opg"`` as
      :math:`B^{-1} \\tilde G'\\tilde G B^{-1}`, :math:`B = G'G`).

    Records :math:`B = A^{-1} C` (:math:`\\partial\\hat\\theta / \\partial\\psi'`) as
    ``ts.sensitivity``.

    Parameters
    ----------
    ts : TransitionEstimate
        The first stage.
    counts : numpy.ndarray
        The choice counts :math:`n(s, a)`.
    solver : ddc.Solver
        Solves the model when ``solution`` is not given.
    params : pandas.Series
        All parameters at the estimate.
    hessian : numpy.ndarray
        Hessian of the choice log-likelihood in the utility parameters.
    scores : numpy.ndarray or None
        Per-row choice scores :math:`s_{\\theta i}` (``n_rows x K``; ``None``: the
        ``"hessian"`` kind only).
    groups : numpy.ndarray or None
        The unit of each row (``"cluster"``).
    panel : ddc.panel.Panel or None
        The coded panel (transition scores).
    solution : ddc.Solution, optional
        The solution at ``params`` of ``ts.model`` (solved here when not given).
    cell_scores, used : numpy.ndarray, optional
        The choice scores by state and action (S, A, K) and the mask of the panel's rows in the
        choice sample, of which ``scores`` is the per-row form: given with a nonparametric
        first stage, every product and group sum runs over the kinds of rows (a row's
        corrected score depends on its state, action, next state and whether it is in the
        choice sample only), not over the rows.

    Returns
    -------
    covs : dict
        Corrected covariances by kind (empty when nothing was estimated); pass them as the
        results' ``extra_covs`` (they replace the uncorrected built-in kinds).
    notes : list of str
    """
    from estimators.likelihood import ChoiceLikelihood

    kinds = None
    if ts.tables:
        view = _cell_parts(ts, panel)
        psi, Vpsi, what = view.psi, view.cov, f"{len(view.psi)} estimated transition cells"
        S = None
        if panel is not None and scores is not None:
            if cell_scores is not None:  # by kinds of rows: no (rows x P) arrays

                def kinds(CV):
                    return _row_kinds(view, panel, cell_scores, used, CV)
            else:
                S = view.triple_scores[view.triple]
    else:
        got = first_stage_view(ts, panel)
        if got is None:
            return {}, []
        _, psi, Vpsi, S, what = got
    if len(psi) > MAX_CORRECTED:
        return {}, [f"standard errors do not account for the {what} (more than "
                    f"{MAX_CORRECTED}: the correction is not computed)"]
    sol = solution
    if sol is None:
        sol = ChoiceLikelihood(ts.model, counts, solver).solve(params)
    if not sol.converged or not np.all(np.isfinite(sol.V)):
        raise RuntimeError("the fixed point did not converge at the estimate; cannot correct "
                           "the standard errors for the first stage")
    dtrans = view.derivatives() if ts.tables else \
        sol.transition_derivatives(list(psi.index))
    C = np.einsum("sa,saij->ij", counts, sol.d2logccp_dtheta_dpsi(dtrans))
    covs = murphy_topel(hessian, scores, groups, C, Vpsi, S, kinds)
    util = list(ts.model.utility_params)
    ts.sensitivity = pd.DataFrame(np.linalg.solve(-np.asarray(hessian), C), index=util,
                                  columns=list(psi.index))
    return covs, [f"standard errors account for the {what} (Murphy-Topel)"]


def first_stage_cross_derivative(grad, full: pd.Series, names, cells: bool, n_out: int
                                 ) -> np.ndarray:
    """:math:`C = \\partial g / \\partial \\psi'` by central differences of the gradient
    ``grad(params)`` (a vector of length ``n_out``) in the entries ``names`` of ``full``, step
    :math:`10^{-6}\\max(1, |\\psi_j|)` (at most half a cell probability)."""
    C = np.zeros((n_out, len(names)))
    for k, name in enumerate(names):
        h = 1e-6 * max(1.0, abs(full[name]))
        if cells:
            h = min(h, 0.5 * full[name])
        up, dn = full.copy(), full.copy()
        up[name] += h
        dn[name] -= h
        g_up, g_dn = grad(up), grad(dn)
        if g_up is None or g_dn is None:
            raise RuntimeError(f"the choice likelihood is not finite near the first-stage "
                               f"estimate in {name}; cannot correct the standard errors")
        C[:, k] = (g_up - g_dn) / (2 * h)
    return C


def murphy_topel(hessian: np.ndarray, scores: np.ndarray | None, groups: np.ndarray | None,
                 C: np.ndarray, Vpsi: np.ndarray, S: np.ndarray | None,
                 kinds: Callable[[np.ndarray], _RowKinds] | None = None
                 ) -> dict[str, np.ndarray]:
    """Murphy-Topel covariances from the Hessian :math:`H = -A`, the scores :math:`G` (rows
    grouped by ``groups``), the cross derivative :math:`C`, the first stage's covariance
    :math:`V_\\psi` and its scores :math:`S` on the same rows (see
    :func:`first_stage_covariances`). Instead of ``S``, ``kinds(C V_psi)`` may give the rows by
    kind (:func:`_row_kinds`): the products and group sums then run over the kinds."""
    from estimators.inference import group_sums

    A = -np.asarray(hessian)
    Ainv = np.linalg.inv(A)
    CV = C @ Vpsi
    covs = {"hessian": Ainv + Ainv @ CV @ C.T @ Ainv}
    if scores is not None and (S is not None or kinds is not None):
        if kinds is not None:
            rk = kinds(CV)
            n = rk.key.size
            GG, GtGt = rk.outer(rk.choice), rk.outer(rk.corrected)

            def sums_by_group(n_groups):
                return rk.group_sums(groups, n_groups)
        else:
            G = np.asarray(scores)
            Gt = G + S @ CV.T
            n = Gt.shape[0]
            GG, GtGt = G.T @ G, Gt.T @ Gt

            def sums_by_group(n_groups):
                return group_sums(groups, Gt, n_groups)
        Binv = np.linalg.inv(GG)
        covs["opg"] = Binv @ GtGt @ Binv
        covs["sandwich"] = Ainv @ GtGt @ Ainv
        if groups is not None:
            k = GG.shape[0]
            n_groups = int(np.max(groups)) + 1
            if n_groups >= 2 and n > k:
                sums = sums_by_group(n_groups)
                factor = n_groups / (n_groups - 1.0) * (n - 1.0) / (n - k)
                covs["cluster"] = factor * (Ainv @ (sums.T @ sums) @ Ainv)
    return {kind: 0.5 * (v + v.T) for kind, v in covs.items()}
