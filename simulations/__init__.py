"""Simulation, counterfactuals and Monte Carlo studies.

- :func:`simulate`: a long panel of customers from a solved model.
- :func:`stationary_distribution`: the stationary distribution of the controlled chain, with
  equal mass per combination of the permanent state variables (per market).
- :func:`membership_figures`: member share, annual share, lapse rate, retention curve and revenue
  of the membership model (``MEMBERSHIP_MODEL.md``), from the stationary distribution.
"""

from simulations.figures import (
    MembershipFigures,
    annual_share,
    lapse_rate,
    member_share,
    membership_figures,
    retention_curve,
    revenue_per_customer_month,
)
from simulations.simulate import simulate
from simulations.stationary import (
    MultipleRecurrentClassesError,
    permanent_variables,
    stationary_distribution,
    stationary_from_policy,
)

__all__ = [
    "MembershipFigures",
    "MultipleRecurrentClassesError",
    "annual_share",
    "lapse_rate",
    "member_share",
    "membership_figures",
    "permanent_variables",
    "retention_curve",
    "revenue_per_customer_month",
    "simulate",
    "stationary_distribution",
    "stationary_from_policy",
]
