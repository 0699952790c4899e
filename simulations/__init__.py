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
- :func:`monte_carlo`: replications with spawned seeds, serially, in a process pool or on
  dask.distributed; :func:`su_judd` runs the Su-Judd / Iskhakov et al. bus design.
- :func:`write_panel_parquet`: a large simulated panel written to Parquet in chunks.
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
from simulations.montecarlo import MonteCarloResults, monte_carlo, replication_seed
from simulations.outofcore import ParquetPanel, write_panel_parquet
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
from simulations.studies import SuJuddResults, add_bus_increments, su_judd, su_judd_model

__all__ = [
    "Compose",
    "CounterfactualReport",
    "Custom",
    "MembershipFigures",
    "MonteCarloResults",
    "ParquetPanel",
    "SuJuddResults",
    "MultipleRecurrentClassesError",
    "PriceChange",
    "RemoveAction",
    "Scenario",
    "UtilityShift",
    "add_bus_increments",
    "annual_share",
    "counterfactual",
    "default_scenarios",
    "lapse_rate",
    "member_share",
    "membership_figures",
    "monte_carlo",
    "permanent_variables",
    "replication_seed",
    "retention_curve",
    "revenue_per_customer_month",
    "simulate",
    "stationary_distribution",
    "stationary_from_policy",
    "su_judd",
    "su_judd_model",
    "write_panel_parquet",
]
