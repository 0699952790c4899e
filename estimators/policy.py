"""First-stage choice probabilities (the P-step of CCP, NPL and PQR): smoothed cell frequencies
and a flexible multinomial logit in state dummies, both fitted on the counts :math:`n(s, a)`.

* :func:`frequency_ccps`: :math:`\\hat p(a \\mid s) = (n(s,a) + \\alpha) / (N(s) + \\alpha |A(s)|)`;
* :func:`flexible_logit`: a multinomial logit in the regressors of :func:`state_design` (state
  dummies and their interactions), by Newton's method on the counts; :func:`logit_ccps` is its
  row-level twin through statsmodels' ``MNLogit`` (used by the tests to check it).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from ddc.data import EstimationData
from ddc.model import Model

__all__ = ["LogitPolicy", "flexible_logit", "frequency_ccps", "logit_ccps", "state_design"]

#: Numeric state variables with more values than this enter :func:`state_design` as a cubic
#: polynomial in their value instead of one dummy per value.
MAX_DUMMIES = 12


def frequency_ccps(model: Model, counts: np.ndarray, smoothing: float = 0.5) -> np.ndarray:
    """Choice probabilities by cell frequencies, smoothed.

    :math:`\\hat p(a \\mid s) = (n(s,a) + \\alpha) / (N(s) + \\alpha |A(s)|)` over the feasible
    actions (the Krichevsky-Trofimov / Jeffreys estimator for ``smoothing=0.5``), so no feasible
    action gets probability zero; a state never observed gets the uniform distribution.

    Parameters
    ----------
    model : ddc.Model
        The model (for feasibility).
    counts : numpy.ndarray, shape (S, A)
        Choice counts.
    smoothing : float
        :math:`\\alpha > 0`.

    Returns
    -------
    numpy.ndarray, shape (S, A)
    """
    if not smoothing > 0:
        raise ValueError(f"smoothing must be positive (it keeps every feasible action's "
                         f"probability above zero), got {smoothing!r}")
    feas = model.feasible
    num = np.where(feas, counts + smoothing, 0.0)
    return num / num.sum(axis=1, keepdims=True)


def logit_ccps(model: Model, cd: EstimationData) -> np.ndarray:
    """Choice probabilities from a flexible multinomial logit (statsmodels ``MNLogit``).

    The regressors are one-hot indicators of every state variable's value and of every pair of
    state variables' values (main effects and two-way interactions) over the states with a
    choice. Predictions are restricted to the feasible actions and renormalized.
    """
    import statsmodels.api as sm

    feas = model.feasible
    multi = feas.sum(axis=1) > 1
    codes = model.space.codes
    cols = []
    J = codes.shape[1]
    for j in range(J):
        for v in range(1, model.space.shape[j]):
            cols.append(codes[:, j] == v)
    for j in range(J):
        for k in range(j + 1, J):
            for v in range(1, model.space.shape[j]):
                for w in range(1, model.space.shape[k]):
                    cols.append((codes[:, j] == v) & (codes[:, k] == w))
    Xs = np.column_stack([np.ones(model.n_states), *cols]).astype(float)
    keep = multi[cd.state]
    y = cd.action[keep]
    X = Xs[cd.state[keep]]
    used = np.flatnonzero(X.std(axis=0) > 0)
    used = np.union1d([0], used)
    X = X[:, used]
    # drop exactly collinear columns
    q, r = np.linalg.qr(X)
    indep = np.abs(np.diag(r)) > 1e-8 * np.abs(np.diag(r)).max()
    X = X[:, indep]
    res = sm.MNLogit(y, X).fit(disp=0, maxiter=200, method="newton")
    present = np.unique(y)
    prob = np.zeros((model.n_states, model.n_actions))
    prob[:, present] = res.predict(Xs[:, used][:, indep])
    prob = np.where(feas, np.maximum(prob, 1e-12), 0.0)
    return prob / prob.sum(axis=1, keepdims=True)



# ------------------------------------------------------------------------------ state design
def state_design(model: Model, order: int = 2) -> tuple[np.ndarray, list[str]]:
    """Regressors that are functions of the state: dummies and their interactions.

    An intercept, one dummy per value of every state variable but its first, and the products of
    dummies of up to ``order`` different variables (``order=2``: main effects and two-way
    interactions, the design of :func:`estimators.ccp.logit_ccps`; ``order`` equal to the number
    of state variables: saturated). A numeric variable with more than :data:`MAX_DUMMIES` values
    enters instead as a cubic polynomial in its value scaled to [0, 1] (e.g. Rust's mileage).

    Parameters
    ----------
    model : ddc.Model
        The model.
    order : int
        Highest order of interactions.

    Returns
    -------
    design : numpy.ndarray, shape (S, F)
    names : list of str
        Column names (``"plan=member"``, ``"plan=member:ship=2"``, ``"mileage^2"``, ...).
    """
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    codes = model.space.codes
    terms: list[list[tuple[str, np.ndarray]]] = []
    for j, var in enumerate(model.space.variables):
        values = var.values
        numeric = all(isinstance(v, (int, float, np.integer, np.floating))
                      and not isinstance(v, bool) for v in values)
        if numeric and len(values) > MAX_DUMMIES:
            x = np.asarray(values, dtype=float)[codes[:, j]]
            x = (x - x.min()) / max(x.max() - x.min(), 1e-300)
            terms.append([(f"{var.name}^{p}" if p > 1 else var.name, x**p) for p in (1, 2, 3)])
        else:
            terms.append([(f"{var.name}={values[v]}", (codes[:, j] == v).astype(float))
                          for v in range(1, len(values))])
    cols = [np.ones(model.n_states)]
    names = ["const"]
    J = len(terms)
    for r in range(1, min(order, J) + 1):
        for combo in itertools.combinations(range(J), r):
            for parts in itertools.product(*(terms[j] for j in combo)):
                names.append(":".join(p[0] for p in parts))
                col = parts[0][1]
                for p in parts[1:]:
                    col = col * p[1]
                cols.append(col)
    return np.column_stack(cols), names


def _independent_columns(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Indices of a maximal set of linearly independent columns of ``X`` on the rows with
    positive weight (weighted by their square roots), in order; all-zero columns dropped."""
    rows = weights > 0
    Xw = X[rows] * np.sqrt(weights[rows])[:, None]
    keep = np.flatnonzero(np.abs(Xw).max(axis=0) > 0) if Xw.size else np.arange(0)
    if keep.size == 0:
        return keep
    Xw = Xw[:, keep] / np.linalg.norm(Xw[:, keep], axis=0)
    _, r, perm = sla.qr(Xw, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    rank = int(np.sum(d > 1e-9 * d[0]))
    return np.sort(keep[perm[:rank]])


# ------------------------------------------------------------------------------ logit policy
class LogitPolicy(NamedTuple):
    """A multinomial logit policy fitted to cell counts (see :func:`flexible_logit`).

    Attributes
    ----------
    pi : numpy.ndarray, shape (S, A)
        Fitted choice probabilities (0 where infeasible; 1 for a single feasible action).
    design : numpy.ndarray, shape (S, F)
        The regressors used (independent columns of :func:`state_design`).
    names : list of str
        Their names.
    coef : numpy.ndarray, shape (F, C)
        Coefficients of the actions ``free`` (the reference action's are zero).
    free : numpy.ndarray of int
        The actions with coefficients.
    ref : int
        The reference action.
    information : numpy.ndarray, shape (F C, F C)
        Fisher information of the coefficients (flattened ``(f, c)`` in C order).
    loglik : float
        Log-likelihood of the counts.
    converged : bool
    iterations : int
    """

    pi: np.ndarray
    design: np.ndarray
    names: list
    coef: np.ndarray
    free: np.ndarray
    ref: int
    information: np.ndarray
    loglik: float
    converged: bool
    iterations: int


def _logit_probs(design: np.ndarray, coef: np.ndarray, free: np.ndarray, feas: np.ndarray
                 ) -> np.ndarray:
    S, A = feas.shape
    z = np.zeros((S, A))
    z[:, free] = design @ coef
    z = np.where(feas, z, -np.inf)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def flexible_logit(model: Model, counts: np.ndarray, order: int = 2, ref: int | None = None,
                   tol: float = 1e-10, max_iter: int = 100) -> LogitPolicy:
    """Multinomial logit choice probabilities in state dummies, by Newton's method on the counts.

    The regressors :math:`x_s` are those of :func:`state_design` (``order=2``: the design of
    :func:`estimators.ccp.logit_ccps`); since they are functions of the state, the row-level
    likelihood is :math:`\\sum_{s,a} n(s,a) \\log p(a \\mid s)` and the fit costs
    :math:`O(S)` per step whatever the number of rows (``logit_ccps``, on the rows with
    statsmodels, gives the same estimate). Only observed states with a choice enter; the
    prediction covers every state, over its feasible actions.

    Parameters
    ----------
    model : ddc.Model
        The model.
    counts : numpy.ndarray, shape (S, A)
        Choice counts.
    order : int
        Interaction order of the dummies.
    ref : int, optional
        Reference action (zero coefficients); the first action feasible in every observed choice
        state by default.
    tol : float
        Stop when the Newton decrement is below ``tol``.
    max_iter : int
        Most Newton steps.

    Returns
    -------
    LogitPolicy

    Raises
    ------
    ValueError
        If an action feasible in the observed choice states is never chosen there (its logit
        coefficients have no finite maximum): use smoothed frequencies instead.
    """
    feas = model.feasible
    counts = np.asarray(counts, dtype=float)
    N = counts.sum(axis=1)
    obs = (N > 0) & (feas.sum(axis=1) > 1)
    if not obs.any():
        raise ValueError("no observed state has a choice: the logit policy cannot be fitted")
    if ref is None:
        always = np.flatnonzero(feas[obs].all(axis=0))
        if always.size == 0:
            raise ValueError("no action is feasible in every observed choice state; give ref=")
        ref = int(always[0])
    if not feas[obs, ref].all():
        raise ValueError(f"the reference action {model.actions[ref]!r} must be feasible in every "
                         "observed choice state")
    free = np.array([a for a in range(model.n_actions) if a != ref and feas[obs, a].any()],
                    dtype=int)
    never = [model.actions[a] for a in free if counts[obs, a].sum() == 0]
    if never:
        raise ValueError(f"action(s) {never} are feasible but never chosen in the observed "
                         "choice states: their logit coefficients have no finite maximum. Use "
                         "policy='frequency' (smoothed frequencies) instead.")
    full, names = state_design(model, order)
    varies = np.ones(full.shape[1], dtype=bool)
    varies[1:] = full[obs][:, 1:].std(axis=0) > 0
    cand = np.flatnonzero(varies)
    keep = cand[_independent_columns(full[:, cand], np.where(obs, N, 0.0))]
    X = full[:, keep]
    names = [names[i] for i in keep]
    F, C = X.shape[1], free.size
    Xo, no, No, fo = X[obs], counts[obs], N[obs], feas[obs]
    coef = np.zeros((F, C))

    def loglik(p):
        with np.errstate(divide="ignore"):
            lp = np.where(no > 0, np.log(np.where(no > 0, p, 1.0)), 0.0)
        return float(np.sum(no * lp))

    def info(p):
        pc = p[:, free]
        cov = pc[:, :, None] * (np.eye(C)[None] - pc[:, None, :])  # diag(p) - p p'
        H = np.einsum("s,sf,sg,scd->fcgd", No, Xo, Xo, cov)
        return H.reshape(F * C, F * C)

    p = _logit_probs(Xo, coef, free, fo)
    ll = loglik(p)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        grad = (Xo.T @ (no[:, free] - No[:, None] * p[:, free])).ravel()
        H = info(p)
        step = np.linalg.solve(H, grad)
        dec = float(grad @ step)
        if dec < tol:
            converged = True
            break
        lam = 1.0
        while lam > 1e-10:
            trial = coef + lam * step.reshape(F, C)
            pt = _logit_probs(Xo, trial, free, fo)
            llt = loglik(pt)
            if llt >= ll - 1e-12 * max(1.0, abs(ll)):
                break
            lam *= 0.5
        coef, p, ll = trial, pt, llt
    pi = _logit_probs(X, coef, free, feas)
    return LogitPolicy(pi, X, names, coef, free, ref, info(p), ll, converged, it)
