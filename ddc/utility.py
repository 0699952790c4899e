"""Flow utility specifications: linear in named parameters, or a user-supplied callable.

A linear utility is :math:`u(s, a; \\theta) = \\sum_k X_k(s, a) \\theta_k` with a feature array
:math:`X` of shape ``(S, A, K)``. A callable utility is any smooth function of the parameter
vector returning an ``(S, A)`` array, with an optional Jacobian (central differences otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["LinearUtility", "CallableUtility"]


class LinearUtility:
    """Utility linear in parameters, :math:`u = X \\theta`.

    Parameters
    ----------
    features : array_like, shape (S, A, K)
        ``features[s, a, k]`` is the derivative of :math:`u(s, a)` in parameter *k*. Entries of
        infeasible (state, action) pairs are ignored.
    names : sequence of str
        The K parameter names.
    """

    def __init__(self, features: np.ndarray, names: Sequence[str]):
        X = np.ascontiguousarray(features, dtype=np.float64)
        names = tuple(names)
        if X.ndim != 3:
            raise ValueError(f"features must have shape (states, actions, parameters); got "
                             f"{X.ndim} axes with shape {X.shape}")
        if X.shape[2] != len(names):
            raise ValueError(f"features have {X.shape[2]} parameter columns but {len(names)} "
                             f"names were given: {list(names)}")
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {list(names)}")
        if not np.all(np.isfinite(X)):
            s, a, k = np.argwhere(~np.isfinite(X))[0]
            raise ValueError(f"feature {names[k]!r} is not finite at state {s}, action {a}")
        self.features = X
        self.names = names

    @property
    def shape(self) -> tuple[int, int]:
        """``(S, A)``."""
        return self.features.shape[:2]

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Utilities ``(S, A)`` at ``theta``."""
        return self.features @ np.asarray(theta, dtype=np.float64)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """Derivatives ``(S, A, K)`` of the utilities in the parameters (the features)."""
        return self.features


class CallableUtility:
    """Utility given by a user function of the parameter vector.

    Parameters
    ----------
    function : callable
        ``function(theta) -> ndarray (S, A)``, with ``theta`` ordered as ``names``.
    names : sequence of str
        Parameter names.
    shape : tuple of int
        ``(S, A)``, checked against the model.
    jacobian : callable, optional
        ``jacobian(theta) -> ndarray (S, A, K)``. Without it, central differences with step
        ``1e-6 * max(1, |theta_k|)`` are used.
    """

    def __init__(self, function: Callable[[np.ndarray], np.ndarray], names: Sequence[str],
                 shape: tuple[int, int], jacobian: Callable | None = None):
        self.function = function
        self.names = tuple(names)
        self.shape = tuple(shape)
        self._jacobian = jacobian

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Utilities ``(S, A)`` at ``theta``, checked for shape."""
        u = np.asarray(self.function(np.asarray(theta, dtype=np.float64)), dtype=np.float64)
        if u.shape != self.shape:
            raise ValueError(f"utility function returned shape {u.shape}, expected {self.shape}")
        return u

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """Derivatives ``(S, A, K)``, analytic when given, else central differences."""
        theta = np.asarray(theta, dtype=np.float64)
        if self._jacobian is not None:
            J = np.asarray(self._jacobian(theta), dtype=np.float64)
            if J.shape != (*self.shape, len(self.names)):
                raise ValueError(f"utility jacobian returned shape {J.shape}, expected "
                                 f"{(*self.shape, len(self.names))}")
            return J
        J = np.empty((*self.shape, len(theta)))
        for k in range(len(theta)):
            h = 1e-6 * max(1.0, abs(theta[k]))
            up, dn = theta.copy(), theta.copy()
            up[k] += h
            dn[k] -= h
            J[..., k] = (self(up) - self(dn)) / (2 * h)
        return J
