"""ddc-econ: dynamic discrete choice models, specified, solved and simulated.

The model layer: state variables, actions, feasibility, utility, factored transitions, the
logit Bellman solver and its derivatives, panel data, built-in models and data sets.
"""

from ddc import models
from ddc.hooks import DataLayout, Hooks, Money, Outcome, OutcomeContext, TransitionFamily
from ddc.mixture import Mixture
from ddc.model import Model, fingerprint_diff
from ddc.solver import ConvergenceError, ConvergenceWarning, Solution, Solver
from ddc.statespace import StateSpace, StateVariable
from ddc.transitions import Factor, FactoredTransitions, SparseTransitions
from ddc.utility import CallableUtility, LinearUtility

__version__ = "0.1.0"

__all__ = [
    "CallableUtility",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataLayout",
    "Factor",
    "FactoredTransitions",
    "Hooks",
    "LinearUtility",
    "Mixture",
    "Model",
    "Money",
    "Outcome",
    "OutcomeContext",
    "Solution",
    "Solver",
    "SparseTransitions",
    "StateSpace",
    "StateVariable",
    "TransitionFamily",
    "fingerprint_diff",
    "models",
]


def __getattr__(name):  # lazy: the data loader and panel layer are imported on first use
    if name in ("datasets", "panel", "outofcore"):
        import importlib

        return importlib.import_module(f"ddc.{name}")
    raise AttributeError(f"module 'ddc' has no attribute {name!r}")
