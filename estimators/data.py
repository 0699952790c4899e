"""The estimators' view of the data: the choice sample behind the one data protocol.

The protocol itself lives in the model layer (:mod:`ddc.data`): :class:`ddc.data.EstimationData`
with its two implementations, a panel in memory (:class:`ddc.data.PanelData`) and out-of-core
sufficient statistics (:class:`ddc.data.StatisticsData`). The choice part of the likelihood is

.. math:: \\ell_c(\\theta) = \\sum_i \\sum_t \\log \\pi(a_{it} \\mid s_{it}; \\theta)
          = \\sum_{s, a} n(s, a) \\log \\pi(a \\mid s; \\theta),

so it costs :math:`O(S A)` once the counts :math:`n(s, a)` are known, whatever the number of rows.
"""

from __future__ import annotations

from ddc.data import EstimationData, estimation_data
from ddc.model import Model

__all__ = ["choice_data", "setup"]

#: The data protocol (:class:`ddc.data.EstimationData`) under the name the estimators used.
ChoiceData = EstimationData


def choice_data(model: Model, data, drop_first: bool | None = None, **mapping) -> EstimationData:
    """Validate and code ``data`` for ``model`` (:func:`ddc.data.estimation_data`).

    Parameters
    ----------
    model : ddc.Model
        The model.
    data : pandas.DataFrame, ddc.panel.Panel, ddc.outofcore.SufficientStatistics or EstimationData
        The data.
    drop_first : bool, optional
        Leave each unit's first period out of the choice sample (default:
        ``model.hooks.layout.drop_first_period``).
    **mapping
        ``id_col``, ``time_col``, ``action_col``, ``columns``: the column mapping.

    Returns
    -------
    ddc.data.EstimationData
    """
    return estimation_data(model, data, drop_first=drop_first, **mapping)


def setup(model: Model, data, drop_first: bool | None, estimator: str, start=None,
          needs_rows: bool = True, transitions=None):
    """The shared start of a fit for code outside the template (the mixture estimators):
    :func:`estimators.base.prepare` plus validated starting values.

    Parameters
    ----------
    transitions : {"estimate", "known"} or TransitionOptions, optional
        The first stage of the transitions, as for every estimator
        (:mod:`estimators.first_stage`): estimated from the data by default (fixed tables by
        cell frequencies, transition parameters by maximum likelihood), or declared known.

    Returns
    -------
    tuple
        ``(EstimationData, TransitionEstimate, params)`` with ``params`` a Series over
        ``model.param_names``: utility parameters from ``start`` (zeros by default), transition
        parameters at their first-stage estimates. The estimate's ``.model`` is the model the
        fit continues with (``model`` itself, or a copy with the estimated tables).
    """
    from estimators.base import prepare, starting_values

    prep = prepare(model, data, drop_first, estimator, needs_rows, transitions=transitions)
    params = prep.params.copy()
    start = starting_values(model, start)
    params[start.index] = start
    return prep.data, prep.transitions, params
