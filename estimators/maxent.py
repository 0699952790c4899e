"""Maximum causal entropy inverse reinforcement learning (Ziebart 2010) with a linear reward.

With reward :math:`r_\\theta(s,a) = X(s,a)\\theta`, the maximum causal entropy policy is the soft
(logit) Bellman policy: soft value iteration

.. math:: Q(s,a) = r_\\theta(s,a) + \\beta E[V(s') \\mid s,a], \\qquad
          V(s) = \\log \\sum_a e^{Q(s,a)}, \\qquad \\pi(a \\mid s) = e^{Q(s,a) - V(s)},

is the logit dynamic discrete choice model, and the causal log-likelihood of the observed
decisions, :math:`\\ell(\\theta) = \\sum_{s,a} n(s,a) \\log\\pi_\\theta(a \\mid s)`, is NFXP's
choice log-likelihood. MCE IRL maximizes it by gradient ascent, the gradient being *empirical minus
expected feature counts*. The expected counts come from a forward pass: the discounted state
occupancy

.. math:: d = \\sum_{k \\ge 0} (\\beta P_\\pi')^k m, \\qquad
          m(s) = N(s) - \\beta \\sum_{s',a'} n(s',a') P(s \\mid s', a'),

so that :math:`\\nabla\\ell = \\sum_{s,a} n(s,a) X(s,a) - \\sum_{s,a} d(s)\\pi(a \\mid s) X(s,a)`.
The seed :math:`m` is the empirical state counts net of the discounted one-step-ahead inflow
predicted from the observed decisions: each observed decision starts a discounted forward pass
at its state, less :math:`\\beta` times one started from its next-state distribution. This is
exact: NFXP's gradient is :math:`\\sum n (X + \\beta P F) - \\sum N F` with
:math:`F = (I - \\beta P_\\pi)^{-1} X_\\pi` (the implicit-function derivative of the value,
solved backward), i.e. :math:`\\sum n X - m' F`, and :math:`m'(I - \\beta P_\\pi)^{-1} X_\\pi =
d' X_\\pi` is the same number computed forward (the adjoint). So the estimate is NFXP's (to the
optimizers' tolerances). ``forward="iterate"`` runs the forward pass step by step with the
``push_forward`` kernel until the remaining mass is below ``forward_tol``; ``forward="solve"``
(default) sums it in closed form, :math:`(I - \\beta P_\\pi)' d = m`.

The textbook variant, ``feature_counts="horizon"``, matches instead the undiscounted feature
counts of each unit's observed window to their expectation from the unit's first state over its
number of periods (a finite forward pass from the empirical initial states):

.. math:: \\sum_i \\sum_{t < T_i} X(s_{it}, a_{it}) =
          \\sum_i E_\\theta\\Big[\\sum_{t < T_i} X(s_t, a_t) \\,\\Big|\\, s_0 = s_{i0}\\Big].

It is consistent (the expectation holds at the true parameters) but it is a method-of-moments
estimator, not the maximum likelihood estimate: the likelihood's score uses the *expected*
next-state values :math:`E[F(s') \\mid s_t, a_t]` where feature matching, telescoping over the
window, uses the *realized* :math:`s_{t+1}`, and the two differ by a mean-zero martingale term
that is :math:`O_p(\\sqrt n)` (and by the discounting). In Ziebart's original setting -- a
finite horizon without discounting, deterministic transitions and the horizon's own
non-stationary soft policy -- the log-likelihood telescopes to :math:`\\theta' \\sum_t X_t -
V_0(s_0)` and feature matching is maximum likelihood; none of that holds here. Its covariance is
the sandwich of the unit-level moments (kind ``"cluster"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.solver import ConvergenceError, Solution, Solver
from ddc.utility import LinearUtility
from estimators.base import Estimator, Fit, Inference, Prepared, register
from estimators.data import ChoiceData
from estimators.first_stage import first_stage_covariances
from estimators.likelihood import ChoiceLikelihood, mle_inference
from estimators.optimize import Optimizer, maximize
from estimators.pqr_rewards import _expected, _push

__all__ = ["MaxEntIRL", "decision_measure", "discounted_occupancy", "horizon_root_status",
           "horizon_visits"]

FEATURE_COUNTS = {
    "likelihood": "discounted occupancy seeded at every observed decision (the causal "
                  "likelihood's gradient: the MLE)",
    "horizon": "each unit's window from its first state (textbook feature matching)",
}
#: Whitened gradient (roughly: standard errors from the maximum) below which a BFGS stop for
#: "precision loss" (the line search at the rounding level of the log-likelihood) is convergence.
ROUNDING_GRADIENT = 1e-3

#: Largest whitened window moment (:math:`T'm`, roughly standard errors of the score) at which
#: the textbook variant's root counts as found.
MOMENT_TOL = 1e-6
#: MINPACK hybrd stops (``scipy.optimize.root(method="hybr")`` status) that mean "no further
#: progress" (3: xtol too small; 4, 5: no progress over five Jacobians / ten iterations). At a
#: root whose moments are at their rounding level these are the expected stop, not a failure.
HYBR_NO_PROGRESS = (3, 4, 5)

FORWARD = {"solve": "closed form (I - beta P_pi)' d = m", "iterate": "push_forward steps"}


def decision_measure(model: Model, counts: np.ndarray, ct) -> np.ndarray:
    """The seed :math:`m = N - \\beta P' n` of the discounted forward pass (shape (S,)).

    Parameters
    ----------
    model : ddc.Model
        The model.
    counts : numpy.ndarray, shape (S, A)
        Decision counts :math:`n(s, a)`.
    ct : CompiledTransitions
        The transitions.

    Returns
    -------
    numpy.ndarray
    """
    n = np.asarray(counts, dtype=float)
    return n.sum(axis=1) - model.beta * _push(ct, n)


def discounted_occupancy(solution: Solution, measure: np.ndarray, method: str = "solve",
                         tol: float = 1e-13, max_iter: int = 1_000_000) -> tuple[np.ndarray, int]:
    """The discounted occupancy :math:`d = \\sum_k (\\beta P_\\pi')^k m` of the policy.

    Parameters
    ----------
    solution : ddc.Solution
        The solved model (its policy :math:`\\pi` and transitions).
    measure : numpy.ndarray, shape (S,)
        The seed :math:`m` (any signed measure).
    method : {"solve", "iterate"}
        ``"solve"``: :math:`(I - \\beta P_\\pi)' d = m` by the solution's policy system.
        ``"iterate"``: the forward pass itself, :math:`x_{k+1} = \\beta \\,` ``push_forward``
        :math:`(\\pi \\odot x_k)`, summed until :math:`\\max|x_k| \\le` ``tol``
        :math:`\\max|d|`.
    tol : float
        Stopping rule of ``"iterate"``.
    max_iter : int
        Most forward steps of ``"iterate"``.

    Returns
    -------
    d : numpy.ndarray, shape (S,)
    steps : int
        Forward steps taken (0 for ``"solve"``).

    Raises
    ------
    ddc.ConvergenceError
        If ``"iterate"`` does not meet ``tol`` within ``max_iter`` steps.
    """
    measure = np.asarray(measure, dtype=float)
    if method == "solve":
        d = solution.policy_system.solve(measure, transpose=True)
        return np.asarray(d).reshape(measure.shape), 0
    if method != "iterate":
        raise ValueError(f"method must be 'solve' or 'iterate', got {method!r}")
    model = solution.model
    ct = model.compiled_transitions(solution.params)
    pi, beta = solution.pi, model.beta
    d = measure.copy()
    x = measure
    for k in range(1, max_iter + 1):
        x = beta * _push(ct, pi * x[:, None])
        d += x
        if np.max(np.abs(x)) <= tol * np.max(np.abs(d)):
            return d, k
    raise ConvergenceError(f"the forward pass did not reach tol={tol:g} in {max_iter} steps "
                       f"(beta={beta}); use method='solve'")


def horizon_visits(solution: Solution, initial: np.ndarray, horizon: np.ndarray) -> np.ndarray:
    """Expected state visits summed over each unit's window, by a forward pass.

    :math:`\\sum_i \\sum_{t < T_i} P(s_t = s \\mid s_0 = s_{i0})` under the policy, computed by
    Horner's scheme over the ``push_forward`` operator: with :math:`\\nu_t = \\sum_{i: T_i > t}
    \\delta_{s_{i0}}`, :math:`y = \\nu_{T-1}`, then :math:`y \\leftarrow \\nu_t + P_\\pi' y` for
    :math:`t = T-2, \\dots, 0` (:math:`T = \\max_i T_i` steps in all).

    Parameters
    ----------
    solution : ddc.Solution
        The solved model.
    initial : numpy.ndarray of int
        First state of each unit.
    horizon : numpy.ndarray of int
        Number of periods of each unit (>= 1).

    Returns
    -------
    numpy.ndarray, shape (S,)
    """
    model = solution.model
    ct = model.compiled_transitions(solution.params)
    S = model.n_states
    initial = np.asarray(initial, dtype=np.int64)
    horizon = np.asarray(horizon, dtype=np.int64)
    Tmax = int(horizon.max())
    ends = np.zeros((Tmax + 1, S))
    np.add.at(ends, (horizon, initial), 1.0)
    # nu_t = units with T_i > t, by state: reverse cumulative sum over T
    nu = np.cumsum(ends[::-1], axis=0)[::-1][1:]  # nu[t] = sum_{T > t}
    y = nu[Tmax - 1].copy()
    for t in range(Tmax - 2, -1, -1):
        y = nu[t] + _push(ct, solution.pi * y[:, None])
    return y


def horizon_root_status(success: bool, status: int, message: str, moment: float
                        ) -> tuple[bool, str]:
    """Whether hybr's stop on the window moments is a root, and a message saying why.

    The root is found when the largest whitened moment :math:`\\max_k |(T'm)_k|` is below
    :data:`MOMENT_TOL`, and hybr either stopped by its ``xtol`` rule or stopped making progress
    (:data:`HYBR_NO_PROGRESS`). The moments are sums over every row of the panel: near the root
    they are differences of numbers of order :math:`10^5`-:math:`10^7`, so hybr's steps there
    change them only by rounding, and it reports "not making good progress" although the point
    is a root to :data:`MOMENT_TOL` (this is what happens on the 720,000-row membership panel
    with estimated transitions; with known transitions the same panel ends by ``xtol``).

    Parameters
    ----------
    success, status, message
        ``scipy.optimize.root``'s ``success``, ``status`` and ``message``.
    moment : float
        :math:`\\max_k |(T'm)_k|` at hybr's last point.

    Returns
    -------
    converged : bool
    message : str
    """
    text = "hybr root of the window moments: " + " ".join(message.split())
    if not moment < MOMENT_TOL:
        return False, (f"{text}; largest whitened window moment {moment:.1e}, not below "
                       f"{MOMENT_TOL:g}: no root found (try start=... near a root, or "
                       "feature_counts='likelihood')")
    if success:
        return True, text
    if status in HYBR_NO_PROGRESS:
        return True, (f"{text} (status {status}); the largest whitened window moment is "
                      f"{moment:.1e}, below {MOMENT_TOL:g}: the moments are at their rounding "
                      "level, a root")
    return False, f"{text} (status {status}; largest whitened window moment {moment:.1e})"


@register
class MaxEntIRL(Estimator):
    """Maximum causal entropy IRL with a linear reward (Ziebart 2010).

    Parameters
    ----------
    model : ddc.Model
        Model with a :class:`ddc.LinearUtility` (the reward features).
    feature_counts : {"likelihood", "horizon"}
        ``"likelihood"`` (default): expected counts from the discounted occupancy seeded at the
        observed decisions; the gradient is the causal log-likelihood's, and the estimate is the
        maximum likelihood estimate (NFXP's). ``"horizon"``: textbook feature matching over each
        unit's observed window (a consistent method-of-moments estimator, not the MLE).
    forward : {"solve", "iterate"}
        How the ``"likelihood"`` forward pass is summed (:func:`discounted_occupancy`).
    solver : ddc.Solver, optional
        Soft value iteration (the Bellman fixed point).
    optimizer : Optimizer, optional
        Gradient ascent: quasi-Newton (BFGS) on the feature-count gradient by default, in
        coordinates whitened by the static-logit information of the features.
    forward_tol : float
        Tolerance of ``forward="iterate"``.
    drop_first : bool, optional
        As in :class:`estimators.NFXP`.
    on_failure : {"warn", "raise"}
        What non-convergence does.
    transitions : {"estimate", "known"} or TransitionOptions
        First stage of the transitions (:mod:`estimators.first_stage`): estimated from the data
        by default, or declared known.

    Notes
    -----
    Transition parameters are estimated in a first stage and held fixed; compare with
    ``NFXP(model, full_information=False)``, whose estimate is the same.

    Examples
    --------
    >>> import ddc
    >>> from simulations import simulate
    >>> model = ddc.models.membership()
    >>> panel = simulate(model, model.true_params, n_customers=2_000, n_periods=24, seed=0)
    >>> res = MaxEntIRL(model).fit(panel)
    >>> bool(res.converged)
    True
    """

    name = "MaxEntIRL"
    key = "maxent"
    takes_start = True
    needs_rows = False

    def __init__(self, model: Model, feature_counts: str = "likelihood", forward: str = "solve",
                 solver: Solver | None = None, optimizer: Optimizer | None = None,
                 forward_tol: float = 1e-13, drop_first: bool | None = None,
                 on_failure: str = "warn", transitions=None):
        super().__init__(model, solver, drop_first, on_failure, transitions)
        if not isinstance(model.utility, LinearUtility):
            raise TypeError("MaxEntIRL needs a reward linear in parameters (LinearUtility); "
                            "use NFXP for a CallableUtility")
        for value, table, what in ((feature_counts, FEATURE_COUNTS, "feature_counts"),
                                   (forward, FORWARD, "forward")):
            if value not in table:
                raise ValueError(f"unknown {what} {value!r}; choose one of: "
                                 + "; ".join(f"{k!r} ({v})" for k, v in table.items()))
        if not forward_tol > 0:
            raise ValueError(f"forward_tol must be positive, got {forward_tol!r}")
        self.feature_counts, self.forward = feature_counts, forward
        self.optimizer = optimizer or Optimizer("bfgs", tol=1e-6, max_iter=1000)
        self.forward_tol = forward_tol

    def __repr__(self) -> str:
        return (f"MaxEntIRL({self.model.name}, feature_counts={self.feature_counts!r}, "
                f"optimizer={self.optimizer!r})")

    # ------------------------------------------------------------------ pieces
    def _features(self) -> np.ndarray:
        return np.where(self.model.feasible[:, :, None], self.model.utility.features, 0.0)

    def gradient(self, lik: ChoiceLikelihood, params: pd.Series, measure: np.ndarray
                 ) -> tuple[float, np.ndarray, Solution]:
        """Causal log-likelihood and its gradient (empirical minus expected feature counts).

        Parameters
        ----------
        lik : ChoiceLikelihood
            Holds the counts and solves the soft Bellman fixed point (warm-started).
        params : pandas.Series
            All parameters.
        measure : numpy.ndarray
            The forward pass's seed (:func:`decision_measure`).

        Returns
        -------
        loglik : float
        gradient : numpy.ndarray, shape (K,)
        solution : ddc.Solution
        """
        X = self._features()
        sol = lik.solve(params)
        counts = lik.counts
        mask = counts > 0
        ll = float(np.sum(counts[mask] * lik.log_pi(sol)[mask]))
        if not sol.converged or not np.isfinite(ll):
            return -np.inf, np.full(X.shape[2], np.nan), sol
        d, _ = discounted_occupancy(sol, measure, self.forward, self.forward_tol)
        empirical = np.einsum("sa,sak->k", counts, X)
        expected = np.einsum("s,sa,sak->k", d, sol.pi, X)
        return ll, empirical - expected, sol

    def _whitening(self, counts: np.ndarray) -> np.ndarray:
        """``T`` with :math:`T' I T = 1`, :math:`I` the static-logit information of the features
        at the empirical frequencies (the scale of the problem); ``theta = theta0 + T phi``."""
        X = self._features()
        N = counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(N[:, None] > 0, counts / N[:, None], 0.0)
        Xbar = np.einsum("sa,sak->sk", p, X)
        D = X - Xbar[:, None, :]
        info = np.einsum("sa,sak,sal->kl", counts, D, D)
        d = np.sqrt(np.maximum(np.diag(info), 1e-300))
        R = info / np.outer(d, d)
        lam, vec = np.linalg.eigh(R)
        lam = np.maximum(lam, 1e-8 * lam.max())
        return (vec / np.sqrt(lam)) / d[:, None]

    # ------------------------------------------------------------------ fit
    def _estimate(self, prep: Prepared, base: pd.Series) -> Fit:
        model = prep.transitions.model
        util = model.utility_params
        cd = prep.data
        ct = model.compiled_transitions(base.to_numpy())
        lik = ChoiceLikelihood(model, cd.counts, self.solver)
        measure = decision_measure(model, cd.counts, ct)
        T = self._whitening(cd.counts)
        theta0 = base[util].to_numpy()

        def objective(phi, need):
            p = base.copy()
            p[util] = theta0 + T @ phi
            ll, g, _ = self.gradient(lik, p, measure)
            if not np.isfinite(ll):
                return -np.inf, None, None
            return ll, T.T @ g, None

        res = maximize(objective, np.zeros(len(util)), self.optimizer)
        params = base.copy()
        params[util] = theta0 + T @ res.x
        converged, message = res.converged, res.message
        notes = []
        g_white = float(np.max(np.abs(res.grad))) if res.grad is not None else np.inf
        if not converged and "precision loss" in message and g_white < ROUNDING_GRADIENT:
            # BFGS's line search reached the rounding level of the log-likelihood (a sum over
            # all rows): in whitened coordinates the remaining Newton step is about g_white
            # standard errors, far below any statistical tolerance
            converged = True
            notes.append(f"BFGS stopped at the rounding level of the log-likelihood with a "
                         f"whitened gradient of {g_white:.1e} (about that many standard errors "
                         "from the maximum)")
        extra = {"feature_counts": self.feature_counts, "forward": self.forward,
                 "optimizer": str(self.optimizer)}
        cov = None
        if self.feature_counts == "horizon":
            params, converged, message, cov, extra_h = self._horizon(cd, lik, base, params, T)
            extra.update(extra_h)
        ll, grad, sol = self.gradient(lik, params, measure)
        extra["gradient"] = pd.Series(grad, index=util)
        if lik.inner_failures:
            notes.append(f"soft value iteration failed to converge {lik.inner_failures} time(s) "
                         "at trial parameters (treated as infeasible points)")
        if not sol.converged:
            converged = False
            notes.append("soft value iteration did not converge at the estimate")
        return Fit(params, ll, grad, converged, message, res.iterations, res.function_evals,
                   notes, {"lik": lik, "sol": sol, "cov": cov, "extra": extra,
                           "moments": extra.get("moments")})

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        model = prep.transitions.model
        util = model.utility_params
        cd, ts = prep.data, prep.transitions
        st = fit.state
        lik, sol = st["lik"], st["sol"]
        ll = fit.objective
        notes = []
        if self.feature_counts == "horizon" and (len(ts.params) or ts.tables):
            notes.append(f"transitions from a first stage ({ts.method}), held fixed; standard "
                         "errors do not account for that first stage")
        common = dict(names=util, loglik=ll + ts.loglik,
                      loglik_parts={"choice": ll, "transition": ts.loglik}, solution=sol,
                      extra=st["extra"])
        if self.feature_counts == "horizon":
            notes.append("textbook feature matching over each unit's window: a method-of-moments "
                         "estimator (not the MLE); covariance 'cluster': the sandwich of the "
                         "unit-level moments")
            # a root of the moments, no objective to be concave: the template's gradient check
            # runs on the moments m with "curvature" -S (S = sum_i g_i g_i'), so its Newton
            # decrement m'S^-1 m is the squared remaining step J^-1 m in the sandwich's
            # standard errors
            extra = st["extra"]
            return Inference(**common, hessian=None, cov_type="cluster",
                             extra_covs={"cluster": st["cov"]}, notes=notes,
                             gradient=extra["moments"].to_numpy(),
                             curvature=-extra["moment_covariance"], check_curvature=False)
        notes.append("maximum causal entropy = maximum likelihood: covariance from the Hessian "
                     "of the causal log-likelihood")
        try:
            if cd.has_rows:
                rows = cd.rows(self.name)
                H, scores, _ = mle_inference(lik, (rows.position, rows.state, rows.action),
                                             rows.n_panel_rows, fit.params)
                groups = cd.panel.unit
            else:
                H, scores, _ = mle_inference(lik, None, 0, fit.params)
                groups = None
        except ConvergenceError as exc:  # the likelihood is not finite near the estimate
            notes.append(f"no Hessian at the estimate: {exc}")
            H = scores = groups = None
        covs: dict = {}
        if H is not None:  # correct the standard errors for the transitions' first stage
            covs, fs_notes = first_stage_covariances(ts, cd.counts, self.solver, fit.params, H,
                                                     scores, groups, cd.panel)
            notes += fs_notes
        return Inference(**common, hessian=H, scores=scores, groups=groups, cov_type="hessian",
                         extra_covs=covs or None, notes=notes)

    # ------------------------------------------------------------------ textbook variant
    def _windows(self, cd: ChoiceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First state, number of periods and unit code of each unit's choice sample."""
        unit = cd.unit
        first = np.ones(unit.size, dtype=bool)
        first[1:] = unit[1:] != unit[:-1]
        T = np.bincount(unit, minlength=int(unit.max()) + 1)
        units = unit[first]
        return cd.state[first], T[units], units

    def horizon_moments(self, lik: ChoiceLikelihood, params: pd.Series, initial: np.ndarray,
                        horizon: np.ndarray) -> tuple[np.ndarray, Solution]:
        """Empirical minus expected window feature counts (the textbook moment), shape (K,)."""
        X = self._features()
        sol = lik.solve(params)
        if not sol.converged:
            return np.full(X.shape[2], np.nan), sol
        visits = horizon_visits(sol, initial, horizon)
        expected = np.einsum("s,sa,sak->k", visits, sol.pi, X)
        return np.einsum("sa,sak->k", lik.counts, X) - expected, sol

    def _unit_expected(self, sol: Solution, initial: np.ndarray, horizon: np.ndarray
                       ) -> np.ndarray:
        """Each unit's expected window counts by the backward recursion
        :math:`G_{T+1} = X_\\pi + P_\\pi G_T` (for the sandwich; the forward pass gives only
        their sum)."""
        X = self._features()
        ct = sol.model.compiled_transitions(sol.params)
        Xpi = np.einsum("sa,sak->sk", sol.pi, X)
        out = np.zeros((initial.size, X.shape[2]))
        G = np.zeros_like(Xpi)
        for t in range(1, int(horizon.max()) + 1):
            G = Xpi + np.einsum("sa,sak->sk", sol.pi, _expected(ct, G))
            at = horizon == t
            out[at] = G[initial[at]]
        return out

    def _horizon(self, cd, lik, base, params, T):
        util = self.model.utility_params
        cd.rows("MaxEntIRL(feature_counts='horizon')")  # each unit's window: the rows
        initial, horizon, units = self._windows(cd)
        scale = T.T  # whitened moments

        def moments(phi):
            p = base.copy()
            p[util] = params[util].to_numpy() + T @ phi
            m, _ = self.horizon_moments(lik, p, initial, horizon)
            return scale @ m if np.all(np.isfinite(m)) else np.full(len(util), 1e10)

        import scipy.optimize as so  # lazily: 0.15 s of start-up

        sol = so.root(moments, np.zeros(len(util)), method="hybr", options={"xtol": 1e-12})
        out = base.copy()
        out[util] = params[util].to_numpy() + T @ sol.x
        m, s = self.horizon_moments(lik, out, initial, horizon)
        ok, message = horizon_root_status(sol.success, sol.status, sol.message,
                                          float(np.max(np.abs(scale @ m))))
        # sandwich: J^-1 (sum_i g_i g_i') J^-T with J = d(sum_i g_i)/d theta
        K = len(util)
        J = np.empty((K, K))
        x = out[util].to_numpy()
        for k in range(K):
            h = 1e-6 * max(1.0, abs(x[k]))
            up, dn = out.copy(), out.copy()
            up[util[k]] += h
            dn[util[k]] -= h
            J[:, k] = (self.horizon_moments(lik, up, initial, horizon)[0]
                       - self.horizon_moments(lik, dn, initial, horizon)[0]) / (2 * h)
        X = self._features()
        emp = np.zeros((int(cd.unit.max()) + 1, K))
        np.add.at(emp, cd.unit, X[cd.state, cd.action])
        g = emp[units] - self._unit_expected(s, initial, horizon)
        Jinv = np.linalg.inv(J)
        cov = Jinv @ (g.T @ g) @ Jinv.T
        extra = {"moments": pd.Series(m, index=util), "moment_jacobian": J,
                 "moment_covariance": g.T @ g, "horizons": np.unique(horizon)}
        return out, ok, message, 0.5 * (cov + cov.T), extra
