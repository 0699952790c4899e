"""The first-stage correction for estimators that are not likelihood maximizers (CCP, PQR):
the delta method over re-estimation (or the estimator's own derivative)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from estimators.first_stage.cell_view import CellView, _cell_parts
from estimators.first_stage.covariance_correction import MAX_CORRECTED
from estimators.first_stage.transition_likelihood import _simplex


def reestimation_covariances(estimator, prep, fit, inf) -> tuple[dict[str, np.ndarray],
                                                                   list[str]]:
    """First-stage correction for an estimator that is not a likelihood maximizer (CCP, PQR):
    the delta method over re-estimation.

    With :math:`\\hat\\theta(\\psi)` the estimator's estimate on the same choice data when the
    first-stage parameters :math:`\\psi` (free transition parameters, or the free cells of a
    nonparametric estimate) are moved, :math:`D = \\partial\\hat\\theta/\\partial\\psi'` --
    from the estimator's own ``_estimate_jacobian(prep, fit, dtrans)`` when it has one (CCP:
    the implicit function theorem on its first-order condition, given the derivatives
    ``dtrans`` of the transitions), else by central differences (two re-estimations per
    parameter) -- and

    .. math:: V = V_{own} + D V_\\psi D',

    for every covariance kind the estimator offers; the two terms are independent to first
    order, the choice and transition parts being separate factors of the likelihood.

    Records :math:`D` as ``prep.transitions.sensitivity``.

    Records :math:`D` as ``prep.transitions.sensitivity``.

    Returns
    -------
    covs : dict
        Corrected covariances by kind (the built-in kinds and the estimator's own), to pass as
        ``extra_covs``; empty when nothing was estimated.
    notes : list of str
    """
    from estimators.inference import Ingredients, NotAvailableError, covariance

    ts = prep.transitions
    util = list(ts.model.utility_params)
    if ts.tables:
        view = _cell_parts(ts, None)
        psi, Vpsi = view.psi, view.cov
        what = f"{len(psi)} estimated transition cells"
    elif len(ts.params) and ts.free:
        view, psi = None, ts.params[ts.free]
        where = [list(ts.params.index).index(n) for n in ts.free]
        Vpsi = ts.cov[np.ix_(where, where)]
        what = f"{len(psi)} first-stage transition parameters"
    else:
        return {}, []
    if len(psi) > MAX_CORRECTED:
        return {}, [f"standard errors do not account for the {what} (more than "
                    f"{MAX_CORRECTED}: the correction is not computed)"]
    jacobian = getattr(estimator, "_estimate_jacobian", None)
    if jacobian is not None:  # the estimator differentiates its own estimate
        from ddc.solver import transition_derivatives

        base = prep.params.copy()
        base[util] = fit.params[util]
        dtrans = view.derivatives() if ts.tables else \
            transition_derivatives(ts.model, base, list(psi.index))
        D = jacobian(prep, fit, dtrans)
        how = "its derivative in them by the implicit function theorem"
    else:
        D = _reestimated_jacobian(estimator, prep, fit, view, psi, util)
        how = f"{2 * len(psi)} re-estimations"
    ts.sensitivity = pd.DataFrame(D, index=util, columns=list(psi.index))
    add = D @ Vpsi @ D.T
    groups = inf.groups
    ing = Ingredients(names=inf.names, hessian=inf.hessian, scores=inf.scores,
                      group_codes=None if groups is None else np.asarray(groups),
                      n_groups=None if groups is None else int(np.max(groups)) + 1,
                      precomputed=dict(inf.extra_covs or {}), score_kinds=inf.score_kinds)
    covs = {}
    for kind in ("hessian", "opg", "sandwich", "cluster", *(inf.extra_covs or {})):
        try:
            covs[kind] = covariance(kind, ing) + add
        except (NotAvailableError, ValueError, np.linalg.LinAlgError):
            continue
    return covs, [f"standard errors account for the {what} (delta method, {how})"]


def _reestimated_jacobian(estimator, prep, fit, view: CellView | None, psi: pd.Series,
                          util: list[str], names: list[str] | None = None) -> np.ndarray:
    """:math:`\\partial\\hat\\theta / \\partial\\psi'` by central differences: two
    re-estimations per first-stage parameter (the columns of ``names``, all by default)."""
    import dataclasses

    ts = prep.transitions
    pmodel = view.model if ts.tables else ts.model
    names = list(psi.index) if names is None else list(names)
    D = np.zeros((len(util), len(names)))
    for k, name in enumerate(names):
        h = 1e-6 * max(1.0, abs(psi[name]))
        if ts.tables or name in {n for g in _simplex(ts.model) for n in g}:
            h = min(h, 0.5 * psi[name])
        thetas = []
        for sign in (1.0, -1.0):
            moved = psi.copy()
            moved[name] += sign * h
            if ts.tables:  # the cells are the parameters of the moved model
                model_k = pmodel.replace(transition_params=moved)
                base = model_k.params_series(fit.params[util].to_numpy())
                prep_k = dataclasses.replace(prep, params=base, transitions=dataclasses.replace(
                    ts, model=model_k))
            else:
                prep_k = prep
                base = prep.params.copy()
                base[moved.index] = moved
                base[util] = fit.params[util]
            thetas.append(estimator._estimate(prep_k, base).params[util].to_numpy())
        D[:, k] = (thetas[0] - thetas[1]) / (2 * h)
    return D
