"""Conditional choice probability estimators: Hotz-Miller two-step (CCP) and NPL.

Given choice probabilities :math:`p`, the value of following them solves the linear system

.. math::

    V_p = (I - \\beta P_p)^{-1} \\sum_a p_a \\, (u_a(\\theta) - \\log p_a + \\gamma),

which for a linear utility :math:`u_a = X_a \\theta` is :math:`V_p = A_p \\theta + c_p`. The
choice-specific values are then linear in :math:`\\theta`,

.. math:: v(s, a) = Z_p(s, a)\\,\\theta + e_p(s, a), \\qquad
          Z_p = X_a + \\beta P_a A_p, \\quad e_p = \\beta P_a c_p,

and the pseudo-likelihood :math:`\\sum_{s,a} n(s,a) \\log \\Lambda(a \\mid s; \\theta, p)` with
:math:`\\Lambda = \\mathrm{softmax}_a(v)` is a conditional logit in :math:`\\theta`: concave, and
maximized by Newton's method in a few steps (Hotz and Miller 1993; Aguirregabiria and Mira 2002).

* :class:`CCP` takes :math:`p = \\hat p` from the data (frequencies or a flexible logit) and
  maximizes once. Its standard errors are corrected for the first stage by Murphy and Topel
  (1985).
* :class:`NPL` iterates :math:`p_{k+1} = \\Lambda(\\theta_k, p_k)` and re-maximizes until both
  stop changing; in single-agent models its fixed point is the maximum likelihood estimate
  (Aguirregabiria and Mira 2002), so its standard errors are those of maximum likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.data import EstimationData
from ddc.kernels.bellman import EULER_GAMMA
from ddc.model import Model
from ddc.solver import ConvergenceError, PolicySystem, Solver
from ddc.utility import LinearUtility
from estimators.base import Estimator, Fit, Inference, Prepared, register
from estimators.first_stage import first_stage_covariances
from estimators.inference import row_scores
from estimators.likelihood import ChoiceLikelihood, mle_inference
from estimators.policy import flexible_logit, frequency_ccps, logit_ccps

__all__ = ["CCP", "NPL", "frequency_ccps", "logit_ccps", "PseudoLikelihood"]


class PseudoLikelihood:
    """The pseudo-likelihood :math:`\\Lambda(\\theta, p)` of a linear-utility model.

    Parameters
    ----------
    model : ddc.Model
        Model with a :class:`ddc.LinearUtility`.
    params : pandas.Series
        Parameters (the transition parameters are used; utility ones are ignored).
    solver : ddc.Solver
        Chooses the linear solver of :math:`I - \\beta P_p`.
    """

    def __init__(self, model: Model, params: pd.Series, solver: Solver):
        if not isinstance(model.utility, LinearUtility):
            raise TypeError("CCP and NPL need a utility linear in parameters (LinearUtility); "
                            "use NFXP for a CallableUtility")
        self.model, self.solver = model, solver
        self.ct = model.compiled_transitions(params.to_numpy())
        self.X = model.utility.features
        self.feas = model.feasible

    def policy_values(self, p: np.ndarray) -> tuple[PolicySystem, np.ndarray]:
        """The factorized :math:`I - \\beta P_p` and :math:`[A_p, c_p]` (S, K + 1): the value
        of following ``p`` is :math:`A_p \\theta + c_p`."""
        system = PolicySystem(p, self.model.beta, self.ct, self.solver)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
        B = np.einsum("sa,sak->sk", p, self.X)
        ent = np.sum(p * (EULER_GAMMA - logp), axis=1)
        Ac = np.asarray(system.solve(np.column_stack([B, ent]))).reshape(B.shape[0], -1)
        return system, Ac

    def linearize(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Z, e)`` with ``v = Z @ theta + e``, shapes (S, A, K) and (S, A)."""
        beta = self.model.beta
        E = self.ct.expected(self.policy_values(p)[1])
        Z = self.X + beta * E[:, :, :-1]
        e = beta * E[:, :, -1]
        return Z, e

    def hessian(self, Z: np.ndarray, e: np.ndarray, counts: np.ndarray,
                theta: np.ndarray) -> np.ndarray:
        """Hessian of the pseudo-log-likelihood in :math:`\\theta` at ``theta``:
        :math:`-\\sum_s N_s \\sum_a \\Lambda_a (Z_a - \\bar Z)(Z_a - \\bar Z)'`."""
        q = self.choice_probs(Z, e, theta)
        Zbar = np.einsum("sa,sak->sk", q, Z)
        D = np.where(self.feas[:, :, None], Z - Zbar[:, None, :], 0.0)
        return -np.einsum("s,sa,sak,sal->kl", counts.sum(axis=1), q, D, D)

    def score_derivative(self, Z: np.ndarray, e: np.ndarray, counts: np.ndarray,
                         theta: np.ndarray, dZ: np.ndarray, de: np.ndarray) -> np.ndarray:
        """Derivative of the pseudo-score :math:`g = \\sum_{s,a} n(s,a) (Z_a - \\sum_b
        \\Lambda_b Z_b)` at ``theta`` when ``(Z, e)`` move by ``dZ`` (S, A, K, m) and ``de``
        (S, A, m) per unit of ``m`` parameters: with :math:`dv = dZ\\,\\theta + de` and
        :math:`d\\Lambda_b = \\Lambda_b (dv_b - \\sum_c \\Lambda_c dv_c)`,

        .. math:: dg = \\sum_{s,a} n(s,a)\\, dZ_a - \\sum_s N_s \\sum_b (\\Lambda_b dZ_b
                  + d\\Lambda_b Z_b).

        Returns the (K, m) matrix."""
        feas = self.feas
        q = self.choice_probs(Z, e, theta)
        N = counts.sum(axis=1)
        dZ = np.where(feas[:, :, None, None], dZ, 0.0)
        dv = np.where(feas[:, :, None], np.einsum("sakm,k->sam", dZ, theta) + de, 0.0)
        dq = q[:, :, None] * (dv - np.einsum("sa,sam->sm", q, dv)[:, None, :])
        Zf = np.where(feas[:, :, None], Z, 0.0)
        return (np.einsum("sa,sakm->km", counts, dZ)
                - np.einsum("s,sa,sakm->km", N, q, dZ)
                - np.einsum("s,sam,sak->km", N, dq, Zf))

    def transition_score_derivative(self, p: np.ndarray, theta: np.ndarray, counts: np.ndarray,
                                    dtrans) -> tuple[np.ndarray, np.ndarray]:
        """``(dg, H)``: the derivative (K, P) of the pseudo-score at ``theta`` in the transition
        parameters of ``dtrans`` (:class:`ddc.transitions.TransitionDerivatives`), ``p`` held,
        and the pseudo-log-likelihood's Hessian (K, K) there.

        With :math:`M = I - \\beta P_p` and :math:`[A, c] = M^{-1} [B, h]`, moving the
        transitions by :math:`dP_a` gives :math:`d[A, c] = M^{-1} \\beta \\sum_a p_a\\, dP_a
        [A, c]` and :math:`d[Z, e]_a = \\beta\\, dP_a [A, c] + \\beta P_a\\, d[A, c]`: one
        solve of the factorized system for all parameters (implicit function theorem)."""
        beta = self.model.beta
        system, Ac = self.policy_values(p)
        S, K1 = Ac.shape
        P = len(dtrans.names)
        Y = dtrans.expected(Ac)  # (S, A, P, K+1)
        rhs = beta * np.einsum("sa,sajk->sjk", np.where(self.feas, p, 0.0), Y)
        dAc = np.asarray(system.solve(rhs.reshape(S, P * K1))).reshape(S, P * K1)
        dZe = beta * (Y + self.ct.expected(dAc).reshape(S, -1, P, K1))
        E = self.ct.expected(Ac)
        Z = self.X + beta * E[:, :, :-1]
        e = beta * E[:, :, -1]
        dg = self.score_derivative(Z, e, counts, theta, dZe[:, :, :, :-1].transpose(0, 1, 3, 2),
                                   dZe[:, :, :, -1])
        return dg, self.hessian(Z, e, counts, theta)

    def ccp_score_derivative(self, p: np.ndarray, theta: np.ndarray, counts: np.ndarray,
                             free: list[tuple[int, int]], ref: np.ndarray) -> np.ndarray:
        """Derivative (K, m) of the pseudo-score at ``theta`` in the free choice probabilities
        ``free`` = [(s, b), ...]: moving :math:`p(b \\mid s)` up and the state's reference
        action ``ref[s]`` down by the same amount.

        That move changes row :math:`s` of the policy system only: with :math:`M = I - \\beta
        P_p`, :math:`[A, c] = M^{-1}[B, h]` (:math:`B = \\sum_a p_a X_a`, :math:`h = \\sum_a
        p_a (\\gamma - \\log p_a)`),

        .. math:: d[A, c] = M^{-1} e_s\\, r', \\qquad r = [X_b(s) - X_{ref}(s),\\;
                  \\log p_{ref} - \\log p_b] + \\beta (P_b - P_{ref})(s)\\,[A, c],

        so :math:`d[Z, e]_a = \\beta P_a M^{-1} e_s\\, r'`: one solve of the factorized
        system per distinct state (implicit function theorem; no system is factorized
        again)."""
        beta = self.model.beta
        system, Ac = self.policy_values(p)
        S, K1 = Ac.shape
        K = K1 - 1
        m = len(free)
        states = np.unique([s for s, _ in free])
        col = {int(s): i for i, s in enumerate(states)}
        unit = np.zeros((S, states.size))
        unit[states, np.arange(states.size)] = 1.0
        Em = self.ct.expected(np.asarray(system.solve(unit)).reshape(S, states.size))
        EAc = self.ct.expected(Ac)
        with np.errstate(divide="ignore"):
            logp = np.log(p)
        dZ = np.empty((*p.shape, K, m))
        de = np.empty((*p.shape, m))
        for j, (s, b) in enumerate(free):
            r0 = ref[s]
            r = beta * (EAc[s, b] - EAc[s, r0])
            r[:K] += self.X[s, b] - self.X[s, r0]
            r[K] += logp[s, r0] - logp[s, b]
            Ej = beta * Em[:, :, col[int(s)]]
            dZ[:, :, :, j] = Ej[:, :, None] * r[:K]
            de[:, :, j] = Ej * r[K]
        Z = self.X + beta * EAc[:, :, :-1]
        e = beta * EAc[:, :, -1]
        return self.score_derivative(Z, e, counts, theta, dZ, de)


    def choice_probs(self, Z: np.ndarray, e: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """:math:`\\Lambda(\\theta, p)`: logit probabilities of ``v = Z theta + e``."""
        S, A, K = Z.shape  # one 2-d product (a stacked 3-d matmul costs four times more)
        v = np.where(self.feas, (Z.reshape(S * A, K) @ theta).reshape(S, A) + e, -np.inf)
        # softmax over the feasible actions, shifted by the row maximum (scipy's logsumexp
        # does the same at ten times the cost on arrays this small)
        ex = np.exp(v - v.max(axis=1, keepdims=True))
        return ex / ex.sum(axis=1, keepdims=True)

    def maximize(self, Z, e, counts, theta0, tol=1e-12, max_iter=100):
        """Newton's method on the (concave) pseudo-log-likelihood.

        Returns ``(theta, loglik, hessian, converged, iterations)``.
        """
        theta = np.asarray(theta0, dtype=float).copy()
        S, A, K = Z.shape
        N = counts.sum(axis=1)
        mask = counts > 0
        n_obs = counts[mask]
        feas = self.feas[:, :, None]
        ll_old = -np.inf
        q = None  # the choice probabilities at theta, when the line search left them
        ll = None  # and their log-likelihood
        for it in range(1, max_iter + 1):
            if q is None:
                q = self.choice_probs(Z, e, theta)
                ll = None
            Zbar = np.einsum("sa,sak->sk", q, Z)
            D = np.where(feas, Z - Zbar[:, None, :], 0.0).reshape(S * A, K)
            g = counts.reshape(-1) @ D
            # -sum_s N(s) sum_a q(a|s) D D': one matrix product over the cells
            H = -(D.T * (N[:, None] * q).reshape(-1)) @ D
            step = np.linalg.solve(H, -g)
            if ll is None:
                with np.errstate(divide="ignore"):
                    ll = float(np.sum(n_obs * np.log(q[mask])))
            lam, accepted = 1.0, False
            while lam > 1e-8:
                q_new = self.choice_probs(Z, e, theta + lam * step)
                with np.errstate(divide="ignore"):
                    ll_new = float(np.sum(n_obs * np.log(q_new[mask])))
                if ll_new >= ll - 1e-12 * max(1.0, abs(ll)):
                    accepted = True
                    break
                lam *= 0.5
            theta = theta + lam * step
            q = q_new if accepted else None  # the same arithmetic: theta + lam * step
            if float(g @ step) < tol or abs(ll_new - ll_old) < 1e-14 * max(1.0, abs(ll)):
                return theta, ll_new, H, True, it
            ll_old = ll_new
            ll = ll_new if accepted else None
        return theta, ll_new, H, False, max_iter


class _CCPBase(Estimator):
    name = "CCP"
    needs_rows = True

    def __init__(self, model: Model, first_stage: str = "frequency", smoothing: float = 0.5,
                 solver: Solver | None = None, drop_first: bool | None = None,
                 on_failure: str = "warn", transitions=None):
        super().__init__(model, solver, drop_first, on_failure, transitions)
        if first_stage not in ("frequency", "logit"):
            raise ValueError(f"first_stage must be 'frequency' or 'logit', got {first_stage!r}")
        if not isinstance(model.utility, LinearUtility):
            raise TypeError(f"{self.name} needs a utility linear in parameters "
                            "(LinearUtility); use NFXP for a CallableUtility")
        self.first_stage = first_stage
        self.smoothing = smoothing

    def __repr__(self) -> str:
        return f"{self.name}({self.model.name}, first_stage={self.first_stage!r})"

    def _ccps(self, cd) -> np.ndarray:
        model = self.model
        if self.first_stage == "frequency":
            return frequency_ccps(model, cd.counts, self.smoothing)
        # the flexible logit fitted on cell counts: the estimate of statsmodels' MNLogit on the
        # rows (logit_ccps, checked equal in the tests) at O(S) cost per Newton step
        return flexible_logit(model, cd.counts).pi


@register
class CCP(_CCPBase):
    """Hotz-Miller two-step estimator (pseudo-likelihood at first-stage CCPs).

    Parameters
    ----------
    model : ddc.Model
        Model with a linear utility.
    first_stage : {"frequency", "logit"}
        First-stage CCPs: smoothed cell frequencies (:func:`frequency_ccps`) or a flexible
        multinomial logit in state dummies with two-way interactions
        (:func:`estimators.policy.flexible_logit`, fitted on cell counts; the same estimate as
        statsmodels' ``MNLogit`` on the rows, :func:`logit_ccps`).
    smoothing : float
        :math:`\\alpha` of the frequency estimator.
    solver : ddc.Solver, optional
        Chooses the linear solver.
    drop_first : bool, optional
        As in :class:`NFXP`.
    on_failure : {"warn", "raise"}
        What non-convergence does.
    transitions : {"estimate", "known"} or TransitionOptions
        First stage of the transitions (:mod:`estimators.first_stage`): estimated from the data
        by default, or declared known.

    Notes
    -----
    Covariances: ``"murphy_topel"`` (the default with frequency first stages: the pseudo-
    likelihood's inverse Hessian corrected for the estimation of the CCPs, Murphy and Topel
    1985) and the uncorrected ``"hessian"``, ``"opg"``, ``"sandwich"`` and ``"cluster"`` of the
    pseudo-likelihood, which understate the uncertainty. With sufficient statistics (counts
    only) the point estimate is the same and the covariance is ``"hessian"`` (no per-row
    scores).
    """

    name = "CCP"
    key = "ccp"
    needs_rows = False
    first_stage_correction = "reestimate"

    def _estimate(self, prep: Prepared, base: pd.Series) -> Fit:
        model = prep.transitions.model  # with the first stage's transitions
        cd = prep.data
        p = self._ccps(cd)
        pl = PseudoLikelihood(model, base, self.solver)
        Z, e = pl.linearize(p)
        theta, ll, H, ok, it = pl.maximize(Z, e, cd.counts, np.zeros(len(model.utility_params)))
        params = base.copy()
        params[model.utility_params] = theta
        q = pl.choice_probs(Z, e, theta)
        Zbar = np.einsum("sa,sak->sk", q, Z)
        cell = np.where(model.feasible[:, :, None], Z - Zbar[:, None, :], 0.0)
        grad = np.einsum("sa,sak->k", cd.counts, cell)
        mask = cd.counts > 0
        with np.errstate(divide="ignore"):
            ll_c = float(np.sum(cd.counts[mask] * np.log(q[mask])))
        msg = f"Newton's method on the pseudo-likelihood: {it} steps"
        return Fit(params, ll_c, grad, ok, msg, it, None, [],
                   {"pl": pl, "p": p, "H": H, "cell": cell, "ll_c": ll_c})

    def _estimate_jacobian(self, prep: Prepared, fit: Fit, dtrans) -> np.ndarray:
        """:math:`\\partial \\hat\\theta / \\partial \\psi'` (K, P) in the first-stage
        transition parameters of ``dtrans``, by the implicit function theorem on the
        pseudo-score: :math:`-H^{-1} \\partial g / \\partial \\psi'` at the estimate, the
        CCPs held (they come from the choice data alone). Used by
        :func:`estimators.first_stage.reestimation_covariances` instead of re-estimating."""
        st = fit.state
        theta = fit.params[self.model.utility_params].to_numpy()
        dg, H = st["pl"].transition_score_derivative(st["p"], theta, prep.data.counts, dtrans)
        return -np.linalg.solve(H, dg)

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        cd, ts = prep.data, prep.transitions
        model = ts.model
        st = fit.state
        util = model.utility_params
        theta = fit.params[util].to_numpy()
        H, cell = st["H"], st["cell"]
        notes = []
        extra_covs = {}
        scores = groups = kinds = None
        if cd.has_rows:
            r = cd.rows(self.name)
            scores = row_scores(cell, r.position, r.state, r.action, r.n_panel_rows)
            groups = cd.panel.unit
            # the same scores by kind of row: a row's pseudo-score depends on its (s, a) only
            # (rows outside the choice sample score zero: the extra last kind)
            S, A, K = cell.shape
            key = cd.panel.state * A + cd.panel.action
            if not cd.used.all():
                key = np.where(cd.used, key, S * A)
            kinds = (key, np.vstack([cell.reshape(S * A, K), np.zeros((1, K))]))
            if self.first_stage == "frequency":
                extra_covs["murphy_topel"] = self._murphy_topel(st["pl"], cd, st["p"], theta, H,
                                                                cell)
                notes.append("default covariance: Murphy-Topel, corrected for the first-stage "
                             "CCPs")
            else:
                notes.append("standard errors treat the first-stage logit CCPs as known")
        else:
            notes.append("sufficient statistics (no rows): covariance from the pseudo-"
                         "likelihood's Hessian, not corrected for the first-stage CCPs")
        ll_c = st["ll_c"]
        return Inference(
            names=util, hessian=H, loglik=ll_c + ts.loglik,
            loglik_parts={"choice (pseudo)": ll_c, "transition": ts.loglik}, scores=scores,
            groups=groups, cov_type="murphy_topel" if extra_covs else "hessian",
            extra_covs=extra_covs or None, notes=notes, score_kinds=kinds,
            extra={"first_stage": self.first_stage, "smoothing": self.smoothing,
                   "ccp_first_stage": st["p"]})

    def _murphy_topel(self, pl: PseudoLikelihood, cd: EstimationData, p: np.ndarray,
                      theta: np.ndarray, H: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Murphy-Topel covariance with the CCPs' free probabilities as first-stage parameters.

        :math:`V = V_2 + V_2 (C V_1 C' + R V_1 C' + C V_1 R') V_2`, with :math:`V_2 = -H^{-1}`,
        :math:`V_1` the multinomial covariance of the frequencies, :math:`C = \\partial^2
        \\ell_2 / \\partial\\theta \\partial p'` (analytic:
        :meth:`PseudoLikelihood.ccp_score_derivative`) and :math:`R = \\sum_i g_{2i} g_{1i}'`
        the cross-products of the per-row scores (formed from the choice counts: both scores of
        a row depend on its state and action only; ``cell`` holds the pseudo-scores by
        state and action). (Murphy and Topel write the
        cross terms with minus signs for :math:`C` defined as an outer product of scores, which
        is minus the derivative used here: expanding the pseudo-score in the first stage gives
        :math:`\\hat\\theta - \\theta \\approx V_2 (s_2 + C V_1 s_1)`.)
        """
        model = self.model
        feas = model.feasible
        counts = cd.counts
        N = counts.sum(axis=1)
        # first-stage parameters: p(a|s) for feasible a other than the state's last feasible
        # action, in observed multi-choice states (others do not enter the pseudo-likelihood
        # except through the value; they are treated as known)
        ref = feas.shape[1] - 1 - np.argmax(feas[:, ::-1], axis=1)
        free = [(s, a) for s in np.flatnonzero((N > 0) & (feas.sum(axis=1) > 1))
                for a in np.flatnonzero(feas[s]) if a != ref[s]]
        P = len(free)
        if P == 0:
            return -np.linalg.inv(H)
        alpha = self.smoothing
        # V1: multinomial covariance of the smoothed frequencies, per state
        V1 = np.zeros((P, P))
        index = {}
        for i, (s, _a) in enumerate(free):
            index.setdefault(s, []).append(i)
        for s, idx in index.items():
            acts = [free[i][1] for i in idx]
            ps = p[s, acts]
            scale = (N[s] / (N[s] + alpha * feas[s].sum())) ** 2
            V1[np.ix_(idx, idx)] = scale * (np.diag(ps) - np.outer(ps, ps)) / N[s]
        # C: derivative of the pseudo-score in each free probability (analytic, see
        # PseudoLikelihood.ccp_score_derivative)
        C = pl.ccp_score_derivative(p, theta, counts, free, ref)
        # R: cross products of per-row scores; first-stage score of row (s, a) in p(b|s):
        # 1[a = b] / p_b - 1[a = ref] / p_ref, and a row's pseudo-score depends on its (s, a)
        # only, so R[:, i] = n(s, b) g2(s, b) / p_b - n(s, ref) g2(s, ref) / p_ref
        fs, fb = np.array([f[0] for f in free]), np.array([f[1] for f in free])
        fr = ref[fs]
        def weight(s, a):  # n(s, a) / p(a | s), zero where no row chose it
            n = counts[s, a]
            return np.where(n > 0, n / np.where(n > 0, p[s, a], 1.0), 0.0)[:, None]

        R = (cell[fs, fb] * weight(fs, fb) - cell[fs, fr] * weight(fs, fr)).T
        V2 = -np.linalg.inv(H)
        middle = C @ V1 @ C.T + R @ V1 @ C.T + C @ V1 @ R.T
        V = V2 + V2 @ middle @ V2
        return 0.5 * (V + V.T)


@register
class NPL(_CCPBase):
    """Nested pseudo-likelihood (Aguirregabiria and Mira 2002), iterated to convergence.

    Parameters
    ----------
    model : ddc.Model
        Model with a linear utility.
    first_stage : {"frequency", "logit"}
        Starting CCPs.
    smoothing : float
        :math:`\\alpha` of the frequency estimator.
    solver : ddc.Solver, optional
        Linear solver choice, and the fixed-point solver for the standard errors.
    tol : float
        Stop when the parameters change by less than ``tol`` (max abs) and the CCPs by less
        than ``tol`` between iterations.
    max_iter : int
        Most NPL iterations.
    drop_first : bool, optional
        As in :class:`NFXP`.
    on_failure : {"warn", "raise"}
        What non-convergence does.
    transitions : {"estimate", "known"} or TransitionOptions
        First stage of the transitions (:mod:`estimators.first_stage`): estimated from the data
        by default, or declared known.

    Notes
    -----
    At the NPL fixed point the estimate is the maximum likelihood estimate, so the default
    covariance is the inverse Hessian of the full-solution choice likelihood at the estimate
    (as NFXP's).
    """

    name = "NPL"
    key = "npl"
    needs_rows = False

    def __init__(self, model: Model, first_stage: str = "frequency", smoothing: float = 0.5,
                 solver: Solver | None = None, tol: float = 1e-9, max_iter: int = 1000,
                 drop_first: bool | None = None, on_failure: str = "warn", transitions=None):
        super().__init__(model, first_stage, smoothing, solver, drop_first, on_failure,
                         transitions)
        if not tol > 0:
            raise ValueError(f"tol must be positive, got {tol!r}")
        if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.tol, self.max_iter = tol, max_iter

    def _estimate(self, prep: Prepared, base: pd.Series) -> Fit:
        model = prep.transitions.model  # with the first stage's transitions
        cd = prep.data
        p = self._ccps(cd)
        pl = PseudoLikelihood(model, base, self.solver)
        theta = np.zeros(len(model.utility_params))
        converged = False
        history = []
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007
            Z, e = pl.linearize(p)
            theta_new, ll, H, ok, _ = pl.maximize(Z, e, cd.counts, theta)
            p_new = pl.choice_probs(Z, e, theta_new)
            dtheta = float(np.max(np.abs(theta_new - theta)))
            dp = float(np.max(np.abs(p_new - p)))
            history.append((dtheta, dp))
            theta, p = theta_new, p_new
            if dtheta < self.tol and dp < self.tol:
                converged = True
                break
        msg = (f"NPL fixed point after {it} iterations" if converged else
               f"NPL did not converge in {self.max_iter} iterations (last changes: parameters "
               f"{history[-1][0]:.2e}, CCPs {history[-1][1]:.2e})")
        params = base.copy()
        params[model.utility_params] = theta
        lik = ChoiceLikelihood(model, cd.counts, self.solver)
        ev = lik.evaluate(params, True)
        return Fit(params, ev.loglik, ev.grad, converged, msg, it, None, [],
                   {"lik": lik, "history": history})

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        cd, ts = prep.data, prep.transitions
        model = ts.model
        lik = fit.state["lik"]
        util = model.utility_params
        notes = ["covariance: maximum likelihood (the NPL fixed point is the MLE)"]
        try:
            if cd.has_rows:
                rows = cd.rows(self.name)
                Hm, scores, ev = mle_inference(lik, (rows.position, rows.state, rows.action),
                                               rows.n_panel_rows, fit.params)
            else:  # sufficient statistics: the Hessian only
                Hm, scores, ev = mle_inference(lik, None, 0, fit.params)
        except ConvergenceError as exc:  # the likelihood is not finite near the estimate
            notes.append(f"no Hessian at the estimate: {exc}")
            Hm, scores, ev = None, None, lik.evaluate(fit.params, True)
        covs: dict = {}
        if Hm is not None:  # correct the standard errors for the transitions' first stage
            covs, fs_notes = first_stage_covariances(
                ts, cd.counts, self.solver, fit.params, Hm, scores,
                cd.panel.unit if cd.has_rows else None, cd.panel, solution=ev.solution,
                cell_scores=ev.cell_scores, used=cd.used if cd.has_rows else None)
            notes += fs_notes
        if (len(ts.params) or ts.tables) and not covs:
            notes.append(f"transitions from a first stage ({ts.method}), held fixed; standard "
                         "errors do not account for that first stage")
        return Inference(
            names=util, hessian=Hm, loglik=ev.loglik + ts.loglik,
            loglik_parts={"choice": ev.loglik, "transition": ts.loglik}, scores=scores,
            groups=cd.panel.unit if cd.has_rows else None, cov_type="hessian",
            extra_covs=covs or None, solution=ev.solution, notes=notes,
            gradient=ev.grad,
            extra={"first_stage": self.first_stage, "history": fit.state["history"]})
