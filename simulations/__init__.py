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
  dask.distributed (:mod:`ddc.executor`), as :class:`MonteCarloResults`.

Study- and format-specific pieces live in their modules: :mod:`simulations.studies` (the
Su-Judd / Iskhakov et al. bus design: ``su_judd``, ``su_judd_model``, ``add_bus_increments``),
:mod:`simulations.outofcore` (``write_panel_parquet``: a large simulated panel written to
Parquet in chunks), :mod:`simulations.montecarlo` (``replication_seed``) and
:mod:`simulations.cli` (the ``ddc`` command line).
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
from simulations.montecarlo import MonteCarloResults, monte_carlo
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
    "MonteCarloResults",
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
    "monte_carlo",
    "permanent_variables",
    "retention_curve",
    "revenue_per_customer_month",
    "simulate",
    "stationary_distribution",
    "stationary_from_policy",
]
