"""Simulation, counterfactuals and Monte Carlo studies.

- :func:`simulate`: a long panel of customers from a solved model.
- :func:`stationary_distribution`: the stationary distribution of the controlled chain, with
  equal mass per combination of the permanent state variables (per market).
- :func:`membership_figures`: member share, annual share, lapse rate, retention curve and revenue
  of the membership model (``MEMBERSHIP_MODEL.md``), from the stationary distribution.
- :func:`counterfactual`: welfare (CV in dollars) and the figures under counterfactual scenarios
  (:class:`PriceChange`, :class:`UtilityShift`, :class:`RemoveAction`, :class:`Custom`,
  :class:`Compose`), with bootstrap intervals from the estimation uncertainty, as a
  :class:`CounterfactualReport`.
"""

from simulations.counterfactual import counterfactual
from simulations.figures import (
    MembershipFigures,
    annual_share,
    lapse_rate,
    member_share,
    membership_figures,
    retention_curve,
    revenue_per_customer_month,
)
from simulations.report import CounterfactualReport
from simulations.scenarios import (
    Compose,
    Custom,
    PriceChange,
    RemoveAction,
    Scenario,
    UtilityShift,
    default_scenarios,
)
from simulations.simulate import simulate
from simulations.stationary import (
    MultipleRecurrentClassesError,
    permanent_variables,
    stationary_distribution,
    stationary_from_policy,
)

__all__ = [
    "Compose",
    "CounterfactualReport",
    "Custom",
    "MembershipFigures",
    "MultipleRecurrentClassesError",
    "PriceChange",
    "RemoveAction",
    "Scenario",
    "UtilityShift",
    "annual_share",
    "counterfactual",
    "default_scenarios",
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
