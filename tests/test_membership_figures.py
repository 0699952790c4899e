"""Tests of the membership model's outcomes (``ddc.models.membership.outcomes``).

Provenance of the reference numbers: the model's design specification (now docs/membership.rst,
section "Transitions", last paragraph): "At the true values the model gives roughly (figures as
defined below): member share 56% (58%, 78%, 33% in markets 0, 1, 2), annual share of members
72%, lapse rate 16%, 12-month retention 46%, revenue $6.76 per customer-month." The figures are
defined in its section "Counterfactuals and the report", with mu the stationary distribution with
equal mass per market. The published values are rounded to whole percent (cents for revenue), so
each is compared to half a unit of its last digit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc.kernels import bellman_numpy as kbn
from ddc.models.membership import (
    MembershipFigures,
    annual_share,
    lapse_rate,
    member_share,
    membership_figures,
    retention_curve,
    revenue_per_customer_month,
)
from simulations import stationary_distribution


@pytest.fixture(scope="module")
def solution():
    model = ddc.models.membership()
    return model.solve(model.true_params)


@pytest.fixture(scope="module")
def figures(solution) -> MembershipFigures:
    return membership_figures(solution)


# (figure, market or None for all markets, published value, half a unit of the last digit)
PUBLISHED = [
    ("member_share", None, 0.56, 0.005),
    ("member_share", 0, 0.58, 0.005),
    ("member_share", 1, 0.78, 0.005),
    ("member_share", 2, 0.33, 0.005),
    ("annual_share", None, 0.72, 0.005),
    ("lapse_rate", None, 0.16, 0.005),
    ("retention_12m", None, 0.46, 0.005),
    ("revenue_per_customer_month", None, 6.76, 0.005),
]


@pytest.mark.parametrize(
    "name, market, published, half_unit", PUBLISHED,
    ids=[f"{n}-{'all' if m is None else f'market{m}'}" for n, m, _, _ in PUBLISHED],
)
def test_figures_at_truth_match_the_specification(figures, name, market, published,
                                                    half_unit):
    value = getattr(figures, name) if market is None else figures.by_market.loc[market, name]
    assert abs(value - published) <= half_unit, (name, market, value, published)


def test_scalar_functions_agree_with_the_report(solution, figures):
    model, pi = solution.model, solution.pi
    mu = stationary_distribution(solution).to_numpy()
    np.testing.assert_allclose(figures.mu.to_numpy(), mu, rtol=0, atol=1e-15)
    assert figures.member_share == pytest.approx(member_share(model, pi, mu), abs=1e-14)
    assert figures.annual_share == pytest.approx(annual_share(model, pi, mu), abs=1e-14)
    assert figures.lapse_rate == pytest.approx(lapse_rate(model, pi, mu), abs=1e-14)
    assert figures.revenue_per_customer_month == pytest.approx(
        revenue_per_customer_month(model, pi, mu), abs=1e-12)
    assert figures.retention_12m == figures.retention.loc[12, "all"]
    assert list(figures.as_series().index) == ["member_share", "annual_share", "lapse_rate",
                                               "retention_12m", "revenue_per_customer_month"]


def test_figures_by_hand(solution, figures):
    """The definitions of docs/membership.rst written out with pandas on the labelled CCPs."""
    ccp = solution.ccp
    mu = figures.mu
    plan = ccp.index.get_level_values("plan")
    market = ccp.index.get_level_values("market").to_numpy()
    members = (mu * (ccp["monthly"] + ccp["annual"])).sum()
    assert figures.member_share == pytest.approx(members, abs=1e-14)
    assert figures.annual_share == pytest.approx((mu * ccp["annual"]).sum() / members, abs=1e-14)
    at_member = plan == "member"
    assert figures.lapse_rate == pytest.approx(
        (mu[at_member] * ccp.loc[at_member, "none"]).sum() / mu[at_member].sum(), abs=1e-14)
    pm = np.array([14.99, 12.99, 16.99])[market]
    pa = np.array([139.00, 119.00, 159.00])[market]
    buying = np.isin(plan, ["none", "member"])
    revenue = (mu * (ccp["monthly"] * pm + ccp["annual"] * pa * buying)).sum()
    assert figures.revenue_per_customer_month == pytest.approx(revenue, abs=1e-12)


def _retention_dense(model, pi, mu, joining, horizon):
    """Twin of the retention propagation with dense transition matrices."""
    ct = model.compiled_transitions()
    P = [kbn.transition_matrix(ct, a) for a in range(model.n_actions)]
    plan_none = model.space.values_of("plan") == "none"
    w = np.zeros_like(pi)
    for a in joining:
        w[:, a] = mu * pi[:, a] * plan_none
    mass = w.sum()
    out = [1.0]
    for _ in range(horizon):
        x = sum(w[:, a] @ P[a] for a in range(model.n_actions))
        out.append(float(x @ (1 - pi[:, 0])) / mass)
        w = x[:, None] * pi
        w[:, 0] = 0.0
    return np.array(out)


@pytest.mark.parametrize("cohort, joining", [("all", [1, 2]), ("monthly", [1]),
                                             ("annual", [2])])
def test_retention_matches_dense_twin(solution, figures, cohort, joining):
    expected = _retention_dense(solution.model, solution.pi, figures.mu.to_numpy(), joining, 36)
    np.testing.assert_allclose(figures.retention[cohort].to_numpy(), expected, rtol=1e-12,
                               atol=1e-14)


def test_retention_curve_shape(figures):
    r = figures.retention
    assert list(r.index) == list(range(37)) and list(r.columns) == ["all", "monthly", "annual"]
    assert (r.loc[0] == 1.0).all()
    assert (np.diff(r.to_numpy(), axis=0) <= 1e-15).all()  # nobody comes back into a cohort
    # the annual cohort is locked in for months 1..11 and decides in month 12
    np.testing.assert_allclose(r.loc[:11, "annual"], 1.0, rtol=0, atol=1e-13)
    assert r.loc[12, "annual"] < 1.0


def test_retention_all_is_mixture_of_plans(solution, figures):
    mu, pi = figures.mu.to_numpy(), solution.pi
    none = solution.model.space.values_of("plan") == "none"
    m, a = (mu * pi[:, 1] * none).sum(), (mu * pi[:, 2] * none).sum()
    r = figures.retention
    np.testing.assert_allclose(r["all"], (m * r["monthly"] + a * r["annual"]) / (m + a),
                               rtol=1e-12)


def test_by_market_combines_to_the_total(figures):
    """With equal mass per market, shares and revenue average the markets'."""
    bm = figures.by_market
    assert list(bm.index) == [0, 1, 2]
    assert figures.member_share == pytest.approx(bm["member_share"].mean(), abs=1e-14)
    assert figures.revenue_per_customer_month == pytest.approx(
        bm["revenue_per_customer_month"].mean(), abs=1e-12)


def test_weights_select_a_market(solution, figures):
    only = membership_figures(solution, weights={0: 0.0, 1: 1.0, 2: 0.0})
    row = figures.by_market.loc[1]
    for name in row.index:
        assert getattr(only, name) == pytest.approx(row[name], rel=1e-12), name
    assert only.by_market.loc[0].isna().all()


def test_given_mu(solution, figures):
    same = membership_figures(solution, mu=figures.mu)
    pd.testing.assert_series_equal(same.as_series(), figures.as_series())


def test_retention_without_monthly_joiners(solution, figures):
    """A plan nobody joins (as when monthly is removed) gives a NaN curve, the others stand."""
    pi = solution.pi.copy()
    pi[:, 2] += pi[:, 1]
    pi[:, 1] = 0.0
    r = retention_curve(solution.model, pi, figures.mu.to_numpy(), horizon=13)
    assert r["monthly"].isna().all()
    np.testing.assert_allclose(r["all"], r["annual"], rtol=0, atol=0)


def test_not_a_membership_model():
    bus = ddc.models.rust_bus(n_states=20)
    with pytest.raises(ValueError, match="need a state variable 'market'"):
        membership_figures(bus.solve(bus.true_params))
