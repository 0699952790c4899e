"""PQR in small samples: the fixed point on the model's own continuation policy, and the thin-cell
diagnostic.

**Why two-step PQR is biased in small samples.** PQR's rewards :math:`\\tilde r = R \\hat\\ell`
are linear in the log first-stage probabilities :math:`\\hat\\ell = \\log\\hat\\pi`, and so is
the projection :math:`\\hat\\theta = (\\tilde X' \\hat\\Omega \\tilde X)^{-1} \\tilde X'
\\hat\\Omega \\tilde r` *given the weights*. Two things break the linearity's unbiasedness in a
sample of a few thousand units (a Monte Carlo decomposition on the membership model at 3,000
customers x 24 months, docs/irl.rst):

* the inverse-variance weights :math:`\\hat w(s,a) = N(s) / (1/\\hat\\pi(a|s) + 1/\\hat\\pi(a_0|s))`
  come from the same noisy frequencies as the log-odds they weight: a cell where the rare action
  happened to be chosen more often gets both a higher log-odds and a higher weight, so the rare
  action's reward is biased up (theta_annual +0.18, 5 Monte Carlo s.e.; with the weights at the
  true policy +0.05);
* the continuation values :math:`W(s) - \\beta E[Z(s') | s, a]` are discounted sums of
  :math:`\\hat\\ell` over every state reachable from :math:`s`, thin ones included, where the log
  of a frequency is biased (Jensen) and the smoothing decides the value.

**The fixed point.** Write :math:`R = D + C`, with :math:`(D\\ell)(s,a) = \\ell(s,a) -
\\ell(s,a_0)` the current log-odds and :math:`C` the continuation part. At the policy
:math:`\\pi_\\theta` of parameters :math:`\\theta` PQR is exact: :math:`R\\ell_\\theta =
\\tilde X\\theta`. Iterating the P-step on the policy implied by the estimate (an NPL-like
fixed point) keeps the data only where they are direct, in the current log-odds, and takes the
continuation and the weights from :math:`\\pi_{\\theta_k}`:

.. math::

    \\theta_{k+1} = \\arg\\min_\\theta \\sum_{(s,a)} w_{\\theta_k}(s,a)
        \\bigl(D\\hat\\ell + C\\ell_{\\theta_k} - \\tilde X\\theta\\bigr)^2(s,a).

Since :math:`C\\ell_{\\theta} = \\tilde X\\theta - D\\ell_\\theta`, its fixed point
:math:`\\theta^*` solves the estimating equation

.. math:: g(\\theta) = \\tilde X' \\Omega_\\theta\\, D(\\hat\\ell - \\ell_\\theta) = 0,

a minimum-distance fit of the model's log-odds to the observed ones with instruments
:math:`\\tilde X` and weights :math:`w_\\theta(s,a) = N(s) / (1/\\pi_\\theta(a|s) +
1/\\pi_\\theta(a_0|s))` (no longer correlated with the sampling error). The log-odds of the
smoothed frequencies with :math:`\\alpha = 1/2` are Haldane's, unbiased to :math:`O(1/n)` in
each cell. :func:`solve_fixed_point` finds :math:`\\theta^*` by Newton's method on :math:`g`
(Jacobian :math:`J = \\tilde X' \\Omega_\\theta D\\, \\partial\\ell_\\theta/\\partial\\theta'`,
analytic from the model's fixed point; the weights' derivative, multiplied by a residual of mean
zero, is left out) with a backtracking line search on :math:`g' (\\tilde X'\\Omega_\\theta
\\tilde X)^{-1} g`, started at the two-step estimate. By the implicit function theorem
:math:`\\partial\\theta^*/\\partial\\hat\\ell = J^{-1}\\tilde X'\\Omega D` (the delta method).

**Thin cells.** :func:`thin_cells` counts the observed choice states where the anchor or another
feasible action is chosen fewer than ``min_count`` times and the share of each parameter's
delta-method variance that comes from them: where that share is large the log of a frequency
of a handful of choices drives the estimate, and its small-sample bias may not be small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["FixedPoint", "fixed_point_coefficients", "log_odds", "log_odds_adjoint",
           "solve_fixed_point", "thin_cells"]

#: Halvings of the Newton step tried before the fixed point gives up.
MAX_HALVINGS = 30


class FixedPoint(NamedTuple):
    """The outcome of :func:`solve_fixed_point`.

    Attributes
    ----------
    theta : numpy.ndarray, shape (K,)
        The fixed point :math:`\\theta^*` (the last iterate if not converged).
    weights : numpy.ndarray, shape (S, A)
        The projection weights :math:`w_{\\theta^*}` (zero outside the cells).
    g : numpy.ndarray, shape (K,)
        The estimating equation at :math:`\\theta^*`.
    J : numpy.ndarray, shape (K, K)
        Its Jacobian :math:`\\partial g / \\partial \\theta'` (with the sign that makes it
        :math:`\\tilde X'\\Omega D \\partial\\ell/\\partial\\theta'`: :math:`g` decreases).
    A : numpy.ndarray, shape (K, K)
        :math:`\\tilde X'\\Omega_{\\theta^*}\\tilde X`.
    solution : ddc.Solution
        The model solved at :math:`\\theta^*`.
    iterations : int
        Newton steps.
    converged : bool
        Whether the step fell below the tolerance.
    message : str
        What happened.
    """

    theta: np.ndarray
    weights: np.ndarray
    g: np.ndarray
    J: np.ndarray
    A: np.ndarray
    solution: object
    iterations: int
    converged: bool
    message: str


def log_odds(ell: np.ndarray, anchor: int) -> np.ndarray:
    """:math:`(D\\ell)(s, a) = \\ell(s, a) - \\ell(s, a_0)`, shape (S, A)."""
    return ell - ell[:, [anchor]]


def log_odds_adjoint(c: np.ndarray, anchor: int) -> np.ndarray:
    """:math:`D'c` for ``c`` of shape (S, A, K) with zeros in the anchor's column:
    ``out[s, a] = c[s, a]`` for :math:`a \\ne a_0`, ``out[s, a0] = -sum_a c[s, a]``."""
    out = c.copy()
    out[:, anchor] = -np.delete(c, anchor, axis=1).sum(axis=1)
    return out


def solve_fixed_point(solve: Callable, weights: Callable, ell: np.ndarray, features: np.ndarray,
                      cells: np.ndarray, anchor: int, theta: np.ndarray, tol: float = 1e-10,
                      max_iter: int = 50) -> FixedPoint:
    """Newton's method for PQR's fixed point :math:`g(\\theta) = \\tilde X'\\Omega_\\theta
    D(\\hat\\ell - \\ell_\\theta) = 0` (module notes).

    Each step is the full Newton step :math:`J^{-1} g` when it descends the merit below, else
    Newton's for the weights held at the current iterate, :math:`\\Delta\\theta = J_w^{-1}
    g`, :math:`J_w = \\tilde X'\\Omega_{\\theta_k} D \\partial\\ell_\\theta/
    \\partial\\theta'`, shortened (Armijo backtracking) until the merit :math:`g_k' A_k^{-1}
    g_k` falls (:math:`g_k` with the weights :math:`\\Omega_{\\theta_k}`, :math:`A_k =
    \\tilde X'\\Omega_{\\theta_k}\\tilde X`; the direction descends it). Holding the weights
    within a step matters: with weights that move, the merit also falls by driving the weights of
    the rare actions to zero (parameters running off to infinity). The weights are updated
    between steps, so the limit is the fixed point. The returned :math:`J` is the full Jacobian
    :math:`-\\partial g/\\partial\\theta' = J_w - \\sum_c \\tilde X_c e_c \\partial
    w_c/\\partial\\theta'` (:math:`e = D(\\hat\\ell - \\ell_\\theta)`), for the delta
    method.

    Parameters
    ----------
    solve : callable
        ``solve(theta) -> ddc.Solution``: the model solved at utility parameters ``theta``
        (warm-started by the caller).
    weights : callable
        ``weights(pi, dlogpi) -> (w, dw)``: projection weights (S, A) at a policy (zero outside
        the cells) and, when ``dlogpi`` (S, A, K) is given, their derivative (S, A, K), else
        ``None``.
    ell : numpy.ndarray, shape (S, A)
        The first stage's log choice probabilities :math:`\\hat\\ell` (finite where feasible).
    features : numpy.ndarray, shape (S, A, K)
        :math:`\\tilde X` (finite on ``cells``).
    cells : numpy.ndarray of bool, shape (S, A)
        The projection's cells (observed choice states, feasible actions other than the anchor).
    anchor : int
        The anchor's code.
    theta : numpy.ndarray, shape (K,)
        Start (the two-step estimate).
    tol : float
        Convergence when a full Newton step has :math:`\\max_k |\\Delta\\theta_k| / (1 +
        |\\theta_k|) <` ``tol``.
    max_iter : int
        Newton steps at most.

    Returns
    -------
    FixedPoint
        ``converged`` False (and the last iterate) when the model's fixed point fails, the
        Jacobian is singular, no step lowers the merit, or ``max_iter`` is reached; ``message``
        says which.
    """
    Xc = features[cells]
    Dl = log_odds(ell, anchor)[cells]
    used = cells.copy()
    used[:, anchor] = cells.any(axis=1)

    def residual(sol):
        with np.errstate(divide="ignore", invalid="ignore"):  # underflow: an infinite merit
            lp = np.log(np.where(used, sol.pi, 1.0))
            return Dl - log_odds(lp, anchor)[cells]

    def linearize(sol):
        dl = sol.dlogccp_dtheta()
        w, dw = weights(sol.pi, dl)
        wc, e = w[cells], residual(sol)
        A = Xc.T @ (wc[:, None] * Xc)
        g = Xc.T @ (wc * e)
        J_frozen = Xc.T @ (wc[:, None] * log_odds(dl, anchor)[cells])
        return w, g, J_frozen - Xc.T @ (e[:, None] * dw[cells]), A, J_frozen

    theta = np.asarray(theta, dtype=float).copy()
    sol = solve(theta)
    if not sol.converged:
        return _failed(theta, sol, 0, "the model's fixed point did not converge at the two-step "
                                      "estimate")
    for it in range(1, max_iter + 1):
        w, g, J, A, J_frozen = linearize(sol)
        merit = float(g @ np.linalg.solve(A, g))
        try:
            directions = [np.linalg.solve(J_frozen, g)]
        except np.linalg.LinAlgError:
            return FixedPoint(theta, w, g, J, A, sol, it, False,
                              "the fixed point's Jacobian is singular")
        try:  # the full Newton step first (quadratic convergence) where it descends the merit
            full = np.linalg.solve(J, g)
            if g @ np.linalg.solve(A, J_frozen @ full) > 0:
                directions.insert(0, full)
        except np.linalg.LinAlgError:
            pass
        wc = w[cells]
        found = None
        for k, step in enumerate(directions):
            t = 1.0
            for _ in range(MAX_HALVINGS if k == len(directions) - 1 else 3):
                sol_t = solve(theta + t * step)
                et = residual(sol_t)
                if sol_t.converged and np.all(np.isfinite(et)):
                    gt = Xc.T @ (wc * et)
                    merit_t = float(gt @ np.linalg.solve(A, gt))
                    if np.isfinite(merit_t) and (merit_t <= (1 - 2e-4 * t) * merit
                                                 or merit_t < 1e-20):
                        found = step, t, sol_t
                        break
                t /= 2
            if found is not None:
                break
        if found is None:
            return FixedPoint(theta, w, g, J, A, sol, it, False,
                              "Newton on the estimating equation: no step lowered the merit "
                              f"g'A^-1 g = {merit:.3g} (no fixed point near the two-step "
                              "estimate)")
        step, t, sol_t = found
        theta = theta + t * step
        sol = sol_t
        if t == 1.0 and np.max(np.abs(step) / (1 + np.abs(theta))) < tol:
            w, g, J, A, _ = linearize(sol)
            return FixedPoint(theta, w, g, J, A, sol, it, True,
                              f"Newton on the estimating equation: {it} steps")
    w, g, J, A, _ = linearize(sol)
    merit = float(g @ np.linalg.solve(A, g))
    return FixedPoint(theta, w, g, J, A, sol, max_iter, False,
                      f"Newton on the estimating equation: not converged in {max_iter} steps "
                      f"(merit g'A^-1 g = {merit:.3g}); raise max_iter or use fixed_point=False")


def _failed(theta, sol, it, message) -> FixedPoint:
    K = theta.size
    return FixedPoint(theta, None, np.full(K, np.nan), np.full((K, K), np.nan),
                      np.full((K, K), np.nan), sol, it, False, message)


def fixed_point_coefficients(fp: FixedPoint, features: np.ndarray, cells: np.ndarray,
                             anchor: int) -> np.ndarray:
    """:math:`\\partial\\theta^*/\\partial\\hat\\ell = J^{-1}\\tilde X'\\Omega D`, shape
    (S, A, K): ``out[s, a, k]`` is the derivative of :math:`\\theta^*_k` in
    :math:`\\hat\\ell(s, a)`."""
    K = features.shape[2]
    Cm = np.zeros((*cells.shape, K))
    Cm[cells] = fp.weights[cells][:, None] * np.linalg.solve(fp.J, features[cells].T).T
    return log_odds_adjoint(Cm, anchor)


def thin_cells(counts: np.ndarray, feasible: np.ndarray, observed: np.ndarray,
               state_variance: np.ndarray, names: list[str], min_count: int) -> pd.DataFrame:
    """Thin cells behind PQR's inversion: states with an action chosen fewer than ``min_count``
    times, and their share of each parameter's variance.

    Parameters
    ----------
    counts : numpy.ndarray, shape (S, A)
        Choice counts.
    feasible : numpy.ndarray of bool, shape (S, A)
        Feasibility.
    observed : numpy.ndarray of bool, shape (S,)
        The observed choice states (with the anchor, a choice and at least one visit).
    state_variance : numpy.ndarray, shape (S, K)
        Each state's contribution to each parameter's delta-method variance,
        :math:`N(s)\\sum_a \\hat\\pi(a|s)\\Psi_k(s,a)^2` (they sum to the variance).
    names : list of str
        Parameter names.
    min_count : int
        A state is thin when some feasible action (the anchor included) has fewer choices.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter: ``thin_states`` (thin observed choice states), ``states``
        (observed choice states), ``variance_share`` (share of the parameter's delta-method
        variance from the thin states).
    """
    low = np.where(feasible, counts, np.inf).min(axis=1) < min_count
    thin = observed & low
    total = state_variance[observed].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, state_variance[thin].sum(axis=0) / total, 0.0)
    return pd.DataFrame({"thin_states": int(thin.sum()), "states": int(observed.sum()),
                         "variance_share": share}, index=pd.Index(names, name="param"))
