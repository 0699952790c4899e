"""The membership model's outcomes: member share, annual share, lapse rate, retention, revenue.

All are moments of a state distribution :math:`\\mu` (the stationary distribution of the
controlled chain in reports, equal mass per market by default) and the choice probabilities
:math:`\\pi`; none needs a simulation. With :math:`p(s, a)` the price paid for action :math:`a`
in state :math:`s` (the covariate of the money parameter ``alpha_price`` with its sign flipped:
the plan's price in the state's market where it is paid, 0 in the locked annual months and for
``none``) and :math:`\\mu` normalized to sum to one:

.. math::

    \\text{member share} &= \\sum_s \\mu(s) \\sum_{a \\ne none} \\pi(a \\mid s) \\\\
    \\text{annual share} &= \\sum_s \\mu(s) \\, \\pi(annual \\mid s) / \\text{member share} \\\\
    \\text{lapse rate} &= \\frac{\\sum_{s: plan = member} \\mu(s) \\, \\pi(none \\mid s)}
                               {\\sum_{s: plan = member} \\mu(s)} \\\\
    \\text{revenue} &= \\sum_s \\mu(s) \\sum_a \\pi(a \\mid s) \\, p(s, a)

and the retention curve :math:`S(k)` of a cohort joining at the steady state
(:func:`retention_curve`); ``retention_12m`` is :math:`S(12)`. Each is a :class:`ddc.Outcome`
(the curve a :class:`ddc.Curve`) that the model declares in its hooks, written for contexts with a
trailing draws axis (``vectorized=True``), so that the counterfactual engine evaluates every
bootstrap draw in one call. Because revenue reads the prices from the utility's covariates, a
scenario that changes a price (:class:`~ddc.models.membership.PriceChange`) changes revenue with
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.hooks import Curve, Outcome, OutcomeContext
from ddc.model import Model
from ddc.solver import Solution
from ddc.stationary import stationary_from_policy
from ddc.utility import LinearUtility

__all__ = [
    "MembershipFigures",
    "membership_figures",
    "member_share",
    "annual_share",
    "lapse_rate",
    "revenue_per_customer_month",
    "retention_curve",
    "prices",
    "price_covariate",
    "FIGURE_NAMES",
    "OUTCOMES",
    "RETENTION",
    "COHORTS",
]

FIGURE_NAMES = ("member_share", "annual_share", "lapse_rate", "retention_12m",
                "revenue_per_customer_month")
"""The scalar outcomes, in report order."""

COHORTS = ("all", "monthly", "annual")
"""The retention cohorts: all joiners, and those joining on each plan."""


class _Layout:
    """Where the membership model keeps what the outcomes need (checked once per model)."""

    def __init__(self, model: Model):
        names = model.space.names
        for var in ("market", "plan"):
            if var not in names:
                raise ValueError(f"membership outcomes need a state variable {var!r}; the model "
                                 f"{model.name!r} has {names}")
        plans = model.space.variable("plan").values
        for label in ("none", "member"):
            if label not in plans:
                raise ValueError(f"membership outcomes need the plan value {label!r}; plan has "
                                 f"{list(plans)}")
        if "none" not in model.actions:
            raise ValueError(f"membership outcomes need the action 'none' (not a member); the "
                             f"model's actions are {list(model.actions)}")
        plan = model.space.code_of("plan")
        self.market = model.space.code_of("market")
        self.markets = list(model.space.variable("market").values)
        self.plan_none = plan == plans.index("none")
        self.plan_member = plan == plans.index("member")
        self.none = model.actions.index("none")
        self.monthly = model.actions.index("monthly") if "monthly" in model.actions else None
        self.annual = model.actions.index("annual") if "annual" in model.actions else None


def _layout(model: Model) -> _Layout:
    cached = model.__dict__.get("_membership_layout")
    if cached is None:
        cached = _Layout(model)
        model.__dict__["_membership_layout"] = cached
    return cached


def price_covariate(model: Model) -> np.ndarray:
    """The price paid :math:`p(s, a)`, shape (S, A): minus the covariate of the money parameter.

    Parameters
    ----------
    model : ddc.Model
        A membership model (its utility linear in parameters, possibly shifted by a scenario;
        its hooks name the money parameter).

    Returns
    -------
    numpy.ndarray
    """
    money = model.hooks.money
    if money is None:
        raise ValueError(f"the model {model.name!r} declares no money parameter "
                         "(ddc.Hooks.money); revenue needs the prices")
    utility = getattr(model.utility, "base", model.utility)
    if not isinstance(utility, LinearUtility):
        raise TypeError(f"revenue reads the prices from the covariates of {money.param!r}, "
                        f"which needs a linear utility; the model's is "
                        f"{type(utility).__name__}")
    k = list(utility.names).index(money.param)
    return -utility.features[:, :, k]


def prices(model: Model) -> pd.DataFrame:
    """The plans' prices by market, read from the utility's covariates.

    Parameters
    ----------
    model : ddc.Model
        A membership model (or a scenario model built from one).

    Returns
    -------
    pandas.DataFrame
        Index ``market``; one column per paid plan (``monthly``, ``annual``): the price paid
        when choosing the plan from ``plan = none`` in that market.

    Examples
    --------
    >>> import ddc
    >>> prices(ddc.models.membership())  # doctest: +NORMALIZE_WHITESPACE
            monthly  annual
    market
    0         14.99   139.0
    1         12.99   119.0
    2         16.99   159.0
    """
    lay = _layout(model)
    p = price_covariate(model)
    plans = [a for a in (lay.monthly, lay.annual) if a is not None]
    rows = {}
    for code, label in enumerate(lay.markets):
        s = int(np.flatnonzero(lay.plan_none & (lay.market == code))[0])
        rows[label] = [float(p[s, a]) for a in plans]
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=[model.actions[a] for a in plans])
    out.index.name = "market"
    return out


# ------------------------------------------------------------------------------ vectorized
# Contexts carry a trailing draws axis: ccp (S, A, D), distribution (S, D).


def _mu(ctx: OutcomeContext) -> np.ndarray:
    mu = np.asarray(ctx.distribution, dtype=float)
    total = mu.sum(axis=0)
    out = np.full(mu.shape, np.nan)
    np.divide(mu, total, out=out, where=total > 0)
    return out


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is not positive (no floating-point warnings)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _column(ctx: OutcomeContext, a: int | None) -> np.ndarray:
    pi = ctx.ccp
    return np.zeros(pi[:, 0].shape) if a is None else pi[:, a]


def _member_share(ctx: OutcomeContext) -> np.ndarray:
    lay = _layout(ctx.model)
    return (_mu(ctx) * (1.0 - ctx.ccp[:, lay.none])).sum(axis=0)


def _annual_share(ctx: OutcomeContext) -> np.ndarray:
    lay = _layout(ctx.model)
    mu = _mu(ctx)
    return _div((mu * _column(ctx, lay.annual)).sum(axis=0),
                (mu * (1.0 - ctx.ccp[:, lay.none])).sum(axis=0))


def _lapse_rate(ctx: OutcomeContext) -> np.ndarray:
    lay = _layout(ctx.model)
    mu = _mu(ctx)[lay.plan_member]
    return _div((mu * ctx.ccp[lay.plan_member, lay.none]).sum(axis=0), mu.sum(axis=0))


def _member_mass(ctx: OutcomeContext) -> np.ndarray:
    """Mass of the members whose paid coverage ends this month (lapse rate's denominator)."""
    lay = _layout(ctx.model)
    return _mu(ctx)[lay.plan_member].sum(axis=0)


def _joiner_mass(ctx: OutcomeContext) -> np.ndarray:
    """Mass of a month's joiners at the steady state (the retention's denominator)."""
    surv = _survival(ctx, 12)
    return surv[0, 0] + surv[0, 1]


def _cohort_sizes(ctx: OutcomeContext) -> np.ndarray:
    """Mass of a month's joiners at the steady state, (3, D): all, monthly, annual (the
    retention curves' denominators)."""
    surv = _survival(ctx, 0)
    return np.stack([surv[0, 0] + surv[0, 1], surv[0, 0], surv[0, 1]])


def _revenue(ctx: OutcomeContext) -> np.ndarray:
    p = price_covariate(ctx.model)
    return (_mu(ctx) * (ctx.ccp * p[:, :, None]).sum(axis=1)).sum(axis=0)


def _survival(ctx: OutcomeContext, horizon: int) -> np.ndarray:
    """Mass of the monthly and annual joiners still members, (horizon + 1, 2, D).

    The cohorts join from the states with plan ``none``, with weights
    :math:`w_0(s, a) = \\mu(s) \\pi(a \\mid s)`; they are pushed forward together (one sparse
    product per month for both plans and all draws), keeping only the mass that stays a member.
    Cached on the context (the curve and ``retention_12m`` share it).
    """
    cached = ctx.cache.get("membership_survival")
    if cached is not None and cached.shape[0] > horizon:
        return cached[: horizon + 1]
    lay = _layout(ctx.model)
    pi = np.ascontiguousarray(np.asarray(ctx.ccp, dtype=float).transpose(1, 0, 2))  # (A, S, D)
    A, S, D = pi.shape
    mu = _mu(ctx)
    w = np.zeros((A, S, 2 * D))
    none = lay.plan_none.astype(float)[:, None]
    for j, a in enumerate((lay.monthly, lay.annual)):
        if a is not None:
            w[a, :, j * D:(j + 1) * D] = mu * pi[a] * none
    keep = np.concatenate([pi, pi], axis=2)
    stay = 1.0 - keep[lay.none]
    keep[lay.none] = 0.0  # only the mass that chooses a membership stays in the cohort
    out = np.empty((horizon + 1, 2, D))
    out[0] = w.sum(axis=(0, 1)).reshape(2, D)
    for k in range(1, horizon + 1):
        x = ctx.push(w, actions_first=True)  # (S, 2D)
        out[k] = (x * stay).sum(axis=0).reshape(2, D)
        w = keep * x[None]
    ctx.cache["membership_survival"] = out
    return out


def _retention(ctx: OutcomeContext) -> np.ndarray:
    """:math:`S(k)`, (horizon + 1, 3, D): all joiners, monthly joiners, annual joiners."""
    surv = _survival(ctx, ctx.horizon)
    monthly, annual = surv[:, 0], surv[:, 1]
    both = monthly + annual
    return np.stack([_div(both, both[:1]), _div(monthly, monthly[:1]),
                     _div(annual, annual[:1])], axis=1)


def _retention_12m(ctx: OutcomeContext) -> np.ndarray:
    surv = _survival(ctx, 12)
    both = surv[:, 0] + surv[:, 1]
    return _div(both[12], both[0])


OUTCOMES = (
    Outcome("member_share", _member_share,
            "share of customers holding a membership in a month (locked annual months count)",
            unit="share", label="member share", vectorized=True),
    Outcome("annual_share", _annual_share, "share of the members on the annual plan",
            unit="share", label="annual share of members", vectorized=True,
            denominator=_member_share),
    Outcome("lapse_rate", _lapse_rate,
            "probability that a member whose paid coverage ends this month does not renew "
            "(P(none | plan = member))", unit="share", label="lapse rate", vectorized=True,
            denominator=_member_mass),
    Outcome("retention_12m", _retention_12m,
            "S(12): share of a cohort joining at the steady state that has held a membership "
            "in every month since, 12 months after joining", unit="share",
            label="12-month retention", vectorized=True, denominator=_joiner_mass),
    Outcome("revenue_per_customer_month", _revenue,
            "expected payments per customer and month at the scenario's prices (the annual "
            "price counts in the month of purchase)", unit="USD",
            label="revenue per customer-month", vectorized=True),
)
"""The membership model's declared outcomes (:attr:`ddc.Hooks.outcomes`)."""

RETENTION = Curve(
    "retention", _retention, groups=COHORTS, group_name="joined", step_name="k",
    description="S(k): share of a cohort joining at the steady state still a member k months "
                "after joining, for all joiners and by plan joined", vectorized=True,
    denominator=_cohort_sizes)
"""The retention curves (:attr:`ddc.Hooks.curves`)."""


# ------------------------------------------------------------------------------ one solution


def _context(model: Model, pi: np.ndarray, mu: np.ndarray, params=None, horizon: int = 36,
             value: np.ndarray | None = None) -> OutcomeContext:
    S = model.n_states
    pi = np.ascontiguousarray(pi, dtype=np.float64)
    mu = np.asarray(mu, dtype=float)
    if mu.shape != (S,) or not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError(f"mu must be a finite non-negative distribution over the {S} states")
    if not mu.sum() > 0:
        raise ValueError("the distribution mu has no mass")
    if params is None:  # the outcomes do not depend on the parameters, only the transitions
        params = (model.true_params if model.true_params is not None
                  else np.zeros(len(model.utility_params)))
    params = model.params_series(params)
    return OutcomeContext(model, params, pi, np.zeros(S) if value is None else value, mu,
                          horizon=horizon, transitions=model.compiled_transitions(params))


def member_share(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Share of customers holding a membership in a month (locked annual months count).

    .. math:: \\sum_s \\mu(s) \\sum_{a \\ne none} \\pi(a \\mid s)

    Parameters
    ----------
    model : ddc.Model
        A membership model (state variables ``market`` and ``plan``, action ``none``).
    pi : numpy.ndarray, shape (S, A)
        Choice probabilities.
    mu : numpy.ndarray, shape (S,)
        Distribution over states (normalized here to sum to one).

    Returns
    -------
    float
    """
    return OUTCOMES[0](_context(model, pi, mu))


def annual_share(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Share of the members on the annual plan (NaN without members); see
    :func:`member_share`."""
    return OUTCOMES[1](_context(model, pi, mu))


def lapse_rate(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Probability that a member whose paid coverage ends this month lapses (NaN without mass
    at plan ``member``); see :func:`member_share`."""
    return OUTCOMES[2](_context(model, pi, mu))


def revenue_per_customer_month(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Expected revenue per customer and month, in dollars.

    .. math:: \\sum_s \\mu(s) \\sum_a \\pi(a \\mid s) \\, p(s, a)

    with :math:`p(s, a)` the price paid (:func:`price_covariate`): the plan's price in the
    state's market, the annual price in the month of purchase only. See :func:`member_share`.
    """
    return OUTCOMES[4](_context(model, pi, mu))


def retention_curve(model: Model, pi: np.ndarray, mu: np.ndarray, horizon: int = 36,
                    params=None) -> pd.DataFrame:
    """Retention :math:`S(k)` of a cohort joining at the steady state, overall and by plan joined.

    The cohort joins from the states with plan ``none``, with weights
    :math:`w_0(s, a) = \\mu(s) \\pi(a \\mid s)` for the joining actions :math:`a \\in J`
    (``monthly`` and ``annual``, or one of them for the curves by plan joined), of total mass
    :math:`M = \\sum w_0`. :math:`S(k)` is the share that has held a membership in every month
    since, :math:`k` months after the joining month (:math:`S(0) = 1`). It is computed by a
    sub-stochastic propagation, keeping only the mass that stays a member:

    .. math::

        x_k(s') = \\sum_{s, a} w_{k-1}(s, a) \\, P(s' \\mid s, a), \\qquad
        S(k) = \\frac{1}{M} \\sum_s x_k(s) \\big(1 - \\pi(none \\mid s)\\big), \\qquad
        w_k(s, a) = x_k(s) \\, \\pi(a \\mid s) \\, 1[a \\ne none].

    Parameters
    ----------
    model : ddc.Model
        A membership model.
    pi : numpy.ndarray, shape (S, A)
        Choice probabilities.
    mu : numpy.ndarray, shape (S,)
        The distribution the cohort joins from (the stationary distribution).
    horizon : int
        Last month :math:`k` (36).
    params : optional
        Parameters at which to compile the transitions.

    Returns
    -------
    pandas.DataFrame
        Index ``k = 0..horizon``; columns ``all``, ``monthly``, ``annual`` (NaN for a plan
        nobody joins).
    """
    if not isinstance(horizon, (int, np.integer)) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
    ctx = _context(model, pi, mu, params=params, horizon=int(horizon))
    return pd.DataFrame(RETENTION(ctx), columns=list(COHORTS),
                        index=pd.RangeIndex(horizon + 1, name="k"))


@dataclass(frozen=True)
class MembershipFigures:
    """The membership outcomes at one policy and distribution.

    Attributes
    ----------
    member_share, annual_share, lapse_rate, retention_12m, revenue_per_customer_month : float
        The outcomes over all markets (``mu`` as given, e.g. equal mass per market).
    by_market : pandas.DataFrame
        The same outcomes within each market (rows: market; ``mu`` restricted to the market).
    retention : pandas.DataFrame
        :math:`S(k)`, ``k = 0..horizon``, columns ``all``, ``monthly``, ``annual``.
    mu : pandas.Series
        The distribution used, indexed by state.
    """

    member_share: float
    annual_share: float
    lapse_rate: float
    retention_12m: float
    revenue_per_customer_month: float
    by_market: pd.DataFrame
    retention: pd.DataFrame
    mu: pd.Series

    def as_series(self) -> pd.Series:
        """The scalar outcomes as a Series indexed by :data:`FIGURE_NAMES`."""
        return pd.Series({k: getattr(self, k) for k in FIGURE_NAMES}, name="figures")

    def __str__(self) -> str:
        return self.as_series().to_string(float_format=lambda x: f"{x:.4f}")


def membership_figures(solution: Solution, weights: Mapping | pd.Series | None = None,
                       mu: np.ndarray | pd.Series | None = None, horizon: int = 36
                       ) -> MembershipFigures:
    """The membership outcomes at a solution: the declared :data:`OUTCOMES` and the
    :data:`RETENTION` curves at the stationary distribution (or a given one).

    Parameters
    ----------
    solution : ddc.Solution
        A solved membership model.
    weights : mapping or pandas.Series, optional
        Mass of each market in the stationary distribution (equal by default); see
        :func:`ddc.stationary.stationary_distribution`.
    mu : numpy.ndarray or pandas.Series, optional
        Use this distribution over states instead of the stationary one (e.g. the baseline's).
    horizon : int
        Last month of the retention curve (36).

    Returns
    -------
    MembershipFigures

    Examples
    --------
    >>> import ddc
    >>> model = ddc.models.membership()
    >>> fig = membership_figures(model.solve(model.true_params))
    >>> round(fig.member_share, 2), round(fig.revenue_per_customer_month, 2)
    (0.56, 6.76)
    """
    if not isinstance(solution, Solution):
        raise TypeError(f"membership_figures needs a ddc.Solution, got "
                        f"{type(solution).__name__}")
    model = solution.model
    lay = _layout(model)
    pi = solution.pi
    if mu is None:
        mu_arr = stationary_from_policy(model, pi, weights=weights, params=solution.params)
    else:
        if weights is not None:
            raise ValueError("give either mu or weights, not both")
        mu_arr = (mu.reindex(model.space.index).to_numpy(dtype=float)
                  if isinstance(mu, pd.Series) else np.asarray(mu, dtype=float))
    ctx = _context(model, pi, mu_arr, params=solution.params, horizon=max(int(horizon), 12),
                   value=solution.V)
    retention = pd.DataFrame(RETENTION(ctx), columns=list(COHORTS),
                             index=pd.RangeIndex(ctx.horizon + 1, name="k"))
    figures = {o.name: o(ctx) for o in OUTCOMES}
    rows = {}
    for code, label in enumerate(lay.markets):
        mu_m = np.where(lay.market == code, mu_arr, 0.0)
        if mu_m.sum() > 0:
            sub = _context(model, pi, mu_m, params=solution.params, horizon=12)
            rows[label] = {o.name: o(sub) for o in OUTCOMES}
        else:
            rows[label] = dict.fromkeys(FIGURE_NAMES, float("nan"))
    by_market = pd.DataFrame.from_dict(rows, orient="index")[list(FIGURE_NAMES)]
    by_market.index.name = "market"
    return MembershipFigures(
        **figures, by_market=by_market, retention=retention.loc[:horizon],
        mu=pd.Series(mu_arr / mu_arr.sum(), index=model.space.index, name="mu"),
    )
