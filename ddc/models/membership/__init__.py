"""The membership application: the model, its outcomes, scenarios and report figure.

Each month a customer chooses no membership, a monthly plan or a prepaid annual plan
(docs/membership.rst specifies the model). The application is the model plus the hooks it
declares (:class:`ddc.Hooks`): the money parameter ``alpha_price``, the outcomes (member share,
annual share, lapse rate, 12-month retention, revenue per customer-month) and the retention
curves of :mod:`~ddc.models.membership.outcomes`, the default scenarios of
:mod:`~ddc.models.membership.scenarios` and the retention figure of
:mod:`~ddc.models.membership.figures`. The generic counterfactual engine
(:func:`simulations.counterfactual`) reads nothing else.
"""

from ddc.models.membership.model import (
    PARAM_NAMES,
    PRICES_ANNUAL,
    PRICES_MONTHLY,
    SHIP_MEMBER,
    SHIP_NONMEMBER,
    TRUE_PARAMS,
    VIDEO_MEMBER,
    VIDEO_NONMEMBER,
    engagement_matrix,
    membership,
    plan_labels,
)
from ddc.models.membership.outcomes import (
    COHORTS,
    FIGURE_NAMES,
    OUTCOMES,
    RETENTION,
    MembershipFigures,
    annual_share,
    lapse_rate,
    member_share,
    membership_figures,
    price_covariate,
    prices,
    retention_curve,
    revenue_per_customer_month,
)
from ddc.models.membership.scenarios import (
    DEFAULT_SCENARIOS,
    PriceChange,
    default_scenarios,
    get_scenario,
    video_users,
)

__all__ = [
    "COHORTS",
    "DEFAULT_SCENARIOS",
    "FIGURE_NAMES",
    "OUTCOMES",
    "PARAM_NAMES",
    "PRICES_ANNUAL",
    "PRICES_MONTHLY",
    "RETENTION",
    "SHIP_MEMBER",
    "SHIP_NONMEMBER",
    "TRUE_PARAMS",
    "VIDEO_MEMBER",
    "VIDEO_NONMEMBER",
    "MembershipFigures",
    "PriceChange",
    "annual_share",
    "default_scenarios",
    "engagement_matrix",
    "get_scenario",
    "lapse_rate",
    "member_share",
    "membership",
    "membership_figures",
    "plan_labels",
    "price_covariate",
    "prices",
    "retention_curve",
    "revenue_per_customer_month",
    "video_users",
]
