"""The results object of every estimator: inference chosen at query time, summaries, saving.

An estimator returns an :class:`EstimationResults`. It holds the estimate and the raw ingredients
of inference -- the Hessian :math:`H` of the (pseudo) log-likelihood at the estimate, the
per-row scores :math:`g_i` and the unit of each row -- and computes a covariance of the kind asked
for when it is first asked for, and caches it. The pieces live beside it, one concern each:

* :mod:`estimators.inference` -- the covariance kinds (``"hessian"``, ``"opg"``,
  ``"sandwich"``, ``"cluster"`` and those an estimator precomputed, e.g. ``"murphy_topel"``),
  :class:`NotAvailableError` with the reason a kind is missing, :class:`HessianError` naming the
  parameters that are not separately identified;
* :mod:`estimators.summary` and :mod:`estimators.tables` -- the summary and the one table
  renderer (text, HTML, LaTeX, Markdown, CSV);
* :mod:`estimators.results_file` -- the JSON file (never pickle) that
  :meth:`EstimationResults.save` writes through :mod:`ddc.io` and
  :func:`~estimators.load_results` reads, with the model's fingerprint so that results are
  not used with another model (:class:`ModelMismatchError`).
"""

from __future__ import annotations

import copy
import functools
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri  # normal cdf and quantile: scipy.stats costs 0.5 s

from ddc.io import (
    encode_json,
    write_json,
)
from estimators.inference import (
    BUILTIN_COV_TYPES,
    HessianError,
    HessianWarning,
    Ingredients,
    NotAvailableError,
    covariance,
    join_names,
)
from estimators.results_file import (
    FORMAT_VERSION,
    encode_arrays,
    encode_first_stage,
    encode_results,
    encode_share_units,
)
from estimators.summary import Summary
from estimators.tables import (
    format_number,
    latex_escape,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ddc.model import Model
    from ddc.solver import Solution

__all__ = [
    "FORMAT_VERSION",
    "EstimationResults",
    "HessianError",
    "HessianWarning",
    "ModelMismatchError",
    "NotAvailableError",
    "Summary",
    "format_number",
    "latex_escape",
]


class ModelMismatchError(ValueError):
    """Results are used with a model other than the one they were estimated with.

    Attributes
    ----------
    differences : list of str
        What differs, e.g. ``["beta: 0.95 vs 0.99"]`` (from :func:`ddc.model.fingerprint_diff`).
    """

    def __init__(self, message: str, differences: Sequence[str] = ()):
        super().__init__(message)
        self.differences = list(differences)


def _as_int(value: Any, name: str, *, minimum: int, optional: bool) -> int | None:
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} is required (an integer >= {minimum})")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_series(values: Any, name: str) -> pd.Series:
    if not isinstance(values, pd.Series):
        raise TypeError(f"{name} must be a pandas Series with the parameter names as index, "
                        f"e.g. pd.Series([1.0, 2.0], index=['theta_0', 'RC']); got "
                        f"{type(values).__name__}")
    labels = values.index.tolist()
    bad = [v for v in labels if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must be indexed by parameter names (str); index has {bad[0]!r}")
    if len(set(labels)) != len(labels):
        dup = values.index[values.index.duplicated()].unique().tolist()
        raise ValueError(f"{name} has duplicated parameter names: {dup}")
    if values.dtype == np.float64:  # the common case, without pandas' astype machinery
        return pd.Series(values.to_numpy(copy=True), index=pd.Index(labels, dtype=object))
    try:
        out = values.astype(float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must hold numbers: {exc}") from None
    out.index = pd.Index(labels, dtype=object)
    out.name = None
    return out


def _model_description(model: Any) -> dict[str, Any] | None:
    """What the saved file records about the model: name, parameter names, beta, names, and
    the registry name and options it was built with (:func:`ddc.models.spec_of`), if any."""
    if model is None:
        return None
    desc: dict[str, Any] = {"name": getattr(model, "name", None)}
    names = getattr(model, "param_names", None)
    desc["param_names"] = None if names is None else [str(n) for n in names]
    beta = getattr(model, "beta", None)
    desc["beta"] = None if beta is None else float(beta)
    actions = getattr(model, "actions", None)
    desc["actions"] = None if actions is None else [str(a) for a in actions]
    space = getattr(model, "space", None)
    state_names = getattr(space, "names", None)
    desc["state_variables"] = None if state_names is None else [str(s) for s in state_names]
    from ddc.models import spec_of  # how the model registry built it, to rebuild it from a file

    spec = spec_of(model)
    desc["registry"] = None if spec is None else spec.to_dict()
    by_type = getattr(model, "by_type", None)
    inner = getattr(model, "model", None)
    if by_type is not None and inner is not None:  # a ddc.Mixture: how to rebuild it
        base = spec_of(inner)
        covs = getattr(model, "share_covariates", None) or None
        desc["mixture"] = {
            "n_types": int(model.n_types), "by_type": [str(p) for p in by_type],
            "shares_by": [str(v) for v in getattr(model, "shares_by", ())],
            "transitions_by_type": [str(v) for v in getattr(model, "transitions_by_type", ())],
            "share_covariates": None if covs is None else {
                str(k): None if v is None else list(v) for k, v in covs.items()},
            "registry": None if base is None else base.to_dict()}
    return desc


# ------------------------------------------------------------------------------------- results


class EstimationResults:
    """Results of a structural estimation, with inference chosen at query time.

    Estimators construct it; users query it. Standard errors of every available kind are
    computed on first use from the Hessian :math:`H` of the total (pseudo) log-likelihood at the
    estimate, the per-row score contributions :math:`g_i` (rows of :math:`G`) and the unit of
    each row:

    .. math::

        V_\\text{hessian} = -H^{-1}, \\qquad
        V_\\text{opg} = (G'G)^{-1}, \\qquad
        V_\\text{sandwich} = H^{-1} (G'G) H^{-1}, \\qquad
        V_\\text{cluster} = \\frac{U}{U-1}\\,\\frac{n-1}{n-K}\\; H^{-1}
        \\Big(\\sum_{u=1}^{U} s_u s_u'\\Big) H^{-1},

    where :math:`s_u = \\sum_{i \\in u} g_i` sums the score rows of unit :math:`u`, :math:`U`
    is the number of units, :math:`n` the number of score rows and :math:`K` the number of
    estimated parameters. Kinds precomputed by the estimator (``extra_covs``) are available
    under their own names. z statistics, p-values and confidence intervals use the normal
    distribution.

    Parameters
    ----------
    model : ddc.Model or None
        The model estimated; used for its name and parameter names only.
    estimator : str
        Name of the estimator, e.g. ``"NFXP"``, ``"CCP"``, ``"NPL"``, ``"PQR"``, ``"MaxEntIRL"``.
    params : pandas.Series
        Estimated parameters, indexed by name.
    hessian : numpy.ndarray or None
        :math:`K \\times K` Hessian of the total log-likelihood (or pseudo-likelihood) at
        ``params``, negative definite at a maximum; ``None`` if unavailable. A slightly
        asymmetric (numerical) Hessian is symmetrized, with a warning if the asymmetry exceeds
        ``1e-6`` relative to its largest entry.
    scores : numpy.ndarray or None
        :math:`n \\times K` per-row score contributions (rows: the panel rows used).
    groups : numpy.ndarray or None
        Length-:math:`n` codes (or labels) of the unit of each score row, for clustering.
    loglik : float
        Total log-likelihood (choice and transition parts where estimated).
    loglik_parts : dict of str to float, optional
        Parts of the log-likelihood, e.g. ``{"choice": ..., "transition": ...}``.
    nobs : int
        Number of observations (used by BIC).
    n_units : int, optional
        Number of units (customers, buses).
    converged : bool
        Whether the estimator converged.
    iterations : int, optional
        Iterations of the outer loop.
    function_evals : int, optional
        Evaluations of the objective.
    seconds : float, optional
        Wall-clock time of the fit.
    cov_type : str, default "hessian"
        The kind of covariance used by :attr:`cov`, :attr:`std_errors`, :attr:`tstats`,
        :attr:`pvalues`, :meth:`conf_int` and :meth:`summary` when no kind is given.
    extra_covs : dict of str to array_like, optional
        Covariances precomputed by the estimator, e.g. ``{"murphy_topel": V}``; each
        :math:`K \\times K` (an array in the order of ``params``, or a DataFrame labelled by
        parameter names). A matrix under a built-in name replaces the computed one.
    fixed_params : pandas.Series, optional
        Parameters held fixed (not estimated): reported, marked "(fixed)", no standard error.
    notes : list of str, optional
        Notes printed under the summary (e.g. "transition parameters from a first stage").
    solution : ddc.Solution, optional
        The model solved at the estimate.
    extra : dict, optional
        Free-form estimator-specific information (not shown, not saved).
    df_model : int, optional
        Degrees of freedom of the estimate: the number of directions it was maximized in, used
        by :attr:`aic` and :attr:`bic` (default: the number of estimated parameters; fewer when
        the estimated parameters are held on linear constraints, e.g. probabilities whose sum
        is fixed).

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or shape; the message names it.

    See Also
    --------
    load_results : Read results written by :meth:`save`.
    estimators.compare.compare : Several results side by side.

    Notes
    -----
    The cluster small-sample factor :math:`\\frac{U}{U-1}\\frac{n-1}{n-K}` is statsmodels'
    (``cov_type="cluster"`` with its default ``use_correction=True``, CRV1), so that numbers can
    be checked against it. Stata's ``vce(cluster)`` for maximum likelihood models uses
    :math:`\\frac{U}{U-1}` only; the two differ by :math:`\\frac{n-1}{n-K}`, negligible in
    panels. ``"sandwich"`` has no small-sample factor (statsmodels' ``"HC0"``).

    Whether the Hessian can be inverted is checked on its scale-free version (the information
    matrix scaled to unit diagonal): a smallest eigenvalue below ``1e-10`` is singular and raises
    :class:`HessianError` naming the parameters that load on its eigenvector; below ``1e-6`` a
    :class:`HessianWarning` is given.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> res = EstimationResults(
    ...     model=None, estimator="MLE", params=pd.Series([0.5, -1.0], index=["a", "b"]),
    ...     hessian=-np.array([[4.0, 1.0], [1.0, 2.0]]), scores=None, groups=None,
    ...     loglik=-10.0, nobs=100, converged=True)
    >>> res.std_errors.round(4).tolist()
    [0.5345, 0.7559]
    >>> res.cov_types
    ['hessian']
    """

    def __init__(
        self,
        *,
        model: Model | None,
        estimator: str,
        params: pd.Series,
        hessian: np.ndarray | None,
        scores: np.ndarray | None,
        groups: np.ndarray | None,
        loglik: float,
        loglik_parts: Mapping[str, float] | None = None,
        nobs: int,
        n_units: int | None = None,
        converged: bool,
        iterations: int | None = None,
        function_evals: int | None = None,
        seconds: float | None = None,
        cov_type: str = "hessian",
        extra_covs: Mapping[str, np.ndarray | pd.DataFrame] | None = None,
        fixed_params: pd.Series | None = None,
        notes: Sequence[str] | str | None = None,
        solution: Solution | None = None,
        extra: Mapping[str, Any] | None = None,
        df_model: int | None = None,
    ):
        if not isinstance(estimator, str) or not estimator:
            raise TypeError(f"estimator must be a non-empty string such as 'NFXP', got "
                            f"{estimator!r}")
        self._model = model
        self._estimator = estimator
        self._params = _as_series(params, "params")
        names = list(self._params.index)
        self._names = names
        k = len(names)
        if fixed_params is None:
            self._fixed = pd.Series(dtype=float, index=pd.Index([], dtype=object))
        else:
            self._fixed = _as_series(fixed_params, "fixed_params")
            both = [n for n in self._fixed.index if n in set(names)]
            if both:
                raise ValueError(f"parameters {both} are both estimated (params) and fixed "
                                 "(fixed_params); a parameter is one or the other")

        self._hessian = None if hessian is None else self._check_square(hessian, "hessian")
        if self._hessian is not None:
            h = self._hessian
            asym = np.abs(h - h.T)
            top = float(np.max(np.abs(h))) if h.size else 0.0
            finite = np.isfinite(asym)
            if finite.all() and top > 0 and float(asym.max()) > 1e-6 * top:
                i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
                warnings.warn(
                    f"the Hessian is not symmetric: H[{names[i]}, {names[j]}] = {h[i, j]:.6g} "
                    f"but H[{names[j]}, {names[i]}] = {h[j, i]:.6g}; it is symmetrized as "
                    "(H + H')/2 (a numerical Hessian with too large a step?)",
                    HessianWarning, stacklevel=2)
            if finite.all():
                self._hessian = 0.5 * (h + h.T)

        if scores is None:
            self._scores = None
        else:
            g = np.asarray(scores, dtype=float)
            if g.ndim == 1 and k == 1:
                g = g[:, None]
            if g.ndim != 2 or g.shape[1] != k:
                raise ValueError(f"scores must be an n_rows x {k} array (one column per "
                                 f"estimated parameter {names}); got shape {g.shape}")
            self._scores = g

        self._groups_labels = None
        self._group_codes = None
        self._n_groups = None
        if groups is not None:
            labels = np.asarray(groups)
            if labels.ndim != 1:
                raise ValueError(f"groups must be one-dimensional (the unit of each score row); "
                                 f"got shape {labels.shape}")
            if self._scores is not None and labels.shape[0] != self._scores.shape[0]:
                raise ValueError(f"groups has {labels.shape[0]} entries but scores has "
                                 f"{self._scores.shape[0]} rows; give the unit of each score row")
            codes, n_groups = _group_codes(labels)
            if (codes < 0).any():
                row = int(np.flatnonzero(codes < 0)[0])
                raise ValueError(f"groups has a missing unit at score row {row}; every score row "
                                 "needs the code of its unit")
            self._groups_labels = labels
            self._group_codes = codes.astype(np.intp, copy=False)
            self._n_groups = n_groups

        try:
            self._loglik = float(loglik)
        except (TypeError, ValueError):
            raise TypeError(f"loglik must be a number, got {loglik!r}") from None
        self._loglik_parts = {}
        for key, value in dict(loglik_parts or {}).items():
            if not isinstance(key, str):
                raise TypeError(f"loglik_parts keys must be strings, got {key!r}")
            try:
                self._loglik_parts[key] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"loglik_parts[{key!r}] must be a number, got {value!r}") from None
        self._nobs = _as_int(nobs, "nobs", minimum=1, optional=False)
        self._n_units = _as_int(n_units, "n_units", minimum=1, optional=True)
        if not isinstance(converged, (bool, np.bool_)):
            raise TypeError(f"converged must be True or False, got {converged!r}")
        self._converged = bool(converged)
        self._iterations = _as_int(iterations, "iterations", minimum=0, optional=True)
        self._function_evals = _as_int(function_evals, "function_evals", minimum=0,
                                       optional=True)
        self._seconds = None if seconds is None else float(seconds)
        self._df_model = k if df_model is None else _as_int(df_model, "df_model", minimum=0,
                                                             optional=False)
        if self._df_model > k:
            raise ValueError(f"df_model is {self._df_model} but there are only {k} estimated "
                             f"parameters {names}; it counts the directions they moved in")

        self._stored_covs: dict[str, np.ndarray] = {}
        for kind, mat in dict(extra_covs or {}).items():
            if not isinstance(kind, str) or not kind:
                raise TypeError(f"extra_covs keys must be non-empty strings, got {kind!r}")
            self._stored_covs[kind] = self._check_square(mat, f"extra_covs[{kind!r}]")

        if not isinstance(cov_type, str):
            raise TypeError(f"cov_type must be a string, got {cov_type!r}")
        self._check_kind(cov_type)
        self._cov_type = cov_type

        if notes is None:
            self._notes = []
        elif isinstance(notes, str):
            self._notes = [notes]
        else:
            self._notes = [str(n) for n in notes]
        self._solution = solution
        self._extra = dict(extra or {})
        self._cov_cache: dict[str, pd.DataFrame] = {}
        self._cov_warnings: dict[str, list[str]] = {}
        # set by load_results: the model described in the file, and why kinds were unavailable
        self._model_info: dict[str, Any] | None = _model_description(model)
        self._fingerprint: dict[str, Any] | None = None  # computed from the model when asked
        self._unavailable: dict[str, str] = {}
        self._source: str | None = None

    # ------------------------------------------------------------------ construction helpers
    def _check_square(self, mat: Any, what: str) -> np.ndarray:
        k = len(self._names)
        if isinstance(mat, pd.DataFrame):
            labels_ok = (set(mat.index) == set(self._names)
                         and set(mat.columns) == set(self._names))
            if not labels_ok:
                raise ValueError(f"{what} is labelled {list(mat.index)} x {list(mat.columns)}; "
                                 f"it must be labelled by the estimated parameters {self._names}")
            mat = mat.loc[self._names, self._names].to_numpy(dtype=float)
        arr = np.asarray(mat, dtype=float)
        if arr.shape != (k, k):
            raise ValueError(f"{what} has shape {arr.shape} but there are {k} estimated "
                             f"parameters {self._names}; it must be {k} x {k} in that order")
        return arr.copy()

    def _check_kind(self, kind: str) -> None:
        known = self._known_kinds()
        if kind not in known:
            raise ValueError(f"unknown covariance kind {kind!r}; accepted: "
                             + ", ".join(repr(k) for k in known))

    def _known_kinds(self) -> list[str]:
        kinds = list(BUILTIN_COV_TYPES)
        for k in list(self._stored_covs) + list(getattr(self, "_unavailable", {})):
            if k not in kinds:
                kinds.append(k)
        return kinds

    # ------------------------------------------------------------------ covariance kinds
    def _compute_cov(self, kind: str) -> np.ndarray:
        if self._source is not None and kind not in self._stored_covs:
            why = self._unavailable.get(kind, "it was not saved")
            raise NotAvailableError(
                f"No {kind!r} covariance in the results loaded from {self._source}: per-row "
                f"scores are not saved, and it was not available when the results were saved: "
                f"{why}")
        self._check_kind(kind)
        return covariance(kind, Ingredients(
            names=self._names, hessian=self._hessian, scores=self._scores,
            group_codes=self._group_codes, n_groups=self._n_groups,
            precomputed=self._stored_covs))

    def cov_of(self, kind: str) -> pd.DataFrame:
        """Covariance matrix of the estimated parameters, of the kind asked for.

        Computed on first request and cached.

        Parameters
        ----------
        kind : str
            ``"hessian"``, ``"opg"``, ``"sandwich"``, ``"cluster"`` or a kind the estimator
            precomputed (see :attr:`cov_types`).

        Returns
        -------
        pandas.DataFrame
            :math:`K \\times K`, labelled by the parameter names.

        Raises
        ------
        ValueError
            If ``kind`` is not a known kind (the message lists them).
        NotAvailableError
            If the kind cannot be computed from these results (the message says why).
        HessianError
            If the Hessian or the outer product of the scores is singular or indefinite (the
            message names the parameters involved).
        """
        if not isinstance(kind, str):
            raise TypeError(f"a covariance kind is a string, got {kind!r}")
        if kind not in self._cov_cache:
            self._check_kind(kind)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", HessianWarning)
                mat = np.asarray(self._compute_cov(kind), dtype=float)
            messages = []
            for w in caught:  # re-emit, and keep HessianWarnings for the summary
                if issubclass(w.category, HessianWarning):
                    messages.append(str(w.message))
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            bad = ~np.isfinite(mat)
            if bad.any():
                i, j = (int(v) for v in np.argwhere(bad)[0])
                raise NotAvailableError(f"the {kind!r} covariance has non-finite entries, e.g. at "
                                        f"({self._names[i]}, {self._names[j]})")
            neg = np.flatnonzero(np.diag(mat) < 0)
            if neg.size:
                who = [self._names[i] for i in neg]
                raise NotAvailableError(f"the {kind!r} covariance has negative variances for "
                                        f"{join_names(who)}; it is not a covariance matrix")
            self._cov_warnings[kind] = messages
            self._cov_cache[kind] = pd.DataFrame(mat, index=pd.Index(self._names, dtype=object),
                                                 columns=pd.Index(self._names, dtype=object))
        return self._cov_cache[kind].copy()

    def std_errors_of(self, kind: str) -> pd.Series:
        """Standard errors of the kind asked for: square roots of the covariance's diagonal.

        Parameters
        ----------
        kind : str
            A covariance kind (see :meth:`cov_of`).

        Returns
        -------
        pandas.Series
            Indexed by parameter name.
        """
        cov = self.cov_of(kind)
        return pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=cov.index, name="std_error")

    def _tstats_of(self, kind: str) -> pd.Series:
        se = self.std_errors_of(kind)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = self._params.to_numpy() / se.to_numpy()
        return pd.Series(t, index=se.index, name="tstat")

    def _pvalues_of(self, kind: str) -> pd.Series:
        t = self._tstats_of(kind)
        return pd.Series(2.0 * ndtr(-np.abs(t.to_numpy())), index=t.index,
                         name="pvalue")

    @property
    def cov_types(self) -> list[str]:
        """The covariance kinds available from these results (computing them if needed)."""
        out = []
        for kind in self._known_kinds():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", HessianWarning)
                    self.cov_of(kind)
            except NotAvailableError:
                continue
            out.append(kind)
        return out

    @property
    def cov_type(self) -> str:
        """The default covariance kind of :attr:`cov`, :attr:`std_errors` and the summary."""
        return self._cov_type

    def with_cov_type(self, kind: str) -> EstimationResults:
        """A copy whose default covariance kind is ``kind``.

        The copy shares the data and the cache of computed covariances.

        Parameters
        ----------
        kind : str
            A covariance kind (see :attr:`cov_types`).

        Returns
        -------
        EstimationResults
            The copy.

        Raises
        ------
        NotAvailableError
            If the kind cannot be computed (checked now).
        """
        self.cov_of(kind)
        new = copy.copy(self)
        for name in ("cov", "std_errors", "tstats", "pvalues"):
            new.__dict__.pop(name, None)
        new._cov_type = kind
        return new

    # ------------------------------------------------------------------ labelled outputs
    @property
    def params(self) -> pd.Series:
        """Estimated parameters, indexed by name."""
        return self._params.rename("estimate")

    @property
    def fixed_params(self) -> pd.Series:
        """Parameters held fixed (not estimated), indexed by name; empty if none."""
        return self._fixed.rename("fixed")

    @property
    def param_names(self) -> list[str]:
        """Names of the estimated parameters, in order."""
        return list(self._names)

    @property
    def n_params(self) -> int:
        """Number of estimated parameters :math:`K` (fixed ones not counted)."""
        return len(self._names)

    @functools.cached_property
    def cov(self) -> pd.DataFrame:
        """Covariance of the estimates, of the default kind (:attr:`cov_type`)."""
        return self.cov_of(self._cov_type)

    @functools.cached_property
    def std_errors(self) -> pd.Series:
        """Standard errors of the default kind, indexed by parameter name."""
        return self.std_errors_of(self._cov_type)

    @functools.cached_property
    def tstats(self) -> pd.Series:
        """z statistics :math:`\\hat\\theta_k / \\mathrm{se}_k` (default covariance kind)."""
        return self._tstats_of(self._cov_type)

    @functools.cached_property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values :math:`2\\,(1 - \\Phi(|z_k|))` (default covariance kind)."""
        return self._pvalues_of(self._cov_type)

    def conf_int(self, level: float = 0.95, cov_type: str | None = None) -> pd.DataFrame:
        """Normal confidence intervals :math:`\\hat\\theta_k \\pm z_{(1+\\text{level})/2}\\,
        \\mathrm{se}_k`.

        Parameters
        ----------
        level : float, default 0.95
            Coverage, in (0, 1).
        cov_type : str, optional
            Covariance kind; the default kind if not given.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper``, indexed by parameter name.
        """
        level = float(level)
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level}")
        se = self.std_errors_of(self._cov_type if cov_type is None else cov_type)
        q = ndtri(1.0 - (1.0 - level) / 2.0)
        est = self._params.to_numpy()
        return pd.DataFrame({"lower": est - q * se.to_numpy(), "upper": est + q * se.to_numpy()},
                            index=se.index)

    # ------------------------------------------------------------------ fit statistics
    @property
    def estimator(self) -> str:
        """Name of the estimator."""
        return self._estimator

    @property
    def model(self) -> Model | None:
        """The model estimated (``None`` for loaded results)."""
        return self._model

    @property
    def model_name(self) -> str | None:
        """Name of the model (also known for loaded results)."""
        if self._model_info is None:
            return None
        name = self._model_info.get("name")
        return None if name is None else str(name)

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The fingerprint of the model estimated (:meth:`ddc.Model.fingerprint`): name,
        discount factor, states, actions, parameter names and digests of the specification.

        Saved with the results and read back by :func:`~estimators.load_results`, which
        compares it with the model given; ``None`` if the model has no fingerprint (or the file
        recorded none).
        Compare two with :func:`ddc.model.fingerprint_diff`.
        """
        if self._fingerprint is None and self._model is not None:
            make = getattr(self._model, "fingerprint", None)
            if callable(make):
                self._fingerprint = encode_json(make())
        return None if self._fingerprint is None else copy.deepcopy(self._fingerprint)

    def check_model(self, model: Model) -> None:
        """Raise if ``model`` is not the model these results were estimated with.

        Parameters
        ----------
        model : ddc.Model
            The model the results are about to be used with.

        Raises
        ------
        ModelMismatchError
            If its fingerprint differs from the results'; the message lists the differences
            (e.g. ``beta: 0.95 vs 0.99``).
        ValueError
            If these results record no fingerprint, so the check cannot be made.
        """
        from ddc.model import fingerprint_diff

        mine = self.fingerprint
        if mine is None:
            raise ValueError(f"{self._source or 'these results'} record no model fingerprint "
                             "(saved by an older version of ddc-econ, or estimated without a "
                             "model), so the model cannot be checked; re-estimate to use them "
                             "with a model")
        given = encode_json(model.fingerprint())
        diff = fingerprint_diff(mine, given)
        if diff:
            where = self._source or "the results"
            raise ModelMismatchError(
                f"{where} were estimated with a different model than the one given ("
                f"results vs given): {'; '.join(diff)}. Use the model the results were "
                "estimated with, or re-estimate with this one", diff)

    @property
    def model_info(self) -> dict[str, Any] | None:
        """What is recorded about the model: name, param_names, beta, actions, state_variables,
        and ``registry``: ``{"name": ..., "options": {...}}`` when the model was built by
        :func:`ddc.models.get_model` (``None`` otherwise), to rebuild it."""
        return None if self._model_info is None else copy.deepcopy(self._model_info)

    @property
    def solution(self) -> Solution | None:
        """The model solved at the estimate, if the estimator kept it."""
        return self._solution

    @property
    def loglik(self) -> float:
        """Total log-likelihood at the estimate."""
        return self._loglik

    @property
    def loglik_parts(self) -> dict[str, float]:
        """Parts of the log-likelihood (e.g. ``choice``, ``transition``); may be empty."""
        return dict(self._loglik_parts)

    @property
    def nobs(self) -> int:
        """Number of observations."""
        return self._nobs

    @property
    def n_units(self) -> int | None:
        """Number of units (customers, buses), if recorded."""
        return self._n_units

    @property
    def converged(self) -> bool:
        """Whether the estimator converged."""
        return self._converged

    @property
    def convergence(self):
        """The convergence checks (:class:`estimators.convergence.Convergence`: optimizer, finite,
        gradient, hessian, and what failed), or ``None`` when the estimator did not record
        them."""
        return self._extra.get("convergence")

    @property
    def iterations(self) -> int | None:
        """Iterations of the estimator's outer loop, if recorded."""
        return self._iterations

    @property
    def function_evals(self) -> int | None:
        """Evaluations of the objective, if recorded."""
        return self._function_evals

    @property
    def seconds(self) -> float | None:
        """Wall-clock seconds of the fit, if recorded."""
        return self._seconds

    @property
    def df_model(self) -> int:
        """Degrees of freedom of the estimate :math:`K`: the number of estimated parameters, or
        fewer when they were held on linear constraints (the directions they moved in)."""
        return self._df_model

    @property
    def aic(self) -> float:
        """Akaike information criterion :math:`-2\\ell + 2K`, :math:`K` = :attr:`df_model`."""
        return -2.0 * self._loglik + 2.0 * self._df_model

    @property
    def bic(self) -> float:
        """Bayesian information criterion :math:`-2\\ell + K \\log(\\text{nobs})`,
        :math:`K` = :attr:`df_model`."""
        return -2.0 * self._loglik + self._df_model * math.log(self._nobs)

    @property
    def notes(self) -> list[str]:
        """Notes recorded by the estimator."""
        return list(self._notes)

    @property
    def extra(self) -> dict[str, Any]:
        """Free-form estimator-specific information."""
        return self._extra

    @property
    def hessian(self) -> np.ndarray | None:
        """The Hessian of the log-likelihood at the estimate (a copy), if recorded."""
        return None if self._hessian is None else self._hessian.copy()

    @property
    def scores(self) -> np.ndarray | None:
        """The per-row scores (``n_rows x K``), if recorded."""
        return self._scores

    @property
    def groups(self) -> np.ndarray | None:
        """The unit of each score row, as given, if recorded."""
        return self._groups_labels

    # ------------------------------------------------------------------ tables
    def to_frame(self, cov_type: str | None = None, level: float = 0.95) -> pd.DataFrame:
        """The coefficient table as a DataFrame.

        Parameters
        ----------
        cov_type : str, optional
            Covariance kind; the default kind if not given.
        level : float, default 0.95
            Coverage of the ``lower``/``upper`` interval.

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter name, with columns ``estimate``, ``std_error``, ``tstat``,
            ``pvalue``, ``lower``, ``upper`` and ``fixed`` (bool). Fixed parameters come last,
            with NaN inference.
        """
        kind = self._cov_type if cov_type is None else cov_type
        ci = self.conf_int(level, kind)
        est = pd.DataFrame({
            "estimate": self._params,
            "std_error": self.std_errors_of(kind),
            "tstat": self._tstats_of(kind),
            "pvalue": self._pvalues_of(kind),
            "lower": ci["lower"],
            "upper": ci["upper"],
            "fixed": False,
        }, index=pd.Index(self._names, dtype=object))
        if len(self._fixed):
            fixed = pd.DataFrame({"estimate": self._fixed, "fixed": True},
                                 index=pd.Index(list(self._fixed.index), dtype=object))
            est = pd.concat([est, fixed.reindex(columns=est.columns)], axis=0)
            est["fixed"] = est["fixed"].astype(bool)
        est.index.name = "parameter"
        return est

    def summary(self, cov_type: str | None = None) -> Summary:
        """A summary of the estimation: header, coefficient table, notes.

        Parameters
        ----------
        cov_type : str, optional
            Covariance kind; the default kind if not given. If it is not available the table
            shows no standard errors and a note says why.

        Returns
        -------
        Summary
            Printable (``str``), with ``as_text()``, ``as_html()`` and ``as_latex()``.
        """
        return Summary(self, cov_type=self._cov_type if cov_type is None else cov_type)

    def to_latex(self, cov_type: str | None = None) -> str:
        """The summary as a LaTeX booktabs table (``summary(cov_type).as_latex()``).

        Parameters
        ----------
        cov_type : str, optional
            Covariance kind; the default kind if not given.

        Returns
        -------
        str
            LaTeX source; needs ``\\usepackage{booktabs}``.
        """
        return self.summary(cov_type).as_latex()

    def __repr__(self) -> str:
        model = f", model={self.model_name!r}" if self.model_name is not None else ""
        return (f"<EstimationResults {self._estimator}{model}: {self.n_params} parameters, "
                f"loglik={self._loglik:.6g}, nobs={self._nobs}, converged={self._converged}, "
                f"cov_type={self._cov_type!r}>")

    def __str__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        """Everything :meth:`save` writes, as JSON-ready plain Python.

        Every available covariance kind is computed and included; the reasons why the others
        are unavailable are recorded. Per-row scores, the solution and ``extra`` are not
        included.

        Returns
        -------
        dict
            The document written by :meth:`save`.
        """
        covs: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        for kind in self._known_kinds():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", HessianWarning)
                    covs[kind] = self.cov_of(kind).to_numpy()
            except NotAvailableError as exc:
                unavailable[kind] = self._unavailable.get(kind, str(exc))
        return encode_results({
            "estimator": self._estimator,
            "model": self._model_info,
            "model_fingerprint": self.fingerprint,
            "params": {"names": list(self._names),
                       "values": self._params.to_numpy()},
            "fixed_params": {"names": [str(n) for n in self._fixed.index],
                             "values": self._fixed.to_numpy()},
            "cov_type": self._cov_type,
            "covariances": covs,
            "unavailable_covariances": unavailable,
            "hessian": self._hessian,
            "loglik": self._loglik,
            "loglik_parts": dict(self._loglik_parts),
            "nobs": self._nobs,
            "df_model": self._df_model,
            "n_units": self._n_units,
            "n_groups": self._n_groups,
            "converged": self._converged,
            "iterations": self._iterations,
            "function_evals": self._function_evals,
            "seconds": self._seconds,
            "notes": list(self._notes),
            "first_stage": encode_first_stage(self._extra.get("transitions")),
            "type_tables": self._type_tables_doc(),
            "share_units": self._share_units_doc(),
            "mixture": self._mixture_doc(),
        })

    def _mixture_doc(self) -> dict | None:
        """A mixture's types, share names and posteriors for the file (``None`` here; see
        :class:`estimators.mixture.MixtureResults`)."""
        return None

    def _share_units_doc(self) -> dict | None:
        """With a mixture's shares varying over units, the units' share covariates and first
        states (distinct pairs with counts), which pooling counterfactuals needs; else
        ``None``."""
        design = getattr(self, "share_design", None)
        if design is None:
            return None
        columns = getattr(self.model, "share_columns", None) or \
            getattr(self, "share_columns", None) or \
            [f"z{c}" for c in range(np.shape(design)[1])]
        return encode_share_units(design, getattr(self, "first_states", None), columns)

    def _type_tables_doc(self) -> list | None:
        """A mixture's type-specific tables estimated in the EM, for the file (``None``
        without)."""
        tables = getattr(self, "type_tables", None)
        if not tables or not any(tables):
            return None
        return [encode_arrays(t) for t in tables]

    def save(self, path: str | os.PathLike) -> Path:
        """Save the results as JSON, completely or not at all.

        The file holds the parameters (estimated and fixed), every available covariance matrix
        with its kind (and why the others are unavailable), the Hessian, the log-likelihood and
        its parts, nobs, n_units, convergence, iterations, time, the estimator, a description of
        the model (name, parameter names, beta, actions, state variables) and its
        :attr:`fingerprint`, the notes and a format version, and the first stage's estimate
        (``extra["transitions"]``: estimated tables with their counts, transition parameters
        with their covariance, the estimate's sensitivity to them), which
        :func:`~estimators.load_results` attaches when given the model; for a mixture whose
        shares vary over units, the units' share covariates and first states (distinct pairs
        with counts, :func:`~estimators.results_file.encode_share_units`), which pooled
        counterfactuals need; for a mixture its number of types, share names and the units'
        posteriors (:func:`~estimators.results_file.encode_mixture`). Per-row scores, the
        solution and the rest of ``extra`` are not saved. The file is written through
        :func:`ddc.io.write_json`: a temporary file in the same folder renamed over ``path``, so
        an interrupted save leaves no partial file; non-finite numbers are the strings
        ``"nan"``, ``"inf"``, ``"-inf"``.

        Parameters
        ----------
        path : str or os.PathLike
            Destination, conventionally ``*.json``. Its folder must exist.

        Returns
        -------
        pathlib.Path
            ``path``.

        See Also
        --------
        load_results : Read the file back.
        """
        return write_json(path, self.to_dict())


def _group_codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes ``0 .. n_groups - 1`` of the group labels in order of first appearance (-1 where
    missing), as ``pd.factorize`` gives them, and the number of groups. Integer labels already
    in ascending order (a panel's unit codes, sorted by unit) are coded without hashing."""
    if labels.size and np.issubdtype(labels.dtype, np.integer):
        change = labels[1:] != labels[:-1]
        if bool(np.all(labels[1:] >= labels[:-1])):
            starts = np.r_[0, np.flatnonzero(change) + 1]
            codes = np.repeat(np.arange(starts.size, dtype=np.intp),
                              np.diff(np.r_[starts, labels.size]))
            return codes, starts.size
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    return codes, len(uniques)
