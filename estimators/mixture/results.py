"""Results of a mixture estimation: the type shares with standard errors, posteriors,
classification diagnostics."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from estimators.results import EstimationResults, NotAvailableError
from estimators.results_file import encode_mixture

__all__ = ["MixtureResults", "TypesNotSeparatedWarning", "classification"]


class TypesNotSeparatedWarning(UserWarning):
    """The estimated types are not well separated (a share near zero, type parameters equal
    within their standard errors, or flat posteriors): fewer types may describe the data as
    well; compare AIC/BIC across ``n_types``."""


def classification(posteriors: np.ndarray) -> dict[str, float]:
    """Classification diagnostics of posterior type probabilities ``(N, K)``.

    Returns
    -------
    dict
        ``entropy``: the mean posterior entropy relative to its maximum,
        :math:`\\frac{1}{N \\log K} \\sum_i -\\sum_k q_{ik} \\log q_{ik}` (0: every unit
        classified with certainty; 1: posteriors equal to the shares of a uniform prior);
        ``share_classified_090``: the share of units whose largest posterior exceeds 0.9;
        ``mean_max_posterior``: the average largest posterior.
    """
    q = np.asarray(posteriors, dtype=float)
    K = q.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=1)
    return {
        "entropy": float(ent.mean() / np.log(K)) if K > 1 else 0.0,
        "share_classified_090": float(np.mean(q.max(axis=1) > 0.9)),
        "mean_max_posterior": float(q.max(axis=1).mean()),
    }


class MixtureResults(EstimationResults):
    """:class:`~estimators.EstimationResults` of a finite mixture of types.

    In addition to everything an :class:`~estimators.EstimationResults` holds (the shares
    ``share[1]``, ... are estimated parameters, with delta-method standard errors from the logit
    parametrisation used in the optimizer), it carries:

    Attributes
    ----------
    n_types : int
    posteriors : pandas.DataFrame
        Units x types: each unit's posterior type probabilities at the estimate,
        :math:`q_{ik} = w_k L_{ik} / \\sum_j w_j L_{ij}`, indexed by unit id. Saved with the
        results (:meth:`save`); results loaded from a file that lacks them raise
        :class:`~estimators.results.NotAvailableError` here.
    classification : dict
        See :func:`classification` (unavailable, like :attr:`posteriors`, when they were not
        saved).
    share_design : numpy.ndarray or None
        With shares that vary over units (``shares_by``, ``share_covariates``): the ``(N, C)``
        share covariates :math:`z_i` of the estimation units (columns ``mix.share_columns``).
    first_states : numpy.ndarray or None
        Each estimation unit's first observed (flat) state.
    transition_mixture : ddc.Mixture
        The mixture with the transitions the estimate was made with: the tables the first stage
        estimated (shared by all types) and, with ``transitions_by_type``, each type's tables
        estimated in the EM. Solve this one to reproduce the estimate; counterfactuals of these
        results use it (``res.model`` is the mixture as given, whose fingerprint the results
        keep). ``res.extra["transitions"]`` is the first stage
        (:class:`estimators.first_stage.TransitionEstimate`).
    type_table_std_errors : list of dict or None
        With type-specific tables estimated: per type, variable -> standard errors of the
        table's cells (same shape as :attr:`type_tables`; zero where not estimated), from the
        joint information (:mod:`estimators.mixture.table_inference`).
    """

    def __init__(self, *, n_types: int, posteriors: pd.DataFrame | None,
                 type_solutions: Sequence | None = None, share_design: np.ndarray | None = None,
                 first_states: np.ndarray | None = None, transition_mixture=None,
                 share_names: Sequence[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.transition_mixture = transition_mixture if transition_mixture is not None \
            else self.model
        self.type_table_std_errors = None
        self.n_types = int(n_types)
        self.share_design = share_design
        self.first_states = first_states
        self._posteriors = posteriors
        self._share_names = None if share_names is None else list(share_names)
        self.type_solutions = list(type_solutions or [])
        self._classification = None if posteriors is None else \
            classification(posteriors.to_numpy())

    @property
    def posteriors(self) -> pd.DataFrame:
        """Units x types posterior type probabilities (see the class docstring)."""
        if self._posteriors is None:
            raise NotAvailableError(
                f"the posteriors of these results were not saved in {self._source or 'the file'}"
                " (it predates saving them); refit, or save the fitted results again, to have "
                "them")
        return self._posteriors

    @property
    def classification(self) -> dict[str, float]:
        """Classification diagnostics of :attr:`posteriors` (:func:`classification`)."""
        self.posteriors  # noqa: B018 - raises the reason when not saved
        return self._classification

    @property
    def share_names(self) -> list[str]:
        """The share parameters: the mixture's ``share_names`` (``share[1]``, ... or the
        logit coefficients of ``shares_by`` / ``share_covariates``), or those the file
        recorded when the results were loaded without the mixture."""
        names = getattr(self.model, "share_names", None)
        if names is None:
            names = self._share_names
        if names is None:  # an older file loaded without the mixture: the mixture's naming
            names = [n for n in self.param_names if n.startswith(("share[", "gamma["))]
        return list(names)

    def _mixture_doc(self) -> dict:
        """The file's ``mixture`` field (:func:`~estimators.results_file.encode_mixture`)."""
        return encode_mixture(self.n_types, self.share_names, self._posteriors)

    @property
    def type_shares(self) -> pd.DataFrame:
        """Type shares with standard errors (of :attr:`cov_type`): columns ``share`` and
        ``std_error``, one row per type; ``share[0] = 1 - sum`` has the delta-method variance
        :math:`\\mathbf{1}' V \\mathbf{1}` of the others' covariance :math:`V`. With shares
        that vary over units (``shares_by``, ``share_covariates``), their average over the
        estimation units, :math:`\\bar w_k = \\frac1N \\sum_i w_k(z_i; \\hat\\gamma)`, with
        delta-method standard errors from the covariance of :math:`\\hat\\gamma`, the units'
        :math:`z_i` (:attr:`share_design`) held fixed."""
        K = self.n_types
        if self.share_design is not None:
            return self._average_shares()
        names = self.share_names
        w = self.params[names].to_numpy() if K > 1 else np.zeros(0)
        shares = np.concatenate([[1.0 - w.sum()], w])
        try:
            V = self.cov.loc[names, names].to_numpy() if K > 1 else np.zeros((0, 0))
            se = np.sqrt(np.concatenate([[V.sum()], np.diag(V)])) if K > 1 else np.zeros(1)
        except Exception as exc:  # noqa: BLE001 - the reason is kept in the note
            warnings.warn(f"no standard errors of the shares: {exc}", stacklevel=2)
            se = np.full(K, np.nan)
        return pd.DataFrame({"share": shares, "std_error": se},
                            index=pd.RangeIndex(K, name="type"))

    def _average_shares(self) -> pd.DataFrame:
        """Average over units of the first-state-dependent shares, with delta-method standard
        errors: :math:`\\bar w_k = \\frac1N \\sum_i w_k(z_i)`,
        :math:`\\partial \\bar w_k / \\partial \\gamma_{lc} = \\frac1N \\sum_i
        w_{ik} (1[k = l] - w_{il}) z_{ic}`."""
        K, Z = self.n_types, self.share_design
        names = self.share_names
        G = self.params[names].to_numpy().reshape(K - 1, Z.shape[1])
        eta = np.column_stack([np.zeros(len(Z)), Z @ G.T])
        w = np.exp(eta - eta.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        D = np.zeros((K, K - 1, Z.shape[1]))
        for k in range(K):
            for m in range(1, K):
                D[k, m - 1] = (w[:, k] * ((k == m) - w[:, m])) @ Z / len(Z)
        D = D.reshape(K, -1)
        try:
            V = self.cov.loc[names, names].to_numpy()
            se = np.sqrt(np.maximum(np.einsum("kp,pq,kq->k", D, V, D), 0.0))
        except Exception as exc:  # noqa: BLE001 - the reason is kept in the warning
            warnings.warn(f"no standard errors of the shares: {exc}", stacklevel=3)
            se = np.full(K, np.nan)
        return pd.DataFrame({"share": w.mean(axis=0), "std_error": se},
                            index=pd.RangeIndex(K, name="type"))

    @property
    def type_tables(self) -> list[dict[str, np.ndarray]]:
        """Each type's estimated tables of the ``transitions_by_type`` variables (variable ->
        table; empty dicts when the transitions are shared)."""
        mix = self.transition_mixture
        return [mix.type_tables(k) for k in range(self.n_types)]

    def type_params(self, k: int) -> pd.Series:
        """Estimated parameters of type ``k`` over the one-type model's parameter names."""
        mix = self.model
        full = pd.concat([self.params, self.fixed_params])
        return mix.type_params(full[mix.param_names], k)

