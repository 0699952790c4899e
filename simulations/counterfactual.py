"""Counterfactual policies: welfare and retention under scenarios, with bootstrap intervals.

:func:`counterfactual` solves the baseline model and every scenario model
(:mod:`simulations.scenarios`) at the same parameters and reports, for each, the figures of
``MEMBERSHIP_MODEL.md`` ("Counterfactuals and the report"):

- ``cv_per_customer``: the compensating variation in dollars,

  .. math:: CV = \\sum_s \\mu_{base}(s) \\,
            \\frac{\\bar V_{cf}(s) - \\bar V_{base}(s)}{\\alpha_{price}},

  where :math:`\\bar V` is the ex-ante value (Euler's constant included) and
  :math:`\\mu_{base}` the baseline's stationary distribution (equal mass per market): the lump
  sum, in present value, that makes the average customer indifferent between the baseline and
  the scenario (positive: the scenario is a gain). Also by market (:math:`\\mu_{base}` within
  the market).
- ``member_share``, ``annual_share``, ``lapse_rate``, ``retention_12m``,
  ``revenue_per_customer_month``: moments of each model's *own* stationary distribution and
  policy (:mod:`simulations.figures`), overall and by market, and the retention curves
  :math:`S(k)`, :math:`k = 0, \\dots, 36`, of a cohort joining at the steady state, overall and
  by plan joined.

With estimation results the figures carry intervals from the estimation uncertainty: a
parametric bootstrap draws :math:`\\theta_d \\sim N(\\hat\\theta, \\hat\\Sigma)`,
:math:`d = 1, \\dots, D` (``numpy.random.default_rng(seed)``), recomputes every figure of every
model at every draw (the CV at draw :math:`d` uses the baseline of draw :math:`d`) and reports the
:math:`(1-\\text{level})/2` and :math:`(1+\\text{level})/2` quantiles of the draws (percentile
intervals). Changes relative to the baseline are computed draw by draw (paired), so their
intervals are much narrower than the difference of two intervals.

Speed: the draws are solved together. For one model, all draws share its transitions; the
Bellman fixed points of the :math:`D` draws are found by Newton steps with the Jacobian frozen at
the point estimate,

.. math:: V_d \\leftarrow V_d + (I - \\beta P_{\\hat\\pi})^{-1} \\big(T_d(V_d) - V_d\\big),

one sparse LU for all draws and one block of right-hand sides per step (it converges linearly
at a rate given by how far the draws' policies are from the estimate's, about 0.1 here), and the
stationary distributions likewise, preconditioned by the estimate's balance equations. A draw
that does not converge within the iteration limit is solved exactly on its own
(:func:`ddc.solver.solve_arrays`, :func:`simulations.stationary_from_policy`). The figures of the
draws are computed by array versions of :mod:`simulations.figures`'s formulas over all draws
at once (the point estimates use :func:`simulations.membership_figures` itself; the tests
check that the two agree).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ddc.kernels import bellman as kb
from ddc.model import Model
from ddc.solver import Solver, solve_arrays
from ddc.utility import LinearUtility
from simulations.figures import FIGURE_NAMES, _Layout, membership_figures
from simulations.report import (
    COHORTS,
    FIGURES,
    IDENTIFICATION_NOTE,
    CounterfactualReport,
)
from simulations.scenarios import Scenario, ShiftedUtility, resolve_scenarios
from simulations.stationary import block_structure, block_weights, stationary_from_policy

__all__ = ["counterfactual", "FIGURES", "COHORTS"]

BATCH_MAX_ITER = 60
"""Frozen-Jacobian steps for a block of draws before the draws left are solved one by one."""

VALUE_TOL = 1e-11
"""Absolute tolerance on :math:`\\max_s |T(V)(s) - V(s)|` for the draws (never below the
rounding level :math:`64 \\epsilon \\max_s |V(s)|`)."""

DENSE_MAX = 2000
"""Systems of up to this many states are solved by dense LU (BLAS over all draws at once);
larger ones by sparse LU."""

MU_TOL = 1e-13
"""Tolerance on the L1 residual of the balance equations of a draw's stationary
distribution."""


# ------------------------------------------------------------------------------ preparation


@dataclass
class _Prepared:
    """One model (baseline or scenario) ready for batched evaluation.

    Batched arrays are laid out (A, S, D): action, state, draw.
    """

    name: str
    scenario: Scenario | None
    model: Model
    layout: _Layout
    P: sp.csr_matrix  # (A * S, S): the rows of P_a stacked by action
    PT: sp.csr_matrix  # (S, A * S): [P_0' P_1' ...]
    block: np.ndarray  # block (combination of permanent variables) of each state
    block_w: np.ndarray  # mass of each block
    market_ind: np.ndarray  # (M, S) indicator of each market's states
    pi0: np.ndarray  # (S, A) the policy at the point estimate (preconditioners)


def _action_matrices(model: Model, params_vec: np.ndarray) -> tuple[sp.csr_matrix,
                                                                    sp.csr_matrix]:
    """:math:`[P_0; P_1; \\dots]` (A S, S) and :math:`[P_0', P_1', \\dots]` (S, A S)."""
    ct = model.compiled_transitions(params_vec)
    trans = tuple(ct)[2:]
    S, A = model.n_states, model.n_actions
    blocks = []
    for a in range(A):
        onehot = np.zeros((S, A))
        onehot[:, a] = 1.0
        rows, cols, vals = kb.policy_matrix_coo(onehot, *trans)
        blocks.append(sp.csr_matrix((vals, (rows, cols)), shape=(S, S)))
    P = sp.vstack(blocks, format="csr")
    return P, P.T.tocsr()


def _prepare(name: str, scenario: Scenario | None, model: Model, params_vec: np.ndarray,
             weights, pi0: np.ndarray) -> _Prepared:
    layout = _Layout(model)
    P, PT = _action_matrices(model, params_vec)
    structure = block_structure(model, params_vec)
    w = block_weights(structure, weights)
    M = layout.n_markets
    ind = np.zeros((M, model.n_states))
    ind[layout.market, np.arange(model.n_states)] = 1.0
    return _Prepared(name, scenario, model, layout, P, PT, structure.block, w, ind, pi0)


def _policy_matrix(prep: _Prepared, pi: np.ndarray) -> sp.csr_matrix:
    """:math:`P_\\pi = \\sum_a \\mathrm{diag}(\\pi_a) P_a` for one policy (S, A)."""
    S = pi.shape[0]
    # sum_a diag(pi_a) P_a = [diag(pi_0) diag(pi_1) ...] @ [P_0; P_1; ...]
    W = sp.hstack([sp.diags(pi[:, a]) for a in range(pi.shape[1])], format="csr")
    out = (W @ prep.P).tocsr()
    assert out.shape == (S, S)
    return out


class _LinearSolver:
    """Solves with one matrix for blocks of right-hand sides: dense LU for small systems (BLAS
    on all columns at once), sparse LU above :data:`DENSE_MAX`."""

    def __init__(self, A: sp.spmatrix):
        if A.shape[0] <= DENSE_MAX:
            self._lu = sla.lu_factor(A.toarray())
            self._dense = True
        else:
            self._lu = spla.splu(A.tocsc())
            self._dense = False

    def solve(self, B: np.ndarray) -> np.ndarray:
        if self._dense:
            return sla.lu_solve(self._lu, B)
        return self._lu.solve(np.asfortranarray(B))


def _utilities_batch(model: Model, theta: np.ndarray) -> np.ndarray:
    """Flow utilities (A, S, D) at the utility parameter vectors ``theta`` (D, K)."""
    ut = model.utility
    base = ut.base if isinstance(ut, ShiftedUtility) else ut
    if isinstance(base, LinearUtility):
        X = np.ascontiguousarray(base.features.transpose(1, 0, 2))  # (A, S, K)
        U = X @ theta.T  # (A, S, D)
        if isinstance(ut, ShiftedUtility):
            U += ut.offset.T[:, :, None]
        return U
    return np.stack([ut(th).T for th in theta], axis=2)


def _logit(v: np.ndarray, feasible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ex-ante value (S, D) and choice probabilities (A, S, D) from choice values (A, S, D)."""
    v = np.where(feasible.T[:, :, None], v, -np.inf)
    top = v.max(axis=0)
    e = np.exp(v - top[None])
    total = e.sum(axis=0)
    return top + np.log(total) + kb.EULER_GAMMA, e / total[None]


# ------------------------------------------------------------------------------ batched solves


def _solve_batch(prep: _Prepared, U: np.ndarray, V0: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bellman fixed points of all draws: Newton steps with the Jacobian frozen at the
    estimate's policy.

    ``U`` (A, S, D). Returns ``V`` (S, D), ``pi`` (A, S, D) and ``converged`` (D,).
    """
    A, S, D = U.shape
    beta = prep.model.beta
    feas = prep.model.feasible
    lu = _LinearSolver(sp.identity(S, format="csr") - beta * _policy_matrix(prep, prep.pi0))
    V = np.repeat(np.asarray(V0, dtype=float)[:, None], D, axis=1)
    V_out = np.empty((S, D))
    pi_out = np.empty((A, S, D))
    done = np.zeros(D, dtype=bool)
    left = np.arange(D)
    eps = np.finfo(float).eps
    for _ in range(BATCH_MAX_ITER):
        Vl = V[:, left]
        EV = (prep.P @ Vl).reshape(A, S, left.size)
        TV, pi = _logit(U[:, :, left] + beta * EV, feas)
        step = TV - Vl
        res = np.abs(step).max(axis=0)
        ok = res <= np.maximum(VALUE_TOL, 64 * eps * np.abs(TV).max(axis=0))
        V_out[:, left[ok]] = TV[:, ok]
        pi_out[:, :, left[ok]] = pi[:, :, ok]
        done[left[ok]] = True
        keep = ~ok & np.isfinite(res)
        left = left[keep]
        if left.size == 0:
            break
        V[:, left] = Vl[:, keep] + lu.solve(step[:, keep])
    return V_out, pi_out, done


def _push(prep: _Prepared, w: np.ndarray) -> np.ndarray:
    """One step of mass: :math:`x(s') = \\sum_{s, a} w(a, s) P(s' \\mid s, a)`; ``w`` (A, S,
    D) -> (S, D)."""
    A, S, D = w.shape
    return prep.PT @ w.reshape(A * S, D)


def _stationary_batch(prep: _Prepared, pi: np.ndarray, mu0: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Stationary distributions of all draws, preconditioned by the estimate's.

    The balance equations :math:`(P_\\pi' - I) \\mu = 0`, with one equation per block of
    permanent values replaced by :math:`\\mu(s_c) = \\mu_0(s_c)` at the block's most likely
    state :math:`s_c` under ``mu0``, are solved by iterative refinement with the LU of the same
    system at the estimate's policy; each block is then scaled to its mass. ``pi`` (A, S, D).
    Returns ``mu`` (S, D) and ``converged`` (D,).
    """
    A, S, D = pi.shape
    n_blocks = prep.block_w.size
    anchors = np.array([np.flatnonzero(prep.block == c)[np.argmax(mu0[prep.block == c])]
                        for c in range(n_blocks)])
    mu = np.empty((S, D))
    done = np.zeros(D, dtype=bool)
    if np.any(mu0[anchors] <= 0):
        return mu, done
    M = (_policy_matrix(prep, prep.pi0).T - sp.identity(S, format="csr")).tocoo()
    keep = ~np.isin(M.row, anchors)
    rows = np.concatenate([M.row[keep], anchors])
    cols = np.concatenate([M.col[keep], anchors])
    vals = np.concatenate([M.data[keep], np.ones(anchors.size)])
    lu = _LinearSolver(sp.csr_matrix((vals, (rows, cols)), shape=(S, S)))
    b = np.zeros(S)
    b[anchors] = mu0[anchors]
    x = np.repeat(mu0[:, None], D, axis=1)
    left = np.arange(D)
    for _ in range(BATCH_MAX_ITER):
        xl = x[:, left]
        Ax = _push(prep, pi[:, :, left] * xl[None]) - xl
        Ax[anchors] = xl[anchors]
        r = b[:, None] - Ax
        res = np.abs(r).sum(axis=0)
        ok = res <= MU_TOL
        mu[:, left[ok]] = xl[:, ok]
        done[left[ok]] = True
        still = ~ok & np.isfinite(res)
        left = left[still]
        if left.size == 0:
            break
        x[:, left] = xl[:, still] + lu.solve(r[:, still])
    mu[:, ~done] = 0.0
    sums = np.zeros((n_blocks, D))
    np.add.at(sums, prep.block, mu)
    scale = np.zeros_like(sums)
    np.divide(prep.block_w[:, None], sums, out=scale, where=sums > 0)
    mu *= scale[prep.block]
    return mu, done


# ------------------------------------------------------------------------------ figures


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is not positive (no floating-point warnings)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _figures_batch(prep: _Prepared, pi: np.ndarray, mu: np.ndarray, horizon: int) -> dict:
    """The figures of :mod:`simulations.figures` for many draws at once.

    ``pi`` (A, S, D), ``mu`` (S, D). Returns a dict with the scalar figures (D,), their values by
    market under ``"market"`` (dict of (M, D)) and ``"retention"`` (horizon + 1, 3, D): the
    curves of all joiners, monthly joiners and annual joiners. The formulas are those of
    :mod:`simulations.figures`; the retention cohorts of both plans and all draws are propagated
    together (one sparse product per month).
    """
    lay = prep.layout
    A, S, D = pi.shape
    G = prep.market_ind
    mu = mu / mu.sum(axis=0, keepdims=True)
    member = 1.0 - pi[lay.none]
    zeros = np.zeros((S, D))
    annual = pi[lay.annual] if lay.annual is not None else zeros
    monthly = pi[lay.monthly] if lay.monthly is not None else zeros
    pm, pa = lay.prices()
    buying = (lay.plan_none | lay.plan_member).astype(float)
    at_member = lay.plan_member.astype(float)[:, None]

    def totals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.sum(axis=0), G @ x

    mass, mass_m = totals(mu)
    mem, mem_m = totals(mu * member)
    ann, ann_m = totals(mu * annual)
    n_mem, n_mem_m = totals(mu * at_member)
    lapse, lapse_m = totals(mu * at_member * pi[lay.none])
    rev, rev_m = totals(mu * (monthly * pm[:, None] + annual * (pa * buying)[:, None]))

    # retention: the cohorts joining on each plan (columns 0..D-1 monthly, D..2D-1 annual),
    # propagated together, keeping only the mass that stays a member
    w = np.zeros((A, S, 2 * D))
    plan_none = lay.plan_none.astype(float)[:, None]
    for j, a in enumerate((lay.monthly, lay.annual)):
        if a is not None:
            w[a, :, j * D:(j + 1) * D] = mu * pi[a] * plan_none
    keep_pi = np.concatenate([pi, pi], axis=2)
    keep_pi[lay.none] = 0.0
    stay_p = np.concatenate([member, member], axis=1)
    surv = np.empty((horizon + 1, 2 * D))
    surv_m = np.empty((horizon + 1, G.shape[0], 2 * D))
    start = w.sum(axis=0)
    surv[0] = start.sum(axis=0)
    surv_m[0] = G @ start
    for k in range(1, horizon + 1):
        x = _push(prep, w)
        stay = x * stay_p
        surv[k] = stay.sum(axis=0)
        surv_m[k] = G @ stay
        w = keep_pi * x[None]
    s_mo, s_an = surv[:, :D], surv[:, D:]
    retention = np.empty((horizon + 1, 3, D))
    retention[:, 0] = _div(s_mo + s_an, (s_mo + s_an)[:1])
    retention[:, 1] = _div(s_mo, s_mo[:1])
    retention[:, 2] = _div(s_an, s_an[:1])
    k12 = min(12, horizon)
    both_m = surv_m[:, :, :D] + surv_m[:, :, D:]
    return {
        "member_share": _div(mem, mass),
        "annual_share": _div(ann, mem),
        "lapse_rate": _div(lapse, n_mem),
        "retention_12m": retention[k12, 0],
        "revenue_per_customer_month": _div(rev, mass),
        "retention": retention,
        "market": {
            "member_share": _div(mem_m, mass_m),
            "annual_share": _div(ann_m, mem_m),
            "lapse_rate": _div(lapse_m, n_mem_m),
            "retention_12m": _div(both_m[k12], both_m[0]),
            "revenue_per_customer_month": _div(rev_m, mass_m),
        },
    }


def _cv_batch(prep_base: _Prepared, mu_base: np.ndarray, V_base: np.ndarray, V: np.ndarray,
              alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CV per customer (D,) and by market (M, D)."""
    dV = (V - V_base) / alpha[None, :]
    G = prep_base.market_ind
    total = mu_base.sum(axis=0)
    by_m = G @ mu_base
    return _div((mu_base * dV).sum(axis=0), total), _div(G @ (mu_base * dV), by_m)


# ------------------------------------------------------------------------------ the draws


def _params_and_cov(model: Model, results_or_params, cov_type: str | None
                    ) -> tuple[pd.Series, pd.DataFrame | None, str, list[str]]:
    """Point estimate over ``model.param_names``, the covariance of the estimated ones (or
    None), a description of the source, and notes."""
    from estimators.results import EstimationResults, NotAvailableError

    notes: list[str] = []
    if isinstance(results_or_params, EstimationResults):
        res = results_or_params
        given = pd.concat([res.params, res.fixed_params])
        unknown = [n for n in given.index if n not in model.param_names]
        if unknown:
            raise KeyError(f"the results have parameter(s) {unknown} that the model "
                           f"{model.name!r} does not have (its parameters: "
                           f"{model.param_names}); pass the model the results were fitted to")
        try:
            params = model.params_series(given)
        except KeyError as exc:
            raise KeyError(f"the results do not fit the model {model.name!r}: "
                           f"{exc.args[0]}") from None
        source = f"{res.estimator} estimate"
        if res.nobs:
            source += f" ({res.nobs:,} observations"
            source += f", {res.n_units:,} units)" if res.n_units else ")"
        if not res.converged:
            notes.append(f"The {res.estimator} estimation did not converge; the figures are at "
                         "its last iterate.")
            warnings.warn(f"the {res.estimator} results did not converge; the counterfactuals "
                          "use the last iterate", RuntimeWarning, stacklevel=3)
        try:
            cov = res.cov if cov_type is None else res.cov_of(cov_type)
            kind = cov_type or res.cov_type
            source += f"; covariance: {kind}"
        except NotAvailableError as exc:
            cov = None
            notes.append(f"No intervals: the covariance is not available ({exc}).")
        return params, cov, source, notes
    if isinstance(results_or_params, Mapping | pd.Series | np.ndarray | list | tuple):
        return model.params_series(results_or_params), None, "parameters given", notes
    raise TypeError(f"results_or_params must be EstimationResults or parameter values (a "
                    f"pandas Series), got {type(results_or_params).__name__}")


def _draw_params(params: pd.Series, cov: pd.DataFrame, n_draws: int, seed) -> np.ndarray:
    """Parameter draws (D, P) over ``params.index``: the covariance's parameters drawn from the
    normal around the estimate, the others held at their values."""
    names = list(cov.index)
    C = cov.loc[names, names].to_numpy(dtype=float)
    C = 0.5 * (C + C.T)
    if not np.all(np.isfinite(C)):
        raise ValueError("the covariance of the estimates has non-finite entries; intervals "
                         "cannot be drawn (use n_draws=0)")
    w, Q = np.linalg.eigh(C)
    if w.min() < -1e-10 * max(1.0, w.max()):
        raise ValueError(f"the covariance of the estimates is not positive semi-definite "
                         f"(smallest eigenvalue {w.min():.3g}); intervals cannot be drawn")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_draws, len(names)))
    draws_sub = params[names].to_numpy()[None, :] + (z * np.sqrt(np.clip(w, 0, None))) @ Q.T
    out = np.repeat(params.to_numpy()[None, :], n_draws, axis=0)
    pos = [list(params.index).index(n) for n in names]
    out[:, pos] = draws_sub
    return out


def _exact_draw(prep: _Prepared, vec: np.ndarray, V0: np.ndarray, weights, horizon: int,
                solver: Solver) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None:
    """One draw solved on its own (transitions at the draw's parameters)."""
    model = prep.model
    u = np.ascontiguousarray(model.utility(vec[: len(model.utility_params)]))
    try:
        ct = model.compiled_transitions(vec)
    except ValueError:  # e.g. drawn transition probabilities outside [0, 1]: a failed draw
        return None
    fp = solve_arrays(u, model.feasible, model.beta, ct, solver, V0)
    if not fp.converged:
        return None
    mu = stationary_from_policy(model, fp.pi, weights=weights, params=vec)
    P, PT = _action_matrices(model, vec)
    local = _Prepared(prep.name, prep.scenario, model, prep.layout, P, PT, prep.block,
                      prep.block_w, prep.market_ind, fp.pi)
    pi = np.ascontiguousarray(fp.pi.T)  # (A, S)
    figs = _figures_batch(local, pi[:, :, None], mu[:, None], horizon)
    return fp.V, pi, mu, figs


def _run_draws(preps: list[_Prepared], point: dict, TH: np.ndarray, weights, horizon: int,
               alpha_pos: int, progress: Callable[[str], None] | None
               ) -> tuple[dict, np.ndarray, list[str]]:
    """Figures of every model at every draw: dict name -> figures dict; mask of usable draws."""
    D = TH.shape[0]
    notes: list[str] = []
    ok = np.ones(D, dtype=bool)
    out: dict = {}
    values: dict = {}
    mus: dict = {}
    transition_names = list(preps[0].model.transition_params.index)
    pos_t = [preps[0].model.param_names.index(n) for n in transition_names]
    varying = bool(pos_t) and np.any(np.ptp(TH[:, pos_t], axis=0) > 0)
    solver = Solver(on_failure="warn")
    n_fallback = 0
    for prep in preps:
        model = prep.model
        sol, figs0 = point[prep.name]
        if varying:
            V = np.repeat(sol.V[:, None], D, axis=1)
            mu = np.repeat(figs0.mu.to_numpy()[:, None], D, axis=1)
            parts = []
            for d in range(D):
                got = _exact_draw(prep, TH[d], sol.V, weights, horizon, solver)
                if got is None:
                    ok[d] = False
                    parts.append(None)
                    continue
                V[:, d], _, mu[:, d], f = got
                parts.append(f)
            figs = _stack_figures(parts, horizon, prep.layout.n_markets)
        else:
            U = _utilities_batch(model, TH[:, : len(model.utility_params)])
            V, pi, done = _solve_batch(prep, U, sol.V)
            mu, done_mu = _stationary_batch(prep, pi, figs0.mu.to_numpy())
            for d in np.flatnonzero(~(done & done_mu)):
                n_fallback += 1
                got = _exact_draw(prep, TH[d], sol.V, weights, horizon, solver)
                if got is None:  # left out; placeholders keep the arrays finite
                    ok[d] = False
                    got = (sol.V, sol.pi.T, figs0.mu.to_numpy(), None)
                V[:, d], pi[:, :, d], mu[:, d], _ = got
            figs = _figures_batch(prep, pi, mu, horizon)
        values[prep.name] = V
        mus[prep.name] = mu
        out[prep.name] = figs
        if progress is not None:
            progress(prep.name)
    base = preps[0]
    alpha = TH[:, alpha_pos]
    for prep in preps:
        cv, cv_m = _cv_batch(base, mus[base.name], values[base.name], values[prep.name], alpha)
        out[prep.name]["cv_per_customer"] = cv
        out[prep.name]["market"]["cv_per_customer"] = cv_m
    if n_fallback:
        notes.append(f"{n_fallback} model solutions of the draws were computed one by one "
                     "(the batched iteration did not converge for them).")
    if (alpha[ok] <= 0).any():
        notes.append(f"{int((alpha[ok] <= 0).sum())} draws have a non-positive price "
                     "coefficient; their CV has the wrong sign (the estimate is imprecise).")
    return out, ok, notes


def _stack_figures(parts: list, horizon: int, n_markets: int) -> dict:
    """Stack per-draw figure dicts (D = 1 each; None for a failed draw) along the draws."""
    D = len(parts)
    nan = np.full(D, np.nan)
    out: dict = {k: nan.copy() for k in FIGURE_NAMES}
    out["retention"] = np.full((horizon + 1, 3, D), np.nan)
    out["market"] = {k: np.full((n_markets, D), np.nan) for k in FIGURE_NAMES}
    for d, f in enumerate(parts):
        if f is None:
            continue
        for k in FIGURE_NAMES:
            out[k][d] = f[k][0]
            out["market"][k][:, d] = f["market"][k][:, 0]
        out["retention"][:, :, d] = f["retention"][:, :, 0]
    return out


# ------------------------------------------------------------------------------ assembling


def _interval(x: np.ndarray, level: float, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along ``axis``, NaN where every draw is NaN."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    lo = np.full(x.shape[:-1], np.nan)
    hi = np.full(x.shape[:-1], np.nan)
    finite = np.isfinite(x)
    q = [(1 - level) / 2, (1 + level) / 2]
    for idx in np.ndindex(x.shape[:-1]):
        vals = x[idx][finite[idx]]
        if vals.size:
            lo[idx], hi[idx] = np.quantile(vals, q)
    return lo, hi


def counterfactual(
    model: Model,
    results_or_params,
    scenarios: str | Scenario | Iterable | Mapping = "default",
    n_draws: int = 200,
    seed: int | None = 0,
    weights: Mapping | pd.Series | None = None,
    *,
    level: float = 0.95,
    horizon: int = 36,
    cov_type: str | None = None,
    price_param: str = "alpha_price",
    progress: Callable[[str], None] | None = None,
) -> CounterfactualReport:
    """Welfare, membership and retention under counterfactual scenarios.

    Solves the baseline and each scenario model at the parameters and computes the figures of
    ``MEMBERSHIP_MODEL.md`` (module docstring): CV per customer in dollars, member share, annual
    share, lapse rate, 12-month retention and revenue per customer-month, overall and by market,
    and the retention curves :math:`S(k)`, :math:`k = 0, \\dots,` ``horizon``, by plan joined.
    With estimation results carrying a covariance, every figure gets a percentile interval from
    a parametric bootstrap of ``n_draws`` draws :math:`\\theta_d \\sim N(\\hat\\theta,
    \\hat\\Sigma)`.

    Parameters
    ----------
    model : ddc.Model
        The membership model (state variables ``market`` and ``plan``, actions ``none``,
        ``monthly``, ``annual``, prices in ``model.metadata``).
    results_or_params : estimators.EstimationResults or pandas.Series
        Estimation results (their parameters and covariance: intervals) or parameter values
        (no intervals).
    scenarios : str, Scenario, sequence or mapping
        ``"default"`` (the four scenarios of ``MEMBERSHIP_MODEL.md``), a built-in name
        (``"monthly_price_up"``, ``"annual_discount"``, ``"no_monthly"``,
        ``"video_benefit"``), a :class:`~simulations.scenarios.Scenario`, or a list or dict of
        these (see :func:`simulations.scenarios.resolve_scenarios`).
    n_draws : int
        Bootstrap draws (0: no intervals).
    seed : int, optional
        Seed of the draws (:func:`numpy.random.default_rng`).
    weights : mapping or pandas.Series, optional
        Mass of each market in the stationary distributions (equal by default).
    level : float
        Coverage of the intervals (0.95).
    horizon : int
        Last month of the retention curves (36; at least 12).
    cov_type : str, optional
        Covariance kind of the results to draw from (their default kind if not given).
    price_param : str
        The price coefficient that converts utils to dollars (``"alpha_price"``).
    progress : callable, optional
        Called with each model's name when its draws are done (the CLI's progress bar).

    Returns
    -------
    CounterfactualReport
        ``.summary`` (one row per scenario, baseline first), ``.changes``, ``.by_market``,
        ``.retention``, ``.to_markdown()``, ``.to_html()``, ``.save(dir)``.

    Raises
    ------
    ValueError, KeyError, TypeError
        For a model that is not a membership model, parameters that do not fit it, or bad
        arguments; the message names the one at fault.

    Examples
    --------
    >>> import ddc
    >>> model = ddc.models.membership()
    >>> report = counterfactual(model, model.true_params, scenarios="monthly_price_up")
    >>> report.summary.loc["monthly_price_up", "cv_per_customer"].round(2)
    np.float64(-27.27)
    """
    start = time.perf_counter()
    if not isinstance(model, Model):
        raise TypeError(f"model must be a ddc.Model, got {type(model).__name__}")
    _Layout(model)  # a membership model, or a clear error
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 0:
        raise ValueError(f"n_draws must be a non-negative integer, got {n_draws!r}")
    if not isinstance(level, float) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if not isinstance(horizon, (int, np.integer)) or horizon < 12:
        raise ValueError(f"horizon must be an integer >= 12 (retention_12m), got {horizon!r}")
    horizon = int(horizon)
    if price_param not in model.param_names:
        raise KeyError(f"cv_per_customer converts utils to dollars with the price coefficient "
                       f"price_param={price_param!r}, which is not a parameter of the model "
                       f"{model.name!r} (its parameters: {model.param_names})")
    chosen = resolve_scenarios(scenarios)
    params, cov, source, notes = _params_and_cov(model, results_or_params, cov_type)
    alpha_pos = model.param_names.index(price_param)
    if params.iloc[alpha_pos] <= 0:
        raise ValueError(f"the price coefficient {price_param} = {params.iloc[alpha_pos]:g} is "
                         "not positive; dollars per util are undefined")
    vec = params.to_numpy()

    models: list[tuple[str, Scenario | None, Model]] = [("baseline", None, model)]
    for s in chosen:
        models.append((str(s.name), s, s.apply(model)))

    # point estimates: the figures module itself
    point: dict = {}
    for name, _, m in models:
        sol = m.solve(params)
        figs = membership_figures(sol, weights=weights, horizon=horizon)
        point[name] = (sol, figs)
    sol_b, figs_b = point["baseline"]
    mu_b = figs_b.mu.to_numpy()
    lay_b = _Layout(model)
    alpha = float(params.iloc[alpha_pos])

    rows, market_rows, retention_parts = {}, {}, {}
    for name, _, _m in models:
        sol, figs = point[name]
        dV = (sol.V - sol_b.V) / alpha
        cv = float(mu_b @ dV)
        row = {"cv_per_customer": cv, **figs.as_series().to_dict()}
        rows[name] = row
        bm = figs.by_market.copy()
        cv_m = []
        for code in range(lay_b.n_markets):
            w = np.where(lay_b.market == code, mu_b, 0.0)
            cv_m.append(float(w @ dV / w.sum()) if w.sum() > 0 else float("nan"))
        bm.insert(0, "cv_per_customer", cv_m)
        market_rows[name] = bm
        retention_parts[name] = figs.retention
    summary = pd.DataFrame.from_dict(rows, orient="index")[list(FIGURES)]
    summary.index.name = "scenario"
    by_market = pd.concat(market_rows, names=["scenario"])
    retention = (pd.concat(retention_parts, names=["scenario"])
                 .rename_axis(columns="joined").stack().rename("retention")
                 .reorder_levels(["scenario", "joined", "k"]).to_frame())
    retention = retention.reindex(_product_index(
        [list(summary.index), list(COHORTS), list(range(horizon + 1))],
        ["scenario", "joined", "k"]))
    changes = summary.iloc[1:].copy() - summary.loc["baseline"]
    changes["cv_per_customer"] = summary["cv_per_customer"].iloc[1:]

    draws_frame = param_draws = None
    n_used = 0
    if cov is not None and n_draws > 0:
        preps = [_prepare(name, s, m, vec, weights, point[name][0].pi) for name, s, m in models]
        TH = _draw_params(params, cov, int(n_draws), seed)
        figs_d, ok, more = _run_draws(preps, point, TH, weights, horizon, alpha_pos, progress)
        notes.extend(more)
        n_used = int(ok.sum())
        if n_used < n_draws:
            msg = (f"{n_draws - n_used} of {n_draws} bootstrap draws failed to solve and are "
                   "left out of the intervals")
            notes.append(msg + ".")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        names = [n for n, _, _ in models]
        # summary intervals
        draw_cols = {}
        for col in FIGURES:
            lo, hi = _interval(np.stack([figs_d[n][col][ok] for n in names]), level)
            summary[f"{col}_lower"] = lo
            summary[f"{col}_upper"] = hi
            for n in names:
                draw_cols[(n, col)] = figs_d[n][col]
        draws_frame = pd.DataFrame(draw_cols)
        draws_frame.columns.names = ["scenario", "figure"]
        draws_frame.index.name = "draw"
        draws_frame = draws_frame.loc[ok].reset_index(drop=True)
        draws_frame.index.name = "draw"
        param_draws = pd.DataFrame(TH[ok], columns=list(params.index))
        param_draws.index.name = "draw"
        # changes (paired)
        for col in FIGURES:
            base = figs_d["baseline"][col][ok]
            diff = np.stack([figs_d[n][col][ok] - (0.0 if col == "cv_per_customer" else base)
                             for n in names[1:]])
            lo, hi = _interval(diff, level) if len(names) > 1 else (np.array([]),) * 2
            changes[f"{col}_lower"] = lo
            changes[f"{col}_upper"] = hi
        # by market
        for col in FIGURES:
            lo, hi = _interval(np.stack([figs_d[n]["market"][col][:, ok] for n in names]),
                               level)
            by_market[f"{col}_lower"] = lo.ravel()
            by_market[f"{col}_upper"] = hi.ravel()
        # retention curves
        lo, hi = _interval(np.stack([figs_d[n]["retention"][:, :, ok] for n in names]), level)
        # (scenario, k, cohort) -> (scenario, cohort, k)
        retention["retention_lower"] = np.transpose(lo, (0, 2, 1)).ravel()
        retention["retention_upper"] = np.transpose(hi, (0, 2, 1)).ravel()
        summary = summary[_ordered(FIGURES)]
        changes = changes[_ordered(FIGURES)]
        by_market = by_market[_ordered(FIGURES)]
    else:
        changes = changes[list(FIGURES)]
    changes.index.name = "scenario"

    std_errors = None
    if cov is not None:
        std_errors = pd.Series(np.sqrt(np.clip(np.diag(cov.to_numpy(dtype=float)), 0, None)),
                               index=cov.index, name="std_error")
    return CounterfactualReport(
        summary=summary,
        changes=changes,
        by_market=by_market,
        retention=retention,
        draws=draws_frame,
        param_draws=param_draws,
        scenarios={n: s for n, s, _ in models},
        params=params,
        std_errors=std_errors,
        source=source,
        model_name=model.name,
        beta=model.beta,
        n_draws=int(n_draws) if cov is not None else 0,
        n_used=n_used,
        seed=seed,
        level=level,
        horizon=horizon,
        price_param=price_param,
        identification_note=IDENTIFICATION_NOTE,
        notes=notes,
        seconds=time.perf_counter() - start,
    )


def _product_index(levels: list[list], names: list[str]) -> pd.MultiIndex:
    """The product of ``levels`` in the given order, with levels in that order (so that the
    index is lexically sorted and partial ``.loc`` selections are fast)."""
    grids = np.meshgrid(*[np.arange(len(v)) for v in levels], indexing="ij")
    return pd.MultiIndex(levels=levels, codes=[g.ravel() for g in grids], names=names)


def _ordered(cols: Iterable[str]) -> list[str]:
    out = []
    for c in cols:
        out += [c, f"{c}_lower", f"{c}_upper"]
    return out
