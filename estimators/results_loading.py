"""Reading results files back: :func:`load_results`.

:meth:`estimators.EstimationResults.save` writes the files (format in
:mod:`estimators.results_file`). A file that holds a mixture comes back as
:class:`estimators.mixture.MixtureResults`; the loader sits above both result classes, so that
the one-type results module does not import the mixture's, which builds on it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ddc.io import read_json
from estimators.inference import HessianWarning
from estimators.mixture.results import MixtureResults
from estimators.results import EstimationResults
from estimators.results_file import decode_results

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ddc.model import Model

__all__ = ["load_results"]


def load_results(path: str | os.PathLike, model: Model | None = None) -> EstimationResults:
    """Read results saved by :meth:`EstimationResults.save`.

    The loaded results support everything the saved ones did, except computing covariance kinds
    that need the per-row scores: the kinds available when the file was saved are read from
    their saved matrices; the others raise :class:`NotAvailableError` with the reason recorded.
    ``solution`` is ``None``, and ``model`` too unless given (and checked);
    :attr:`EstimationResults.fingerprint`, :attr:`EstimationResults.model_name` and
    :attr:`EstimationResults.model_info` describe the model.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON file written by :meth:`EstimationResults.save`.
    model : ddc.Model or ddc.Mixture, optional
        The model the results belong to. Its fingerprint is compared with the one saved and
        the results refer to it (:attr:`EstimationResults.model`); the saved first stage
        becomes ``extra["transitions"]`` (its ``model`` holds the estimated tables; for a
        mixture also ``transition_mixture``, with the type-specific tables the EM estimated),
        so that counterfactuals solve with the estimated transitions and draw them. Without
        it ``model`` is ``None`` and nothing is checked.

    Returns
    -------
    EstimationResults
        The results; a mixture's are :class:`~estimators.mixture.MixtureResults` (type shares
        with standard errors, posteriors and classification as saved).

    Raises
    ------
    ValueError
        If the file is not a results file of a supported format version; the message names the
        file and the field at fault (:class:`ddc.io.JSONFieldError` for a bad value, e.g. a
        ``null`` parameter).
    ModelMismatchError
        If ``model`` differs from the model the results were estimated with; the message names
        the differences (e.g. ``beta: 0.95 vs 0.99``).
    """
    path = Path(path)
    where = repr(str(path))
    saved = decode_results(read_json(path, what="JSON results file"), where)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HessianWarning)
        # the default kind is set below, once the unavailable kinds are known
        if saved.mixture is None:
            res = EstimationResults(model=None, scores=None, groups=None, cov_type="hessian",
                                    **saved.arguments)
        else:
            res = MixtureResults(model=None, scores=None, groups=None, cov_type="hessian",
                                 n_types=saved.mixture["n_types"],
                                 posteriors=saved.mixture["posteriors"],
                                 share_names=saved.mixture["share_names"], **saved.arguments)
    res._model_info = saved.model_info
    res._fingerprint = saved.fingerprint
    res._unavailable = {kind: why for kind, why in saved.unavailable.items()
                        if kind not in res._stored_covs}
    res._n_groups = saved.n_groups
    res._source = where
    if saved.cov_type not in res._known_kinds():
        raise ValueError(f"{where} has cov_type {saved.cov_type!r}, which is neither saved nor "
                         "recorded as unavailable; the file is inconsistent")
    res._cov_type = saved.cov_type
    if model is not None:
        res.check_model(model)
        res._model = model
        if saved.mixture is not None:
            n_types = getattr(model, "n_types", None)
            if n_types != saved.mixture["n_types"]:
                raise ValueError(f"{where} has mixture.n_types {saved.mixture['n_types']}; the "
                                 f"model has {n_types}")
            res.transition_mixture = model
        if saved.first_stage is not None:
            _attach_first_stage(res, saved.first_stage, model, where)
        if saved.type_tables is not None and getattr(model, "transitions_by_type", None):
            if len(saved.type_tables) != model.n_types:
                raise ValueError(f"{where} has type tables for {len(saved.type_tables)} types; "
                                 f"the mixture has {model.n_types}")
            est = getattr(res, "transition_mixture", None) or model
            res.transition_mixture = est.with_transitions(type_transitions=saved.type_tables)
    if saved.share_units is not None:
        _attach_share_units(res, saved.share_units, model, where)
    return res


def _attach_share_units(res: EstimationResults, units: dict, model, where: str) -> None:
    """The saved estimation units' share covariates as ``res.share_design`` and
    ``res.first_states`` (as a fitted mixture's results hold them), checked against the
    mixture's share columns when it is given."""
    columns = getattr(model, "share_columns", None) if model is not None else None
    if columns is not None and list(columns) != units["columns"]:
        raise ValueError(f"{where}: share_units.columns {units['columns']} differ from the "
                         f"mixture's share columns {list(columns)}; the file was edited or "
                         "belongs to another mixture")
    n_units = res.n_units
    if n_units is not None and len(units["first_states"]) != n_units:
        raise ValueError(f"{where}: share_units.counts sum to {len(units['first_states'])} "
                         f"units; the results have n_units {n_units}; the file was edited or "
                         "damaged")
    res.share_design = units["share_design"]
    res.share_columns = units["columns"]
    res.first_states = units["first_states"]


def _attach_first_stage(res: EstimationResults, saved: dict, model, where: str) -> None:
    """The saved first stage as ``res.extra["transitions"]`` (a
    :class:`~estimators.first_stage.TransitionEstimate` whose ``model`` holds the estimated
    tables), so that the loaded results solve with the estimated transitions and their
    counterfactuals can draw them; for a mixture also ``res.transition_mixture`` (the
    mixture over those tables; type-specific tables estimated in the EM are not saved)."""
    from ddc.transitions import Factor, FactoredTransitions
    from estimators.first_stage import TransitionEstimate

    base = getattr(model, "model", model)  # a ddc.Mixture's one-type model
    ts_model = base
    if saved["tables"]:
        trans = base.transitions()
        factors = getattr(trans, "factors", ())
        known = {f.variable: f for f in factors}
        for var, table in saved["tables"].items():
            if var not in known or known[var].table.shape != table.shape:
                raise ValueError(f"{where}: the saved first stage has a table for {var!r} of "
                                 f"shape {table.shape}, which the model's transitions do not "
                                 "have; the file does not belong to this model")
        ts_model = base.replace(transitions=FactoredTransitions([
            Factor(f.variable, saved["tables"][f.variable], given=f.given)
            if f.variable in saved["tables"] else f for f in factors]))
    P = len(saved["params"])
    res._extra["transitions"] = TransitionEstimate(
        params=saved["params"], cov=saved["cov"], loglik=saved["loglik"], nobs=saved["nobs"],
        row_scores=np.zeros((0, P)), method=saved["method"], model=ts_model,
        tables=saved["tables"], counts=saved["counts"], free=saved["free"],
        sensitivity=saved["sensitivity"])
    if base is not model and saved["tables"]:
        res.transition_mixture = model.with_transitions(ts_model.transitions())
