"""A check for utility parameters the data cannot tell apart.

Choice probabilities depend on utilities only through differences between actions in the same
state. If the feature differences :math:`X(s, a) - X(s, a_0)` over the observed choice cells are
collinear, some combination of parameters leaves every choice probability unchanged (up to the
dynamic terms, which inherit the same degeneracy when the features are collinear in every cell):
the parameters are not identified. The check looks at the singular values of those differences.

An action that is feasible in observed choice states but never chosen there makes the maximum
likelihood estimate fail to exist when some parameter moves only that action's utility: the
likelihood keeps rising as that utility falls, and the parameter runs off to minus infinity. The
check names the action, the number of states and the parameter.
"""

from __future__ import annotations

import numpy as np

from ddc.model import Model

__all__ = ["IdentificationError", "check_identification", "never_chosen"]


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
    _check_never_chosen(model, counts, X)
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


def never_chosen(model: Model, counts: np.ndarray) -> dict[int, int]:
    """Actions feasible in some observed choice state but chosen in none of them.

    Returns
    -------
    dict
        Action code -> number of observed choice states where it is feasible.
    """
    feas = model.feasible
    obs = (feas.sum(axis=1) > 1) & (counts.sum(axis=1) > 0)
    out = {}
    for a in range(model.n_actions):
        where = obs & feas[:, a]
        if where.any() and counts[where, a].sum() == 0:
            out[a] = int(where.sum())
    return out


def _check_never_chosen(model: Model, counts: np.ndarray, X: np.ndarray) -> None:
    """Raise naming a parameter that runs away because its action is never chosen."""
    feas = model.feasible
    names = model.utility_params
    obs = (feas.sum(axis=1) > 1) & (counts.sum(axis=1) > 0)
    for a, n_states in never_chosen(model, counts).items():
        runaway = []
        for k in range(len(names)):
            x = np.where(feas, X[:, :, k], np.nan)[obs]
            here = feas[obs, a]
            others = np.delete(x, a, axis=1)
            lo, hi = np.nanmin(others, axis=1), np.nanmax(others, axis=1)
            if np.any(hi - lo > 0):  # moves the other actions' utility differences too
                continue
            diff = np.where(here, x[:, a] - lo, 0.0)
            if np.any(diff > 0) and not np.any(diff < 0) or \
                    np.any(diff < 0) and not np.any(diff > 0):
                runaway.append(names[k])
        action = model.actions[a]
        if runaway:
            who = ", ".join(runaway)
            raise IdentificationError(
                f"action {action!r} is never chosen in the {n_states} observed states where it "
                f"is feasible, so the likelihood rises without bound as its utility falls: "
                f"{who} (which move{'s' if len(runaway) == 1 else ''} only {action!r}'s utility) "
                f"would run off to infinity and the maximum likelihood estimate does not exist. "
                f"Make {action!r} infeasible in the model, fix {who}, or use data in which "
                f"{action!r} is chosen")
