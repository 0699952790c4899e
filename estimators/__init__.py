"""Estimators of dynamic discrete choice models.

Every estimator is a class taking the model, with ``fit(panel)`` returning
:class:`EstimationResults`: :class:`NFXP` (nested fixed point maximum likelihood), :class:`CCP`
(Hotz-Miller two-step) and :class:`NPL` (nested pseudo-likelihood).
"""

from estimators.ccp import CCP, NPL
from estimators.compare import compare
from estimators.identification import IdentificationError
from estimators.nfxp import NFXP
from estimators.optimize import Optimizer
from estimators.results import EstimationResults, load_results

__all__ = ["CCP", "NFXP", "NPL", "EstimationResults", "IdentificationError", "Optimizer",
           "compare", "load_results"]
