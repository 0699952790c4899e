"""Anchor-action inverse reinforcement learning: PQR (Geng, Nassif, Manzanares, Reppen and Sircar,
"Deep PQR: Solving Inverse Reinforcement Learning using Anchor Actions", ICML 2020).

With logit shocks the choice probabilities pin down every choice-specific value once the reward
of one *anchor* action :math:`a_0` is fixed in every state. PQR recovers the rewards from the
policy in three linear steps and then, here, projects them onto the model's parameters.

Conventions. Values are "Euler-free": :math:`V(s) = \\log\\sum_a e^{Q(s,a)}`,
:math:`Q(s,a) = r(s,a) + \\beta E[V(s') \\mid s, a]`, :math:`\\pi(a \\mid s) = e^{Q(s,a) - V(s)}`.
(The ex-ante value of :class:`ddc.Solution` is :math:`\\bar V = V + \\gamma / (1 - \\beta)`; the
constant cancels from every reward below.) Write :math:`\\ell(s,a) = \\log\\pi(a \\mid s)`.

**P-step.** :math:`\\hat\\pi` from the panel: smoothed cell frequencies
(:func:`estimators.policy.frequency_ccps`) or a flexible multinomial logit in state dummies
(:func:`flexible_logit`).

**Q-step.** Under the normalization :math:`r(s, a_0) = 0`, :math:`Q(s, a_0) = \\beta E[V(s')
\\mid s, a_0]` and :math:`V = Q(\\cdot, a_0) - \\ell(\\cdot, a_0)`, so :math:`W = Q(\\cdot, a_0)`
solves the linear fixed point

.. math:: (I - \\beta P_{a_0}) W = -\\beta P_{a_0} \\ell(\\cdot, a_0),

and then :math:`Q(s,a) = W(s) + \\ell(s,a) - \\ell(s,a_0)`, :math:`V = W - \\ell(\\cdot, a_0)`.
With ``q_step="features"`` :math:`W \\approx \\Phi w` is found by least-squares fitted evaluation
(LSTD: :math:`\\Phi' D (\\Phi - \\beta P_{a_0}\\Phi) w = \\Phi' D (-\\beta P_{a_0} \\ell_{a_0})`)
and never needs an :math:`S \\times S` object.

**R-step.** :math:`r(s,a) = Q(s,a) - \\beta E[V(s') \\mid s, a]`, for every state with the anchor
and every feasible action.

**Multi-period options.** Let :math:`L` be the states where the anchor is infeasible; each must
have a single feasible action (the membership model's locked annual months). An action that
leads into :math:`L` is an option that runs until the chain leaves :math:`L` at the (random) time
:math:`\\tau`; the data identify only its bundled reward

.. math::

    \\tilde r(s,a) = Q(s,a) - E[\\beta^\\tau V(s_\\tau) \\mid s, a]
                   = r(s,a) + \\sum_{k \\ge 1} \\beta^k E[r(s_k) 1\\{s_1, \\dots, s_k \\in L\\}],

computed with :math:`Z = (I - \\beta P_L)^{-1} b` (:math:`P_L` the transitions of the single
feasible action out of :math:`L`, :math:`b = V` outside :math:`L`, 0 in it):
:math:`\\tilde r(s,a) = Q(s,a) - \\beta E[Z(s') \\mid s,a]`. Without locked successors
:math:`\\tilde r = r`. Nothing here is specific to the membership model.

**Normalization of a model whose anchor utility is not zero.** The choice probabilities of
utilities :math:`u` are those of :math:`u'(s,a) = u(s,a) + \\phi(s) - \\beta E[\\phi(s') \\mid
s,a]` for any :math:`\\phi` (potential-based shaping: :math:`V' = V + \\phi`). PQR recovers the
:math:`u'` with :math:`u'(s,a_0) = 0`, i.e. :math:`\\phi = -(I - \\beta P_{a_0})^{-1} u(\\cdot,
a_0)` (0 on :math:`L`). For a linear utility :math:`u = X\\theta` this :math:`u'` is linear too,
with the anchor-normalized features :math:`X' = X + \\Phi - \\beta P \\Phi`,
:math:`\\Phi = -(I - \\beta P_{a_0})^{-1} X(\\cdot, a_0)`; bundling them as above gives
:math:`\\tilde X` (:func:`anchor_features`) with :math:`\\tilde r = \\tilde X \\theta` exactly at
the true policy. When :math:`X(\\cdot, a_0)` does not vary with the state (Rust's bus: the anchor
``replace`` costs :math:`-RC` everywhere) :math:`\\tilde X(s,a) = X(s,a) - X(s,a_0)`: PQR's
rewards are the differences :math:`u(s,a) - u(s,a_0)`. In general they are not.

**Projection.** :math:`\\hat\\theta` is the weighted least-squares fit of :math:`\\tilde r` on
:math:`\\tilde X` over the observed choice cells :math:`(s, a \\ne a_0)`, by default with the
inverse of the local variance of the log-odds, :math:`w(s,a) = N(s) / (1/\\hat\\pi(a \\mid s) +
1/\\hat\\pi(a_0 \\mid s))`, so that cells where either action is rarely chosen count little.
That is two-step PQR (``fixed_point=False``). By default the estimate goes on to the fixed point
on the model's own policy, :math:`\\tilde X'\\Omega_\\theta D(\\hat\\ell - \\ell_\\theta)
= 0` (continuation values and weights at :math:`\\pi_\\theta`, the data only in each cell's
current log-odds), which removes two-step PQR's small-sample bias
(:mod:`estimators.pqr_smallsample`).

**Inference.** :math:`\\tilde r` is linear in :math:`\\ell`, so :math:`\\hat\\theta = G \\hat\\ell`
with :math:`G = (\\tilde X' \\Omega \\tilde X)^{-1} \\tilde X' \\Omega R` (two-step; at the
fixed point :math:`G = J^{-1}\\tilde X'\\Omega D`); :math:`G` is computed
with the adjoint of :math:`R` (transposed solves, :math:`K` right-hand sides) and the delta method
uses the multinomial covariance of the frequencies (or the logit's information): covariance kind
``"delta"`` (default). ``"cluster"`` sums the same per-row influence functions by unit; a seeded
bootstrap over units (``bootstrap=B``) adds ``"bootstrap"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.solver import Solver
from ddc.utility import LinearUtility
from estimators.base import Estimator, Fit, Inference, Prepared, register
from estimators.data import ChoiceData
from estimators.identification import IdentificationError
from estimators.likelihood import ChoiceLikelihood
from estimators.policy import (
    LogitPolicy,
    _independent_columns,
    flexible_logit,
    frequency_ccps,
    state_design,
)
from estimators.pqr_rewards import (
    AnchorStructure,
    RewardMap,
    _state_text,
    anchor_features,
    anchor_rewards,
    anchor_structure,
)
from estimators.pqr_smallsample import (
    FixedPoint,
    fixed_point_coefficients,
    solve_fixed_point,
    thin_cells,
)

__all__ = ["PQR", "AnchorStructure", "LogitPolicy", "RewardMap", "anchor_features",
           "anchor_rewards", "anchor_structure", "flexible_logit", "state_design"]

#: Standard errors of the R-step's rewards are computed for at most this many choice cells.
MAX_SE_CELLS = 5000

#: The summary notes the thin cells when they carry at least this share of a parameter's
#: delta-method variance.
THIN_VARIANCE_SHARE = 0.10


# ------------------------------------------------------------------------------ the estimator
POLICIES = {"frequency": "smoothed cell frequencies", "logit": "a flexible multinomial logit"}
Q_STEPS = {"table": "exact linear fixed point", "features": "LSTD on state features"}
WEIGHTS = {"inverse_variance": "N(s) / (1/p(a|s) + 1/p(a0|s))", "visits": "N(s)"}


@register
class PQR(Estimator):
    """Anchor-action IRL (PQR) with a projection of the recovered rewards onto the parameters.

    Parameters
    ----------
    model : ddc.Model
        Model with a linear utility and an anchor action.
    policy : {"frequency", "logit"}
        P-step: smoothed cell frequencies, or a flexible multinomial logit in state dummies
        (:func:`flexible_logit`, interactions up to ``order``).
    q_step : {"table", "features"}
        Q-step: the anchor's exact linear fixed point, or LSTD on the state design of order
        ``order`` (:func:`state_design`) with the observed visits as state weights: the variant
        for large state spaces (no :math:`S \\times S` object).
    smoothing : float
        :math:`\\alpha` of the frequency estimator.
    order : int
        Interaction order of the logit policy's and the LSTD basis's state dummies.
    weights : {"inverse_variance", "visits"}
        Weights of the projection: the inverse local variance of the log-odds
        :math:`N(s) / (1/\\hat\\pi(a|s) + 1/\\hat\\pi(a_0|s))`, or the visits :math:`N(s)`.
    bootstrap : int
        If positive, also a bootstrap covariance (``"bootstrap"``) from this many resamples of
        units (customers, buses), with the transitions held at the full-sample estimates.
    seed : int
        Seed of the bootstrap.
    anchor : str, optional
        The anchor action (``model.anchor`` by default).
    support_threshold : float
        A note is added when observed choice states choose the anchor less often than this.
    fixed_point : bool
        ``True`` (default): iterate the P-step's continuation policy and the projection weights
        on the policy implied by the estimate, to the fixed point :math:`\\tilde X'
        \\Omega_\\theta D(\\hat\\ell - \\ell_\\theta) = 0` (:mod:`estimators.pqr_smallsample`),
        which removes most of two-step PQR's small-sample bias. ``False``: two-step PQR as in
        Geng et al. (2020), rewards and weights from the first stage alone.
    tol, max_iter : float, int
        Convergence tolerance (relative step) and Newton steps of the fixed point.
    thin_count : int
        The thin-cell diagnostic counts observed choice states where some feasible action (the
        anchor included) is chosen fewer than this many times (``extra["thin_cells"]``; a note
        when they carry 10% or more of a parameter's variance).
    solver : ddc.Solver, optional
        Linear solvers; also solves the model at the estimate (for its log-likelihood).
    drop_first : bool, optional
        As in :class:`estimators.NFXP`.
    transitions : {"estimate", "known"} or TransitionOptions
        First stage of the transitions (:mod:`estimators.first_stage`): estimated from the data
        by default, or declared known.

    Notes
    -----
    The results carry, in ``extra``: ``"rewards"`` (the R-step's :math:`\\tilde r`, states x
    actions), ``"rewards_fitted"`` (:math:`\\tilde X\\hat\\theta`), ``"reward_weights"``,
    ``"rewards_se"`` (delta-method standard errors of ``"rewards"`` on the projection's cells),
    ``"anchor_support"`` (share of anchor choices per state, NaN where unobserved or the anchor
    is infeasible), ``"ccp_first_stage"``, ``"features"`` (:math:`\\tilde X`) and
    ``"influence"`` (per-cell influence functions of the estimate), ``"thin_cells"`` (per
    parameter: thin observed choice states and their share of the variance,
    :func:`estimators.pqr_smallsample.thin_cells`) and ``"fixed_point"`` (whether the estimate
    is the fixed point, and its Newton steps).

    Small samples: two-step PQR (``fixed_point=False``) is biased when many cells are thin
    (theta_annual +0.14, 4.0 Monte Carlo standard errors, and its 95% interval covering 83%, at
    3,000 customers x 24 months of the membership model); the fixed point's biases there are
    within 1.1 Monte Carlo standard errors and its intervals cover 90-98% (docs/irl.rst, "PQR in
    small samples").

    Examples
    --------
    >>> import ddc
    >>> from simulations import simulate
    >>> model = ddc.models.membership()
    >>> panel = simulate(model, model.true_params, n_customers=2_000, n_periods=24, seed=0)
    >>> res = PQR(model).fit(panel)
    >>> res.cov_type
    'delta'
    """

    name = "PQR"
    key = "pqr"
    needs_rows = False
    first_stage_correction = "reestimate"

    def __init__(self, model: Model, policy: str = "frequency", q_step: str = "table",
                 smoothing: float = 0.5, order: int = 2, weights: str = "inverse_variance",
                 bootstrap: int = 0, seed: int = 0, anchor: str | None = None,
                 support_threshold: float = 0.02, fixed_point: bool = True,
                 tol: float = 1e-10, max_iter: int = 50, thin_count: int = 10,
                 solver: Solver | None = None, drop_first: bool | None = None,
                 on_failure: str = "warn", transitions=None):
        super().__init__(model, solver, drop_first, on_failure, transitions)
        if not isinstance(model.utility, LinearUtility):
            raise TypeError("PQR projects rewards onto a utility linear in parameters "
                            "(LinearUtility); use NFXP for a CallableUtility")
        for value, table, what in ((policy, POLICIES, "policy"), (q_step, Q_STEPS, "q_step"),
                                   (weights, WEIGHTS, "weights")):
            if value not in table:
                raise ValueError(f"unknown {what} {value!r}; choose one of: "
                                 + "; ".join(f"{k!r} ({v})" for k, v in table.items()))
        if not smoothing > 0:
            raise ValueError(f"smoothing must be positive, got {smoothing!r}")
        if not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0 or bootstrap == 1:
            raise ValueError(f"bootstrap must be 0 (none) or a number of resamples >= 2, got "
                             f"{bootstrap!r}")
        if not 0 <= support_threshold < 1:
            raise ValueError(f"support_threshold must be in [0, 1), got {support_threshold!r}")
        if not isinstance(fixed_point, (bool, np.bool_)):
            raise TypeError(f"fixed_point must be True (the fixed point on the model's policy) "
                            f"or False (two-step PQR), got {fixed_point!r}")
        if not (isinstance(tol, (float, int)) and tol > 0):
            raise ValueError(f"tol must be a positive number, got {tol!r}")
        for value, what in ((max_iter, "max_iter"), (thin_count, "thin_count")):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{what} must be a positive integer, got {value!r}")
        self.fixed_point, self.tol, self.max_iter = bool(fixed_point), float(tol), int(max_iter)
        self.thin_count = int(thin_count)
        self.model = model
        self.policy, self.q_step, self.weights = policy, q_step, weights
        self.smoothing, self.order = smoothing, order
        self.bootstrap, self.seed = int(bootstrap), seed
        self.anchor = anchor
        self.support_threshold = support_threshold
        self.structure = anchor_structure(model, anchor)

    def __repr__(self) -> str:
        return (f"PQR({self.model.name}, anchor={self.model.actions[self.structure.anchor]!r}, "
                f"policy={self.policy!r}, q_step={self.q_step!r}, "
                f"fixed_point={self.fixed_point})")

    # ------------------------------------------------------------------ steps
    def _policy(self, counts: np.ndarray):
        """P-step: (pi, log pi, logit or None)."""
        model = self.model
        if self.policy == "frequency":
            pi, logit = frequency_ccps(model, counts, self.smoothing), None
        else:
            logit = flexible_logit(model, counts, self.order, ref=self.structure.anchor)
            pi = logit.pi
        with np.errstate(divide="ignore"):
            ell = np.where(model.feasible, np.log(np.where(model.feasible, pi, 1.0)), 0.0)
        return pi, ell, logit

    def _cell_weights(self, counts: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """Projection weights at the policy ``pi`` (the first stage's, or the model's at the
        fixed point) on the observed choice cells, zero elsewhere."""
        st = self.structure
        N = counts.sum(axis=1)
        cells = self._cells(counts)
        if self.weights == "visits":
            w = np.broadcast_to(N[:, None], pi.shape).astype(float)
        else:
            p0 = pi[:, st.anchor][:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                w = N[:, None] * pi * p0 / (pi + p0)
        return np.where(cells, w, 0.0)

    def _weights_and_derivative(self, counts: np.ndarray, pi: np.ndarray,
                                dlogpi: np.ndarray | None):
        """:meth:`_cell_weights` at ``pi`` and, given :math:`\\partial\\log\\pi/\\partial
        \\theta` (S, A, K), their derivative: with :math:`h = p q / (p + q)` (:math:`p =
        \\pi(a|s)`, :math:`q = \\pi(a_0|s)`), :math:`dh = h (q\\, d\\log p + p\\, d\\log q)
        / (p + q)`."""
        w = self._cell_weights(counts, pi)
        if dlogpi is None:
            return w, None
        if self.weights == "visits":
            return w, np.zeros_like(dlogpi)
        a0 = self.structure.anchor
        p, q = pi, pi[:, [a0]]
        cells = w > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(cells, w / (p + q), 0.0)
        dw = factor[:, :, None] * (q[:, :, None] * dlogpi + p[:, :, None] * dlogpi[:, [a0], :])
        return w, dw

    def _cells(self, counts: np.ndarray) -> np.ndarray:
        st = self.structure
        obs = st.choice & st.multi & (counts.sum(axis=1) > 0)
        cells = self.model.feasible & obs[:, None]
        cells[:, st.anchor] = False
        return cells

    def _project(self, r: np.ndarray, Xt: np.ndarray, w: np.ndarray):
        cells = w > 0
        Xc, rc, wc = Xt[cells], r[cells], w[cells]
        A = Xc * np.sqrt(wc)[:, None]
        scale = np.abs(A).max(axis=0)
        names = self.model.utility_params
        zero = np.flatnonzero(scale == 0)
        if zero.size:
            raise IdentificationError(
                f"parameter(s) {[names[k] for k in zero]} do not move any anchor-normalized "
                "reward in the observed choice cells; PQR cannot identify them")
        sv = np.linalg.svd(A / scale, compute_uv=False)
        if sv[-1] < 1e-10 * sv[0]:
            _, _, vt = np.linalg.svd(A / scale)
            null = vt[-1] / scale
            null = null / np.abs(null).max()
            who = [f"{names[k]} ({null[k]:+.3g})" for k in np.flatnonzero(np.abs(null) > 1e-6)]
            raise IdentificationError(
                "the anchor-normalized features are collinear over the observed choice cells, "
                f"so PQR cannot separate {', '.join(who)}")
        XtWX = Xc.T @ (wc[:, None] * Xc)
        theta = np.linalg.solve(XtWX, Xc.T @ (wc * rc))
        return theta, XtWX

    def _estimate_rewards(self, counts, rmap, Xt):
        """Two-step PQR: P-, Q-, R-steps and the projection."""
        pi, ell, logit = self._policy(counts)
        r = rmap(ell)
        w = self._cell_weights(counts, pi)
        theta, XtWX = self._project(r, Xt, w)
        return theta, XtWX, pi, ell, logit, r, w

    def _fixed_point(self, counts, ell, Xt, theta, lik: ChoiceLikelihood, params: pd.Series
                     ) -> FixedPoint:
        """The fixed point on the model's policy, from the two-step ``theta``."""
        util = self.model.utility_params
        base = params.copy()

        def solve(th):
            base[util] = th
            return lik.solve(base.copy())

        return solve_fixed_point(solve, lambda pi, dl: self._weights_and_derivative(
            counts, pi, dl), ell, Xt, self._cells(counts), self.structure.anchor, theta,
            self.tol, self.max_iter)

    def _theta(self, counts, rmap, Xt, params):
        """The estimate on counts: two-step, then the fixed point when asked for."""
        theta, XtWX, pi, ell, logit, r, w = self._estimate_rewards(counts, rmap, Xt)
        fp = None
        if self.fixed_point:
            fp = self._fixed_point(counts, ell, Xt, theta,
                                   ChoiceLikelihood(rmap.model, counts, self.solver), params)
            theta = fp.theta
        return theta, XtWX, pi, ell, logit, r, w, fp

    # ------------------------------------------------------------------ inference
    def _influence(self, G, counts, pi, logit):
        """Per-cell influence :math:`\\Psi(s, a)` on :math:`\\hat\\theta` of one more observation
        of ``a`` in ``s`` (S, A, K), mean zero under :math:`\\hat\\pi`."""
        feas = self.model.feasible
        if logit is None:
            N = counts.sum(axis=1)
            nf = feas.sum(axis=1)
            denom = N + self.smoothing * nf
            with np.errstate(divide="ignore", invalid="ignore"):
                Psi = (np.where(feas[:, :, None], G / pi[:, :, None], 0.0)
                       - G.sum(axis=1)[:, None, :]) / denom[:, None, None]
            return np.where(feas[:, :, None] & (N > 0)[:, None, None], Psi, 0.0)
        X, free, p = logit.design, logit.free, logit.pi
        F, C = X.shape[1], free.size
        # d theta / d coef[f, c] = sum_s x_sf (G(s, c) - p(c|s) sum_a G(s, a))
        Hs = G - p[:, :, None] * G.sum(axis=1)[:, None, :]
        g = np.einsum("sf,sck->kfc", X, Hs[:, free, :]).reshape(-1, F * C)
        B = np.linalg.solve(logit.information, g.T).T.reshape(-1, F, C)  # g J^-1
        # Psi(s, a) = sum_{f, c} B[k, f, c] x_sf (1[a = c] - p(c|s))
        xb = np.einsum("sf,kfc->sck", X, B)
        Psi = -np.einsum("sc,sck->sk", p[:, free], xb)[:, None, :].repeat(feas.shape[1], axis=1)
        Psi[:, free, :] += xb
        return np.where(feas[:, :, None], Psi, 0.0)

    def _bootstrap(self, cd: ChoiceData, rmap, Xt, params) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng(self.seed)
        unit = cd.unit
        U = int(unit.max()) + 1 if unit.size else 0
        S, A = self.model.n_states, self.model.n_actions
        cell = cd.state * A + cd.action
        draws, failed = [], 0
        for _ in range(self.bootstrap):
            m = rng.multinomial(U, np.full(U, 1.0 / U)).astype(float)
            counts = np.bincount(cell, weights=m[unit], minlength=S * A).reshape(S, A)
            try:
                theta, *_, fp = self._theta(counts, rmap, Xt, params)
            except (IdentificationError, ValueError, np.linalg.LinAlgError):
                failed += 1
                continue
            if fp is not None and not fp.converged:
                failed += 1
            else:
                draws.append(theta)
        draws = np.array(draws)
        return np.cov(draws, rowvar=False).reshape(Xt.shape[2], Xt.shape[2]), failed

    # ------------------------------------------------------------------ fit
    def _basis(self, counts: np.ndarray):
        st = self.structure
        full, _ = state_design(self.model, self.order)
        D = np.where(st.choice, counts.sum(axis=1) + self.smoothing, 0.0)
        Phi = np.where(st.choice[:, None], full, 0.0)
        keep = _independent_columns(Phi, D)
        return Phi[:, keep], D

    def _estimate(self, prep: Prepared, params: pd.Series) -> Fit:
        model, st = prep.transitions.model, self.structure
        util = model.utility_params
        cd = prep.data
        anchor_structure(model, st.anchor, params)  # the anchor's transitions at the estimates
        counts = cd.counts
        basis = weights = None
        if self.q_step == "features":
            basis, weights = self._basis(counts)
        rmap = RewardMap(model, params, st, self.q_step, self.solver, basis, weights)
        Xt = rmap.features()
        lik = ChoiceLikelihood(model, counts, self.solver)
        theta, XtWX, pi, ell, logit, r, w = self._estimate_rewards(counts, rmap, Xt)
        two_step = theta
        fp = None
        ok = logit is None or logit.converged
        msg = ("weighted least squares (closed form)" if logit is None else
               f"logit policy: {logit.iterations} Newton steps"
               + ("" if logit.converged else ", not converged"))
        if self.fixed_point:
            fp = self._fixed_point(counts, ell, Xt, theta, lik, params)
            theta, w = fp.theta, fp.weights if fp.weights is not None else w
            ok = ok and fp.converged
            msg += "; fixed point: " + fp.message
        params = params.copy()
        params[util] = theta
        cells = w > 0
        if fp is None:
            # the projection's objective -1/2 sum w (r - X theta)^2: gradient X'W(r - X theta)
            resid = np.where(cells, r - np.einsum("sak,k->sa", np.nan_to_num(Xt), theta), 0.0)
            grad = np.einsum("sa,sak->k", w * resid, np.nan_to_num(Xt))
        else:
            # the fixed point's criterion -1/2 g' A^-1 g: gradient -J' A^-1 g
            grad = -fp.J.T @ np.linalg.solve(fp.A, fp.g) if np.all(np.isfinite(fp.J)) \
                else np.full(len(util), np.nan)
        sol = fp.solution if fp is not None and fp.converged else lik.solve(params)
        ll_c = float(np.sum(counts[counts > 0] * lik.log_pi(sol)[counts > 0]))
        if not sol.converged:
            ok = False
            msg += "; the model's fixed point did not converge at the estimate"
        iterations = fp.iterations if fp is not None else (
            None if logit is None else logit.iterations)
        return Fit(params, ll_c, grad, ok, msg, iterations, None, [],
                   {"rmap": rmap, "Xt": Xt, "XtWX": XtWX, "pi": pi, "logit": logit, "r": r,
                    "w": w, "sol": sol, "ll_c": ll_c, "fp": fp, "two_step": two_step})

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        model, st = prep.transitions.model, self.structure
        util = model.utility_params
        cd, ts = prep.data, prep.transitions
        f = fit.state
        rmap, Xt, XtWX, pi, logit, r, w, fp = (
            f[k] for k in ("rmap", "Xt", "XtWX", "pi", "logit", "r", "w", "fp"))
        theta = fit.params[util].to_numpy()
        counts = cd.counts
        notes = []

        cells = w > 0
        if fp is None:
            # delta method: theta = G ell with G = (X'WX)^-1 X'W R, via the adjoint of R
            Cm = np.zeros((*w.shape, len(util)))
            Cm[cells] = w[cells][:, None] * np.linalg.solve(XtWX, Xt[cells].T).T
            G = rmap.adjoint(Cm)
            curvature = -XtWX
        elif np.all(np.isfinite(fp.J)):
            # implicit function theorem at the fixed point: d theta / d ell = J^-1 X'W D
            G = fixed_point_coefficients(fp, Xt, cells, st.anchor)
            curvature = -fp.J.T @ np.linalg.solve(fp.A, fp.J)
        else:
            G = np.full((*w.shape, len(util)), np.nan)
            curvature = None
        Psi = self._influence(G, counts, pi, logit)
        N = counts.sum(axis=1)
        V_delta = np.einsum("s,sa,sak,sal->kl", N, pi, Psi, Psi)
        covs = {"delta": V_delta}
        if cd.has_rows:
            rows = cd.rows(self.name)
            row_infl = Psi[rows.state, rows.action]
            unit = rows.unit
            U = int(unit.max()) + 1
            sums = np.zeros((U, len(util)))
            np.add.at(sums, unit, row_infl)
            covs["cluster"] = U / (U - 1.0) * sums.T @ sums
        else:
            notes.append("sufficient statistics (no rows): covariance 'delta' only (no cluster "
                         "or bootstrap covariance)")
        rewards_se = self._rewards_se(rmap, cells, counts, pi, logit)
        if self.bootstrap:
            cd.rows("PQR's bootstrap over units")
            V_boot, failed = self._bootstrap(cd, rmap, Xt, fit.params)
            covs["bootstrap"] = V_boot
            notes.append(f"bootstrap: {self.bootstrap} resamples of units (seed {self.seed})"
                         + (f", {failed} failed and were left out" if failed else "")
                         + "; transitions held at the full-sample estimates")
        how = (f"projection by weighted least squares on {int(cells.sum())} choice cells"
               if fp is None else
               f"fixed point on the model's policy ({fp.iterations} Newton steps; continuation "
               f"and weights at the estimate, {int(cells.sum())} choice cells; "
               "fixed_point=False gives two-step PQR)")
        notes.append(f"PQR with anchor {model.actions[st.anchor]!r}: P-step "
                     f"{POLICIES[self.policy]}, Q-step {Q_STEPS[self.q_step]}; {how}; "
                     "covariance 'delta' (delta method on the first-stage CCPs)")
        if st.locked.any():
            notes.append(f"{int(st.locked.sum())} states have a single feasible action and no "
                         "anchor: actions leading into them are valued as multi-period options "
                         "(bundled rewards)")


        support = self._support(counts)
        obs = st.choice & st.multi & (N > 0)
        low = obs & (support.to_numpy() < self.support_threshold)
        if low.any():
            share = float(w[low].sum() / w.sum())
            first = int(np.flatnonzero(low)[0])
            notes.append(
                f"anchor support: {model.actions[st.anchor]!r} is chosen in less than "
                f"{self.support_threshold:.0%} of visits in {int(low.sum())} of {int(obs.sum())} "
                f"observed choice states (e.g. {_state_text(model, first)}: "
                f"{support.iloc[first]:.2%}); the rewards there are poorly determined (they "
                f"carry {share:.1%} of the projection weight)")

        thin = thin_cells(counts, model.feasible, obs,
                          np.einsum("s,sa,sak->sk", N, pi, Psi**2), list(util), self.thin_count)
        heavy = thin[thin["variance_share"] >= THIN_VARIANCE_SHARE]
        if len(heavy):
            kind = "two-step PQR's estimate" if fp is None else "the estimate"
            notes.append(
                f"thin cells: in {int(thin['thin_states'].iloc[0])} of "
                f"{int(thin['states'].iloc[0])} observed choice states some action (the anchor "
                f"included) is chosen fewer than {self.thin_count} times; they carry "
                + ", ".join(f"{v:.0%} of the variance of {k}"
                            for k, v in heavy["variance_share"].items())
                + f"; {kind} may be biased in samples this small (logs of frequencies of a few "
                "choices; see extra['thin_cells'])")

        index, cols = model.space.index, list(model.actions)
        fitted = np.einsum("sak,k->sa", np.nan_to_num(Xt), theta)
        fitted = np.where(rmap.cell, fitted, np.nan)
        ll_c = f["ll_c"]
        return Inference(
            names=util, hessian=None, loglik=ll_c + ts.loglik,
            loglik_parts={"choice": ll_c, "transition": ts.loglik}, cov_type="delta",
            extra_covs=covs, solution=f["sol"], notes=notes, curvature=curvature,
            extra={"anchor": model.actions[st.anchor], "policy": self.policy,
                   "q_step": self.q_step, "weights": self.weights,
                   "rewards": pd.DataFrame(r, index=index, columns=cols),
                   "rewards_fitted": pd.DataFrame(fitted, index=index, columns=cols),
                   "rewards_se": pd.DataFrame(rewards_se, index=index, columns=cols),
                   "reward_weights": pd.DataFrame(w, index=index, columns=cols),
                   "anchor_support": support, "ccp_first_stage": pi, "features": Xt,
                   "influence": Psi, "thin_cells": thin,
                   "fixed_point": {"used": fp is not None,
                                   "iterations": None if fp is None else fp.iterations,
                                   "two_step": pd.Series(f["two_step"], index=util)}})

    def _rewards_se(self, rmap: RewardMap, cells: np.ndarray, counts, pi, logit) -> np.ndarray:
        """Delta-method standard errors of the R-step's rewards on the projection's cells (NaN
        elsewhere, and everywhere when there are more than :data:`MAX_SE_CELLS` cells)."""
        out = np.full(cells.shape, np.nan)
        where = np.argwhere(cells)
        if len(where) == 0 or len(where) > MAX_SE_CELLS:
            return out
        E = np.zeros((*cells.shape, len(where)))
        E[where[:, 0], where[:, 1], np.arange(len(where))] = 1.0
        Psi = self._influence(rmap.adjoint(E), counts, pi, logit)
        var = np.einsum("s,sa,sac->c", counts.sum(axis=1), pi, Psi**2)
        out[where[:, 0], where[:, 1]] = np.sqrt(var)
        return out

    def _support(self, counts: np.ndarray) -> pd.Series:
        st = self.structure
        N = counts.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where((N > 0) & st.choice, counts[:, st.anchor] / N, np.nan)
        return pd.Series(share, index=self.model.space.index, name="anchor_support")
