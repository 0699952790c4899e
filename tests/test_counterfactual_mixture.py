"""Counterfactuals of a mixture of types, by type and pooled (simulations.counterfactual_mixture).

Oracles: each type solved on its own by ``Model.solve`` and ``stationary_from_policy``, pooled by
hand with the type shares (the rule in the module docstring); the one-type engine for K = 1.
Design: :func:`ddc.models.membership_segments` (this package's own design).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc.scenarios import resolve_scenarios
from estimators import NFXP
from simulations import counterfactual, simulate, stationary_from_policy
from simulations.counterfactual_mixture import MixtureCounterfactualReport

SCENARIOS = ["monthly_price_up", "video_benefit"]


@pytest.fixture(scope="module")
def segments():
    return ddc.models.membership_segments()


@pytest.fixture(scope="module")
def truth_report(segments):
    return counterfactual(segments, segments.true_params, scenarios=SCENARIOS)


@pytest.fixture(scope="module")
def fit(segments):
    panel = simulate(segments, segments.true_params, n_customers=1500, n_periods=24, seed=3)
    return NFXP(segments).fit(panel)


def _by_hand(mix, params, scenario_name):
    """Per type: (CV in money, choice shares) of ``scenario_name``, from Model.solve."""
    out = []
    for k in range(mix.n_types):
        tm = mix.type_model(params, k)
        tp = mix.type_params(params, k)
        (scn,) = resolve_scenarios(scenario_name, tm)
        base = tm.solve(tp)
        mu = stationary_from_policy(tm, base.pi, params=tp)
        other_model = scn.apply(tm)
        other = other_model.solve(tp)
        mu_o = stationary_from_policy(other_model, other.pi, params=tp)
        cv = mu @ (other.V - base.V) / mu.sum() / tm.hooks.money.utils_per_unit(tp)
        choice = (mu_o[:, None] * other.pi).sum(axis=0) / mu_o.sum()
        out.append((cv, choice))
    return out


def _annual_share_parts(mix, params, k):
    """Type k's baseline mass of annual choices and of members (non-"none" choices), per unit:
    the numerator and denominator of the annual share of members."""
    tm = mix.type_model(params, k)
    tp = mix.type_params(params, k)
    sol = tm.solve(tp)
    mu = stationary_from_policy(tm, sol.pi, params=tp)
    mu = mu / mu.sum()
    a = {name: j for j, name in enumerate(tm.actions)}
    return mu @ sol.pi[:, a["annual"]], mu @ (1.0 - sol.pi[:, a["none"]])


def test_pooled_is_share_weighted_types_at_the_truth(segments, truth_report):
    r = truth_report
    assert isinstance(r, MixtureCounterfactualReport)
    w = segments.shares(segments.true_params)
    for name in SCENARIOS:
        per = _by_hand(segments, segments.true_params, name)
        for k, (cv, _) in enumerate(per):
            assert r.by_type.loc[(k, name), "cv_per_customer"] == pytest.approx(cv, rel=1e-8)
            assert r.by_type.loc[(k, name), "share"] == w[k]
        pooled_cv = sum(w[k] * per[k][0] for k in range(2))
        assert r.summary.loc[name, "cv_per_customer"] == pytest.approx(pooled_cv, rel=1e-8)
        pooled_choice = sum(w[k] * per[k][1] for k in range(2))
        np.testing.assert_allclose(r.choice_shares.loc[name, list(segments.actions)],
                                   pooled_choice, rtol=1e-8)
    # outcomes that are averages per unit: share-weighted sum of the types' own figures
    for o in ["member_share", "revenue_per_customer_month"]:
        for name in ["baseline", *SCENARIOS]:
            want = sum(w[k] * r.type_reports[k].summary.loc[name, o] for k in range(2))
            assert r.summary.loc[name, o] == pytest.approx(want, rel=1e-12)
    # state shares: linear in the distribution
    want = sum(w[k] * r.type_reports[k].state_shares["share"] for k in range(2))
    np.testing.assert_allclose(r.state_shares["share"], want, rtol=1e-10)
    # a ratio outcome is the figure of the pooled population (type share times the type's
    # stationary distribution), not the share-weighted average of the types' ratios
    parts = [_annual_share_parts(segments, segments.true_params, k) for k in range(2)]
    pooled = (sum(w[k] * parts[k][0] for k in range(2))
              / sum(w[k] * parts[k][1] for k in range(2)))
    assert r.summary.loc["baseline", "annual_share"] == pytest.approx(pooled, rel=1e-8)
    naive = sum(w[k] * parts[k][0] / parts[k][1] for k in range(2))
    assert abs(pooled - naive) > 0.05  # the distinction matters in this design
    # the two types differ, so pooling is not trivial
    assert abs(r.by_type.loc[(0, "video_benefit"), "cv_per_customer"]
               - r.by_type.loc[(1, "video_benefit"), "cv_per_customer"]) > 10


def _joiner_masses(mix, params, k):
    """Type k's baseline mass of a month's joiners per unit (all, monthly, annual): the
    customers in a plan-"none" state choosing a plan, under the type's stationary
    distribution."""
    tm = mix.type_model(params, k)
    tp = mix.type_params(params, k)
    sol = tm.solve(tp)
    mu = stationary_from_policy(tm, sol.pi, params=tp)
    mu = mu / mu.sum()
    plan = tm.space.variable("plan")
    none = tm.space.code_of("plan") == list(plan.values).index("none")
    a = {name: j for j, name in enumerate(tm.actions)}
    monthly = mu[none] @ sol.pi[none, a["monthly"]]
    annual = mu[none] @ sol.pi[none, a["annual"]]
    return np.array([monthly + annual, monthly, annual])


def test_pooled_by_block_and_curves_at_the_truth(segments, truth_report):
    """By market: every type has the market's mass, so the CV pools as sum_k w_k CV_kc and the
    annual share of members as sum_k w_k m_kc a_kc / sum_k w_k m_kc (m: member share); the
    retention curve is that of the pooled cohort of joiners, sum_k w_k J_k S_k(t) /
    sum_k w_k J_k with J_k the type's joiners per unit (computed by hand from the solution)."""
    r = truth_report
    w = segments.shares(segments.true_params)
    types = [t.by_block for t in r.type_reports]
    np.testing.assert_allclose(
        r.by_block["cv_per_customer"],
        sum(w[k] * types[k]["cv_per_customer"] for k in range(2)), rtol=1e-12)
    # equal mass per market: the markets' mean is the whole population's CV
    np.testing.assert_allclose(r.by_block["cv_per_customer"].groupby(level=0).mean()
                               .loc[r.summary.index], r.summary["cv_per_customer"], rtol=1e-10)
    m = [t["member_share"] for t in types]
    a = [t["annual_share"] for t in types]
    want = sum(w[k] * m[k] * a[k] for k in range(2)) / sum(w[k] * m[k] for k in range(2))
    np.testing.assert_allclose(r.by_block["annual_share"], want, rtol=1e-10)
    # retention: the pooled cohort
    J = [_joiner_masses(segments, segments.true_params, k) for k in range(2)]
    curves = [t.retention["retention"].xs("baseline") for t in r.type_reports]
    got = r.retention["retention"].xs("baseline")
    for g, group in enumerate(["all", "monthly", "annual"]):
        want = (sum(w[k] * J[k][g] * curves[k].xs(group) for k in range(2))
                / sum(w[k] * J[k][g] for k in range(2)))
        np.testing.assert_allclose(got.xs(group), want, rtol=1e-8)
    assert r.retention["retention"].xs(("baseline", "all", 12)) == pytest.approx(
        r.summary.loc["baseline", "retention_12m"], rel=1e-12)
    naive = sum(w[k] * curves[k].xs("all").loc[12] for k in range(2))
    assert abs(got.xs("all").loc[12] - naive) > 0.05  # the cohort's rule matters here
    md = r.to_markdown()
    assert "## By market" in md and "## Retention" in md


def test_report_documents(truth_report, tmp_path):
    truth_report.save(tmp_path / "out")
    saved = pd.read_csv(tmp_path / "out" / "by_type.csv", index_col=[0, 1])
    np.testing.assert_allclose(saved["cv_per_customer"],
                               truth_report.by_type["cv_per_customer"], rtol=1e-9)
    md = truth_report.to_markdown()
    assert "## By type" in md and "Figures by type" in md
    for name in ("by_market.csv", "retention.csv", "retention.png", "welfare_by_market.png"):
        assert (tmp_path / "out" / name).exists(), name
    assert "By type" in truth_report.to_html()
    assert not truth_report.has_intervals


def test_one_type_mixture_is_the_model():
    model = ddc.models.membership()
    mix = ddc.Mixture(model, 1, ["theta_0"])
    params = mix.params_series({("theta_0[0]" if n == "theta_0" else n): v
                                for n, v in model.true_params.items()})
    got = counterfactual(mix, params, scenarios=SCENARIOS)
    ref = counterfactual(model, model.true_params, scenarios=SCENARIOS)
    pd.testing.assert_frame_equal(got.summary, ref.summary)
    pd.testing.assert_frame_equal(got.welfare, ref.welfare)
    pd.testing.assert_frame_equal(got.by_block, ref.by_block)
    pd.testing.assert_frame_equal(got.retention, ref.retention)
    pd.testing.assert_frame_equal(got.changes, ref.changes)
    pd.testing.assert_frame_equal(got.choice_shares, ref.choice_shares)


def test_draws_carry_types_and_shares_jointly(segments, fit):
    r = counterfactual(segments, fit, scenarios=["video_benefit"], n_draws=30, seed=5)
    assert r.has_intervals and r.n_used == 30
    W = np.column_stack([1 - r.param_draws["share[1]"], r.param_draws["share[1]"]])
    assert np.ptp(W[:, 1]) > 0  # the shares are drawn
    per_type = np.column_stack([r.type_reports[k].draws[("video_benefit", "cv_per_customer")]
                                for k in range(2)])
    np.testing.assert_allclose(r.draws[("video_benefit", "cv_per_customer")],
                               (W * per_type).sum(axis=1), rtol=1e-12)
    # a few draws against exact per-type solutions at the drawn parameters, with the
    # transitions the fit estimated (res.transition_mixture), not the model's defaults, each
    # draw with its own draw of the first stage's tables (draw_transitions=True, the default:
    # the Dirichlet draws of draw_first_stage on the transitions' stream of the seed)
    from estimators.first_stage import draw_first_stage
    from simulations.draws import _first_stage_seed

    assert fit.transition_mixture.model is not segments.model
    assert any("first stage" in n for n in r.notes)
    assert any("Dirichlet" in n for n in r.notes)
    tables = draw_first_stage(fit.extra["transitions"], 30, _first_stage_seed(5))
    estimated = fit.transition_mixture.model.transitions()
    for d in r.param_draws.index[:3]:
        drawn = fit.transition_mixture.model.replace(
            transitions=tables.transitions(estimated, int(d)))
        per = _by_hand(ddc.Mixture(drawn, 2, segments.by_type), r.param_draws.loc[d],
                       "video_benefit")
        for k in range(2):
            assert per_type[list(r.param_draws.index).index(d), k] == pytest.approx(
                per[k][0], rel=1e-6)
    lo, hi = r.summary.loc["video_benefit", ["cv_per_customer_lower", "cv_per_customer_upper"]]
    assert lo < r.summary.loc["video_benefit", "cv_per_customer"] < hi
    # pooled by market and curves from the same draws: the retention curve of the pooled
    # cohort at 12 months is the pooled 12-month retention, draw by draw
    ret = r.retention.xs(("all", 12), level=("joined", "k"))
    np.testing.assert_allclose(
        ret[["retention", "retention_lower", "retention_upper"]].to_numpy(),
        r.summary[["retention_12m", "retention_12m_lower", "retention_12m_upper"]].to_numpy(),
        rtol=1e-10)
    b = r.by_block.loc["video_benefit"]
    assert (b["cv_per_customer_lower"] < b["cv_per_customer"]).all()
    assert (b["cv_per_customer"] < b["cv_per_customer_upper"]).all()
    assert "share_lower" in r.by_type.columns
    c = r.choice_shares.loc["video_benefit"]
    assert c["annual_lower"] < c["annual"] < c["annual_upper"]
    st = r.state_shares.loc[("video_benefit", "plan")]
    assert (st["share_lower"] <= st["share"]).all() and (st["share"] <= st["share_upper"]).all()
    assert (st["share_upper"] > st["share_lower"]).any()
    # the type reports keep only the model's own figures
    assert list(r.type_reports[0].summary.columns) == list(r.summary.columns)


def test_refuses_results_of_another_mixture(fit):
    other = ddc.Mixture(ddc.models.membership(), 2, ["theta_ship"])
    with pytest.raises(Exception, match="by_type|params"):
        counterfactual(other, fit, scenarios=["video_benefit"], n_draws=0)
    with pytest.raises(Exception, match="n_types|params|name"):
        counterfactual(ddc.models.membership(), fit, scenarios=["video_benefit"], n_draws=0)


def test_shares_by_needs_results():
    # shares that vary over units pool over the estimation units' first states, which only the
    # results hold (tests/test_mixture_shares.py pools them)
    mix = ddc.Mixture(ddc.models.membership(), 2, ["theta_ship"], shares_by=["market"])
    with pytest.raises(ValueError, match="first state.*pass the results"):
        counterfactual(mix, {}, scenarios=["video_benefit"])


def test_one_type_mixture_draws_are_the_models():
    """K = 1 with intervals: the mixture's report equals the one-type engine's at the same
    parameter draws (the mixture's names differ only by ``theta_0[0]``, first in both)."""
    model = ddc.models.membership()
    mix = ddc.Mixture(model, 1, ["theta_0"])
    panel = simulate(model, model.true_params, n_customers=800, n_periods=24, seed=2)
    res = NFXP(mix, n_starts=1).fit(panel)
    got = counterfactual(mix, res, scenarios=SCENARIOS, n_draws=20, seed=4)
    assert got.has_intervals and got.n_used == 20
    th = got.param_draws.to_numpy()
    # the one-type engine on the model with the tables the fit's first stage estimated, and
    # the same draws of those tables
    from estimators.first_stage import draw_first_stage
    from simulations.draws import _first_stage_seed

    tables = draw_first_stage(res.extra["transitions"], 20, _first_stage_seed(4))
    ref = counterfactual(res.transition_mixture.model, mix.type_params(got.params, 0),
                         scenarios=SCENARIOS, _param_draws=th, _transition_draws=tables)
    for name in ["summary", "welfare", "changes", "choice_shares", "by_block", "retention"]:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(ref, name), rtol=1e-12)


def test_heterogeneity_page_numbers(truth_report):
    """The table of docs/heterogeneity.rst ("Counterfactuals by type and pooled") is the
    report at the true parameters, rounded as printed."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "heterogeneity.rst").read_text()
    section = page[page.index("At the true parameters (``tests/test_counterfactual_mixture"):]
    rows = re.findall(r"^(monthly_price_up|video_benefit)\s+(\d|all)\s+([-+]\$[\d.]+)\s+"
                      r"([\d.]+)%\s+([\d.]+)%\s*$", section, flags=re.M)
    assert len(rows) == 6
    for scn, typ, cv, member, annual in rows:
        src = (truth_report.summary.loc[scn] if typ == "all"
               else truth_report.by_type.loc[(int(typ), scn)])
        assert float(cv.replace("$", "")) == round(src["cv_per_customer"], 2)
        assert float(member) == round(100 * src["member_share"], 1)
        assert float(annual) == round(100 * src["annual_share"], 1)


def test_share_draws_near_the_boundary_stay_in_the_simplex(segments, fit):
    """A covariance inflated 400-fold (share s.e. about 0.27 around 0.6): normal draws of the
    share itself leave [0, 1] (about 8% of them: P(|N| beyond 0.4/0.27 or 0.6/0.27); such draws
    were dropped before the shares were drawn on the logit scale); logit-scale draws all stay
    inside and none is lost."""
    import copy
    import warnings

    from simulations.draws import _draw_params

    wide = copy.copy(fit)
    wide._stored_covs = {**fit._stored_covs, "inflated": 400.0 * fit.cov.to_numpy()}
    cov = wide.cov_of("inflated")
    params = segments.params_series(pd.concat([fit.params, fit.fixed_params]))
    linear = _draw_params(params, cov, 200, 0)[:, segments.param_names.index("share[1]")]
    assert ((linear < 0) | (linear > 1)).sum() > 0  # the design reaches the boundary
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = counterfactual(segments, wide, scenarios=["monthly_price_up"], n_draws=40, seed=1,
                           cov_type="inflated")
    s1 = r.param_draws["share[1]"]
    assert ((s1 > 0) & (s1 < 1)).all()
    assert r.n_used == 40
    lo, hi = r.by_type.loc[(1, "baseline"), ["share_lower", "share_upper"]]
    assert 0 < lo < r.type_shares[1] < hi < 1
    assert any("logit scale" in n for n in r.notes)


def test_share_draws_away_from_the_boundary_agree_with_the_normal(segments, fit):
    """At the fit's covariance (share[1] near 0.6, s.e. about 0.014) the logit-scale draws of
    the share have the percentile interval of the normal approximation N(w, se^2) the old
    draws used: the endpoints agree within three Monte Carlo standard errors of a quantile,
    sqrt(q (1 - q) / D) / phi(z_q) standard errors of the share (20,000 draws); the logit's
    curvature moves them by about w (1 - w) |1 - 2 w| (1.96 se_gamma)^2 / 2, 0.02 s.e. here."""
    from scipy.stats import norm

    from simulations.counterfactual_mixture import draw_mixture_params

    params = segments.params_series(pd.concat([fit.params, fit.fixed_params]))
    D = 20_000
    TH = draw_mixture_params(segments, params, fit.cov, D, 7)
    w1 = TH[:, segments.param_names.index("share[1]")]
    se = fit.std_errors["share[1]"]
    for q in (0.025, 0.975):
        mc = np.sqrt(q * (1 - q) / D) / norm.pdf(norm.ppf(q)) * se
        want = params["share[1]"] + norm.ppf(q) * se
        got = np.quantile(w1, q, method="weibull")
        assert abs(got - want) < 3 * mc, (q, got, want, mc)
    # the other parameters are drawn as before: same mean and covariance
    th = TH[:, segments.param_names.index("theta_ship[0]")]
    assert abs(th.mean() - params["theta_ship[0]"]) < 4 * fit.std_errors["theta_ship[0]"] / \
        np.sqrt(D)
    assert np.std(th) == pytest.approx(fit.std_errors["theta_ship[0]"], rel=4 / np.sqrt(2 * D))
    # and their correlation with the share is the reported one (delta method, to first order)
    c = np.corrcoef(th, w1)[0, 1]
    want_c = fit.cov.loc["theta_ship[0]", "share[1]"] / (fit.std_errors["theta_ship[0]"] * se)
    assert abs(c - want_c) < 4 / np.sqrt(D)


def test_share_draws_refuse_a_share_on_the_boundary(segments, fit):
    from simulations.counterfactual_mixture import draw_mixture_params

    params = segments.params_series(pd.concat([fit.params, fit.fixed_params]))
    params["share[1]"] = 1.0
    with pytest.raises(ValueError, match=r"share\[0\] = 0 is on the boundary"):
        draw_mixture_params(segments, params, fit.cov, 10, 0)


def test_saved_mixture_results_give_the_same_report(segments, fit, tmp_path):
    """A mixture's results saved and loaded with the mixture (the fingerprint checked) keep the
    first stage's tables: the report equals the one of the results in memory."""
    from estimators import load_results

    path = fit.save(tmp_path / "mix.json")
    loaded = load_results(path, segments)
    a = counterfactual(segments, fit, scenarios=["video_benefit"], n_draws=5, seed=2)
    b = counterfactual(segments, loaded, scenarios=["video_benefit"], n_draws=5, seed=2)
    for name in ["summary", "by_type", "by_block", "retention"]:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_saved_type_specific_tables_give_the_same_report(segments, tmp_path):
    """With tables estimated by type in the EM (transitions_by_type), the file keeps them too:
    loaded with the mixture, the report equals the one of the results in memory."""
    from estimators import load_results

    panel = simulate(segments, segments.true_params, n_customers=800, n_periods=24, seed=3)
    mix = ddc.Mixture(segments.model, 2, ["theta_ship", "theta_video"],
                      transitions_by_type=["video"])
    fit = NFXP(mix, n_starts=1).fit(panel)
    loaded = load_results(fit.save(tmp_path / "mix.json"), mix)
    for k in range(2):
        np.testing.assert_array_equal(loaded.transition_mixture.type_tables(k)["video"],
                                      fit.type_tables[k]["video"])
    a = counterfactual(mix, fit, scenarios=["video_benefit"], n_draws=5, seed=2)
    b = counterfactual(mix, loaded, scenarios=["video_benefit"], n_draws=5, seed=2)
    for name in ["summary", "by_type"]:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert any("held at their estimates" in n for n in a.notes)
