"""Rust's bus model in the specification of Su and Judd's (2012) Monte Carlo design.

Su and Judd (2012, *Econometrica*, Section 5) and Iskhakov et al. (2016) simulate Rust's (1987)
bus model in the specification of his Table X: 175 mileage bins, linear cost
:math:`c(x) = 0.001\\, \\theta_{11} x`, five increments with probabilities :math:`\\theta_3`, at
:math:`RC = 11.7257`, :math:`\\theta_{11} = 2.4569`,
:math:`\\theta_3 = (.0937, .4475, .4459, .0127, .0002)`. The study itself (data sets, starting
values, discount factors, published times) is :func:`simulations.studies.su_judd`.
"""

from __future__ import annotations

import pandas as pd

from ddc.model import Model
from ddc.models.rust_bus import rust_bus

__all__ = ["SU_JUDD_MODEL", "su_judd"]

#: The model's constants (Su and Judd 2012, Section 5; REFERENCES.md).
SU_JUDD_MODEL = {
    "n_states": 175,
    "RC": 11.7257,
    "theta_11": 2.4569,
    "theta_3": (0.0937, 0.4475, 0.4459, 0.0127, 0.0002),
}


def su_judd(beta: float = 0.975) -> Model:
    """Rust's bus model in the Su-Judd specification at discount factor ``beta``.

    175 states, five increments with probabilities :math:`\\theta_3`; the transition parameters
    are the first four (``theta_30`` ... ``theta_33``), the fifth is one minus their sum;
    ``true_params`` are the design's.

    Parameters
    ----------
    beta : float
        Discount factor (the design uses .975, .985, .995, .999, .9995, .9999).

    Returns
    -------
    ddc.Model
    """
    free = SU_JUDD_MODEL["theta_3"][:-1]
    names = [f"theta_3{j}" for j in range(len(free))]
    truth = pd.Series({"RC": SU_JUDD_MODEL["RC"], "theta_11": SU_JUDD_MODEL["theta_11"],
                       **dict(zip(names, free, strict=True))})
    return rust_bus(n_states=SU_JUDD_MODEL["n_states"], beta=beta, theta_3=free,
                    true_params=truth)
