"""Rust's (1987) bus engine replacement model.

Mileage since the last engine replacement, discretized into ``n_states`` bins, is the state.
Each month Harold Zurcher keeps the engine, paying the operating cost
:math:`c(x) = 0.001 \\, \\theta_{11} x`, or replaces it at cost :math:`RC`, which resets the
mileage to 0. The mileage then moves up by :math:`j = 0, 1, \\dots, J-1` bins with probability
:math:`\\theta_{3j}` (the top bin is absorbing):

.. math::

    u(x, keep) = -0.001 \\, \\theta_{11} x, \\qquad u(x, replace) = -RC.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ddc.hooks import DataLayout, Hooks
from ddc.model import Model
from ddc.statespace import StateVariable
from ddc.transition_families import IncrementTransitions
from ddc.transitions import Factor, FactoredTransitions
from ddc.utility import LinearUtility

__all__ = ["rust_bus", "TABLE_IX", "TABLE_X"]

# Rust (1987), Table IX (90 states, beta = 0.9999, groups 1-4), and Table X (175 states); the
# last increment probability is implied by the others summing to one. At 175 states the data
# of groups 1-4 have increments of up to 5 bins (873 / 4202 / 2954 / 117 / 7 / 3 months): Table
# X lists the first four probabilities; theta_34 = 7 / 8156 is the frequency in the data.
TABLE_IX = {"RC": 9.7558, "theta_11": 2.6275, "theta_3": (0.3489, 0.6394)}
TABLE_X = {"RC": 9.7687, "theta_11": 1.3428,
           "theta_3": (0.1071, 0.5152, 0.3621, 0.0143, 7 / 8156)}


def increment_matrix(n_states: int, probs: np.ndarray) -> np.ndarray:
    """``(n, n)`` matrix of the mileage moving up by ``j`` bins with ``probs[j]``; the mass that
    would pass the last bin stays in it."""
    P = np.zeros((n_states, n_states))
    for j, p in enumerate(probs):
        rows = np.arange(n_states)
        P[rows, np.minimum(rows + j, n_states - 1)] += p
    return P


def rust_bus(
    n_states: int = 90,
    beta: float = 0.9999,
    theta_3: Sequence[float] | None = None,
    true_params: pd.Series | None = None,
) -> Model:
    """Rust's bus engine replacement model.

    Parameters
    ----------
    n_states : int
        Mileage bins (90: 5,000-mile bins, Rust's Table IX; 175: Table X).
    beta : float
        Monthly discount factor (0.9999 in Rust's tables).
    theta_3 : sequence of float, optional
        Increment probabilities :math:`\\theta_{30}, \\theta_{31}, \\dots` of all but the last
        increment (the last is one minus their sum). Defaults: Table X's (six increments) for
        175 states or more, Table IX's (three increments) otherwise.
    true_params : pandas.Series, optional
        Defaults to Rust's estimates of the matching table.

    Returns
    -------
    Model
        State variable ``mileage`` (bins ``0..n_states-1``), actions ``keep`` and ``replace``,
        utility parameters ``RC`` and ``theta_11``, transition parameters ``theta_30``,
        ``theta_31``, ... (the free increment probabilities).

    Examples
    --------
    >>> import ddc
    >>> bus = ddc.models.rust_bus(n_states=90, beta=0.9999)
    >>> bus.param_names
    ['RC', 'theta_11', 'theta_30', 'theta_31']
    """
    if not isinstance(n_states, (int, np.integer)) or n_states < 2:
        raise ValueError(f"n_states must be an integer >= 2, got {n_states!r}")
    table = TABLE_X if n_states >= 175 else TABLE_IX
    free = np.asarray(table["theta_3"] if theta_3 is None else theta_3, dtype=float)
    if free.ndim != 1 or free.size < 1:
        raise ValueError("theta_3 must list at least one increment probability")
    names = [f"theta_3{j}" for j in range(free.size)]
    _check_increments(pd.Series(free, index=names))
    x = np.arange(n_states, dtype=float)
    X = np.zeros((n_states, 2, 2))
    X[:, 0, 1] = -0.001 * x  # keep: -0.001 * theta_11 * x
    X[:, 1, 0] = -1.0  # replace: -RC

    def transitions(tp: pd.Series) -> FactoredTransitions:
        probs = _check_increments(tp)
        keep = increment_matrix(n_states, probs)
        replace = np.tile(keep[0], (n_states, 1))
        return FactoredTransitions([Factor("mileage", np.stack([keep, replace]),
                                           given=("action", "mileage"))])

    if true_params is None:
        true_params = pd.Series({"RC": table["RC"], "theta_11": table["theta_11"],
                                 **dict(zip(names, free, strict=True))})
    return Model(
        [StateVariable("mileage", tuple(range(n_states)))], ("keep", "replace"),
        LinearUtility(X, ("RC", "theta_11")), transitions, beta=beta,
        transition_params=pd.Series(free, index=names), true_params=true_params,
        name="rust_bus", anchor="replace",
        # Rust's data: the published likelihoods condition on each bus's first month
        hooks=Hooks(layout=DataLayout(id_col="bus_id", time_col="month",
                                      drop_first_period=True),
                    transition_family=IncrementTransitions("increment")),
        metadata={
            "n_states": n_states, "cost_scale": 0.001, "id_column": "bus_id",
            # Rust's data: transitions are counted from the `increment` column (bins moved in
            # the month, measured from the replacement reading in a replacement month), and the
            # published likelihoods condition on each bus's first month.
            "increment_column": "increment", "choice_drops_first_period": True,
        },
    )


def _check_increments(tp: pd.Series) -> np.ndarray:
    free = tp.to_numpy(dtype=float)
    bad = tp[(free < 0) | (free > 1)]
    if len(bad):
        raise ValueError(f"increment probabilities must lie in [0, 1]: {bad.to_dict()}")
    last = 1.0 - free.sum()
    if last < -1e-12:
        raise ValueError(f"increment probabilities {tp.to_dict()} sum to {free.sum():.6g} > 1")
    return np.append(free, max(last, 0.0))
