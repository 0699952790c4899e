"""The anchor normalization behind PQR: which states and actions it inverts, and the linear maps
from log choice probabilities to rewards.

:class:`AnchorStructure` (:func:`anchor_structure`) records, from the feasibility mask alone, the
anchor action of every state, the states with a choice, and the *locked* states (a single
feasible action and no anchor, e.g. the membership model's annual months), into which an action
leads as a multi-period option. :class:`RewardMap` is the Q- and R-step of PQR at fixed
transitions: with :math:`\\ell = \\log\\hat\\pi`, the anchor's value :math:`W` solves
:math:`(I - \\beta P_{a_0}) W = -\\beta P_{a_0} \\ell(\\cdot, a_0)` (exactly over the factored
transitions, or by LSTD on state features), then
:math:`r(s, a) = Q(s, a) - \\beta E[V(s') \\mid s, a]` (bundled over the locked months), with the
adjoint of the whole map for the delta method. :func:`anchor_features` applies the same map to
the model's features, :math:`\\tilde X`, so that :math:`\\tilde r = \\tilde X\\theta` at the
true policy; :func:`anchor_rewards` gives the truth on PQR's scale. The estimator
(:class:`estimators.pqr.PQR`) projects the rewards onto the parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ddc.model import Model
from ddc.solver import PolicySystem, Solver
from ddc.utility import LinearUtility

__all__ = ["AnchorStructure", "RewardMap", "anchor_features", "anchor_rewards",
           "anchor_structure"]


# ------------------------------------------------------------------------------ kernels glue
def _expected(ct, W: np.ndarray) -> np.ndarray:
    """``E[W(s') | s, a]`` (:meth:`ddc.transitions.CompiledTransitions.expected`)."""
    return ct.expected(W)


def _push(ct, w: np.ndarray) -> np.ndarray:
    """One step forward (:meth:`ddc.transitions.CompiledTransitions.push`)."""
    return ct.push(w)


def _state_text(model: Model, s: int) -> str:
    label = model.space.index[s]
    label = label if isinstance(label, tuple) else (label,)
    return "(" + ", ".join(f"{n}={v}" for n, v in zip(model.space.names, label, strict=True)) \
        + f"; flat index {s})"


# ------------------------------------------------------------------------------ structure
class AnchorStructure(NamedTuple):
    """Where the anchor action is available, and the states locked into a single action.

    Attributes
    ----------
    anchor : int
        Code of the anchor action :math:`a_0`.
    choice : numpy.ndarray of bool, shape (S,)
        States where the anchor is feasible (PQR's Q-step is defined there).
    locked : numpy.ndarray of bool, shape (S,)
        States where it is not; each has a single feasible action (the set :math:`L`).
    only : numpy.ndarray of int, shape (S,)
        The single feasible action of a locked state, ``-1`` elsewhere.
    multi : numpy.ndarray of bool, shape (S,)
        States with at least two feasible actions (the choice data).
    """

    anchor: int
    choice: np.ndarray
    locked: np.ndarray
    only: np.ndarray
    multi: np.ndarray


def anchor_structure(model: Model, anchor: str | int | None = None, params=None
                     ) -> AnchorStructure:
    """Check that PQR applies to ``model`` with ``anchor`` and describe its states.

    Parameters
    ----------
    model : ddc.Model
        The model.
    anchor : str or int, optional
        The anchor action; ``model.anchor`` by default.
    params : optional
        Parameters whose transition part is used to check the anchor's transitions (defaults).

    Returns
    -------
    AnchorStructure

    Raises
    ------
    ValueError
        If there is no anchor; if a state without the anchor has more than one feasible action
        (PQR cannot normalize its rewards); or if the anchor leads from a state where it is
        feasible into one where it is not (its Q could not be evaluated by its own fixed point).
        The message names the first offending state.
    """
    anchor = model.anchor if anchor is None else anchor
    if anchor is None:
        raise ValueError(f"PQR needs an anchor action (its reward is normalized to zero); the "
                         f"{model.name} model has none: pass PQR(model, anchor=...) with one of "
                         f"{list(model.actions)}, or build the model with Model(anchor=...)")
    a0 = model.action_code(anchor)
    feas = model.feasible
    choice = feas[:, a0].copy()
    locked = ~choice
    n_feas = feas.sum(axis=1)
    bad = np.flatnonzero(locked & (n_feas > 1))
    if bad.size:
        s = int(bad[0])
        acts = [model.actions[a] for a in np.flatnonzero(feas[s])]
        raise ValueError(
            f"state {_state_text(model, s)} offers {acts} but not the anchor "
            f"{model.actions[a0]!r}; PQR needs the anchor in every state with a choice ({bad.size} "
            "state(s) violate this). Choose an anchor feasible wherever there is a choice.")
    only = np.where(locked, np.argmax(feas, axis=1), -1)
    ct = model.compiled_transitions(params)
    into = _expected(ct, locked.astype(float))[:, a0]
    leak = np.flatnonzero(choice & (into > 1e-12))
    if leak.size:
        s = int(leak[0])
        raise ValueError(
            f"the anchor {model.actions[a0]!r} leads from state {_state_text(model, s)} into "
            f"states where it is infeasible (probability {into[s]:.3g}); its value cannot be "
            "evaluated by its own fixed point. Choose an anchor whose transitions stay where it "
            "is feasible (e.g. a 'do nothing' or renewal action).")
    return AnchorStructure(a0, choice, locked, only, n_feas > 1)


# ------------------------------------------------------------------------------ linear maps
class _TableEvaluation:
    """:math:`W = (I - \\beta P_{a_0})^{-1} M b` on the anchor states (``M``: the mask)."""

    def __init__(self, model: Model, ct, st: AnchorStructure, solver: Solver):
        pi0 = np.zeros((model.n_states, model.n_actions))
        pi0[st.choice, st.anchor] = 1.0
        self.mask = st.choice.astype(float)
        self.system = PolicySystem(pi0, model.beta, ct, solver)

    def _m(self, x):
        return x * (self.mask if x.ndim == 1 else self.mask[:, None])

    def solve(self, b: np.ndarray) -> np.ndarray:
        return np.asarray(self.system.solve(self._m(b))).reshape(b.shape)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._m(np.asarray(self.system.solve(y, transpose=True)).reshape(y.shape))


class _FeatureEvaluation:
    """LSTD: :math:`W = \\Phi M^{-1} \\Phi' D b`, :math:`M = \\Phi' D (\\Phi - \\beta P_{a_0}
    \\Phi)`; ``D`` is zero outside the anchor states and so is :math:`\\Phi`."""

    def __init__(self, model: Model, ct, st: AnchorStructure, basis: np.ndarray,
                 weights: np.ndarray):
        self.Phi = basis
        self.D = weights
        EPhi = _expected(ct, basis)[:, st.anchor, :]
        M = basis.T @ (weights[:, None] * (basis - model.beta * EPhi))
        self.lu = sla.lu_factor(M, check_finite=False)

    def solve(self, b: np.ndarray) -> np.ndarray:
        rhs = self.Phi.T @ (self.D * b if b.ndim == 1 else self.D[:, None] * b)
        return self.Phi @ sla.lu_solve(self.lu, rhs, check_finite=False)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        z = sla.lu_solve(self.lu, self.Phi.T @ y, trans=1, check_finite=False)
        out = self.Phi @ z
        return self.D * out if out.ndim == 1 else self.D[:, None] * out


class _LockEvaluation:
    """:math:`x = (I - \\beta P_L)^{-1} b`: rows of the locked states follow their single action;
    other rows are identity (so :math:`x = b` there)."""

    def __init__(self, model: Model, ct, st: AnchorStructure, solver: Solver):
        self.empty = not st.locked.any()
        if not self.empty:
            piL = np.zeros((model.n_states, model.n_actions))
            rows = np.flatnonzero(st.locked)
            piL[rows, st.only[rows]] = 1.0
            self.system = PolicySystem(piL, model.beta, ct, solver)

    def solve(self, b: np.ndarray) -> np.ndarray:
        if self.empty:
            return b.copy()
        return np.asarray(self.system.solve(b)).reshape(b.shape)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        if self.empty:
            return y.copy()
        return np.asarray(self.system.solve(y, transpose=True)).reshape(y.shape)


class QStep(NamedTuple):
    """The Q- and R-steps at one policy (Euler-free values; NaN outside the anchor states)."""

    W: np.ndarray
    V: np.ndarray
    Q: np.ndarray
    rewards: np.ndarray


class RewardMap:
    """The linear map :math:`R: \\ell = \\log\\pi \\mapsto \\tilde r` of PQR, its adjoint, and the
    matching features :math:`\\tilde X`.

    Parameters
    ----------
    model : ddc.Model
        The model.
    params : pandas.Series or array
        Parameters; only the transition part is used.
    structure : AnchorStructure
        From :func:`anchor_structure`.
    q_step : {"table", "features"}
        Exact anchor evaluation (a sparse or dense LU of :math:`I - \\beta P_{a_0}`) or LSTD on
        ``basis`` with state weights ``weights``.
    solver : ddc.Solver, optional
        Chooses the linear solvers (``q_step="features"`` uses matrix-free GMRES for the
        locked-state system).
    basis : numpy.ndarray, shape (S, F), optional
        State features of the LSTD evaluation (zero rows outside the anchor states).
    weights : numpy.ndarray, shape (S,), optional
        LSTD state weights.
    """

    def __init__(self, model: Model, params, structure: AnchorStructure, q_step: str = "table",
                 solver: Solver | None = None, basis: np.ndarray | None = None,
                 weights: np.ndarray | None = None):
        self.model, self.st = model, structure
        self.ct = model.compiled_transitions(params)
        self.beta = model.beta
        solver = solver or Solver()
        if q_step == "table":
            self.evaluation = _TableEvaluation(model, self.ct, structure, solver)
            lock_solver = solver
        elif q_step == "features":
            if basis is None or weights is None:
                raise ValueError("q_step='features' needs a basis and state weights")
            self.evaluation = _FeatureEvaluation(model, self.ct, structure, basis, weights)
            lock_solver = Solver(linear_solver="gmres", gmres_rtol=1e-13)
        else:
            raise ValueError(f"q_step must be 'table' or 'features', got {q_step!r}")
        self.lock = _LockEvaluation(model, self.ct, structure, lock_solver)
        self.cell = model.feasible & structure.choice[:, None]

    def q_step(self, ell: np.ndarray) -> QStep:
        """Q- and R-steps at log-CCPs ``ell`` (S, A) (finite on feasible cells)."""
        st, beta, ct = self.st, self.beta, self.ct
        a0, ch = st.anchor, st.choice
        ell = np.where(self.model.feasible, ell, 0.0)
        l0 = np.where(ch, ell[:, a0], 0.0)
        W = self.evaluation.solve(-beta * _expected(ct, l0)[:, a0])
        V = np.where(ch, W - l0, 0.0)
        Z = self.lock.solve(V)
        Q = W[:, None] + ell - l0[:, None]
        r = Q - beta * _expected(ct, Z)
        r[:, a0] = 0.0  # exactly, by the normalization (rounding otherwise)
        nan = np.nan
        return QStep(np.where(ch, W, nan), np.where(ch, V, nan), np.where(self.cell, Q, nan),
                     np.where(self.cell, r, nan))

    def __call__(self, ell: np.ndarray) -> np.ndarray:
        """:math:`\\tilde r = R \\ell`, shape (S, A) (NaN outside the anchor states' feasible
        cells)."""
        return self.q_step(ell).rewards

    def adjoint(self, c: np.ndarray) -> np.ndarray:
        """:math:`R' c` for ``c`` of shape (S, A, K) (its entries outside the cells are ignored):
        ``out[s, a, k] = sum_{s', a'} c[s', a', k] d r(s', a') / d ell(s, a)``."""
        st, beta, ct = self.st, self.beta, self.ct
        a0 = st.anchor
        chk = st.choice[:, None].astype(float)
        c = np.where(self.cell[:, :, None], c, 0.0)
        c[:, a0, :] = 0.0  # the anchor's reward is zero by definition, whatever ell
        g = c.copy()
        csum = c.sum(axis=1)
        g[:, a0, :] -= csum
        omega = csum.copy()
        y = self.lock.adjoint(-beta * _push(ct, c))
        omega += y * chk
        g[:, a0, :] -= y * chk
        eta = self.evaluation.adjoint(omega)
        w = np.zeros_like(c)
        w[:, a0, :] = eta * chk
        g[:, a0, :] -= beta * _push(ct, w) * chk
        return np.where(self.cell[:, :, None], g, 0.0)

    def features(self, X: np.ndarray | None = None) -> np.ndarray:
        """The anchor-normalized, bundled features :math:`\\tilde X`, shape (S, A, K) (NaN
        outside the anchor states' feasible cells)."""
        model, st, beta, ct = self.model, self.st, self.beta, self.ct
        if X is None:
            X = model.utility.features
        feas = model.feasible
        X = np.where(feas[:, :, None], X, 0.0)
        ch = st.choice[:, None]
        Phi = self.evaluation.solve(-np.where(ch, X[:, st.anchor, :], 0.0))
        Xp = X + Phi[:, None, :] - beta * _expected(ct, Phi)
        rows = np.flatnonzero(st.locked)
        b = np.zeros((model.n_states, X.shape[2]))
        b[rows] = Xp[rows, st.only[rows], :]
        Y = np.where(st.locked[:, None], self.lock.solve(b), 0.0)
        Xt = Xp + beta * _expected(ct, Y)
        Xt[:, st.anchor, :] = 0.0  # exactly, by the normalization (rounding otherwise)
        return np.where(self.cell[:, :, None], Xt, np.nan)


def anchor_features(model: Model, params=None, anchor: str | int | None = None,
                    solver: Solver | None = None) -> np.ndarray:
    """The anchor-normalized, bundled features :math:`\\tilde X` of a linear-utility model.

    :math:`\\tilde X(s,a)\\theta` is the reward PQR recovers at the policy of parameters
    :math:`\\theta` (see the module notes), for every state with the anchor and every feasible
    action; NaN elsewhere. Zero for the anchor.

    Parameters
    ----------
    model : ddc.Model
        Model with a :class:`ddc.LinearUtility`.
    params : optional
        Parameters whose transition part is used (the defaults by default).
    anchor : str or int, optional
        The anchor (``model.anchor`` by default).
    solver : ddc.Solver, optional
        Linear solver choice.

    Returns
    -------
    numpy.ndarray, shape (S, A, K)
    """
    if not isinstance(model.utility, LinearUtility):
        raise TypeError("anchor features need a utility linear in parameters (LinearUtility)")
    st = anchor_structure(model, anchor, params)
    return RewardMap(model, params, st, "table", solver).features()


def anchor_rewards(model: Model, params, anchor: str | int | None = None,
                   solver: Solver | None = None) -> pd.DataFrame:
    """The anchor-normalized, bundled rewards :math:`\\tilde X \\theta` implied by ``params``.

    These are what PQR recovers from the choice probabilities of ``params`` (exactly, with the
    true choice probabilities), so they put every estimator's estimate on PQR's scale.

    Parameters
    ----------
    model : ddc.Model
        Model with a linear utility.
    params : pandas.Series, mapping or array
        Parameter values.
    anchor : str or int, optional
        The anchor (``model.anchor`` by default).
    solver : ddc.Solver, optional
        Linear solver choice.

    Returns
    -------
    pandas.DataFrame
        States x actions; NaN where the anchor is infeasible (locked states) and for infeasible
        actions; 0 in the anchor's column.

    Examples
    --------
    >>> import ddc
    >>> bus = ddc.models.rust_bus(n_states=90)
    >>> r = anchor_rewards(bus, bus.true_params)
    >>> round(float(r["keep"].iloc[0]), 4)   # u(0, keep) - u(0, replace) = RC
    9.7558
    """
    p = model.params_series(params)
    X = anchor_features(model, p, anchor, solver)
    theta = p.to_numpy()[: len(model.utility_params)]
    with np.errstate(invalid="ignore"):
        r = np.einsum("sak,k->sa", X, theta)
    return pd.DataFrame(r, index=model.space.index, columns=list(model.actions))
