"""Estimators of dynamic discrete choice models.

Every estimator is a class taking the model, with ``fit(panel)`` returning
:class:`EstimationResults`: :class:`NFXP` (nested fixed point maximum likelihood), :class:`CCP`
(Hotz-Miller two-step), :class:`NPL` (nested pseudo-likelihood), :class:`PQR` (anchor-action
inverse reinforcement learning) and :class:`MaxEntIRL` (maximum causal entropy IRL);
:func:`cross_validate` compares them.
"""

from estimators.ccp import CCP, NPL
from estimators.compare import compare
from estimators.crossval import CrossValidation, cross_validate
from estimators.identification import IdentificationError
from estimators.maxent import MaxEntIRL
from estimators.nfxp import NFXP
from estimators.optimize import Optimizer
from estimators.pqr import PQR, anchor_rewards
from estimators.results import EstimationResults, ModelMismatchError, load_results

__all__ = ["CCP", "NFXP", "NPL", "PQR", "CrossValidation", "EstimationResults",
           "IdentificationError", "MaxEntIRL", "ModelMismatchError", "Optimizer",
           "anchor_rewards", "compare", "cross_validate", "load_results"]
