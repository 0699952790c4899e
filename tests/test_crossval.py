"""The estimator cross-validation suite: NFXP, CCP, NPL, PQR and MaxEntIRL against the truth and
against each other, on the membership model (several seeds and sample sizes) and on Rust's bus.

Tolerances: |z| <= 4.4 per parameter (Bonferroni over six parameters at a family-wise 1e-4);
Wald statistics and the Scheffé statistics of the implied rewards and choice probabilities
below the chi-square(6) 1 - 1e-4 quantile (27.9; its square root 5.28); the three maximum
likelihood estimators (NFXP, NPL's fixed point, MaxEntIRL) equal to 1e-3 standard errors
(optimizer tolerances); CCP within half a standard error of NFXP (the two-step pseudo-likelihood
estimator is asymptotically equivalent to the MLE, Aguirregabiria and Mira 2002, so their
difference is of smaller order); PQR within 4.4 Hausman standard errors of NFXP
(:math:`\\sqrt{se_{PQR}^2 - se_{NFXP}^2}`, NFXP being efficient).
"""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ddc
from estimators.ccp import CCP
from estimators.crossval import CrossValidation, cross_validate
from estimators.pqr import PQR, anchor_rewards
from simulations import simulate

Z_MAX = 4.4
CHI2_6 = float(stats.chi2.ppf(1 - 1e-4, 6))
MLE = ("NFXP", "NPL", "MaxEntIRL")
ESTIMATORS = ["NFXP", "CCP", "NPL", "PQR", "MaxEntIRL"]

SCENARIOS = [
    pytest.param((101, 10_000, 36), id="10000x36"),
    pytest.param((102, 4_000, 36), id="4000x36"),
    pytest.param((103, 10_000, 12), id="10000x12"),
]


@pytest.fixture(scope="module", params=SCENARIOS)
def membership_cv(request):
    seed, n, T = request.param
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=n, n_periods=T, seed=seed)
    return model, panel, cross_validate(model, panel, truth=model.true_params)


@pytest.fixture(scope="module")
def small_cv():
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=2_000, n_periods=12, seed=5)
    return model, panel, cross_validate(model, panel, estimators=["nfxp", "pqr"],
                                        truth=model.true_params)


@pytest.fixture(scope="module")
def bus_cv():
    data = ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=90)
    bus = ddc.models.rust_bus(n_states=90, beta=0.9999)
    # PQR with the logit policy: with 61 replacements, the frequency P-step is set by its
    # smoothing where the anchor is never chosen (see tests/test_irl.py::test_bus_pqr); two-step
    # (fixed_point=False since the fixed point became PQR's default): the logit's extrapolated
    # log-odds where replacement is never seen have no fixed point near them
    est = {"NFXP": "nfxp", "CCP": "ccp", "NPL": "npl",
           "PQR": PQR(bus, policy="logit", fixed_point=False), "MaxEntIRL": "maxent"}
    return bus, data, cross_validate(bus, data, estimators=est)


# ------------------------------------------------------------------ against the truth
def test_every_estimator_recovers_the_truth(membership_cv):
    _, _, cv = membership_cv
    assert list(cv.results) == ESTIMATORS
    assert cv.summary["converged"].all()
    assert (cv.table["z"].abs() < Z_MAX).all(), cv.table
    assert (cv.summary["wald"] < CHI2_6).all(), cv.summary["wald"]


def test_rewards_and_ccps_state_by_state(membership_cv):
    _, _, cv = membership_cv
    bound = np.sqrt(CHI2_6)
    assert cv.reward_bound == pytest.approx(bound)
    assert (cv.summary["reward_max_z"] < bound).all(), cv.summary["reward_max_z"]
    assert (cv.summary["ccp_max_z"] < bound).all(), cv.summary["ccp_max_z"]
    # Scheffe: the largest error of a linear function of the estimate, in its standard error,
    # is at most sqrt(Wald)
    assert (cv.summary["reward_max_z"] <= np.sqrt(cv.summary["wald"]) + 1e-9).all()


def test_estimators_agree_with_each_other(membership_cv):
    _, _, cv = membership_cv
    pw = cv.pairwise
    for a, b in [("NFXP", "NPL"), ("NFXP", "MaxEntIRL"), ("NPL", "MaxEntIRL")]:
        assert pw.loc[(a, b), "max_z_diff"] < 1e-3, (a, b)
        assert abs(pw.loc[(a, b), "loglik_diff"]) < 1e-6
        assert pw.loc[(a, b), "ccp_max_diff"] < 1e-5
    assert pw.loc[("NFXP", "CCP"), "max_z_diff"] < 0.5
    assert pw.loc[("NFXP", "PQR"), "max_hausman_z"] < Z_MAX
    # the MLE has the highest choice log-likelihood
    ll = cv.summary["loglik_choice"]
    assert ll["NFXP"] >= ll.max() - 1e-6


# ------------------------------------------------------------------ the tables
def test_table_contents(membership_cv):
    model, _, cv = membership_cv
    t = cv.table
    assert t.index.names == ["estimator", "parameter"]
    assert list(t.columns) == ["estimate", "std_error", "ci_lower", "ci_upper", "truth", "error",
                               "z", "covered"]
    assert len(t) == len(ESTIMATORS) * 6
    for name, res in cv.results.items():
        sub = t.loc[name]
        np.testing.assert_array_equal(sub["estimate"], res.params[sub.index])
        np.testing.assert_allclose(sub["std_error"], res.std_errors[sub.index])
        np.testing.assert_array_equal(sub["truth"], model.true_params[sub.index])
    np.testing.assert_allclose(t["z"], t["error"] / t["std_error"])
    np.testing.assert_allclose(t["ci_upper"] - t["estimate"], 1.959964 * t["std_error"],
                               rtol=1e-6)
    assert (t["covered"] == (t["z"].abs() <= 1.959964)).all()


def test_reward_and_ccp_frames(membership_cv):
    model, panel, cv = membership_cv
    r = cv.rewards
    sources = list(dict.fromkeys(r.columns.get_level_values("source")))
    assert sources == ["truth", *ESTIMATORS, "PQR (R-step)"]
    truth = anchor_rewards(model, model.true_params)
    observed = r["truth"].notna()
    pd.testing.assert_frame_equal(r["truth"][observed], truth[observed], check_names=False)
    assert (r.loc[observed["monthly"], ("NFXP", "none")] == 0).all()
    # only observed choice states: locked months (no choice) are not compared
    locked = model.space.values_of("plan") != "none"
    locked &= model.space.values_of("plan") != "member"
    assert r[locked].isna().all().all()
    pd.testing.assert_frame_equal(r["PQR (R-step)"], cv.results["PQR"].extra["rewards"]
                                  .where(observed), check_names=False)
    c = cv.ccps
    assert list(dict.fromkeys(c.columns.get_level_values("source"))) == \
        ["truth", *ESTIMATORS, "data"]
    rows = c["truth"].notna().any(axis=1)
    for src in ["truth", *ESTIMATORS, "data"]:
        np.testing.assert_allclose(c[src][rows].sum(axis=1), 1.0)


def test_reports(small_cv, tmp_path):
    model, _, cv = small_cv
    md = cv.to_markdown()
    assert "| parameter | truth | NFXP | PQR |" in md
    assert "| alpha_price | 0.0500 |" in md
    tex = cv.to_latex()
    assert tex.startswith("\\begin{tabular}{lrrr}") and "alpha\\_price" in tex
    assert tex.rstrip().endswith("\\end{tabular}")
    path = cv.to_csv(tmp_path / "table.csv")
    back = pd.read_csv(path, index_col=[0, 1])
    np.testing.assert_allclose(back["estimate"], cv.table["estimate"])
    fig = cv.figure()
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == model.utility_params
    assert str(cv).startswith("## Cross-validation: membership")


def test_save_is_atomic(small_cv, tmp_path, monkeypatch):
    # through ddc.io.atomic_directory: a manifest lists the files, and a folder holding a file
    # ddc-econ did not write is refused (it used to be replaced, deleting the user's file)
    _, _, cv = small_cv
    out = tmp_path / "cv"
    cv.save(out)
    files = {"report.md", "table.tex", "table.csv", "summary.csv", "pairwise.csv",
             "rewards.csv", "ccps.csv", "estimates.png", "MANIFEST.json"}
    assert set(os.listdir(out)) == files
    cv.save(out)  # replaces its own complete report
    assert set(os.listdir(out)) == files
    before = (out / "report.md").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(CrossValidation, "figure", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        cv.save(out)
    assert (out / "report.md").read_text() == before  # the old report is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv"]  # no temporary left
    monkeypatch.undo()
    (out / "marker").write_text("mine")
    with pytest.raises(FileExistsError, match="'marker'.*did not write"):
        cv.save(out)
    assert (out / "marker").read_text() == "mine"
    assert set(os.listdir(out)) == files | {"marker"}


def test_fitted_results_and_names(small_cv):
    model, panel, cv = small_cv
    again = cross_validate(model, panel, estimators={"mine": cv.results["NFXP"],
                                                     "ccp": CCP(model)})
    assert list(again.results) == ["mine", "ccp"]
    assert again.results["mine"] is cv.results["NFXP"]
    assert again.truth is None
    assert again.table["truth"].isna().all()
    assert "max_abs_z" not in again.summary.columns
    with pytest.raises(ValueError, match="unknown estimator 'mle'"):
        cross_validate(model, panel, estimators=["mle"])
    with pytest.raises(TypeError, match="no fit"):
        cross_validate(model, panel, estimators={"x": 3})


# ------------------------------------------------------------------ Rust's bus
def test_bus_cross_validation(bus_cv):
    bus, _, cv = bus_cv
    assert cv.truth is None
    assert cv.summary["converged"].all()
    pw = cv.pairwise
    # NPL and MaxEntIRL hold the transitions at their first-stage estimates: the same MLE
    assert pw.loc[("NPL", "MaxEntIRL"), "max_z_diff"] < 1e-3
    # NFXP's third stage (full information) moves the utility parameters slightly
    assert pw.loc[("NFXP", "MaxEntIRL"), "max_z_diff"] < 0.01
    assert pw.loc[("NFXP", "PQR"), "max_hausman_z"] < Z_MAX
    assert pw.loc[("NFXP", "CCP"), "max_z_diff"] < 1.0
    # the rewards of every estimate are RC - 0.001 theta_11 x (the anchor is 'replace')
    r = cv.rewards
    x = np.arange(90)[r["NFXP"]["keep"].notna().to_numpy()]
    p = cv.results["NFXP"].params
    np.testing.assert_allclose(r["NFXP"]["keep"].dropna(), p["RC"] - 0.001 * p["theta_11"] * x,
                               rtol=1e-8)
