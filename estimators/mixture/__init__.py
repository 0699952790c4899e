"""Estimators of finite mixtures of unobserved types (:class:`ddc.Mixture`).

``NFXP(mix)``, ``CCP(mix)`` and ``NPL(mix)`` construct these; see :mod:`estimators.mixture.nfxp`
(EM, then direct maximum likelihood) and :mod:`estimators.mixture.ccp` (Arcidiacono and
Miller's CCP-EM).
"""

from estimators.mixture.nfxp import MixtureNFXP
from estimators.mixture.results import MixtureResults, TypesNotSeparatedWarning, classification

__all__ = ["MixtureNFXP", "MixtureResults", "TypesNotSeparatedWarning", "classification"]
