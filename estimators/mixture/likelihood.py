"""The mixture log-likelihood, its analytic gradient, per-unit scores and type posteriors.

With unit :math:`i`'s choice counts :math:`n_i(s, a)` (the per-unit sufficient statistics, a
sparse ``units x (S A)`` matrix :math:`B` computed once), type :math:`k`'s log-likelihood of unit
:math:`i` is :math:`\\ell_{ik} = \\sum_{s,a} n_i(s,a) \\log\\pi_k(a \\mid s)`, i.e. the
matrix-vector product :math:`B \\log\\pi_k`: one pass over the units' nonzero cells, whatever
the number of rows per unit. The shares are a multinomial logit,
:math:`w_k = e^{\\gamma_k} / \\sum_j e^{\\gamma_j}` with :math:`\\gamma_0 = 0`, so that the
optimizer cannot leave the simplex. Then

.. math::

    \\ell(\\theta, \\gamma) = \\sum_i \\log \\sum_k w_k e^{\\ell_{ik}}, \\qquad
    q_{ik} = \\frac{w_k e^{\\ell_{ik}}}{\\sum_j w_j e^{\\ell_{ij}}},

and the per-unit scores are

.. math::

    \\frac{\\partial \\ell_i}{\\partial \\theta} = \\sum_k q_{ik} \\sum_{s,a} n_i(s,a)
    \\frac{\\partial \\log \\pi_k(a \\mid s)}{\\partial \\theta}, \\qquad
    \\frac{\\partial \\ell_i}{\\partial \\gamma_k} = q_{ik} - w_k,

with :math:`\\partial \\log\\pi_k / \\partial\\theta` from the implicit function theorem at type
:math:`k`'s fixed point (:meth:`ddc.Solution.dlogccp_dtheta`).

Each type is solved with its own model (:attr:`ddc.Mixture.type_models`: the transitions the
estimate is made with). With type-specific transition tables
(:class:`estimators.mixture.transitions.TypeTransitions`, set by
:meth:`MixtureLikelihood.set_type_tables`) the type's transition log-likelihood
:math:`\\ell^{tr}_{ik}` is added to :math:`\\ell_{ik}`; the tables are held fixed in the
derivatives (they are estimated by EM's closed-form M-step).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ddc.mixture import Mixture
from ddc.solver import ConvergenceError, Solution, Solver, small_blas
from estimators.data import ChoiceData
from estimators.likelihood import ChoiceLikelihood

__all__ = ["UnitCounts", "unit_counts", "MixtureLikelihood", "MixtureEvaluation", "logsumexp"]


def logsumexp(a: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """:math:`\\log\\sum \\exp` along ``axis``, stable (entries may be ``-inf``, not all);
    the plain NumPy form, several times faster than scipy's on small rows."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


class UnitCounts(NamedTuple):
    """Per-unit choice counts.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix, shape (N, S * A)
        ``matrix[i, s * A + a]`` is :math:`n_i(s, a)` over the choice sample; cells of states
        with a single feasible action are left out (they contribute :math:`\\log 1 = 0`).
    n_units : int
        Units N (all units of the panel, also those with no informative row).
    first_states : numpy.ndarray of int
        Each unit's first observed (flat) state.
    covariates : pandas.DataFrame or None
        Each unit's share covariates (``mix.share_covariates``; one row per unit, in unit-code
        order), ``None`` when the mixture has none.
    """

    matrix: sp.csr_matrix
    n_units: int
    first_states: np.ndarray
    covariates: pd.DataFrame | None = None


def unit_counts(mix: Mixture, cd: ChoiceData) -> UnitCounts:
    """The per-unit counts of a choice sample (one sort of the used rows), with the units'
    share covariates read from the data (:meth:`ddc.data.EstimationData.unit_covariates`)."""
    model = mix.model
    panel = cd.require_rows(f"a mixture of types ({mix!r})")
    S, A = model.n_states, model.n_actions
    used = cd.used & (model.feasible.sum(axis=1) > 1)[panel.state]
    unit = panel.unit[used]
    cell = panel.state[used] * A + panel.action[used]
    N = panel.n_units
    B = sp.csr_matrix((np.ones(unit.size), (unit, cell)), shape=(N, S * A))
    B.sum_duplicates()
    first = np.ones(panel.nobs, dtype=bool)
    first[1:] = panel.unit[1:] != panel.unit[:-1]
    first_states = np.empty(N, dtype=np.int64)
    first_states[panel.unit[first]] = panel.state[first]
    covariates = None
    if mix.share_covariates:
        covariates = cd.unit_covariates(list(mix.share_covariates),
                                        f"the type shares of {mix!r}")
    return UnitCounts(B, N, first_states, covariates)


class MixtureEvaluation(NamedTuple):
    """One evaluation of the mixture log-likelihood."""

    loglik: float
    grad: np.ndarray | None
    bhhh: np.ndarray | None
    unit_scores: np.ndarray | None
    posteriors: np.ndarray | None
    type_loglik: np.ndarray | None
    solutions: list[Solution]


class MixtureLikelihood:
    """Mixture log-likelihood over the internal vector ``x = (theta, gamma)``.

    Parameters
    ----------
    mix : ddc.Mixture
        The mixture.
    counts : UnitCounts
        Per-unit counts.
    base : numpy.ndarray
        A full parameter vector over ``mix.param_names`` supplying the parameters that are
        not estimated (the transition parameters, from the first stage).
    solver : ddc.Solver
        Inner fixed-point solver (each type warm-starts at its previous solution).

    Attributes
    ----------
    names : list of str
        The estimated structural parameters (``mix.utility_params``), then the share logits
        ``gamma[1]``, ..., ``gamma[K-1]``.
    """

    def __init__(self, mix: Mixture, counts: UnitCounts, base: np.ndarray, solver: Solver):
        self.mix, self.counts, self.solver = mix, counts, solver
        model = mix.model
        self.base = np.asarray(base, dtype=float).copy()
        self.struct = mix.utility_params
        pos = {n: i for i, n in enumerate(mix.param_names)}
        self.struct_pos = np.array([pos[n] for n in self.struct], dtype=np.int64)
        K = mix.n_types
        # share covariates: a constant, or the first state's shares_by indicators and the
        # units' covariates
        self.Zc = (mix.share_design(counts.first_states, counts.covariates)
                   if mix.varying_shares else None)
        self.n_share = (K - 1) * (1 if self.Zc is None else self.Zc.shape[1])
        self.names = self.struct + ([f"gamma[{k}]" for k in range(1, K)] if self.Zc is None
                                    else list(mix.share_names))
        # M[k] maps the gradient over the model's utility parameters of type k to the
        # estimated structural parameters
        P = len(self.struct)
        Pu = len(model.utility_params)
        where = {p: j for j, p in enumerate(self.struct_pos)}
        self.maps = np.zeros((K, Pu, P))
        for k in range(K):
            for u in range(Pu):
                self.maps[k, u, where[mix.type_index[k, u]]] = 1.0
        SA = model.n_states * model.n_actions
        self.liks = [ChoiceLikelihood(tm, np.zeros((model.n_states, model.n_actions)), solver)
                     for tm in mix.type_models]
        self.type_trans = None  # TypeTransitions when transitions differ by type
        self.tables: list[dict[str, np.ndarray]] | None = None
        self._tr_loglik = None  # (N, K) transition log-likelihoods of the tables
        self.n_evaluations = 0
        self._SA = SA
        self._BT = None

    # ----------------------------------------------------------------- type transitions
    def set_type_tables(self, type_trans, tables: list[dict[str, np.ndarray]]) -> None:
        """Solve type :math:`k` with ``tables[k]`` (its tables of the by-type variables) and add
        its transition log-likelihood to the units' type likelihoods from now on."""
        if not self.mix.transitions_by_type:
            raise ValueError("set_type_tables needs a mixture with transitions_by_type")
        mix = self.mix.with_transitions(type_transitions=tables)
        self.type_trans, self.tables = type_trans, [dict(t) for t in tables]
        self._tr_loglik = type_trans.unit_loglik(self.tables)
        for lik, tm in zip(self.liks, mix.type_models, strict=True):
            lik.model, lik._anchor = tm, None

    @property
    def transition_mixture(self) -> Mixture:
        """The mixture with the transitions the likelihood solves each type with."""
        if self.tables is None:
            return self.mix
        return self.mix.with_transitions(type_transitions=self.tables)

    # ----------------------------------------------------------------- vectors
    def full(self, x: np.ndarray) -> np.ndarray:
        """The full mixture vector (shares as probabilities) at internal ``x``."""
        vec = self.base.copy()
        P = len(self.struct)
        vec[self.struct_pos] = x[:P]
        K = self.mix.n_types
        if self.Zc is not None:
            vec[-self.n_share:] = x[P:]
        elif K > 1:
            vec[-(K - 1):] = self.weights(x)[1:]
        return vec

    def weights(self, x: np.ndarray) -> np.ndarray:
        """Type shares at internal ``x`` (multinomial logit of the ``gamma``); constant shares
        only (see :meth:`unit_weights`)."""
        g = np.concatenate([[0.0], np.asarray(x, float)[len(self.struct):]])
        return np.exp(g - logsumexp(g))

    def unit_weights(self, x: np.ndarray) -> np.ndarray:
        """Type shares of every unit at internal ``x``: ``(N, K)`` with varying shares, else
        the constant ``(K,)``."""
        if self.Zc is None:
            return self.weights(x)
        G = np.asarray(x, float)[len(self.struct):].reshape(self.mix.n_types - 1, -1)
        eta = np.column_stack([np.zeros(len(self.Zc)), self.Zc @ G.T])
        return np.exp(eta - logsumexp(eta, axis=1, keepdims=True))

    def share_scores(self, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``(N, n_share)`` scores of the share parameters: :math:`(q_{ik} - w_{ik}) z_i`."""
        D = q[:, 1:] - (w[:, 1:] if w.ndim == 2 else w[1:])
        if self.Zc is None:
            return D
        return (D[:, :, None] * self.Zc[:, None, :]).reshape(len(D), -1)

    def fit_shares(self, q: np.ndarray, x: np.ndarray) -> np.ndarray:
        """EM's M-step for the share parameters at posteriors ``q``: the mean posterior
        (constant shares), or the posterior-weighted multinomial logit (varying shares; Newton's
        method, concave)."""
        if self.Zc is None:
            w = np.maximum(q.mean(axis=0), 1e-12)
            return np.log(w[1:] / w[0])
        P = len(self.struct)
        g = np.asarray(x, float)[P:].copy()
        K, C = self.mix.n_types, self.Zc.shape[1]

        def weights_and_value(g):
            w = self.unit_weights(np.concatenate([x[:P], g]))
            with np.errstate(divide="ignore"):
                return w, float(np.sum(q * np.log(np.maximum(w, 1e-300))))

        w, f = weights_and_value(g)
        for _ in range(50):
            grad = self.share_scores(q, w).sum(axis=0)
            H = np.zeros((K - 1, C, K - 1, C))
            for a in range(1, K):
                for b in range(1, K):
                    c = w[:, a] * ((a == b) - w[:, b])
                    H[a - 1, :, b - 1, :] = -(self.Zc * c[:, None]).T @ self.Zc
            H = H.reshape(len(g), len(g))
            step = np.linalg.lstsq(-H, grad, rcond=None)[0]
            if float(grad @ step) < 1e-12:
                break
            lam = 1.0  # step halving keeps each step an ascent (covariates of large scale)
            while lam > 1e-8:
                w_new, f_new = weights_and_value(g + lam * step)
                if f_new >= f:
                    break
                lam *= 0.5
            else:
                break
            g, w, f = g + lam * step, w_new, f_new
        return g

    def internal(self, full: np.ndarray) -> np.ndarray:
        """Internal ``x`` from a full mixture vector (shares must be positive)."""
        full = np.asarray(full, dtype=float)
        if self.Zc is not None:
            return np.concatenate([full[self.struct_pos], full[-self.n_share:]])
        w = self.mix.shares(full)
        if np.any(w <= 0):
            raise ValueError(f"type shares must be positive to start from; got {w.tolist()}")
        return np.concatenate([full[self.struct_pos], np.log(w[1:] / w[0])])

    def type_vector(self, x: np.ndarray, k: int) -> np.ndarray:
        """Type ``k``'s one-type parameter vector at internal ``x``."""
        return self.full(x)[self.mix.type_index[k]]

    # ----------------------------------------------------------------- evaluation
    def solve_types(self, x: np.ndarray) -> list[Solution]:
        """Each type's solution at ``x`` (warm-started)."""
        return [lik.solve(self.type_vector(x, k)) for k, lik in enumerate(self.liks)]

    def evaluate(self, x: np.ndarray, need_derivatives: bool = True) -> MixtureEvaluation:
        """Log-likelihood, and gradient, BHHH matrix and per-unit scores when asked, at ``x``."""
        with small_blas(self.mix.model.n_states, self.solver):
            return self._evaluate(np.asarray(x, dtype=float), need_derivatives)

    def type_terms(self, x: np.ndarray, need: bool):
        """Per type: ``log pi_k`` (S, A) and, when ``need``, its derivatives (S, A, Pu) in the
        model's utility parameters; ``None`` when a fixed point failed. Also the solutions."""
        sols = self.solve_types(x)
        if not all(s.converged for s in sols):
            return None, sols
        return [(self.liks[k].log_pi(s), s.dlogccp_dtheta() if need else None)
                for k, s in enumerate(sols)], sols

    def _evaluate(self, x, need):
        self.n_evaluations += 1
        terms, sols = self.type_terms(x, need)
        return self._assemble(x, terms, sols, need)

    def _derivatives_at(self, x, needed: str):
        """Evaluate with derivatives at ``x``: ``(terms, solutions, evaluation)``; a
        ``ConvergenceError`` saying where ``needed`` if the likelihood is not finite there."""
        self.n_evaluations += 1
        terms, sols = self.type_terms(x, True)
        ev = self._assemble(x, terms, sols, True)
        if ev.grad is None:
            raise ConvergenceError("the mixture likelihood is not finite (or a type's fixed "
                                   f"point failed) where {needed} needed")
        return terms, sols, ev

    def _assemble(self, x, terms, sols, need):
        """The evaluation from the types' ``(log pi_k, d log pi_k)`` terms."""
        if terms is None:
            return MixtureEvaluation(-np.inf, None, None, None, None, None, sols)
        B = self.counts.matrix
        lik = np.column_stack([B @ np.where(np.isfinite(lp), lp, 0.0).ravel()
                               for lp, _ in terms])
        if self._tr_loglik is not None:
            lik = lik + self._tr_loglik
        w = self.unit_weights(x)
        with np.errstate(divide="ignore"):
            M = lik + np.log(w)
        Li = logsumexp(M, axis=1)
        ll = float(Li.sum())
        if not np.isfinite(ll):
            return MixtureEvaluation(-np.inf, None, None, None, None, lik, sols)
        q = np.exp(M - Li[:, None])
        if not need:
            return MixtureEvaluation(ll, None, None, None, q, lik, sols)
        G = self.unit_scores([d for _, d in terms], q, w)
        return MixtureEvaluation(ll, G.sum(axis=0), G.T @ G, G, q, lik, sols)

    def unit_scores(self, dlogpi: list[np.ndarray], q: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``(N, P + n_share)`` per-unit scores in the internal parameters, from each type's
        :math:`\\partial \\log\\pi_k / \\partial\\theta` (S, A, Pu)."""
        B = self.counts.matrix
        K = len(dlogpi)
        P = len(self.struct)
        G = np.zeros((self.counts.n_units, P + self.n_share))
        for k, d in enumerate(dlogpi):
            G[:, :P] += (q[:, k:k + 1] * (B @ d.reshape(self._SA, -1))) @ self.maps[k]
        if K > 1:
            G[:, P:] = self.share_scores(q, w)
        return G

    # ----------------------------------------------------------------- second derivatives
    def type_hessians(self, x: np.ndarray, sols: list[Solution]) -> list[np.ndarray]:
        """Per type, :math:`\\partial^2 \\log\\pi_k(a \\mid s) / \\partial\\theta
        \\partial\\theta'` (S, A, Pu, Pu) in the model's utility parameters at type
        :math:`k`'s solution: the second-order implicit function theorem of the one-type
        likelihood (:meth:`ddc.Solution.d2logccp_dparams`)."""
        return [s.d2logccp_dparams([], None) for s in sols]

    def complete_scores(self, dlogpi: list[np.ndarray], w: np.ndarray) -> list[np.ndarray]:
        """Per type, the ``(N, P + n_share)`` complete-data scores :math:`s_{ik}`: unit
        :math:`i`'s score were it known to be of type :math:`k`,
        :math:`(M_k' \\sum_{s,a} n_i(s,a) \\partial\\log\\pi_k(a \\mid s),\\;
        (1[k = l] - w_{il}) z_i)`; the unit scores are :math:`\\sum_k q_{ik} s_{ik}`."""
        B = self.counts.matrix
        K, P, N = len(dlogpi), len(self.struct), self.counts.n_units
        Z = np.ones((N, 1)) if self.Zc is None else self.Zc
        W = np.broadcast_to(w, (N, K))
        out = []
        for k, d in enumerate(dlogpi):
            S = np.empty((N, P + self.n_share))
            S[:, :P] = (B @ d.reshape(self._SA, -1)) @ self.maps[k]
            if K > 1:
                D = (np.arange(1, K) == k) - W[:, 1:]
                S[:, P:] = (D[:, :, None] * Z[:, None, :]).reshape(N, -1)
            out.append(S)
        return out

    def share_hessian(self, w: np.ndarray) -> np.ndarray:
        """:math:`\\sum_i \\partial^2 \\log w_{ik} / \\partial\\gamma \\partial\\gamma'`
        (the same for every :math:`k`): :math:`-\\sum_i w_{il}(1[l = m] - w_{im})
        z_i z_i'` in the block of the coefficients of types :math:`l, m \\geq 1`."""
        K, N = self.mix.n_types, self.counts.n_units
        Z = np.ones((N, 1)) if self.Zc is None else self.Zc
        W = np.broadcast_to(w, (N, K))[:, 1:]
        T = W[:, :, None] * (np.eye(K - 1)[None] - W[:, None, :])
        return -np.einsum("ilm,ic,id->lcmd", T, Z, Z).reshape(self.n_share, self.n_share)

    def hessian(self, x: np.ndarray) -> tuple[np.ndarray, MixtureEvaluation]:
        """The Hessian of the mixture log-likelihood in the internal parameters at ``x``,
        analytic, by Louis' (1982) identity; and the evaluation at ``x``.

        Write :math:`\\ell_i = \\log\\sum_k w_{ik} e^{\\ell_{ik}}` and
        :math:`s_{ik} = \\partial(\\ell_{ik} + \\log w_{ik}) / \\partial x` (type
        :math:`k`'s complete-data score, :meth:`complete_scores`). Differentiating
        :math:`\\partial\\ell_i / \\partial x = \\sum_k q_{ik} s_{ik}` with
        :math:`\\partial q_{ik} / \\partial x = q_{ik}(s_{ik} - s_i)`, :math:`s_i = \\sum_k
        q_{ik} s_{ik}`,

        .. math::

            H = \\sum_i \\Big[\\sum_k q_{ik} \\big(H_{ik} + s_{ik} s_{ik}'\\big)
            - s_i s_i'\\Big], \\qquad
            H_{ik} = \\frac{\\partial^2 (\\ell_{ik} + \\log w_{ik})}{\\partial x
            \\partial x'} .

        :math:`H_{ik}` is block diagonal: in the structural parameters :math:`\\theta`,
        :math:`M_k' \\sum_{s,a} n_i(s,a) \\partial^2\\log\\pi_k(a \\mid s) M_k` (the
        shares do not enter :math:`\\ell_{ik}`), so that
        :math:`\\sum_i q_{ik} H^{\\theta}_{ik} = M_k' \\sum_{s,a} N_k(s,a)
        \\partial^2\\log\\pi_k(a \\mid s) M_k` with the posterior-weighted counts
        :math:`N_k = \\sum_i q_{ik} n_i` (:meth:`weighted_counts`; one pass, nothing per
        row), the second derivatives those of the one-type likelihood (:meth:`type_hessians`);
        in the share logits (multinomial logit :math:`w_{ik} = e^{\\gamma_k' z_i} / \\sum_j
        e^{\\gamma_j' z_i}`, :math:`\\gamma_0 = 0`, :math:`z_i = 1` for constant shares),
        :math:`\\partial^2 \\log w_{ik} / \\partial\\gamma_l \\partial\\gamma_m' =
        -w_{il}(1[l = m] - w_{im}) z_i z_i'`, the same for every :math:`k`, so that its
        posterior mean is itself (:meth:`share_hessian`); the cross block
        :math:`\\theta\\gamma` of :math:`H_{ik}` is zero. The outer-product terms are the
        posterior covariance of the complete-data scores, one ``(N, P + n_share)`` product per
        type. With type-specific tables their transition log-likelihood is part of
        :math:`\\ell_{ik}` but does not depend on :math:`x` (held).

        Raises
        ------
        ConvergenceError
            A type's fixed point failed, or the likelihood is not finite, at ``x``.
        """
        x = np.asarray(x, dtype=float)
        with small_blas(self.mix.model.n_states, self.solver):
            terms, sols, ev = self._derivatives_at(x, "the Hessian is")
            d2 = self.type_hessians(x, sols)
        q, w = ev.posteriors, self.unit_weights(x)
        P = len(self.struct)
        Nk = self.weighted_counts(q)
        H = np.zeros((P + self.n_share, P + self.n_share))
        for k, S in enumerate(self.complete_scores([d for _, d in terms], w)):
            Hk = np.einsum("sa,saij->ij", Nk[k], d2[k])
            H[:P, :P] += self.maps[k].T @ Hk @ self.maps[k]
            H += (S * q[:, k:k + 1]).T @ S
        H -= ev.unit_scores.T @ ev.unit_scores
        if self.n_share:
            H[P:, P:] += self.share_hessian(w)
        return 0.5 * (H + H.T), ev

    def cross_hessian(self, x: np.ndarray, dtrans_of) -> np.ndarray:
        """:math:`\\partial^2 \\ell / \\partial x \\partial\\psi'` at ``x``, analytic:
        the derivative of the gradient in the internal parameters :math:`x` in the transition
        parameters :math:`\\psi` the types are solved with (held in the estimate; for
        Murphy and Topel's correction of a first stage shared by all types).

        By the identity of :meth:`hessian` with :math:`t_{ik} = \\sum_{s,a} n_i(s,a)
        \\partial\\log\\pi_k(a \\mid s) / \\partial\\psi` in place of the second
        score (the shares do not depend on :math:`\\psi`),

        .. math::

            C = \\sum_k \\begin{pmatrix} M_k' \\sum_{s,a} N_k(s,a)
            \\partial^2 \\log\\pi_k(a \\mid s) / \\partial\\theta \\partial\\psi'
            \\\\ 0 \\end{pmatrix} + \\sum_i \\Big[\\sum_k q_{ik} s_{ik} t_{ik}'
            - s_i t_i'\\Big], \\qquad t_i = \\sum_k q_{ik} t_{ik},

        the cross second derivatives from :meth:`ddc.Solution.d2logccp_dtheta_dpsi` (first
        derivatives of the transitions only).

        Parameters
        ----------
        x : numpy.ndarray
            Internal parameters.
        dtrans_of : callable
            ``dtrans_of(k, solution)``: the :class:`~ddc.transitions.TransitionDerivatives`
            of type ``k``'s transitions in :math:`\\psi` (the same names for every type).

        Returns
        -------
        numpy.ndarray, shape (P + n_share, len(psi))
        """
        x = np.asarray(x, dtype=float)
        Pu = len(self.mix.model.utility_params)
        P = len(self.struct)
        B = self.counts.matrix
        with small_blas(self.mix.model.n_states, self.solver):
            terms, sols, ev = self._derivatives_at(x, "its cross derivative is")
            q = ev.posteriors
            Nk = self.weighted_counts(q)
            C, T = None, None
            scores = self.complete_scores([d for _, d in terms], self.unit_weights(x))
            for k, (S, sol) in enumerate(zip(scores, sols, strict=True)):
                dt = dtrans_of(k, sol)
                d1 = sol.dlogccp_dparams(list(dt.names), dt)[:, :, Pu:]
                Tk = B @ d1.reshape(self._SA, -1)
                if C is None:
                    C, T = np.zeros((S.shape[1], Tk.shape[1])), np.zeros_like(Tk)
                d2 = sol.d2logccp_dtheta_dpsi(dt)
                C[:P] += self.maps[k].T @ np.einsum("sa,saij->ij", Nk[k], d2)
                C += (S * q[:, k:k + 1]).T @ Tk
                T += q[:, k:k + 1] * Tk
        return C - ev.unit_scores.T @ T

    def weighted_counts(self, q: np.ndarray) -> list[np.ndarray]:
        """:math:`N_k(s, a) = \\sum_i q_{ik} n_i(s, a)`, one ``(S, A)`` array per type."""
        model = self.mix.model
        if self._BT is None:
            self._BT = self.counts.matrix.T.tocsr()
        BT = self._BT
        return [(BT @ q[:, k]).reshape(model.n_states, model.n_actions)
                for k in range(q.shape[1])]

    # ----------------------------------------------------------------- EM's M-step
    def m_step_objective(self, Nk: list[np.ndarray]):
        """The M-step objective over the structural parameters: the expected complete-data
        log-likelihood :math:`\\sum_k \\sum_{s,a} N_k(s,a) \\log \\pi_k(a \\mid s; \\theta)`,
        with its gradient and cell-level BHHH matrix, as :func:`estimators.optimize.maximize`
        takes it (shares enter through ``Nk`` only)."""
        for lik, N in zip(self.liks, Nk, strict=True):
            lik.counts, lik.mask = N, N > 0
        K = self.mix.n_types
        P = len(self.struct)

        def objective(theta, need):
            x = np.concatenate([theta, np.zeros(K - 1)])
            total, grad, bhhh = 0.0, np.zeros(P), np.zeros((P, P))
            for k, lik in enumerate(self.liks):
                ev = lik.evaluate(self.type_vector(x, k), need)
                if not np.isfinite(ev.loglik):
                    return -np.inf, None, None
                total += ev.loglik
                if need:
                    Mk = self.maps[k]
                    grad += Mk.T @ ev.grad
                    bhhh += Mk.T @ ev.bhhh @ Mk
            return total, (grad if need else None), (bhhh if need else None)

        return objective
