"""The convergence checks of a fit: a maximum is reported only where it is one.

A fit converged when

1. the optimizer (or fixed-point iteration) stopped by its own rule;
2. the objective (log-likelihood) is finite at the estimate;
3. the scaled gradient is small: the Newton decrement :math:`g'(-H)^{-1} g`, the squared length
   of the remaining Newton step in standard-error units, is below :data:`GRADIENT_TOL`;
4. the Hessian :math:`H` is negative definite (a strict local maximum).

:func:`check_convergence` runs them and returns a :class:`Convergence` that says which failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GRADIENT_TOL", "Convergence", "check_convergence"]

#: Newton decrement :math:`g'(-H)^{-1}g` below which the gradient counts as zero: the Newton
#: step left is :math:`\\sqrt{10^{-3}} \\approx 0.03` standard errors long, and the
#: log-likelihood could rise by at most about :math:`5 \\cdot 10^{-4}`.
GRADIENT_TOL = 1e-3


@dataclass(frozen=True)
class Convergence:
    """The convergence checks of a fit; true only when every one holds.

    Attributes
    ----------
    optimizer : bool
        The optimizer (or fixed-point iteration) stopped by its own rule.
    finite : bool
        The objective (log-likelihood) is finite at the estimate.
    gradient : bool
        The scaled gradient is small: the Newton decrement :math:`g'(-H)^{-1}g` (with the
        Hessian when it is negative definite, else :math:`\\sum_k g_k^2 / |H_{kk}|`) is below
        :data:`GRADIENT_TOL`.
    hessian : bool
        The Hessian of the objective is negative definite (its smallest eigenvalue after scaling
        to unit diagonal is below zero by more than rounding).
    decrement : float
        The scaled gradient.
    min_eigenvalue : float
        Largest eigenvalue of the scaled Hessian (negative when it is negative definite).
    message : str
        The optimizer's message.
    detail : tuple of str
        One sentence per failed check, saying what failed and what to do.
    """

    optimizer: bool
    finite: bool
    gradient: bool
    hessian: bool
    decrement: float = float("nan")
    min_eigenvalue: float = float("nan")
    message: str = ""
    detail: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.optimizer and self.finite and self.gradient and self.hessian

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [k for k in ("optimizer", "finite", "gradient", "hessian") if not getattr(self, k)]

    def describe(self) -> str:
        """One paragraph: converged, or which checks failed and why."""
        if self:
            return (f"converged: {self.message}; log-likelihood finite, Newton decrement "
                    f"{self.decrement:.1e}, Hessian negative definite")
        return "; ".join(self.detail)

    def __str__(self) -> str:
        return self.describe()


def check_convergence(objective: float, grad: np.ndarray | None, hessian: np.ndarray | None,
                      optimizer_ok: bool, message: str = "", names: Sequence[str] = (),
                      gradient_tol: float = GRADIENT_TOL) -> Convergence:
    """Check a maximum: finite objective, small scaled gradient, negative definite Hessian.

    Parameters
    ----------
    objective : float
        The maximized objective at the estimate.
    grad : numpy.ndarray or None
        Its gradient in the estimated parameters (``None``: not available, the check fails).
    hessian : numpy.ndarray or None
        Its Hessian (``None``: not available, the check fails).
    optimizer_ok : bool
        Whether the optimizer stopped by its own rule.
    message : str
        The optimizer's message.
    names : sequence of str
        Parameter names, for the messages.
    gradient_tol : float
        Bound on the Newton decrement.

    Returns
    -------
    Convergence
    """
    names = list(names)
    detail = []
    if not optimizer_ok:
        detail.append(f"the optimizer did not stop by its rule ({message})")
    finite = bool(np.isfinite(objective))
    if not finite:
        detail.append(f"the log-likelihood is {objective} at the estimate")
    H = None if hessian is None else np.asarray(hessian, dtype=float)
    g = None if grad is None else np.asarray(grad, dtype=float)
    concave, top = False, np.nan
    if H is None or H.size == 0 and g is not None and g.size:
        detail.append("the Hessian is not available at the estimate")
    elif not np.all(np.isfinite(H)):
        detail.append("the Hessian has non-finite entries at the estimate")
    elif H.size:
        d = np.sqrt(np.abs(np.diag(H)))
        if np.all(d > 0):
            R = H / np.outer(d, d)
            eig, vec = np.linalg.eigh(0.5 * (R + R.T))
            top = float(eig[-1])
            concave = top < -1e-10
            if not concave:
                v = vec[:, -1]
                who = [names[k] for k in np.flatnonzero(np.abs(v) > 0.3 * np.abs(v).max())] \
                    if names else []
                detail.append(f"the Hessian is not negative definite (largest scaled eigenvalue "
                              f"{top:.2g}{', direction ' + ', '.join(who) if who else ''}): the "
                              "point is not a strict maximum; try other starting values "
                              "(starts=[...])")
        else:
            flat = [names[k] if names else str(k) for k in np.flatnonzero(d == 0)]
            detail.append(f"the Hessian is singular: the objective does not move with "
                          f"{', '.join(flat)} at the estimate (not identified there)")
    else:
        concave = True  # nothing estimated
    decrement = np.nan
    if g is None:
        detail.append("the gradient is not available at the estimate")
        small = False
    elif not np.all(np.isfinite(g)):
        detail.append("the gradient is not finite at the estimate")
        small = False
    elif g.size == 0:
        small, decrement = True, 0.0
    else:
        if concave:
            decrement = float(g @ np.linalg.solve(-H, g))
        elif H is not None and np.all(np.isfinite(H)):
            with np.errstate(divide="ignore", invalid="ignore"):
                decrement = float(np.sum(np.where(g != 0, g**2 / np.abs(np.diag(H)), 0.0)))
        else:
            decrement = np.inf
        small = bool(np.isfinite(decrement) and decrement < gradient_tol)
        if not small:
            k = int(np.argmax(np.abs(g)))
            detail.append(f"the gradient is not zero (Newton decrement {decrement:.2g} >= "
                          f"{gradient_tol:g}; largest component "
                          f"{names[k] if names else k}: {g[k]:.3g})")
    return Convergence(bool(optimizer_ok), finite, small, concave, decrement, top, message,
                       tuple(detail))
