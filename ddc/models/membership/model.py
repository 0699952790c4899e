"""The membership model: none, monthly or a prepaid annual plan (specified in docs/membership.rst).

Each month a customer in market *m* (a price regime, permanent) with plan status, shipping and
video engagement chooses ``none``, ``monthly`` or ``annual``. With the benefit of membership

.. math:: b = \\theta_0 + \\theta_{ship} \\cdot ship + \\theta_{video} \\cdot video,

the flow utilities are 0 for ``none``; :math:`b - \\alpha P^{m}_{monthly} - \\kappa 1[plan =
none]` for ``monthly``; :math:`b + \\theta_{annual} - \\alpha P^{m}_{annual} - \\kappa 1[plan =
none]` for ``annual`` from plan none or member; and :math:`b` in a locked annual month (only
``annual`` is feasible there; the price was paid up front).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ddc.hooks import DataLayout, Hooks, Money
from ddc.model import Model
from ddc.models.membership.figures import report_figures
from ddc.models.membership.outcomes import OUTCOMES, RETENTION
from ddc.models.membership.scenarios import default_scenarios
from ddc.statespace import StateVariable
from ddc.transitions import Factor, FactoredTransitions
from ddc.utility import LinearUtility

__all__ = ["membership", "TRUE_PARAMS", "SHIP_NONMEMBER", "SHIP_MEMBER", "VIDEO_NONMEMBER",
           "VIDEO_MEMBER"]

ACTIONS = ("none", "monthly", "annual")
PARAM_NAMES = ("theta_0", "theta_ship", "theta_video", "theta_annual", "alpha_price", "kappa_join")
TRUE_PARAMS = pd.Series([-1.0, 0.8, 0.5, 1.0, 0.05, 3.0], index=list(PARAM_NAMES), name="truth")
PRICES_MONTHLY = (14.99, 12.99, 16.99)
PRICES_ANNUAL = (139.00, 119.00, 159.00)
SHIP_NONMEMBER = np.array([[0.85, 0.13, 0.02], [0.25, 0.65, 0.10], [0.05, 0.30, 0.65]])
SHIP_MEMBER = np.array([[0.60, 0.35, 0.05], [0.10, 0.65, 0.25], [0.02, 0.13, 0.85]])
VIDEO_NONMEMBER = np.array([[0.98, 0.02], [0.50, 0.50]])
VIDEO_MEMBER = np.array([[0.85, 0.15], [0.10, 0.90]])


def plan_labels(lock_months: int = 12) -> tuple[str, ...]:
    """Plan values: ``none``, ``member``, then ``annual_{L-1}`` down to ``annual_1``."""
    return ("none", "member", *(f"annual_{r}" for r in range(lock_months - 1, 0, -1)))


def engagement_matrix(n: int, default: np.ndarray, top: float) -> np.ndarray:
    """The engagement transition matrix on ``n`` levels spread evenly over ``[0, top]``.

    With ``n`` equal to the default's size, the default itself. Otherwise a Tauchen (1986)
    discretization of the AR(1) process that matches the default chain on its own grid
    ``0, 1, ..., top``: the conditional mean :math:`c + \\rho x` fitted by least squares to the
    default's conditional means, and the conditional standard deviation the square root of the
    default's average conditional variance. So larger grids keep the default's persistence and
    drift (and with two defaults, the member/non-member contrast). Probabilities below
    ``1e-12`` are set to zero and each row renormalized, to keep rows sparse.
    """
    default = np.asarray(default, dtype=float)
    if n == default.shape[0]:
        return default.copy()
    if n < 2:
        raise ValueError(f"engagement grids need at least 2 levels, got {n}")
    from scipy.stats import norm

    g = np.linspace(0.0, top, default.shape[0])
    mean = default @ g
    var = default @ g**2 - mean**2
    rho, c = np.polyfit(g, mean, 1)
    sd = float(np.sqrt(var.mean()))
    x = np.linspace(0.0, top, n)
    h = x[1] - x[0]
    mu = c + rho * x
    upper = norm.cdf((x[None, :] + h / 2 - mu[:, None]) / sd)
    lower = norm.cdf((x[None, :] - h / 2 - mu[:, None]) / sd)
    upper[:, -1] = 1.0
    lower[:, 0] = 0.0
    P = upper - lower
    P[P < 1e-12] = 0.0
    return P / P.sum(axis=1, keepdims=True)


def membership(
    beta: float = 0.99,
    prices_monthly: Sequence[float] = PRICES_MONTHLY,
    prices_annual: Sequence[float] = PRICES_ANNUAL,
    n_markets: int | None = None,
    n_ship: int = 3,
    n_video: int = 2,
    lock_months: int = 12,
    ship_nonmember: np.ndarray = SHIP_NONMEMBER,
    ship_member: np.ndarray = SHIP_MEMBER,
    video_nonmember: np.ndarray = VIDEO_NONMEMBER,
    video_member: np.ndarray = VIDEO_MEMBER,
    true_params: pd.Series | None = None,
) -> Model:
    """The paid-membership model (docs/membership.rst), every quantity a parameter.

    Parameters
    ----------
    beta : float
        Monthly discount factor (fixed, not estimated).
    prices_monthly, prices_annual : sequence of float
        Prices in dollars by market.
    n_markets : int, optional
        Number of markets (price regimes); defaults to the number of prices given.
    n_ship, n_video : int
        Engagement levels. The utility feature is the level scaled to the default range
        (``ship`` in [0, 2], ``video`` in [0, 1]); grids other than the default use the banded
        chain of :func:`engagement_matrix`.
    lock_months : int
        Length of the annual commitment in months (12): the month of purchase plus
        ``lock_months - 1`` locked months ``annual_{L-1}``, ..., ``annual_1``.
    ship_nonmember, ship_member, video_nonmember, video_member : numpy.ndarray
        Engagement transition matrices for the default grid, by membership this month
        (action other than ``none``).
    true_params : pandas.Series, optional
        Parameter values for simulation; :data:`TRUE_PARAMS` by default.

    Returns
    -------
    Model
        With state variables ``market``, ``plan``, ``ship``, ``video``, actions ``none``,
        ``monthly``, ``annual`` (anchor ``none``) and the parameters of :data:`TRUE_PARAMS`.
        Its hooks (:class:`ddc.Hooks`) declare the money parameter ``alpha_price`` (USD), the
        outcomes of :mod:`ddc.models.membership.outcomes` (member share, annual share, lapse
        rate, 12-month retention, revenue per customer-month; the retention curves), the four
        default scenarios of :func:`ddc.models.membership.default_scenarios`, the report's
        retention figure and a description with the prices. The prices are the covariates of
        ``alpha_price`` (:func:`ddc.models.membership.prices` reads them back).

    Examples
    --------
    >>> import ddc
    >>> model = ddc.models.membership()
    >>> model.n_states, list(model.actions)
    (234, ['none', 'monthly', 'annual'])
    """
    pm = np.asarray(prices_monthly, dtype=float)
    pa = np.asarray(prices_annual, dtype=float)
    n_markets = len(pm) if n_markets is None else int(n_markets)
    if len(pm) != n_markets or len(pa) != n_markets:
        raise ValueError(f"give one monthly and one annual price per market: n_markets="
                         f"{n_markets}, {len(pm)} monthly and {len(pa)} annual prices")
    if lock_months < 2:
        raise ValueError(f"lock_months must be at least 2, got {lock_months}")
    plans = plan_labels(lock_months)
    space = [
        StateVariable("market", tuple(range(n_markets))),
        StateVariable("plan", plans),
        StateVariable("ship", tuple(range(n_ship))),
        StateVariable("video", tuple(range(n_video))),
    ]
    n_plan = len(plans)
    shape = (n_markets, n_plan, n_ship, n_video)
    S = int(np.prod(shape))
    market, plan, ship, video = (g.ravel() for g in np.indices(shape))
    ship_x = ship * (2.0 / (n_ship - 1)) if n_ship > 1 else ship.astype(float)
    video_x = video * (1.0 / (n_video - 1)) if n_video > 1 else video.astype(float)
    choosing = plan <= 1  # plan none or member
    joining = (plan == 0).astype(float)

    X = np.zeros((S, 3, len(PARAM_NAMES)))
    for a in (1, 2):
        X[:, a, 0] = 1.0
        X[:, a, 1] = ship_x
        X[:, a, 2] = video_x
    X[:, 1, 4] = np.where(choosing, -pm[market], 0.0)
    X[:, 1, 5] = -joining
    X[:, 2, 3] = np.where(choosing, 1.0, 0.0)
    X[:, 2, 4] = np.where(choosing, -pa[market], 0.0)
    X[:, 2, 5] = -joining
    feasible = np.ones((S, 3), dtype=bool)
    feasible[~choosing, :2] = False

    # plan transitions, deterministic given the action
    T_plan = np.zeros((3, n_plan, n_plan))
    for p in range(n_plan):
        if p <= 1:
            T_plan[0, p, 0] = 1.0  # none -> none
            T_plan[1, p, 1] = 1.0  # monthly -> member
            T_plan[2, p, 2] = 1.0  # annual -> annual_{L-1}
        else:
            nxt = p + 1 if p < n_plan - 1 else 1  # annual_r -> annual_{r-1}; annual_1 -> member
            T_plan[:, p, nxt] = 1.0
    ship_n = engagement_matrix(n_ship, ship_nonmember, 2.0)
    ship_m = engagement_matrix(n_ship, ship_member, 2.0)
    video_n = engagement_matrix(n_video, video_nonmember, 1.0)
    video_m = engagement_matrix(n_video, video_member, 1.0)
    transitions = FactoredTransitions([
        Factor("plan", T_plan, given=("action", "plan")),
        Factor("ship", np.stack([ship_n, ship_m, ship_m]), given=("action", "ship")),
        Factor("video", np.stack([video_n, video_m, video_m]), given=("action", "video")),
    ])
    return Model(
        space, ACTIONS, LinearUtility(X, PARAM_NAMES), transitions, beta=beta, feasible=feasible,
        true_params=TRUE_PARAMS if true_params is None else true_params, name="membership",
        anchor="none",
        hooks=Hooks(money=Money("alpha_price", unit="USD"), outcomes=OUTCOMES,
                    curves=(RETENTION,), unit="customer",
                    layout=DataLayout(id_col="customer_id", time_col="month"),
                    default_scenarios=default_scenarios, figures=report_figures,
                    description=_description(pm, pa, lock_months, beta)),
    )


def _description(pm: np.ndarray, pa: np.ndarray, lock_months: int, beta: float) -> str:
    """The model in a paragraph, for reports."""
    prices = "; ".join(f"market {m}: ${a:,.2f} a month or ${b:,.2f} a year"
                       for m, (a, b) in enumerate(zip(pm, pa, strict=True)))
    return (
        "Each month a customer chooses no membership, a monthly plan, or a prepaid annual plan "
        f"that commits for {lock_months} months (paid in the month of purchase). The benefit of "
        "membership, theta_0 + theta_ship * ship + theta_video * video, grows with the "
        "customer's shipping and video engagement, which evolve as Markov chains that depend on "
        "membership; joining from no plan costs kappa_join, the annual plan carries "
        "theta_annual in its month of purchase, and every dollar of price costs alpha_price "
        f"utils. Customers stay in their market, a permanent price regime ({prices}). Monthly "
        f"discount factor {beta:g}."
    )
