"""Standard errors of CCP-EM (``CCP(mix)``) and its two-stage variant, corrected for the
estimated type CCPs, shares and posteriors.

Parameters :math:`\\beta = (\\theta, \\gamma, p)`: the estimated structural parameters
:math:`\\theta` (type-specific and shared, :math:`P` of them), the share parameters
:math:`\\gamma` of the multinomial logit :math:`w_{ik} = e^{z_i'\\gamma_k} / \\sum_j
e^{z_i'\\gamma_j}`, :math:`\\gamma_0 = 0` (:math:`z_i = 1` for constant shares; the first
state's indicators and the unit's covariates with ``shares_by``/``share_covariates``), and each
type's *free* CCPs :math:`p_k(b \\mid s)`: in every state :math:`s` with more than one feasible
action and at least one observation, the feasible actions :math:`b` other than the state's last
feasible action :math:`r(s)`, whose probability is one minus the others' (:math:`F` per type).
CCPs of states never observed are the smoothing's uniform distribution whatever the data, so
they are not estimated.

**Estimating equations.** With unit :math:`i`'s counts :math:`n_i(s, a)`, type :math:`k`'s
log-likelihood of the unit :math:`\\ell_{ik} = \\sum_{s,a} n_i(s,a)\\,\\ell_k(s, a)` and the
posteriors :math:`q_{ik} = w_{ik} e^{\\ell_{ik}} / \\sum_j w_{ij} e^{\\ell_{ij}}`, the limit of
CCP-EM (Arcidiacono and Miller 2011) solves :math:`\\sum_i g_i(\\beta) = 0` with the per-unit
moments

.. math::

    g^{\\theta}_i = \\sum_k q_{ik}\\, M_k' \\sum_{s,a} n_i(s,a)\\, D_k(s,a), \\qquad
    g^{\\gamma}_{im} = (q_{im} - w_{im})\\, z_i \\; (m \\ge 1),

    g^{p}_{ik}(s, b) = q_{ik}\\,[n_i(s,b) - p_k(b \\mid s)\\, n_i(s)]
      + \\tfrac{\\alpha}{N}\\,[1 - |A(s)|\\, p_k(b \\mid s)],

where :math:`D_k(s,a) = \\partial \\log\\Lambda(a \\mid s; \\theta_k, p_k) / \\partial\\theta_k =
Z_{p_k}(s,a) - \\sum_b \\Lambda(b \\mid s) Z_{p_k}(s,b)` (the pseudo-likelihood's score,
:class:`estimators.ccp.PseudoLikelihood`), :math:`M_k` maps type :math:`k`'s utility parameters
to :math:`\\theta`, :math:`n_i(s) = \\sum_a n_i(s,a)` and :math:`\\alpha` the smoothing: the sums
say that :math:`\\theta` maximizes the posterior-weighted pseudo-likelihood, that :math:`\\gamma`
maximizes :math:`\\sum_i \\sum_k q_{ik} \\log w_{ik}` (for constant shares: the shares are the
mean posteriors) and that each type's CCPs are its smoothed posterior-weighted frequencies
:math:`(N_k(s,b) + \\alpha) / (N_k(s) + \\alpha |A(s)|)`. In CCP-EM the posteriors come from the
structural model, :math:`\\ell_k = \\log\\Lambda(\\theta_k, p_k)`. In the two-stage variant they
come from the latent-class model of stage 1, :math:`\\ell_k = \\log p_k`: then
:math:`g^\\gamma, g^p` do not involve :math:`\\theta` (stage 1 is the EM fixed point of the
latent-class likelihood with a Dirichlet(:math:`\\alpha`) penalty) and :math:`g^\\theta` is
stage 2.

**Covariance.** Units are independent, so the estimate is a just-identified M-estimator:

.. math::

    \\hat V = J^{-1}\\, \\Omega\\, J^{-T}, \\qquad J = \\sum_i \\frac{\\partial g_i}{\\partial
    \\beta'}, \\qquad \\Omega = \\sum_i g_i g_i'

(Newey and McFadden 1994, Theorem 3.4 / 6.1), of which the :math:`(\\theta, \\gamma)` block is
reported -- with constant shares carried to the shares :math:`w_1, \\dots, w_{K-1}` by the
delta method, :math:`\\partial w_j / \\partial\\gamma_l = w_j(1[j = l] - w_l)` (exact: the same
equations in another parametrization). For the two-stage variant :math:`J` is block
triangular (stage 1 does not depend on :math:`\\theta`), and this block equals the two-step
formula of Newey and McFadden's Theorem 6.1 (Murphy and Topel 1985) with the stage-1 influence
functions :math:`-J_{11}^{-1} g_{1i}`.

**Jacobian**, analytic. Writing :math:`\\psi_{ik} = \\partial(\\ell_{ik} + \\log w_{ik}) /
\\partial\\beta` and :math:`\\chi_{ik} = \\partial g_i / \\partial q_{ik}`,
:math:`\\partial q_{ik} / \\partial\\beta = \\sum_j q_{ik}(1[k=j] - q_{ij})\\,\\psi_{ij}`, so

.. math::

    J = \\sum_{k,j} \\sum_i q_{ik}(1[k=j] - q_{ij})\\, \\chi_{ik}\\psi_{ij}'
        + \\sum_i \\frac{\\partial g_i}{\\partial\\beta'}\\Big|_{q},

computed through the sparse per-unit counts (products :math:`X_k' \\operatorname{diag}(c) B`
with :math:`X_k` the rows :math:`\\chi_{ik}`, then the cell derivatives). The derivatives of
the values in a CCP follow from :math:`V_p = (I - \\beta P_p)^{-1} \\sum_a p_a (u_a + \\gamma_E -
\\log p_a)` (Euler's constant :math:`\\gamma_E`): raising
:math:`p(b \\mid s')` and lowering :math:`p(r \\mid s')` moves

.. math::

    \\frac{\\partial v(s,a)}{\\partial p(b \\mid s')} = \\beta\\, E_a[(I - \\beta P_p)^{-1}
    e_{s'} \\mid s]\\, \\big[(v(s',b) - \\log p(b \\mid s')) - (v(s',r) - \\log p(r \\mid
    s'))\\big],

and :math:`\\partial Z(s,a) / \\partial p(b \\mid s')` likewise with :math:`Z(s',b) - Z(s',r)`
in the bracket; the block of :math:`g^p` in its own CCPs (at fixed posteriors) is diagonal,
:math:`-(N_k(s) + \\alpha|A(s)|)`.

**Cost.** The columns of :math:`(I - \\beta P_p)^{-1}` at the :math:`S_o` observed
multi-action states (one factorization, :math:`S_o` right-hand sides), the arrays
:math:`\\partial v / \\partial p` of :math:`S \\cdot A \\cdot F` entries per type and the dense
:math:`d \\times d` Jacobian, :math:`d = P + n_\\gamma + K F`, solved once: memory
:math:`O(S A F + d^2)`, time :math:`O(d^3)`, both quadratic and more in the number of observed
states. :func:`stacked_cost_bytes` estimates the memory; above :data:`MAX_BYTES` the correction
is skipped with a warning and a note.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ddc.solver import PolicySystem
from estimators.ccp import PseudoLikelihood
from estimators.first_stage import (
    MAX_CORRECTED,
    first_stage_cross_derivative,
    first_stage_view,
)
from estimators.inference import group_sums
from estimators.mixture.likelihood import MixtureLikelihood, logsumexp

__all__ = ["MAX_BYTES", "StackedMoments", "TransitionCorrection", "stacked_cost_bytes",
           "transition_correction"]

#: Memory above which the corrected covariance is not computed (bytes).
MAX_BYTES = 1_000_000_000


def free_ccps(feasible: np.ndarray, pooled: np.ndarray):
    """The free CCPs: ``(state, action, reference action)`` arrays over the states with more
    than one feasible action and a positive pooled count, every feasible action but the last."""
    n_feas = feasible.sum(axis=1)
    ref = feasible.shape[1] - 1 - np.argmax(feasible[:, ::-1], axis=1)
    states = np.flatnonzero((pooled > 0) & (n_feas > 1))
    fs, fb = [], []
    for s in states:
        for a in np.flatnonzero(feasible[s]):
            if a != ref[s]:
                fs.append(s)
                fb.append(a)
    fs = np.asarray(fs, dtype=np.int64)
    fb = np.asarray(fb, dtype=np.int64)
    return fs, fb, ref[fs], states


def stacked_cost_bytes(n_states: int, n_actions: int, n_free: int, n_types: int,
                       n_params: int) -> int:
    """Memory (bytes) of the corrected covariance: the stacked Jacobian (``d x d`` with
    ``d = n_params + n_types * n_free``, ``n_params`` the structural and share parameters), and
    per type the value derivatives ``S x A x F`` (three arrays of that size at once)."""
    d = n_params + n_types * n_free
    return 8 * (2 * d * d + 3 * n_states * n_actions * n_free)


class TransitionCorrection(NamedTuple):
    """A first stage of the transitions as seen by the stacked equations: ``C`` (d x n_psi) the
    derivative of the summed moments in the first-stage parameters :math:`\\psi`, ``Vpsi``
    their covariance, ``S`` (units x n_psi) the units' first-stage scores (so that
    :math:`\\hat\\psi - \\psi \\approx V_\\psi \\sum_u S_u`) and ``what`` a phrase naming them."""

    C: np.ndarray
    Vpsi: np.ndarray
    S: np.ndarray
    what: str


def transition_correction(sm: StackedMoments, ts, panel) -> TransitionCorrection | str | None:
    """The first stage of the transitions (:func:`estimators.first_stage.first_stage_view`:
    free transition parameters or free cells of the estimated tables) for
    :meth:`StackedMoments.covariance`: ``C`` by central differences of
    :meth:`StackedMoments.summed_moments` with the transitions moved
    (:func:`estimators.first_stage.first_stage_cross_derivative`). ``None`` when the transitions
    are known; a note (str) when there are more than
    :data:`estimators.first_stage.MAX_CORRECTED` of them."""
    view = first_stage_view(ts, panel)
    if view is None:
        return None
    pmodel, psi, Vpsi, S_rows, what = view
    if len(psi) > MAX_CORRECTED:
        return (f"standard errors do not account for the {what} (more than {MAX_CORRECTED}: "
                "the correction is not computed); they treat the transitions as known")
    full = pd.Series(0.0, index=pmodel.param_names)
    full[psi.index] = psi.to_numpy()

    def moments(moved: pd.Series) -> np.ndarray:
        return sm.summed_moments(PseudoLikelihood(pmodel, moved, sm.pl.solver))

    C = first_stage_cross_derivative(moments, full, psi.index, bool(ts.tables), sm.d)
    S = group_sums(panel.unit, S_rows, sm.N)  # per-unit sums of the first stage's scores
    return TransitionCorrection(C, np.asarray(Vpsi), S, what)


class StackedMoments:
    """The per-unit estimating equations of CCP-EM (or its two-stage variant) at an estimate.

    Parameters
    ----------
    ml : MixtureLikelihood
        Supplies the mixture, the per-unit counts, the parameter maps ``M_k``, the share
        design and names.
    pl : PseudoLikelihood
        The linearization :math:`v = Z_p\\theta + e_p` (with the first stage's transitions).
    x : numpy.ndarray
        The estimate in ``ml``'s internal parameters :math:`(\\theta, \\gamma)`.
    p : list of numpy.ndarray
        Each type's CCPs ``(S, A)`` at the estimate.
    smoothing : float
        :math:`\\alpha`.
    posteriors : {"structural", "latent_class"}
        Where the posteriors come from: CCP-EM, or the two-stage variant's stage 1.
    """

    def __init__(self, ml: MixtureLikelihood, pl: PseudoLikelihood, x: np.ndarray,
                 p: list[np.ndarray], smoothing: float, posteriors: str = "structural"):
        if posteriors not in ("structural", "latent_class"):
            raise ValueError(f"posteriors must be 'structural' or 'latent_class', got "
                             f"{posteriors!r}")
        self.ml, self.pl = ml, pl
        model = ml.mix.model
        self.K = ml.mix.n_types
        self.S, self.A = model.n_states, model.n_actions
        self.feas = model.feasible
        self.n_feas = self.feas.sum(axis=1)
        self.beta = model.beta
        self.alpha = float(smoothing)
        self.kind = posteriors
        self.B = ml.counts.matrix.tocsr()
        self.N = ml.counts.n_units
        pooled = np.asarray(self.B.sum(axis=0)).reshape(self.S, self.A).sum(axis=1)
        self.fs, self.fb, self.fr, self.obs = free_ccps(self.feas, pooled)
        self.F = len(self.fs)
        self.obs_pos = np.searchsorted(self.obs, self.fs)
        self.ref_obs = self.feas.shape[1] - 1 - np.argmax(self.feas[self.obs, ::-1], axis=1)
        self.P = len(ml.struct)
        self.n_share = ml.n_share
        # share covariates z_i (N, C): a constant for constant shares
        self.Zc = np.ones((self.N, 1)) if ml.Zc is None else np.asarray(ml.Zc, dtype=float)
        self.maps = ml.maps  # (K, Pu, P)
        self.x = np.asarray(x, dtype=float).copy()
        self.p = [np.asarray(pk, dtype=float) for pk in p]
        # d = P (theta) + n_share (gamma) + K F (CCPs); moments in the same order
        self.d = self.P + self.n_share + self.K * self.F
        self._cells = [np.flatnonzero(self.feas[s]) for s in range(self.S)]

    @property
    def cost_bytes(self) -> int:
        """Memory the covariance needs (:func:`stacked_cost_bytes`)."""
        return stacked_cost_bytes(self.S, self.A, self.F, self.K, self.P + self.n_share)

    # ---------------------------------------------------------------- parameter vector
    def pblock(self, k: int) -> slice:
        """Columns (and moment rows) of type ``k``'s free CCPs."""
        start = self.P + self.n_share + k * self.F
        return slice(start, start + self.F)

    def pack(self) -> np.ndarray:
        """:math:`\\beta` at the estimate."""
        return np.concatenate([self.x, *[pk[self.fs, self.fb] for pk in self.p]])

    def unpack(self, beta: np.ndarray):
        """``(x, p)`` at ``beta``; the reference CCPs are one minus the free ones."""
        beta = np.asarray(beta, dtype=float)
        x = beta[: self.P + self.n_share]
        p = []
        for k in range(self.K):
            pk = self.p[k].copy()
            pk[self.fs, self.fb] = beta[self.pblock(k)]
            # the reference action: one minus the state's other feasible actions (all free)
            pk[self.obs, self.ref_obs] = 0.0
            pk[self.obs, self.ref_obs] = 1.0 - pk[self.obs].sum(axis=1)
            p.append(pk)
        return x, p

    def unit_shares(self, x: np.ndarray) -> np.ndarray:
        """``(N, K)`` shares of every unit at internal ``x``."""
        w = self.ml.unit_weights(x)
        return np.broadcast_to(w, (self.N, self.K)) if w.ndim == 1 else w

    # ---------------------------------------------------------------- pieces per type
    def _cell_terms(self, theta: np.ndarray, pk: np.ndarray, k: int,
                    pl: PseudoLikelihood | None = None):
        """``(Z, v, log Lambda, Lambda, D)`` of type ``k`` at ``(theta, p_k)``."""
        Z, e = (pl or self.pl).linearize(pk)
        tk = self.maps[k] @ theta
        v = np.where(self.feas, Z @ tk + e, -np.inf)
        lp = v - logsumexp(v, axis=1, keepdims=True)
        lam = np.exp(lp)
        zbar = np.einsum("sa,sak->sk", lam, Z)
        D = np.where(self.feas[:, :, None], Z - zbar[:, None, :], 0.0)
        return Z, v, lp, lam, D

    def _type_loglik_cells(self, lp: np.ndarray, pk: np.ndarray) -> np.ndarray:
        """:math:`\\ell_k(s, a)` of the posteriors (0 where infeasible)."""
        if self.kind == "structural":
            return np.where(self.feas, lp, 0.0)
        with np.errstate(divide="ignore"):
            return np.where(self.feas & (pk > 0), np.log(np.where(pk > 0, pk, 1.0)), 0.0)

    def _posteriors(self, ell: list[np.ndarray], W: np.ndarray) -> np.ndarray:
        lik = np.column_stack([self.B @ c.ravel() for c in ell])
        with np.errstate(divide="ignore"):
            M = lik + np.log(W)
        return np.exp(M - logsumexp(M, axis=1, keepdims=True))

    def _frequency_map(self, pk: np.ndarray) -> sp.csr_matrix:
        """:math:`M_k`: ``(F, S A)`` with :math:`(M_k n_i)_f = n_i(s_f, b_f) -
        p_k(b_f \\mid s_f)\\, n_i(s_f)`."""
        rows, cols, vals = [], [], []
        for f in range(self.F):
            s, b = self.fs[f], self.fb[f]
            for a in self._cells[s]:
                rows.append(f)
                cols.append(s * self.A + a)
                vals.append((1.0 if a == b else 0.0) - pk[s, b])
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.F, self.S * self.A))

    def _share_rows(self, k: int) -> np.ndarray:
        """``(N, n_share)``: :math:`\\partial g^\\gamma_i / \\partial q_{ik}`, i.e.
        :math:`z_i` in type ``k``'s block (nothing for type 0)."""
        out = np.zeros((self.N, self.n_share))
        if k >= 1:
            C = self.Zc.shape[1]
            out[:, (k - 1) * C:k * C] = self.Zc
        return out

    def _log_share_derivatives(self, W: np.ndarray, j: int) -> np.ndarray:
        """``(N, n_share)``: :math:`\\partial \\log w_{ij} / \\partial\\gamma_{mc} =
        (1[j = m] - w_{im}) z_{ic}`."""
        C = self.Zc.shape[1]
        out = np.zeros((self.N, self.K - 1, C))
        for m in range(1, self.K):
            out[:, m - 1, :] = ((1.0 if j == m else 0.0) - W[:, m])[:, None] * self.Zc
        return out.reshape(self.N, -1)

    # ---------------------------------------------------------------- moments
    def unit_moments(self, beta: np.ndarray | None = None):
        """Per-unit moments at ``beta`` (the estimate by default), from scratch.

        Returns
        -------
        (scipy.sparse.csr_matrix, numpy.ndarray)
            ``G`` of shape ``(N, d)`` and the smoothing's constant ``c`` with
            :math:`g_i = G_i + c`; :math:`\\sum_i g_i = 0` at the estimate up to the iterations'
            tolerance.
        """
        x, p = self.unpack(self.pack() if beta is None else beta)
        K, P, SA = self.K, self.P, self.S * self.A
        theta = x[:P]
        terms = [self._cell_terms(theta, p[k], k) for k in range(K)]
        ell = [self._type_loglik_cells(t[2], p[k]) for k, t in enumerate(terms)]
        W = self.unit_shares(x)
        q = self._posteriors(ell, W)
        blocks = [sp.csr_matrix(sum(q[:, k:k + 1] * ((self.B @ t[4].reshape(SA, -1))
                                                      @ self.maps[k])
                                    for k, t in enumerate(terms)))]
        if self.n_share:
            blocks.append(sp.csr_matrix(self.ml.share_scores(q, self.ml.unit_weights(x))))
        for k in range(K):
            blocks.append(sp.diags(q[:, k]) @ (self.B @ self._frequency_map(p[k]).T))
        G = sp.hstack(blocks, format="csr")
        c = np.zeros(self.d)
        for k in range(K):
            pf = p[k][self.fs, self.fb]
            c[self.pblock(k)] = self.alpha / self.N * (1.0 - self.n_feas[self.fs] * pf)
        return G, c

    def summed_moments(self, pl: PseudoLikelihood | None = None,
                       beta: np.ndarray | None = None) -> np.ndarray:
        """:math:`\\sum_i g_i` at ``beta`` (the estimate by default) through the weighted
        counts, with the linearization ``pl`` (another first-stage transition estimate, for
        :func:`transition_correction`)."""
        x, p = self.unpack(self.pack() if beta is None else beta)
        K, P = self.K, self.P
        terms = [self._cell_terms(x[:P], p[k], k, pl) for k in range(K)]
        ell = [self._type_loglik_cells(t[2], p[k]) for k, t in enumerate(terms)]
        q = self._posteriors(ell, self.unit_shares(x))
        Nk = self.ml.weighted_counts(q)
        out = np.zeros(self.d)
        for k, t in enumerate(terms):
            out[:P] += self.maps[k].T @ np.einsum("sa,sak->k", Nk[k], t[4])
            pf = p[k][self.fs, self.fb]
            Ns = Nk[k].sum(axis=1)[self.fs]
            out[self.pblock(k)] = (Nk[k][self.fs, self.fb] - pf * Ns
                                   + self.alpha * (1.0 - self.n_feas[self.fs] * pf))
        if self.n_share:
            out[P:P + self.n_share] = self.ml.share_scores(q, self.ml.unit_weights(x)).sum(0)
        return out

    # ---------------------------------------------------------------- Jacobian
    def _ccp_derivatives(self, Z, v, lam, pk):
        """Per type: ``L`` = d log Lambda / dp (S, A, F), ``E`` (S, A, S_o) and the reference
        differences of ``Z`` (F, Pu)."""
        system = PolicySystem(pk, self.beta, self.pl.ct, self.pl.solver)
        rhs = np.zeros((self.S, len(self.obs)))
        rhs[self.obs, np.arange(len(self.obs))] = 1.0
        Winv = system.solve(rhs)  # columns of (I - beta P_p)^-1
        E = self.pl.ct.expected(np.atleast_2d(Winv.reshape(self.S, -1)))  # (S, A, S_o)
        fs, fb, fr = self.fs, self.fb, self.fr
        with np.errstate(divide="ignore"):
            logp = np.log(np.where(pk > 0, pk, 1.0))
        cv = (v[fs, fb] - logp[fs, fb]) - (v[fs, fr] - logp[fs, fr])
        dv = np.where(self.feas[:, :, None], self.beta * E[:, :, self.obs_pos] * cv, 0.0)
        L = dv - np.einsum("sa,saf->sf", lam, dv)[:, None, :]
        L = np.where(self.feas[:, :, None], L, 0.0)
        dZ = Z[fs, fb, :] - Z[fs, fr, :]
        return L, E, dZ

    def jacobian(self) -> np.ndarray:
        """:math:`J = \\sum_i \\partial g_i / \\partial\\beta'` at the estimate, analytic."""
        x, p = self.x, self.p
        K, P, SA, F, d, ns = self.K, self.P, self.S * self.A, self.F, self.d, self.n_share
        B = self.B
        theta = x[:P]
        terms = [self._cell_terms(theta, p[k], k) for k in range(K)]
        ell = [self._type_loglik_cells(t[2], p[k]) for k, t in enumerate(terms)]
        W = self.unit_shares(x)
        q = self._posteriors(ell, W)
        Nk = self.ml.weighted_counts(q)
        J = np.zeros((d, d))
        sh = slice(P, P + ns)
        # per type: scores s_ik (N, P), d ell_ik / d p_k through the cells, Gamma_k
        scores, Lell, Gam = [], [], []
        for k, (Z, v, _lp, lam, D) in enumerate(terms):
            L, E, dZ = self._ccp_derivatives(Z, v, lam, p[k])
            Sk = (B @ D.reshape(SA, -1)) @ self.maps[k]
            scores.append(Sk)
            if self.kind == "structural":
                Lell.append(sp.csr_matrix(L.reshape(SA, F)))
            else:  # d log p_k(a|s) / d p_k(b_f|s_f): 1/p at b_f, -1/p at the reference
                cols = np.concatenate([np.arange(F), np.arange(F)])
                rows = np.concatenate([self.fs * self.A + self.fb, self.fs * self.A + self.fr])
                vals = np.concatenate([1.0 / p[k][self.fs, self.fb],
                                       -1.0 / p[k][self.fs, self.fr]])
                Lell.append(sp.csr_matrix((vals, (rows, cols)), shape=(SA, F)))
            # gamma_ik = d g_i / d q_ik as rows: [s_ik | z_i in share block k | M_k n_i]
            parts = [sp.csr_matrix(Sk), sp.csr_matrix(self._share_rows(k))]
            Mk = self._frequency_map(p[k])
            for j in range(K):
                parts.append(B @ Mk.T if j == k else sp.csr_matrix((self.N, F)))
            Gam.append(sp.hstack(parts, format="csr"))
            # ---- direct derivatives at fixed posteriors
            Mmap = self.maps[k]  # (Pu, P)
            Ns = Nk[k].sum(axis=1)
            Hk = -np.einsum("s,sa,sak,sal->kl", Ns, lam, D, D)
            J[:P, :P] += Mmap.T @ Hk @ Mmap
            rho = np.where(self.feas, Nk[k] - Ns[:, None] * lam, 0.0)
            u = np.einsum("sa,sat->t", rho, E)[self.obs_pos]  # (F,)
            Ck = self.beta * (u[:, None] * dZ).T  # (Pu, F)
            Ck -= np.einsum("sb,sbk,sbf->kf", Ns[:, None] * lam, D, L)
            pb = self.pblock(k)
            J[:P, pb] += Mmap.T @ Ck
            J[pb, pb] -= np.diag(Ns[self.fs] + self.alpha * self.n_feas[self.fs])
        # share equations in gamma at fixed posteriors: -sum_i w_im (1[m=l] - w_il) z_i z_i'
        C = self.Zc.shape[1]
        for m in range(1, K):
            for l_ in range(1, K):
                c = W[:, m] * ((1.0 if m == l_ else 0.0) - W[:, l_])
                J[P + (m - 1) * C:P + m * C, P + (l_ - 1) * C:P + l_ * C] -= \
                    (self.Zc * c[:, None]).T @ self.Zc
        # ---- through the posteriors: sum_{k,j} Gamma_k' diag(c_kj) Psi_j
        for k in range(K):
            for j in range(K):
                c = q[:, k] * ((1.0 if k == j else 0.0) - q[:, j])
                Gc = Gam[k].T @ sp.diags(c)  # (d, N)
                if self.kind == "structural":
                    J[:, :P] += np.asarray(Gc @ scores[j])
                if ns:
                    J[:, sh] += np.asarray(Gc @ self._log_share_derivatives(W, j))
                J[:, self.pblock(j)] += np.asarray(((Gc @ B) @ Lell[j]).todense())
        return J

    # ---------------------------------------------------------------- covariance
    def covariance(self, J: np.ndarray | None = None,
                   first_stage: TransitionCorrection | None = None) -> np.ndarray:
        """Covariance of the reported parameters: :math:`\\theta`, then the shares
        :math:`w_1, \\dots, w_{K-1}` (constant shares; delta method from :math:`\\gamma`) or the
        logit coefficients :math:`\\gamma`: the leading block of :math:`J^{-1} \\Omega J^{-T}`.
        With a transition ``first_stage``, unit :math:`u`'s moments are augmented by
        :math:`C V_\\psi S_u`, its first-order effect through the first-stage estimate."""
        J = self.jacobian() if J is None else J
        r = self.P + self.n_share
        X = np.linalg.solve(J.T, np.eye(self.d)[:, :r])  # rows of J^-1, transposed
        G, c = self.unit_moments()
        h = np.asarray(G @ X) + c @ X
        if first_stage is not None:
            h += first_stage.S @ (first_stage.C @ first_stage.Vpsi).T @ X
        V = h.T @ h
        if self.ml.Zc is None and self.K > 1:  # to the shares w_1..w_{K-1}
            w = self.ml.weights(self.x)[1:]
            T = np.eye(r)
            T[self.P:, self.P:] = np.diag(w) - np.outer(w, w)
            V = T @ V @ T.T
        return 0.5 * (V + V.T)
