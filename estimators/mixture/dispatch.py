"""Which estimator a :class:`ddc.Mixture` gets: ``NFXP(mix)`` and ``CCP(mix)`` construct the
mixture estimators; PQR and MaxEntIRL refuse, saying why."""

from __future__ import annotations

from ddc.mixture import Mixture

__all__ = ["mixture_estimator", "REFUSALS"]

REFUSALS = {
    "PQR": (
        "PQR has no mixture version. Its three steps are exact inversions of one policy: the "
        "P-step estimates pi(a|s) from the pooled data, and the Q- and R-steps invert that "
        "policy into rewards. With unobserved types the data reveal only the share-weighted "
        "average of the types' policies, which is not the policy of any type (nor of a model "
        "with averaged rewards), and PQR has no likelihood whose per-unit contributions EM "
        "could weight by posterior type probabilities. Use NFXP(mix) (EM, then maximum "
        "likelihood) or CCP(mix) (Arcidiacono and Miller's CCP-EM)"),
    "MaxEntIRL": (
        "MaxEntIRL(mix) is not provided because maximum causal entropy IRL maximizes the same "
        "choice log-likelihood as NFXP (see estimators.maxent), so its mixture is NFXP's: the "
        "same EM and the same mixture likelihood. Use NFXP(mix)"),
}


def mixture_estimator(cls, model, args: tuple, kwargs: dict):
    """The mixture estimator that ``cls(model, *args, **kwargs)`` stands for, or ``None`` when
    ``model`` is not a :class:`ddc.Mixture`.

    Raises
    ------
    TypeError
        For estimators without a mixture version, saying why.
    """
    if not isinstance(model, Mixture):
        return None
    name = getattr(cls, "name", cls.__name__)
    if name == "NFXP":
        from estimators.mixture.nfxp import MixtureNFXP

        return MixtureNFXP(model, *args, **kwargs)
    if name in ("CCP", "NPL"):
        from estimators.mixture.ccp import MixtureCCP

        return MixtureCCP(model, *args, method=name, **kwargs)
    raise TypeError(REFUSALS.get(name, f"{name} has no mixture version; use NFXP(mix)"))
