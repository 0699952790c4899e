"""Counterfactuals of a finite mixture of types (:class:`ddc.Mixture`): by type and pooled.

:func:`simulations.counterfactual` hands a :class:`ddc.Mixture` to :func:`mixture_counterfactual`.
Every type :math:`k` is the one-type model at its own parameters :math:`\\theta^{(k)}`
(:meth:`ddc.Mixture.type_model`); each type's baseline and scenarios are computed by the
one-type engine (:func:`simulations.counterfactual`: its stationary distribution
:math:`\\mu_k`, its compensating variation :math:`CV_k`, choice shares and declared outcomes).

Pooling rule: the population is the share-weighted union of the types, each type in its own
stationary distribution :math:`\\mu_k`, so the pooled distribution over (type, state) is
:math:`w_k \\mu_k(s)`. With type shares :math:`w_k`,

.. math::

    CV = \\sum_k w_k \\, CV_k, \\qquad
    \\text{share}(a) = \\sum_k w_k \\sum_s \\mu_k(s) \\pi_k(a \\mid s), \\qquad
    Y = \\frac{\\sum_k w_k d_k Y_k}{\\sum_k w_k d_k},

where :math:`Y_k` is a declared outcome computed on type :math:`k`'s stationary distribution
and :math:`d_k` its declared denominator (:attr:`ddc.Outcome.denominator`): for an outcome that
is a ratio of two averages, :math:`Y_k = E_{\\mu_k}[n] / E_{\\mu_k}[d]` (the share of members on
the annual plan, a lapse rate among members), this is exactly the outcome of the pooled
population; an outcome without a denominator is an average per unit (:math:`d_k = 1`), pooled
as :math:`\\sum_k w_k Y_k`. The CV in money divides each type's CV by its own money parameter
before weighting (:math:`\\sum_k w_k CV_k / \\alpha_k`). State shares are pooled like choice
shares (both with intervals). By block of the permanent variables (``by_block``, e.g. by
market) the same rule holds within each block, since every type's stationary distribution gives
the block the same mass. A declared curve of a cohort (:class:`ddc.Curve` with a
``denominator``, the cohort's size :math:`d_{kg}` per unit: the membership model's retention
curves) is the curve of the pooled cohort, whose type-:math:`k` part is :math:`w_k d_{kg}` of the
population and keeps :math:`w_k n_{kg}(t) = w_k d_{kg} c_{kg}(t)` at step :math:`t`:

.. math::

    c_g(t) = \\frac{\\sum_k w_k n_{kg}(t)}{\\sum_k w_k n_{kg}(0)}
           = \\frac{\\sum_k w_k d_{kg} c_{kg}(t)}{\\sum_k w_k d_{kg}};

a curve without a denominator is an average per unit, :math:`\\sum_k w_k c_{kg}(t)`. Every
type's own tables are in ``type_reports``.

Intervals: one parametric bootstrap over all the mixture's parameters,
:math:`(\\theta^{(1)}, \\dots, \\theta^{(K)}, w)_d \\sim N(\\hat\\vartheta, \\hat\\Sigma)` with
the mixture's covariance (type-specific, shared and share parameters jointly); at every draw
each type is solved at its drawn parameters (batched, as the one-type engine does) and pooled
with the drawn shares, so the percentile intervals of the pooled figures carry the
uncertainty of the type parameters and of the shares together. The shares are drawn on the
scale the estimator optimises, the multinomial logit :math:`\\gamma_l = \\log(w_l / w_0)`
(:func:`draw_mixture_params`): the results hold the delta-method covariance
:math:`\\hat\\Sigma_w = J \\hat\\Sigma_\\gamma J'` of the reported shares, with
:math:`J = \\partial w / \\partial \\gamma' = \\mathrm{diag}(w) - w w'` over
:math:`w_1, \\dots, w_{K-1}` (:func:`estimators.mixture.nfxp.mixture_results`), so the draws
are :math:`(\\theta, \\gamma)_d \\sim N\\big((\\hat\\theta, \\hat\\gamma),
T \\hat\\Sigma T'\\big)`, :math:`T = \\mathrm{diag}(I, J^{-1})`, mapped back by
:math:`w_l = e^{\\gamma_l} / (1 + \\sum_j e^{\\gamma_j})`: every drawn share lies inside the
simplex, however near 0 or 1 the estimate is (a normal draw of the shares themselves leaves it
there and would have to be dropped). Draws that fail to solve for any type are left out,
counted in the notes and warned about.

Transitions: with estimation results, every type is solved with the transitions the estimate
was made with (``res.transition_mixture``: the tables the first stage estimated, and each
type's own tables when they differ by type), as the one-type engine does; with a parameter
Series, with the mixture's own (each type's :attr:`ddc.Mixture.type_models`). The draws carry
the first stage's uncertainty too (``draw_transitions=True``, as in the one-type engine,
:func:`simulations.draws.draw_with_transitions`): every draw takes the shared tables from the
Dirichlet distribution of their counts (or the transition parameters from their covariance),
the mixture's parameters move with them through the sensitivity
:math:`B = \\partial\\hat\\vartheta / \\partial\\psi'` the mixture's Murphy-Topel correction
records (shares on the logit scale as above), and each type is solved at the draw with the drawn
tables; the type-specific tables estimated in the EM are held at their estimates.

Shares that vary over units (``shares_by``: the first state; ``share_covariates``:
time-invariant covariates) pool with each estimation unit's own shares: the population is the
estimation sample's distribution of first states and covariates, :math:`z_1, \\dots, z_N`
(:attr:`estimators.mixture.MixtureResults.share_design`), so the pooled weight of type
:math:`k` is

.. math::

    \\bar w_k(\\gamma) = \\frac{1}{N} \\sum_{i=1}^{N} w_k(z_i; \\gamma),

the shares' logit coefficients :math:`\\gamma` are drawn with the other parameters (they are
already on the logit scale) and every draw pools with :math:`\\bar w(\\gamma_d)`: the intervals
carry the uncertainty of :math:`\\gamma`, the units' characteristics held at the sample's.
Each type is still in its own stationary distribution :math:`\\mu_k` (the long run, where the
first state no longer matters). By block of the permanent variables the weight is the mean share
of the estimation units whose first state lies in the block (a unit's block for life), so a
mixture whose shares depend on a permanent variable (the market) weighs the types by market in
the by-block table; the summary keeps :math:`\\bar w_k` over all units and is then not the
block-weighted average of the by-block table (a note says so). Such mixtures need their
results (which hold the units' :math:`z_i`); parameter values alone are refused.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddc.hooks import Money, Outcome
from ddc.mixture import Mixture
from ddc.scenarios import Scenario
from simulations.draws import (
    DEFAULT_DRAWS,
    _draw_params,
    _first_stage_part,
    _interval,
    _ordered,
    _params_and_cov,
)
from simulations.report import CounterfactualReport

__all__ = ["MixtureCounterfactualReport", "draw_mixture_params", "mixture_counterfactual"]

_DEN = "mixture__"
"""Prefix of the extra outcomes the type models compute for pooling (ratio outcomes'
denominators, choice shares); they are dropped from the type reports."""


@dataclass(repr=False)
class MixtureCounterfactualReport(CounterfactualReport):
    """A :class:`~simulations.CounterfactualReport` of a mixture: the summary, welfare,
    changes, choice and state shares, the by-block table and the curves are **pooled** over
    the types (module docstring), and

    Attributes
    ----------
    by_type : pandas.DataFrame
        Index (type, scenario); the type's share (``share``), its ``cv_per_<unit>`` and
        declared outcomes, with intervals from the joint draws when there are draws.
    type_reports : list of CounterfactualReport
        Each type's full one-type report (by block, curves, state shares), at the type's
        parameters; its intervals come from the mixture's joint draws (the type's columns).
    type_shares : pandas.Series
        The shares :math:`w_k` at the estimate (with shares that vary over units, the pooled
        weights :math:`\\bar w_k`, their mean over the estimation units).
    mixture : ddc.Mixture
    """

    by_type: pd.DataFrame | None = None
    type_reports: list = field(default_factory=list)
    type_shares: pd.Series | None = None
    mixture: Mixture | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The pooled tables (as a one-type report's) and ``by_type.csv``."""
        out = super().tables()
        out["by_type.csv"] = self.by_type
        return out

    def as_text(self) -> str:
        """The pooled summary (as a one-type report's) and the figures by type, as text."""
        from estimators.tables import Table

        blocks = _by_type_blocks(self)
        _, caption, header, rows = blocks[1][:4]
        return (super().as_text() + "\n(pooled over the types)\n\n"
                + Table(header, rows, title=caption).as_text())

    def __repr__(self) -> str:
        return (f"MixtureCounterfactualReport({self.model_name!r}, types="
                f"{len(self.type_reports)}, scenarios={list(self.summary.index)}, "
                f"draws={self.n_used})")


def _shares_at(mix: Mixture, TH: np.ndarray, design: np.ndarray | None = None) -> np.ndarray:
    """(D, K) shares of parameter draws (D, P) over ``mix.param_names``; with varying shares,
    the pooled weights :math:`\\bar w_k` over the units' share ``design`` (module docstring)."""
    pos = [mix.param_names.index(n) for n in mix.share_names]
    rest = TH[:, pos]
    if mix.varying_shares:
        return _pooled_weights(mix, rest, design)
    return np.column_stack([1.0 - rest.sum(axis=1), rest])


def _block_weights_of_units(mix: Mixture, params: pd.Series, first_states: np.ndarray,
                            design: np.ndarray, TH: np.ndarray | None, notes: list
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled weights by block of the permanent variables, for shares that vary over units:
    in block :math:`c`, the mean of :math:`w_k(z_i)` over the estimation units whose first
    state lies in :math:`c` (their block for life). ``(C, K)`` at ``params`` and ``(C, D, K)``
    at the draws ``TH``; NaN for a block without estimation units (noted)."""
    from simulations.stationary import block_structure

    structure = block_structure(mix.model, mix.type_params(params, 0).to_numpy())
    unit_block = structure.block[np.asarray(first_states, dtype=np.int64)]
    C, K = structure.n_blocks, mix.n_types
    g0 = params[mix.share_names].to_numpy()[None, :]
    pos = [mix.param_names.index(n) for n in mix.share_names]
    w = np.full((C, K), np.nan)
    Wd = None if TH is None else np.full((C, len(TH), K), np.nan)
    empty = []
    for c in range(C):
        rows = unit_block == c
        if not rows.any():
            empty.append(structure.keys[c])
            continue
        w[c] = _pooled_weights(mix, g0, design[rows])[0]
        if TH is not None:
            Wd[c] = _pooled_weights(mix, TH[:, pos], design[rows])
    notes.append("By block: each block pools the types with the mean share of the estimation "
                 "units whose first state is in the block (the summary uses the mean over all "
                 "units; when the shares vary with a permanent variable the summary is "
                 "therefore not the block-weighted average of the by-block table).")
    if empty:
        notes.append(f"No estimation unit starts in block(s) {empty}: their pooled figures are "
                     "NaN.")
    return w, Wd


def _pooled_weights(mix: Mixture, gammas: np.ndarray, design: np.ndarray) -> np.ndarray:
    """(D, K) mean over the units of their type shares, for logit coefficients ``gammas``
    (D, (K-1) C) over ``mix.share_names`` and the units' share ``design`` (N, C)."""
    Z, n = np.unique(np.asarray(design, dtype=float), axis=0, return_counts=True)
    wt = n / n.sum()  # the distinct rows of z_i with their frequencies
    K = mix.n_types
    out = np.empty((len(gammas), K))
    for d, g in enumerate(np.asarray(gammas, dtype=float)):  # a loop over draws, not units
        eta = np.column_stack([np.zeros(len(Z)), Z @ g.reshape(K - 1, -1).T])
        eta -= eta.max(axis=1, keepdims=True)
        w = np.exp(eta)
        out[d] = wt @ (w / w.sum(axis=1, keepdims=True))
    return out


def draw_mixture_params(mix: Mixture, params: pd.Series, cov: pd.DataFrame, n_draws: int,
                        seed, shift: np.ndarray | None = None) -> np.ndarray:
    """Parameter draws (D, P) over ``mix.param_names`` with the shares drawn on the logit scale.

    The constant shares :math:`w_1, \\dots, w_{K-1}` (``share[1]``, ...) are carried to the
    estimator's coordinates :math:`\\gamma_l = \\log(w_l / w_0)`, whose covariance is
    :math:`J^{-1} \\hat\\Sigma_w J^{-T}` with
    :math:`J = \\partial w / \\partial \\gamma' = \\mathrm{diag}(w) - w w'` (the Jacobian
    the estimator used to report :math:`\\hat\\Sigma_w`; the covariances with the other
    parameters are carried by the same :math:`J^{-1}`); the draws are normal there and
    mapped back, :math:`w_l = e^{\\gamma_l} / (1 + \\sum_j e^{\\gamma_j})`, so they stay
    inside the simplex. Parameters outside the covariance are held at their values; without
    shares in the covariance (one type, shares held fixed) this is
    :func:`simulations.draws._draw_params`. ``shift`` (D, P) over ``cov.index``, in the
    reported coordinates, is added to the draws (carried to the logit scale by the same
    :math:`J^{-1}`): the first stage's part :math:`B (\\psi_d - \\hat\\psi)` of
    :func:`simulations.draws._first_stage_part`.

    Raises
    ------
    ValueError
        A share at 0 or 1 (its logit is infinite; such shares cannot come from the estimator,
        which optimises the logit), or only some shares in the covariance.
    """
    names = list(cov.index)
    inside = [n for n in mix.share_names if n in names]
    if mix.varying_shares or not inside:  # logit coefficients are drawn as they are
        TH = _draw_params(params, cov, n_draws, seed)
        if shift is not None:
            TH[:, [mix.param_names.index(n) for n in names]] += shift
        return TH
    if len(inside) != len(mix.share_names):
        missing = [n for n in mix.share_names if n not in names]
        raise ValueError(f"the covariance has some type shares but not {missing}; the shares "
                         "are drawn jointly (pass results whose covariance has all of "
                         f"{mix.share_names})")
    w = mix.shares(params)
    if np.any(w <= 0) or np.any(w >= 1):
        k = int(np.flatnonzero((w <= 0) | (w >= 1))[0])
        raise ValueError(f"share[{k}] = {w[k]:.6g} is on the boundary of [0, 1]: its logit is "
                         "infinite, so no intervals can be drawn for it (use n_draws=0, or fewer "
                         "types)")
    wr = w[1:]
    J = np.diag(wr) - np.outer(wr, wr)
    T = np.eye(len(names))
    pos = [names.index(n) for n in mix.share_names]
    T[np.ix_(pos, pos)] = np.linalg.inv(J)
    C = cov.loc[names, names].to_numpy(dtype=float)
    x = params.copy()
    x[mix.share_names] = np.log(wr / w[0])
    cov_x = pd.DataFrame(T @ C @ T.T, index=names, columns=names)
    TH = _draw_params(x, cov_x, n_draws, seed)
    if shift is not None:
        TH[:, [mix.param_names.index(n) for n in names]] += shift @ T.T
    at = [mix.param_names.index(n) for n in mix.share_names]
    e = np.exp(TH[:, at] - np.maximum(TH[:, at].max(axis=1, keepdims=True), 0.0))
    base = np.exp(-np.maximum(TH[:, at].max(axis=1, keepdims=True), 0.0))
    TH[:, at] = e / (base + e.sum(axis=1, keepdims=True))
    return TH


def mixture_counterfactual(
    mix: Mixture,
    results_or_params,
    scenarios: str | Scenario | Iterable | Mapping = "default",
    n_draws: int | None = None,
    seed: int | None = 0,
    weights: Mapping | pd.Series | None = None,
    *,
    level: float = 0.95,
    horizon: int = 36,
    cov_type: str | None = None,
    money: Money | None = None,
    progress: Callable[[str], None] | None = None,
    draw_transitions: bool = True,
    engine: Callable[..., CounterfactualReport] | None = None,
) -> MixtureCounterfactualReport:
    """Counterfactuals of a mixture of types, by type and pooled (module docstring).

    Called by :func:`simulations.counterfactual` when its model is a :class:`ddc.Mixture`;
    the arguments are the same (``weights``, ``horizon``, ``money``, ``cov_type`` apply to each
    type). Pooling: :math:`CV = \\sum_k w_k CV_k` and every declared outcome and choice or state
    share :math:`\\sum_k w_k Y_k`, each type in its own stationary distribution.

    Parameters
    ----------
    mix : ddc.Mixture
    results_or_params : estimators.EstimationResults or pandas.Series
        Results of this mixture (``NFXP(mix).fit(...)``; their covariance gives the intervals)
        or parameter values over ``mix.param_names`` (no intervals).
    engine : callable
        The one-type engine each type goes through (:func:`simulations.counterfactual`, which
        passes itself; given as an argument so that the two modules do not import each other).

    Returns
    -------
    MixtureCounterfactualReport
        Pooled tables as :class:`~simulations.CounterfactualReport` (``.summary``, ...),
        plus ``.by_type`` and ``.type_reports``.

    Raises
    ------
    ValueError
        Results of another mixture or model (their fingerprint differs; the difference is
        named), shares that vary over units given as parameter values (without the units'
        share design of results), bad arguments.
    """
    from estimators.results import EstimationResults

    if engine is None:
        raise TypeError("mixture_counterfactual needs the one-type engine: call "
                        "simulations.counterfactual(mix, ...)")

    start = time.perf_counter()
    n_draws = DEFAULT_DRAWS if n_draws is None else n_draws
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 0:
        raise ValueError(f"n_draws must be a non-negative integer, got {n_draws!r}")
    design = None
    if mix.varying_shares:
        design = getattr(results_or_params, "share_design", None)
        if design is None:
            raise ValueError(
                f"the type shares of {mix.name!r} vary with {mix.shares_depend_on()}: pooling "
                "weights each type by its mean share over the estimation sample's units, which "
                "only the estimation results hold; pass the results of NFXP(mix).fit (or "
                "CCP/NPL, or their file loaded with estimators.load_results), not parameter "
                "values")
        design = np.asarray(design, dtype=float)
        if design.ndim != 2 or design.shape[1] != len(mix.share_columns):
            raise ValueError(f"the results' share design has shape {design.shape}; the mixture's "
                             f"shares have the {len(mix.share_columns)} columns "
                             f"{mix.share_columns}")
    if isinstance(results_or_params, EstimationResults) and \
            not isinstance(results_or_params.model, Mixture) and \
            results_or_params.fingerprint is None:
        raise ValueError("the results are not results of a mixture (their model is "
                         f"{type(results_or_params.model).__name__}); pass results of "
                         "NFXP(mix).fit")
    params, cov, source, notes = _params_and_cov(mix, results_or_params, cov_type)
    source = source.replace(" estimate", f" estimate of {mix.name}", 1) \
        if isinstance(results_or_params, EstimationResults) else f"{source} ({mix.name})"

    K = mix.n_types
    if mix.varying_shares:
        w = _pooled_weights(mix, params[mix.share_names].to_numpy()[None, :], design)[0]
        notes.append(
            f"Type shares vary with {mix.shares_depend_on()}: each type is weighted by its mean "
            f"share over the {len(design):,} estimation units, (1/N) sum_i w_k(z_i) (the "
            "sample's distribution of first states and covariates); the intervals draw the "
            "shares' logit coefficients with the other parameters, the units' characteristics "
            "held fixed.")
    else:
        w = mix.shares(params)
    solve_mix = _transition_mixture(mix, results_or_params, notes)
    TH = fs_draws = None
    valid = np.zeros(0, dtype=bool)
    if cov is not None and n_draws > 0:
        part = _first_stage_part(list(cov.index), results_or_params, cov, int(n_draws), seed,
                                 notes, draw_transitions)
        if part is None:
            TH = draw_mixture_params(mix, params, cov, int(n_draws), seed)
        else:
            fs_draws, own, shift = part
            TH = draw_mixture_params(mix, params, own, int(n_draws), seed, shift)
            if fs_draws.tables is None:  # transition parameters: in the draws' columns
                TH[:, [mix.param_names.index(n) for n in fs_draws.names]] = fs_draws.values
                fs_draws = None
            else:  # tables shared by the types (the EM's type-specific ones stay as estimated)
                typed = set(getattr(solve_mix, "transitions_by_type", ()) or ())
                if typed:
                    notes.append(f"The type-specific tables of {sorted(typed)} estimated in "
                                 "the EM are held at their estimates in the draws.")
                fs_draws = dataclasses.replace(fs_draws, tables=[
                    {v: t for v, t in tab.items() if v not in typed}
                    for tab in fs_draws.tables])
        valid = np.ones(len(TH), dtype=bool)
        if K > 1:
            notes.append("Type shares drawn on the multinomial-logit scale the estimator "
                         "optimises (log(w_k / w_0), covariance by the delta method), so every "
                         "drawn share lies inside [0, 1].")
    draws_on = TH is not None

    # every ratio outcome's denominator is computed by the engine as an extra outcome
    dens = {o.name: f"{_DEN}den_{o.name}" for o in mix.model.hooks.outcomes
            if o.denominator is not None}
    extra = tuple(Outcome(dens[o.name], o.denominator, vectorized=o.vectorized)
                  for o in mix.model.hooks.outcomes if o.denominator is not None)
    # choice shares as outcomes too, so that the pooled shares get intervals
    choice_names = [f"{_DEN}choice_{j}" for j in range(len(mix.actions))]
    extra += tuple(Outcome(n, _choice_share(j), vectorized=True)
                   for j, n in enumerate(choice_names))
    # and the share of each value of each state variable
    space = mix.model.space
    state_keys = [(var.name, i, str(label), f"{_DEN}state_{var.name}_{i}")
                  for var in space.variables for i, label in enumerate(var.values)]
    extra += tuple(Outcome(on, _state_share(space.code_of(v) == i), vectorized=True)
                   for v, i, _, on in state_keys)
    # and the declared curves' denominators (cohort sizes), one outcome per group
    curve_dens = {c.name: [f"{_DEN}cden_{c.name}_{g}" for g in range(len(c.groups))]
                  for c in mix.model.hooks.curves if c.denominator is not None}
    extra += tuple(Outcome(on, _curve_denominator(c.denominator, g), vectorized=c.vectorized)
                   for c in mix.model.hooks.curves if c.name in curve_dens
                   for g, on in enumerate(curve_dens[c.name]))
    reports: list[CounterfactualReport] = []
    type_models = []
    for k in range(K):
        plain = solve_mix.type_model(params, k)
        type_models.append(plain)
        tm = plain.replace(hooks=dataclasses.replace(
            plain.hooks, outcomes=(*plain.hooks.outcomes, *extra)))
        kw = dict(scenarios=scenarios, seed=seed, weights=weights, level=level,
                  horizon=horizon, money=money,
                  progress=None if progress is None else (lambda n, k=k: progress(
                      f"type {k}: {n}")))
        if draws_on:
            rep = engine(tm, mix.type_params(params, k), n_draws=int(n_draws),
                         _param_draws=TH[:, mix.type_index[k]], _transition_draws=fs_draws,
                         **kw)
        else:
            rep = engine(tm, mix.type_params(params, k), n_draws=0, **kw)
        reports.append(rep)

    first = reports[0]
    names = list(first.summary.index)
    figures = [f for f in first.figure_names if not f.startswith(_DEN)]
    money_on = first.money is not None
    use = None
    if draws_on:
        use = valid.copy()
        for rep in reports:
            solved = np.zeros(len(TH), dtype=bool)
            if rep.draws is not None:
                solved[rep.draws.index.to_numpy()] = True
            use &= solved
        n_failed = int(valid.sum() - use.sum())
        if n_failed:
            msg = (f"{n_failed} draws failed to solve for some type and are left out of the "
                   "pooled intervals")
            notes.append(msg + ".")
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    n_used = int(use.sum()) if use is not None else 0
    intervals = n_used > 0
    idx = np.flatnonzero(use) if intervals else np.zeros(0, dtype=int)
    Wd = _shares_at(mix, TH[idx], design) if intervals else None  # (D, K)

    def type_draws(k: int, scn: str, fig: str) -> np.ndarray:
        return reports[k].draws.loc[idx, (scn, fig)].to_numpy()

    def pool(weights: list, values: list, fig: str, denoms: list | None):
        """sum_k w_k Y_k, or sum_k w_k d_k Y_k / sum_k w_k d_k for a ratio outcome."""
        if denoms is None:
            return sum(wk * y for wk, y in zip(weights, values, strict=True))
        num = sum(wk * d * y for wk, d, y in zip(weights, denoms, values, strict=True))
        den = sum(wk * d for wk, d in zip(weights, denoms, strict=True))
        return num / den

    def pooled_draws(scn: str, fig: str) -> np.ndarray:
        denoms = ([type_draws(k, scn, dens[fig]) for k in range(K)] if fig in dens else None)
        return pool([Wd[:, k] for k in range(K)], [type_draws(k, scn, fig) for k in range(K)],
                    fig, denoms)

    def pooled_point(frame_of: Callable[[CounterfactualReport], pd.DataFrame], row, col):
        denoms = ([reports[k].summary.loc[row, dens[col]] for k in range(K)]
                  if col in dens else None)
        return float(pool(list(w), [frame_of(reports[k]).loc[row, col] for k in range(K)],
                          col, denoms))

    # ---------------------------------------------------------------- pooled summary etc.
    def table(keys: list[str], rows: list[str], paired: bool = False) -> pd.DataFrame:
        data: dict[str, list] = {}
        for c in keys:
            data[c] = [pooled_point(_summary_of, n, c) for n in rows]
            if intervals:
                stack = []
                for n in rows:
                    x = pooled_draws(n, c)
                    if paired and not c.startswith("cv"):
                        x = x - pooled_draws("baseline", c)
                    stack.append(x)
                lo, hi = _interval(np.stack(stack), level)
                data[f"{c}_lower"], data[f"{c}_upper"] = list(lo), list(hi)
        return pd.DataFrame(data, index=pd.Index(rows, name="scenario"))[
            _ordered(keys, intervals)]

    summary = table(figures, names)
    wcols = ["cv_utils"] + (["cv_money"] if money_on else [])
    welfare = pd.DataFrame(index=pd.Index(names, name="scenario"))
    for c in wcols:
        welfare[c] = [pooled_point(lambda r: r.welfare, n, c) for n in names]
        if intervals:
            fig = "cv_utils" if c == "cv_utils" else first.cv_column
            lo, hi = _interval(np.stack([pooled_draws(n, fig) for n in names]), level)
            welfare[f"{c}_lower"], welfare[f"{c}_upper"] = lo, hi
    welfare = welfare[_ordered(wcols, intervals)]
    changes = table(figures, names[1:], paired=True)
    for o in figures[1:]:
        changes[o] = summary.loc[names[1:], o].to_numpy() - summary.loc["baseline", o]

    # choice and state shares: linear in the distribution
    choice_shares = pd.DataFrame(index=pd.Index(names, name="scenario"))
    for a, cn in zip(mix.actions, choice_names, strict=True):
        choice_shares[a] = [pooled_point(_summary_of, n, cn) for n in names]
        if intervals:
            lo, hi = _interval(np.stack([pooled_draws(n, cn) for n in names]), level)
            choice_shares[f"{a}_lower"], choice_shares[f"{a}_upper"] = lo, hi
    choice_shares = choice_shares[_ordered(list(mix.actions), intervals)]
    sdata: dict[str, list] = {"share": []}
    if intervals:
        sdata.update(share_lower=[], share_upper=[])
    srows = []
    for n in names:
        for v, _, label, on in state_keys:
            srows.append((n, v, label))
            sdata["share"].append(pooled_point(_summary_of, n, on))
            if intervals:
                lo, hi = _interval(pooled_draws(n, on), level)
                sdata["share_lower"].append(float(lo))
                sdata["share_upper"].append(float(hi))
    state_shares = pd.DataFrame(sdata, index=pd.MultiIndex.from_tuples(
        srows, names=["scenario", "variable", "value"]))
    w_blocks, Wd_blocks = w, Wd
    if mix.varying_shares and first.by_block is not None:  # each block its own units' shares
        w_blocks, Wd_blocks = _block_weights_of_units(
            mix, params, results_or_params.first_states, design,
            TH[idx] if intervals else None, notes)
    by_block = _pooled_by_block(reports, figures, dens, w_blocks, Wd_blocks, idx, level)
    curves = _pooled_curves(mix.model.hooks.curves, reports, curve_dens, names, w, Wd, idx,
                            level)
    notes.append("Pooled figures: CV and every declared outcome and share are the type-share "
                 "weighted sums of the types' figures, each type in its own stationary "
                 "distribution; an outcome that is a ratio (it declares a denominator) is "
                 "weighted by share times the type's denominator, which gives the figure of "
                 "the pooled population (simulations.counterfactual_mixture). By block the "
                 "same within each block (every type has the block's mass); a curve of a "
                 "cohort (it declares the cohort's size) is the curve of the pooled cohort, "
                 "sum_k w_k n_k(t) / sum_k w_k n_k(0).")

    # ---------------------------------------------------------------- by type
    rows, data = [], {"share": []}
    if intervals:
        data.update(share_lower=[], share_upper=[])
    for c in figures:
        data[c] = []
        if intervals:
            data[f"{c}_lower"], data[f"{c}_upper"] = [], []
    for k in range(K):
        if intervals:
            slo, shi = _interval(Wd[:, k], level)
        for n in names:
            rows.append((k, n))
            data["share"].append(w[k])
            if intervals:
                data["share_lower"].append(float(slo))
                data["share_upper"].append(float(shi))
            for c in figures:
                data[c].append(float(reports[k].summary.loc[n, c]))
                if intervals:
                    lo, hi = _interval(type_draws(k, n, c), level)
                    data[f"{c}_lower"].append(float(lo))
                    data[f"{c}_upper"].append(float(hi))
    by_type = pd.DataFrame(data, index=pd.MultiIndex.from_tuples(rows,
                                                                 names=["type", "scenario"]))
    by_type = by_type[_ordered(["share", *figures], intervals)]

    draws_frame = param_draws = None
    if intervals:
        cols = {(n, c): pooled_draws(n, c) for n in names
                for c in [*figures, *(["cv_utils"] if money_on else [])]}
        draws_frame = pd.DataFrame(cols, index=pd.Index(idx, name="draw"))
        draws_frame.columns.names = ["scenario", "figure"]
        param_draws = pd.DataFrame(TH[idx], columns=mix.param_names,
                                   index=pd.Index(idx, name="draw"))
    for k, rep in enumerate(reports):  # the type reports show the type's own outcomes only
        _strip_denominators(rep, type_models[k])

    std_errors = None
    if cov is not None:
        std_errors = pd.Series(np.sqrt(np.clip(np.diag(cov.to_numpy(dtype=float)), 0, None)),
                               index=cov.index, name="std_error")
    report = MixtureCounterfactualReport(
        summary=summary, welfare=welfare, changes=changes, by_block=by_block,
        choice_shares=choice_shares, state_shares=state_shares, curves=curves,
        draws=draws_frame, param_draws=param_draws, scenarios=first.scenarios,
        params=params, std_errors=std_errors, source=source,
        model=mix.model.replace(name=mix.name),
        n_draws=int(n_draws) if draws_on else 0, n_used=n_used, seed=seed, level=level,
        horizon=horizon, money=first.money, block_names=first.block_names,
        block_weights=first.block_weights,
        identification_note=first.identification_note, notes=notes,
        seconds=time.perf_counter() - start,
        by_type=by_type, type_reports=reports,
        type_shares=pd.Series(w, index=pd.RangeIndex(K, name="type"), name="share"),
        mixture=mix,
    )
    report.add_section("By type", _by_type_blocks(report), where="end")
    return report


def _transition_mixture(mix: Mixture, results_or_params, notes: list[str]) -> Mixture:
    """The mixture whose types are solved: the results' :attr:`transition_mixture` (the
    transitions the estimate was made with), or ``mix`` for a parameter Series."""
    est = getattr(results_or_params, "transition_mixture", None)
    if not isinstance(est, Mixture) or est is mix or est is results_or_params.model:
        return mix
    shared = est.model is not mix.model
    typed = list(est.transitions_by_type)
    what = []
    if shared:
        what.append("the tables estimated in the first stage")
    if typed:
        what.append(f"each type's own tables of {typed} estimated in the EM")
    notes.append(f"Transitions: {' and '.join(what) or 'those'} of the "
                 f"{results_or_params.estimator} fit (not the model's defaults).")
    return est


def _choice_share(j: int) -> Callable:
    """The share of unit-periods choosing action ``j`` under the context's distribution
    (vectorized: arrays with a draws axis)."""
    def share(ctx) -> np.ndarray:
        mu = np.asarray(ctx.distribution, dtype=float)
        return (mu * ctx.ccp[:, j]).sum(axis=0) / mu.sum(axis=0)

    return share


def _state_share(indicator: np.ndarray) -> Callable:
    """The share of the context's distribution on the states of ``indicator`` (S,)
    (vectorized: arrays with a draws axis)."""
    ind = np.asarray(indicator, dtype=float)

    def share(ctx) -> np.ndarray:
        mu = np.asarray(ctx.distribution, dtype=float)
        return ind @ mu / mu.sum(axis=0)

    return share


def _curve_denominator(denominator: Callable, g: int) -> Callable:
    """Group ``g``'s entry of a curve's denominator, as an outcome."""
    def den(ctx) -> np.ndarray:
        return np.asarray(denominator(ctx), dtype=float)[g]

    return den


def _positions(rep: CounterfactualReport, idx: np.ndarray) -> np.ndarray:
    """Where the draws ``idx`` (draw numbers) sit in a type report's draw arrays."""
    return np.searchsorted(rep.draws.index.to_numpy(), idx)


def _pool_arrays(w: np.ndarray, values: list, denoms: list | None) -> np.ndarray:
    """:math:`\\sum_k w_k Y_k`, or :math:`\\sum_k w_k d_k Y_k / \\sum_k w_k d_k` (a ratio;
    a type without mass in the denominator adds nothing, NaN where no type has any). ``w``:
    (K,) or (D, K) with the draws last in ``values``."""
    K = len(values)
    wk = [w[..., k] for k in range(K)]
    if denoms is None:
        return sum(a * np.asarray(y) for a, y in zip(wk, values, strict=True))
    num = sum(np.where(d > 0, a * d * np.nan_to_num(np.asarray(y)), 0.0)
              for a, d, y in zip(wk, denoms, values, strict=True))
    den = sum(a * np.asarray(d) for a, d in zip(wk, denoms, strict=True))
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def _pooled_by_block(reports: list, figures: list[str], dens: dict, w: np.ndarray,
                     Wd: np.ndarray | None, idx: np.ndarray, level: float
                     ) -> pd.DataFrame | None:
    """The by-block table pooled over the types.

    Every type has the same mass in a block (the blocks of the permanent variables get fixed
    weights in every stationary distribution), so within a block the types weigh
    :math:`w_k` as in the whole population: :math:`CV_c = \\sum_k w_k CV_{kc}` and
    :math:`Y_c = \\sum_k w_k d_{kc} Y_{kc} / \\sum_k w_k d_{kc}` with :math:`Y_{kc}` and
    :math:`d_{kc}` type :math:`k`'s outcome and denominator under its steady state in block
    :math:`c`."""
    first = reports[0]
    if first.by_block is None:
        return None
    names = list(first.summary.index)
    intervals = Wd is not None
    data: dict[str, np.ndarray] = {}
    for c in figures:
        den = dens.get(c)
        point = []
        lows, highs = [], []
        for n in names:
            vals = [r.by_block.loc[n, c].to_numpy(dtype=float) for r in reports]
            ds = None if den is None else [r.by_block.loc[n, den].to_numpy(dtype=float)
                                           for r in reports]
            point.append(_pool_arrays(w, vals, ds))
            if intervals:
                pos = [_positions(r, idx) for r in reports]
                vd = [r.block_draws[n][c][:, p] for r, p in zip(reports, pos, strict=True)]
                dd = None if den is None else [r.block_draws[n][den][:, p]
                                               for r, p in zip(reports, pos, strict=True)]
                lo, hi = _interval(_pool_arrays(Wd, vd, dd), level)
                lows.append(lo)
                highs.append(hi)
        data[c] = np.concatenate(point)
        if intervals:
            data[f"{c}_lower"], data[f"{c}_upper"] = np.concatenate(lows), np.concatenate(highs)
    return pd.DataFrame(data, index=first.by_block.index)[_ordered(figures, intervals)]


def _pooled_curves(curves, reports: list, curve_dens: dict, names: list[str], w: np.ndarray,
                   Wd: np.ndarray | None, idx: np.ndarray, level: float) -> dict:
    """The declared curves pooled over the types.

    A curve that declares its cohort's size :math:`d_g` (:attr:`ddc.Curve.denominator`) is
    the curve of the pooled cohort: type :math:`k`'s cohort is :math:`w_k d_{kg}` of the
    population and keeps :math:`w_k d_{kg} c_{kg}(t)` of it at step :math:`t`, so
    :math:`c_g(t) = \\sum_k w_k n_{kg}(t) / \\sum_k w_k n_{kg}(0)
    = \\sum_k w_k d_{kg} c_{kg}(t) / \\sum_k w_k d_{kg}`; a curve without one is an average
    per unit, :math:`\\sum_k w_k c_{kg}(t)`."""
    out = {}
    intervals = Wd is not None
    for c in curves:
        frame0 = reports[0].curves[c.name]
        M, G = len(names), len(c.groups)
        shape = (M, G, -1)  # the frame's order: scenario, group, step
        vals = [r.curves[c.name][c.name].to_numpy(dtype=float).reshape(shape)
                for r in reports]
        den_cols = curve_dens.get(c.name)
        ds = None if den_cols is None else [
            r.summary.loc[names, den_cols].to_numpy(dtype=float)[:, :, None] for r in reports]
        frame = pd.DataFrame({c.name: _pool_arrays(w, vals, ds).ravel()}, index=frame0.index)
        if intervals:
            pos = [_positions(r, idx) for r in reports]
            # (M, steps, G, D) -> (M, G, steps, D)
            vd = [np.transpose(r.curve_draws[c.name][..., p], (0, 2, 1, 3))
                  for r, p in zip(reports, pos, strict=True)]
            dd = None
            if den_cols is not None:
                dd = [np.stack([np.stack([r.draws.loc[:, (n, col)].to_numpy()[p]
                                          for col in den_cols]) for n in names])[:, :, None, :]
                      for r, p in zip(reports, pos, strict=True)]
            lo, hi = _interval(_pool_arrays(Wd, vd, dd), level)
            frame[f"{c.name}_lower"] = lo.ravel()
            frame[f"{c.name}_upper"] = hi.ravel()
        out[c.name] = frame
    return out


def _summary_of(rep: CounterfactualReport) -> pd.DataFrame:
    return rep.summary


def _strip_denominators(rep: CounterfactualReport, model) -> None:
    """Drop the denominators' columns from a type report and give it the type's model."""
    for attr in ("summary", "changes", "by_block"):
        frame = getattr(rep, attr)
        if frame is not None:
            setattr(rep, attr, frame[[c for c in frame.columns
                                      if not str(c).startswith(_DEN)]])
    if rep.draws is not None:
        rep.draws = rep.draws.loc[:, [c for c in rep.draws.columns
                                      if not str(c[1]).startswith(_DEN)]]
    if rep.block_draws is not None:
        rep.block_draws = {n: {c: v for c, v in figs.items() if not str(c).startswith(_DEN)}
                           for n, figs in rep.block_draws.items()}
    rep.model = model


def _by_type_blocks(report: MixtureCounterfactualReport) -> list:
    """The document's "By type" section: one table, rows (type, scenario)."""
    units, labels = report.units(), report.labels()
    figs = report.figure_names
    bt = report.by_type
    header = ["type", "scenario", "share", *[labels[c] for c in figs]]
    rows = []
    for key in bt.index:
        rows.append([str(key[0]), str(key[1]),
                     report._cell(bt, key, "share", "share"),
                     *[report._cell(bt, key, c, units[c]) for c in figs]])
    text = ("Each type's figures at its own parameters and in its own stationary distribution; "
            "the summary pools them with the type shares (CV and outcomes: "
            "sum over types of share times the type's figure).")
    return [("p", text), ("table", "Figures by type", header,
                          rows, "ll" + "r" * (len(header) - 2))]

