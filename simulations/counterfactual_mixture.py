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
shares (both with intervals); the blocks of the permanent variables and the declared curves are
in each type's own report (``type_reports``).

Intervals: one parametric bootstrap over all the mixture's parameters,
:math:`(\\theta^{(1)}, \\dots, \\theta^{(K)}, w)_d \\sim N(\\hat\\vartheta, \\hat\\Sigma)` with
the mixture's covariance (type-specific, shared and share parameters jointly); at every draw
each type is solved at its drawn parameters (batched, as the one-type engine does) and pooled
with the drawn shares, so the percentile intervals of the pooled figures carry the
uncertainty of the type parameters and of the shares together. Draws whose shares leave the
simplex (possible when a share is near 0 or 1, since the normal approximation is not bounded)
cannot be pooled: they are left out, counted in the notes and warned about, as are draws that
fail to solve for any type.

Transitions: with estimation results, every type is solved with the transitions the estimate
was made with (``res.transition_mixture``: the tables the first stage estimated, and each
type's own tables when they differ by type), as the one-type engine does; with a parameter
Series, with the mixture's own (each type's :attr:`ddc.Mixture.type_models`).

Constant shares only: shares that depend on the first state (``shares_by``) are refused,
since their pooled weight needs a distribution of first states.
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
from simulations.report import CounterfactualReport

__all__ = ["MixtureCounterfactualReport", "mixture_counterfactual"]

_DEN = "mixture__"
"""Prefix of the extra outcomes the type models compute for pooling (ratio outcomes'
denominators, choice shares); they are dropped from the type reports."""


@dataclass(repr=False)
class MixtureCounterfactualReport(CounterfactualReport):
    """A :class:`~simulations.CounterfactualReport` of a mixture: the summary, welfare,
    changes, choice and state shares are **pooled** over the types (module docstring), and

    Attributes
    ----------
    by_type : pandas.DataFrame
        Index (type, scenario); the type's share (``share``), its ``cv_per_<unit>`` and
        declared outcomes, with intervals from the joint draws when there are draws.
    type_reports : list of CounterfactualReport
        Each type's full one-type report (by block, curves, state shares), at the type's
        parameters; its intervals come from the mixture's joint draws (the type's columns).
    type_shares : pandas.Series
        The shares :math:`w_k` at the estimate.
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

    def __repr__(self) -> str:
        return (f"MixtureCounterfactualReport({self.model_name!r}, types="
                f"{len(self.type_reports)}, scenarios={list(self.summary.index)}, "
                f"draws={self.n_used})")


def _shares_at(mix: Mixture, TH: np.ndarray) -> np.ndarray:
    """(D, K) shares of parameter draws (D, P) over ``mix.param_names``."""
    pos = [mix.param_names.index(n) for n in mix.share_names]
    rest = TH[:, pos]
    return np.column_stack([1.0 - rest.sum(axis=1), rest])


def _interval(x: np.ndarray, level: float):
    from simulations.draws import _interval as engine_interval

    return engine_interval(x, level)


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
        named), shares that depend on the first state, bad arguments.
    """
    from estimators.results import EstimationResults
    from simulations.draws import DEFAULT_DRAWS, _draw_params, _ordered, _params_and_cov

    if engine is None:
        raise TypeError("mixture_counterfactual needs the one-type engine: call "
                        "simulations.counterfactual(mix, ...)")

    start = time.perf_counter()
    n_draws = DEFAULT_DRAWS if n_draws is None else n_draws
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 0:
        raise ValueError(f"n_draws must be a non-negative integer, got {n_draws!r}")
    if mix.shares_by:
        raise ValueError(f"counterfactuals of a mixture whose shares depend on the first state "
                         f"({mix.shares_by}) are not supported: pooling needs constant type "
                         "shares (fit the mixture without shares_by)")
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
    w = mix.shares(params)
    solve_mix = _transition_mixture(mix, results_or_params, notes)
    TH = None
    valid = np.zeros(0, dtype=bool)
    if cov is not None and n_draws > 0:
        TH = _draw_params(params, cov, int(n_draws), seed)
        W = _shares_at(mix, TH)
        valid = np.all((W >= 0) & (W <= 1), axis=1)
        if not valid.all():
            msg = (f"{int((~valid).sum())} of {n_draws} draws have type shares outside [0, 1] "
                   "(the normal approximation to a share near 0 or 1) and are left out of the "
                   "intervals")
            notes.append(msg + ".")
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
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
                         _param_draws=TH[:, mix.type_index[k]], **kw)
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
    Wd = _shares_at(mix, TH[idx]) if intervals else None  # (D, K)

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
    notes.append("Pooled figures: CV and every declared outcome and share are the type-share "
                 "weighted sums of the types' figures, each type in its own stationary "
                 "distribution; an outcome that is a ratio (it declares a denominator) is "
                 "weighted by share times the type's denominator, which gives the figure of "
                 "the pooled population (simulations.counterfactual_mixture). By block and "
                 "curves are in each type's report (type_reports).")

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
        summary=summary, welfare=welfare, changes=changes, by_block=None,
        choice_shares=choice_shares, state_shares=state_shares, curves={},
        draws=draws_frame, param_draws=param_draws, scenarios=first.scenarios,
        params=params, std_errors=std_errors, source=source,
        # curves and the application's figures (drawn from curves) are per type: type_reports
        model=mix.model.replace(name=mix.name, hooks=dataclasses.replace(
            mix.model.hooks, figures=None, curves=())),
        n_draws=int(n_draws) if draws_on else 0, n_used=n_used, seed=seed, level=level,
        horizon=horizon, money=first.money, block_names=(), block_weights=np.ones(1),
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
                 f"{results_or_params.estimator} fit (not the model's defaults); intervals "
                 "carry the uncertainty of the utility parameters and shares, not the "
                 "tables'.")
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

