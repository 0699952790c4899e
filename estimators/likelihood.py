"""The choice log-likelihood of the solved model, its gradient and per-cell scores.

For utility parameters :math:`\\theta` (transitions fixed),

.. math::

    \\ell(\\theta) = \\sum_{s,a} n(s,a) \\log \\pi(a \\mid s; \\theta), \\qquad
    \\nabla \\ell = \\sum_{s,a} n(s,a) \\frac{\\partial \\log \\pi(a \\mid s)}{\\partial \\theta},

with the derivatives of :math:`\\log\\pi` from the implicit function theorem
(:meth:`ddc.Solution.dlogccp_dtheta`). The BHHH matrix is
:math:`\\sum_{s,a} n(s,a) g(s,a) g(s,a)'` with :math:`g = \\partial \\log \\pi / \\partial \\theta`.
Each evaluation warm-starts the fixed point at the previous solution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from ddc.kernels.bellman import EULER_GAMMA
from ddc.model import Model
from ddc.solver import ConvergenceError, Solution, Solver, small_blas, solve_arrays
from ddc.transitions import TransitionDerivatives

__all__ = ["ChoiceLikelihood", "Evaluation"]


class Evaluation(NamedTuple):
    """One evaluation of the choice log-likelihood."""

    loglik: float
    grad: np.ndarray | None
    bhhh: np.ndarray | None
    cell_scores: np.ndarray | None
    solution: Solution
    hessian: np.ndarray | None = None
    """:math:`\\sum_{s,a} n(s,a) \\partial^2 \\log \\pi(a \\mid s)`, analytic, when asked for."""


class ChoiceLikelihood:
    """Choice log-likelihood of ``model`` on counts ``n(s, a)``, solved inside (NFXP).

    Parameters
    ----------
    model : ddc.Model
        The model.
    counts : numpy.ndarray, shape (S, A)
        Choice counts.
    solver : ddc.Solver
        Inner fixed-point solver.
    directions : pandas.DataFrame, optional
        Directions in the transition parameters (rows: transition parameters; columns: their
        labels; orthonormal columns). Asked for derivatives in ``transition_names`` equal to
        the columns, the likelihood differentiates along them
        (:func:`ddc.solver.transition_derivatives` with ``directions``), for a joint
        likelihood held on an edge of the parameters' domain.
    """

    def __init__(self, model: Model, counts: np.ndarray, solver: Solver,
                 directions: pd.DataFrame | None = None):
        self.model, self.counts, self.solver = model, counts, solver
        self.directions = directions
        self.mask = counts > 0
        self.V = None
        self.n_solves = 0
        self.inner_failures = 0
        self._dtrans: dict = {}
        self._anchor = None
        self._last = None  # (params, transition names, Evaluation) of the last evaluation

    def solve(self, params: pd.Series | np.ndarray) -> Solution:
        """Solve at full parameters ``params`` (a Series or a vector in ``model.param_names``
        order; warm start), returning a :class:`Solution`."""
        model = self.model
        vec = params.to_numpy() if isinstance(params, pd.Series) else np.asarray(params, float)
        K = len(model.utility_params)
        u = np.ascontiguousarray(model.utility(vec[:K]))
        ct = model.compiled_transitions(vec)
        fp = solve_arrays(u, model.feasible, model.beta, ct, self.solver, self._start(vec))
        self.n_solves += 1
        if not fp.converged:
            self.inner_failures += 1
        else:
            self.V = fp.V
        series = pd.Series(vec, index=model._param_index, name="params")
        return Solution(model=model, params=series, V=fp.V, v=fp.v, pi=fp.pi, u=u,
                        converged=fp.converged, residual=fp.residual, iterations=fp.iterations,
                        newton_steps=fp.newton_steps, method=self.solver.method, seconds=0.0,
                        solver=self.solver, linear_solver=fp.linear_solver, ct=ct)

    def _start(self, vec: np.ndarray) -> np.ndarray | None:
        """Warm start: the first-order prediction :math:`\\bar V(x_0) + \\partial \\bar V(x_0)
        (x - x_0)` from the last point :math:`x_0` whose derivatives were computed (when only
        parameters it differentiated moved), else the last solution. The prediction is off by
        :math:`O(\\|x - x_0\\|^2)`, which saves Newton steps (at beta = 0.9999 the value
        moves by about :math:`\\Delta u / (1 - \\beta)`); with the second derivatives of the
        last Hessian, :math:`+ \\tfrac12 (x - x_0)' \\partial^2 \\bar V(x_0) (x - x_0)`, off by
        :math:`O(\\|x - x_0\\|^3)`."""
        if self._anchor is not None and self.V is not None:
            x0, V0, dV, cols, d2V = self._anchor
            step = vec - x0
            rest = np.ones(step.size, dtype=bool)
            rest[cols] = False
            if not np.any(step[rest]):
                dx = step[cols]
                with np.errstate(over="ignore", invalid="ignore"):  # far steps: checked below
                    V = V0 + dV @ dx
                    if d2V is not None:
                        V += 0.5 * (d2V @ dx) @ dx
                if np.all(np.isfinite(V)):
                    return V
        return self.V

    def _remember(self, sol: Solution, dV: np.ndarray, names: Sequence[str],
                  d2V: np.ndarray | None = None) -> None:
        K = len(self.model.utility_params)
        if names and self._directional(names):
            # derivatives along directions D: the prediction in the parameters' own
            # coordinates, dV D' (exact for steps in the span of D, the only ones taken)
            D = self.directions.to_numpy(dtype=float)
            M = np.zeros((K + D.shape[1], K + D.shape[0]))
            M[:K, :K] = np.eye(K)
            M[K:, K:] = D.T
            dV = dV @ M
            if d2V is not None:
                d2V = np.einsum("ki,skl,lj->sij", M, d2V, M)
            names = list(self.directions.index)
        if names:
            every = list(self.model.transition_params.index)
            cols = np.array(list(range(K)) + [K + every.index(n) for n in names],
                            dtype=np.int64)
        else:
            cols = np.arange(K)
        self._anchor = (sol.params.to_numpy().copy(), sol.V, dV, cols, d2V)

    def _directional(self, names: Sequence[str]) -> bool:
        """Whether ``names`` are the labels of :attr:`directions` (else transition
        parameters)."""
        return self.directions is not None and \
            tuple(names) == tuple(str(c) for c in self.directions.columns)

    def log_pi(self, sol: Solution) -> np.ndarray:
        """``log pi`` with ``-inf`` where infeasible."""
        with np.errstate(invalid="ignore"):
            return np.where(self.model.feasible, sol.v - (sol.V - EULER_GAMMA)[:, None], -np.inf)

    def evaluate(self, params: pd.Series | np.ndarray, need_derivatives: bool = True,
                 transition_names: Sequence[str] = (), hessian: bool = False) -> Evaluation:
        """Log-likelihood (and gradient, BHHH matrix, cell scores) at ``params``.

        The derivatives are in the utility parameters, followed by the transition parameters
        ``transition_names`` when given (the choice part of the full-information likelihood;
        :meth:`ddc.Solution.dlogccp_dparams`, analytic in the fixed point). With
        ``hessian=True`` also the Hessian (:meth:`hessian`), its right-hand sides solved with
        the factorization of the gradient's.
        """
        with small_blas(self.model.n_states, self.solver):
            return self._evaluate(params, need_derivatives or hessian, tuple(transition_names),
                                  hessian)

    def _evaluate(self, params, need_derivatives: bool, names: tuple[str, ...] = (),
                  hessian: bool = False) -> Evaluation:
        vec = params.to_numpy() if isinstance(params, pd.Series) else np.asarray(params, float)
        memo = self._last
        if memo is not None and memo[1] == names and np.array_equal(memo[0], vec) and \
                (memo[2].grad is not None or not need_derivatives) and \
                (memo[2].hessian is not None or not hessian):
            return memo[2]  # asked again at the point just evaluated (Newton's Hessian, the
            # estimate after the optimizer stopped): the same fixed point and derivatives
        ev = self._evaluate_new(vec, need_derivatives, names, hessian)
        self._last = (vec.copy(), names, ev)
        return ev

    def _evaluate_new(self, params, need_derivatives: bool, names: tuple[str, ...],
                      hessian: bool) -> Evaluation:
        sol = self.solve(params)
        lp = self.log_pi(sol)
        ll = float(np.sum(self.counts[self.mask] * lp[self.mask]))
        if not sol.converged or not np.isfinite(ll):
            return Evaluation(-np.inf, None, None, None, sol)
        if not need_derivatives:
            return Evaluation(ll, None, None, None, sol)
        # transition derivatives with their second derivatives: Newton wants the Hessian
        # wherever it wants the gradient, and the tables' stencils share their points
        dtrans = self.transition_derivatives(sol, names, True) if names else None
        d = sol.derivatives(list(names), dtrans)
        self._remember(sol, d.value, names)
        g = d.log_ccp
        grad = np.einsum("sa,sak->k", self.counts, g)
        bhhh = np.einsum("sa,sak,sal->kl", self.counts, g, g)
        H = None
        if hessian:
            n = d.value.shape[1]
            d2V = np.empty((d.value.shape[0], n, n))
            H = np.einsum("sa,saij->ij", self.counts,
                          sol.d2logccp_dparams(list(names), dtrans, first=d, value_out=d2V))
            self._remember(sol, d.value, names, d2V)
        return Evaluation(ll, grad, bhhh, g, sol, H)

    def transition_derivatives(self, sol: Solution, names: Sequence[str], second: bool = False
                               ) -> TransitionDerivatives:
        """Derivatives of the transitions at ``sol``'s transition parameters (the last few
        kept: they do not change while only utility parameters move)."""
        key = (tuple(names), tuple(sol.params.to_numpy()[len(self.model.utility_params):]))
        found = self._dtrans.get(key)
        if found is None or (second and found.second is None):
            if len(self._dtrans) >= 8:
                self._dtrans.pop(next(iter(self._dtrans)))
            if self._directional(names):
                from ddc.solver import transition_derivatives

                found = transition_derivatives(self.model, sol.params, second=second,
                                               directions=self.directions)
            else:
                found = sol.transition_derivatives(list(names), second)
            self._dtrans[key] = found
        return found

    def hessian(self, params: pd.Series | np.ndarray, transition_names: Sequence[str] = ()
                ) -> np.ndarray:
        """Hessian of the choice log-likelihood in the utility parameters and the transition
        parameters ``transition_names``, analytic: :math:`\\sum_{s,a} n(s,a) \\partial^2
        \\log \\pi(a \\mid s)` from :meth:`ddc.Solution.d2logccp_dparams` (second-order
        implicit function theorem; one fixed point, no differencing of solutions)."""
        names = list(transition_names)
        with small_blas(self.model.n_states, self.solver):
            sol = self.solve(params)
            if not sol.converged:
                raise ConvergenceError("the fixed point did not converge at the parameters "
                                       f"where the Hessian is needed (residual "
                                       f"{sol.residual:.2e})")
            dtrans = self.transition_derivatives(sol, names, second=True) if names else None
            d2 = sol.d2logccp_dparams(names, dtrans)
        return np.einsum("sa,saij->ij", self.counts, d2)

    def log_pi_derivative_transition(self, params: pd.Series, names: list[str] | None = None
                                     ) -> np.ndarray:
        """:math:`\\partial \\log \\pi / \\partial \\psi` over the transition parameters
        ``names`` (all by default; or the labels of :attr:`directions`), shape (S, A, P), by
        the implicit function theorem (:meth:`ddc.Solution.dlogccp_dpsi`)."""
        names = list(self.model.transition_params.index) if names is None else list(names)
        with small_blas(self.model.n_states, self.solver):
            sol = self.solve(params)
            return sol.dlogccp_dpsi(names, self.transition_derivatives(sol, names))


def mle_inference(lik: ChoiceLikelihood, counts_rows: tuple[np.ndarray, np.ndarray, np.ndarray],
                  n_rows: int, params: pd.Series, evaluation: Evaluation | None = None
                  ) -> tuple[np.ndarray, np.ndarray, Evaluation]:
    """Hessian (analytic) and per-row scores of the choice log-likelihood in the utility
    parameters at ``params``.

    The Hessian is :math:`\\sum_{s,a} n(s,a)\\, \\partial^2 \\log \\pi(a \\mid s) /
    \\partial\\theta \\partial\\theta'` by the second-order implicit function theorem
    (:meth:`ddc.Solution.d2logccp_dparams`) at the one solution of the evaluation: no fixed
    point is solved again.

    Parameters
    ----------
    lik : ChoiceLikelihood
        The likelihood.
    counts_rows : tuple of arrays or None
        ``(rows, state, action)``: panel row numbers of the choice sample and their states and
        actions; ``None`` when only counts are available (then no scores are returned).
    n_rows : int
        Rows of the panel (score rows outside the choice sample are zero).
    params : pandas.Series
        All parameters; the utility ones are differentiated.
    evaluation : Evaluation, optional
        ``lik.evaluate(params, True)`` when already computed.

    Returns
    -------
    hessian : numpy.ndarray (K, K)
    scores : numpy.ndarray (n_rows, K)
    evaluation : Evaluation
        At ``params``.

    Raises
    ------
    ConvergenceError
        The likelihood is not finite (or the fixed point failed) at ``params``.
    """
    ev = lik.evaluate(params, True) if evaluation is None else evaluation
    if ev.grad is None:
        raise ConvergenceError("the likelihood is not finite at the estimate (or its fixed "
                               "point failed); cannot form the Hessian")
    with small_blas(lik.model.n_states, lik.solver):
        d2 = ev.solution.d2logccp_dparams([], None)
    H = np.einsum("sa,saij->ij", lik.counts, d2)
    if not np.all(np.isfinite(H)):
        raise ConvergenceError("the Hessian of the likelihood is not finite at the estimate")
    if counts_rows is None:  # counts only (sufficient statistics): no per-row scores
        return 0.5 * (H + H.T), None, ev
    from estimators.inference import row_scores

    rows, state, action = counts_rows
    scores = row_scores(ev.cell_scores, rows, state, action, n_rows)
    return 0.5 * (H + H.T), scores, ev


def maximize_utility(lik: ChoiceLikelihood, base: pd.Series, optimizer):
    """NFXP's stage 2: maximize the choice log-likelihood in the utility parameters, the
    transition parameters held at their values in ``base``.

    Parameters
    ----------
    lik : ChoiceLikelihood
        The choice likelihood of the data.
    base : pandas.Series
        All parameters: the utility ones are the starting values, the others are held.
    optimizer : estimators.Optimizer
        The outer loop.

    Returns
    -------
    tuple
        ``(params, result)``: ``base`` with the utility parameters at the maximum, and the
        optimizer's :class:`~estimators.optimize.OptimizeResult`. Under
        ``Optimizer("newton")`` the likelihood keeps its last evaluation (with the Hessian), so
        that :meth:`ChoiceLikelihood.evaluate` at the maximum costs nothing.
    """
    from estimators.optimize import maximize

    K = len(lik.model.utility_params)  # the utility parameters come first (model.param_names)
    base_vec = base.to_numpy(dtype=float)
    newton = optimizer.method == "newton"

    def vector(x):
        vec = base_vec.copy()
        vec[:K] = x
        return vec

    def objective(x, need):
        ev = lik.evaluate(vector(x), need, hessian=need and newton)
        return ev.loglik, ev.grad, ev.bhhh

    def hessian(x):
        # computed with the gradient at the point Newton just evaluated: taken from the memo
        return lik.evaluate(vector(x), True, hessian=True).hessian

    result = maximize(objective, base_vec[:K], optimizer, hessian if newton else None)
    return pd.Series(vector(result.x), index=base.index, name=base.name), result
