"""The membership model's scenarios: price changes by plan and market, and the four defaults.

:class:`PriceChange` is the application's convenience on the generic
:class:`ddc.scenarios.CovariateChange`: the covariate of the money parameter ``alpha_price`` is
minus the plan's price where it is paid (plan ``none`` or ``member``), so a price change of
:math:`\\Delta` dollars is a covariate change of :math:`-\\Delta` there, and the flow utility
changes by :math:`-\\alpha_{price} \\Delta`. Revenue reads the prices from the same covariate
(:func:`ddc.models.membership.prices`), so it follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddc.model import Model
from ddc.scenarios import CovariateChange, RemoveAction, Scenario, UtilityShift
from ddc.statespace import StateSpace

__all__ = ["PriceChange", "video_users", "default_scenarios", "get_scenario",
           "DEFAULT_SCENARIOS"]


@dataclass(frozen=True, eq=False)
class PriceChange(Scenario):
    """A plan's price moves by ``delta`` dollars, in every market or some.

    Parameters
    ----------
    plan : str
        The action whose price changes (``"monthly"`` or ``"annual"``).
    delta : float
        Change in dollars (``+2.0``: two dollars dearer).
    markets : sequence, optional
        Labels of the markets where the price changes; every market by default.
    name : str, optional
        Scenario name; ``"<plan>_price_<delta>"`` by default.

    Examples
    --------
    >>> import ddc
    >>> from ddc.models.membership import prices
    >>> cf = PriceChange("monthly", 2.0).apply(ddc.models.membership())
    >>> prices(cf)["monthly"].round(2).tolist()
    [16.99, 14.99, 18.99]
    """

    plan: str
    delta: float
    markets: tuple | None = None
    name: str | None = None

    identification = CovariateChange.identification

    def __post_init__(self) -> None:
        if not isinstance(self.plan, str):
            raise TypeError(f"PriceChange plan must be an action name such as 'monthly', got "
                            f"{self.plan!r}")
        try:
            delta = float(self.delta)
        except (TypeError, ValueError):
            raise TypeError(f"PriceChange delta must be a number of dollars, got "
                            f"{self.delta!r}") from None
        if not np.isfinite(delta):
            raise ValueError(f"PriceChange delta must be finite, got {self.delta!r}")
        object.__setattr__(self, "delta", delta)
        if self.markets is not None:
            markets = (self.markets,) if np.isscalar(self.markets) else tuple(self.markets)
            if not markets:
                raise ValueError("PriceChange markets is empty; leave it out (None) for every "
                                 "market")
            object.__setattr__(self, "markets", markets)
        if self.name is None:
            object.__setattr__(self, "name", f"{self.plan}_price_{delta:+g}")

    def describe(self) -> str:
        """E.g. ``"monthly price +$2.00 in every market"``."""
        sign = "+" if self.delta >= 0 else "-"
        where = ("every market" if self.markets is None else
                 ("market " if len(self.markets) == 1 else "markets ")
                 + ", ".join(str(m) for m in self.markets))
        return f"{self.plan} price {sign}${abs(self.delta):,.2f} in {where}"

    def covariate_change(self, model: Model) -> CovariateChange:
        """The generic scenario this price change is: a change of ``alpha_price``'s covariate."""
        from ddc.models.membership.outcomes import prices

        if model.hooks.money is None:
            raise ValueError(f"PriceChange needs the model's money parameter (ddc.Hooks.money); "
                             f"the model {model.name!r} declares none")
        if self.plan not in model.actions:
            raise KeyError(f"PriceChange: {self.plan!r} is not a plan of the model; its actions "
                           f"are {list(model.actions)}")
        space = model.space
        table = prices(model)
        if self.plan not in table.columns:
            raise KeyError(f"PriceChange: the plan {self.plan!r} has no price; priced plans: "
                           f"{list(table.columns)}")
        market_var = space.variable("market")
        chosen = np.ones(market_var.size, dtype=bool)
        if self.markets is not None:
            chosen[:] = False
            for label in self.markets:
                try:
                    chosen[market_var.code(label)] = True
                except KeyError as exc:
                    raise KeyError(f"PriceChange markets: {exc.args[0]}") from None
        old = table[self.plan].to_numpy()
        new = old + self.delta * chosen
        if np.any(new < 0):
            m = int(np.flatnonzero(new < 0)[0])
            raise ValueError(f"PriceChange would make the {self.plan} price in market "
                             f"{market_var.values[m]!r} negative ({old[m]:g} {self.delta:+g} = "
                             f"{new[m]:g})")
        paying = np.isin(space.values_of("plan"), ["none", "member"])
        where = paying & chosen[space.code_of("market")]
        return CovariateChange(model.hooks.money.param, -self.delta, actions=self.plan,
                               where=where, name=self.name, description=self.describe())

    def apply(self, model: Model) -> Model:
        """The model with the new prices in the covariate of the money parameter."""
        return self.covariate_change(model).apply(model)


def video_users(space: StateSpace) -> np.ndarray:
    """States of video users: ``video`` at its top level (``video = 1`` on the default grid).

    Parameters
    ----------
    space : ddc.StateSpace
        The membership model's state space.

    Returns
    -------
    numpy.ndarray of bool, shape (S,)
    """
    var = space.variable("video")
    return space.code_of("video") == var.size - 1


DEFAULT_SCENARIOS = ("monthly_price_up", "annual_discount", "no_monthly", "video_benefit")
"""Names of the default scenarios, in report order."""


def default_scenarios(model: Model | None = None) -> list[Scenario]:
    """The membership model's four default scenarios (:attr:`ddc.Hooks.default_scenarios`).

    - ``monthly_price_up``: the monthly price +$2 in every market;
    - ``annual_discount``: the annual price -$20 in every market;
    - ``no_monthly``: the monthly plan removed everywhere;
    - ``video_benefit``: +0.1 utils (:math:`0.1 / \\alpha_{price}` = $2 at the truth) per month
      to members who are video users: added to the benefit :math:`b` when ``video = 1``, i.e. to
      ``monthly`` and ``annual`` in those states, locked annual months included.

    Parameters
    ----------
    model : ddc.Model, optional
        The model (the scenarios are the same for every membership model).

    Returns
    -------
    list of Scenario
    """
    return [
        PriceChange("monthly", 2.0, name="monthly_price_up"),
        PriceChange("annual", -20.0, name="annual_discount"),
        RemoveAction("monthly", name="no_monthly"),
        UtilityShift(0.1, where=video_users, actions=("monthly", "annual"),
                     name="video_benefit",
                     description="+0.1 utils per month to members who are video users "
                                 "(monthly and annual, locked months included)"),
    ]


def get_scenario(name: str) -> Scenario:
    """A default scenario by name (one of :data:`DEFAULT_SCENARIOS`; KeyError otherwise)."""
    for s in default_scenarios():
        if s.name == name:
            return s
    raise KeyError(f"unknown scenario {name!r}; the membership model's scenarios are "
                   f"{list(DEFAULT_SCENARIOS)} (or 'default' for all four)")
