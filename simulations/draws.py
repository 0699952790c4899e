"""Parameter draws and percentile intervals shared by the counterfactual engines.

The one-type engine (:mod:`simulations.counterfactual`) and the mixture engine
(:mod:`simulations.counterfactual_mixture`) draw parameters from the estimates' normal
approximation, check that results belong to the model, and turn draws into percentile intervals
the same way; this module holds those pieces so that neither engine imports the other.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ddc.model import Model, fingerprint_diff

__all__ = ["DEFAULT_DRAWS", "QUANTILE_METHOD", "draw_with_transitions"]

DEFAULT_DRAWS = 200
"""Bootstrap draws by default. With the plotting position :data:`QUANTILE_METHOD`, percentile
intervals of an exactly normal estimate cover 95.0% at 100, 200 and 500 draws (40,000
replications each, Monte Carlo s.e. 0.1 point; docs/counterfactuals.rst); numpy's default
(linear) position covers 93.2%, 94.0% and 94.6%."""

QUANTILE_METHOD = "weibull"
"""Plotting position of the percentile intervals: the :math:`q` quantile of :math:`D` draws is
the order statistic at :math:`q (D + 1)` (Hyndman and Fan's type 6), whose coverage is exact in
expectation for a continuous distribution."""


def _check_fingerprint(model: Model, results) -> None:
    """Refuse results estimated with another model (their fingerprint differs), naming the
    differences; results that record no fingerprint are not checked."""
    fp = getattr(results, "fingerprint", None)
    if callable(fp):
        fp = fp()
    if not fp:
        return
    check = getattr(results, "check_model", None)
    if callable(check):
        check(model)  # estimators.ModelMismatchError naming the differences
        return
    diff = fingerprint_diff(fp, model.fingerprint())
    if diff:
        raise ValueError("the results were estimated with a different model than the one "
                         "given (results vs given): " + "; ".join(diff) + ". Use the model "
                         "the results were estimated with, or re-estimate with this one")


def _draw_params(params: pd.Series, cov: pd.DataFrame, n_draws: int, seed) -> np.ndarray:
    """Parameter draws (D, P) over ``params.index``: the covariance's parameters drawn from the
    normal around the estimate, the others held at their values."""
    names = list(cov.index)
    C = cov.loc[names, names].to_numpy(dtype=float)
    C = 0.5 * (C + C.T)
    if not np.all(np.isfinite(C)):
        raise ValueError("the covariance of the estimates has non-finite entries; intervals "
                         "cannot be drawn (use n_draws=0)")
    w, Q = np.linalg.eigh(C)
    if w.min() < -1e-10 * max(1.0, w.max()):
        raise ValueError(f"the covariance of the estimates is not positive semi-definite "
                         f"(smallest eigenvalue {w.min():.3g}); intervals cannot be drawn")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_draws, len(names)))
    draws_sub = params[names].to_numpy()[None, :] + (z * np.sqrt(np.clip(w, 0, None))) @ Q.T
    out = np.repeat(params.to_numpy()[None, :], n_draws, axis=0)
    pos = [list(params.index).index(n) for n in names]
    out[:, pos] = draws_sub
    return out


def _interval(x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along the last axis (:data:`QUANTILE_METHOD`), NaN where every draw
    is NaN."""
    x = np.asarray(x, dtype=float)
    q = [(1 - level) / 2, (1 + level) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
        lo, hi = np.nanquantile(x, q, axis=-1, method=QUANTILE_METHOD)
    return lo, hi


def _ordered(cols: Iterable[str], with_intervals: bool) -> list[str]:
    out = []
    for c in cols:
        out += [c, f"{c}_lower", f"{c}_upper"] if with_intervals else [c]
    return out


def _params_and_cov(model, results_or_params, cov_type: str | None
                    ) -> tuple[pd.Series, pd.DataFrame | None, str, list[str]]:
    """Point estimate over ``model.param_names``, the covariance of the estimated ones (or
    None), a description of the source, and notes.

    ``model`` is a :class:`ddc.Model` or a :class:`ddc.Mixture` (anything with ``name``,
    ``param_names`` and ``params_series``); results of another model are refused (their
    fingerprint differs)."""
    from estimators.results import EstimationResults, NotAvailableError

    notes: list[str] = []
    if isinstance(results_or_params, EstimationResults):
        res = results_or_params
        _check_fingerprint(model, res)
        given = pd.concat([res.params, res.fixed_params])
        unknown = [n for n in given.index if n not in model.param_names]
        if unknown:
            raise KeyError(f"the results have parameter(s) {unknown} that the model "
                           f"{model.name!r} does not have (its parameters: "
                           f"{model.param_names}); pass the model the results were fitted to")
        try:
            params = model.params_series(given)
        except KeyError as exc:
            raise KeyError(f"the results do not fit the model {model.name!r}: "
                           f"{exc.args[0]}") from None
        source = f"{res.estimator} estimate"
        if res.nobs:
            source += f" ({res.nobs:,} observations"
            source += f", {res.n_units:,} units)" if res.n_units else ")"
        if not res.converged:
            notes.append(f"The {res.estimator} estimation did not converge; the figures are at "
                         "its last iterate.")
            warnings.warn(f"the {res.estimator} results did not converge; the counterfactuals "
                          "use the last iterate", RuntimeWarning, stacklevel=3)
        try:
            cov = res.cov if cov_type is None else res.cov_of(cov_type)
            kind = cov_type or res.cov_type
            source += f"; covariance: {kind}"
        except NotAvailableError as exc:
            cov = None
            notes.append(f"No intervals: the covariance is not available ({exc}).")
        return params, cov, source, notes
    if isinstance(results_or_params, Mapping | pd.Series | np.ndarray | list | tuple):
        return model.params_series(results_or_params), None, "parameters given", notes
    raise TypeError(f"results_or_params must be EstimationResults or parameter values (a "
                    f"pandas Series), got {type(results_or_params).__name__}")


def _first_stage_seed(seed):
    """The transitions' own stream, independent of the utility draws' (``seed`` unchanged for
    those, so the utility draws do not move when the transitions are drawn too)."""
    return None if seed is None else np.random.SeedSequence(seed).spawn(1)[0]


def _first_stage_part(utility: list[str], results, cov: pd.DataFrame, n_draws: int, seed,
                      notes: list[str], draw_transitions: bool):
    """The first stage's part of the draws (:func:`draw_with_transitions`), or ``None``.

    Returns ``None`` (no transition draws: nothing estimated, drawn jointly already, or
    ``draw_transitions=False``; the notes say why where it matters) or ``(first, own, shift)``:
    the transition draws (:class:`estimators.first_stage.FirstStageDraws`), the covariance to
    draw the other parameters from (:math:`V - B V_\\psi B'`, or ``cov`` without a usable
    :math:`B`) and the (D, P) shift :math:`B (\\psi_d - \\hat\\psi)` over ``cov.index``
    (zeros without :math:`B`). ``utility``: the parameters :math:`B` may move.
    """
    from estimators.first_stage import TransitionEstimate, draw_first_stage
    from estimators.results import EstimationResults

    ts = results.extra.get("transitions") if isinstance(results, EstimationResults) else None
    estimated = isinstance(ts, TransitionEstimate) and (bool(ts.tables) or
                                                       bool(len(ts.params) and ts.free))
    if isinstance(results, EstimationResults) and not isinstance(ts, TransitionEstimate):
        notes.append("The results carry no first-stage estimate of the transitions (loaded "
                     "from a file, or built by hand): the intervals hold the transitions at "
                     "the model's and carry the other parameters' uncertainty only.")
    if not estimated:
        return None
    if not ts.tables and any(n in cov.index for n in ts.free):
        return None  # a full-information fit: drawn jointly with the others already
    if not draw_transitions:
        notes.append("Intervals carry the uncertainty of the estimated parameters, not of the "
                     "transitions estimated in the first stage (draw_transitions=False).")
        return None
    first = draw_first_stage(ts, n_draws, _first_stage_seed(seed))
    names = list(cov.index)
    moved = [n for n in names if n in utility]
    B = ts.sensitivity
    joint = B is not None and list(B.columns) == first.names and set(moved) <= set(B.index)
    own, shift = cov, np.zeros((n_draws, len(names)))
    if joint:
        Bu = B.loc[moved, first.names].to_numpy(dtype=float)
        own = cov.copy()
        own.loc[moved, moved] = own.loc[moved, moved].to_numpy() - Bu @ first.cov @ Bu.T
        w = np.linalg.eigvalsh(0.5 * (own.to_numpy() + own.to_numpy().T))
        if w.min() < -1e-8 * max(1.0, abs(w).max()):
            joint, own = False, cov
            notes.append(f"The covariance minus the first stage's part is not positive "
                         f"semi-definite (smallest eigenvalue {w.min():.3g}): the other "
                         "parameters are drawn from the covariance independently of the "
                         "transitions.")
        else:
            shift[:, [names.index(n) for n in moved]] = first.delta @ Bu.T
    if joint:
        how = ("the other parameters move with them through the estimate's sensitivity to "
               "the first stage, theta_d = theta + e_d + B (psi_d - psi), "
               "e_d ~ N(0, V - B V_psi B')")
    else:
        how = ("the other parameters are drawn independently of them (the results record "
               "no sensitivity of the estimate to the first stage)")
        if B is None:
            notes.append("The results record no sensitivity of the estimate to the first "
                         "stage (no first-stage correction of the standard errors), so the "
                         "other parameters' draws do not move with the transitions'.")
    kind = ("Dirichlet draws of each estimated row from its counts" if first.tables is not None
            else "normal draws from the first stage's covariance")
    notes.append(f"Intervals carry the uncertainty of the transitions estimated in the first "
                 f"stage ({first.what}: {kind}); {how}.")
    return first, own, shift


def draw_with_transitions(model: Model, results, params: pd.Series, cov: pd.DataFrame,
                          n_draws: int, seed, notes: list[str], draw_transitions: bool = True):
    """Parameter draws (D, P) over ``params.index`` and draws of the estimated transitions.

    Without a first-stage estimate in the results (parameters given, transitions known, a
    full-information fit whose covariance has the transition parameters already, results
    loaded from a file), or with ``draw_transitions=False``, this is :func:`_draw_params`.
    Otherwise the first stage is drawn from its sampling distribution
    (:func:`estimators.first_stage.draw_first_stage`: Dirichlet draws of the cell-frequency
    rows from their counts, normal draws of transition parameters), and the utility
    parameters move with it: with :math:`B = \\partial\\hat\\theta / \\partial\\psi'` (recorded
    by the first-stage correction of the standard errors) the draws are

    .. math::

        \\theta_d = \\hat\\theta + e_d + B (\\psi_d - \\hat\\psi), \\qquad
        e_d \\sim N(0, V - B V_\\psi B'),

    which has the corrected covariance :math:`V` (Murphy and Topel: for the ``hessian`` kind
    :math:`V - B V_\\psi B' = A^{-1}`, the second stage's own part) and the covariance
    :math:`B V_\\psi` with the transitions of the expansion
    :math:`\\hat\\theta - \\theta \\approx A^{-1} s_\\theta + B (\\hat\\psi - \\psi)`. Without
    :math:`B` the utility parameters are drawn from :math:`V` independently of the
    transitions (said in the notes).

    Returns
    -------
    TH : numpy.ndarray
        (D, P); drawn transition parameters are in their columns.
    first : estimators.first_stage.FirstStageDraws or None
        The transition draws when the first stage estimated tables (solve draw ``d`` with
        ``first.transitions(model.transitions(), d)``), else ``None``.
    """
    part = _first_stage_part(list(model.utility_params), results, cov, n_draws, seed, notes,
                             draw_transitions)
    if part is None:
        return _draw_params(params, cov, n_draws, seed), None
    first, own, shift = part
    TH = _draw_params(params, own, n_draws, seed)
    TH[:, [list(params.index).index(n) for n in cov.index]] += shift
    if first.tables is None:
        TH[:, [list(params.index).index(n) for n in first.names]] = first.values
        return TH, None
    return TH, first
