"""A check for utility parameters the data cannot tell apart.

Choice probabilities depend on utilities only through differences between actions in the same
state. If the feature differences :math:`X(s, a) - X(s, a_0)` over the observed choice cells are
collinear, some combination of parameters leaves every choice probability unchanged (up to the
dynamic terms, which inherit the same degeneracy when the features are collinear in every cell):
the parameters are not identified. The check looks at the singular values of those differences.
"""

from __future__ import annotations

import numpy as np

from ddc.model import Model

__all__ = ["IdentificationError", "check_identification"]


class IdentificationError(ValueError):
    """Parameters that cannot be separately identified from the choice data."""


def check_identification(model: Model, counts: np.ndarray, rtol: float = 1e-10) -> None:
    """Raise :class:`IdentificationError` naming the parameters in a collinear combination.

    Parameters
    ----------
    model : ddc.Model
        The model (its utility Jacobian at zero parameters is used; for a linear utility, the
        features).
    counts : numpy.ndarray, shape (S, A)
        Choice counts; only states with a choice and some observations count.
    rtol : float
        Singular values below ``rtol`` times the largest count as zero.
    """
    names = model.utility_params
    X = model.utility.jacobian(np.zeros(len(names)))
    feas = model.feasible
    multi = feas.sum(axis=1) > 1
    seen = counts.sum(axis=1) > 0
    rows = np.flatnonzero(multi & seen)
    if rows.size == 0:
        raise IdentificationError("no observation is in a state with more than one feasible "
                                  "action: the choice data identify nothing")
    ref = np.argmax(feas[rows], axis=1)  # first feasible action as reference
    diffs = X[rows] - X[rows, ref][:, None, :]
    use = feas[rows]
    D = diffs[use]
    scale = np.abs(D).max(axis=0)
    zero = np.flatnonzero(scale == 0)
    if zero.size:
        raise IdentificationError(
            f"parameter(s) {[names[k] for k in zero]} do not change any utility difference "
            "between actions in the observed states: they are not identified by the choices")
    s = np.linalg.svd(D / scale, compute_uv=True)
    sv, vt = s[1], s[2]
    if sv[-1] < rtol * sv[0]:
        null = vt[-1] / scale
        null = null / np.abs(null).max()
        involved = [f"{names[k]} ({null[k]:+.3g})" for k in np.flatnonzero(np.abs(null) > 1e-6)]
        raise IdentificationError(
            "the utility features are collinear in the observed choice states, so these "
            f"parameters are not separately identified: {', '.join(involved)} (the combination "
            "with these weights leaves every utility difference unchanged). Drop or fix one of "
            "them, or add data where their features differ.")
