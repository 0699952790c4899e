"""Finite mixtures of unobserved types: specification, simulation, NFXP(mix) and CCP(mix).

Design numbers: :func:`ddc.models.membership_segments` (our own design, documented there).
Statistical tolerances are derived from the estimates' standard errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import ddc
from estimators import CCP, NFXP, NPL, PQR, MaxEntIRL, Optimizer
from estimators.data import choice_data
from estimators.mixture import MixtureResults, TypesNotSeparatedWarning
from estimators.mixture.likelihood import MixtureLikelihood, unit_counts
from simulations import simulate


@pytest.fixture(scope="module")
def segments():
    return ddc.models.membership_segments()


@pytest.fixture(scope="module")
def segment_panel(segments):
    return simulate(segments, segments.true_params, n_customers=3000, n_periods=36, seed=1,
                    type_col="type")


@pytest.fixture(scope="module")
def segment_fit(segments, segment_panel):
    return NFXP(segments).fit(segment_panel.drop(columns="type"))


@pytest.fixture(scope="module")
def one_type_panel():
    model = ddc.models.membership()
    return simulate(model, model.true_params, n_customers=2000, n_periods=24, seed=0)


# ------------------------------------------------------------------------------ specification
def test_param_names_and_type_params(segments):
    assert segments.param_names == [
        "theta_ship[0]", "theta_ship[1]", "theta_video[0]", "theta_video[1]", "theta_0",
        "theta_annual", "alpha_price", "kappa_join", "share[1]"]
    tp = segments.type_params(segments.true_params, 1)
    assert list(tp.index) == segments.model.param_names
    assert tp["theta_ship"] == 1.4 and tp["theta_video"] == 0.1 and tp["kappa_join"] == 3.0
    np.testing.assert_allclose(segments.shares(segments.true_params), [0.4, 0.6])
    sols = segments.solve(segments.true_params)
    assert len(sols) == 2
    np.testing.assert_array_equal(sols[1].pi, segments.model.solve(tp).pi)
    assert segments.type_model(segments.true_params, 0).true_params["theta_ship"] == 0.2


@pytest.mark.parametrize("kwargs, error, match", [
    pytest.param({"n_types": 0, "by_type": ["theta_0"]}, ValueError, "n_types", id="K0"),
    pytest.param({"n_types": 2.0, "by_type": ["theta_0"]}, ValueError, "n_types", id="Kfloat"),
    pytest.param({"n_types": 2, "by_type": ["theta_foo"]}, KeyError, "theta_foo", id="unknown"),
    pytest.param({"n_types": 2, "by_type": []}, ValueError, "by_type is empty", id="empty"),
    pytest.param({"n_types": 2, "by_type": ["theta_0", "theta_0"]}, ValueError,
                 "more than once", id="duplicate"),
])
def test_mixture_rejects_bad_specifications(kwargs, error, match):
    with pytest.raises(error, match=match):
        ddc.Mixture(ddc.models.membership(), **kwargs)


def test_mixture_rejects_type_specific_transitions():
    with pytest.raises(ValueError, match="transition parameter.*theta_30"):
        ddc.Mixture(ddc.models.rust_bus(n_states=20), 2, ["RC", "theta_30"])


def test_params_series_errors(segments):
    good = dict(segments.true_params)
    with pytest.raises(KeyError, match=r"numbered 0\.\.1"):
        segments.params_series({**good, "theta_ship[2]": 1.0})
    with pytest.raises(KeyError, match=r"p\[0\], p\[1\]"):
        segments.params_series({**good, "theta_ship": 1.0})
    with pytest.raises(KeyError, match="missing.*share"):
        segments.params_series({k: v for k, v in good.items() if k != "share[1]"})
    with pytest.raises(ValueError, match=r"share\[0\] = -0\.2"):
        segments.params_series({**good, "share[1]": 1.2})


# ------------------------------------------------------------------------------ simulation
def test_simulate_mixture_records_type_only_on_request(segments, segment_panel):
    plain = simulate(segments, segments.true_params, n_customers=3000, n_periods=36, seed=1)
    assert "type" not in plain.columns
    pd.testing.assert_frame_equal(plain, segment_panel.drop(columns="type"))
    types = segment_panel.groupby("customer_id")["type"].agg(["first", "nunique"])
    assert (types["nunique"] == 1).all()  # a type for life
    share = types["first"].mean()
    se = np.sqrt(0.6 * 0.4 / 3000)
    assert abs(share - 0.6) < 4 * se


def test_simulate_one_type_mixture_is_the_model():
    model = ddc.models.membership()
    mix = ddc.Mixture(model, 1, ["theta_ship"])
    params = {("theta_ship[0]" if k == "theta_ship" else k): v
              for k, v in model.true_params.items()}
    a = simulate(mix, params, n_customers=300, n_periods=10, seed=3)
    b = simulate(model, model.true_params, n_customers=300, n_periods=10, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_simulate_type_col_needs_a_mixture():
    model = ddc.models.membership()
    with pytest.raises(ValueError, match="type_col"):
        simulate(model, model.true_params, n_customers=10, n_periods=2, type_col="type")


# ------------------------------------------------------------------------------ likelihood
def test_mixture_gradient_matches_finite_differences(segments, segment_panel):
    cd = choice_data(segments.model, segment_panel.iloc[: 36 * 300])
    full = segments.true_params.to_numpy()
    ml = MixtureLikelihood(segments, unit_counts(segments, cd), full, ddc.Solver())
    x = ml.internal(full) + 0.05 * np.linspace(-1, 1, len(ml.names))
    ev = ml.evaluate(x)
    num = np.empty_like(x)
    for k in range(len(x)):
        h = 1e-6
        up, dn = x.copy(), x.copy()
        up[k] += h
        dn[k] -= h
        num[k] = (ml.evaluate(up, False).loglik - ml.evaluate(dn, False).loglik) / (2 * h)
    np.testing.assert_allclose(ev.grad, num, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ev.posteriors.sum(axis=1), 1.0, rtol=1e-12)


# ------------------------------------------------------------------------------ NFXP(mix)
@pytest.mark.parametrize("transitions", [pytest.param(None, id="estimated"),
                                         pytest.param("known", id="known")])
def test_one_type_mixture_reproduces_nfxp(one_type_panel, transitions):
    model = ddc.models.membership()
    mix = ddc.Mixture(model, 1, ["theta_ship", "theta_video"])
    res1 = NFXP(mix, transitions=transitions).fit(one_type_panel)
    # the mixture has the one-type first stage (estimated engagement tables by default, or the
    # model's declared known); the one-type estimator run as the mixture's one-type start is
    # (BHHH from zeros; NFXP's default is Newton from a CCP estimate)
    ref = NFXP(model, transitions=transitions, optimizer=Optimizer("bhhh")).fit(
        one_type_panel, start=np.zeros(len(model.utility_params)))
    renamed = res1.params.rename(lambda n: n.replace("[0]", ""))[ref.params.index]
    np.testing.assert_array_equal(renamed.to_numpy(), ref.params.to_numpy())
    se = res1.std_errors.rename(lambda n: n.replace("[0]", ""))[ref.params.index]
    # both Hessians analytic (the mixture's by Louis' identity, which with one type is the
    # one-type Hessian on the same counts)
    np.testing.assert_allclose(se.to_numpy(), ref.std_errors.to_numpy(), rtol=1e-7)
    assert res1.loglik == pytest.approx(ref.loglik, abs=1e-6)
    assert (res1.posteriors.to_numpy() == 1.0).all()
    fs = [n for n in ref.notes if "Murphy-Topel" in n or "declared known" in n]
    assert fs and all(any(n[:40] in m for m in res1.notes) for n in fs), res1.notes


def test_recovers_two_segment_truth(segments, segment_fit):
    res = segment_fit
    assert isinstance(res, MixtureResults) and res.converged
    truth = segments.true_params[res.params.index]
    z = (res.params - truth) / res.std_errors
    # 9 parameters: |z| < 3.5 for all has family-wise level about 0.4% under correct s.e.
    assert (z.abs() < 3.5).all(), z.round(2).to_dict()
    shares = res.type_shares
    assert shares["share"].sum() == pytest.approx(1.0)
    assert shares["std_error"].iloc[0] == pytest.approx(shares["std_error"].iloc[1])
    assert abs(shares["share"].iloc[0] - 0.4) < 3.5 * shares["std_error"].iloc[0]


def test_posteriors_classify_the_true_types(segment_fit, segment_panel):
    post = segment_fit.posteriors
    truth = segment_panel.groupby("customer_id")["type"].first()
    assert list(post.columns) == [0, 1] and post.index.equals(truth.index)
    hit = (post.to_numpy().argmax(axis=1) == truth.to_numpy()).mean()
    # the fitted model's own prediction of the classification rate: the mean max posterior
    expected = segment_fit.classification["mean_max_posterior"]
    n = len(truth)
    assert abs(hit - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert 0.0 <= segment_fit.classification["entropy"] < 0.5


def test_one_type_fit_on_mixture_data_is_biased(segments, segment_panel, segment_fit):
    one = NFXP(segments.model).fit(segment_panel.drop(columns="type"))
    # kappa_join (3.0) is the same in both segments, yet the one-type fit misses it badly
    z = (one.params["kappa_join"] - 3.0) / one.std_errors["kappa_join"]
    assert abs(z) > 5
    z_mix = (segment_fit.params["kappa_join"] - 3.0) / segment_fit.std_errors["kappa_join"]
    assert abs(z_mix) < 3.5
    assert segment_fit.aic < one.aic and segment_fit.bic < one.bic


def test_covariance_kinds_available(segment_fit):
    for kind in ("hessian", "opg", "sandwich", "cluster"):
        se = segment_fit.std_errors_of(kind)
        assert np.all(np.isfinite(se)) and np.all(se > 0)
    assert "types" in str(segment_fit.summary()) or "2 types" in " ".join(segment_fit.notes)


def test_warns_when_types_do_not_separate(one_type_panel):
    mix = ddc.Mixture(ddc.models.membership(), 2, ["theta_ship", "theta_video"])
    with pytest.warns(TypesNotSeparatedWarning, match="types 0 and 1"):
        res = NFXP(mix, n_starts=1).fit(one_type_panel)
    assert any("not separated" in n for n in res.notes)


def test_nfxp_mixture_needs_rows(segments, segment_panel):
    from ddc.outofcore import SufficientStatistics
    from ddc.panel import prepare

    stats = SufficientStatistics.from_panel(prepare(segments.model,
                                                    segment_panel.iloc[:360]))
    with pytest.raises(TypeError, match="rows"):
        NFXP(segments).fit(stats)


@pytest.mark.parametrize("estimator, match", [
    pytest.param(PQR, "PQR has no mixture version", id="PQR"),
    pytest.param(MaxEntIRL, "same choice log-likelihood as NFXP", id="MaxEntIRL"),
])
def test_refusing_estimators_say_why(segments, estimator, match):
    with pytest.raises(TypeError, match=match):
        estimator(segments)


def test_full_information_refused_for_mixtures_with_transition_parameters():
    mix = ddc.Mixture(ddc.models.rust_bus(n_states=20), 2, ["RC"])
    with pytest.raises(ValueError, match="full_information"):
        NFXP(mix, full_information=True)


def test_estimators_of_plain_models_unchanged():
    model = ddc.models.membership()
    assert type(NFXP(model)).__name__ == "NFXP"
    assert type(CCP(model)).__name__ == "CCP"
    assert type(NPL(model)).__name__ == "NPL"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(PQR(model)).__name__ == "PQR"


# ------------------------------------------------------------------------------ CCP(mix), NPL(mix)
@pytest.fixture(scope="module")
def ccp_fits(segments, segment_panel):
    data = segment_panel.drop(columns="type")
    return {"CCP": CCP(segments).fit(data), "NPL": NPL(segments).fit(data),
            "two-stage": CCP(segments, two_stage=True).fit(data)}


def test_npl_mixture_equals_nfxp_mixture(ccp_fits, segment_fit):
    npl = ccp_fits["NPL"]
    assert npl.converged
    # at its fixed point p_k = pi_k(theta_k), where dLambda/dp = 0 (Aguirregabiria and Mira
    # 2002), NPL solves the mixture likelihood's first-order conditions: the same estimate up to
    # the iterations' tolerances
    diff = (npl.params - segment_fit.params) / segment_fit.std_errors
    assert diff.abs().max() < 1e-3, diff.to_dict()
    assert npl.loglik == pytest.approx(segment_fit.loglik, abs=1e-5)
    np.testing.assert_allclose(npl.std_errors, segment_fit.std_errors, rtol=1e-3)


@pytest.mark.parametrize("variant", ["CCP", "two-stage"])
def test_ccp_em_close_to_the_mle(ccp_fits, segment_fit, segments, variant):
    res = ccp_fits[variant]
    assert res.converged
    # both estimators are consistent for the same truth; CCP-EM (data-updated CCPs) differs from
    # the MLE by its efficiency loss, here a fraction of the MLE's standard error
    diff = (res.params - segment_fit.params) / segment_fit.std_errors
    assert diff.abs().max() < 1.0, diff.round(2).to_dict()
    assert any("understate" in n for n in res.notes)


@pytest.mark.parametrize("transitions", [pytest.param(None, id="estimated"),
                                         pytest.param("known", id="known")])
def test_one_type_ccp_mixture_equals_ccp(one_type_panel, transitions):
    model = ddc.models.membership()
    res1 = CCP(ddc.Mixture(model, 1, ["theta_ship"]), transitions=transitions).fit(
        one_type_panel)
    ref = CCP(model, transitions=transitions).fit(one_type_panel)
    renamed = res1.params.rename(lambda n: n.replace("[0]", ""))[ref.params.index]
    np.testing.assert_allclose(renamed.to_numpy(), ref.params.to_numpy(), rtol=1e-9)


def test_ccp_mixture_option_errors(segments):
    with pytest.raises(ValueError, match="two_stage"):
        NPL(segments, two_stage=True)
    with pytest.raises(ValueError, match="first_stage"):
        CCP(segments, first_stage="logit")


def test_results_know_the_mixture(segments, segment_fit):
    fp = segment_fit.fingerprint
    assert fp["n_types"] == 2 and fp["params"] == segments.param_names
    assert segment_fit.type_params(1)["theta_ship"] == segment_fit.params["theta_ship[1]"]


@pytest.mark.slow
def test_monte_carlo_coverage_of_nfxp_mixture(segments):
    """20 replications of 1,500 customers x 36 months: the z-statistics of NFXP(mix) have mean
    near 0 and standard deviation near 1, and the 95% intervals cover near 95%.

    Tolerances from the replications themselves: the mean of 20 z-statistics has standard error
    1/sqrt(20) = 0.22 (bound 4 x that); the standard deviation of 20 standard normals lies in
    [0.6, 1.4] with probability above 99.5%; a coverage rate from 20 draws at 0.95 has standard
    error 0.049 (bound: at least 0.75 per parameter), and 0.90 pooled over the 180 intervals
    (standard error about 0.016 if independent)."""
    truth = segments.true_params
    rows = []
    for seed in range(100, 120):
        panel = simulate(segments, truth, n_customers=1500, n_periods=36, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TypesNotSeparatedWarning)
            res = NFXP(segments, n_starts=1).fit(panel)  # one start: the time of a slow test
        rows.append((res.params - truth[res.params.index]) / res.std_errors)
    z = pd.DataFrame(rows)
    assert (z.mean().abs() < 4 / np.sqrt(len(z))).all(), z.mean().round(2).to_dict()
    assert (z.std().between(0.6, 1.4)).all(), z.std().round(2).to_dict()
    cover = (z.abs() < 1.96)
    assert (cover.mean() >= 0.75).all() and cover.to_numpy().mean() >= 0.90, cover.mean()


# ------------------------------------------------------------------------------ AM (2011) bus
def test_am_bus_design():
    mix = ddc.models.am_bus(n_mileage=26, n_z=6)
    # the replication code's true values (Arcidiacono and Miller 2011, Table 1 design)
    assert mix.true_params.to_dict() == {"theta_0[0]": 2.0, "theta_0[1]": 3.0,
                                         "theta_1": -0.15, "share[1]": 0.6}
    from ddc.models.am_bus import exponential_grid_matrix

    grid = np.linspace(0.0, 25.0, 201)
    P = exponential_grid_matrix(0.5, grid)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert np.all(np.tril(P, -1) == 0)  # mileage never falls
    # from 0, the first bin keeps the mass of an exponential increment below one step
    assert P[0, 0] == pytest.approx(1 - np.exp(-0.5 * 0.125))


def test_am_bus_recovery():
    mix = ddc.models.am_bus(n_mileage=26, n_z=6)
    panel = simulate(mix, mix.true_params, n_customers=1000, n_periods=20, seed=0)
    res = NFXP(mix, n_starts=1).fit(panel)
    z = (res.params - mix.true_params[res.params.index]) / res.std_errors
    assert res.converged and (z.abs() < 3.5).all(), z.round(2).to_dict()


def test_compare_and_save_mixture_results(segments, segment_fit, tmp_path):
    from estimators import compare, load_results

    table = str(compare({"two types": segment_fit}))
    assert "share[1]" in table and "theta_ship[1]" in table
    loaded = load_results(segment_fit.save(tmp_path / "mix.json"))
    pd.testing.assert_series_equal(loaded.params, segment_fit.params)
    assert any("classification" in n for n in segment_fit.notes)


# ------------------------------------------------------------------------------ shares_by
@pytest.fixture(scope="module")
def market_mix():
    """Segments whose shares depend on the market of the first state (our design)."""
    model = ddc.models.membership()
    mix = ddc.Mixture(model, 2, ["theta_ship", "theta_video"], shares_by=["market"])
    seg = ddc.models.membership_segments().true_params
    truth = {**seg.drop("share[1]").to_dict(), "gamma[1]:const": 0.4,
             "gamma[1]:market=1": -0.8, "gamma[1]:market=2": 0.8}
    return mix, mix.params_series(truth)


@pytest.fixture(scope="module")
def market_panel(market_mix):
    mix, truth = market_mix
    return simulate(mix, truth, n_customers=3000, n_periods=36, seed=1, type_col="type")


def test_shares_by_names_and_errors(market_mix):
    mix, truth = market_mix
    assert mix.param_names[-3:] == ["gamma[1]:const", "gamma[1]:market=1", "gamma[1]:market=2"]
    model = mix.model
    with pytest.raises(KeyError, match="state variables"):
        ddc.Mixture(model, 2, ["theta_ship"], shares_by=["region"])
    with pytest.raises(ValueError, match="at least two types"):
        ddc.Mixture(model, 1, ["theta_ship"], shares_by=["market"])
    with pytest.raises(ValueError, match="unit_shares"):
        mix.shares(truth)
    with pytest.raises(ValueError, match="by_type"):
        simulate(mix, truth, n_customers=10, n_periods=2, initial="by_type")
    # CCP(mix) and NPL(mix) take shares_by too (tests/test_mixture_shares.py)


def test_simulated_types_follow_first_state_shares(market_mix, market_panel):
    mix, truth = market_mix
    first = market_panel.groupby("customer_id").first()
    for market, group in first.groupby("market", observed=True):
        s0 = mix.model.space.index.get_loc((market, "none", 0, 0))
        p = mix.unit_shares(truth, np.array([s0]))[0, 1]
        se = np.sqrt(p * (1 - p) / len(group))
        assert abs(group["type"].mean() - p) < 4 * se


def test_shares_by_gradient_matches_finite_differences(market_mix, market_panel):
    mix, truth = market_mix
    cd = choice_data(mix.model, market_panel[market_panel.customer_id % 10 == 0])
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


def test_shares_by_recovery(market_mix, market_panel):
    mix, truth = market_mix
    res = NFXP(mix).fit(market_panel.drop(columns="type"))
    z = (res.params - truth[res.params.index]) / res.std_errors
    assert res.converged and (z.abs() < 3.5).all(), z.round(2).to_dict()
    shares = res.type_shares
    realized = market_panel.groupby("customer_id")["type"].first().mean()
    assert shares["share"].sum() == pytest.approx(1.0)
    assert abs(shares["share"].iloc[1] - realized) < 4 * shares["std_error"].iloc[1]


def test_loaded_mixture_results_keep_shares_posteriors_and_summary(segments, segment_fit,
                                                                   tmp_path):
    """Saved and loaded (with or without the mixture), a mixture's results are
    :class:`MixtureResults`: the same type shares and standard errors, posteriors,
    classification and summary; saved again, the same file content."""
    from estimators import load_results
    from estimators.mixture import MixtureResults

    path = segment_fit.save(tmp_path / "mix.json")
    for loaded in (load_results(path, segments), load_results(path)):
        assert isinstance(loaded, MixtureResults) and loaded.n_types == 2
        pd.testing.assert_frame_equal(loaded.type_shares, segment_fit.type_shares,
                                      rtol=1e-12, atol=0)
        pd.testing.assert_frame_equal(loaded.posteriors, segment_fit.posteriors,
                                      rtol=0, atol=0)
        assert loaded.classification == segment_fit.classification
        assert str(loaded.summary()) == str(segment_fit.summary())
    again = load_results(load_results(path).save(tmp_path / "again.json"), segments)
    pd.testing.assert_frame_equal(again.posteriors, segment_fit.posteriors)


def test_mixture_file_without_posteriors_says_so(segments, segment_fit, tmp_path):
    """A file saved before posteriors were kept (no ``mixture`` field) loads as mixture
    results with the shares; the posteriors raise naming why."""
    import json

    from estimators import load_results
    from estimators.results import NotAvailableError

    path = segment_fit.save(tmp_path / "mix.json")
    doc = json.loads(path.read_text())
    del doc["mixture"]
    path.write_text(json.dumps(doc))
    for loaded in (load_results(path, segments), load_results(path)):
        pd.testing.assert_frame_equal(loaded.type_shares, segment_fit.type_shares,
                                      rtol=1e-12, atol=0)
        with pytest.raises(NotAvailableError, match="posteriors .* were not saved"):
            loaded.posteriors  # noqa: B018
        with pytest.raises(NotAvailableError, match="were not saved"):
            loaded.classification  # noqa: B018


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.__setitem__("n_types", None), r"mixture\.n_types"),
    (lambda m: m.__setitem__("share_names", ["share[7]"]), r"mixture\.share_names"),
    (lambda m: m["posteriors"]["values"].__setitem__(3, None),
     r"mixture\.posteriors\.values\[3\]"),
    (lambda m: m["posteriors"]["values"].__setitem__(2, 0.3),
     r"mixture\.posteriors\.values of unit"),
    (lambda m: m["posteriors"]["units"].pop(), r"mixture\.posteriors\.shape"),
    (lambda m: m["posteriors"]["units"].__setitem__(0, None), r"mixture\.posteriors\.units"),
])
def test_damaged_mixture_fields_are_named(segment_fit, tmp_path, edit, match):
    import json

    from estimators import load_results

    path = segment_fit.save(tmp_path / "mix.json")
    doc = json.loads(path.read_text())
    edit(doc["mixture"])
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match):
        load_results(path)
