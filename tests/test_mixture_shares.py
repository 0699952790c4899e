"""Type shares that vary over units: a multinomial logit in time-invariant covariates read from
the data (``share_covariates``) and in the first state (``shares_by``), estimated by NFXP(mix),
CCP(mix) and NPL(mix); simulated with per-customer covariates; pooled in counterfactuals.

Design numbers: the two membership segments of :func:`ddc.models.membership_segments` (our own
design, documented there) with shares in a sign-up channel (three values) and a standardised
age (our design: ``gamma[1]`` const 0.3, channel=web -1.0, channel=referral 0.8, age 0.5).
Statistical tolerances come from the estimates' standard errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import ddc
from estimators import CCP, NFXP, NPL
from estimators.data import choice_data
from estimators.mixture.likelihood import MixtureLikelihood, unit_counts
from simulations import simulate

CHANNELS = ["store", "web", "referral"]
COVARIATES = {"channel": CHANNELS, "age": None}


def covariate_mix(**kw) -> ddc.Mixture:
    return ddc.Mixture(ddc.models.membership(), 2, ["theta_ship", "theta_video"],
                       share_covariates=COVARIATES, **kw)


@pytest.fixture(scope="module")
def cov_mix():
    mix = covariate_mix()
    seg = ddc.models.membership_segments().true_params
    truth = mix.params_series({**seg.drop("share[1]").to_dict(), "gamma[1]:const": 0.3,
                               "gamma[1]:channel=web": -1.0, "gamma[1]:channel=referral": 0.8,
                               "gamma[1]:age": 0.5})
    return mix, truth


@pytest.fixture(scope="module")
def units():
    rng = np.random.default_rng(5)
    n = 3000
    return pd.DataFrame({"channel": rng.choice(CHANNELS, n),
                         "age": rng.normal(0.0, 1.0, n).round(2)})


@pytest.fixture(scope="module")
def cov_panel(cov_mix, units):
    mix, truth = cov_mix
    return simulate(mix, truth, n_periods=36, seed=2, covariates=units, type_col="type")


@pytest.fixture(scope="module")
def cov_fit(cov_mix, cov_panel):
    mix, _ = cov_mix
    return NFXP(mix).fit(cov_panel.drop(columns="type"))


@pytest.fixture(scope="module")
def small_panel(cov_mix, units):
    mix, truth = cov_mix
    return simulate(mix, truth, n_periods=3, seed=0, covariates=units.iloc[:6])


# ------------------------------------------------------------------------------ specification
def test_parameter_names_follow_the_gamma_style(cov_mix):
    mix, truth = cov_mix
    assert mix.param_names[-4:] == ["gamma[1]:const", "gamma[1]:channel=web",
                                    "gamma[1]:channel=referral", "gamma[1]:age"]
    both = covariate_mix(shares_by=["market"])
    assert both.share_columns == ["const", "market=1", "market=2", "channel=web",
                                  "channel=referral", "age"]
    assert mix.varying_shares and not ddc.Mixture(mix.model, 2, ["theta_ship"]).varying_shares
    assert "share_covariates" in repr(mix) and mix.fingerprint()["share_covariates"] == \
        {"channel": CHANNELS, "age": None}
    with pytest.raises(ValueError, match="unit_shares"):
        mix.shares(truth)


@pytest.mark.parametrize("covariates, error, match", [
    pytest.param({"market": None}, ValueError, r"state variable.*shares_by=\['market'\]",
                 id="state-variable"),
    pytest.param({"channel": ["web"]}, ValueError, "at least two values", id="one-value"),
    pytest.param({"channel": ["web", "store", "web"]}, ValueError, "repeats.*'web'",
                 id="repeated-value"),
    pytest.param({"channel": "web"}, TypeError, "values", id="string-values"),
    pytest.param(["channel"], TypeError, "must map", id="not-a-mapping"),
])
def test_bad_share_covariates(covariates, error, match):
    with pytest.raises(error, match=match):
        ddc.Mixture(ddc.models.membership(), 2, ["theta_ship"], share_covariates=covariates)


def test_share_covariates_need_two_types():
    with pytest.raises(ValueError, match="at least two types"):
        ddc.Mixture(ddc.models.membership(), 1, ["theta_ship"], share_covariates=COVARIATES)


def test_unknown_shares_by_points_to_share_covariates():
    with pytest.raises(KeyError, match="share_covariates"):
        ddc.Mixture(ddc.models.membership(), 2, ["theta_ship"], shares_by=["channel"])


def test_unit_shares_are_the_logit_of_the_covariates(cov_mix, units):
    mix, truth = cov_mix
    first = np.zeros(len(units), dtype=np.int64)
    w = mix.unit_shares(truth, first, units)
    eta = (0.3 - 1.0 * (units.channel == "web") + 0.8 * (units.channel == "referral")
           + 0.5 * units.age).to_numpy()
    np.testing.assert_allclose(w[:, 1], 1 / (1 + np.exp(-eta)), rtol=1e-12)
    with pytest.raises(ValueError, match="depend on the covariates"):
        mix.unit_shares(truth, first)
    by_market = ddc.Mixture(mix.model, 2, ["theta_ship"], shares_by=["market"])
    with pytest.raises(ValueError, match="no share_covariates"):
        by_market.share_design(first, units)


@pytest.mark.parametrize("edit, error, match", [
    pytest.param(lambda f: f.drop(columns="age"), KeyError, r"\['age'\].*has \['channel'\]",
                 id="absent"),
    pytest.param(lambda f: f.assign(channel=["store", None, "web"]), ValueError,
                 "'channel' is missing.*row=1", id="missing"),
    pytest.param(lambda f: f.assign(channel=["store", "online", "web"]), ValueError,
                 r"'online' at row=1.*\['store', 'web', 'referral'\]", id="undeclared"),
    pytest.param(lambda f: f.assign(age=[1.0, "old", 2.0]), ValueError,
                 "numeric.*'old' at row=1", id="not-numeric"),
])
def test_covariate_design_errors(cov_mix, edit, error, match):
    mix, _ = cov_mix
    frame = pd.DataFrame({"channel": ["store", "web", "web"], "age": [1.0, 2.0, 3.0]},
                         index=pd.Index([0, 1, 2], name="row"))
    with pytest.raises(error, match=match):
        mix.covariate_design(edit(frame))


# ------------------------------------------------------------------------------ data protocol
def test_unit_covariates_one_row_per_unit(cov_mix, small_panel, units):
    mix, _ = cov_mix
    shuffled = small_panel.sample(frac=1.0, random_state=0)  # any row order
    got = choice_data(mix.model, shuffled).unit_covariates(["channel", "age"])
    assert got.index.name == "customer_id" and list(got.index) == list(range(6))
    assert list(got["channel"]) == list(units.channel.iloc[:6])
    np.testing.assert_array_equal(got["age"].to_numpy(dtype=float), units.age.iloc[:6])


def test_unit_covariates_from_a_mapped_column(cov_mix, small_panel, units):
    mix, _ = cov_mix
    renamed = small_panel.rename(columns={"channel": "signup_channel"})
    cd = choice_data(mix.model, renamed, columns={"channel": "signup_channel"})
    uc = unit_counts(mix, cd)
    assert list(uc.covariates["channel"]) == list(units.channel.iloc[:6])


def test_covariate_varying_within_a_unit_is_named(cov_mix, small_panel):
    mix, _ = cov_mix
    bad = small_panel.copy()
    bad["channel"] = bad["channel"].astype(object)
    row = bad.index[(bad.customer_id == 4) & (bad.month == 2)][0]
    other = "web" if bad.loc[row, "channel"] != "web" else "store"
    bad.loc[row, "channel"] = other
    with pytest.raises(ValueError, match=rf"'channel'.*varies within unit customer_id=4.*"
                                         rf"'{other}' at row {row} \(customer_id=4, month=2\)"):
        unit_counts(mix, choice_data(mix.model, bad))


def test_covariate_missing_in_a_row_is_named(cov_mix, small_panel):
    mix, _ = cov_mix
    bad = small_panel.copy()
    bad.loc[7, "age"] = np.nan
    with pytest.raises(ValueError, match=r"'age'.*missing in 1 row.*row 7 \(customer_id=2"):
        unit_counts(mix, choice_data(mix.model, bad))


def test_absent_covariate_names_the_column_and_what_is_there(cov_mix, small_panel):
    mix, _ = cov_mix
    with pytest.raises(KeyError, match=r"\['age'\].*not in the data.*'channel'"):
        unit_counts(mix, choice_data(mix.model, small_panel.drop(columns="age")))


def test_coded_panel_without_frame_is_refused(cov_mix, small_panel):
    mix, _ = cov_mix
    panel = ddc.panel.prepare(mix.model, small_panel)
    with pytest.raises(KeyError, match="coded Panel without its DataFrame"):
        unit_counts(mix, choice_data(mix.model, panel))


# ------------------------------------------------------------------------------ simulation
def test_simulated_covariates_are_columns_constant_within_units(cov_panel, units):
    per_unit = cov_panel.groupby("customer_id")[["channel", "age"]].nunique()
    assert (per_unit == 1).all().all()
    assert list(cov_panel["channel"].cat.categories) == CHANNELS
    first = cov_panel.groupby("customer_id").first()
    assert list(first.channel) == list(units.channel)
    np.testing.assert_array_equal(first.age.to_numpy(), units.age.to_numpy())


def test_simulated_types_follow_the_covariate_shares(cov_mix, cov_panel, units):
    mix, truth = cov_mix
    types = cov_panel.groupby("customer_id")["type"].first().to_numpy()
    w = mix.unit_shares(truth, np.zeros(len(units), dtype=np.int64), units)[:, 1]
    for channel in CHANNELS:  # the realized type-1 frequency per channel vs its expectation
        m = (units.channel == channel).to_numpy()
        se = np.sqrt(np.sum(w[m] * (1 - w[m]))) / m.sum()
        assert abs(types[m].mean() - w[m].mean()) < 4 * se, channel


@pytest.mark.parametrize("kwargs, error, match", [
    pytest.param({}, ValueError, r"depend on the covariates \['channel', 'age'\]",
                 id="not-given"),
    pytest.param({"covariates": pd.DataFrame({"channel": ["web"] * 3, "age": [0.0] * 3}),
                  "n_customers": 4}, ValueError, "n_customers=4.*3 rows", id="wrong-length"),
    pytest.param({"covariates": pd.DataFrame({"channel": ["tv"], "age": [0.0]})},
                 ValueError, "'tv'.*declared values", id="undeclared-value"),
    pytest.param({"covariates": [("web", 0.0)]}, TypeError, "DataFrame", id="not-a-frame"),
])
def test_simulate_covariate_errors(cov_mix, kwargs, error, match):
    mix, truth = cov_mix
    with pytest.raises(error, match=match):
        simulate(mix, truth, n_periods=2, **kwargs)


def test_simulate_covariates_clash_and_misuse(cov_mix):
    mix, truth = cov_mix
    frame = pd.DataFrame({"channel": ["web"], "age": [0.0]})
    with pytest.raises(ValueError, match="overwrite"):
        simulate(mix, truth, n_periods=2, covariates=frame, type_col="age")
    plain = ddc.models.membership_segments()
    with pytest.raises(ValueError, match="no share covariates"):
        simulate(plain, plain.true_params, n_periods=2, covariates=frame)
    model = ddc.models.membership()
    with pytest.raises(ValueError, match="one-type model"):
        simulate(model, model.true_params, n_periods=2, covariates=frame)


# ------------------------------------------------------------------------------ estimation
def test_gradient_with_covariates_matches_finite_differences(cov_mix, cov_panel):
    mix, truth = cov_mix
    cd = choice_data(mix.model, cov_panel[cov_panel.customer_id % 10 == 0])
    ml = MixtureLikelihood(mix, unit_counts(mix, cd), truth.to_numpy(), ddc.Solver())
    x = ml.internal(truth.to_numpy()) + 0.05 * np.linspace(-1, 1, len(ml.names))
    ev = ml.evaluate(x)
    num = np.empty_like(x)
    for k in range(len(x)):
        up, dn = x.copy(), x.copy()
        up[k] += 1e-6
        dn[k] -= 1e-6
        num[k] = (ml.evaluate(up, False).loglik - ml.evaluate(dn, False).loglik) / 2e-6
    np.testing.assert_allclose(ev.grad, num, rtol=1e-5, atol=1e-4)


def test_nfxp_recovers_covariate_shares(cov_mix, cov_fit):
    mix, truth = cov_mix
    res = cov_fit
    assert res.converged
    z = (res.params - truth[res.params.index]) / res.std_errors
    # Bonferroni: every parameter within the two-sided 1 - 0.05 / P band
    bound = norm.ppf(1 - 0.05 / (2 * len(z)))
    assert (z.abs() < bound).all(), z.round(2).to_dict()
    assert any("covariates ['channel', 'age']" in n for n in res.notes)


def test_type_shares_average_the_units_with_delta_method_errors(cov_mix, cov_fit, cov_panel,
                                                                units):
    mix, _ = cov_mix
    res = cov_fit
    shares = res.type_shares
    names = mix.share_names
    Z = mix.share_design(np.zeros(len(units), dtype=np.int64), units)
    np.testing.assert_allclose(res.share_design, Z)

    def mean_shares(g):
        p = res.params.copy()
        p[names] = g
        full = pd.concat([p, res.fixed_params])[mix.param_names]
        return mix.design_shares(full, Z).mean(axis=0)

    g0 = res.params[names].to_numpy()
    np.testing.assert_allclose(shares["share"], mean_shares(g0), rtol=1e-12)
    # the delta method by central differences, independent of the analytic Jacobian
    D = np.column_stack([(mean_shares(g0 + h) - mean_shares(g0 - h)) / 2e-6
                         for h in 1e-6 * np.eye(len(g0))])
    V = res.cov.loc[names, names].to_numpy()
    np.testing.assert_allclose(shares["std_error"], np.sqrt(np.diag(D @ V @ D.T)), rtol=1e-6)
    realized = cov_panel.groupby("customer_id")["type"].first().mean()
    assert abs(shares["share"].iloc[1] - realized) < 4 * shares["std_error"].iloc[1]


@pytest.fixture(scope="module")
def ccp_fits(cov_mix, cov_panel):
    mix, _ = cov_mix
    data = cov_panel.drop(columns="type")
    return {"NPL": NPL(mix).fit(data), "CCP": CCP(mix).fit(data),
            "two-stage": CCP(mix, two_stage=True).fit(data)}


def test_npl_with_covariate_shares_equals_nfxp(ccp_fits, cov_fit):
    npl = ccp_fits["NPL"]
    assert npl.converged
    # at NPL's fixed point the shares' M-step solves the same first-order conditions as the
    # mixture likelihood's, sum_i (q_ik - w_ik) z_i = 0: NPL(mix) is the MLE
    diff = (npl.params - cov_fit.params) / cov_fit.std_errors
    assert diff.abs().max() < 1e-3, diff.to_dict()
    assert npl.loglik == pytest.approx(cov_fit.loglik, abs=1e-5)
    np.testing.assert_allclose(npl.std_errors, cov_fit.std_errors, rtol=1e-3)


@pytest.mark.parametrize("variant", ["CCP", "two-stage"])
def test_ccp_with_covariate_shares_close_to_the_mle(ccp_fits, cov_fit, variant):
    res = ccp_fits[variant]
    assert res.converged
    # consistent for the same truth; the difference to the MLE is its efficiency loss, a
    # fraction of the MLE's standard error
    diff = (res.params - cov_fit.params) / cov_fit.std_errors
    assert diff.abs().max() < 1.0, diff.round(2).to_dict()
    assert res.type_shares["share"].sum() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def market_fit():
    """Shares in the market of the first state (the design of tests/test_mixture.py)."""
    model = ddc.models.membership()
    mix = ddc.Mixture(model, 2, ["theta_ship", "theta_video"], shares_by=["market"])
    seg = ddc.models.membership_segments().true_params
    truth = {**seg.drop("share[1]").to_dict(), "gamma[1]:const": 0.4,
             "gamma[1]:market=1": -0.8, "gamma[1]:market=2": 0.8}
    panel = simulate(mix, truth, n_customers=1500, n_periods=36, seed=3)
    return mix, panel, NFXP(mix).fit(panel)


def test_npl_with_first_state_shares_equals_nfxp(market_fit):
    mix, panel, nfxp = market_fit
    npl = NPL(mix).fit(panel)
    diff = (npl.params - nfxp.params) / nfxp.std_errors
    assert npl.converged and diff.abs().max() < 1e-3, diff.to_dict()


# ------------------------------------------------------------------------------ counterfactuals
@pytest.fixture(scope="module")
def cov_report(cov_fit):
    from simulations import counterfactual

    mix = cov_fit.model
    return counterfactual(mix, cov_fit, scenarios=["video_benefit"], n_draws=200, seed=1)


def test_counterfactual_pools_with_the_units_own_shares(cov_mix, cov_fit, cov_report):
    mix, _ = cov_mix
    params = pd.concat([cov_fit.params, cov_fit.fixed_params])[mix.param_names]
    w_bar = mix.design_shares(params, cov_fit.share_design).mean(axis=0)
    r = cov_report
    np.testing.assert_allclose(r.type_shares.to_numpy(), w_bar, rtol=1e-12)
    np.testing.assert_allclose(r.type_shares.to_numpy(), cov_fit.type_shares["share"],
                               rtol=1e-12)
    for scn in ("baseline", "video_benefit"):
        by_type = [r.by_type.loc[(k, scn), "cv_per_customer"] for k in range(2)]
        assert r.by_type.loc[(0, scn), "share"] == pytest.approx(w_bar[0], rel=1e-12)
        assert r.summary.loc[scn, "cv_per_customer"] == pytest.approx(w_bar @ by_type,
                                                                      rel=1e-10)
    assert any("mean share over the 3,000 estimation units" in n for n in r.notes)


def test_counterfactual_share_intervals_carry_the_gamma_uncertainty(cov_mix, cov_fit,
                                                                    cov_report):
    from simulations.draws import _interval

    mix, _ = cov_mix
    r = cov_report
    assert r.n_used == 200
    # every draw pools with the mean over the units of w_k(z_i; gamma_d), gamma_d its draw
    Z = cov_fit.share_design
    pooled = np.array([mix.design_shares(row, Z).mean(axis=0)
                       for _, row in r.param_draws.iterrows()])
    lo, hi = _interval(pooled[:, 1], 0.95)
    row = r.by_type.loc[(1, "baseline")]
    assert (row["share_lower"], row["share_upper"]) == pytest.approx((lo, hi), rel=1e-12)
    # the interval's width against the delta-method standard error of the average share: the
    # percentile width of 200 normal draws has a relative standard error of about 7%
    se = cov_fit.type_shares["std_error"].iloc[1]
    ratio = (hi - lo) / (2 * norm.ppf(0.975) * se)
    assert abs(ratio - 1) < 4 * 0.07, ratio


def test_counterfactual_with_varying_shares_needs_results(cov_mix):
    from simulations import counterfactual

    mix, truth = cov_mix
    with pytest.raises(ValueError, match="covariates.*pass the results"):
        counterfactual(mix, truth, scenarios=["video_benefit"])


def test_counterfactual_by_block_pools_each_block_with_its_units_shares(market_fit):
    from simulations import counterfactual

    mix, panel, res = market_fit
    r = counterfactual(mix, res, scenarios=["video_benefit"], n_draws=0)
    params = pd.concat([res.params, res.fixed_params])[mix.param_names]
    w_units = mix.design_shares(params, res.share_design)
    market = panel.groupby("customer_id")["market"].first().to_numpy()
    np.testing.assert_allclose(r.type_shares.to_numpy(), w_units.mean(axis=0), rtol=1e-12)
    for m in range(3):  # market is permanent: its own units' mean shares weigh the types
        w_m = w_units[market == m].mean(axis=0)
        cv = [r.type_reports[k].by_block.loc[("video_benefit", m), "cv_per_customer"]
              for k in range(2)]
        assert r.by_block.loc[("video_benefit", m), "cv_per_customer"] == \
            pytest.approx(w_m @ cv, rel=1e-10)
    assert any("By block: each block pools" in n for n in r.notes)


def test_fit_reads_a_covariate_through_the_column_mapping(cov_mix, cov_panel, ccp_fits):
    mix, _ = cov_mix
    data = cov_panel.drop(columns="type").rename(columns={"channel": "signup",
                                                          "customer_id": "member"})
    res = CCP(mix).fit(data, id_col="member", columns={"channel": "signup"})
    pd.testing.assert_series_equal(res.params, ccp_fits["CCP"].params, rtol=1e-10)
    with pytest.raises(KeyError, match=r"\['channel'\].*not in the data"):
        CCP(mix).fit(data, id_col="member")


@pytest.mark.slow
def test_monte_carlo_coverage_of_share_coefficients():
    """40 replications of 1,500 customers x 36 months, shares in the first state's market and
    in the channel and age covariates together (the designs above): the 95% intervals of the
    shares' logit coefficients cover near 95% and their z-statistics have mean near 0.

    Tolerances from the replications: a coverage rate from 40 draws at 0.95 has standard error
    0.034 (bound 4 x that per coefficient), pooled over the 240 intervals about 0.014 if
    independent (bound 0.90); the mean of 40 z-statistics has standard error 0.16 (bound 4 x)."""
    mix = covariate_mix(shares_by=["market"])
    seg = ddc.models.membership_segments().true_params
    truth = mix.params_series({**seg.drop("share[1]").to_dict(), "gamma[1]:const": 0.3,
                               "gamma[1]:market=1": -0.8, "gamma[1]:market=2": 0.8,
                               "gamma[1]:channel=web": -1.0, "gamma[1]:channel=referral": 0.8,
                               "gamma[1]:age": 0.5})
    rows = []
    for seed in range(200, 240):
        rng = np.random.default_rng(seed)
        units = pd.DataFrame({"channel": rng.choice(CHANNELS, 1500),
                              "age": rng.normal(0.0, 1.0, 1500)})
        panel = simulate(mix, truth, n_periods=36, seed=seed, covariates=units)
        res = NFXP(mix, n_starts=1).fit(panel)
        rows.append((res.params - truth[res.params.index]) / res.std_errors)
    z = pd.DataFrame(rows)[mix.share_names]
    covered = (z.abs() < norm.ppf(0.975))
    assert (covered.mean() > 0.95 - 4 * 0.034).all(), covered.mean().to_dict()
    assert covered.to_numpy().mean() > 0.90, covered.to_numpy().mean()
    assert (z.mean().abs() < 4 * 0.16).all(), z.mean().to_dict()


# ------------------------------------------------------------------------------ saved results
def test_saved_covariate_shares_give_the_same_report(cov_fit, tmp_path):
    """The file keeps the units' share covariates (distinct rows with counts): loaded with the
    mixture, the pooled report equals the one in memory, figures and intervals (same seed)."""
    from estimators import load_results
    from simulations import counterfactual

    mix = cov_fit.model
    loaded = load_results(cov_fit.save(tmp_path / "mix.json"), mix)
    assert loaded.share_design.shape == cov_fit.share_design.shape
    np.testing.assert_array_equal(np.sort(loaded.first_states), np.sort(cov_fit.first_states))
    a = counterfactual(mix, cov_fit, scenarios=["video_benefit"], n_draws=20, seed=4)
    b = counterfactual(mix, loaded, scenarios=["video_benefit"], n_draws=20, seed=4)
    for name in ["summary", "by_type", "choice_shares", "type_shares"]:
        x, y = getattr(a, name), getattr(b, name)
        (pd.testing.assert_series_equal if isinstance(x, pd.Series)
         else pd.testing.assert_frame_equal)(x, y, rtol=1e-12)


def test_saved_first_state_shares_give_the_same_report_by_block(market_fit, tmp_path):
    from estimators import load_results
    from simulations import counterfactual

    mix, _, res = market_fit
    loaded = load_results(res.save(tmp_path / "mix.json"), mix)
    a = counterfactual(mix, res, scenarios=["video_benefit"], n_draws=10, seed=1)
    b = counterfactual(mix, loaded, scenarios=["video_benefit"], n_draws=10, seed=1)
    for name in ["summary", "by_type", "by_block"]:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), rtol=1e-12)
    # saved again without the mixture, the units and their column names survive
    again = load_results(load_results(tmp_path / "mix.json").save(tmp_path / "again.json"), mix)
    np.testing.assert_array_equal(again.share_design, loaded.share_design)
    np.testing.assert_array_equal(again.first_states, loaded.first_states)


def test_loaded_first_state_shares_are_the_averages_with_their_errors(market_fit, tmp_path):
    """The file's distinct (first state, covariates) rows with counts give the averaged shares
    and their delta-method errors of the fit (the average does not depend on the units'
    order), with the mixture or without it (share names from the file)."""
    from estimators import load_results
    from estimators.mixture import MixtureResults

    mix, _, res = market_fit
    path = res.save(tmp_path / "mix.json")
    for loaded in (load_results(path, mix), load_results(path)):
        assert isinstance(loaded, MixtureResults)
        pd.testing.assert_frame_equal(loaded.type_shares, res.type_shares, rtol=1e-12, atol=0)
        pd.testing.assert_frame_equal(loaded.posteriors, res.posteriors, rtol=0, atol=0)
        assert str(loaded.summary()) == str(res.summary())


@pytest.mark.parametrize("edit, match", [
    (lambda u: u.pop("counts"), r"share_units\.counts is missing"),
    (lambda u: u["rows"][0].__setitem__(0, None), r"share_units\.rows\[0\]"),
    (lambda u: u["first_states"].pop(), r"share_units\.first_states has"),
    (lambda u: u.__setitem__("columns", ["const", "market=9", "market=2"]),
     r"share_units\.columns"),
    (lambda u: u["counts"].__setitem__(0, u["counts"][0] + 1), r"n_units"),
])
def test_damaged_share_units_are_named(market_fit, tmp_path, edit, match):
    import json

    from estimators import load_results

    mix, _, res = market_fit
    path = res.save(tmp_path / "mix.json")
    doc = json.loads(path.read_text())
    edit(doc["share_units"])
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match):
        load_results(path, mix)
