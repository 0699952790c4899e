"""Impossible transitions: the parameters the data are checked at (:func:`support_params`) and
the check that refuses or drops data the model cannot have generated (:func:`check_possible`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import ImpossibleTransitionError, Panel, PanelError
from estimators.first_stage.estimate import INTERIOR_MIX
from estimators.first_stage.transition_likelihood import _base_params, _family


# ---------------------------------------------------------------------- impossible transitions
def support_params(model: Model) -> pd.Series | None:
    """Parameters at which the data are checked for impossible transitions.

    The model's default transitions, except that the simplex groups its transition family
    declares are moved into the interior (a probability that is zero at the defaults but is
    a free parameter is not a structural zero). ``None`` for a model without transition
    parameters (its transitions are the fixed tables).
    """
    if len(model.transition_params) == 0:
        return None
    params = _base_params(model)
    fam = _family(model)
    # by position (label indexing of a string index costs a tenth of a millisecond a time)
    where = {n: i for i, n in enumerate(params.index.tolist())}
    values = params.to_numpy(dtype=float, copy=True)
    for group in (fam.simplex_groups(model) if fam is not None else []):
        pos = [where[n] for n in group]
        p = values[pos]
        full = np.append(p, max(0.0, 1.0 - p.sum()))
        full = (1 - INTERIOR_MIX) * full / full.sum() + INTERIOR_MIX / len(full)
        values[pos] = full[:-1]
    return pd.Series(values, index=params.index, name=params.name)


def check_possible(model: Model, panel: Panel | None, stats=None, impossible: str = "raise"
                   ) -> tuple[Panel | None, list[str]]:
    """Refuse (or drop) data the model cannot have generated.

    An observed transition :math:`(s, a, s')` with :math:`P(s' \\mid s, a) = 0` under the model
    (at :func:`support_params`) is impossible.

    Parameters
    ----------
    model : ddc.Model
    panel : ddc.panel.Panel or None
    stats : ddc.outofcore.SufficientStatistics, optional
        Used when ``panel`` is ``None`` (then only ``"raise"`` is possible: there are no rows).
    impossible : {"raise", "drop"}
        See :class:`TransitionOptions`.

    Returns
    -------
    panel : ddc.panel.Panel or None
        The panel, without the offending units when ``impossible="drop"``.
    notes : list of str
        One note per drop, saying how many units and rows were left out and the first ones.

    Raises
    ------
    ddc.panel.ImpossibleTransitionError
        Naming the first rows (unit, period, the two states, the factor at fault).
    """
    params = support_params(model)
    if panel is None:
        from ddc.data import StatisticsData

        try:  # the data protocol names the states and the factor at fault
            StatisticsData(stats).check_transitions(_base_params(model) if params is None
                                                    else params)
        except PanelError as err:
            raise ImpossibleTransitionError(
                f"{err} (to drop such units instead, pass the rows: a panel, not sufficient "
                "statistics)") from None
        return None, []
    if impossible == "raise":
        try:
            panel.check_transitions(params)
        except ImpossibleTransitionError as err:
            fam = _family(model)
            if len(model.transition_params) and (fam is None or not fam.simplex_groups(model)):
                raise ImpossibleTransitionError(
                    f"{err} (The check uses the model's default transition parameters "
                    f"{model.transition_params.to_dict()}; if a zero among them is a free "
                    "probability, declare it with ddc.transition_families.SimplexParameters: "
                    "the check then uses an interior point)", err.rows) from None
            raise
        return panel, []
    rows = panel.impossible_rows(params)
    if rows.size == 0:
        return panel, []
    units = np.unique(panel.unit[rows])
    dropped = int(np.isin(panel.unit, units).sum())
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v)
                      for v in panel.ids[units[:5]])
    note = (f"{units.size} unit(s) ({dropped} rows) left out: their data show transitions of "
            f"probability 0 under the model ({rows.size} such rows; {panel.id_col} {shown}"
            f"{', ...' if units.size > 5 else ''})")
    return panel.without_units(units), [note]
