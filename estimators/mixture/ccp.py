"""CCP estimation with unobserved types: Arcidiacono and Miller's (2011) CCP-EM.

Arcidiacono, P. and R. A. Miller (2011), "Conditional choice probability estimation of dynamic
discrete choice models with unobserved heterogeneity", *Econometrica* 79(6), 1823-1867.

Type :math:`k`'s choice probabilities are represented through its own CCPs :math:`p_k`: with
the value of following :math:`p_k` (:class:`estimators.ccp.PseudoLikelihood`), the
choice-specific values are linear in the utility parameters, :math:`v_k = Z_{p_k}\\theta_k +
e_{p_k}`, and :math:`\\Lambda(a \\mid s; \\theta_k, p_k)` is their logit. Iteration :math:`m`
of their CCP-EM algorithm:

1. posteriors :math:`q_{ik} \\propto w_k \\prod_t \\Lambda(a_{it} \\mid s_{it}; \\theta_k, p_k)`
   (one pass over the per-unit counts);
2. shares :math:`w_k = \\frac{1}{N} \\sum_i q_{ik}`, or with shares that vary over units
   (``shares_by``, ``share_covariates``) the posterior-weighted multinomial logit
   :math:`\\max_\\gamma \\sum_i \\sum_k q_{ik} \\log w_k(z_i; \\gamma)`, the M-step of
   ``NFXP(mix)``'s EM (:meth:`estimators.mixture.likelihood.MixtureLikelihood.fit_shares`);
3. CCPs: ``ccp_update="data"`` (CCP): the type-weighted cell frequencies
   :math:`p_k(a \\mid s) = (N_k(s,a) + \\alpha) / (N_k(s) + \\alpha |A(s)|)`, with
   :math:`N_k = \\sum_i q_{ik} n_i` (smoothed as
   :func:`estimators.ccp.frequency_ccps`); ``ccp_update="model"`` (NPL):
   :math:`p_k \\leftarrow \\Lambda(\\theta_k, p_k)`;
4. :math:`\\theta = \\arg\\max \\sum_k \\sum_{s,a} N_k(s,a) \\log\\Lambda(a \\mid s; \\theta_k,
   p_k)`: a sum of conditional logits, concave, by Newton's method.

With model-updated CCPs a fixed point has :math:`p_k = \\pi_k(\\theta_k)`; there the derivative
of :math:`\\Lambda` in :math:`p` vanishes (Aguirregabiria and Mira 2002), so the fixed point
solves the first-order conditions of the mixture likelihood: ``NPL(mix)`` reports maximum
likelihood standard errors (the mixture likelihood's Hessian at the estimate). With data-updated
CCPs (``CCP(mix)``) the estimator is consistent but not efficient, and its limit solves a system
of per-unit estimating equations in the structural parameters, the type CCPs and the share
parameters; the default covariance (``"stacked"``) is that system's sandwich, which accounts for
the estimated CCPs, shares and posteriors (:mod:`estimators.mixture.ccp_inference`). The kinds
``"hessian"``, ``"opg"``, ``"sandwich"`` and ``"cluster"`` are those of the mixture
pseudo-likelihood with the final CCPs held fixed, which ignore their estimation and may
understate the uncertainty.

``two_stage=True`` (CCP only) is their two-stage variant: stage 1 estimates the
shares and unrestricted type-specific CCPs by EM on the latent-class model
:math:`\\sum_k w_k \\prod_t p_k(a_{it} \\mid s_{it})`; stage 2 maximizes the posterior-weighted
pseudo-likelihood once at those CCPs and posteriors; its default covariance (``"two_step"``) is
the two-step formula of Newey and McFadden (1994, Theorem 6.1), stage 1 being the EM fixed point
of the latent-class model.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ddc.mixture import Mixture
from ddc.solver import ConvergenceWarning, Solver, small_blas
from ddc.utility import LinearUtility
from estimators.ccp import PseudoLikelihood, frequency_ccps
from estimators.data import setup
from estimators.first_stage import TransitionOptions
from estimators.mixture.ccp_inference import (
    MAX_BYTES,
    StackedMoments,
    TransitionCorrection,
    transition_correction,
)
from estimators.mixture.likelihood import (
    MixtureEvaluation,
    MixtureLikelihood,
    logsumexp,
    unit_counts,
)
from estimators.mixture.nfxp import (
    mapped_data,
    mixture_results,
    one_type_start,
    order_types,
    split_starts,
)

__all__ = ["MixtureCCP", "PseudoMixtureLikelihood"]


class PseudoMixtureLikelihood(MixtureLikelihood):
    """The mixture likelihood with type ``k``'s choice probabilities :math:`\\Lambda(\\theta_k,
    p_k)` at fixed CCPs (linearized as ``Z[k] @ theta + e[k]``)."""

    def __init__(self, mix: Mixture, counts, base: np.ndarray, solver: Solver, Z: list,
                 e: list):
        super().__init__(mix, counts, base, solver)
        self.Z, self.e = Z, e
        self.feas = mix.model.feasible
        self.Pu = len(mix.model.utility_params)

    def type_terms(self, x: np.ndarray, need: bool):
        """Per type ``log Lambda`` and its derivatives ``Z - sum_a Lambda Z`` (S, A, Pu)."""
        terms = []
        for k in range(self.mix.n_types):
            theta = self.type_vector(x, k)[: self.Pu]
            v = np.where(self.feas, self.Z[k] @ theta + self.e[k], -np.inf)
            lp = v - logsumexp(v, axis=1, keepdims=True)
            d = None
            if need:
                lam = np.exp(lp)
                zbar = np.einsum("sa,sak->sk", lam, self.Z[k])
                d = np.where(self.feas[:, :, None], self.Z[k] - zbar[:, None, :], 0.0)
            terms.append((lp, d))
        return terms, None

    def type_hessians(self, x: np.ndarray, sols) -> list[np.ndarray]:
        """Per type, :math:`\\partial^2 \\log\\Lambda_k(a \\mid s) / \\partial\\theta
        \\partial\\theta' = -\\sum_b \\Lambda_k(b \\mid s) (Z_b - \\bar Z)
        (Z_b - \\bar Z)'` (the logit in values linear in :math:`\\theta`; the same for every
        feasible action), for :meth:`MixtureLikelihood.hessian`."""
        out = []
        for lp, d in self.type_terms(x, True)[0]:
            lam = np.where(self.feas, np.exp(lp), 0.0)
            h = -np.einsum("sb,sbi,sbj->sij", lam, d, d)
            out.append(np.where(self.feas[:, :, None, None], h[:, None], 0.0))
        return out

    def evaluate(self, x: np.ndarray, need_derivatives: bool = True) -> MixtureEvaluation:
        """As :meth:`MixtureLikelihood.evaluate` (no fixed point is solved)."""
        return self._evaluate(np.asarray(x, dtype=float), need_derivatives)


class MixtureCCP:
    """CCP-EM (``CCP(mix)``) and its NPL version (``NPL(mix)``) for a :class:`ddc.Mixture`.

    Parameters
    ----------
    mix : ddc.Mixture
        The mixture (a model with a :class:`ddc.LinearUtility`).
    first_stage : {"frequency"}
        Pooled first-stage CCPs (smoothed frequencies) that seed every type's CCPs.
    smoothing : float
        :math:`\\alpha` of the (weighted) frequency estimator.
    solver : ddc.Solver, optional
        Linear solver choice, and the fixed-point solver of the NPL standard errors.
    method : {"CCP", "NPL"}
        ``"CCP"``: CCPs updated from the weighted data; ``"NPL"``: from the model.
    two_stage : bool
        Arcidiacono and Miller's two-stage variant (``method="CCP"`` only).
    tol : float
        Stop when the parameters, the shares (and, for NPL, the CCPs) change by less than
        ``tol`` (max abs) in an iteration.
    max_iter : int
        Most iterations.
    n_starts, seed
        Starting values, as for :class:`~estimators.mixture.MixtureNFXP`.
    drop_first : bool, optional
        As in :class:`~estimators.NFXP`.
    on_failure : {"warn", "raise"}
        What non-convergence does.
    transitions : {"estimate", "known"} or TransitionOptions
        The first stage of the transitions, as for :class:`~estimators.CCP`: estimated from the
        data (default; every type's CCP representation uses the estimated transitions) or
        declared known.

    Notes
    -----
    Covariances (:mod:`estimators.mixture.ccp_inference`): ``CCP(mix)`` defaults to
    ``"stacked"``, the sandwich :math:`J^{-1}\\Omega J^{-T}` of CCP-EM's per-unit estimating
    equations (pseudo-score, type CCPs as posterior-weighted frequencies, share equations), and
    ``CCP(mix, two_stage=True)`` to ``"two_step"``, the same construction for stage 1's
    latent-class EM and stage 2's pseudo-score, which is Newey and McFadden's (1994) two-step
    formula; both account for the estimated CCPs, shares and posteriors, not for the first-stage
    transitions. ``"hessian"``, ``"opg"``, ``"sandwich"`` and ``"cluster"`` hold the final CCPs
    and posteriors fixed. The correction costs :math:`O(d^3)` time and :math:`O(d^2 + S A F)`
    memory for :math:`F` free CCPs per type and :math:`d = P + n_w + K F` (:math:`n_w` share
    parameters; milliseconds for the built-in designs); above about 1 GB it is skipped with a
    warning and the default falls back to ``"hessian"``. ``NPL(mix)`` reports maximum likelihood
    standard errors.
    """

    def __init__(self, mix: Mixture, first_stage: str = "frequency", smoothing: float = 0.5,
                 solver: Solver | None = None, *, method: str = "CCP", two_stage: bool = False,
                 tol: float = 1e-7, max_iter: int = 2000, n_starts: int = 3, seed: int = 0,
                 drop_first: bool | None = None, on_failure: str = "warn", transitions=None):
        if not isinstance(mix, Mixture):
            raise TypeError(f"MixtureCCP needs a ddc.Mixture, got {type(mix).__name__}")
        if method not in ("CCP", "NPL"):
            raise ValueError(f"method must be 'CCP' or 'NPL', got {method!r}")
        if first_stage != "frequency":
            raise ValueError(f"{method}(mix) seeds the types' CCPs with smoothed frequencies; "
                             f"first_stage={first_stage!r} is not available for mixtures")
        if not isinstance(mix.model.utility, LinearUtility):
            raise TypeError(f"{method}(mix) needs a utility linear in parameters "
                            "(LinearUtility); use NFXP(mix) for a CallableUtility")
        if mix.transitions_by_type:
            raise TypeError(f"{method}(mix) does not estimate type-specific transitions "
                            f"({mix.transitions_by_type}); NFXP(mix) does (EM with the tables' "
                            "closed-form M-step)")
        if two_stage and method != "CCP":
            raise ValueError("two_stage=True is the two-stage CCP variant; NPL iterates the "
                             "CCPs on the model instead")
        if not smoothing > 0:
            raise ValueError(f"smoothing must be positive, got {smoothing!r}")
        if on_failure not in ("warn", "raise"):
            raise ValueError(f"on_failure must be 'warn' or 'raise', got {on_failure!r}")
        for label, value in (("n_starts", n_starts), ("max_iter", max_iter)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.mix = self.model = mix
        self.name = method
        self.first_stage, self.smoothing = first_stage, smoothing
        self.solver = solver or Solver()
        self.two_stage = bool(two_stage)
        self.tol, self.max_iter = tol, int(max_iter)
        self.n_starts, self.seed = int(n_starts), seed
        self.drop_first, self.on_failure = drop_first, on_failure
        self.transitions = TransitionOptions.of(transitions)

    def __repr__(self) -> str:
        variant = ", two_stage=True" if self.two_stage else ""
        return f"{self.name}({self.mix!r}{variant})"

    def fit(self, data, start=None, *, id_col: str | None = None, time_col: str | None = None,
            action_col: str | None = None, columns=None):
        """Estimate on a long panel; returns :class:`~estimators.mixture.MixtureResults`.

        Parameters
        ----------
        data : pandas.DataFrame or ddc.panel.Panel
            The panel.
        start : pandas.Series or mapping, optional
            One starting point over ``mix.param_names`` instead of the default starts.
        id_col, time_col, action_col : str, optional
            Column names of the unit id, the period and the action (default: the model's
            layout).
        columns : ddc.panel.Columns or mapping, optional
            The column mapping, as for the one-type estimators' ``fit``; also maps a share
            covariate to the column holding it (``{"channel": "signup_channel"}``).
        """
        data = mapped_data(self.mix, data, self.drop_first, id_col=id_col, time_col=time_col,
                           action_col=action_col, columns=columns)
        with small_blas(self.mix.model.n_states, self.solver):
            return self._fit(data, start)

    # ------------------------------------------------------------------ pieces
    def _logit_newton(self, pl, Z, e, Nk, theta_full, maps, Pu, max_steps=50):
        """Newton's method on :math:`\\sum_k \\langle N_k, \\log\\Lambda_k(\\theta)\\rangle`
        over the estimated structural parameters (concave)."""
        mix = self.mix
        K = mix.n_types
        feas = mix.model.feasible
        x = theta_full.copy()

        def value_grad_hess(theta):
            total, g, H = 0.0, np.zeros(len(theta)), np.zeros((len(theta), len(theta)))
            for k in range(K):
                tk = theta @ maps[k]  # type k's utility parameters
                v = np.where(feas, Z[k] @ tk + e[k], -np.inf)
                lp = v - logsumexp(v, axis=1, keepdims=True)
                lam = np.exp(lp)
                mask = Nk[k] > 0
                total += float(np.sum(Nk[k][mask] * lp[mask]))
                zbar = np.einsum("sa,sak->sk", lam, Z[k])
                D = np.where(feas[:, :, None], Z[k] - zbar[:, None, :], 0.0)
                gk = np.einsum("sa,sak->k", Nk[k], D)
                Hk = -np.einsum("s,sa,sak,sal->kl", Nk[k].sum(axis=1), lam, D, D)
                g += maps[k] @ gk
                H += maps[k] @ Hk @ maps[k].T
            return total, g, H

        f, g, H = value_grad_hess(x)
        for it in range(1, max_steps + 1):  # noqa: B007
            step = np.linalg.lstsq(-H, g, rcond=None)[0]
            dec = float(g @ step)
            if dec < 1e-12:
                break
            lam = 1.0
            while lam > 1e-10:
                fn, gn, Hn = value_grad_hess(x + lam * step)
                if fn >= f - 1e-12 * max(1.0, abs(f)):
                    break
                lam *= 0.5
            x, f, g, H = x + lam * step, fn, gn, Hn
        return x

    def _fit(self, data, start):
        t0 = time.perf_counter()
        K = self.mix.n_types
        cd, ts, base = setup(self.mix.model, data, self.drop_first, f"{self.name}(mixture)",
                             None, needs_rows=True, transitions=self.transitions)
        # every type solved with the first stage's transitions (the estimated tables)
        mix = self.mix if ts.model is self.mix.model else \
            self.mix.with_transitions(ts.model.transitions())
        model = mix.model
        uc = unit_counts(mix, cd)
        pl = PseudoLikelihood(model, base, self.solver)
        p_pool = frequency_ccps(model, cd.counts, self.smoothing)
        Z0, e0 = pl.linearize(p_pool)
        Pu = len(model.utility_params)
        one, ll1, *_ = pl.maximize(Z0, e0, cd.counts, np.zeros(Pu))
        theta1 = base.copy()
        theta1[model.utility_params] = one
        full = one_type_start(mix, theta1.to_numpy())
        ml = MixtureLikelihood(mix, uc, full, self.solver)  # names, maps and vectors
        if start is not None:
            vec = mix.params_series(start).to_numpy().copy()
            trans = [mix.param_names.index(n) for n in model.transition_params.index]
            vec[trans] = full[trans]
            starts = [ml.internal(vec)]
        elif K == 1:
            starts = [ml.internal(full)]
        else:
            starts = split_starts(mix, theta1, full, self.n_starts, self.seed, ml.internal)
        runs = [self._run(pl, ml, x0, p_pool, cd) for x0 in starts]
        best = max(runs, key=lambda r: r["objective"])
        notes: list[str] = []
        others = [r["objective"] for r in runs if r is not best
                  and best["objective"] - r["objective"] > 1e-3]
        if others:
            notes.append(f"{len(others)} of {len(runs)} starts ended at a lower objective "
                         f"({', '.join(f'{v:.3f}' for v in others)}; best "
                         f"{best['objective']:.3f})")
        x, p = best["x"], best["p"]
        # relabel: order_types permutes parameters and shares; permute the CCPs alike
        y = order_types(mix, ml, x)
        if K > 1:
            vals = [x[ml.struct.index(f"{mix.by_type[0]}[{k}]")] for k in range(K)]
            p = [p[j] for j in np.argsort(vals, kind="stable")]
        x = y
        extra = {"first_stage": "frequency", "smoothing": self.smoothing,
                 "ccp_update": "model" if self.name == "NPL" else "data",
                 "two_stage": self.two_stage, "one_type_loglik": float(ll1) + ts.loglik,
                 "starts": [{k: v for k, v in r.items() if k not in ("x", "p")} for r in runs],
                 "type_ccps": p}
        iterations = int(sum(r["iterations"] for r in runs))
        message = best["message"]
        if self.name == "NPL":
            lik = MixtureLikelihood(mix, uc, full, self.solver)
            return mixture_results(
                "NPL", self.mix, lik, x, cd, ts, notes=notes, converged=best["converged"],
                message=message, on_failure=self.on_failure, iterations=iterations,
                seconds=time.perf_counter() - t0, extra=extra,
                cov_note="standard errors of maximum likelihood (the mixture likelihood's "
                         "Hessian at the NPL fixed point, where NPL equals the MLE)")
        Z, e = zip(*(pl.linearize(pk) for pk in p), strict=True)
        pml = PseudoMixtureLikelihood(mix, uc, full, self.solver, list(Z), list(e))
        kind = "two_step" if self.two_stage else "stacked"
        covs, cov_notes, fs_done = self._corrected_cov(ml, pl, x, p, kind, extra, ts, cd.panel)
        held = ("the kinds 'hessian', 'opg', 'sandwich' and 'cluster' are those of the mixture "
                "pseudo-likelihood at the final type CCPs and posteriors (and transitions) held "
                "fixed: they ignore the estimation of the CCPs and may understate the "
                "uncertainty")
        return mixture_results(
            "CCP", self.mix, pml, x, cd, ts, notes=notes + cov_notes,
            converged=best["converged"], message=message, on_failure=self.on_failure,
            iterations=iterations, seconds=time.perf_counter() - t0, extra=extra,
            loglik_label="choice (pseudo)", cov_note=held, extra_covs=covs or None,
            cov_type=kind if covs else "hessian", transitions_corrected=fs_done)

    def _corrected_cov(self, ml: MixtureLikelihood, pl: PseudoLikelihood, x: np.ndarray,
                       p: list, kind: str, extra: dict, ts, panel
                       ) -> tuple[dict, list[str], bool]:
        """The covariance of :mod:`estimators.mixture.ccp_inference` (``{kind: V}``), its
        notes and whether it accounts for the transitions' first stage; empty with a warning
        when it would need more than :data:`~estimators.mixture.ccp_inference.MAX_BYTES` of
        memory."""
        sm = StackedMoments(ml, pl, x, p, self.smoothing,
                            "latent_class" if self.two_stage else "structural")
        if sm.cost_bytes > MAX_BYTES:
            msg = (f"corrected standard errors not computed: the stacked estimating equations "
                   f"have {sm.d} parameters ({sm.F} free CCPs per type) and would need about "
                   f"{sm.cost_bytes / 1e9:.1f} GB (dense Jacobian, value derivatives per CCP); "
                   "the default covariance holds the CCPs fixed. NFXP(mix) or NPL(mix) give "
                   "maximum likelihood standard errors")
            warnings.warn(msg, stacklevel=4)
            return {}, [msg], False
        t0 = time.process_time()
        fs = transition_correction(sm, ts, panel)
        V = sm.covariance(first_stage=fs if isinstance(fs, TransitionCorrection) else None)
        extra["se_seconds"] = time.process_time() - t0
        what = ("CCP-EM's fixed point (pseudo-score, type CCPs as posterior-weighted "
                "frequencies, share equations)" if kind == "stacked" else
                "stage 1's latent-class EM (shares, type CCPs) and stage 2's pseudo-score")
        if isinstance(fs, TransitionCorrection):
            trans = (f"; and for the first stage's {fs.what} (Murphy-Topel: each unit's "
                     "equations plus their derivative times the first stage's influence)")
        else:
            trans = "" if fs is None else f"; {fs}"
        note = (f"covariance {kind!r} accounts for the estimated type CCPs, shares and "
                f"posteriors: J^-1 Omega J^-T by unit over the {sm.d} stacked parameters of "
                f"{what}{trans}")
        return {kind: V}, [note], isinstance(fs, TransitionCorrection)

    def _posteriors(self, lp: list[np.ndarray], w: np.ndarray, B) -> tuple[np.ndarray, float]:
        lik = np.column_stack([B @ np.where(np.isfinite(x), x, 0.0).ravel() for x in lp])
        with np.errstate(divide="ignore"):
            M = lik + np.log(w)
        Li = logsumexp(M, axis=1)
        return np.exp(M - Li[:, None]), float(Li.sum())

    def _run(self, pl: PseudoLikelihood, ml: MixtureLikelihood, x: np.ndarray,
             p_pool: np.ndarray, cd) -> dict:
        """One start through CCP-EM (or the two-stage variant)."""
        mix = self.mix
        model = mix.model
        K = mix.n_types
        P = len(ml.struct)
        Pu = len(model.utility_params)
        B = ml.counts.matrix
        feas = model.feasible
        maps = [m.T for m in ml.maps]  # (P, Pu): type k's parameters from theta
        p = [p_pool.copy() for _ in range(K)]
        theta = x[:P].copy()
        g = x[P:].copy()  # the shares' logit parameters
        w = ml.unit_weights(x)  # (K,), or (N, K) when the shares vary over units

        def fit_shares(q):  # the shares' M-step, NFXP(mix)'s
            g_new = ml.fit_shares(q, np.concatenate([theta, g]))
            return g_new, ml.unit_weights(np.concatenate([theta, g_new]))

        def log_lambda(Zk, ek, tk):
            v = np.where(feas, Zk @ tk + ek, -np.inf)
            return v - logsumexp(v, axis=1, keepdims=True)

        lin = [pl.linearize(pk) for pk in p]
        lp = [log_lambda(*lin[k], theta @ maps[k]) for k in range(K)]
        converged, message, it = False, f"reached max_iter={self.max_iter}", 0
        objective = -np.inf
        if self.two_stage:
            # stage 1: EM on the latent-class model (penalized by the smoothing), from the
            # posteriors at the start; it stops when the share parameters and the CCPs stop
            # changing, at the fixed point of (shares, p) -> M-step(q(p, shares))
            q, _ = self._posteriors(lp, w, B)
            g, w = fit_shares(q)
            p = [frequency_ccps(model, Nk, self.smoothing) for Nk in ml.weighted_counts(q)]
            for it in range(1, self.max_iter + 1):  # noqa: B007
                with np.errstate(divide="ignore"):
                    lp = [np.log(pk) for pk in p]
                q, _ = self._posteriors(lp, w, B)
                g_new, w_new = fit_shares(q)
                p_new = [frequency_ccps(model, Nk, self.smoothing)
                         for Nk in ml.weighted_counts(q)]
                change = max(float(np.max(np.abs(g_new - g), initial=0.0)),
                             max(float(np.max(np.abs(a - b))) for a, b in
                                 zip(p_new, p, strict=True)))
                g, w, p = g_new, w_new, p_new
                if change < self.tol:
                    converged = True
                    message = (f"stage 1: share parameters and CCPs changed by {change:.2e} "
                               f"< tol in EM iteration {it}")
                    break
            with np.errstate(divide="ignore"):
                q, _ = self._posteriors([np.log(pk) for pk in p], w, B)
            Nk = ml.weighted_counts(q)  # stage 2 at the stage-1 posteriors
            lin = [pl.linearize(pk) for pk in p]
            Z, e = [z for z, _ in lin], [v for _, v in lin]
            theta = self._logit_newton(pl, Z, e, Nk, theta, maps, Pu)
            lp = [log_lambda(Z[k], e[k], theta @ maps[k]) for k in range(K)]
            _, objective = self._posteriors(lp, w, B)
        else:
            for it in range(1, self.max_iter + 1):  # noqa: B007
                q, objective = self._posteriors(lp, w, B)  # step 1
                g_new, w_new = fit_shares(q)  # step 2
                Nk = ml.weighted_counts(q)
                if self.name == "NPL":  # step 3, from the model
                    p_new = [np.exp(lp[k]) for k in range(K)]
                else:  # step 3, from the weighted data
                    p_new = [frequency_ccps(model, Nk[k], self.smoothing) for k in range(K)]
                lin = [pl.linearize(pk) for pk in p_new]
                Z, e = [z for z, _ in lin], [v for _, v in lin]
                theta_new = self._logit_newton(pl, Z, e, Nk, theta, maps, Pu)  # step 4
                change = max(float(np.max(np.abs(theta_new - theta))),
                             float(np.max(np.abs(w_new - w))),
                             max(float(np.max(np.abs(a - b))) for a, b in
                                 zip(p_new, p, strict=True)) if self.name == "NPL" else 0.0)
                theta, g, w, p = theta_new, g_new, w_new, p_new
                lp = [log_lambda(Z[k], e[k], theta @ maps[k]) for k in range(K)]
                if change < self.tol:
                    converged = True
                    message = f"parameters changed by {change:.2e} < tol in iteration {it}"
                    break
            _, objective = self._posteriors(lp, w, B)
        if not converged and self.on_failure == "warn":
            warnings.warn(f"{self.name}(mixture) start did not converge: {message}",
                          ConvergenceWarning, stacklevel=4)
        x_out = np.concatenate([theta, g])
        return {"x": x_out, "p": p, "objective": objective, "iterations": it,
                "converged": converged, "message": message}

