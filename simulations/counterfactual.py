"""The counterfactual engine: welfare, shares and declared outcomes under scenarios, for any model.

:func:`counterfactual` solves the baseline model and every scenario model (:mod:`ddc.scenarios`)
at the same parameters with :mod:`ddc.solver`, computes each model's stationary distribution
:math:`\\mu` (:mod:`ddc.stationary`; equal mass per block of the permanent state variables) and
reports, for each:

- the compensating variation per unit (per customer, bus, firm: :attr:`ddc.Hooks.unit`),

  .. math:: CV = \\sum_s \\mu_{base}(s) \\, \\big(\\bar V_{cf}(s) - \\bar V_{base}(s)\\big)

  in utils, where :math:`\\bar V` is the ex-ante value (Euler's constant included) and
  :math:`\\mu_{base}` the baseline's stationary distribution: the lump sum, in present value,
  that makes the average unit indifferent between the baseline and the scenario (positive: the
  scenario is a gain). In money when the model names its money parameter :math:`\\alpha`
  (:attr:`ddc.Hooks.money`): :math:`CV / \\alpha`. Also by block of the permanent variables;
- the choice shares :math:`\\sum_s \\mu(s) \\pi(a \\mid s)` and the share of each value of each
  state variable under the model's *own* stationary distribution;
- every outcome and curve the model declares (:attr:`ddc.Hooks.outcomes`,
  :attr:`ddc.Hooks.curves`), overall and (outcomes) by block;
- the identification class of each scenario.

A :class:`ddc.Mixture` of types (with its results) is handed to
:mod:`simulations.counterfactual_mixture`: every type through this engine at the type's
parameters, with draws of all the mixture's parameters jointly, reported by type and pooled
with the type shares.

With estimation results the figures carry intervals from the estimation uncertainty: a
parametric bootstrap draws :math:`\\theta_d \\sim N(\\hat\\theta, \\hat\\Sigma)`,
:math:`d = 1, \\dots, D` (``numpy.random.default_rng(seed)``), recomputes every figure of every
model at every draw (the CV at draw :math:`d` uses the baseline of draw :math:`d`) and reports
percentile intervals: the :math:`(1-\\text{level})/2` and :math:`(1+\\text{level})/2` quantiles of
the draws with the plotting position :math:`p (D + 1)` (``numpy.quantile(method="weibull")``),
which keeps the nominal coverage with a few hundred draws (see :data:`DEFAULT_DRAWS`). Changes
relative to the baseline are computed draw by draw (paired).

Speed: when the draws share the transitions (only utility parameters are drawn), all draws of
one model are solved together by :func:`ddc.solver.solve_batch` (Newton steps with the
Jacobian frozen at the estimate's policy) and :func:`ddc.stationary.stationary_batch`, and
outcomes declared ``vectorized`` are evaluated for all draws (and all blocks) in one call. A draw
the batch does not converge is solved on its own (:func:`ddc.solver.solve_arrays`,
:func:`ddc.stationary.stationary_from_policy`); draws that move transition parameters are solved
one by one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.hooks import Money, OutcomeContext
from ddc.model import Model
from ddc.scenarios import Scenario, identification_note, resolve_scenarios, utilities_batch
from ddc.solver import Solver, solve_arrays, solve_batch
from ddc.stationary import (
    BlockStructure,
    block_structure,
    block_weights,
    stationary_batch,
    stationary_from_policy,
)
from simulations.draws import (
    DEFAULT_DRAWS,
    QUANTILE_METHOD,
    _interval,
    _ordered,
    _params_and_cov,
    draw_with_transitions,
)
from simulations.report import CounterfactualReport

__all__ = ["counterfactual", "DEFAULT_DRAWS", "QUANTILE_METHOD"]


# ------------------------------------------------------------------------------ evaluation


@dataclass
class _Evaluated:
    """Everything reported about one model at a stack of D parameter vectors."""

    V: np.ndarray  # (S, D)
    mu: np.ndarray  # (S, D)
    outcomes: dict  # name -> (D,)
    blocks: dict  # name -> (C, D)
    choice: np.ndarray  # (A, D)
    states: dict  # variable -> (n_values, D)
    curves: dict  # name -> (K + 1, G, D)


def _block_indicator(structure: BlockStructure, S: int) -> np.ndarray:
    G = np.zeros((structure.n_blocks, S))
    G[structure.block, np.arange(S)] = 1.0
    return G


def _normalized(mu: np.ndarray) -> np.ndarray:
    total = mu.sum(axis=0)
    out = np.full(mu.shape, np.nan)
    np.divide(mu, total, out=out, where=total > 0)
    return out


def _evaluate(model: Model, params: pd.DataFrame, pi: np.ndarray, V: np.ndarray,
              mu: np.ndarray, structure: BlockStructure, horizon: int, ct,
              batched: bool) -> _Evaluated:
    """Outcomes, curves, choice and state shares of one model at D parameter vectors.

    ``pi`` (S, A, D), ``V`` and ``mu`` (S, D), ``params`` one column per draw. With ``batched``
    the outcomes declared ``vectorized`` see all draws (and all blocks) in one call; otherwise
    every draw and block is its own context without a draws axis (the point estimate: exactly
    what an application computes on one solution).
    """
    S, A, D = pi.shape
    hooks = model.hooks
    C = structure.n_blocks
    mun = _normalized(mu)
    choice = (mun[:, None, :] * pi).sum(axis=0)
    states = {}
    for var in model.space.variables:
        ind = np.zeros((var.size, S))
        ind[model.space.code_of(var.name), np.arange(S)] = 1.0
        states[var.name] = ind @ mun
    outcomes = {o.name: np.full(D, np.nan) for o in hooks.outcomes}
    blocks = {o.name: np.full((C, D), np.nan) for o in hooks.outcomes}
    curves = {c.name: np.full((horizon + 1, len(c.groups), D), np.nan) for c in hooks.curves}
    block_mu = [np.where(structure.block[:, None] == c, mu, 0.0) for c in range(C)]

    def context(cols, dist, vector: bool) -> OutcomeContext:
        if vector:
            return OutcomeContext(model, params.iloc[:, cols], pi[:, :, cols], V[:, cols],
                                  dist, horizon=horizon, transitions=ct)
        d = cols
        return OutcomeContext(model, params.iloc[:, d], pi[:, :, d], V[:, d], dist,
                              horizon=horizon, transitions=ct)

    vector_out = [o for o in hooks.outcomes if batched and o.vectorized]
    single_out = [o for o in hooks.outcomes if not (batched and o.vectorized)]
    if batched:
        idx = np.arange(D)
        ctx = context(idx, mun, True)
        for c in hooks.curves:
            if c.vectorized:
                curves[c.name] = c(ctx)
        for o in vector_out:
            outcomes[o.name] = np.asarray(o.compute(ctx), dtype=float).reshape(D)
        if C > 1 and vector_out:
            # every block of every draw in one context: the draws axis holds C blocks of D
            tiled = np.tile(idx, C)
            dist = _normalized(np.concatenate(block_mu, axis=1))
            bctx = OutcomeContext(model, params.iloc[:, tiled], pi[:, :, tiled], V[:, tiled],
                                  dist, horizon=horizon, transitions=ct)
            for o in vector_out:
                blocks[o.name] = np.asarray(o.compute(bctx), dtype=float).reshape(C, D)
    for d in range(D):
        needs = single_out or any(not (batched and c.vectorized) for c in hooks.curves)
        if not needs:
            break
        ctx = context(d, mun[:, d], False)
        for c in hooks.curves:
            if not (batched and c.vectorized):
                curves[c.name][:, :, d] = c(ctx)
        for o in single_out:
            outcomes[o.name][d] = o(ctx)
        if C > 1:
            for c in range(C):
                m = block_mu[c][:, d]
                if m.sum() > 0:
                    bctx = context(d, m / m.sum(), False)
                    for o in single_out:
                        blocks[o.name][c, d] = o(bctx)
    return _Evaluated(V=V, mu=mu, outcomes=outcomes, blocks=blocks, choice=choice,
                      states=states, curves=curves)


def _welfare(base: _Evaluated, other: _Evaluated, G: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """CV in utils (D,) and by block (C, D): the baseline's distribution, each draw's values."""
    dV = other.V - base.V
    mu = base.mu
    with np.errstate(invalid="ignore", divide="ignore"):
        total = (mu * dV).sum(axis=0) / mu.sum(axis=0)
        by = (G @ (mu * dV)) / (G @ mu)
    return total, by


# ------------------------------------------------------------------------------ parameters


def _with_estimated_transitions(model: Model, results_or_params, notes: list[str]) -> Model:
    """The model with the transition tables the results' first stage estimated, when it
    estimated tables (a model whose transitions are fixed tables): the counterfactuals are then
    computed with the same transitions as the estimate. Parametric transitions need nothing:
    their estimates are among the parameters."""
    from estimators.first_stage import transition_model
    from estimators.results import EstimationResults

    if not isinstance(results_or_params, EstimationResults):
        return model
    estimated = transition_model(results_or_params)
    if estimated is results_or_params.model or len(model.transition_params):
        return model
    notes.append("Transitions: the tables estimated in the first stage of the "
                 f"{results_or_params.estimator} fit (not the model's defaults).")
    return model.replace(transitions=estimated.transitions())


# ------------------------------------------------------------------------------ solving


def _exact(model: Model, vec: np.ndarray, V0: np.ndarray, weights, solver: Solver
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One parameter vector solved on its own: ``V`` (S,), ``pi`` (S, A), ``mu`` (S,), or None
    when it cannot be solved (drawn transition probabilities outside [0, 1], no convergence,
    no unique stationary distribution)."""
    try:
        ct = model.compiled_transitions(vec)
        u = np.ascontiguousarray(model.utility(vec[: len(model.utility_params)]))
        fp = solve_arrays(u, model.feasible, model.beta, ct, solver, V0)
        if not fp.converged:
            return None
        mu = stationary_from_policy(model, fp.pi, weights=weights, params=vec)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None
    return fp.V, fp.pi, mu


def _solve_draws(model: Model, TH: np.ndarray, point, weights, varying: bool,
                 draw_models: list[Model] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """V (S, D), pi (S, A, D), mu (S, D), usable (D,) and the number of draws solved one by
    one. ``draw_models``: draw ``d`` is solved with ``draw_models[d]`` (drawn transition
    tables; one by one)."""
    V0, pi0, mu0, vec0 = point
    S, A = pi0.shape
    D = TH.shape[0]
    solver = Solver(on_failure="warn")
    ok = np.ones(D, dtype=bool)
    if varying:
        V = np.empty((S, D))
        pi = np.empty((S, A, D))
        mu = np.empty((S, D))
        todo = np.arange(D)
    else:
        K = len(model.utility_params)
        ct = model.compiled_transitions(vec0)
        U = utilities_batch(model.utility, TH[:, :K])
        fp = solve_batch(U, model.feasible, model.beta, ct, pi0, V0, solver=solver)
        V, pi = fp.V, fp.pi
        mu = np.full((S, D), np.nan)
        good = fp.converged
        if good.any():
            mu_g, done = stationary_batch(model, pi[:, :, good], pi0, mu0, weights=weights,
                                          params=vec0)
            mu[:, good] = mu_g
            good = good.copy()
            good[np.flatnonzero(good)[~done]] = False
        todo = np.flatnonzero(~good)
    for d in todo:
        got = _exact(model if draw_models is None else draw_models[d], TH[d], V0, weights,
                     solver)
        if got is None:  # left out; placeholders keep the arrays finite
            ok[d] = False
            got = (V0, pi0, mu0)
        V[:, d], pi[:, :, d], mu[:, d] = got
    return V, pi, mu, ok, (D if varying else len(todo))


# ------------------------------------------------------------------------------ intervals


def _product_index(levels: list[list], names: list[str]) -> pd.MultiIndex:
    """The product of ``levels`` in the given order."""
    grids = np.meshgrid(*[np.arange(len(v)) for v in levels], indexing="ij")
    return pd.MultiIndex(levels=levels, codes=[g.ravel() for g in grids], names=names)


# ------------------------------------------------------------------------------ the engine


def counterfactual(
    model: Model,
    results_or_params,
    scenarios: str | Scenario | Iterable | Mapping = "default",
    n_draws: int = DEFAULT_DRAWS,
    seed: int | None = 0,
    weights: Mapping | pd.Series | None = None,
    *,
    level: float = 0.95,
    horizon: int = 36,
    cov_type: str | None = None,
    money: Money | None = None,
    progress: Callable[[str], None] | None = None,
    draw_transitions: bool = True,
    _param_draws: np.ndarray | None = None,
    _transition_draws=None,
) -> CounterfactualReport:
    """Welfare, choice and state shares and the model's declared outcomes under scenarios.

    Solves the baseline and each scenario model at the parameters and computes, for each, the
    compensating variation per unit (utils, and money when the model names its money
    parameter), the choice shares and state-variable shares of its stationary distribution, and
    every outcome and curve the model declares (:class:`ddc.Hooks`), overall and by block of the
    permanent state variables (module docstring). With estimation results carrying a
    covariance, every figure gets a percentile interval from a parametric bootstrap of
    ``n_draws`` draws :math:`\\theta_d \\sim N(\\hat\\theta, \\hat\\Sigma)`.

    Parameters
    ----------
    model : ddc.Model or ddc.Mixture
        Any model. Results fitted to another model (another discount factor, states,
        parameters, ...) are refused with the difference named. A mixture of types gives a
        :class:`~simulations.counterfactual_mixture.MixtureCounterfactualReport` (by type and
        pooled; :func:`simulations.counterfactual_mixture.mixture_counterfactual`).
    results_or_params : estimators.EstimationResults or pandas.Series
        Estimation results (their parameters and covariance: intervals) or parameter values
        (no intervals).
    scenarios : str, Scenario, sequence or mapping
        ``"default"`` (the model's :attr:`ddc.Hooks.default_scenarios`), the name of one of
        them, a :class:`ddc.scenarios.Scenario`, or a list or dict of these (see
        :func:`ddc.scenarios.resolve_scenarios`).
    n_draws : int
        Bootstrap draws (0: no intervals); :data:`DEFAULT_DRAWS` by default.
    seed : int, optional
        Seed of the draws (:func:`numpy.random.default_rng`).
    weights : mapping or pandas.Series, optional
        Mass of each block of the permanent state variables in the stationary distributions
        (equal by default; see :func:`ddc.stationary.block_weights`).
    level : float
        Coverage of the intervals (0.95).
    horizon : int
        Last step of the declared curves (36).
    cov_type : str, optional
        Covariance kind of the results to draw from (their default kind if not given).
    money : ddc.Money, optional
        The money parameter that turns utils into money; the model's
        (:attr:`ddc.Hooks.money`) by default. Without one, welfare is in utils only.
    progress : callable, optional
        Called with each model's name when its draws are done (the CLI's progress bar).
    draw_transitions : bool
        Whether the draws carry the uncertainty of the transitions the results' first stage
        estimated (:func:`simulations.draws.draw_with_transitions`: cell-frequency tables drawn
        from their counts, transition parameters from their covariance, the utility
        parameters moving with them); True by default. Draws with drawn tables are solved one
        by one (slower than the batched draws of the utility parameters alone).
    _param_draws : numpy.ndarray, optional
        Internal: parameter draws (D, P) over ``model.param_names`` made by the caller
        instead of drawn here (the mixture draws all types' parameters jointly).
    _transition_draws : estimators.first_stage.FirstStageDraws, optional
        Internal: the caller's draws of the estimated tables, row for row with
        ``_param_draws``.

    Returns
    -------
    CounterfactualReport
        ``.summary`` (one row per scenario, baseline first: ``cv_per_<unit>`` and the declared
        outcomes), ``.welfare``, ``.changes``, ``.choice_shares``, ``.state_shares``,
        ``.by_block`` (also ``.by_<permanent variable>``), ``.curves`` (also
        ``.<curve name>``), ``.to_markdown()``, ``.to_html()``, ``.save(dir)``.

    Raises
    ------
    ValueError, KeyError, TypeError
        For results of another model, parameters that do not fit the model, or bad arguments;
        the message names the one at fault.

    Examples
    --------
    >>> import ddc
    >>> model = ddc.models.membership()
    >>> report = counterfactual(model, model.true_params, scenarios="monthly_price_up")
    >>> report.summary.loc["monthly_price_up", "cv_per_customer"].round(2)
    np.float64(-27.27)
    """
    start = time.perf_counter()
    from ddc.mixture import Mixture

    if isinstance(model, Mixture):  # by type and pooled: simulations.counterfactual_mixture
        from simulations.counterfactual_mixture import mixture_counterfactual

        return mixture_counterfactual(model, results_or_params, scenarios, n_draws, seed,
                                      weights, level=level, horizon=horizon,
                                      cov_type=cov_type, money=money, progress=progress,
                                      draw_transitions=draw_transitions,
                                      engine=counterfactual)
    if not isinstance(model, Model):
        raise TypeError(f"model must be a ddc.Model, got {type(model).__name__}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 0:
        raise ValueError(f"n_draws must be a non-negative integer, got {n_draws!r}")
    if not isinstance(level, float) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if not isinstance(horizon, (int, np.integer)) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
    horizon = int(horizon)
    money = model.hooks.money if money is None else money
    if money is not None and not isinstance(money, Money):
        raise TypeError(f"money must be a ddc.Money, got {type(money).__name__}")
    if money is not None and money.param not in model.utility_params:
        raise KeyError(f"the money parameter {money.param!r} is not a utility parameter of the "
                       f"model {model.name!r} (its utility parameters: "
                       f"{model.utility_params})")
    chosen = resolve_scenarios(scenarios, model)
    params, cov, source, notes = _params_and_cov(model, results_or_params, cov_type)
    model = _with_estimated_transitions(model, results_or_params, notes)
    alpha = money.utils_per_unit(params) if money is not None else None
    vec = params.to_numpy()
    unit = model.hooks.unit
    cv_col = f"cv_per_{unit}"
    outcome_names = [o.name for o in model.hooks.outcomes]
    figures = [cv_col, *outcome_names]

    models: list[tuple[str, Scenario | None, Model]] = [("baseline", None, model)]
    for s in chosen:
        models.append((str(s.name), s, s.apply(model)))
    structure = block_structure(model, vec)
    w_blocks = block_weights(structure, weights)
    G = _block_indicator(structure, model.n_states)
    C = structure.n_blocks

    # point estimates: ddc.solver and ddc.stationary on each model
    point: dict[str, _Evaluated] = {}
    solutions = {}
    pframe = params.to_frame()
    for name, _, m in models:
        sol = m.solve(params)
        mu = stationary_from_policy(m, sol.pi, weights=weights, params=params)
        solutions[name] = (sol.V, sol.pi, mu, vec)
        point[name] = _evaluate(m, pframe, sol.pi[:, :, None], sol.V[:, None], mu[:, None],
                                structure, horizon, sol.ct, batched=False)

    # draws
    TH = None
    draws: dict[str, _Evaluated] = {}
    ok = np.zeros(0, dtype=bool)
    n_used = 0
    if _param_draws is not None:  # draws made by the caller (the mixture's, per type)
        n_draws = len(_param_draws)
    if (cov is not None or _param_draws is not None) and n_draws > 0:
        first = _transition_draws
        if _param_draws is None:
            TH, first = draw_with_transitions(model, results_or_params, params, cov,
                                              int(n_draws), seed, notes, draw_transitions)
        else:
            TH = np.asarray(_param_draws, dtype=float)
        pos_t = [model.param_names.index(n) for n in model.transition_params.index]
        varying = first is not None or (bool(pos_t) and
                                        bool(np.any(np.ptp(TH[:, pos_t], axis=0) > 0)))
        drawn_base = None
        if first is not None:  # the estimated tables of each draw
            base_trans = model.transitions()
            drawn_base = [model.replace(transitions=first.transitions(base_trans, d))
                          for d in range(len(TH))]
        ok = np.ones(len(TH), dtype=bool)
        frame = pd.DataFrame(TH.T, index=params.index)
        n_single = 0
        for name, scn, m in models:
            per_draw = None if drawn_base is None else \
                [b if scn is None else scn.apply(b) for b in drawn_base]
            V, pi, mu, good, single = _solve_draws(m, TH, solutions[name], weights, varying,
                                                   per_draw)
            n_single += single
            ok &= good
            if varying:  # transitions differ by draw: one context per draw (and its blocks)
                md = [m] * len(TH) if per_draw is None else per_draw
                parts = [_evaluate(md[d], frame.iloc[:, [d]], pi[:, :, [d]], V[:, [d]],
                                   mu[:, [d]], structure, horizon,
                                   md[d].compiled_transitions(TH[d] if good[d] else vec),
                                   batched=True) for d in range(len(TH))]
                draws[name] = _stack(parts, V, mu)
            else:
                draws[name] = _evaluate(m, frame, pi, V, mu, structure, horizon,
                                        m.compiled_transitions(vec), batched=True)
            if progress is not None:
                progress(name)
        n_used = int(ok.sum())
        if n_single and not varying:
            notes.append(f"{n_single} model solutions of the draws were computed one by one "
                         "(the batched iteration did not converge for them).")
        if varying:
            notes.append("The draws move the transitions, so every draw was solved on its "
                         "own.")
        if n_used < n_draws:
            msg = (f"{n_draws - n_used} of {n_draws} bootstrap draws failed to solve and are "
                   "left out of the intervals")
            notes.append(msg + ".")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        if money is not None:
            a = TH[ok, model.param_names.index(money.param)]
            if (a <= 0).any():
                notes.append(f"{int((a <= 0).sum())} draws have a non-positive {money.param}; "
                             "their welfare in money has the wrong sign (the estimate is "
                             "imprecise).")
    intervals = n_used > 0

    names = [n for n, _, _ in models]
    # ---------------------------------------------------------------- per-draw figure arrays
    def figure_arrays(ev: dict[str, _Evaluated], alpha_d) -> dict:
        """name -> {"cv_utils": (D,), cv_col: (D,), outcome: (D,), "block": {...}}."""
        out = {}
        for n in names:
            cv_u, cv_b = _welfare(ev["baseline"], ev[n], G)
            f = {"cv_utils": cv_u}
            fb = {}
            if alpha_d is not None:
                f["cv_money"] = cv_u / alpha_d
                fb[cv_col] = cv_b / alpha_d[None, :]
            else:
                fb[cv_col] = cv_b
            f[cv_col] = f.get("cv_money", cv_u)
            for o in outcome_names:
                f[o] = ev[n].outcomes[o]
                fb[o] = ev[n].blocks[o]
            f["block"] = fb
            out[n] = f
        return out

    P = figure_arrays(point, None if alpha is None else np.array([alpha]))
    Dd = None
    if intervals:
        alpha_d = (None if money is None else TH[ok, model.param_names.index(money.param)])
        sub = {n: _subset(draws[n], ok) for n in names}
        Dd = figure_arrays(sub, alpha_d)

    def table(keys: list[str], rows_of: Callable[[dict], dict], index, paired: bool = False
              ) -> pd.DataFrame:
        """A table with one row per scenario (index), columns ``keys`` with intervals."""
        data = {}
        for k in keys:
            data[k] = np.concatenate([np.atleast_1d(rows_of(P[n])[k][..., 0]).ravel()
                                      for n in index])
            if Dd is not None:
                stack = [rows_of(Dd[n])[k] for n in index]
                if paired:
                    base = rows_of(Dd["baseline"])[k]
                    stack = [x if k.startswith("cv") else x - base for x in stack]
                lo, hi = _interval(np.stack(stack), level)
                data[f"{k}_lower"], data[f"{k}_upper"] = lo.ravel(), hi.ravel()
        return pd.DataFrame(data)[_ordered(keys, Dd is not None)]

    summary = table(figures, lambda f: f, names)
    summary.index = pd.Index(names, name="scenario")
    wcols = ["cv_utils"] + (["cv_money"] if money is not None else [])
    welfare = table(wcols, lambda f: f, names)
    welfare.index = pd.Index(names, name="scenario")
    changes = table(figures, lambda f: f, names[1:], paired=True)
    changes.index = pd.Index(names[1:], name="scenario")
    base_row = summary.loc["baseline", figures]
    for k in outcome_names:
        changes[k] = summary.loc[names[1:], k].to_numpy() - base_row[k]

    # by block
    by_block = None
    if C > 1:
        data = {}
        for k in figures:
            data[k] = np.concatenate([P[n]["block"][k][:, 0] for n in names])
            if Dd is not None:
                lo, hi = _interval(np.stack([Dd[n]["block"][k] for n in names]), level)
                data[f"{k}_lower"], data[f"{k}_upper"] = lo.ravel(), hi.ravel()
        keys = structure.keys if len(structure.names) == 1 else [tuple(k) for k in
                                                                   structure.keys]
        if len(structure.names) == 1:
            index = pd.MultiIndex.from_product([names, keys],
                                               names=["scenario", structure.names[0]])
        else:
            index = pd.MultiIndex.from_tuples([(n, *k) for n in names for k in keys],
                                              names=["scenario", *structure.names])
        by_block = pd.DataFrame(data, index=index)[_ordered(figures, Dd is not None)]

    # choice and state shares
    actions = list(model.actions)
    cdata = {}
    for j, a in enumerate(actions):
        cdata[a] = np.array([point[n].choice[j, 0] for n in names])
        if Dd is not None:
            lo, hi = _interval(np.stack([_subset(draws[n], ok).choice[j] for n in names]),
                               level)
            cdata[f"{a}_lower"], cdata[f"{a}_upper"] = lo, hi
    choice_shares = pd.DataFrame(cdata, index=pd.Index(names, name="scenario"))
    choice_shares = choice_shares[_ordered(actions, Dd is not None)]
    srows, sdata = [], {"share": []}
    if Dd is not None:
        sdata.update(share_lower=[], share_upper=[])
    for n in names:
        for var in model.space.variables:
            vals = point[n].states[var.name][:, 0]
            if Dd is not None:
                lo, hi = _interval(_subset(draws[n], ok).states[var.name], level)
            for i, label in enumerate(var.values):
                srows.append((n, var.name, str(label)))
                sdata["share"].append(vals[i])
                if Dd is not None:
                    sdata["share_lower"].append(lo[i])
                    sdata["share_upper"].append(hi[i])
    state_shares = pd.DataFrame(sdata, index=pd.MultiIndex.from_tuples(
        srows, names=["scenario", "variable", "value"]))

    # curves
    curves = {}
    for c in model.hooks.curves:
        values = np.stack([point[n].curves[c.name][:, :, 0] for n in names])  # (M, K+1, G)
        idx = _product_index([names, list(c.groups), list(range(horizon + 1))],
                             ["scenario", c.group_name, c.step_name])
        frame = pd.DataFrame({c.name: np.transpose(values, (0, 2, 1)).ravel()}, index=idx)
        if Dd is not None:
            lo, hi = _interval(np.stack([_subset(draws[n], ok).curves[c.name] for n in names]),
                               level)
            frame[f"{c.name}_lower"] = np.transpose(lo, (0, 2, 1)).ravel()
            frame[f"{c.name}_upper"] = np.transpose(hi, (0, 2, 1)).ravel()
        curves[c.name] = frame

    draws_frame = param_draws = None
    if Dd is not None:
        cols = {}
        for n in names:
            for k in [*figures, *(["cv_utils"] if money is not None else [])]:
                cols[(n, k)] = Dd[n][k]
        draws_frame = pd.DataFrame(cols)
        draws_frame.columns.names = ["scenario", "figure"]
        draws_frame.index = pd.Index(np.flatnonzero(ok), name="draw")  # the draw's number
        param_draws = pd.DataFrame(TH[ok], columns=list(params.index),
                                   index=draws_frame.index)

    block_draws = curve_draws = None
    if Dd is not None:
        if C > 1:
            block_draws = {n: dict(Dd[n]["block"]) for n in names}
        curve_draws = {c.name: np.stack([_subset(draws[n], ok).curves[c.name] for n in names])
                       for c in model.hooks.curves}

    std_errors = None
    if cov is not None:
        std_errors = pd.Series(np.sqrt(np.clip(np.diag(cov.to_numpy(dtype=float)), 0, None)),
                               index=cov.index, name="std_error")
    return CounterfactualReport(
        summary=summary,
        welfare=welfare,
        changes=changes,
        by_block=by_block,
        choice_shares=choice_shares,
        state_shares=state_shares,
        curves=curves,
        draws=draws_frame,
        param_draws=param_draws,
        scenarios={n: s for n, s, _ in models},
        params=params,
        std_errors=std_errors,
        source=source,
        model=model,
        n_draws=int(n_draws) if TH is not None else 0,
        n_used=n_used,
        seed=seed,
        level=level,
        horizon=horizon,
        money=money,
        block_names=tuple(structure.names),
        block_weights=w_blocks,
        identification_note=identification_note(model),
        notes=notes,
        seconds=time.perf_counter() - start,
        block_draws=block_draws,
        curve_draws=curve_draws,
    )


def _subset(ev: _Evaluated, ok: np.ndarray) -> _Evaluated:
    """The usable draws of an evaluation."""
    return _Evaluated(
        V=ev.V[:, ok], mu=ev.mu[:, ok],
        outcomes={k: v[ok] for k, v in ev.outcomes.items()},
        blocks={k: v[:, ok] for k, v in ev.blocks.items()},
        choice=ev.choice[:, ok],
        states={k: v[:, ok] for k, v in ev.states.items()},
        curves={k: v[:, :, ok] for k, v in ev.curves.items()},
    )


def _stack(parts: list[_Evaluated], V: np.ndarray, mu: np.ndarray) -> _Evaluated:
    """Evaluations of one draw each, stacked along the draws."""
    return _Evaluated(
        V=V, mu=mu,
        outcomes={k: np.concatenate([p.outcomes[k] for p in parts]) for k in parts[0].outcomes},
        blocks={k: np.concatenate([p.blocks[k] for p in parts], axis=1)
                for k in parts[0].blocks},
        choice=np.concatenate([p.choice for p in parts], axis=1),
        states={k: np.concatenate([p.states[k] for p in parts], axis=1)
                for k in parts[0].states},
        curves={k: np.concatenate([p.curves[k] for p in parts], axis=2)
                for k in parts[0].curves},
    )
