"""Panel data: validate a long panel against a model, code it, reduce it to sufficient statistics.

A long panel has one row per unit and period: an id column, an integer time column, one column
per state variable and the column ``action``. :class:`Panel` checks it against a
:class:`~ddc.model.Model` (every fault is reported with the rows, values and what is accepted;
nothing is dropped or clipped), codes it into flat arrays, and reduces it to the counts that the
likelihood needs. With :math:`N(s, a)` the number of rows in state *s* choosing *a*, and
:math:`N(s, a, s')` the number of those followed by the same unit in state :math:`s'` the next
period,

.. math::

    \\ell_{choice}(\\theta) = \\sum_{s: |A(s)| > 1} \\sum_a N(s, a) \\log \\pi_\\theta(a \\mid s),
    \\qquad
    \\ell_{trans}(\\theta) = \\sum_{s, a, s'} N(s, a, s') \\log P_\\theta(s' \\mid s, a),

so that evaluating the likelihood costs :math:`O(S \\cdot A)` (plus the number of distinct
observed transitions), not :math:`O(\\text{rows})`. For factored transitions
:math:`P(s' \\mid s, a) = \\prod_j F_j(x_j' \\mid x_{G_j}, a)`, the transition part separates by
factor, and :meth:`Panel.factor_counts` gives each factor's counts in the shape of its table, so
that a frequency estimate of the factor is its counts normalized over the last axis.

Examples
--------
>>> import pandas as pd
>>> import ddc
>>> bus = ddc.models.rust_bus(n_states=10)
>>> data = pd.DataFrame({"bus_id": [1, 1, 1, 2, 2], "month": [0, 1, 2, 0, 1],
...                      "mileage": [0, 1, 2, 5, 0], "action": ["keep", "keep", "replace",
...                                                               "replace", "keep"]})
>>> panel = prepare(bus, data)
>>> panel.nobs, panel.n_units, panel.n_transitions
(5, 2, 3)
>>> panel.counts[:3]
array([[2, 0],
       [1, 0],
       [0, 1]])
"""

from __future__ import annotations

from ddc.panel.coded import Panel, prepare
from ddc.panel.columns import (
    ACTION_COLUMN,
    ID_COLUMNS,
    STATE_SIZES_ATTR,
    TIME_COLUMNS,
    Columns,
    standardize,
)
from ddc.panel.counts import TransitionCounts
from ddc.panel.errors import MAX_SHOWN as MAX_SHOWN
from ddc.panel.errors import ImpossibleTransitionError, PanelError
from ddc.panel.errors import _fmt as _fmt  # used by ddc.data, ddc.mixture, ddc.outofcore
from ddc.panel.errors import _state_text as _state_text  # used by ddc.data
from ddc.panel.impossible import _factor_rows as _factor_rows  # used by ddc.outofcore
from ddc.panel.impossible import _triple_probabilities as _triple_probabilities  # ddc.data
from ddc.panel.periods import DEFAULT_PERIOD as DEFAULT_PERIOD

__all__ = [
    "ACTION_COLUMN",
    "ID_COLUMNS",
    "TIME_COLUMNS",
    "Columns",
    "Panel",
    "ImpossibleTransitionError",
    "PanelError",
    "STATE_SIZES_ATTR",
    "TransitionCounts",
    "prepare",
    "standardize",
]


# the public names keep the home they had when this package was one module (``ddc.panel``):
# error messages, tracebacks, pickles and the API reference name them there
for _obj in (Columns, ImpossibleTransitionError, Panel, PanelError, TransitionCounts, prepare,
             standardize):
    _obj.__module__ = __name__
del _obj
