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

__all__ = ["DEFAULT_DRAWS", "QUANTILE_METHOD"]

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
