"""Nested fixed point maximum likelihood (Rust 1987), with Rust's three stages.

1. **Transitions**: the transition parameters :math:`\\hat\\psi` from the transition
   likelihood alone (:mod:`estimators.first_stage`).
2. **Choice likelihood**: :math:`\\hat\\theta = \\arg\\max_\\theta \\sum_{s,a} n(s,a)
   \\log\\pi(a \\mid s; \\theta, \\hat\\psi)`, solving the Bellman fixed point at every trial
   :math:`\\theta` (Newton-Kantorovich polyalgorithm, warm-started), with the analytic gradient
   and Hessian of the implicit function theorem and Newton's method outside (BHHH where the
   Hessian is not negative definite). Without starting values, the outer loop starts from the
   Hotz-Miller (CCP) estimate at smoothed frequency choice probabilities (a concave
   pseudo-likelihood, one linear solve; :class:`estimators.CCP`), which estimates the same
   parameters consistently, so that a few Newton steps finish the job.
3. **Full information**: Newton steps on the joint likelihood
   :math:`\\ell_c(\\theta, \\psi) + \\ell_t(\\psi)` from :math:`(\\hat\\theta, \\hat\\psi)`, so
   that the inverse Hessian gives standard errors of all parameters that account for the
   estimation of the transitions.

A model without transition parameters (transitions known) stops after stage 2.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.solver import ConvergenceError, Solver
from ddc.utility import LinearUtility
from estimators.base import Estimator, Fit, Inference, Prepared, register, subset
from estimators.first_stage import first_stage_covariances
from estimators.inference import row_scores
from estimators.likelihood import ChoiceLikelihood, maximize_utility
from estimators.optimize import Optimizer

__all__ = ["NFXP"]


@register
class NFXP(Estimator):
    """Nested fixed point maximum likelihood estimator.

    Parameters
    ----------
    model : ddc.Model
        The model; its utility parameters are estimated, and its transition parameters too
        when it has any.
    solver : ddc.Solver, optional
        Inner fixed-point solver (Newton-Kantorovich polyalgorithm by default).
    optimizer : Optimizer, optional
        Outer optimizer: ``Optimizer("newton")`` by default (Newton-Raphson on the analytic
        Hessian, BHHH where it is not negative definite); ``Optimizer("bhhh")`` is Rust's.
    full_information : bool
        Run stage 3 (joint likelihood) when the model has transition parameters. It runs only
        when stage 2 converged.
    drop_first : bool, optional
        Leave each unit's first period out of the choice likelihood (default:
        ``model.hooks.layout.drop_first_period``: true for Rust's bus data).
    on_failure : {"warn", "raise"}
        What non-convergence does (:class:`ddc.ConvergenceWarning` or
        :class:`ddc.ConvergenceError`).
    transitions : {"estimate", "known"} or TransitionOptions
        First stage of the transitions (:mod:`estimators.first_stage`): estimated from the data
        by default, or declared known.

    Examples
    --------
    >>> import ddc
    >>> from estimators import NFXP
    >>> from simulations import simulate
    >>> model = ddc.models.membership()
    >>> panel = simulate(model, model.true_params, n_customers=2_000, n_periods=24, seed=0)
    >>> res = NFXP(model).fit(panel)
    >>> bool(res.converged)
    True
    """

    name = "NFXP"
    key = "nfxp"
    takes_start = True
    needs_rows = False

    def __init__(self, model: Model, solver: Solver | None = None,
                 optimizer: Optimizer | None = None, full_information: bool = True,
                 drop_first: bool | None = None, on_failure: str = "warn",
                 transitions=None):
        super().__init__(model, solver, drop_first, on_failure, transitions)
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an estimators.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer or Optimizer("newton")
        self.full_information = full_information

    def __repr__(self) -> str:
        return f"NFXP({self.model.name}, solver={self.solver!r}, optimizer={self.optimizer!r})"

    def _default_start(self, prep: Prepared) -> pd.Series:
        """The Hotz-Miller (CCP) estimate at smoothed frequency choice probabilities when the
        utility is linear and that concave pseudo-likelihood has a finite maximum, else zeros:

        .. math:: \\theta_0 = \\arg\\max_\\theta \\sum_{s,a} n(s,a) \\log
                  \\Lambda(a \\mid s; \\theta, \\hat p),

        :class:`estimators.ccp.PseudoLikelihood` at :func:`estimators.policy.frequency_ccps`
        (one linear solve with the policy :math:`\\hat p`, then Newton's method on a
        conditional logit). It estimates the same parameters consistently, so the outer loop
        needs only a few Newton steps from it."""
        zeros = super()._default_start(prep)
        model = prep.transitions.model
        if not isinstance(model.utility, LinearUtility):
            return zeros
        from estimators.ccp import PseudoLikelihood
        from estimators.policy import frequency_ccps

        counts = prep.data.counts
        try:
            pl = PseudoLikelihood(model, prep.params, self.solver)
            Z, e = pl.linearize(frequency_ccps(model, counts))
            theta, ll, _, ok, _ = pl.maximize(Z, e, counts, zeros.to_numpy())
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            return zeros
        if not ok or not np.isfinite(ll) or not np.all(np.isfinite(theta)):
            return zeros
        return pd.Series(theta, index=zeros.index)

    def _estimate(self, prep: Prepared, base: pd.Series) -> Fit:
        cd, ts = prep.data, prep.transitions
        model = ts.model  # the model with the first stage's transitions
        directions = getattr(ts, "directions", None) if self.full_information else None
        lik = ChoiceLikelihood(model, cd.counts, self.solver, directions=directions)
        params, res = maximize_utility(lik, base, self.optimizer)
        notes = []
        iterations, converged, message = res.iterations, res.converged, res.message
        grad = res.grad
        free = list(ts.free)
        at_bound = [n for n in ts.params.index if n not in free]
        full = self.full_information and len(free) > 0
        fallback = ""
        if self.full_information and len(ts.params) and getattr(ts, "joint_fallback", ""):
            fallback = ("full information fell back to two-step because "
                        f"{ts.joint_fallback}: all transition parameters {at_bound} are held at "
                        "their first-stage estimates (the two-step estimator)")
            notes.append(fallback)
            message = f"{message}; {fallback}"
        if full and not converged:
            full = False
            notes.append("stage 3 (full information) was not run because stage 2 did not "
                          f"converge ({message})")
        elif self.full_information and at_bound and not fallback:
            notes.append(f"transition parameter(s) {at_bound} estimated on the boundary of the "
                         "simplex (an outcome never or always observed) are held at their "
                         "first-stage values in the full-information stage")
        if full and directions is not None:
            notes.append(
                f"the implied last probability {ts.implied_held} is on the simplex boundary "
                "(that outcome was never observed) and is held there (standard error 0): full "
                f"information estimates {free} jointly with the utility parameters along the "
                f"{directions.shape[1]} direction(s) that keep their sum fixed, and their "
                "covariance is that of the directions mapped back (delta method; singular, "
                "since their sum is fixed)")
        ts_full = ts if free == list(ts.params.index) else \
            dataclasses.replace(ts, params=subset(ts.params, free))
        if full:
            params, ok3, it3, msg3, g3 = self._full_information(lik, cd, ts_full, params)
            iterations += it3
            converged = converged and ok3
            message = f"{message}; full information: {msg3}"
            grad = g3
        # the solution at the estimate, built once: inference and the results reuse it
        ev = lik.evaluate(params, True)
        state = {"lik": lik, "full": full, "ts_full": ts_full, "at_bound": at_bound,
                 "free": free, "ev": ev, "fallback": fallback,
                 "ll_t": _transition_loglik(ts, params)}
        objective_value = ev.loglik + state["ll_t"]
        return Fit(params, objective_value, grad, converged, message, iterations,
                   res.function_evals, notes, state)

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        cd, ts = prep.data, prep.transitions
        model = ts.model
        st = fit.state
        lik, full, ts_full = st["lik"], st["full"], st["ts_full"]
        params = fit.params
        util = model.utility_params
        notes = []
        ev = st["ev"]
        if lik.inner_failures:
            notes.append(f"the inner fixed point failed to converge {lik.inner_failures} time(s) "
                         "at trial parameters (treated as infeasible points)")
        names = util + (list(ts_full.params.index) if full else [])
        labels, D = self._coordinates(ts_full) if full else ([], None)
        try:
            H, scores = self._inference_matrices(lik, cd, ts_full, params, ev, full)
        except HessianUnavailable as exc:
            H, scores = None, None
            notes.append(f"no Hessian at the estimate: {exc}")
        if not ev.solution.converged:
            notes.append("the fixed point did not converge at the estimate")
        ll_t = st["ll_t"]
        covs: dict = {}
        if not full and H is not None:  # a first stage held fixed: correct for it
            covs, fs_notes = first_stage_covariances(
                ts, cd.counts, self.solver, params, H, scores,
                cd.panel.unit if cd.has_rows else None, cd.panel, solution=ev.solution,
                cell_scores=ev.cell_scores, used=cd.used if cd.has_rows else None)
            notes += fs_notes
        if len(ts.params) and not full and not covs:
            notes.append("transition parameters fixed at their first-stage estimates; "
                         "standard errors do not account for that first stage")
        if st["at_bound"] and not st["fallback"]:
            notes.append("standard errors treat the boundary transition parameters as known")
        grad = fit.grad if full else ev.grad
        extra = {"optimizer": str(self.optimizer), "solver": str(self.solver),
                 "inner_solves": lik.n_solves, "first_stage": ts.method,
                 "nobs_transition": ts.nobs, "fallback": st["fallback"]}
        groups = None if not cd.has_rows else cd.panel.unit
        curvature, curvature_names = None, None
        if D is not None:
            # estimated along directions z (psi = psi_hat + D z): every covariance kind in z,
            # mapped to the named parameters; the Hessian and scores in z check convergence
            covs, unavailable = self._directional_covariances(H, scores, groups, D,
                                                              util + labels)
            notes += [f"no {k!r} covariance: {why}" for k, why in unavailable.items()
                      if k == "hessian"]
            curvature, curvature_names = H, util + labels
            H, scores = None, None
            extra["implied_held"] = ts.implied_held
            extra["directions"] = pd.DataFrame(D, index=list(ts_full.params.index),
                                               columns=labels)
        return Inference(
            names=names, hessian=H, loglik=ev.loglik + ll_t,
            loglik_parts={"choice": ev.loglik, "transition": ll_t}, scores=scores,
            groups=groups, cov_type="hessian",
            extra_covs=covs or None, solution=ev.solution, notes=notes, gradient=grad,
            curvature=curvature, curvature_names=curvature_names, extra=extra,
            df_model=None if curvature_names is None else len(curvature_names))

    @staticmethod
    def _directional_covariances(H, scores, groups, D, coord_names):
        """Covariances of the utility and free transition parameters from those of the
        coordinates :math:`(\\theta, z)` maximized, :math:`\\psi = \\hat\\psi + D z`:
        :math:`V = M V_z M'` with :math:`M = \\mathrm{diag}(I, D)`
        (:func:`estimators.inference.mapped_covariances`)."""
        from estimators.inference import Ingredients, mapped_covariances
        from estimators.results import _group_codes

        if H is None:
            return {}, {"hessian": "no Hessian at the estimate"}
        K = len(coord_names) - D.shape[1]
        M = np.zeros((K + D.shape[0], K + D.shape[1]))
        M[:K, :K] = np.eye(K)
        M[K:, K:] = D
        codes, n_groups = (None, None) if groups is None or scores is None else \
            _group_codes(np.asarray(groups))
        ing = Ingredients(names=coord_names, hessian=H, scores=scores, group_codes=codes,
                          n_groups=n_groups)
        return mapped_covariances(ing, M)

    # ------------------------------------------------------------------ full information
    @staticmethod
    def _coordinates(ts) -> tuple[list[str], np.ndarray | None]:
        """The joint stage's transition coordinates: the free transition parameters
        themselves (``D`` is ``None``), or directions :math:`D` in them
        (:attr:`TransitionEstimate.directions`: :math:`\\psi = \\hat\\psi + D z`, labels
        of the columns)."""
        directions = getattr(ts, "directions", None)
        if directions is None:
            return list(ts.params.index), None
        return [str(c) for c in directions.columns], directions.to_numpy(dtype=float)

    def _moved(self, ts, params: pd.Series, step: np.ndarray) -> pd.Series:
        """``params`` moved by a step in the joint stage's coordinates."""
        _, D = self._coordinates(ts)
        K = len(self.model.utility_params)
        names = self.model.utility_params + list(ts.params.index)
        dx = step if D is None else np.concatenate([step[:K], D @ step[K:]])
        out = params.copy()
        out[names] = params[names].to_numpy() + dx
        return out

    def _full_grad(self, lik: ChoiceLikelihood, cd, ts, params):
        # transition part first: a trial point outside the transition parameters' domain is
        # infeasible (-inf), before the model's transition function is asked to build it
        llt, gt = ts.loglik_grad(params)
        if not np.isfinite(llt):
            return -np.inf, None, None
        # choice part: analytic in every parameter (implicit function theorem)
        labels, D = self._coordinates(ts)
        try:
            ev = lik.evaluate(params, True, transition_names=labels)
        except ValueError:  # the model's transition function refuses these parameters
            return -np.inf, None, None
        if not np.isfinite(ev.loglik):
            return -np.inf, None, ev
        g = ev.grad.copy()
        g[len(self.model.utility_params):] += gt if D is None else D.T @ gt
        return ev.loglik + llt, g, ev

    def _full_hessian(self, lik, cd, ts, params, names):
        """Hessian of the joint log-likelihood: the choice part analytic (second-order implicit
        function theorem, :meth:`ChoiceLikelihood.hessian`), the transition part by central
        differences of its gradient (no fixed point involved). Along directions :math:`D`
        (:meth:`_coordinates`) the transition block is :math:`D' H_t D`."""
        tnames, D = self._coordinates(ts)
        x = params.to_numpy()
        memo = getattr(self, "_hessian_memo", None)
        if memo is not None and memo[0] == tuple(names) and np.array_equal(memo[1], x):
            return memo[2].copy()  # Newton's last Hessian, asked again for the inference
        try:
            H = lik.hessian(params, tnames)
        except ConvergenceError as exc:  # the fixed point failed at the point
            raise HessianUnavailable(str(exc)) from exc
        K = len(names) - len(tnames)
        Ht = self._transition_hessian(cd, ts, params)
        H[K:, K:] += Ht if D is None else D.T @ Ht @ D
        if not np.all(np.isfinite(H)):
            raise HessianUnavailable("the joint log-likelihood's Hessian is not finite at the "
                                     "point")
        H = 0.5 * (H + H.T)
        self._hessian_memo = (tuple(names), x.copy(), H.copy())
        return H

    def _transition_hessian(self, cd, ts, params):
        """Hessian of the transition log-likelihood in the free transition parameters (closed
        form from a transition family that has one, e.g. increment probabilities; else central
        differences of the first stage's gradient)."""
        return ts.loglik_hessian(params)

    def _full_information(self, lik, cd, ts, params):
        """Newton steps on the joint likelihood; returns ``(params, ok, iterations, message,
        gradient)``. A singular or non-finite Hessian stops it (not converged) with a message."""
        names = self.model.utility_params + self._coordinates(ts)[0]
        f, g, _ = self._full_grad(lik, cd, ts, params)
        if g is None:
            return params, False, 0, "the joint likelihood is not finite at the stage-2 " \
                "estimate", None
        for it in range(1, 21):
            try:
                H = self._full_hessian(lik, cd, ts, params, names)
                d = -np.linalg.solve(H, g)
            except (HessianUnavailable, np.linalg.LinAlgError) as exc:
                return params, False, it - 1, f"no Newton step ({exc})", g
            decrement = float(g @ d)
            if not np.isfinite(decrement):
                return params, False, it - 1, "the Newton step is not finite", g
            if decrement < self.optimizer.tol:
                return params, True, it - 1, f"Newton decrement {decrement:.2e} < tol", g
            lam = 1.0
            for _ in range(30):
                trial = self._moved(ts, params, lam * d)
                ft, gt, _ = self._full_grad(lik, cd, ts, trial)
                if np.isfinite(ft) and ft >= f + 1e-4 * lam * decrement:
                    break
                lam *= 0.5
            else:
                return params, False, it, "line search failed in the full-information step", g
            params, f, g = trial, ft, gt
        return params, False, 20, "full-information Newton steps did not converge", g

    # ------------------------------------------------------------------ inference
    def _inference_matrices(self, lik, cd, ts, params, ev, full):
        model = lik.model
        util = model.utility_params
        panel = cd.panel
        if full:
            labels, D = self._coordinates(ts)
            names = util + labels
            H = self._full_hessian(lik, cd, ts, params, names)
            if panel is None:  # sufficient statistics: no per-row scores
                return H, None
            rows = cd.rows(self.name).position
            dpsi = lik.log_pi_derivative_transition(params, labels)
            cell = np.concatenate([ev.cell_scores, dpsi], axis=2)
            scores = np.zeros((panel.nobs, len(names)))
            scores[rows] = cell[cd.state, cd.action]
            # Rust's (1987) likelihood is prod_t P(d_t | x_t) p(x_t | x_{t-1}, d_{t-1}): the
            # score of the move out of a row goes to the unit's next row (the grouping of his
            # BHHH standard errors, which it reproduces; see docs/estimation.rst)
            tr = ts.scores_at(params) if D is None else ts.scores_at(params) @ D
            nxt = panel.next_row
            np.add.at(scores[:, len(util):], np.where(nxt >= 0, nxt, np.arange(panel.nobs)), tr)
            return H, scores
        # the analytic Hessian (second-order implicit function theorem), from the likelihood's
        # memo when the outer loop's last Newton step was taken at the estimate
        ev = lik.evaluate(params, True, hessian=True)
        H = ev.hessian
        if H is None or not np.all(np.isfinite(H)):
            raise HessianUnavailable("the choice log-likelihood or its Hessian is not finite at "
                                     "the estimate")
        if panel is None:  # sufficient statistics: no per-row scores
            return H, None
        scores = row_scores(ev.cell_scores, cd.rows(self.name).position, cd.state, cd.action,
                            panel.nobs)
        return H, scores


class HessianUnavailable(ArithmeticError):
    """The Hessian cannot be formed at a point (the likelihood is not finite near it)."""


def _transition_loglik(ts, params) -> float:
    """The transition log-likelihood at ``params``: the first stage's own value when they hold
    its estimates (stage 2), else evaluated (stage 3 moved them)."""
    if not len(ts.params):
        return ts.loglik
    where = {n: i for i, n in enumerate(params.index.tolist())}
    held = params.to_numpy()[[where[n] for n in ts.params.index.tolist()]]
    if np.array_equal(held, ts.params.to_numpy()):
        return ts.loglik
    return ts.loglik_grad(params)[0]
