"""Counterfactual scenarios: re-exported from :mod:`ddc.scenarios`, where they live so that
applications in :mod:`ddc.models` can declare default scenarios."""

from ddc.scenarios import (
    IDENTIFIED,
    NORMALIZATION,
    UNCLASSIFIED,
    Compose,
    CovariateChange,
    Custom,
    ParameterChange,
    RemoveAction,
    Scenario,
    ShiftedUtility,
    TransitionChange,
    UtilityShift,
    identification_note,
    resolve_scenarios,
)

__all__ = [
    "Scenario",
    "ParameterChange",
    "CovariateChange",
    "UtilityShift",
    "RemoveAction",
    "TransitionChange",
    "Custom",
    "Compose",
    "ShiftedUtility",
    "resolve_scenarios",
    "identification_note",
    "IDENTIFIED",
    "NORMALIZATION",
    "UNCLASSIFIED",
]
