"""Inference: covariance matrices of an estimate, of the kind asked for.

From the Hessian :math:`H` of the total (pseudo) log-likelihood at the estimate, the per-row
scores :math:`g_i` (rows of :math:`G`) and the unit of each row, :func:`covariance` computes

================  =====================================================================
kind              covariance of :math:`\\hat\\theta`
================  =====================================================================
``"hessian"``     :math:`-H^{-1}` (inverse observed information)
``"opg"``         :math:`(G'G)^{-1}` (BHHH)
``"sandwich"``    :math:`H^{-1} (G'G) H^{-1}` (robust; statsmodels' ``"HC0"``)
``"cluster"``     :math:`c\\, H^{-1} C H^{-1}` with :math:`C = \\sum_u s_u s_u'`, where
                  :math:`s_u` is the sum of the score rows of unit :math:`u`, and
                  :math:`c = \\frac{U}{U-1} \\frac{n-1}{n-K}` (statsmodels' CRV1)
precomputed       any matrix an estimator computed itself (e.g. ``"murphy_topel"``)
================  =====================================================================

A kind whose ingredients are missing raises :class:`NotAvailableError` with the reason; an
information matrix that is singular or not definite raises :class:`HessianError` naming the
parameters involved (checked scale free, on the matrix scaled to unit diagonal), and a nearly
singular one warns (:class:`HessianWarning`). :class:`~estimators.results.EstimationResults`
asks for the kinds at query time and caches them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BUILTIN_COV_TYPES",
    "COV_DESCRIPTIONS",
    "HessianError",
    "HessianWarning",
    "Ingredients",
    "NotAvailableError",
    "check_information",
    "covariance",
    "join_names",
    "mapped_covariances",
    "row_scores",
]

#: The covariance kinds computed from the Hessian and the scores.
BUILTIN_COV_TYPES = ("hessian", "opg", "sandwich", "cluster")

COV_DESCRIPTIONS = {
    # what each kind is, for the summaries' notes
    "hessian": "inverse of the negative Hessian of the log-likelihood (observed information)",
    "opg": "inverse of the outer product of the per-row scores (BHHH)",
    "sandwich": "robust sandwich H^-1 (G'G) H^-1 (HC0)",
    "cluster": ("cluster-robust by unit, H^-1 C H^-1 with C the outer product of the units' "
                "score sums, times U/(U-1) (n-1)/(n-K)"),
    "murphy_topel": "Murphy-Topel, corrected for the first-stage estimation",
    "stacked": ("sandwich of CCP-EM's stacked per-unit estimating equations (structural "
                "parameters, type CCPs, shares), corrected for the estimated CCPs and posteriors"),
    "two_step": ("two-step sandwich (Newey-McFadden 1994, Theorem 6.1) of the two-stage CCP "
                 "estimator, corrected for stage 1's estimated type CCPs, shares and posteriors"),
    "full_information": "inverse information of the full (choice and transition) likelihood",
}

# Singularity thresholds on the eigenvalues of the information matrix scaled to unit diagonal
# (a correlation-like matrix whose eigenvalues lie in [0, K]). Below _SINGULAR_RTOL the matrix is
# treated as singular (rounding error is ~K * 1e-16); below _NEAR_SINGULAR_RTOL a warning is given
# (some combination of the estimates has a correlation above 1 - 1e-6 with another).
_SINGULAR_RTOL = 1e-10
_NEAR_SINGULAR_RTOL = 1e-6
# Parameters whose loading on the offending eigenvector is at least this share of the largest
# loading are named in the message.
_LOADING_SHARE = 0.1


class NotAvailableError(ValueError):
    """A requested quantity (e.g. a covariance kind) cannot be computed from these results.

    The message says why, e.g. ``"No 'cluster' covariance because the estimator did not record
    per-row scores (scores=None)"``.
    """


class HessianError(NotAvailableError):
    """The Hessian (or the outer product of the scores) cannot be inverted into a covariance.

    Raised when the information matrix is singular (parameters not separately identified),
    indefinite (the estimate is not a maximum) or has non-finite entries.

    Parameters
    ----------
    message : str
        What is wrong and what to do about it.
    names : list of str, optional
        The parameters involved (the ones loading on the offending direction).
    eigenvalue : float, optional
        The offending eigenvalue of the information matrix scaled to unit diagonal.
    """

    def __init__(self, message: str, names: Sequence[str] = (),
                 eigenvalue: float | None = None):
        super().__init__(message)
        self.names = list(names)
        self.eigenvalue = eigenvalue



class HessianWarning(RuntimeWarning):
    """The information matrix is nearly singular: standard errors are large and unreliable."""


# ------------------------------------------------------------------------------------- helpers


def join_names(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _loadings(vec: np.ndarray, names: Sequence[str]) -> tuple[list[str], str]:
    """Parameters with a large loading on ``vec`` (in order) and a printable direction."""
    mag = np.abs(vec)
    top = int(np.argmax(mag))
    keep = [int(i) for i in np.flatnonzero(mag >= _LOADING_SHARE * mag[top])]  # in order
    sign = np.sign(vec[top]) or 1.0
    direction = ", ".join(f"{names[i]} ({sign * vec[i]:+.2f})" for i in keep)
    return [names[i] for i in keep], direction


def check_information(info: np.ndarray, names: Sequence[str], *, what: str,
                       remedy: str, definite: str = "positive") -> None:
    """Check that an information matrix (``-H`` or ``G'G``) is positive definite.

    The check is scale free: the matrix is scaled to unit diagonal, :math:`R = D^{-1/2} A
    D^{-1/2}`, and the smallest eigenvalue of :math:`R` decides. Raises :class:`HessianError`
    naming the parameters that load on the offending eigenvector; warns
    (:class:`HessianWarning`) when the matrix is nearly singular.
    """
    bad = ~np.isfinite(info)
    if bad.any():
        rows, cols = np.nonzero(bad)
        pairs = sorted({(names[min(i, j)], names[max(i, j)])
                        for i, j in zip(rows, cols, strict=True)})
        listed = ", ".join(f"({a}, {b})" for a, b in pairs[:6])
        more = f" and {len(pairs) - 6} more" if len(pairs) > 6 else ""
        involved = sorted({n for p in pairs for n in p}, key=list(names).index)
        raise HessianError(f"the {what} has non-finite entries at {listed}{more}; the "
                           f"likelihood overflowed or was not evaluated there. {remedy}",
                           names=involved)
    d = np.diag(info).copy()
    scale = float(np.max(np.abs(d))) if d.size else 0.0
    flat = np.abs(d) <= 1e-12 * scale if scale > 0 else np.ones(d.shape, dtype=bool)
    if flat.any():
        who = [names[i] for i in np.flatnonzero(flat)]
        raise HessianError(
            f"the {what} is singular: it is zero on the diagonal for {join_names(who)}, so the "
            f"log-likelihood does not depend on {'it' if len(who) == 1 else 'them'} at the "
            f"estimate ({'it is' if len(who) == 1 else 'they are'} not identified). {remedy}",
            names=who, eigenvalue=0.0)
    upward = d < 0
    if upward.any():
        who = [names[i] for i in np.flatnonzero(upward)]
        raise HessianError(
            f"the {what} is not {definite} definite: the log-likelihood curves upward in "
            f"{join_names(who)} (second derivative > 0), so the estimate is not a maximum; "
            f"check convergence or start from other values", names=who)
    root = np.sqrt(d)
    scaled = info / root[:, None] / root[None, :]
    scaled = 0.5 * (scaled + scaled.T)
    lam, vecs = np.linalg.eigh(scaled)
    lam_min = float(lam[0])
    who, direction = _loadings(vecs[:, 0], names)
    if lam_min < -_SINGULAR_RTOL:
        raise HessianError(
            f"the {what} is not {definite} definite: the log-likelihood curves upward along the "
            f"direction {direction} (scaled eigenvalue {lam_min:.3g}), so the estimate is a "
            f"saddle point, not a maximum; check convergence or start from other values",
            names=who, eigenvalue=lam_min)
    if lam_min <= _SINGULAR_RTOL:
        if len(who) == 1:
            ident = f"{who[0]} is not identified"
        else:
            ident = f"{join_names(who)} are not separately identified (collinear?)"
        raise HessianError(
            f"the {what} is singular: {ident}; the log-likelihood is flat along the direction "
            f"{direction} (scaled eigenvalue {lam_min:.3g}). {remedy}",
            names=who, eigenvalue=lam_min)
    if lam_min < _NEAR_SINGULAR_RTOL:
        warnings.warn(
            f"the {what} is nearly singular (scaled eigenvalue {lam_min:.3g}): "
            f"{join_names(who)} are nearly collinear along the direction {direction}; their "
            f"standard errors are large and unreliable. {remedy}",
            HessianWarning, stacklevel=4)


def _inverse(info: np.ndarray) -> np.ndarray:
    """Inverse of a checked positive definite matrix, symmetrized."""
    inv = np.linalg.inv(info)
    return 0.5 * (inv + inv.T)



@dataclass(frozen=True)
class Ingredients:
    """What the covariance kinds are computed from.

    Parameters
    ----------
    names : list of str
        The estimated parameters, in order (:math:`K` of them).
    hessian : numpy.ndarray or None
        :math:`K \\times K` Hessian of the total log-likelihood at the estimate.
    scores : numpy.ndarray or None
        :math:`n \\times K` per-row scores.
    group_codes : numpy.ndarray or None
        Length-:math:`n` unit codes ``0..U-1`` of the score rows.
    n_groups : int or None
        :math:`U`.
    precomputed : dict of str to numpy.ndarray
        Covariances the estimator computed itself, by kind (they take precedence).
    score_kinds : tuple of numpy.ndarray, optional
        ``(key, table)``: the same scores by kind of row, ``scores[i] = table[key[i]]`` (a
        row's score that depends on its state and action only); :math:`G'G` and the groups'
        sums then run over the kinds, not the rows.
    """

    names: Sequence[str]
    hessian: np.ndarray | None = None
    scores: np.ndarray | None = None
    group_codes: np.ndarray | None = None
    n_groups: int | None = None
    precomputed: Mapping[str, np.ndarray] = field(default_factory=dict)
    score_kinds: tuple[np.ndarray, np.ndarray] | None = None


def _gram(ing: Ingredients) -> np.ndarray:
    """:math:`G'G`, from the kinds of rows when known."""
    if ing.score_kinds is not None:
        key, table = ing.score_kinds
        count = np.bincount(key, minlength=table.shape[0]).astype(np.float64)
        return (table * count[:, None]).T @ table
    return ing.scores.T @ ing.scores


def _group_sums(ing: Ingredients, n_groups: int) -> np.ndarray:
    """The groups' score sums, from the kinds of rows when known."""
    if ing.score_kinds is not None:
        from estimators._kernels import keyed_group_sums

        key, table = ing.score_kinds
        out = np.zeros((n_groups, table.shape[1]))
        keyed_group_sums(np.ascontiguousarray(ing.group_codes, dtype=np.int64),
                         np.ascontiguousarray(key, dtype=np.int64),
                         np.ascontiguousarray(table, dtype=np.float64), out)
        return out
    return group_sums(ing.group_codes, ing.scores, n_groups)


def _missing(kind: str, needs: str) -> NotAvailableError:
    return NotAvailableError(f"No {kind!r} covariance because the estimator did not record "
                             f"{needs}")


def _bread(kind: str, ing: Ingredients) -> np.ndarray:
    """:math:`(-H)^{-1}`, after checking that :math:`-H` is positive definite."""
    if ing.hessian is None:
        raise _missing(kind, "the Hessian of the log-likelihood (hessian=None)")
    info = -ing.hessian
    check_information(
        info, ing.names, what="Hessian of the log-likelihood", definite="negative",
        remedy="Fix or drop one of the parameters named (a normalization), or check that the "
               "data vary enough to identify them")
    return _inverse(info)


def covariance(kind: str, ing: Ingredients) -> np.ndarray:
    """The covariance matrix of one kind.

    Parameters
    ----------
    kind : str
        ``"hessian"``, ``"opg"``, ``"sandwich"``, ``"cluster"`` or a precomputed kind.
    ing : Ingredients
        The Hessian, scores, units and precomputed matrices.

    Returns
    -------
    numpy.ndarray
        :math:`K \\times K`, in the order of ``ing.names``.

    Raises
    ------
    ValueError
        If ``kind`` is neither built in nor precomputed (the accepted kinds are listed).
    NotAvailableError
        If an ingredient of the kind is missing (the message says which).
    HessianError
        If the information matrix is singular or not definite (the parameters are named).
    """
    if kind in ing.precomputed:
        return np.asarray(ing.precomputed[kind], dtype=float)
    if kind == "hessian":
        return _bread("hessian", ing)
    if kind == "opg":
        if ing.scores is None:
            raise _missing("opg", "per-row scores (scores=None)")
        info = _gram(ing)
        check_information(
            info, ing.names, what="outer product of the scores (G'G)",
            remedy="The scores of the parameters named are (nearly) collinear in the data")
        return _inverse(info)
    if kind == "sandwich":
        if ing.scores is None:
            raise _missing("sandwich", "per-row scores (scores=None)")
        bread = _bread("sandwich", ing)
        return bread @ _gram(ing) @ bread
    if kind == "cluster":
        if ing.scores is None:
            raise _missing("cluster", "per-row scores (scores=None)")
        if ing.group_codes is None or ing.n_groups is None:
            raise _missing("cluster", "the unit of each score row (groups=None)")
        n, k = ing.scores.shape
        n_groups = int(ing.n_groups)
        if n_groups < 2:
            raise NotAvailableError(f"No 'cluster' covariance with {n_groups} unit: "
                                    "clustering needs at least two units")
        if n <= k:
            raise NotAvailableError(f"No 'cluster' covariance with {n} score rows and {k} "
                                    "parameters: the small-sample factor (n-1)/(n-K) needs "
                                    "n > K")
        bread = _bread("cluster", ing)
        sums = _group_sums(ing, n_groups)
        factor = n_groups / (n_groups - 1.0) * (n - 1.0) / (n - k)
        return factor * (bread @ (sums.T @ sums) @ bread)
    known = list(BUILTIN_COV_TYPES) + [c for c in ing.precomputed if c not in BUILTIN_COV_TYPES]
    raise ValueError(f"unknown covariance kind {kind!r}; accepted: "
                     + ", ".join(repr(c) for c in known))


def mapped_covariances(ing: Ingredients, M: np.ndarray,
                       kinds: Sequence[str] = BUILTIN_COV_TYPES
                       ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Covariances of parameters :math:`x = x_0 + M z` that are a linear function of the
    coordinates :math:`z` actually estimated (``ing`` holds the Hessian and scores in
    :math:`z`): by the delta method, exact for a linear map,

    .. math:: V_x = M V_z M',

    for each kind :math:`V_z` of :func:`covariance`. :math:`V_x` is singular when :math:`M`
    has fewer columns than rows (the parameters move only along its columns: an estimate held
    on a linear constraint).

    Returns
    -------
    covs : dict of str to numpy.ndarray
        The kinds available.
    unavailable : dict of str to str
        Why the others are not.
    """
    covs, unavailable = {}, {}
    for kind in kinds:
        try:
            with warnings.catch_warnings():
                if kind != "hessian":  # warned about when the kind is asked for, not here
                    warnings.simplefilter("ignore", HessianWarning)
                V = covariance(kind, ing)
        except NotAvailableError as exc:
            unavailable[kind] = str(exc)
            continue
        out = M @ V @ M.T
        covs[kind] = 0.5 * (out + out.T)
    return covs, unavailable


def group_sums(groups: np.ndarray, scores: np.ndarray, n_groups: int) -> np.ndarray:
    """Column sums of ``scores`` within groups: :math:`\\sum_{i: g_i = g} s_{ik}`, shape
    ``(n_groups, K)``.

    Groups in ascending order (a panel sorted by unit, the usual case) are summed segment by
    segment with ``np.add.reduceat`` (groups without rows sum to zero); otherwise one
    ``np.bincount`` per column, which adds the rows in order as ``np.add.at`` does, an order of
    magnitude faster than it on long panels."""
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    n = groups.shape[0]
    if n and n == scores.shape[0] and bool(np.all(groups[1:] >= groups[:-1])) \
            and groups[0] >= 0 and groups[-1] < n_groups:
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        out = np.zeros((n_groups, scores.shape[1]))
        out[groups[starts]] = np.add.reduceat(scores, starts, axis=0)
        return out
    out = np.empty((n_groups, scores.shape[1]))
    for k in range(scores.shape[1]):
        out[:, k] = np.bincount(groups, weights=scores[:, k], minlength=n_groups)
    return out


def row_scores(cell: np.ndarray, rows: np.ndarray, state: np.ndarray, action: np.ndarray,
               n_rows: int) -> np.ndarray:
    """Per-row scores from per-cell ones: row ``rows[i]`` gets ``cell[state[i], action[i]]``,
    the other rows of the ``(n_rows, K)`` result are zero.

    A row's score depends on its :math:`(s, a)` only, so it is gathered from the ``(S, A, K)``
    cell scores through the flat cell index (one ``np.take``; about four times faster than
    indexing by the pair on long panels)."""
    S, A, K = cell.shape
    flat = np.ascontiguousarray(cell, dtype=np.float64).reshape(S * A, K)
    gathered = np.take(flat, np.asarray(state) * A + np.asarray(action), axis=0)
    rows = np.asarray(rows)
    if rows.shape[0] == n_rows and (n_rows == 0 or (rows[0] == 0 and rows[-1] == n_rows - 1)):
        return gathered  # every row is in the sample, in order (rows are ascending)
    out = np.zeros((n_rows, K))
    out[rows] = gathered
    return out
