"""The entry point of the first stage: :func:`estimate_transitions` picks which first stage runs
(see :mod:`estimators.first_stage`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.transitions import FactoredTransitions
from estimators.first_stage.cells import _nonparametric
from estimators.first_stage.estimate import TransitionEstimate, TransitionOptions
from estimators.first_stage.family import _from_family
from estimators.first_stage.parametric import _parametric
from estimators.first_stage.transition_likelihood import (
    _base_params,
    _own_data,
    _transition_counts,
    transition_log_probs,
)


# ---------------------------------------------------------------------- entry point
def estimate_transitions(model: Model, panel, frame: pd.DataFrame | None = None,
                         stats=None, options: TransitionOptions | None = None
                         ) -> TransitionEstimate:
    """Estimate the model's transitions from the data (the first stage).

    Parameters
    ----------
    model : ddc.Model
    panel : ddc.data.EstimationData, ddc.panel.Panel or None
        The data (the estimators pass the data protocol, which also reads extra columns through
        the column mapping), or the coded panel; ``None`` with sufficient statistics ``stats``
        (then ``row_scores`` is empty).
    frame : pandas.DataFrame, optional
        The data as given (a transition family may read extra columns).
    stats : ddc.outofcore.SufficientStatistics, optional
    options : TransitionOptions, optional

    Returns
    -------
    TransitionEstimate
        See :mod:`estimators.first_stage` for which first stage runs.
    """
    from ddc.data import EstimationData

    data = None
    if isinstance(panel, EstimationData):
        data, panel, frame, stats = panel, panel.panel, panel.frame, panel.stats
    if panel is None and stats is None:
        raise TypeError("estimate_transitions needs a panel or sufficient statistics")
    options = options or TransitionOptions()
    n_rows = panel.nobs if panel is not None else 0
    P = len(model.transition_params)
    if options.known or (P == 0 and not isinstance(model.transitions(), FactoredTransitions)):
        return _known(model, panel, stats, n_rows, options)
    if P == 0:
        return _nonparametric(model, _transition_counts(panel, stats), n_rows, options)
    if _own_data(model):
        return _from_family(model, panel, frame, stats, n_rows, data)
    return _parametric(model, panel, stats, n_rows, options)


def _known(model, panel, stats, n_rows, options) -> TransitionEstimate:
    tc = _transition_counts(panel, stats)
    params = _base_params(model)
    ll = float(np.sum(tc.n * transition_log_probs(model, params, tc.s, tc.a, tc.s_next))) \
        if len(tc.n) else 0.0
    P = len(model.transition_params)
    why = "declared known" if options.known else "sparse transitions, not estimated"
    notes = [f"transitions known ({why}); transition log-likelihood reported at them"]
    return TransitionEstimate(pd.Series(dtype=float), np.zeros((0, 0)), ll, int(np.sum(tc.n)),
                              np.zeros((n_rows, 0)), f"known ({why})", model=model,
                              notes=notes if P == 0 or options.known else [])
