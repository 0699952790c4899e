"""Outer-loop optimizers for (pseudo-)likelihoods: BHHH, Newton and scipy's quasi-Newton methods.

The objective is a log-likelihood to *maximize*. BHHH (Berndt, Hall, Hall and Hausman 1974),
Rust's choice in NFXP, uses the outer product of the per-observation scores
:math:`H_{BHHH} = \\sum_i g_i g_i'` in place of the negative Hessian:

.. math:: \\theta_{k+1} = \\theta_k + \\lambda_k H_{BHHH}^{-1} \\nabla \\ell(\\theta_k),

with :math:`\\lambda_k` from a backtracking (Armijo) line search. Convergence is declared when the
Newton decrement :math:`\\nabla\\ell' H_{BHHH}^{-1} \\nabla\\ell` is below ``tol`` (Rust's NFXP
criterion).

``"newton"`` takes the same steps with the negative analytic Hessian
:math:`-\\nabla^2\\ell` in place of :math:`H_{BHHH}` wherever it is positive definite (a Cholesky
factor exists), and BHHH steps elsewhere (far from the optimum, where the log-likelihood need not
be concave); near the optimum it converges quadratically, where BHHH converges linearly at a rate
set by how far :math:`H_{BHHH}` is from the information matrix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["Optimizer", "OptimizeResult", "maximize"]

METHODS = {
    "bhhh": "BHHH, then BFGS updates near the optimum, with an Armijo line search (Rust's "
            "NFXP outer loop)",
    "newton": "Newton-Raphson on the analytic Hessian where it is negative definite, BHHH "
              "elsewhere, with an Armijo line search",
    "bfgs": "scipy BFGS on the analytic gradient",
    "l-bfgs-b": "scipy L-BFGS-B on the analytic gradient",
    "trust-exact": "Newton with a trust region on the BHHH matrix (scipy trust-exact)",
}


@dataclass(frozen=True)
class Optimizer:
    """Configuration of the outer optimizer; checks itself on construction.

    Parameters
    ----------
    method : str
        ``"bhhh"`` (default), ``"newton"`` (needs an objective with an analytic Hessian),
        ``"bfgs"``, ``"l-bfgs-b"`` or ``"trust-exact"``.
    tol : float
        BHHH and Newton: the Newton decrement :math:`g' H^{-1} g` (with :math:`H` the BHHH
        matrix or the negative Hessian); scipy methods: gradient tolerance.
    max_iter : int
        Most iterations.

    Examples
    --------
    >>> Optimizer("bfgs", tol=1e-6)
    Optimizer('bfgs', tol=1e-06, max_iter=500)
    """

    method: str = "bhhh"
    tol: float = 1e-8
    max_iter: int = 500

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown optimizer method {self.method!r}; choose one of: "
                             + "; ".join(f"{k} ({v})" for k, v in METHODS.items()))
        if not isinstance(self.tol, (int, float)) or not self.tol > 0:
            raise ValueError(f"Optimizer tol must be a positive number, got {self.tol!r}")
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"Optimizer max_iter must be a positive integer, got "
                             f"{self.max_iter!r}")

    def __repr__(self) -> str:
        return f"Optimizer({self.method!r}, tol={self.tol:g}, max_iter={self.max_iter})"

    def __str__(self) -> str:
        return f"{METHODS[self.method]}; tol {self.tol:g}"


class OptimizeResult(NamedTuple):
    """Outcome of :func:`maximize`."""

    x: np.ndarray
    fun: float
    grad: np.ndarray
    converged: bool
    iterations: int
    function_evals: int
    message: str
    seconds: float


Objective = Callable[[np.ndarray, bool], tuple[float, np.ndarray | None, np.ndarray | None]]


def maximize(objective: Objective, x0: np.ndarray, optimizer: Optimizer,
             hessian: Callable[[np.ndarray], np.ndarray | None] | None = None
             ) -> OptimizeResult:
    """Maximize ``objective`` from ``x0``.

    Parameters
    ----------
    objective : callable
        ``objective(x, need_derivatives) -> (value, gradient, bhhh)``; with
        ``need_derivatives=False`` the gradient and BHHH matrix may be ``None``. A value of
        ``-inf`` (or NaN) marks an infeasible point: line searches back off from it.
    x0 : numpy.ndarray
        Starting values.
    optimizer : Optimizer
        Method and tolerances.
    hessian : callable, optional
        ``hessian(x) -> H``: the Hessian of the objective at a point where ``objective`` was
        just evaluated with derivatives (``None`` where it is unavailable). Needed by
        ``method="newton"``.

    Returns
    -------
    OptimizeResult
    """
    start = time.perf_counter()
    x0 = np.asarray(x0, dtype=float)
    if optimizer.method == "bhhh":
        res = _bhhh(objective, x0, optimizer)
    elif optimizer.method == "newton":
        if hessian is None:
            raise ValueError("Optimizer('newton') needs the objective's analytic Hessian, which "
                             "this objective does not offer; use Optimizer('bhhh') (or one of "
                             "'bfgs', 'l-bfgs-b', 'trust-exact')")
        res = _bhhh(objective, x0, optimizer, hessian)
    else:
        res = _scipy(objective, x0, optimizer)
    return res._replace(seconds=time.perf_counter() - start)


def _newton_direction(hessian, x, g):
    """The Newton direction :math:`(-\\nabla^2 f)^{-1} g` when the Hessian at ``x`` is finite
    and negative definite (a Cholesky factor of its negative exists), else ``None``."""
    Hx = hessian(x)
    if Hx is None or not np.all(np.isfinite(Hx)):
        return None
    try:
        L = np.linalg.cholesky(-0.5 * (Hx + Hx.T))
    except np.linalg.LinAlgError:
        return None
    d = np.linalg.solve(L.T, np.linalg.solve(L, g))
    return d if np.all(np.isfinite(d)) else None


def _bhhh(objective: Objective, x: np.ndarray, opt: Optimizer, hessian=None) -> OptimizeResult:
    """BHHH (then BFGS updates) or, given ``hessian``, Newton-Raphson where the Hessian is
    negative definite and BHHH elsewhere; Armijo line search either way."""
    f, g, H = objective(x, True)
    evals = 1
    if not np.isfinite(f) or g is None:
        return OptimizeResult(x, f, g, False, 0, evals, "the objective is not finite at the "
                              "starting values", 0.0)
    message = f"reached max_iter={opt.max_iter}"
    converged = False
    B = H  # curvature: BHHH far from the optimum, then BFGS updates of it (as in Rust's NFXP)
    quasi_newton = False
    it = 0
    for it in range(1, opt.max_iter + 1):  # noqa: B007
        d = None if hessian is None else _newton_direction(hessian, x, g)
        newton = d is not None
        if d is None:
            try:
                d = np.linalg.solve(B, g)
            except np.linalg.LinAlgError:
                d = np.linalg.lstsq(B, g, rcond=None)[0]
        decrement = float(g @ d)
        if decrement < opt.tol:
            converged = True
            message = f"Newton decrement {decrement:.2e} < tol"
            it -= 1
            if newton and decrement > 0:
                # the last Newton step too: the decrement bounds the error of x only by
                # sqrt(tol / curvature), that of x + d by its square (quadratic convergence)
                fn, gn, Hn = objective(x + d, True)
                evals += 1
                # (it cannot gain more than about the decrement, less than the rounding noise
                # of a likelihood summed over many rows: only a gross loss refuses it)
                if np.isfinite(fn) and gn is not None and \
                        fn >= f - 1e-9 * max(1.0, abs(f)):
                    x, f, g, H = x + d, fn, gn, Hn
                    it += 1
                    message = (f"Newton decrement {decrement:.2e} < tol, and the last Newton "
                               "step taken")
            break
        if decrement < 0:  # B lost definiteness: restart from BHHH
            B, quasi_newton = H, False
            d = np.linalg.lstsq(B, g, rcond=None)[0]
            decrement = float(g @ d)
        lam, accepted = 1.0, False
        for _ in range(40):
            xn = x + lam * d
            fn, gn, Hn = objective(xn, True)
            evals += 1
            # Armijo, allowing for the rounding noise of a likelihood summed over many rows
            noise = 1e-12 * max(1.0, abs(f))
            if np.isfinite(fn) and fn >= f + 1e-4 * lam * decrement - noise and gn is not None:
                accepted = True
                break
            lam *= 0.5
        if not accepted:
            message = "line search failed: no ascent along the search direction"
            break
        step, dg = xn - x, g - gn
        if hessian is None and not quasi_newton and lam == 1.0 and \
                decrement < 1e-2 * max(1.0, abs(fn)):
            quasi_newton = True  # close enough: switch to BFGS updates for superlinear steps
        x, f, g, H = xn, fn, gn, Hn
        if quasi_newton and step @ dg > 0:
            Bs = B @ step
            B = B - np.outer(Bs, Bs) / (step @ Bs) + np.outer(dg, dg) / (dg @ step)
        elif not quasi_newton:
            B = H
    return OptimizeResult(x, f, g, converged, it, evals, message, 0.0)


def _scipy(objective: Objective, x0: np.ndarray, opt: Optimizer) -> OptimizeResult:
    evals = [0]
    cache: dict = {}

    def negative(x):
        evals[0] += 1
        f, g, H = objective(x, True)
        cache["H"] = H
        if not np.isfinite(f):
            return np.inf, np.zeros_like(x)
        return -f, -g

    kwargs = {}
    if opt.method == "trust-exact":
        kwargs["hess"] = lambda x: cache["H"] if "H" in cache else objective(x, True)[2]
    import scipy.optimize as so  # lazily: 0.15 s of start-up

    res = so.minimize(negative, x0, jac=True, method=opt.method.upper() if opt.method != "l-bfgs-b"
                      else "L-BFGS-B", tol=opt.tol, options={"maxiter": opt.max_iter}, **kwargs)
    f, g, _ = objective(res.x, True)
    return OptimizeResult(res.x, f, g, bool(res.success), int(res.nit), evals[0] + 1,
                          str(res.message), 0.0)
