"""Tests of the counterfactual engine on the membership application (``simulations.counterfactual``
with the scenarios and outcomes that ``ddc.models.membership`` declares).

Oracles:

- identities: a scenario that changes nothing has CV = 0 and the baseline's figures; a lump-sum
  utility shift of c in every state and action raises every value by c / (1 - beta), so
  CV = c / ((1 - beta) alpha_price) and the policy (so every other figure) is unchanged (exact up
  to the solver's tolerance: 1e-8);
- an independent calculation: panels simulated (``simulations.simulate``) from each scenario
  model at the truth reproduce its member share, annual share, lapse rate, 12-month retention
  and revenue within 4 standard errors computed across customers (customers are independent;
  ratio figures use the delta method on customer totals);
- the bootstrap engine: its draws equal exact one-by-one solutions
  (``Model.solve`` + ``membership_figures``) at the same parameter draws, and the spread of the
  CV draws matches the delta method;
- coverage: in a small Monte Carlo (panels simulated at the truth, NFXP, 95% intervals) the
  intervals cover the true figures at close to the nominal rate (binomial tolerance).

Reference figures at the truth, for the record (computed here, not published):
baseline member share 56.0%, lapse 15.8%, 12-month retention 46.3%, revenue $6.76 (as
docs/membership.rst says); CV monthly_price_up -$27.27, annual_discount +$82.70,
no_monthly -$164.84, video_benefit +$70.82.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc.models.membership import (
    PriceChange,
    default_scenarios,
    get_scenario,
    membership_figures,
    prices,
)
from ddc.scenarios import IDENTIFIED, NORMALIZATION, ShiftedUtility, resolve_scenarios
from estimators import NFXP
from estimators.first_stage import transition_model
from simulations import (
    Compose,
    Custom,
    RemoveAction,
    UtilityShift,
    counterfactual,
    simulate,
    stationary_from_policy,
)
from simulations.report import MANIFEST, atomic_directory

FIGS = ["member_share", "annual_share", "lapse_rate", "retention_12m",
        "revenue_per_customer_month"]
ALL = ["cv_per_customer", *FIGS]


@pytest.fixture(scope="module")
def model():
    return ddc.models.membership()


@pytest.fixture(scope="module")
def truth(model):
    return model.params_series(model.true_params)


@pytest.fixture(scope="module")
def at_truth(model, truth):
    return counterfactual(model, truth)


@pytest.fixture(scope="module")
def fitted(model, truth):
    panel = simulate(model, truth, n_customers=3000, n_periods=24, seed=11)
    return NFXP(model).fit(panel)


@pytest.fixture(scope="module")
def with_draws(model, fitted):
    return counterfactual(model, fitted, n_draws=60, seed=3)


@pytest.fixture
def no_figures(monkeypatch, with_draws):
    """Skip rendering the PNGs (slow) in tests about the files, not the figures."""
    monkeypatch.setattr(type(with_draws), "figure_pngs",
                        lambda self, dpi=110: dict.fromkeys(
                            ["retention.png", "changes.png", "welfare_by_market.png"],
                            b"\x89PNG\r\n\x1a\n"))


# ----------------------------------------------------------------------------- scenarios


def test_default_scenarios_are_the_four_of_the_spec(at_truth):
    assert list(at_truth.summary.index) == ["baseline", "monthly_price_up", "annual_discount",
                                            "no_monthly", "video_benefit"]
    assert list(at_truth.summary.columns) == ALL
    assert not at_truth.has_intervals and at_truth.draws is None


def test_price_change_rewrites_prices_and_utility(model, truth):
    cf = PriceChange("monthly", 2.0).apply(model)
    np.testing.assert_allclose(prices(cf)["monthly"], [16.99, 14.99, 18.99])
    np.testing.assert_array_equal(prices(cf)["annual"], prices(model)["annual"])
    du = cf.utilities(truth) - model.utilities(truth)
    plan = model.space.values_of("plan")
    paying = np.isin(plan, ["none", "member"])
    np.testing.assert_allclose(du[paying, 1], -2.0 * truth["alpha_price"], rtol=0, atol=1e-14)
    assert np.all(du[~paying] == 0) and np.all(du[:, [0, 2]] == 0)
    assert prices(model).loc[0, "monthly"] == 14.99  # the original is untouched


def test_price_change_in_some_markets(model, truth):
    cf = PriceChange("annual", -20.0, markets=[2]).apply(model)
    np.testing.assert_allclose(prices(cf)["annual"], [139.0, 119.0, 139.0])
    du = cf.utilities(truth) - model.utilities(truth)
    market = model.space.values_of("market")
    assert np.all(du[market != 2] == 0)
    assert np.all(du[(market == 2) & model.feasible[:, 0], 2] > 0)


def test_video_benefit_adds_to_b_in_video_states(model, truth):
    cf = get_scenario("video_benefit").apply(model)
    du = cf.utilities(truth) - model.utilities(truth)
    video = model.space.values_of("video") == 1
    np.testing.assert_allclose(du[video][:, 1:], 0.1, rtol=0, atol=1e-15)
    assert np.all(du[~video] == 0) and np.all(du[:, 0] == 0)
    # locked annual months included
    locked = ~model.feasible[:, 0]
    assert np.all(du[locked & video, 2] == pytest.approx(0.1))


def test_remove_action_keeps_a_choice_everywhere(model):
    cf = RemoveAction("monthly").apply(model)
    assert not cf.feasible[:, 1].any()
    np.testing.assert_array_equal(cf.feasible[:, [0, 2]], model.feasible[:, [0, 2]])
    # removing the only feasible action of the locked months is refused there
    cf2 = RemoveAction("annual").apply(model)
    locked = ~model.feasible[:, 0]
    assert cf2.feasible[locked, 2].all() and not cf2.feasible[~locked, 2].any()


def test_compose_and_shift_keep_the_price_feature(model, truth):
    both = Compose(get_scenario("video_benefit"), PriceChange("monthly", 1.0))
    cf = both.apply(model)
    assert isinstance(cf.utility, ShiftedUtility)
    expected = (get_scenario("video_benefit").apply(model).utilities(truth)
                - model.utilities(truth) + PriceChange("monthly", 1.0).apply(model)
                .utilities(truth))
    np.testing.assert_allclose(cf.utilities(truth), expected, rtol=0, atol=1e-13)
    assert both.name == "video_benefit+monthly_price_+1"
    assert both.identification == IDENTIFIED
    assert Compose(both, RemoveAction("monthly")).identification == NORMALIZATION


def test_scenario_errors_name_the_fault(model):
    with pytest.raises(KeyError, match="'weekly' is not a plan"):
        PriceChange("weekly", 1.0).apply(model)
    with pytest.raises(KeyError, match="market"):
        PriceChange("monthly", 1.0, markets=[7]).apply(model)
    with pytest.raises(ValueError, match="negative"):
        PriceChange("monthly", -20.0).apply(model)
    with pytest.raises(KeyError, match="accepted"):
        RemoveAction("weekly").apply(model)
    with pytest.raises(ValueError, match="shape"):
        UtilityShift(1.0, where=np.ones(5, dtype=bool)).apply(model)
    with pytest.raises(TypeError, match="boolean"):
        UtilityShift(1.0, where=lambda space: np.ones(space.size)).apply(model)
    with pytest.raises(ValueError, match="state space"):
        Custom(lambda m: ddc.models.membership(n_ship=2), name="bad").apply(model)
    with pytest.raises(KeyError, match="unknown scenario"):
        resolve_scenarios("free_shipping", model)
    with pytest.raises(ValueError, match="unique"):
        resolve_scenarios([PriceChange("monthly", 1.0), PriceChange("monthly", 1.0)])
    with pytest.raises(ValueError, match="reserved"):
        resolve_scenarios({"baseline": PriceChange("monthly", 1.0)})


# ----------------------------------------------------------------------------- identities


@pytest.mark.parametrize("nothing", [
    pytest.param(UtilityShift(0.0, name="nothing"), id="zero-shift"),
    pytest.param(PriceChange("monthly", 0.0, name="nothing"), id="zero-price-change"),
    pytest.param(Custom(lambda m: m.replace(), name="nothing"), id="custom-identity"),
])
def test_scenario_that_changes_nothing_has_zero_cv(model, truth, at_truth, nothing):
    rep = counterfactual(model, truth, scenarios=[nothing])
    row = rep.summary.loc["nothing"]
    assert abs(row["cv_per_customer"]) <= 1e-8
    for col in FIGS:
        assert row[col] == pytest.approx(at_truth.summary.loc["baseline", col], abs=1e-10)


def test_lump_sum_shift_gives_cv_c_over_one_minus_beta_alpha(model, truth, at_truth):
    c = 0.3
    rep = counterfactual(model, truth, scenarios=[UtilityShift(c, name="lump")])
    expected = c / ((1 - model.beta) * truth["alpha_price"])
    assert rep.summary.loc["lump", "cv_per_customer"] == pytest.approx(expected, abs=1e-8)
    by_market = rep.by_market.xs("lump", level="scenario")["cv_per_customer"]
    np.testing.assert_allclose(by_market, expected, rtol=0, atol=1e-8)
    for col in FIGS:  # the policy does not change
        assert rep.summary.loc["lump", col] == pytest.approx(
            at_truth.summary.loc["baseline", col], abs=1e-10)


def test_lump_sum_identity_holds_at_every_draw(model, fitted):
    c = -0.2
    rep = counterfactual(model, fitted, scenarios=[UtilityShift(c, name="lump")], n_draws=40,
                         seed=5)
    alpha = rep.param_draws["alpha_price"].to_numpy()
    cv = rep.draws[("lump", "cv_per_customer")].to_numpy()
    np.testing.assert_allclose(cv, c / ((1 - model.beta) * alpha), rtol=1e-8, atol=0)
    np.testing.assert_allclose(rep.draws[("baseline", "cv_per_customer")], 0.0, atol=0)
    lo, hi = rep.summary.loc["lump", ["cv_per_customer_lower", "cv_per_customer_upper"]]
    assert lo < rep.summary.loc["lump", "cv_per_customer"] < hi


def test_equal_prices_give_equal_figures(at_truth):
    # annual_discount makes market 0's prices (14.99, 119) equal to market 1's under
    # monthly_price_up (14.99, 119): the markets' figures must agree
    a = at_truth.by_market.loc[("annual_discount", 0), FIGS]
    b = at_truth.by_market.loc[("monthly_price_up", 1), FIGS]
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- at the truth


def test_baseline_matches_the_figures_module(model, truth, at_truth):
    fig = membership_figures(model.solve(truth))
    for col in FIGS:
        assert at_truth.summary.loc["baseline", col] == getattr(fig, col)
    pd.testing.assert_frame_equal(
        at_truth.retention.xs("baseline", level="scenario")["retention"].unstack("joined")
        [["all", "monthly", "annual"]], fig.retention, check_names=False, check_freq=False)


def test_reference_values_at_the_truth(at_truth):
    s = at_truth.summary
    expected = {"monthly_price_up": -27.27, "annual_discount": 82.70, "no_monthly": -164.84,
                "video_benefit": 70.82}
    for name, cv in expected.items():
        assert s.loc[name, "cv_per_customer"] == pytest.approx(cv, abs=0.005)
    assert s.loc["no_monthly", "annual_share"] == pytest.approx(1.0, abs=1e-12)
    # the monthly cohort is empty without the monthly plan
    assert at_truth.retention.loc[("no_monthly", "monthly"), "retention"].isna().all()
    # signs: dearer monthly lowers membership, a discount or a better benefit raises it
    assert s.loc["monthly_price_up", "member_share"] < s.loc["baseline", "member_share"]
    assert s.loc["annual_discount", "member_share"] > s.loc["baseline", "member_share"]
    assert s.loc["video_benefit", "lapse_rate"] < s.loc["baseline", "lapse_rate"]


def _panel_figures(panel: pd.DataFrame, model, n_periods: int) -> dict:
    """Figures from a simulated panel, with standard errors across customers."""
    n = int(panel["customer_id"].max()) + 1
    act = panel["action"].astype(str).to_numpy().reshape(n, n_periods)
    plan = panel["plan"].astype(str).to_numpy().reshape(n, n_periods)
    market = panel["market"].to_numpy().reshape(n, n_periods)
    member = act != "none"
    pm = prices(model)["monthly"].to_numpy()[market]
    pa = prices(model)["annual"].to_numpy()[market]
    revenue = np.where(act == "monthly", pm, 0.0) + np.where(
        (act == "annual") & np.isin(plan, ["none", "member"]), pa, 0.0)

    def mean(x):
        x = x.mean(axis=1)
        return x.mean(), x.std(ddof=1) / np.sqrt(n)

    def ratio(num, den):
        a, b = num.sum(axis=1).astype(float), den.sum(axis=1).astype(float)
        r = a.sum() / b.sum()
        return r, np.sqrt(n / (n - 1) * ((a - r * b) ** 2).sum()) / b.sum()

    at_member = plan == "member"
    K = 12
    t = np.arange(n_periods)
    joins = (plan == "none") & member & (t + K < n_periods)[None, :]
    cum = np.zeros((n, n_periods + 1), dtype=int)
    cum[:, 1:] = np.cumsum(member, axis=1)
    held = cum[:, np.minimum(t + K + 1, n_periods)] - cum[:, t + 1] == K
    return {
        "member_share": mean(member.astype(float)),
        "annual_share": ratio(act == "annual", member),
        "lapse_rate": ratio(at_member & ~member, at_member),
        "retention_12m": ratio(joins & held, joins),
        "revenue_per_customer_month": mean(revenue),
    }


@pytest.mark.parametrize("k, name", list(enumerate(["baseline", *[s.name for s in
                                                                  default_scenarios()]])),
                         ids=lambda x: str(x))
def test_figures_match_simulated_panels(model, truth, at_truth, k, name):
    scenario = None if name == "baseline" else get_scenario(name)
    cf = model if scenario is None else scenario.apply(model)
    T = 36
    panel = simulate(cf, truth, n_customers=12_000, n_periods=T, seed=500 + k)
    sim = _panel_figures(panel, cf, T)
    for col, (value, se) in sim.items():
        analytic = at_truth.summary.loc[name, col]
        if name == "no_monthly" and col == "annual_share":
            assert value == 1.0 and analytic == pytest.approx(1.0)
            continue
        assert se > 0
        assert abs(value - analytic) <= 4 * se, (name, col, value, analytic, se)


# ----------------------------------------------------------------------------- the bootstrap


def test_report_with_intervals_has_the_contract_columns(with_draws):
    s = with_draws.summary
    assert list(s.index)[0] == "baseline"
    for col in ALL:
        for c in (col, f"{col}_lower", f"{col}_upper"):
            assert c in s.columns
    finite = s.drop(columns=[c for c in s.columns if c.startswith("annual_share")])
    assert np.isfinite(finite.to_numpy(float)).all()
    assert (s[[f"{c}_lower" for c in ALL]].to_numpy()
            <= s[[f"{c}_upper" for c in ALL]].to_numpy() + 1e-12).all()
    assert with_draws.n_used == 60 and len(with_draws.draws) == 60
    assert {"retention", "retention_lower", "retention_upper"} <= set(with_draws.retention)
    assert {"cv_per_customer_lower", "member_share_upper"} <= set(with_draws.by_market)
    assert list(with_draws.changes.index) == [s.name for s in default_scenarios()]


def _check_draws_against_exact(model, report, draw_models, draws=(0, 17, 59)):
    """Draw by draw, the report's figures against Model.solve + membership_figures with the
    draw's parameters and the draw's model (its transition tables)."""
    for d in draws:
        theta = report.param_draws.loc[d]
        m = draw_models(d)
        base = m.solve(theta)
        fb = membership_figures(base)
        for name in ("baseline", "no_monthly", "video_benefit"):
            cf = m if name == "baseline" else get_scenario(name).apply(m)
            sol = cf.solve(theta)
            fig = membership_figures(sol)
            for col in FIGS:
                assert report.draws.loc[d, (name, col)] == pytest.approx(
                    getattr(fig, col), abs=1e-9)
            cv = fb.mu.to_numpy() @ (sol.V - base.V) / theta["alpha_price"]
            assert report.draws.loc[d, (name, "cv_per_customer")] == pytest.approx(
                cv, abs=1e-6)


def test_draws_equal_exact_solutions(model, fitted):
    """The batched engine (utility parameters drawn, draw_transitions=False) against
    Model.solve + membership_figures, draw by draw, with the transition tables the fit
    estimated (the engine uses them, not the model's defaults)."""
    rep = counterfactual(model, fitted, scenarios=["no_monthly", "video_benefit"], n_draws=20,
                         seed=3, draw_transitions=False)
    assert any("estimated in the first stage" in n for n in rep.notes)
    assert any("draw_transitions=False" in n for n in rep.notes)
    estimated = model.replace(transitions=transition_model(fitted).transitions())
    _check_draws_against_exact(model, rep, lambda d: estimated, draws=(0, 7, 19))


def test_draws_with_transitions_equal_exact_solutions(model, fitted, with_draws):
    """With the transition tables drawn too (the default): draw d is solved with its own
    tables, the Dirichlet draws of draw_first_stage from the counts on the transitions' own
    stream of the seed."""
    from estimators.first_stage import draw_first_stage
    from simulations.draws import _first_stage_seed

    ts = fitted.extra["transitions"]
    first = draw_first_stage(ts, 60, _first_stage_seed(3))
    base = transition_model(fitted).transitions()
    assert any("Dirichlet" in n for n in with_draws.notes)
    _check_draws_against_exact(
        model, with_draws,
        lambda d: model.replace(transitions=first.transitions(base, d)))
    # the draws do move the tables
    video = np.array([first.tables[d]["video"] for d in range(60)])
    assert np.ptp(video, axis=0).max() > 0


def test_transition_draws_have_the_first_stage_covariance(model, fitted):
    """The joint draws theta_d = theta + e_d + B (psi_d - psi), e_d ~ N(0, V - B V_psi B'):
    over 4,000 draws (no solving) the utility draws have the results' (Murphy-Topel) covariance
    V and the covariance B V_psi with the drawn cells (Dirichlet: V_psi N / (N + 1)), within
    five Monte Carlo standard errors of a sample covariance, sqrt((s_ii s_jj + s_ij^2) / D)."""
    from simulations.draws import draw_with_transitions

    D = 4000
    params = model.params_series(fitted.params)
    notes: list[str] = []
    TH, first = draw_with_transitions(model, fitted, params, fitted.cov, D, 5, notes)
    ts = fitted.extra["transitions"]
    util = list(fitted.cov.index)
    B = ts.sensitivity.loc[util, first.names].to_numpy()
    X = np.column_stack([TH[:, [list(params.index).index(n) for n in util]], first.values])
    S = np.cov(X, rowvar=False)
    P = len(util)
    want = np.block([[fitted.cov.to_numpy(), B @ first.cov], [first.cov @ B.T, first.cov]])
    sd = np.sqrt((np.outer(np.diag(want), np.diag(want)) + want ** 2) / D)
    # rows of the utility parameters (the cells' own block is the Dirichlet's, V_psi N/(N+1))
    assert (np.abs(S - want)[:P, :] <= 5 * sd[:P, :]).all()
    assert np.abs(TH[:, [list(params.index).index(n) for n in util]].mean(axis=0)
                  - params[util].to_numpy()).max() < 5 * np.sqrt(np.diag(fitted.cov)).max() \
        / np.sqrt(D)
    assert any("theta_d = theta + e_d + B (psi_d - psi)" in n for n in notes)


def test_bootstrap_spread_matches_the_delta_method(model, fitted):
    """The standard deviation of the CV draws against sqrt(g' V g), g by central differences.

    With D draws the sample standard deviation has relative standard error about
    1 / sqrt(2 (D - 1)) (5% at D = 200); the tolerance is 4 of those.
    """
    D = 200
    rep = counterfactual(model, fitted, scenarios=["monthly_price_up"], n_draws=D, seed=8,
                         draw_transitions=False)
    draws = rep.draws[("monthly_price_up", "cv_per_customer")]
    theta = fitted.params
    cf = get_scenario("monthly_price_up").apply(model)

    def cv(th):
        base = model.solve(th)
        mu = membership_figures(base).mu.to_numpy()
        return mu @ (cf.solve(th).V - base.V) / th["alpha_price"]

    grad = []
    for name in theta.index:
        h = 1e-4 * fitted.std_errors[name] / 1e-2
        up, dn = theta.copy(), theta.copy()
        up[name] += h
        dn[name] -= h
        grad.append((cv(up) - cv(dn)) / (2 * h))
    g = np.array(grad)
    sd_delta = float(np.sqrt(g @ fitted.cov.to_numpy() @ g))
    rel_se = 1 / np.sqrt(2 * (D - 1))
    assert abs(draws.std(ddof=1) / sd_delta - 1) <= 4 * rel_se


def test_bootstrap_spread_with_transitions_matches_the_full_delta_method(model, fitted):
    """With the transition tables drawn, the standard deviation of the CV draws against the
    delta method over the utility parameters and the 24 estimated cells psi jointly,
    sqrt(g' Sigma g) with Sigma = [[V, B V_psi], [V_psi B', V_psi]] (g by central differences,
    the cells moved through the first stage's cell view); tolerance as above. The
    utility-only delta method differs by more than the tolerance here, so the check
    discriminates."""
    from estimators.first_stage import _cell_view

    D = 200
    rep = counterfactual(model, fitted, scenarios=["monthly_price_up"], n_draws=D, seed=8)
    draws = rep.draws[("monthly_price_up", "cv_per_customer")]
    ts = fitted.extra["transitions"]
    pmodel, psi, Vpsi, _ = _cell_view(ts, None)
    util = list(fitted.cov.index)
    x = pmodel.params_series(np.concatenate([fitted.params[util].to_numpy(),
                                             psi.to_numpy()]))
    cf = get_scenario("monthly_price_up").apply(pmodel)

    def cv(th):
        base = pmodel.solve(th)
        mu = stationary_from_policy(pmodel, base.pi, params=th)
        return mu @ (cf.solve(th).V - base.V) / mu.sum() / th["alpha_price"]

    grad = []
    for name in x.index:
        h = (1e-4 * fitted.std_errors[name] / 1e-2 if name in util
             else min(1e-5, 0.5 * x[name]))
        up, dn = x.copy(), x.copy()
        up[name] += h
        dn[name] -= h
        grad.append((cv(up) - cv(dn)) / (2 * h))
    g = np.array(grad)
    B = ts.sensitivity.loc[util, list(psi.index)].to_numpy()
    V = fitted.cov.to_numpy()
    Sigma = np.block([[V, B @ Vpsi], [Vpsi @ B.T, Vpsi]])
    sd_delta = float(np.sqrt(g @ Sigma @ g))
    rel_se = 1 / np.sqrt(2 * (D - 1))
    assert abs(draws.std(ddof=1) / sd_delta - 1) <= 4 * rel_se
    sd_utility = float(np.sqrt(g[:len(util)] @ V @ g[:len(util)]))
    assert abs(sd_utility / sd_delta - 1) > 4 * rel_se


def test_intervals_cover_in_a_small_monte_carlo(model, truth, at_truth):
    """R panels simulated at the truth, NFXP on each, 95% intervals of the four CVs and the
    baseline's five figures; pooled coverage of the R x 9 events at least 0.85 (nominal 0.95:
    under independence 0.85 is more than 4 binomial standard deviations below). In a 40-rep run
    of this design with 100 draws the average coverage over all 28 figures was 0.94. The
    utility parameters only are drawn here (fast); the slow test below draws the transitions
    too."""
    R = 10
    checks = [("baseline", c) for c in FIGS] + [(s.name, "cv_per_customer")
                                                for s in default_scenarios()]
    covered = []
    for r in range(R):
        panel = simulate(model, truth, n_customers=1500, n_periods=24, seed=2000 + r)
        res = NFXP(model).fit(panel)
        rep = counterfactual(model, res, n_draws=60, seed=r, draw_transitions=False)
        for name, col in checks:
            lo, hi = rep.summary.loc[name, [f"{col}_lower", f"{col}_upper"]]
            covered.append(lo <= at_truth.summary.loc[name, col] <= hi)
    n = len(covered)
    assert n == R * len(checks)
    assert np.mean(covered) >= 0.85, np.mean(covered)



@pytest.mark.slow
def test_intervals_with_transition_draws_cover(model, truth, at_truth):
    """As above with the transition tables drawn too (the default), R = 40 panels, 100 draws:
    pooled coverage of the R x 9 events at least 0.85."""
    R = 40
    checks = [("baseline", c) for c in FIGS] + [(s.name, "cv_per_customer")
                                                for s in default_scenarios()]
    covered = []
    for r in range(R):
        panel = simulate(model, truth, n_customers=1500, n_periods=24, seed=2000 + r)
        res = NFXP(model).fit(panel)
        rep = counterfactual(model, res, n_draws=100, seed=r)
        for name, col in checks:
            lo, hi = rep.summary.loc[name, [f"{col}_lower", f"{col}_upper"]]
            covered.append(lo <= at_truth.summary.loc[name, col] <= hi)
    assert np.mean(covered) >= 0.85, np.mean(covered)

def test_params_series_gives_no_intervals_and_results_need_the_model(model, fitted):
    rep = counterfactual(model, fitted.params, scenarios="no_monthly")
    assert not rep.has_intervals
    assert counterfactual(model, fitted, scenarios="no_monthly", n_draws=0).draws is None
    bus = ddc.models.rust_bus()
    with pytest.raises(ValueError, match="declares no default scenarios"):
        counterfactual(bus, bus.true_params)
    with pytest.raises(KeyError, match="'beta_price' is not a utility parameter"):
        counterfactual(model, fitted, money=ddc.Money("beta_price"))
    with pytest.raises(ValueError, match="n_draws"):
        counterfactual(model, fitted, n_draws=-1)


# ----------------------------------------------------------------------------- rendering, saving


def test_markdown_and_html_carry_the_tables_and_the_note(with_draws):
    md = with_draws.to_markdown(image_dir=".")
    assert "Table 1. Figures by scenario" in md and "![Retention curves](retention.png)" in md
    assert with_draws.identification_note in md
    assert "depends on the normalization" in md
    assert "[" in md  # intervals
    page = with_draws.to_html(images={})
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert "u(none) = 0" in page
    text = str(with_draws)
    assert "monthly_price_up" in text and "CV per customer" in text


def test_save_writes_everything(with_draws, tmp_path):
    out = with_draws.save(tmp_path / "report")
    names = {p.name for p in out.iterdir()}
    expected = {"report.md", "report.html", "retention.png", "changes.png",
                "welfare_by_market.png", "summary.csv", "changes.csv", "by_market.csv",
                "retention.csv", "params.csv", "draws.csv", "param_draws.csv", "welfare.csv",
                "choice_shares.csv", "state_shares.csv", MANIFEST}
    assert expected == names
    summary = pd.read_csv(out / "summary.csv", index_col="scenario")
    np.testing.assert_allclose(summary.to_numpy(float), with_draws.summary.to_numpy(float),
                               rtol=1e-9)
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == expected - {MANIFEST}
    assert (out / "retention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # saving again replaces the earlier report as a whole
    with_draws.save(tmp_path / "report")
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_save_is_all_or_nothing(with_draws, tmp_path, monkeypatch, no_figures):
    good = type(with_draws).write_files

    def broken(self, folder):
        (folder / "report.md").write_text("partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(with_draws), "write_files", broken)
    target = tmp_path / "deep" / "report"
    with pytest.raises(RuntimeError, match="disk full"):
        with_draws.save(target)
    assert list(tmp_path.iterdir()) == []  # no report, no temporary folder, no parent
    # an earlier report stays as it was
    monkeypatch.setattr(type(with_draws), "write_files", good)
    with_draws.save(target)
    before = sorted(p.name for p in target.iterdir())
    monkeypatch.setattr(type(with_draws), "write_files", broken)
    with pytest.raises(RuntimeError):
        with_draws.save(target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["report"]


def test_save_refuses_a_folder_of_other_files(with_draws, tmp_path, no_figures):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="did not write"):
        with_draws.save(mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    with pytest.raises(FileExistsError, match="not a folder"):
        with atomic_directory(mine / "thesis.tex"):
            pass


def test_empty_folder_is_used(with_draws, tmp_path, no_figures):
    empty = tmp_path / "empty"
    empty.mkdir()
    with_draws.save(empty)
    assert (empty / "report.html").is_file()


def _with_transition_param(model):
    """The membership model with the members' video take-up rate as a transition parameter."""
    def transitions(tp):
        up = float(tp["video_up"])
        return ddc.models.membership(
            video_member=np.array([[1 - up, up], [0.10, 0.90]])).transitions()

    return model.replace(transitions=transitions,
                         transition_params=pd.Series({"video_up": 0.15}))


def test_draws_with_estimated_transitions_are_solved_one_by_one(model):
    """Draws that move a transition parameter take the exact path; they match Model.solve."""
    from estimators import EstimationResults

    m2 = _with_transition_param(model)
    params = m2.params_series(model.true_params)
    res = EstimationResults(model=m2, estimator="test", params=params,
                            hessian=-np.diag([1e4, 1e4, 1e4, 1e3, 1e6, 1e4, 1e4]),
                            scores=None, groups=None, loglik=-1.0, nobs=100, converged=True)
    rep = counterfactual(m2, res, scenarios=["video_benefit"], n_draws=4, seed=1)
    assert rep.param_draws["video_up"].std() > 0
    for d in range(4):
        theta = rep.param_draws.iloc[d]
        fig = membership_figures(m2.solve(theta))
        for col in FIGS:
            assert rep.draws.loc[d, ("baseline", col)] == pytest.approx(getattr(fig, col),
                                                                        abs=1e-9)


def test_batched_and_one_by_one_paths_agree(model, fitted, with_draws, monkeypatch):
    """With no batched iteration allowed, every draw is solved on its own: same numbers (the
    utility parameters drawn; with the transitions drawn every draw is solved on its own
    anyway)."""
    import ddc.solver

    fast = counterfactual(model, fitted, n_draws=12, seed=3, draw_transitions=False)
    monkeypatch.setattr(ddc.solver, "BATCH_MAX_ITER", 1)
    slow = counterfactual(model, fitted, n_draws=12, seed=3, draw_transitions=False)
    assert any("one by one" in note for note in slow.notes)
    np.testing.assert_allclose(slow.param_draws, fast.param_draws, rtol=0, atol=0)
    np.testing.assert_allclose(slow.draws.to_numpy(float), fast.draws.to_numpy(float),
                               rtol=0, atol=1e-7, equal_nan=True)


def test_fewer_draws_are_the_first_of_more(model, fitted, with_draws):
    """The first 12 of the 60 draws of a seed are the 12 draws of that seed, transitions
    included (the Dirichlet and normal variates are drawn draw after draw)."""
    few = counterfactual(model, fitted, scenarios=list(with_draws.summary.index[1:]),
                         n_draws=12, seed=3)
    np.testing.assert_allclose(few.param_draws, with_draws.param_draws.iloc[:12], rtol=0,
                               atol=0)
    np.testing.assert_allclose(few.draws.to_numpy(float),
                               with_draws.draws.iloc[:12].to_numpy(float),
                               rtol=0, atol=1e-12, equal_nan=True)


def test_market_weights_select_a_market(model, truth, at_truth):
    rep = counterfactual(model, truth, weights={0: 0.0, 1: 1.0, 2: 0.0})
    for name in rep.summary.index:
        for col in ALL:
            assert rep.summary.loc[name, col] == pytest.approx(
                at_truth.by_market.loc[(name, 1), col], abs=1e-9), (name, col)


def test_saved_results_keep_the_first_stage(model, fitted, tmp_path):
    """A results file keeps the first stage (tables, counts, sensitivity): loaded with the
    model, the results solve with the estimated tables and draw them, giving the report of
    the results in memory exactly; a damaged first stage is refused naming the field."""
    from ddc.io import JSONFieldError
    from estimators import load_results

    path = fitted.save(tmp_path / "nfxp.json")
    loaded = load_results(path, model)
    ts, ts2 = fitted.extra["transitions"], loaded.extra["transitions"]
    for var in ts.tables:
        np.testing.assert_array_equal(ts2.tables[var], ts.tables[var])
        np.testing.assert_array_equal(ts2.counts[var], ts.counts[var])
    pd.testing.assert_frame_equal(ts2.sensitivity, ts.sensitivity)
    a = counterfactual(model, fitted, scenarios=["video_benefit"], n_draws=6, seed=2)
    b = counterfactual(model, loaded, scenarios=["video_benefit"], n_draws=6, seed=2)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    pd.testing.assert_frame_equal(a.param_draws, b.param_draws)
    doc = json.loads(path.read_text())
    doc["first_stage"]["counts"]["video"]["values"][3] = None
    path.write_text(json.dumps(doc))
    with pytest.raises(JSONFieldError, match="first_stage.counts.video.values"):
        load_results(path, model)
