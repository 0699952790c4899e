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
import time
import warnings

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Panel
from ddc.solver import ConvergenceWarning, Solver, small_blas
from estimators.data import ChoiceData, setup
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
from estimators.results import EstimationResults

__all__ = ["NFXP"]


class NFXP:
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
        Run stage 3 (joint likelihood) when the model has transition parameters.
    drop_first : bool, optional
        Leave each unit's first period out of the choice likelihood (default from the model's
        metadata: true for Rust's bus data).
    on_failure : {"warn", "raise"}
        What non-convergence of the outer loop does.

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

    def __new__(cls, model=None, *args, **kwargs):
        # a ddc.Mixture gets the mixture estimator (estimators.mixture), or a reasoned refusal
        from estimators.mixture.dispatch import mixture_estimator

        return mixture_estimator(cls, model, args, kwargs) or super().__new__(cls)

    def __init__(self, model: Model, solver: Solver | None = None,
                 optimizer: Optimizer | None = None, full_information: bool = True,
                 drop_first: bool | None = None, on_failure: str = "warn"):
        if not isinstance(model, Model):
            raise TypeError(f"NFXP needs a ddc.Model, got {type(model).__name__}")
        if on_failure not in ("warn", "raise"):
            raise ValueError(f"on_failure must be 'warn' or 'raise', got {on_failure!r}")
        self.model = model
        self.solver = solver or Solver()
        self.optimizer = optimizer or Optimizer()
        self.full_information = full_information
        self.drop_first = drop_first
        self.on_failure = on_failure

    def __repr__(self) -> str:
        return f"NFXP({self.model.name}, solver={self.solver!r}, optimizer={self.optimizer!r})"

    def fit(self, data: pd.DataFrame | Panel, start=None) -> EstimationResults:
        """Estimate the parameters on a long panel.

        Parameters
        ----------
        data : pandas.DataFrame or ddc.panel.Panel
            The panel (validated against the model).
        start : pandas.Series, mapping or array, optional
            Starting values of the utility parameters (zeros by default).

        Returns
        -------
        EstimationResults
        """
        with small_blas(self.model.n_states, self.solver):
            return self._fit(data, start)

    def _fit(self, data, start) -> EstimationResults:
        t0 = time.perf_counter()
        model = self.model
        cd, ts, base = setup(model, data, self.drop_first, self.name, start, needs_rows=False)
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
        iterations, evals, converged = res.iterations, res.function_evals, res.converged
        message = res.message
        free = self._interior(ts)
        at_bound = [n for n in ts.params.index if n not in free]
        if self.full_information and at_bound:
            notes.append(f"transition parameter(s) {at_bound} estimated on the boundary of the "
                         "simplex (an increment never or always observed) are held at their "
                         "first-stage values in the full-information stage")
        full = self.full_information and len(free) > 0
        ts_full = dataclasses.replace(ts, params=ts.params[free])
        if full:
            params, ok3, it3, msg3 = self._full_information(lik, cd, ts_full, params)
            iterations += it3
            converged = converged and ok3
            message = f"{message}; full information: {msg3}"
        ev = lik.evaluate(params, True)
        if lik.inner_failures:
            notes.append(f"the inner fixed point failed to converge {lik.inner_failures} time(s) "
                         "at trial parameters (treated as infeasible points)")
        if not ev.solution.converged:
            converged = False
            notes.append("the fixed point did not converge at the estimate")
        if not converged:
            msg = f"NFXP did not converge: {message}"
            if self.on_failure == "raise":
                raise RuntimeError(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
            notes.append(msg)

        names = util + (free if full else [])
        H, scores = self._inference(lik, cd, ts_full, params, ev, full)
        ll_t = self._transition_loglik(cd, ts, params)
        est = params[names]
        fixed = params.drop(names) if len(params) > len(names) else None
        if len(ts.params) and not full:
            notes.append("transition parameters fixed at their first-stage estimates; "
                         "standard errors do not account for that first stage")
        elif at_bound:
            notes.append("standard errors treat the boundary transition parameters as known")
        elif len(ts.params) == 0:
            notes.append(f"transitions known ({ts.method}); transition log-likelihood "
                         "reported at them")
        return EstimationResults(
            model=model, estimator=self.name, params=est, hessian=H, scores=scores,
            groups=None if cd.panel is None else cd.panel.unit, loglik=ev.loglik + ll_t,
            loglik_parts={"choice": ev.loglik, "transition": ll_t}, nobs=cd.nobs,
            n_units=cd.n_units, converged=converged, iterations=iterations,
            function_evals=evals + lik.n_solves, seconds=time.perf_counter() - t0,
            cov_type="hessian", fixed_params=fixed, notes=notes,
            solution=ev.solution,
            extra={"optimizer": str(self.optimizer), "solver": str(self.solver),
                   "inner_solves": lik.n_solves, "first_stage": ts.method,
                   "message": message, "nobs_transition": ts.nobs},
        )

    # ------------------------------------------------------------------ full information
    def _interior(self, ts: TransitionEstimate) -> list[str]:
        """Transition parameters the full-information stage can move: for increment
        probabilities, those (and the implied last one) clear of the simplex's boundary by more
        than the finite-difference steps."""
        names = list(ts.params.index)
        if "increment_column" not in self.model.metadata or not names:
            return names
        p = _increment_probs(ts.params)
        if p[-1] <= 1e-5 * len(p):
            return []
        return [n for n, pj in zip(names, p[:-1], strict=True) if pj > 1e-5]

    def _transition_grad(self, cd: ChoiceData, ts: TransitionEstimate, params: pd.Series):
        """Transition log-likelihood and its gradient in the transition parameters."""
        model = self.model
        names = list(ts.params.index)
        if "increment_column" in model.metadata:
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
        H = lik.hessian(params, tnames)
        K = len(names) - len(tnames)
        for k, name in enumerate(tnames):
            h = 1e-5 * max(1.0, abs(params[name]))
            up, dn = params.copy(), params.copy()
            up[name] += h
            dn[name] -= h
            H[K:, K + k] += (self._transition_grad(cd, ts, up)[1]
                             - self._transition_grad(cd, ts, dn)[1]) / (2 * h)
        return 0.5 * (H + H.T)

    def _full_information(self, lik, cd, ts, params):
        names = self.model.utility_params + list(ts.params.index)
        f, g, _ = self._full_grad(lik, cd, ts, params)
        for it in range(1, 21):
            H = self._full_hessian(lik, cd, ts, params, names)
            d = -np.linalg.solve(H, g)
            decrement = float(g @ d)
            if decrement < self.optimizer.tol:
                return params, True, it - 1, f"Newton decrement {decrement:.2e} < tol"
            lam = 1.0
            for _ in range(30):
                trial = params.copy()
                trial[names] = params[names].to_numpy() + lam * d
                ft, gt, _ = self._full_grad(lik, cd, ts, trial)
                if np.isfinite(ft) and ft >= f + 1e-4 * lam * decrement:
                    break
                lam *= 0.5
            else:
                return params, False, it, "line search failed in the full-information step"
            params, f, g = trial, ft, gt
        return params, False, 20, "full-information Newton steps did not converge"

    # ------------------------------------------------------------------ inference
    def _inference(self, lik, cd, ts, params, ev, full):
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
        if panel is None:
            H, _, _ = mle_inference(lik, None, 0, params)
            return H, None
        rows = np.flatnonzero(cd.used)
        H, scores, _ = mle_inference(lik, (rows, cd.state, cd.action), panel.nobs, params)
        return H, scores

    def _transition_row_scores(self, cd, ts, params):
        model = self.model
        names = list(ts.params.index)
        panel = cd.panel
        out = np.zeros((panel.nobs, len(names)))
        if "increment_column" in model.metadata:
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
        if "increment_column" in self.model.metadata:
            return self._transition_grad(cd, ts, params)[0]
        tc = _transition_counts(cd.panel, cd.stats)
        return float(np.sum(tc.n * transition_log_probs(self.model, params, tc.s, tc.a,
                                                        tc.s_next)))
