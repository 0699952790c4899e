"""Arcidiacono and Miller's (2011) bus engine design with an unobserved permanent state.

The design of the Monte Carlo study in Arcidiacono, P. and R. A. Miller (2011), "Conditional
choice probability estimation of dynamic discrete choice models with unobserved heterogeneity",
*Econometrica* 79(6), 1823-1867, Table 1, as set up in the authors' replication code (true values
``alpha = (2, -0.15, 1, 0.9, 0.4)``: intercept, mileage, unobserved state, discount factor, and
the probability 0.4 of the unobserved state being 0; mileage on the grid 0, 0.125, ..., 25;
the observed permanent state :math:`z` on 0.25, 0.26, ..., 1.25, drawn uniformly):

.. math::

    u(x, z, s, \\text{keep}) = \\theta_0 + \\theta_1 x + \\theta_2 s, \\qquad
    u(x, z, s, \\text{replace}) = 0,

with :math:`s \\in \\{0, 1\\}` unobserved and permanent. Mileage moves up by an exponential
amount of rate :math:`z`, discretized on the grid: from :math:`x_i`, the next value is
:math:`x_j` (:math:`j \\ge i`) with probability :math:`F(x_{j+1} - x_i) - F(x_j - x_i)`,
:math:`F(d) = 1 - e^{-z d}`, the top bin absorbing the rest; replacing moves it as from 0.

As a mixture: the unobserved state is the type, ``theta_0[k]`` :math:`= \\theta_0 + \\theta_2 k`
(2 and 3), and ``share[1]`` :math:`= P(s = 1) = 0.6`.

Differences from the paper's design, all ours: the model here is infinite-horizon and
stationary (the replication code solves a finite horizon of :math:`T + 10` periods backwards and
drops the first 10); replacing draws the next mileage as from 0 in the values and in the
simulation alike; the grids can be made coarser (``n_mileage``, ``n_z``) for fast tests; the
unobserved state enters through a type-specific intercept, which is the same model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.mixture import Mixture
from ddc.model import Model
from ddc.statespace import StateVariable
from ddc.transitions import Factor, FactoredTransitions
from ddc.utility import LinearUtility

__all__ = ["am_bus", "AM_TRUTH"]

#: The replication code's true values: intercept, mileage, unobserved-state effect, beta, P(s=0).
AM_TRUTH = {"theta_0": 2.0, "theta_1": -0.15, "theta_2": 1.0, "beta": 0.9, "p_s0": 0.4}


def exponential_grid_matrix(rate: float, grid: np.ndarray) -> np.ndarray:
    """``P[i, j]``: mileage moving from ``grid[i]`` to ``grid[j]`` by an exponential amount of
    rate ``rate`` (the mass beyond the last point stays there)."""
    upper = np.append(grid[1:], np.inf)
    d_hi = upper[None, :] - grid[:, None]
    d_lo = grid[None, :] - grid[:, None]
    with np.errstate(over="ignore"):
        P = np.where(d_lo >= 0, np.exp(-rate * np.maximum(d_lo, 0))
                     - np.where(np.isinf(d_hi), 0.0, np.exp(-rate * np.maximum(d_hi, 0))), 0.0)
    return P / P.sum(axis=1, keepdims=True)


def am_bus(n_mileage: int = 201, n_z: int = 101, beta: float = AM_TRUTH["beta"],
           mileage_max: float = 25.0, z_range: tuple[float, float] = (0.25, 1.25)) -> Mixture:
    """Arcidiacono and Miller's (2011) bus design as a two-type :class:`ddc.Mixture`.

    Parameters
    ----------
    n_mileage : int
        Mileage grid points on ``[0, mileage_max]`` (201: the paper's step of 0.125).
    n_z : int
        Points of the observed permanent state on ``z_range`` (101: step 0.01).
    beta : float
        Discount factor (0.9).
    mileage_max : float
        Top of the mileage grid (25).
    z_range : tuple of float
        Range of :math:`z`, the rate of the exponential mileage increments.

    Returns
    -------
    ddc.Mixture
        State variables ``z`` and ``mileage``, actions ``replace`` and ``keep``, utility
        parameters ``theta_0`` (by type) and ``theta_1``; ``true_params`` the paper's.

    Examples
    --------
    >>> import ddc
    >>> mix = ddc.models.am_bus(n_mileage=26, n_z=6)
    >>> mix.true_params.to_dict()
    {'theta_0[0]': 2.0, 'theta_0[1]': 3.0, 'theta_1': -0.15, 'share[1]': 0.6}
    """
    if n_mileage < 2 or n_z < 1:
        raise ValueError(f"need n_mileage >= 2 and n_z >= 1, got {n_mileage} and {n_z}")
    x = np.linspace(0.0, mileage_max, n_mileage)
    z = np.linspace(z_range[0], z_range[1], n_z)
    space = [StateVariable("z", tuple(float(round(v, 10)) for v in z)),
             StateVariable("mileage", tuple(float(round(v, 10)) for v in x))]
    S = n_z * n_mileage
    xs = np.tile(x, n_z)
    X = np.zeros((S, 2, 2))
    X[:, 1, 0] = 1.0
    X[:, 1, 1] = xs
    table = np.empty((2, n_z, n_mileage, n_mileage))
    for k, rate in enumerate(z):
        P = exponential_grid_matrix(rate, x)
        table[1, k] = P  # keep
        table[0, k] = P[0]  # replace: as from zero mileage
    transitions = FactoredTransitions([Factor("mileage", table, given=("action", "z", "mileage"))])
    model = Model(space, ("replace", "keep"), LinearUtility(X, ("theta_0", "theta_1")),
                  transitions, beta=beta, name="AM (2011) bus", anchor="replace",
                  true_params=pd.Series({"theta_0": AM_TRUTH["theta_0"],
                                         "theta_1": AM_TRUTH["theta_1"]}))
    truth = pd.Series({"theta_0[0]": AM_TRUTH["theta_0"],
                       "theta_0[1]": AM_TRUTH["theta_0"] + AM_TRUTH["theta_2"],
                       "theta_1": AM_TRUTH["theta_1"], "share[1]": 1.0 - AM_TRUTH["p_s0"]})
    return Mixture(model, n_types=2, by_type=["theta_0"], true_params=truth,
                   name="AM (2011) bus")
