"""Figures of the membership model, as ``MEMBERSHIP_MODEL.md`` ("Counterfactuals and the report")
defines them.

All of them are moments of the stationary distribution :math:`\\mu` of the controlled chain
(equal mass per market by default) and the choice probabilities :math:`\\pi`; none needs a
simulation. With :math:`\\mathrm{none}` the non-member action, :math:`p_m` and :math:`p_a` the
monthly and annual prices of the state's market, and :math:`\\mu` normalized to sum to one:

.. math::

    \\text{member share} &= \\sum_s \\mu(s) \\sum_{a \\ne none} \\pi(a \\mid s) \\\\
    \\text{annual share} &= \\sum_s \\mu(s) \\, \\pi(annual \\mid s) / \\text{member share} \\\\
    \\text{lapse rate} &= \\frac{\\sum_{s: plan = member} \\mu(s) \\, \\pi(none \\mid s)}
                               {\\sum_{s: plan = member} \\mu(s)} \\\\
    \\text{revenue} &= \\sum_s \\mu(s) \\, \\big(\\pi(monthly \\mid s) \\, p_m
                       + \\pi(annual \\mid s) \\, p_a \\, 1[plan \\in \\{none, member\\}]\\big)

and the retention curve :math:`S(k)` of a cohort joining at the steady state (below). The
functions take arrays so that the counterfactual module can evaluate them at any policy and any
distribution (a scenario's own stationary distribution).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.kernels import bellman as kb
from ddc.model import Model
from ddc.solver import Solution
from simulations.stationary import stationary_from_policy

__all__ = [
    "MembershipFigures",
    "membership_figures",
    "member_share",
    "annual_share",
    "lapse_rate",
    "revenue_per_customer_month",
    "retention_curve",
    "FIGURE_NAMES",
]

FIGURE_NAMES = ("member_share", "annual_share", "lapse_rate", "retention_12m",
                "revenue_per_customer_month")
"""The scalar figures, in report order."""


class _Layout:
    """Where the membership model keeps what the figures need (checked once)."""

    def __init__(self, model: Model):
        names = model.space.names
        for var in ("market", "plan"):
            if var not in names:
                raise ValueError(f"membership figures need a state variable {var!r}; the model "
                                 f"{model.name!r} has {names}")
        plans = model.space.variable("plan").values
        for label in ("none", "member"):
            if label not in plans:
                raise ValueError(f"membership figures need the plan value {label!r}; plan has "
                                 f"{list(plans)}")
        if "none" not in model.actions:
            raise ValueError(f"membership figures need the action 'none' (not a member); the "
                             f"model's actions are {list(model.actions)}")
        self.plan = model.space.code_of("plan")
        self.market = model.space.code_of("market")
        self.n_markets = model.space.variable("market").size
        self.markets = list(model.space.variable("market").values)
        self.plan_none = self.plan == plans.index("none")
        self.plan_member = self.plan == plans.index("member")
        self.none = model.actions.index("none")
        self.monthly = model.actions.index("monthly") if "monthly" in model.actions else None
        self.annual = model.actions.index("annual") if "annual" in model.actions else None
        self.model = model

    def prices(self) -> tuple[np.ndarray, np.ndarray]:
        md = self.model.metadata
        out = []
        for key in ("prices_monthly", "prices_annual"):
            if key not in md:
                raise KeyError(f"revenue needs model.metadata[{key!r}] (prices by market)")
            p = np.asarray(md[key], dtype=float).ravel()
            if p.shape != (self.n_markets,):
                raise ValueError(f"model.metadata[{key!r}] has {p.size} prices; the model has "
                                 f"{self.n_markets} markets")
            out.append(p[self.market])
        return out[0], out[1]

    def column(self, pi: np.ndarray, a: int | None) -> np.ndarray:
        return np.zeros(pi.shape[0]) if a is None else pi[:, a]


def _normalized(mu: np.ndarray) -> np.ndarray:
    mu = np.asarray(mu, dtype=float)
    total = mu.sum()
    if not total > 0:
        raise ValueError("the distribution mu has no mass")
    return mu / total


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


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
    lay = _Layout(model)
    mu = _normalized(mu)
    return float(mu @ (1.0 - pi[:, lay.none]))


def annual_share(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Share of the members on the annual plan.

    .. math:: \\sum_s \\mu(s) \\, \\pi(annual \\mid s) \\big/ \\text{member share}

    Parameters and result as in :func:`member_share` (NaN without members).
    """
    lay = _Layout(model)
    mu = _normalized(mu)
    return _ratio(mu @ lay.column(pi, lay.annual), mu @ (1.0 - pi[:, lay.none]))


def lapse_rate(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Probability that a member whose paid coverage ends this month lapses.

    .. math:: \\frac{\\sum_{s: plan = member} \\mu(s) \\, \\pi(none \\mid s)}
                    {\\sum_{s: plan = member} \\mu(s)}

    Parameters and result as in :func:`member_share` (NaN without mass at plan ``member``).
    """
    lay = _Layout(model)
    mu = _normalized(mu)
    m = lay.plan_member
    return _ratio(mu[m] @ pi[m, lay.none], mu[m].sum())


def revenue_per_customer_month(model: Model, pi: np.ndarray, mu: np.ndarray) -> float:
    """Expected revenue per customer and month, in dollars.

    .. math:: \\sum_s \\mu(s) \\big(\\pi(monthly \\mid s) \\, p_m(s)
              + \\pi(annual \\mid s) \\, p_a(s) \\, 1[plan(s) \\in \\{none, member\\}]\\big)

    where :math:`p_m(s), p_a(s)` are the monthly and annual prices of the state's market
    (``model.metadata["prices_monthly"]``, ``["prices_annual"]``): the annual price is paid in
    the month of purchase, nothing in the locked months.

    Parameters and result as in :func:`member_share`.
    """
    lay = _Layout(model)
    mu = _normalized(mu)
    pm, pa = lay.prices()
    buying = lay.plan_none | lay.plan_member
    flow = lay.column(pi, lay.monthly) * pm + lay.column(pi, lay.annual) * pa * buying
    return float(mu @ flow)


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
        Index ``k = 0..horizon``; columns ``all``, ``monthly``, ``annual`` (the cohort of all
        joiners, and of those joining on each plan; NaN for a plan nobody joins).
    """
    lay = _Layout(model)
    if not isinstance(horizon, (int, np.integer)) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
    pi = np.ascontiguousarray(pi, dtype=np.float64)
    mu = _normalized(mu)
    ct = model.compiled_transitions(params)
    trans = tuple(ct)[2:]
    S = pi.shape[0]
    member = pi.copy()
    member[:, lay.none] = 0.0  # keep only the mass that chooses a membership
    stay = 1.0 - pi[:, lay.none]
    cohorts = {"all": [a for a in (lay.monthly, lay.annual) if a is not None],
               "monthly": [] if lay.monthly is None else [lay.monthly],
               "annual": [] if lay.annual is None else [lay.annual]}
    out = {}
    x = np.empty(S)
    for name, joining in cohorts.items():
        w = np.zeros_like(pi)
        for a in joining:
            w[:, a] = mu * pi[:, a] * lay.plan_none
        mass = w.sum()
        curve = np.full(horizon + 1, np.nan)
        if mass > 0:
            curve[0] = 1.0
            for k in range(1, horizon + 1):
                kb.push_forward(w, x, *trans)
                curve[k] = (x @ stay) / mass
                np.multiply(member, x[:, None], out=w)
        out[name] = curve
    return pd.DataFrame(out, index=pd.RangeIndex(horizon + 1, name="k"))


@dataclass(frozen=True)
class MembershipFigures:
    """The figures of the membership report at one policy and distribution.

    Attributes
    ----------
    member_share, annual_share, lapse_rate, retention_12m, revenue_per_customer_month : float
        The figures over all markets (``mu`` as given, e.g. equal mass per market).
    by_market : pandas.DataFrame
        The same figures within each market (rows: market; ``mu`` restricted to the market).
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
        """The scalar figures as a Series indexed by :data:`FIGURE_NAMES`."""
        return pd.Series({k: getattr(self, k) for k in FIGURE_NAMES}, name="figures")

    def __str__(self) -> str:
        return self.as_series().to_string(float_format=lambda x: f"{x:.4f}")


def _scalar_figures(model: Model, pi: np.ndarray, mu: np.ndarray, params, horizon: int
                    ) -> tuple[dict, pd.DataFrame]:
    retention = retention_curve(model, pi, mu, horizon=max(horizon, 12), params=params)
    figures = {
        "member_share": member_share(model, pi, mu),
        "annual_share": annual_share(model, pi, mu),
        "lapse_rate": lapse_rate(model, pi, mu),
        "retention_12m": float(retention.loc[12, "all"]),
        "revenue_per_customer_month": revenue_per_customer_month(model, pi, mu),
    }
    return figures, retention.loc[:horizon]


def membership_figures(solution: Solution, weights: Mapping | pd.Series | None = None,
                       mu: np.ndarray | pd.Series | None = None, horizon: int = 36
                       ) -> MembershipFigures:
    """The membership report's figures at a solution (``MEMBERSHIP_MODEL.md``).

    Parameters
    ----------
    solution : ddc.Solution
        A solved membership model.
    weights : mapping or pandas.Series, optional
        Mass of each market in the stationary distribution (equal by default); see
        :func:`simulations.stationary_distribution`.
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
    lay = _Layout(model)
    pi = solution.pi
    if mu is None:
        mu_arr = stationary_from_policy(model, pi, weights=weights, params=solution.params)
    else:
        if weights is not None:
            raise ValueError("give either mu or weights, not both")
        mu_arr = (mu.reindex(model.space.index).to_numpy(dtype=float)
                  if isinstance(mu, pd.Series) else np.asarray(mu, dtype=float))
        if mu_arr.shape != (model.n_states,) or not np.all(np.isfinite(mu_arr)) \
                or np.any(mu_arr < 0):
            raise ValueError(f"mu must be a finite non-negative distribution over the "
                             f"{model.n_states} states")
    figures, retention = _scalar_figures(model, pi, mu_arr, solution.params, horizon)
    rows = {}
    for code, label in enumerate(lay.markets):
        mu_m = np.where(lay.market == code, mu_arr, 0.0)
        if mu_m.sum() > 0:
            rows[label] = _scalar_figures(model, pi, mu_m, solution.params, 12)[0]
        else:
            rows[label] = dict.fromkeys(FIGURE_NAMES, float("nan"))
    by_market = pd.DataFrame.from_dict(rows, orient="index")[list(FIGURE_NAMES)]
    by_market.index.name = "market"
    return MembershipFigures(
        **figures, by_market=by_market, retention=retention,
        mu=pd.Series(mu_arr / mu_arr.sum(), index=model.space.index, name="mu"),
    )
