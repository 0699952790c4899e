"""Nested fixed point maximum likelihood (Rust 1987), with Rust's three stages.

1. **Transitions**: the transition parameters :math:`\\hat\\psi` from the transition
   likelihood alone (:mod:`estimators.first_stage`).
2. **Choice likelihood**: :math:`\\hat\\theta = \\arg\\max_\\theta \\sum_{s,a} n(s,a)
   \\log\\pi(a \\mid s; \\theta, \\hat\\psi)`, solving the Bellman fixed point at every trial
   :math:`\\theta` (Newton-Kantorovich polyalgorithm, warm-started), with the analytic gradient
   of the implicit function theorem and the BHHH outer loop.
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
from estimators.base import Estimator, Fit, Inference, Prepared, register
from estimators.data import ChoiceData
from estimators.first_stage import (
    TransitionEstimate,
    _increment_probs,
    _increments,
    _transition_counts,
    increment_counts,
    transition_log_probs,
)
from estimators.likelihood import ChoiceLikelihood, mle_inference
from estimators.optimize import Optimizer, maximize

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
        Outer optimizer (BHHH by default).
    full_information : bool
        Run stage 3 (joint likelihood) when the model has transition parameters. It runs only
        when stage 2 converged.
    drop_first : bool, optional
        Leave each unit's first period out of the choice likelihood (default:
        ``model.hooks.layout.drop_first_period``: true for Rust's bus data).
    on_failure : {"warn", "raise"}
        What non-convergence does (:class:`ddc.ConvergenceWarning` or
        :class:`ddc.ConvergenceError`).

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
                 drop_first: bool | None = None, on_failure: str = "warn"):
        super().__init__(model, solver, drop_first, on_failure)
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an estimators.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer or Optimizer()
        self.full_information = full_information

    def __repr__(self) -> str:
        return f"NFXP({self.model.name}, solver={self.solver!r}, optimizer={self.optimizer!r})"

    def _estimate(self, prep: Prepared, base: pd.Series) -> Fit:
        model = self.model
        cd, ts = prep.data, prep.transitions
        util = model.utility_params
        lik = ChoiceLikelihood(model, cd.counts, self.solver)
        base_vec = base.to_numpy()
        K = len(util)

        def objective(x, need):
            vec = base_vec.copy()
            vec[:K] = x
            ev = lik.evaluate(vec, need)
            return ev.loglik, ev.grad, ev.bhhh

        res = maximize(objective, base[util].to_numpy(), self.optimizer)
        params = base.copy()
        params[util] = res.x
        notes = []
        iterations, converged, message = res.iterations, res.converged, res.message
        grad = res.grad
        free = self._interior(ts)
        at_bound = [n for n in ts.params.index if n not in free]
        full = self.full_information and len(free) > 0
        if full and not converged:
            full = False
            notes.append("stage 3 (full information) was not run because stage 2 did not "
                          f"converge ({message})")
        elif self.full_information and at_bound:
            notes.append(f"transition parameter(s) {at_bound} estimated on the boundary of the "
                         "simplex (an increment never or always observed) are held at their "
                         "first-stage values in the full-information stage")
        ts_full = dataclasses.replace(ts, params=ts.params[free])
        if full:
            params, ok3, it3, msg3, g3 = self._full_information(lik, cd, ts_full, params)
            iterations += it3
            converged = converged and ok3
            message = f"{message}; full information: {msg3}"
            grad = g3
        # the solution at the estimate, built once: inference and the results reuse it
        ev = lik.evaluate(params, True)
        state = {"lik": lik, "full": full, "ts_full": ts_full, "at_bound": at_bound,
                 "free": free, "ev": ev}
        objective_value = ev.loglik + self._transition_loglik(cd, ts, params)
        return Fit(params, objective_value, grad, converged, message, iterations,
                   res.function_evals, notes, state)

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        model = self.model
        cd, ts = prep.data, prep.transitions
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
        try:
            H, scores = self._inference_matrices(lik, cd, ts_full, params, ev, full)
        except HessianUnavailable as exc:
            H, scores = None, None
            notes.append(f"no Hessian at the estimate: {exc}")
        if not ev.solution.converged:
            notes.append("the fixed point did not converge at the estimate")
        ll_t = self._transition_loglik(cd, ts, params)
        if len(ts.params) and not full:
            notes.append("transition parameters fixed at their first-stage estimates; "
                         "standard errors do not account for that first stage")
        elif st["at_bound"]:
            notes.append("standard errors treat the boundary transition parameters as known")
        elif len(ts.params) == 0:
            notes.append("transitions known (not estimated); the transition log-likelihood is "
                         "reported at them")
        grad = fit.grad if full else ev.grad
        return Inference(
            names=names, hessian=H, loglik=ev.loglik + ll_t,
            loglik_parts={"choice": ev.loglik, "transition": ll_t}, scores=scores,
            groups=None if not cd.has_rows else cd.panel.unit, cov_type="hessian",
            solution=ev.solution, notes=notes, gradient=grad,
            extra={"optimizer": str(self.optimizer), "solver": str(self.solver),
                   "inner_solves": lik.n_solves, "first_stage": ts.method,
                   "nobs_transition": ts.nobs})

    # ------------------------------------------------------------------ full information
    def _interior(self, ts: TransitionEstimate) -> list[str]:
        """Transition parameters the full-information stage can move: for increment
        probabilities, those (and the implied last one) clear of the simplex's boundary by more
        than the finite-difference steps."""
        names = list(ts.params.index)
        if not _by_increments(ts) or not names:
            return names
        p = _increment_probs(ts.params)
        if p[-1] <= 1e-5 * len(p):
            return []
        return [n for n, pj in zip(names, p[:-1], strict=True) if pj > 1e-5]

    def _transition_grad(self, cd: ChoiceData, ts: TransitionEstimate, params: pd.Series):
        """Transition log-likelihood and its gradient in the transition parameters."""
        model = self.model
        names = list(ts.params.index)
        if _by_increments(ts):
            every = list(model.transition_params.index)
            c = increment_counts(model, cd.panel, cd.frame, cd.stats)
            p = _increment_probs(params[every])
            if np.any(p[c > 0] <= 0):
                return -np.inf, np.zeros(len(names))
            ll = float(c[c > 0] @ np.log(p[c > 0]))
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(c[:-1] > 0, c[:-1] / np.where(p[:-1] > 0, p[:-1], 1.0), 0.0)
            g = g - (c[-1] / p[-1] if c[-1] > 0 else 0.0)
            return ll, g[[every.index(n) for n in names]]
        tc = _transition_counts(cd.panel, cd.stats)

        def f(psi):
            q = params.copy()
            q[names] = psi
            return float(np.sum(tc.n * transition_log_probs(model, q, tc.s, tc.a, tc.s_next)))

        x = params[names].to_numpy()
        g = np.empty(len(names))
        for k in range(len(names)):
            h = 1e-6 * max(1.0, abs(x[k]))
            e = np.zeros(len(names))
            e[k] = h
            g[k] = (f(x + e) - f(x - e)) / (2 * h)
        return f(x), g

    def _full_grad(self, lik: ChoiceLikelihood, cd, ts, params):
        # choice part: analytic in every parameter (implicit function theorem)
        ev = lik.evaluate(params, True, transition_names=list(ts.params.index))
        if not np.isfinite(ev.loglik):
            return -np.inf, None, ev
        llt, gt = self._transition_grad(cd, ts, params)
        g = ev.grad.copy()
        g[len(self.model.utility_params):] += gt
        return ev.loglik + llt, g, ev

    def _full_hessian(self, lik, cd, ts, params, names):
        """Hessian of the joint log-likelihood: the choice part analytic (second-order implicit
        function theorem, :meth:`ChoiceLikelihood.hessian`), the transition part by central
        differences of its gradient (no fixed point involved)."""
        tnames = list(ts.params.index)
        x = params.to_numpy()
        memo = getattr(self, "_hessian_memo", None)
        if memo is not None and memo[0] == tuple(names) and np.array_equal(memo[1], x):
            return memo[2].copy()  # Newton's last Hessian, asked again for the inference
        try:
            H = lik.hessian(params, tnames)
        except ConvergenceError as exc:  # the fixed point failed at the point
            raise HessianUnavailable(str(exc)) from exc
        K = len(names) - len(tnames)
        H[K:, K:] += self._transition_hessian(cd, ts, params)
        if not np.all(np.isfinite(H)):
            raise HessianUnavailable("the joint log-likelihood's Hessian is not finite at the "
                                     "point")
        H = 0.5 * (H + H.T)
        self._hessian_memo = (tuple(names), x.copy(), H.copy())
        return H

    def _transition_hessian(self, cd, ts, params):
        """Hessian of the transition log-likelihood in the transition parameters: closed form
        for increment probabilities (:math:`-\\mathrm{diag}(c_j / p_j^2) - c_J / p_J^2`, the
        last probability being one minus the others), else central differences of
        :meth:`_transition_grad`."""
        tnames = list(ts.params.index)
        if _by_increments(ts):
            every = list(self.model.transition_params.index)
            c = increment_counts(self.model, cd.panel, cd.frame, cd.stats)
            p = _increment_probs(params[every])
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(c > 0, c / np.where(c > 0, p, 1.0) ** 2, 0.0)
            idx = [every.index(n) for n in tnames]
            return -np.diag(w[:-1][idx]) - w[-1]
        P = len(tnames)
        out = np.empty((P, P))
        for k, name in enumerate(tnames):
            h = 1e-5 * max(1.0, abs(params[name]))
            up, dn = params.copy(), params.copy()
            up[name] += h
            dn[name] -= h
            out[:, k] = (self._transition_grad(cd, ts, up)[1]
                         - self._transition_grad(cd, ts, dn)[1]) / (2 * h)
        return out

    def _full_information(self, lik, cd, ts, params):
        """Newton steps on the joint likelihood; returns ``(params, ok, iterations, message,
        gradient)``. A singular or non-finite Hessian stops it (not converged) with a message."""
        names = self.model.utility_params + list(ts.params.index)
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
                trial = params.copy()
                trial[names] = params[names].to_numpy() + lam * d
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
        model = self.model
        util = model.utility_params
        panel = cd.panel
        if full:
            names = util + list(ts.params.index)
            H = self._full_hessian(lik, cd, ts, params, names)
            if panel is None:  # sufficient statistics: no per-row scores
                return H, None
            rows = np.flatnonzero(cd.used)
            dpsi = lik.log_pi_derivative_transition(params, list(ts.params.index))
            cell = np.concatenate([ev.cell_scores, dpsi], axis=2)
            scores = np.zeros((panel.nobs, len(names)))
            scores[rows] = cell[cd.state, cd.action]
            # Rust's (1987) likelihood is prod_t P(d_t | x_t) p(x_t | x_{t-1}, d_{t-1}): the
            # score of the move out of a row goes to the unit's next row (the grouping of his
            # BHHH standard errors, which it reproduces; see docs/estimation.rst)
            tr = self._transition_row_scores(cd, ts, params)
            nxt = panel.next_row
            np.add.at(scores[:, len(util):], np.where(nxt >= 0, nxt, np.arange(panel.nobs)), tr)
            return H, scores
        try:
            if panel is None:
                H, _, _ = mle_inference(lik, None, 0, params)
                return H, None
            rows = np.flatnonzero(cd.used)
            H, scores, _ = mle_inference(lik, (rows, cd.state, cd.action), panel.nobs, params)
        except ConvergenceError as exc:  # the likelihood is not finite near the estimate
            raise HessianUnavailable(str(exc)) from exc
        return H, scores

    def _transition_row_scores(self, cd, ts, params):
        model = self.model
        names = list(ts.params.index)
        panel = cd.panel
        out = np.zeros((panel.nobs, len(names)))
        if _by_increments(ts):
            every = list(model.transition_params.index)
            inc = _increments(model, panel, cd.frame)
            ok = ~np.isnan(inc)
            p = _increment_probs(params[every])
            with np.errstate(divide="ignore"):
                table = np.zeros((len(p), len(every)))
                table[:-1] = np.diag(np.where(p[:-1] > 0, 1.0 / p[:-1], 0.0))
                table[-1] = -1.0 / p[-1]
            out[ok] = table[inc[ok].astype(int)][:, [every.index(n) for n in names]]
            return out
        has = panel.next_state >= 0
        s, a, sn = panel.state[has], panel.action[has], panel.next_state[has]
        for k, name in enumerate(names):
            h = 1e-6 * max(1.0, abs(params[name]))
            up, dn = params.copy(), params.copy()
            up[name] += h
            dn[name] -= h
            out[has, k] = (transition_log_probs(model, up, s, a, sn)
                           - transition_log_probs(model, dn, s, a, sn)) / (2 * h)
        return out

    def _transition_loglik(self, cd, ts, params):
        if len(ts.params) == 0:
            return ts.loglik
        if _by_increments(ts):
            return self._transition_grad(cd, ts, params)[0]
        tc = _transition_counts(cd.panel, cd.stats)
        return float(np.sum(tc.n * transition_log_probs(self.model, params, tc.s, tc.a,
                                                        tc.s_next)))


class HessianUnavailable(ArithmeticError):
    """The Hessian cannot be formed at a point (the likelihood is not finite near it)."""


def _by_increments(ts: TransitionEstimate) -> bool:
    """Whether the first stage estimated the transitions from increment counts (a transition
    family with its own data) rather than from the observed state transitions."""
    return ts.method.startswith("increment")
