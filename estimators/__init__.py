"""Estimators of dynamic discrete choice models.

Every estimator is a class taking the model, with ``fit(panel)`` returning
:class:`EstimationResults`: :class:`NFXP` (nested fixed point maximum likelihood), :class:`CCP`
(Hotz-Miller two-step), :class:`NPL` (nested pseudo-likelihood), :class:`PQR` (anchor-action
inverse reinforcement learning) and :class:`MaxEntIRL` (maximum causal entropy IRL);
:func:`cross_validate` compares them. They share one template (:class:`Estimator`) and are
registered by key in :data:`ESTIMATORS` (``"nfxp"``, ``"ccp"``, ``"npl"``, ``"pqr"``,
``"maxent"``).
"""

# registration order is the display order of the registry (NFXP first)
from estimators.nfxp import NFXP  # noqa: I001
from estimators.ccp import CCP, NPL
from estimators.pqr import PQR, anchor_rewards
from estimators.maxent import MaxEntIRL
from estimators.base import ESTIMATORS, Convergence, Estimator, get_estimator
from estimators.compare import compare
from estimators.crossval import CrossValidation, cross_validate
from estimators.identification import IdentificationError
from estimators.optimize import Optimizer
from estimators.results import EstimationResults, ModelMismatchError
from estimators.results_loading import load_results

__all__ = ["CCP", "ESTIMATORS", "NFXP", "NPL", "PQR", "Convergence", "CrossValidation",
           "EstimationResults", "Estimator", "IdentificationError", "MaxEntIRL",
           "ModelMismatchError", "Optimizer", "anchor_rewards", "compare", "cross_validate",
           "get_estimator", "load_results"]
