"""A firm entry/exit model written as a user would write it: a shared test fixture.

A firm, in or out of a market (``incumbent`` 0/1), sees demand on four levels (``demand`` 0-3)
and each period chooses ``out`` or ``in``. Being in pays

.. math:: u(in) = \\theta_d \\, d - FC - EC \\, 1[incumbent = 0],

staying out pays zero; next period's ``incumbent`` is the action. Demand follows a Markov chain
whose transition probabilities are free parameters in Rust's layout: row *i* has parameters
``p{i}0, p{i}1, p{i}2`` and the last probability is ``1 - p{i}0 - p{i}1 - p{i}2``. The
transition function refuses parameters off the simplex, as a user's would.

The model's default transition parameters (:data:`DEMAND_DEFAULT`, a naive banded chain with
zeros) are not the truth (:data:`DEMAND_TRUE`); the first stage must start from them without a
NaN and reach the truth. ``entry_model(declare_simplex=True)`` declares the four rows as
simplex groups (:class:`ddc.transition_families.SimplexParameters`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import ddc
from ddc.transition_families import SimplexParameters

__all__ = ["DEMAND_DEFAULT", "DEMAND_TRUE", "TRUTH", "demand_names", "entry_model"]

N_DEMAND = 4
#: the data-generating demand chain (rows: current level, columns: next level)
DEMAND_TRUE = np.array([[0.50, 0.30, 0.15, 0.05],
                        [0.20, 0.50, 0.20, 0.10],
                        [0.10, 0.20, 0.50, 0.20],
                        [0.05, 0.15, 0.30, 0.50]])
#: the model's defaults (the first stage's starting values): zeros off the band
DEMAND_DEFAULT = np.array([[0.70, 0.30, 0.00, 0.00],
                           [0.30, 0.40, 0.30, 0.00],
                           [0.00, 0.30, 0.40, 0.30],
                           [0.00, 0.00, 0.30, 0.70]])
UTILITY_TRUE = {"theta_d": 1.0, "FC": 2.5, "EC": 1.5}


def demand_names() -> list[list[str]]:
    """The free transition parameters, one list per row of the demand chain."""
    return [[f"p{i}{j}" for j in range(N_DEMAND - 1)] for i in range(N_DEMAND)]


def _free(chain: np.ndarray) -> dict[str, float]:
    return {n: float(chain[i, j]) for i, row in enumerate(demand_names())
            for j, n in enumerate(row)}


TRUTH = pd.Series({**UTILITY_TRUE, **_free(DEMAND_TRUE)}, name="truth")


def demand_chain(tp: pd.Series) -> np.ndarray:
    """The 4 x 4 chain from the free parameters (last = 1 - sum); refuses off-simplex values."""
    P = np.zeros((N_DEMAND, N_DEMAND))
    for i, row in enumerate(demand_names()):
        p = np.array([tp[n] for n in row], dtype=float)
        if np.any(p < 0) or np.any(p > 1) or p.sum() > 1 + 1e-12:
            raise ValueError(f"demand transition probabilities of row {i} must lie in [0, 1] and "
                             f"sum to at most 1; got {dict(zip(row, p, strict=True))}")
        P[i, :-1] = p
        P[i, -1] = max(0.0, 1.0 - p.sum())
    return P


def entry_model(beta: float = 0.95, declare_simplex: bool = True) -> ddc.Model:
    """The entry/exit model (parameters ``theta_d``, ``FC``, ``EC``, ``p00`` ... ``p32``)."""
    states = [ddc.StateVariable("incumbent", (0, 1)),
              ddc.StateVariable("demand", tuple(range(N_DEMAND)))]
    inc, d = (g.ravel() for g in np.indices((2, N_DEMAND)))
    X = np.zeros((2 * N_DEMAND, 2, 3))
    X[:, 1, 0] = d
    X[:, 1, 1] = -1.0
    X[:, 1, 2] = -(inc == 0).astype(float)
    T_inc = np.zeros((2, 2, 2))
    T_inc[0, :, 0] = 1.0  # out -> not an incumbent
    T_inc[1, :, 1] = 1.0  # in -> incumbent

    def transitions(tp: pd.Series) -> ddc.FactoredTransitions:
        return ddc.FactoredTransitions([
            ddc.Factor("incumbent", T_inc, given=("action", "incumbent")),
            ddc.Factor("demand", demand_chain(tp), given=("demand",)),
        ])

    family = SimplexParameters(*demand_names()) if declare_simplex else None
    return ddc.Model(states, ("out", "in"), ddc.LinearUtility(X, ("theta_d", "FC", "EC")),
                     transitions, beta=beta, transition_params=pd.Series(_free(DEMAND_DEFAULT)),
                     true_params=TRUTH, name="entry", anchor="out",
                     hooks=ddc.Hooks(layout=ddc.DataLayout(id_col="firm", time_col="year"),
                                     transition_family=family))
