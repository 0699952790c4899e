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
from estimators.data import setup
from estimators.first_stage import (
    TransitionEstimate,
    TransitionOptions,
    first_stage_covariances,
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
    transitions : {"estimate", "known"} or TransitionOptions
        First stage of the transitions (:mod:`estimators.first_stage`): estimated from the data
        by default, or taken as known.

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

    def __init__(self, model: Model, solver: Solver | None = None,
                 optimizer: Optimizer | None = None, full_information: bool = True,
                 drop_first: bool | None = None, on_failure: str = "warn",
                 transitions: TransitionOptions | str | None = None):
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
        self.transitions = TransitionOptions.of(transitions)

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
        cd, ts, base = setup(self.model, data, self.drop_first, self.name, start,
                             needs_rows=False, transitions=self.transitions)
        model = ts.model
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
        notes = list(ts.notes)
        iterations, evals, converged = res.iterations, res.function_evals, res.converged
        message = res.message
        free = list(ts.free)
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
        ll_t = ts.loglik_grad(params)[0] if len(ts.params) else ts.loglik
        est = params[names]
        fixed = params.drop(names) if len(params) > len(names) else None
        covs: dict = {}
        if not full:  # a first stage held fixed: correct the standard errors for it
            covs, fs_notes = first_stage_covariances(
                ts, cd.counts, self.solver, params, H, scores,
                None if cd.panel is None else cd.panel.unit, cd.panel)
            notes += fs_notes
        if len(ts.params) and not full and not covs:
            notes.append("transition parameters fixed at their first-stage estimates; "
                         "standard errors do not account for that first stage")
        if at_bound:
            notes.append("standard errors treat the boundary transition parameters as known")
        return EstimationResults(
            model=model, estimator=self.name, params=est, hessian=H, scores=scores,
            groups=None if cd.panel is None else cd.panel.unit, loglik=ev.loglik + ll_t,
            loglik_parts={"choice": ev.loglik, "transition": ll_t}, nobs=cd.nobs,
            n_units=cd.n_units, converged=converged, iterations=iterations,
            function_evals=evals + lik.n_solves, seconds=time.perf_counter() - t0,
            cov_type="hessian", extra_covs=covs or None, fixed_params=fixed, notes=notes,
            solution=ev.solution,
            extra={"optimizer": str(self.optimizer), "solver": str(self.solver),
                   "inner_solves": lik.n_solves, "first_stage": ts.method,
                   "message": message, "nobs_transition": ts.nobs},
        )

    # ------------------------------------------------------------------ full information
    def _full_grad(self, lik: ChoiceLikelihood, cd, ts: TransitionEstimate, params):
        """Joint log-likelihood and gradient; ``-inf`` where the model refuses the transition
        parameters (a trial point outside their domain)."""
        llt, gt = ts.loglik_grad(params)
        if not np.isfinite(llt):
            return -np.inf, None, None
        try:
            ev = lik.evaluate(params, True)
        except ValueError:  # the model's transition function refuses these parameters
            return -np.inf, None, None
        if not np.isfinite(ev.loglik):
            return -np.inf, None, ev
        dpsi = lik.log_pi_derivative_transition(params, list(ts.params.index))
        g = np.concatenate([ev.grad, np.einsum("sa,sap->p", cd.counts, dpsi) + gt])
        return ev.loglik + llt, g, ev

    def _full_hessian(self, lik, cd, ts, params, names):
        x = params[names].to_numpy()
        n = len(names)
        H = np.empty((n, n))
        for k in range(n):
            h = 1e-5 * max(1.0, abs(x[k]))
            up, dn = params.copy(), params.copy()
            up[names[k]] += h
            dn[names[k]] -= h
            g_up = self._full_grad(lik, cd, ts, up)[1]
            g_dn = self._full_grad(lik, cd, ts, dn)[1]
            if g_up is None or g_dn is None:
                raise RuntimeError(f"the likelihood is not finite near the estimate in "
                                   f"{names[k]}; cannot form the Hessian")
            H[:, k] = (g_up - g_dn) / (2 * h)
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
            scores[:, len(util):] += ts.scores_at(params)
            return H, scores
        if panel is None:
            H, _, _ = mle_inference(lik, None, 0, params)
            return H, None
        rows = np.flatnonzero(cd.used)
        H, scores, _ = mle_inference(lik, (rows, cd.state, cd.action), panel.nobs, params)
        return H, scores
