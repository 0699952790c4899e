"""Simulation, counterfactuals and Monte Carlo studies.

- :func:`simulate`: a long panel of customers from a solved model.
- :func:`stationary_distribution`: the stationary distribution of the controlled chain, with
  equal mass per combination of the permanent state variables (from :mod:`ddc.stationary`).
- :func:`counterfactual`: the generic counterfactual engine for any model: welfare (CV in utils,
  and in money when the model names its money parameter), choice and state shares and the
  model's declared outcomes under scenarios (:class:`ParameterChange`,
  :class:`CovariateChange`, :class:`UtilityShift`, :class:`RemoveAction`,
  :class:`TransitionChange`, :class:`Custom`, :class:`Compose`, from :mod:`ddc.scenarios`), with
  bootstrap intervals from the estimation uncertainty, as a :class:`CounterfactualReport`;
  for a :class:`ddc.Mixture`, by type and pooled (:mod:`simulations.counterfactual_mixture`).
- :func:`monte_carlo`: replications with spawned seeds, serially, in a process pool or on
  dask.distributed (:mod:`ddc.executor`), as :class:`MonteCarloResults`.

Study- and format-specific pieces live in their modules: :mod:`simulations.studies` (the
Su-Judd / Iskhakov et al. bus design: ``su_judd``, ``su_judd_model``, ``add_bus_increments``),
:mod:`simulations.outofcore` (``write_panel_parquet``: a large simulated panel written to
Parquet in chunks), :mod:`simulations.montecarlo` (``replication_seed``) and
:mod:`simulations.cli` (the ``ddc`` command line).
"""

from simulations.counterfactual import counterfactual
from simulations.montecarlo import MonteCarloResults, monte_carlo
from simulations.report import CounterfactualReport
from simulations.scenarios import (
    Compose,
    CovariateChange,
    Custom,
    ParameterChange,
    RemoveAction,
    Scenario,
    TransitionChange,
    UtilityShift,
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
    "CovariateChange",
    "Custom",
    "MonteCarloResults",
    "MultipleRecurrentClassesError",
    "ParameterChange",
    "RemoveAction",
    "Scenario",
    "TransitionChange",
    "UtilityShift",
    "counterfactual",
    "monte_carlo",
    "permanent_variables",
    "simulate",
    "stationary_distribution",
    "stationary_from_policy",
]
