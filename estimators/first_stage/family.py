"""The first stage of a declared transition family with its own data (e.g. increments), and the
sum-zero directions that keep an implied last probability fixed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.model import Model
from estimators.first_stage.estimate import FD_MARGIN, TransitionEstimate
from estimators.first_stage.transition_likelihood import _family, _family_frame, family_statistics


# ---------------------------------------------------------------------- a declared family
def _from_family(model: Model, panel, frame, stats, n_rows, data=None) -> TransitionEstimate:
    fam = _family(model)
    names = list(model.transition_params.index)
    # the family's columns read once: for the statistics and for the rows' scores
    fframe = _family_frame(model, panel, frame, data) if panel is not None else None
    st = fam.statistics(model, fframe) if fframe is not None else \
        family_statistics(model, panel, frame, stats, data)
    est, cov = fam.estimate(model, st)
    ll, _ = fam.loglik(model, est, st)
    p = np.append(est.to_numpy(), 1.0 - est.sum()) if [names] == fam.simplex_groups(model) \
        else None
    # NFXP's joint stage differentiates with steps of FD_MARGIN: keep clear of the boundary
    fallback, directions, implied = "", None, ""
    if p is not None:
        free = [n for n, pj in zip(names, p[:-1], strict=True) if pj > FD_MARGIN]
        boundary = [n for n in names if n not in free]
        if p[-1] <= FD_MARGIN * len(p):
            # the implied last probability 1 - sum(psi) is on the boundary: every step of one
            # parameter moves it, and a step up leaves the simplex. Steps that keep the sum of
            # the free parameters fixed hold it there and move the others jointly.
            implied = f"1 - ({' + '.join(names)}) = {p[-1]:.3g}"
            if len(free) >= 2:
                directions = sum_zero_directions(free)
            else:
                fallback = (f"the implied last probability {implied} is on the simplex "
                            "boundary (that outcome was never observed) and at most one other "
                            "probability is inside it, so no transition parameter can move "
                            "without leaving the simplex")
                free, implied = [], ""
    else:
        free, boundary = names, []
    where = [names.index(n) for n in free]

    def loglik_fn(params):
        val, g = fam.loglik(model, params[names], st)
        return val, g[where]

    def scores_fn(params):
        return fam.row_scores(model, params[names], fframe)[:, where]

    def hessian_fn(params):
        try:
            H = fam.hessian(model, params[names], st)
        except NotImplementedError:
            return None
        return H[np.ix_(where, where)]

    scores = fam.row_scores(model, est, fframe) if fframe is not None else np.zeros((0, len(names)))
    return TransitionEstimate(est, cov, ll, int(np.sum(st)), scores, fam.describe(), model=model,
                              boundary=boundary, free=free, directions=directions,
                              implied_held=implied, joint_fallback=fallback,
                              _loglik_fn=loglik_fn, _scores_fn=scores_fn,
                              _hessian_fn=hessian_fn)


def sum_zero_directions(names: list[str]) -> pd.DataFrame:
    """An orthonormal basis of the directions :math:`d` with :math:`\\sum_j d_j = 0` over
    ``names`` (rows) -- the moves of probabilities that keep their sum, and so the implied
    last probability :math:`1 - \\sum_j \\psi_j`, fixed. Columns are labelled
    ``"sum-zero direction k of (names)"``."""
    m = len(names)
    if m < 2:
        raise ValueError(f"sum-zero directions need at least two parameters, got {names}")
    span = np.eye(m)[:, : m - 1] - 1.0 / m  # e_k - 1/m: independent, each sums to zero
    Q, _ = np.linalg.qr(span)
    Q -= Q.mean(axis=0)  # exact zero sums (QR leaves rounding)
    Q /= np.linalg.norm(Q, axis=0)
    what = f"({names[0]}..{names[-1]})" if m > 2 else f"({names[0]}, {names[1]})"
    return pd.DataFrame(Q, index=list(names),
                        columns=[f"sum-zero direction {k + 1} of {what}" for k in range(m - 1)])
