"""Solving the logit Bellman fixed point, and its derivatives in the parameters.

Three methods, chosen with :class:`Solver`:

``"successive_approximation"``
    :math:`V_{k+1} = T(V_k)`, a contraction of modulus :math:`\\beta`.
``"newton_kantorovich"``
    Rust's (1987, 2000) polyalgorithm: contraction steps until the observed contraction rate
    :math:`\\|V_{k+1} - V_k\\| / \\|V_k - V_{k-1}\\|` is within ``switch_tol`` of
    :math:`\\beta` (or the residual is below ``switch_residual``), then Newton-Kantorovich steps

    .. math:: (I - \\beta P_\\pi) \\, \\Delta V = T(V) - V, \\qquad V \\leftarrow V + \\Delta V,

    where :math:`P_\\pi = \\sum_a \\mathrm{diag}(\\pi_a) P_a` is the Fréchet derivative of
    :math:`T / \\beta` (Iskhakov, Rust and Schjerning 2016).
``"policy_iteration"``
    Evaluate the logit policy exactly,
    :math:`V = (I - \\beta P_\\pi)^{-1} \\sum_a \\pi_a (u_a - \\log \\pi_a + \\gamma)`, then improve
    it, from the first step. In the logit model this is Newton's method on :math:`V = T(V)`
    (the two differ only in the start and in solving for :math:`V` rather than its increment).

The linear systems in :math:`I - \\beta P_\\pi` are solved through the model's structure when it
has some (``linear_solver="auto"``): block by block over the state variables that never change,
with single-action states eliminated by a Schur complement (:mod:`ddc.block_solver`), or as a
banded matrix plus a low-rank term for actions that reset the state
(:mod:`ddc.banded_solver`); otherwise by dense LU for small state spaces, by sparse LU
(SuperLU) of the assembled sparse :math:`P_\\pi` for moderate ones, and matrix-free by GMRES
over the factored transitions for large ones.

Derivatives (implicit function theorem):

.. math::

    \\frac{\\partial V}{\\partial \\theta} = (I - \\beta P_\\pi)^{-1} \\sum_a \\pi_a
    \\frac{\\partial u_a}{\\partial \\theta}, \\qquad
    \\frac{\\partial \\log \\pi_a}{\\partial \\theta} = \\frac{\\partial v_a}{\\partial \\theta}
    - \\sum_b \\pi_b \\frac{\\partial v_b}{\\partial \\theta}, \\qquad
    \\frac{\\partial v_a}{\\partial \\theta} = \\frac{\\partial u_a}{\\partial \\theta}
    + \\beta P_a \\frac{\\partial V}{\\partial \\theta}.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ddc.banded_solver import MAX_RESETS, BandedSystem, banded_structure
from ddc.block_solver import BlockSystem, block_structure
from ddc.kernels import bellman as kb
from ddc.transitions import (
    TransitionDerivatives,
    deterministic_factors,
    differentiate_transitions,
)
from ddc.utility import LinearUtility

__all__ = ["Solver", "Solution", "solve", "ConvergenceWarning", "ConvergenceError",
           "PolicySystem", "FixedPoint", "solve_arrays", "small_blas",
           "transition_derivatives", "Derivatives", "BatchFixedPoint", "solve_batch",
           "stacked_transition_matrix"]

METHODS = {
    "newton_kantorovich": "contraction steps, then Newton-Kantorovich steps (Rust's polyalgorithm)",
    "successive_approximation": "value function iteration V <- T(V)",
    "policy_iteration": "exact logit policy evaluation and improvement from the first step",
}
LINEAR_SOLVERS = {
    "auto": "dense LU up to dense_max states, sparse LU up to sparse_max_nnz nonzeros, else GMRES",
    "dense": "LU of the dense (I - beta P_pi); small models only",
    "sparse": "SuperLU of the assembled sparse (I - beta P_pi)",
    "gmres": "matrix-free GMRES over the factored transitions",
    "blocks": "block by block over the variables that never change, single-action states "
              "eliminated by a Schur complement (ddc.block_solver)",
    "banded": "banded LU plus a low-rank term for actions that reset the state "
              "(ddc.banded_solver)",
}
ON_FAILURE = ("warn", "raise")


class ConvergenceWarning(RuntimeWarning):
    """An iterative procedure stopped before meeting its tolerance."""


class ConvergenceError(RuntimeError):
    """An iterative procedure stopped before meeting its tolerance (``on_failure="raise"``)."""


@dataclass(frozen=True)
class Solver:
    """Configuration of the Bellman solver; checks itself on construction.

    Parameters
    ----------
    method : str
        ``"newton_kantorovich"`` (default), ``"successive_approximation"`` or
        ``"policy_iteration"``.
    tol : float
        Stop when :math:`\\max_s |T(V)(s) - V(s)| \\le` ``tol`` (absolute; the solver works on
        :math:`V` less a constant, and never demands less than the rounding level of that,
        :math:`16 \\epsilon \\max_s |V(s) - K|`).
    max_iter : int
        Most Bellman-operator applications (successive approximation and the contraction phase)
        plus Newton steps in all.
    switch_tol : float
        Newton-Kantorovich: switch to Newton steps once the observed contraction rate is within
        ``switch_tol`` of beta.
    switch_residual : float
        Newton-Kantorovich: or once the residual is below this.
    max_contraction : int
        Newton-Kantorovich: at most this many contraction steps before switching.
    linear_solver : str
        ``"auto"``, ``"dense"``, ``"sparse"``, ``"gmres"``, ``"blocks"`` or ``"banded"``
        (see :data:`LINEAR_SOLVERS`; ``"auto"`` uses blocks or the banded form when the model
        has that structure).
    dense_max : int
        With ``"auto"``: dense LU up to this many states.
    sparse_max_nnz : int
        With ``"auto"``: sparse LU while :math:`P_\\pi` has at most this many nonzeros.
    gmres_rtol : float
        Relative tolerance of each GMRES solve.
    on_failure : str
        ``"warn"`` (a :class:`ConvergenceWarning`) or ``"raise"`` (a :class:`ConvergenceError`).

    Examples
    --------
    >>> Solver("policy_iteration", tol=1e-10)
    Solver('policy_iteration', tol=1e-10, max_iter=100000, linear_solver='auto')
    """

    method: str = "newton_kantorovich"
    tol: float = 1e-12
    max_iter: int = 100_000
    switch_tol: float = 0.05
    switch_residual: float = 1e-2
    max_contraction: int = 50
    linear_solver: str = "auto"
    dense_max: int = 400
    sparse_max_nnz: int = 20_000_000
    gmres_rtol: float = 1e-12
    on_failure: str = "warn"
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown solver method {self.method!r}; choose one of: "
                             + "; ".join(f"{k} ({v})" for k, v in METHODS.items()))
        if self.linear_solver not in LINEAR_SOLVERS:
            raise ValueError(f"unknown linear_solver {self.linear_solver!r}; choose one of: "
                             + "; ".join(f"{k} ({v})" for k, v in LINEAR_SOLVERS.items()))
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {ON_FAILURE}, got {self.on_failure!r}")
        for name in ("tol", "switch_tol", "switch_residual", "gmres_rtol"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Solver {name} must be a positive number, got {value!r}")
        for name in ("max_iter", "max_contraction", "dense_max", "sparse_max_nnz"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Solver {name} must be a positive integer, got {value!r}")

    def __repr__(self) -> str:
        return (f"Solver({self.method!r}, tol={self.tol:g}, max_iter={self.max_iter}, "
                f"linear_solver={self.linear_solver!r})")

    def __str__(self) -> str:
        return f"{METHODS[self.method]}; tol {self.tol:g}; linear systems: {self.linear_solver}"


class PolicySystem:
    """The linear system :math:`(I - \\beta P_\\pi) x = b` at a policy, factorized once.

    Parameters
    ----------
    pi : numpy.ndarray, shape (S, A)
        The policy.
    beta : float
        Discount factor.
    ct : CompiledTransitions
        The transitions.
    solver : Solver
        Chooses dense LU, sparse LU, GMRES or the block/Schur solve.
    feasible : numpy.ndarray of bool, shape (S, A), optional
        The feasibility mask; needed to eliminate single-action states (``"blocks"``).
    """

    def __init__(self, pi: np.ndarray, beta: float, ct, solver: Solver,
                 feasible: np.ndarray | None = None):
        self.pi, self.beta, self.ct = pi, beta, ct
        self.trans = tuple(ct)[2:]
        S = pi.shape[0]
        kind = solver.linear_solver
        structure = None
        if kind == "blocks" or (kind == "auto" and S > solver.dense_max):
            structure = block_structure(ct, pi > 0 if feasible is None else feasible, beta)
            if structure is None and kind == "blocks":
                raise ValueError("linear_solver='blocks' needs state variables that never "
                                 "change or states with a single feasible action, the same "
                                 "in every block; this model has neither")
        banded = None
        if kind == "banded" or (kind == "auto" and structure is None):
            banded = banded_structure(ct, pi.shape[1])
            if banded is None and kind == "banded":
                raise ValueError("linear_solver='banded' needs transitions that move the state "
                                 "within a narrow band (plus at most "
                                 f"{MAX_RESETS} actions that reset it); this model's do not")
        if kind == "auto":
            if structure is not None:
                kind = "blocks"
            elif banded is not None:
                kind = "banded"
            elif S <= solver.dense_max:
                kind = "dense"
            else:
                per_row = int(np.prod(ct.row_nnz_max())) * pi.shape[1]
                kind = "sparse" if S * per_row <= solver.sparse_max_nnz else "gmres"
        self.kind = kind
        if kind == "blocks":
            self._blocks = BlockSystem(structure, pi)
            return
        if kind == "banded":
            self._blocks = BandedSystem(banded, pi, beta)
            return
        self.rtol = solver.gmres_rtol
        self.gmres_iterations = 0
        self._precond = None
        if kind in ("dense", "sparse"):
            if kind == "dense":
                M = np.empty((S, S), order="F")
                kb.policy_system_dense(pi, beta, M, *self.trans)
                self._lu = sla.lu_factor(M, overwrite_a=True, check_finite=False)
            else:
                self._lu = _sparse_lu(pi, beta, self.trans)
        else:
            det = deterministic_factors(ct)
            if det is not None:
                # preconditioner: the deterministic factors exactly, the others frozen
                self._precond = _sparse_lu(pi, beta, tuple(det)[2:])

    def _matvec(self, x, transpose=False):
        S, A = self.pi.shape
        out = np.empty(S)
        if transpose:
            kb.policy_matvec_transposed(np.ascontiguousarray(x), self.pi, self.beta,
                                        np.empty((S, A)), out, *self.trans)
        else:
            kb.policy_matvec(np.ascontiguousarray(x), self.pi, self.beta, np.empty((S, A)), out,
                             *self.trans)
        return out

    def solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        """Solve :math:`(I - \\beta P_\\pi) x = b` (or the transposed system); ``b`` may be 2-D."""
        b = np.asarray(b, dtype=np.float64)
        if self.kind in ("blocks", "banded"):
            return self._blocks.solve(b, transpose)
        if self.kind == "dense":
            return sla.lu_solve(self._lu, b, trans=1 if transpose else 0, check_finite=False)
        if self.kind == "sparse":
            return self._lu.solve(b, trans="T" if transpose else "N")
        if b.ndim == 2:
            return np.column_stack([self.solve(b[:, k], transpose) for k in range(b.shape[1])])
        S = b.shape[0]
        op = spla.LinearOperator((S, S), matvec=lambda x: self._matvec(x, transpose),
                                 dtype=np.float64)
        count = [0]

        def callback(_):
            count[0] += 1

        M = None
        if self._precond is not None:
            lu = self._precond
            M = spla.LinearOperator((S, S), matvec=lambda x: lu.solve(x, trans="T" if transpose
                                                                     else "N"), dtype=np.float64)
        x, info = spla.gmres(op, b, rtol=self.rtol, atol=0.0, restart=60, maxiter=200, M=M,
                             callback=callback, callback_type="pr_norm")
        self.gmres_iterations += count[0]
        if info != 0:
            warnings.warn(f"GMRES did not reach rtol={self.rtol:g} in the policy system "
                          f"(info={info}); the Newton step is inexact", ConvergenceWarning,
                          stacklevel=3)
        return x


def _sparse_lu(pi: np.ndarray, beta: float, trans: tuple):
    """SuperLU factorization of the sparse ``I - beta P_pi``."""
    S = pi.shape[0]
    rows, cols, vals = kb.policy_matrix_coo(pi, *trans)
    P = sp.csc_matrix((vals, (rows, cols)), shape=(S, S))
    return spla.splu((sp.identity(S, format="csc") - beta * P).tocsc())


@dataclass
class Solution:
    """The solved model at one parameter vector.

    Attributes
    ----------
    model : Model
        The model solved.
    params : pandas.Series
        The parameters it was solved at.
    V : numpy.ndarray, shape (S,)
        Ex-ante value :math:`\\bar V(s) = \\log\\sum_a e^{v(s,a)} + \\gamma` (Euler's constant
        included).
    v : numpy.ndarray, shape (S, A)
        Choice-specific values :math:`v(s,a) = u(s,a) + \\beta E[V(s') \\mid s, a]`
        (``-inf`` where infeasible).
    pi : numpy.ndarray, shape (S, A)
        Logit choice probabilities (0 where infeasible).
    converged : bool
        Whether the residual met the tolerance.
    residual : float
        :math:`\\max_s |T(V)(s) - V(s)|` at the last iterate.
    iterations : int
        Bellman-operator applications (contraction steps).
    newton_steps : int
        Newton-Kantorovich / policy-iteration steps.
    method : str
        The solver method.
    seconds : float
        Wall time of the solve.
    """

    model: object
    params: pd.Series
    V: np.ndarray
    v: np.ndarray
    pi: np.ndarray
    u: np.ndarray
    converged: bool
    residual: float
    iterations: int
    newton_steps: int
    method: str
    seconds: float
    solver: Solver = field(repr=False)
    linear_solver: str = "none"
    ct: object = field(default=None, repr=False)

    @property
    def transitions(self):
        """The compiled transitions the model was solved with."""
        if self.ct is None:
            self.ct = self.model.compiled_transitions(self.params.to_numpy())
        return self.ct

    def __repr__(self) -> str:
        return (f"Solution({self.model.name}, converged={self.converged}, "
                f"residual={self.residual:.2e}, iterations={self.iterations}, "
                f"newton_steps={self.newton_steps}, method={self.method!r})")

    @cached_property
    def ccp(self) -> pd.DataFrame:
        """Conditional choice probabilities, states x actions, labelled."""
        return pd.DataFrame(self.pi, index=self.model.space.index, columns=list(self.model.actions))

    @cached_property
    def value(self) -> pd.Series:
        """Ex-ante value (Euler's constant included), indexed by state."""
        return pd.Series(self.V, index=self.model.space.index, name="value")

    @cached_property
    def choice_values(self) -> pd.DataFrame:
        """Choice-specific values ``v(s, a)``, labelled (``-inf`` where infeasible)."""
        return pd.DataFrame(self.v, index=self.model.space.index, columns=list(self.model.actions))

    @property
    def log_pi(self) -> np.ndarray:
        """``log pi(a|s)`` (``-inf`` where infeasible)."""
        with np.errstate(divide="ignore"):
            return np.where(self.model.feasible, self.v - (self.V - kb.EULER_GAMMA)[:, None],
                            -np.inf)

    @cached_property
    def policy_system(self) -> PolicySystem:
        """:math:`(I - \\beta P_\\pi)` at this solution's policy, factorized."""
        return PolicySystem(self.pi, self.model.beta, self.transitions, self.solver,
                            self.model.feasible)

    def expected(self, W: np.ndarray) -> np.ndarray:
        """``E[W(s') | s, a]`` for a vector ``(S,)`` -> ``(S, A)``, or a matrix ``(S, K)`` ->
        ``(S, A, K)`` (see :meth:`ddc.transitions.CompiledTransitions.expected`)."""
        return self.transitions.expected(W)

    def utility_jacobian(self) -> np.ndarray:
        """``du(s, a) / dtheta``, shape (S, A, K) over the utility parameters."""
        return self.model.utility.jacobian(self.params.to_numpy()[: len(self.model.utility_params)])

    def dvalue_dtheta(self) -> np.ndarray:
        """:math:`\\partial \\bar V / \\partial \\theta`, shape (S, K), over the utility
        parameters (implicit function theorem)."""
        dU = self.utility_jacobian()
        rhs = np.einsum("sa,sak->sk", np.where(self.model.feasible, self.pi, 0.0), dU)
        return np.atleast_2d(self.policy_system.solve(rhs).reshape(rhs.shape))

    def dv_dtheta(self) -> np.ndarray:
        """:math:`\\partial v(s, a) / \\partial \\theta`, shape (S, A, K)."""
        return self.utility_jacobian() + self.model.beta * self.expected(self.dvalue_dtheta())

    def dlogccp_dtheta(self) -> np.ndarray:
        """:math:`\\partial \\log \\pi(a \\mid s) / \\partial \\theta`, shape (S, A, K); 0 where
        infeasible."""
        dv = self.dv_dtheta()
        mean = np.einsum("sa,sak->sk", self.pi, dv)
        out = dv - mean[:, None, :]
        out[~self.model.feasible] = 0.0
        return out

    def dccp_dtheta(self) -> np.ndarray:
        """:math:`\\partial \\pi(a \\mid s) / \\partial \\theta`, shape (S, A, K)."""
        return self.pi[:, :, None] * self.dlogccp_dtheta()

    # ------------------------------------------------------------ all parameters
    def transition_derivatives(self, names: list[str] | None = None,
                               second: bool = False) -> TransitionDerivatives:
        """Derivatives of the transitions in the transition parameters ``names`` (all by
        default) at this solution's parameters; see :func:`transition_derivatives`."""
        return transition_derivatives(self.model, self.params, names, second)

    def _param_derivatives(self, names, dtrans):
        """``(dV, dv)``: :math:`\\partial \\bar V` (S, n) and :math:`\\partial v` (S, A, n)
        over the utility parameters then the transition parameters ``names``."""
        model = self.model
        names = list(model.transition_params.index) if names is None else list(names)
        if names and dtrans is None:
            dtrans = self.transition_derivatives(names)
        if dtrans is not None and list(dtrans.names) != names:
            raise ValueError(f"transition derivatives are over {list(dtrans.names)}, "
                             f"not {names}")
        beta = model.beta
        direct = self.utility_jacobian()
        if names:
            direct = np.concatenate([direct, beta * dtrans.expected(self.V)], axis=2)
        rhs = np.einsum("sa,sak->sk", np.where(model.feasible, self.pi, 0.0), direct)
        dV = np.asarray(self.policy_system.solve(rhs)).reshape(rhs.shape)
        dv = direct + beta * self.expected(dV)
        return dV, dv

    def derivatives(self, names: list[str] | None = None,
                    dtrans: TransitionDerivatives | None = None) -> Derivatives:
        """The value, choice values and log CCPs differentiated in the utility parameters and
        the transition parameters ``names`` (all by default), from one solve of the policy
        system; see :meth:`dvalue_dparams` and :meth:`dlogccp_dparams`."""
        dV, dv = self._param_derivatives(names, dtrans)
        dlp = dv - np.einsum("sa,sak->sk", self.pi, dv)[:, None, :]
        dlp[~self.model.feasible] = 0.0
        return Derivatives(dV, dv, dlp)

    def dvalue_dparams(self, names: list[str] | None = None,
                       dtrans: TransitionDerivatives | None = None) -> np.ndarray:
        """:math:`\\partial \\bar V / \\partial (\\theta, \\psi)`, shape (S, K + P): the
        utility parameters, then the transition parameters ``names`` (all by default).

        By the implicit function theorem applied to :math:`\\bar V = T(\\bar V; \\theta,
        \\psi)`,

        .. math::

            \\frac{\\partial \\bar V}{\\partial \\psi_k} = (I - \\beta P_\\pi)^{-1}
            \\beta \\sum_a \\pi_a \\frac{\\partial P_a}{\\partial \\psi_k} \\bar V,

        one solve with the factorized :attr:`policy_system` for all parameters together. The
        derivatives :math:`\\partial P_a / \\partial \\psi_k` of the transitions are those of
        :func:`transition_derivatives` (or ``dtrans`` when given).
        """
        return self._param_derivatives(names, dtrans)[0]

    def dlogccp_dparams(self, names: list[str] | None = None,
                        dtrans: TransitionDerivatives | None = None) -> np.ndarray:
        """:math:`\\partial \\log \\pi(a \\mid s) / \\partial (\\theta, \\psi)`, shape
        (S, A, K + P); 0 where infeasible. With :math:`\\partial v_a / \\partial \\psi_k =
        \\beta (\\partial P_a / \\partial \\psi_k) \\bar V + \\beta P_a \\, \\partial
        \\bar V / \\partial \\psi_k` and :math:`\\partial \\log \\pi_a = \\partial v_a -
        \\sum_b \\pi_b \\partial v_b`. See :meth:`dvalue_dparams`."""
        return self.derivatives(names, dtrans).log_ccp

    def dlogccp_dpsi(self, names: list[str] | None = None,
                     dtrans: TransitionDerivatives | None = None) -> np.ndarray:
        """:math:`\\partial \\log \\pi(a \\mid s) / \\partial \\psi`, shape (S, A, P),
        over the transition parameters ``names`` (all by default); see
        :meth:`dlogccp_dparams`."""
        return self.dlogccp_dparams(names, dtrans)[:, :, len(self.model.utility_params):]

    def d2logccp_dtheta_dpsi(self, dtrans: TransitionDerivatives) -> np.ndarray:
        """Cross derivatives :math:`\\partial^2 \\log \\pi(a \\mid s) / \\partial \\theta_i
        \\partial \\psi_j` of the log CCPs in the utility parameters and the transition
        parameters of ``dtrans``, shape (S, A, K, P); 0 where infeasible.

        The utility-by-transition block of :meth:`d2logccp_dparams`, which needs first
        derivatives of the transitions only: the utility does not depend on :math:`\\psi` and
        the transitions not on :math:`\\theta`, so :math:`D_{ij} = \\beta P_j \\bar V_i` and

        .. math::

            (I - \\beta P_\\pi) \\bar V_{ij} = \\sum_a \\pi_a \\big(D_{ij,a}
            + (w_{i,a} - \\bar V_i)(w_{j,a} - \\bar V_j)\\big), \\qquad
            \\partial^2 \\log \\pi_a = D_{ij,a} + \\beta P_a \\bar V_{ij} - \\bar V_{ij},

        all :math:`K P` right-hand sides solved with the one factorized :attr:`policy_system`.
        ``dtrans`` may be any :class:`~ddc.transitions.TransitionDerivatives` (for example
        derivatives in the cells of estimated transition tables), not only those of the model's
        named transition parameters.
        """
        model = self.model
        beta = model.beta
        feas = model.feasible
        K = len(model.utility_params)
        direct = np.concatenate([self.utility_jacobian(), beta * dtrans.expected(self.V)],
                                axis=2)
        pi = np.where(feas, self.pi, 0.0)
        rhs = np.einsum("sa,sak->sk", pi, direct)
        dV = np.asarray(self.policy_system.solve(rhs)).reshape(rhs.shape)
        w = direct + beta * self.expected(dV)
        S, A, n = w.shape
        P = n - K
        D = np.ascontiguousarray((beta * dtrans.expected(dV[:, :K])).transpose(0, 1, 3, 2))
        c = np.where(feas[:, :, None], w - dV[:, None, :], 0.0)
        R = np.einsum("sa,saij->sij", pi, D) + np.einsum("sa,sai,saj->sij", pi, c[:, :, :K],
                                                          c[:, :, K:])
        Vij = np.asarray(self.policy_system.solve(R.reshape(S, K * P))).reshape(S, K * P)
        out = (D.reshape(S, A, K * P) + beta * self.expected(Vij)
               - Vij[:, None, :]).reshape(S, A, K, P)
        out[~feas] = 0.0
        return out

    def _utility_hessian(self) -> np.ndarray | None:
        """:math:`\\partial^2 u / \\partial \\theta^2` (S, A, K, K), ``None`` when zero
        (linear utility); central differences of the utility's Jacobian otherwise."""
        utility = self.model.utility
        if isinstance(utility, LinearUtility):
            return None
        theta = self.params.to_numpy()[: len(self.model.utility_params)]
        K = theta.size
        out = np.empty((*self.pi.shape, K, K))
        for k in range(K):
            h = 1e-5 * max(1.0, abs(theta[k]))
            up, dn = theta.copy(), theta.copy()
            up[k] += h
            dn[k] -= h
            out[:, :, :, k] = (utility.jacobian(up) - utility.jacobian(dn)) / (2 * h)
        return 0.5 * (out + out.transpose(0, 1, 3, 2))

    def d2logccp_dparams(self, names: list[str] | None = None,
                         dtrans: TransitionDerivatives | None = None,
                         first: Derivatives | None = None,
                         value_out: np.ndarray | None = None) -> np.ndarray:
        """Second derivatives :math:`\\partial^2 \\log \\pi(a \\mid s) / \\partial x_i
        \\partial x_j` over :math:`x = (\\theta, \\psi)`, shape (S, A, n, n), ``n = K + P``;
        0 where infeasible.

        Differentiating :math:`\\bar V = T(\\bar V; x)` twice (second-order implicit function
        theorem): with :math:`w_i = \\partial v / \\partial x_i` (:meth:`dlogccp_dparams`),

        .. math::

            (I - \\beta P_\\pi) \\bar V_{ij} = \\sum_a \\pi_a \\big(D_{ij,a}
            + (w_{i,a} - \\bar V_i)(w_{j,a} - \\bar V_j)\\big), \\qquad
            D_{ij} = u_{ij} + \\beta P_{ij} \\bar V + \\beta P_i \\bar V_j
            + \\beta P_j \\bar V_i,

        and :math:`\\partial^2 \\log \\pi_a = D_{ij,a} + \\beta P_a \\bar V_{ij} -
        \\bar V_{ij}`, where :math:`P_i, P_{ij}` are the derivatives of the transitions in
        the parameters (zero for utility parameters) and :math:`u_{ij}` those of the utility
        (zero when it is linear). All :math:`n(n+1)/2` right-hand sides are solved with the one
        factorized :attr:`policy_system`; no fixed point is solved again. ``dtrans`` must hold
        second derivatives (``transition_derivatives(..., second=True)``) when there are
        transition parameters. ``first``, the result of :meth:`derivatives` at this solution in
        the same parameters, saves solving for the first derivatives again; ``value_out``, an
        array of shape (S, n, n), receives :math:`\\bar V_{ij}` (a warm start of the fixed
        point to second order, for example).
        """
        model = self.model
        names = list(model.transition_params.index) if names is None else list(names)
        if names and dtrans is None:
            dtrans = self.transition_derivatives(names, second=True)
        if first is None:
            dV, w = self._param_derivatives(names, dtrans)
        else:
            dV, w = first.value, first.choice_values
        S, A, n = w.shape
        K, P = len(model.utility_params), len(names)
        beta = model.beta
        feas = model.feasible
        pi = np.where(feas, self.pi, 0.0)
        D = np.zeros((S, A, n, n))
        uh = self._utility_hessian()
        direct = uh is not None or P > 0  # D is zero for a linear utility alone
        if uh is not None:
            D[:, :, :K, :K] = uh
        if P:
            D[:, :, K:, K:] += beta * dtrans.expected_second(self.V)
            for j in range(n):
                PVj = beta * dtrans.expected(dV[:, j])  # (S, A, P): beta P_k V_j
                D[:, :, K:, j] += PVj
                D[:, :, j, K:] += PVj
        c = np.where(feas[:, :, None], w - dV[:, None, :], 0.0)
        R = np.einsum("sa,sai,saj->sij", pi, c, c)
        if direct:
            R += np.einsum("sa,saij->sij", pi, D)
        iu, ju = _triu_indices(n)
        Vij = np.asarray(self.policy_system.solve(R[:, iu, ju])).reshape(S, iu.size)
        if value_out is not None:
            value_out[:, iu, ju] = Vij
            value_out[:, ju, iu] = Vij
        d2 = D[:, :, iu, ju] + beta * self.expected(Vij) - Vij[:, None, :]
        out = np.empty((S, A, n, n))
        out[:, :, iu, ju] = d2
        out[:, :, ju, iu] = d2
        out[~feas] = 0.0
        return out


@lru_cache(maxsize=16)
def _triu_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.triu_indices(n)``, kept (it costs more than the rest of a small Hessian)."""
    iu, ju = np.triu_indices(n)
    iu.flags.writeable = ju.flags.writeable = False
    return iu, ju


def transition_derivatives(model, params, names: list[str] | None = None,
                           second: bool = False, directions: pd.DataFrame | None = None
                           ) -> TransitionDerivatives:
    """Derivatives of ``model``'s transitions in its transition parameters at ``params``.

    The transition function is the user's code: its tables (not the fixed point) are
    differentiated by Richardson-extrapolated central differences
    (:func:`ddc.transitions.differentiate_transitions`; exact up to rounding, about
    :math:`10^{-13}`, for tables linear in the parameters), unless the model declares them in
    closed form (``model.hooks.transition_jacobian``, a
    :class:`ddc.hooks.TransitionJacobian`; used for named parameters, not ``directions``).
    Models whose transitions are fixed
    have no transition parameters, and ``names`` must then be empty.

    Parameters
    ----------
    model : Model
    params : pandas.Series, mapping or array
        All parameters (utility parameters are ignored).
    names : list of str, optional
        Transition parameters to differentiate in (all by default). Ignored when
        ``directions`` is given.
    second : bool
        Also the second derivatives.
    directions : pandas.DataFrame, optional
        Directional derivatives instead: rows are transition parameters, each column a
        direction :math:`d_k`, and the result is over the coordinates :math:`z_k` of
        :math:`\\psi = \\psi_0 + \\sum_k z_k d_k` at :math:`z = 0` (named by the columns).
        The stencil then stays on the affine set the directions span: a point on the edge of
        the parameters' domain (for example an implied probability :math:`1 - \\sum_j
        \\psi_j = 0`) can be differentiated along the edge, where the coordinate steps would
        leave the domain.
    """
    every = list(model.transition_params.index)
    if directions is not None:
        unknown = [n for n in directions.index if n not in every]
        if unknown:
            raise KeyError(f"directions name {unknown}, which are not transition parameters of "
                           f"the model; they are {every}")
        rows = list(directions.index)
        D = directions.to_numpy(dtype=float)
        labels = [str(c) for c in directions.columns]
    else:
        rows = every if names is None else list(names)
        unknown = [n for n in rows if n not in every]
        if unknown:
            raise KeyError(f"{unknown} are not transition parameters of the model; they are "
                           f"{every}")
        D, labels = None, rows
    vec = model.params_series(params).to_numpy()
    K = len(model.utility_params)
    idx = [K + every.index(n) for n in rows]
    index = model.transition_params.index
    psi0 = vec[idx]

    def evaluate(x):
        out = vec.copy()
        out[idx] = x if D is None else psi0 + D @ x
        # the model's own transition function, called as Model.transitions does (a Series of
        # the transition parameters), without re-validating all parameters at every point
        return model._transition_fn(pd.Series(out[K:], index=index, dtype=float))

    at = psi0 if D is None else np.zeros(D.shape[1])
    hooks = getattr(model, "hooks", None)
    declared = getattr(hooks, "transition_jacobian", None)
    jacobian = None
    if declared is not None and D is None:  # closed form, for all parameters: keep those asked
        pos = [every.index(n) for n in rows]

        def first(psi):
            x = vec[K:].copy()
            x[pos] = psi
            every_d = list(declared.first(x))
            if len(every_d) != len(every):
                raise ValueError(f"the transition Jacobian gave {len(every_d)} derivative(s) "
                                 f"for the {len(every)} transition parameters {every}")
            return [every_d[i] for i in pos]

        jacobian = dataclasses.replace(declared, first=first)
    return differentiate_transitions(evaluate, at, labels, model.space, model.n_actions,
                                     second=second, jacobian=jacobian)


class Derivatives(NamedTuple):
    """Derivatives of a solution in its parameters (the last axis: utility parameters, then
    the transition parameters asked for)."""

    value: np.ndarray
    """:math:`\\partial \\bar V`, shape (S, n)."""
    choice_values: np.ndarray
    """:math:`\\partial v`, shape (S, A, n)."""
    log_ccp: np.ndarray
    """:math:`\\partial \\log \\pi`, shape (S, A, n); 0 where infeasible."""


def _fail(solver: Solver, message: str) -> None:
    if solver.on_failure == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, ConvergenceWarning, stacklevel=4)


class FixedPoint(NamedTuple):
    """Arrays of a solved fixed point (the result of :func:`solve_arrays`)."""

    V: np.ndarray
    v: np.ndarray
    pi: np.ndarray
    converged: bool
    residual: float
    iterations: int
    newton_steps: int
    linear_solver: str


def solve(model, params, solver: Solver | None = None, V0: np.ndarray | None = None) -> Solution:
    """Solve ``model`` at ``params``; see :meth:`ddc.Model.solve` and :class:`Solver`."""
    start = time.perf_counter()
    solver = Solver() if solver is None else solver
    if not isinstance(solver, Solver):
        raise TypeError(f"solver must be a ddc.Solver, got {type(solver).__name__}")
    params = model.params_series(params)
    vec = params.to_numpy()
    u = np.ascontiguousarray(model.utility(vec[: len(model.utility_params)]))
    ct = model.compiled_transitions(vec)
    fp = solve_arrays(u, model.feasible, model.beta, ct, solver, V0)
    if not fp.converged:
        _fail(solver, f"Bellman solver ({solver.method}) stopped after {fp.iterations} operator "
                      f"applications and {fp.newton_steps} Newton steps with residual "
                      f"{fp.residual:.3e} > tol={solver.tol:g}. Raise max_iter or use "
                      f"method='newton_kantorovich' (max |V| = {np.max(np.abs(fp.V)):.3g}).")
    return Solution(model=model, params=params, V=fp.V, v=fp.v, pi=fp.pi, u=u,
                    converged=fp.converged, residual=fp.residual, iterations=fp.iterations,
                    newton_steps=fp.newton_steps, method=solver.method,
                    seconds=time.perf_counter() - start, solver=solver,
                    linear_solver=fp.linear_solver, ct=ct)


def solve_arrays(u: np.ndarray, feasible: np.ndarray, beta: float, ct, solver: Solver,
                 V0: np.ndarray | None = None) -> FixedPoint:
    """Solve the fixed point from arrays: the hot path of the estimators (no pandas).

    Parameters
    ----------
    u : numpy.ndarray, shape (S, A)
        Flow utilities.
    feasible : numpy.ndarray of bool, shape (S, A)
        Feasibility mask.
    beta : float
        Discount factor.
    ct : CompiledTransitions
        The transitions.
    solver : Solver
        Method and tolerances.
    V0 : numpy.ndarray, optional
        Warm start.

    Returns
    -------
    FixedPoint
        Non-convergence is flagged, not raised or warned, here; :func:`solve` reports it.
    """
    if solver.method != "successive_approximation" and u.shape[0] <= solver.dense_max \
            and solver.linear_solver in ("auto", "dense"):
        # small dense LU: more BLAS threads only add overhead (and oversubscribe a busy machine)
        with _one_blas_thread():
            return _solve_arrays(u, feasible, beta, ct, solver, V0)
    return _solve_arrays(u, feasible, beta, ct, solver, V0)


@lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def small_blas(n_states: int, solver: Solver | None = None):
    """A context in which BLAS runs on one thread when the model is small enough for dense LU.

    For the small dense systems of NFXP's inner loop, more BLAS threads only add
    synchronization (and oversubscribe a busy machine): measured here, one 175 x 175 LU with
    solve takes 0.48 ms on one thread and 1.3 ms on two.
    """
    solver = solver or Solver()
    if n_states <= solver.dense_max and solver.linear_solver in ("auto", "dense"):
        return _one_blas_thread()
    return contextlib.nullcontext()


_blas_state = threading.local()


@contextlib.contextmanager
def _one_blas_thread():
    """Limit BLAS to one thread, once: nested uses (an estimator's fit around its likelihood
    around the solver) cost nothing after the outermost, which alone talks to threadpoolctl
    (about 0.1 ms a time)."""
    if getattr(_blas_state, "limited", False):
        yield
        return
    with _blas_controller().limit(limits=1, user_api="blas"):
        _blas_state.limited = True
        try:
            yield
        finally:
            _blas_state.limited = False


def _solve_arrays(u, feas, beta, ct, solver, V0) -> FixedPoint:
    trans = tuple(ct)[2:]
    S, A = u.shape
    V = np.zeros(S) if V0 is None else np.array(V0, dtype=np.float64, copy=True)
    if V.shape != (S,) or not np.all(np.isfinite(V)):
        raise ValueError(f"V0 must be a finite array of shape ({S},)")
    EV = np.empty((S, A))
    v = np.empty((S, A))
    TV = np.empty(S)
    pi = np.empty((S, A))
    iterations = newton = 0
    residual = np.inf
    system: PolicySystem | None = None
    # The level of V (about mean(u) / (1 - beta)) is carried apart in the scalar K: the solver
    # iterates on W = V - K with utilities u - (1 - beta) K, for which T(W) = T(V) - K exactly.
    # W stays of the order of the spread of V across states, so its residual can reach 1e-13
    # even at beta = 0.9999, where V itself is in the thousands.
    K = 0.0
    uK = u
    if beta > 0 and V0 is not None and solver.method != "successive_approximation":
        K = 0.5 * (V.max() + V.min())  # a warm start: carry its level apart from the start
        V -= K
        uK = u - (1.0 - beta) * K
    if solver.method == "successive_approximation":
        iterations, residual, _ = kb.successive_approximation(
            V, u, feas, beta, solver.tol, solver.max_iter, EV, v, TV, pi, *trans)
    else:
        if solver.method == "newton_kantorovich":
            it, residual, ratio = 0, np.inf, 0.0
            while it < min(solver.max_contraction, solver.max_iter):
                n, residual, ratio = kb.successive_approximation(
                    V, uK, feas, beta, solver.tol, 2, EV, v, TV, pi, *trans)
                it += n
                if (residual <= solver.tol or residual <= solver.switch_residual
                        or (n == 2 and abs(ratio - beta) <= solver.switch_tol)):
                    break
                V[:] = TV
            iterations = it
            if residual > solver.switch_residual and beta > 0:
                # McQueen-Porteus: move V by the midpoint of its error bounds
                d = TV - V
                V = TV + beta / (1.0 - beta) * 0.5 * (d.min() + d.max())
                kb.bellman(V, uK, feas, beta, EV, v, TV, pi, *trans)
                iterations += 1
                residual = float(np.max(np.abs(TV - V)))
        else:
            kb.bellman(V, uK, feas, beta, EV, v, TV, pi, *trans)
            residual = float(np.max(np.abs(TV - V)))
            iterations = 1
        while residual > solver.tol and iterations + newton < solver.max_iter:
            system = PolicySystem(pi, beta, ct, solver, feas)
            if solver.method == "policy_iteration":
                with np.errstate(divide="ignore", invalid="ignore"):
                    logpi = np.where(pi > 0, np.log(np.where(pi > 0, pi, 1.0)), 0.0)
                r = np.where(feas, pi * (uK - logpi), 0.0).sum(axis=1) + kb.EULER_GAMMA
                V = system.solve(r)
            else:
                V = V + system.solve(TV - V)
            newton += 1
            shift = 0.5 * (V.max() + V.min())
            if beta > 0 and abs(shift) > 1.0:
                V = V - shift
                K += shift
                uK = u - (1.0 - beta) * K
            kb.bellman(V, uK, feas, beta, EV, v, TV, pi, *trans)
            new_residual = float(np.max(np.abs(TV - V)))
            iterations += 1
            if new_residual >= residual and residual < 1e3 * max(
                    solver.tol, 16 * np.finfo(float).eps * float(np.max(np.abs(TV)))):
                residual = new_residual  # rounding floor reached: no further progress possible
                break
            residual = new_residual
        TV += K
        v += K

    # tol is absolute, but no iteration can get below the rounding level of the values
    floor = 16 * np.finfo(float).eps * float(np.max(np.abs(TV - K)))
    converged = bool(residual <= max(solver.tol, floor))
    return FixedPoint(V=TV.copy(), v=v.copy(), pi=pi.copy(), converged=converged,
                      residual=float(residual), iterations=int(iterations),
                      newton_steps=int(newton),
                      linear_solver=system.kind if system is not None else "none")


# ------------------------------------------------------------------ many parameter draws at once

BATCH_MAX_ITER = 60
"""Frozen-Jacobian steps of :func:`solve_batch` before the draws left are reported unconverged."""

BATCH_TOL = 1e-11
"""Absolute tolerance of :func:`solve_batch` on :math:`\\max_s |T(V)(s) - V(s)|` (never below the
rounding level :math:`64 \\epsilon \\max_s |V(s)|`)."""


def stacked_transition_matrix(ct) -> sp.csr_matrix:
    """Every action's transition matrix, stacked: :math:`[P_0; P_1; \\dots]`, shape (A S, S).

    Row :math:`a S + s` is :math:`P(\\cdot \\mid s, a)`. Its transpose pushes masses forward
    (``P.T @ w`` with ``w[a * S + s]``), its product with a block of value functions gives
    :math:`E[V(s') \\mid s, a]` for all of them at once.

    Parameters
    ----------
    ct : CompiledTransitions
        The transitions.

    Returns
    -------
    scipy.sparse.csr_matrix
    """
    S, A = ct.n_states, ct.n_actions
    trans = tuple(ct)[2:]
    blocks = []
    for a in range(A):
        onehot = np.zeros((S, A))
        onehot[:, a] = 1.0
        rows, cols, vals = kb.policy_matrix_coo(onehot, *trans)
        blocks.append(sp.csr_matrix((vals, (rows, cols)), shape=(S, S)))
    return sp.vstack(blocks, format="csr")


class BatchFixedPoint(NamedTuple):
    """Fixed points of many parameter draws (the result of :func:`solve_batch`).

    Attributes
    ----------
    V : numpy.ndarray, shape (S, D)
        Ex-ante values (Euler's constant included).
    pi : numpy.ndarray, shape (S, A, D)
        Choice probabilities.
    converged : numpy.ndarray of bool, shape (D,)
        Which draws met the tolerance (the others hold NaN and must be solved on their own,
        e.g. by :func:`solve_arrays`).
    steps : int
        Frozen-Jacobian steps taken.
    """

    V: np.ndarray
    pi: np.ndarray
    converged: np.ndarray
    steps: int


def solve_batch(u: np.ndarray, feasible: np.ndarray, beta: float, ct, pi0: np.ndarray,
                V0: np.ndarray, solver: Solver | None = None, tol: float = BATCH_TOL,
                max_iter: int | None = None) -> BatchFixedPoint:
    """Bellman fixed points of :math:`D` utility arrays that share the transitions.

    Newton steps with the Jacobian frozen at a reference policy :math:`\\pi_0` (e.g. the
    solution at the point estimate, when the draws are bootstrap draws around it):

    .. math:: V_d \\leftarrow V_d + (I - \\beta P_{\\pi_0})^{-1} \\big(T_d(V_d) - V_d\\big),
              \\qquad d = 1, \\dots, D,

    one factorization (:class:`PolicySystem`) for all draws and one block of right-hand sides per
    step; :math:`E[V_d(s') \\mid s, a]` for all draws is one sparse product with
    :func:`stacked_transition_matrix`. The iteration converges linearly, at a rate given by how
    far the draws' policies are from :math:`\\pi_0` (about 0.1 for bootstrap draws of a
    well-estimated model), so it is much cheaper than :math:`D` separate solves; a draw still
    unconverged after ``max_iter`` steps (or with a non-finite residual) is flagged, not raised.

    Parameters
    ----------
    u : numpy.ndarray, shape (S, A, D)
        Flow utilities of the draws.
    feasible : numpy.ndarray of bool, shape (S, A)
        Feasibility mask.
    beta : float
        Discount factor.
    ct : CompiledTransitions
        The transitions (common to the draws).
    pi0 : numpy.ndarray, shape (S, A)
        Reference policy of the frozen Jacobian.
    V0 : numpy.ndarray, shape (S,)
        Starting values (e.g. the solution at the point estimate).
    solver : Solver, optional
        Chooses the linear solver of :math:`I - \\beta P_{\\pi_0}` (dense, sparse LU, GMRES).
    tol : float
        Absolute tolerance on the Bellman residual.
    max_iter : int, optional
        Most frozen-Jacobian steps (:data:`BATCH_MAX_ITER` by default).

    Returns
    -------
    BatchFixedPoint
    """
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 3:
        raise ValueError(f"u must have shape (S, A, D) (states, actions, draws); got {u.shape}")
    S, A, D = u.shape
    solver = Solver() if solver is None else solver
    max_iter = BATCH_MAX_ITER if max_iter is None else int(max_iter)
    U = np.ascontiguousarray(u.transpose(1, 0, 2))  # (A, S, D)
    P = stacked_transition_matrix(ct)
    infeasible = ~np.asarray(feasible, dtype=bool).T[:, :, None]
    V = np.repeat(np.asarray(V0, dtype=np.float64)[:, None], D, axis=1)
    V_out = np.full((S, D), np.nan)
    pi_out = np.full((A, S, D), np.nan)
    done = np.zeros(D, dtype=bool)
    left = np.arange(D)
    eps = np.finfo(float).eps
    steps = 0
    with small_blas(S, solver):  # the factorization too: two BLAS threads on a busy machine
        system = PolicySystem(np.ascontiguousarray(pi0, dtype=np.float64), beta, ct, solver)
        for steps in range(1, max_iter + 1):  # noqa: B007 - steps is reported
            Vl = V[:, left]
            v = U[:, :, left] + beta * (P @ Vl).reshape(A, S, left.size)
            v[np.broadcast_to(infeasible, v.shape)] = -np.inf
            top = v.max(axis=0)
            e = np.exp(v - top[None])
            total = e.sum(axis=0)
            TV = top + np.log(total) + kb.EULER_GAMMA
            step = TV - Vl
            res = np.abs(step).max(axis=0)
            ok = res <= np.maximum(tol, 64 * eps * np.abs(TV).max(axis=0))
            V_out[:, left[ok]] = TV[:, ok]
            pi_out[:, :, left[ok]] = e[:, :, ok] / total[None, :, ok]
            done[left[ok]] = True
            keep = ~ok & np.isfinite(res)
            left = left[keep]
            if left.size == 0:
                break
            V[:, left] = Vl[:, keep] + system.solve(step[:, keep])
    return BatchFixedPoint(V=V_out, pi=np.ascontiguousarray(pi_out.transpose(1, 0, 2)),
                           converged=done, steps=steps)

