"""Tests of the results object (estimators.results) and compare() (estimators.compare).

Oracle: a plain binary logit fitted by maximum likelihood on seeded synthetic data with
clustered (unit-level) heterogeneity. Its per-row scores and Hessian are computed here and every
covariance kind is checked against statsmodels' ``Logit(...).fit(cov_type=...)`` at the same
estimate: ``"nonrobust"`` -> ``"hessian"``, ``"HC0"`` -> ``"sandwich"``, ``"cluster"`` ->
``"cluster"`` (statsmodels' CRV1 factor U/(U-1) (n-1)/(n-K)), and ``"opg"`` by its formula
:math:`(G'G)^{-1}` from statsmodels' ``score_obs``. These are algebraic identities at one
estimate, hence the tight tolerance (1e-8 relative).
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ddc.io
from estimators.compare import Comparison, compare
from estimators.results import (
    EstimationResults,
    HessianError,
    HessianWarning,
    NotAvailableError,
    Summary,
    format_number,
)
from estimators.results_loading import load_results

RTOL = 1e-8
NAMES = ["theta_0", "theta_price", "theta_ship", "theta_video"]


# ------------------------------------------------------------------------------------ fixtures


def _logit_pieces(X: np.ndarray, y: np.ndarray, b: np.ndarray):
    xb = X @ b
    p = 1.0 / (1.0 + np.exp(-xb))
    loglik = float(np.sum(y * xb - np.logaddexp(0.0, xb)))
    scores = (y - p)[:, None] * X
    hessian = -(X * (p * (1.0 - p))[:, None]).T @ X
    return loglik, scores, hessian


@pytest.fixture(scope="module")
def logit():
    """Seeded logit data with 150 units of 8 rows each, fitted by Newton's method."""
    rng = np.random.default_rng(20240611)
    n_units, per_unit = 150, 8
    n = n_units * per_unit
    groups = np.repeat(np.arange(n_units), per_unit)
    unit_effect = np.repeat(rng.normal(scale=0.8, size=n_units), per_unit)
    X = np.column_stack([
        np.ones(n),
        rng.normal(size=n),
        np.repeat(rng.normal(size=n_units), per_unit) + 0.3 * rng.normal(size=n),
        (rng.random(n) < 0.4).astype(float),
    ])
    b_true = np.array([-0.3, 0.8, -0.5, 0.6])
    y = (X @ b_true + unit_effect + rng.logistic(size=n) > 0).astype(float)
    b = np.zeros(X.shape[1])
    for _ in range(50):
        _, g, H = _logit_pieces(X, y, b)
        step = np.linalg.solve(H, g.sum(axis=0))
        b = b - step
        if np.max(np.abs(step)) < 1e-14:
            break
    loglik, scores, hessian = _logit_pieces(X, y, b)
    assert np.max(np.abs(scores.sum(axis=0))) < 1e-9
    return {"X": X, "y": y, "groups": groups, "b": b, "loglik": loglik, "scores": scores,
            "hessian": hessian, "n_units": n_units}


def _results(d, **changes) -> EstimationResults:
    kw = dict(model=None, estimator="MLE", params=pd.Series(d["b"], index=NAMES),
              hessian=d["hessian"], scores=d["scores"], groups=d["groups"], loglik=d["loglik"],
              nobs=len(d["y"]), n_units=d["n_units"], converged=True, iterations=7,
              function_evals=8, seconds=0.25)
    kw.update(changes)
    return EstimationResults(**kw)


@pytest.fixture(scope="module")
def res(logit) -> EstimationResults:
    return _results(logit)


def _sm_fit(d, **kw):
    model = sm.Logit(d["y"], d["X"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return model.fit(start_params=d["b"], method="newton", disp=0, maxiter=100,
                             tol=1e-14, **kw)


@pytest.fixture(scope="module")
def sm_plain(logit):
    return _sm_fit(logit)


# ------------------------------------------------------------------------------------ covariances


def test_estimate_matches_statsmodels(logit, sm_plain):
    np.testing.assert_allclose(logit["b"], sm_plain.params, rtol=1e-10, atol=1e-12)
    assert logit["loglik"] == pytest.approx(sm_plain.llf, rel=1e-12)


@pytest.mark.parametrize(("kind", "sm_kwargs"), [
    pytest.param("hessian", {}, id="hessian-nonrobust"),
    pytest.param("sandwich", {"cov_type": "HC0"}, id="sandwich-HC0"),
    pytest.param("cluster", {"cov_type": "cluster"}, id="cluster-CRV1"),
])
def test_cov_kinds_match_statsmodels(logit, res, kind, sm_kwargs):
    if sm_kwargs.get("cov_type") == "cluster":
        sm_kwargs = {**sm_kwargs, "cov_kwds": {"groups": logit["groups"]}}
    ref = _sm_fit(logit, **sm_kwargs)
    cov = res.cov_of(kind)
    assert list(cov.index) == NAMES and list(cov.columns) == NAMES
    np.testing.assert_allclose(cov.to_numpy(), ref.cov_params(), rtol=RTOL)
    np.testing.assert_allclose(res.std_errors_of(kind), ref.bse, rtol=RTOL)
    np.testing.assert_allclose(res.with_cov_type(kind).pvalues, ref.pvalues, rtol=RTOL)
    np.testing.assert_allclose(res.conf_int(0.95, kind).to_numpy(), ref.conf_int(0.05),
                               rtol=RTOL)


def test_opg_is_inverse_outer_product_of_statsmodels_scores(logit, res, sm_plain):
    G = sm_plain.model.score_obs(sm_plain.params)
    np.testing.assert_allclose(res.cov_of("opg").to_numpy(), np.linalg.inv(G.T @ G), rtol=RTOL)


def test_cluster_factor_is_statsmodels_crv1(logit, res):
    """cluster = U/(U-1) (n-1)/(n-K) H^-1 C H^-1, C from the units' score sums."""
    n, k = logit["scores"].shape
    u = logit["n_units"]
    sums = pd.DataFrame(logit["scores"]).groupby(logit["groups"]).sum().to_numpy()
    bread = np.linalg.inv(logit["hessian"])
    expected = u / (u - 1) * (n - 1) / (n - k) * bread @ sums.T @ sums @ bread
    np.testing.assert_allclose(res.cov_of("cluster").to_numpy(), expected, rtol=RTOL)


def test_default_outputs_match_statsmodels(res, sm_plain):
    assert res.cov_type == "hessian"
    np.testing.assert_allclose(res.params, sm_plain.params, rtol=1e-10)
    np.testing.assert_allclose(res.std_errors, sm_plain.bse, rtol=RTOL)
    np.testing.assert_allclose(res.tstats, sm_plain.tvalues, rtol=RTOL)
    np.testing.assert_allclose(res.pvalues, sm_plain.pvalues, rtol=RTOL)
    np.testing.assert_allclose(res.conf_int().to_numpy(), sm_plain.conf_int(), rtol=RTOL)
    np.testing.assert_allclose(res.conf_int(0.9).to_numpy(), sm_plain.conf_int(0.1), rtol=RTOL)
    assert list(res.conf_int().columns) == ["lower", "upper"]
    assert res.aic == pytest.approx(sm_plain.aic, rel=1e-12)
    assert res.bic == pytest.approx(sm_plain.bic, rel=1e-12)
    assert list(res.std_errors.index) == NAMES


def test_cov_types_and_with_cov_type(res):
    assert res.cov_types == ["hessian", "opg", "sandwich", "cluster"]
    robust = res.with_cov_type("cluster")
    assert robust.cov_type == "cluster" and res.cov_type == "hessian"
    pd.testing.assert_series_equal(robust.std_errors, res.std_errors_of("cluster"))
    pd.testing.assert_frame_equal(robust.cov, res.cov_of("cluster"))
    assert not np.allclose(robust.std_errors, res.std_errors)


def test_extra_covs_are_kinds(logit):
    mt = np.diag([0.1, 0.2, 0.3, 0.4])
    r = _results(logit, extra_covs={"murphy_topel": mt}, cov_type="murphy_topel")
    assert r.cov_types == ["hessian", "opg", "sandwich", "cluster", "murphy_topel"]
    np.testing.assert_allclose(r.std_errors, np.sqrt([0.1, 0.2, 0.3, 0.4]))
    frame = pd.DataFrame(mt, index=NAMES, columns=NAMES).iloc[::-1, ::-1]
    r2 = _results(logit, extra_covs={"murphy_topel": frame})
    np.testing.assert_array_equal(r2.cov_of("murphy_topel").to_numpy(), mt)


def test_unknown_kind_lists_accepted(res):
    with pytest.raises(ValueError, match="unknown covariance kind 'HC0'; accepted: 'hessian'"):
        res.cov_of("HC0")


@pytest.mark.parametrize(("missing", "kind", "reason"), [
    pytest.param("scores", "opg", "per-row scores", id="opg-no-scores"),
    pytest.param("scores", "sandwich", "per-row scores", id="sandwich-no-scores"),
    pytest.param("scores", "cluster", "per-row scores", id="cluster-no-scores"),
    pytest.param("groups", "cluster", "the unit of each score row", id="cluster-no-groups"),
    pytest.param("hessian", "hessian", "the Hessian", id="hessian-no-hessian"),
    pytest.param("hessian", "sandwich", "the Hessian", id="sandwich-no-hessian"),
])
def test_not_available_says_why(logit, missing, kind, reason):
    r = _results(logit, **{missing: None})
    with pytest.raises(NotAvailableError, match=f"No '{kind}' covariance because the estimator "
                                                f"did not record {reason}"):
        r.cov_of(kind)
    assert kind not in r.cov_types
    assert issubclass(NotAvailableError, ValueError)


def test_unavailable_default_in_summary(logit):
    r = _results(logit, hessian=None)
    with pytest.raises(NotAvailableError):
        _ = r.std_errors
    text = str(r.summary())
    assert "Standard errors are not available: No 'hessian' covariance" in text
    assert format_number(logit["b"][1]) in text


# ------------------------------------------------------------------------------ Hessian checks


def _collinear_hessian():
    rng = np.random.default_rng(7)
    n = 500
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, 3.0 * np.ones(n), rng.normal(size=n)])
    w = np.full(n, 0.25)
    return -(X * w[:, None]).T @ X


def test_singular_hessian_names_collinear_parameters():
    r = EstimationResults(model=None, estimator="NFXP", params=pd.Series(0.1, index=NAMES),
                          hessian=_collinear_hessian(), scores=None, groups=None, loglik=-1.0,
                          nobs=500, converged=True)
    with pytest.raises(HessianError, match="singular: theta_0 and theta_ship are not "
                                           "separately identified") as info:
        r.cov_of("hessian")
    assert set(info.value.names) == {"theta_0", "theta_ship"}
    assert isinstance(info.value, NotAvailableError)
    assert r.cov_types == []
    assert "theta_0 and theta_ship are not separately identified" in str(r.summary())


def test_unidentified_parameter_with_zero_curvature():
    H = -np.diag([2.0, 1.0, 0.0, 3.0])
    r = EstimationResults(model=None, estimator="NFXP", params=pd.Series(0.1, index=NAMES),
                          hessian=H, scores=None, groups=None, loglik=-1.0, nobs=10,
                          converged=True)
    with pytest.raises(HessianError, match="zero on the diagonal for theta_ship") as info:
        r.cov_of("hessian")
    assert info.value.names == ["theta_ship"]


def test_indefinite_hessian_is_a_saddle():
    H = -np.array([[1.0, 2.0, 0, 0], [2.0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    r = EstimationResults(model=None, estimator="NFXP", params=pd.Series(0.1, index=NAMES),
                          hessian=H, scores=None, groups=None, loglik=-1.0, nobs=10,
                          converged=False)
    with pytest.raises(HessianError, match="not negative definite.*saddle point") as info:
        r.cov_of("hessian")
    assert set(info.value.names) == {"theta_0", "theta_price"}


def test_nearly_singular_hessian_warns_and_summary_notes_it():
    rho = 1.0 - 1e-8
    H = -np.array([[1.0, rho, 0, 0], [rho, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    r = EstimationResults(model=None, estimator="NFXP", params=pd.Series(0.1, index=NAMES),
                          hessian=H, scores=None, groups=None, loglik=-1.0, nobs=10,
                          converged=True)
    with pytest.warns(HessianWarning, match="nearly singular.*theta_0 and theta_price"):
        r.cov_of("hessian")
    assert "Warning: the Hessian of the log-likelihood is nearly singular" in str(r.summary())


def test_asymmetric_hessian_warns(logit):
    H = logit["hessian"].copy()
    H[0, 1] *= 1.01
    with pytest.warns(HessianWarning, match=r"not symmetric: H\[theta_0, theta_price\]"):
        r = _results(logit, hessian=H)
    np.testing.assert_array_equal(r.hessian, r.hessian.T)


@pytest.mark.parametrize(("changes", "error", "match"), [
    pytest.param({"hessian": np.eye(3)}, ValueError, r"hessian has shape \(3, 3\) but there "
                 "are 4 estimated parameters", id="hessian-shape"),
    pytest.param({"scores": np.ones((5, 3))}, ValueError, "scores must be an n_rows x 4",
                 id="scores-shape"),
    pytest.param({"groups": np.arange(3)}, ValueError, "groups has 3 entries but scores has "
                 "1200 rows", id="groups-length"),
    pytest.param({"params": np.zeros(4)}, TypeError, "params must be a pandas Series",
                 id="params-type"),
    pytest.param({"fixed_params": pd.Series({"theta_0": 1.0})}, ValueError,
                 r"\['theta_0'\] are both estimated", id="fixed-overlap"),
    pytest.param({"cov_type": "robust"}, ValueError, "unknown covariance kind 'robust'",
                 id="cov-type"),
    pytest.param({"nobs": 0}, ValueError, "nobs must be an integer >= 1", id="nobs"),
    pytest.param({"converged": "yes"}, TypeError, "converged must be True or False",
                 id="converged"),
])
def test_bad_arguments_are_named(logit, changes, error, match):
    with pytest.raises(error, match=match):
        _results(logit, **changes)


# ------------------------------------------------------------------------------------ summary


@pytest.fixture(scope="module")
def rich(logit) -> EstimationResults:
    return _results(
        logit, estimator="CCP", fixed_params=pd.Series({"beta": 0.95, "theta_30": 0.3}),
        loglik_parts={"choice": logit["loglik"] - 10.0, "transition": 10.0},
        notes=["transition parameters from a first stage"],
        extra_covs={"murphy_topel": 1.5 * np.linalg.inv(-logit["hessian"])})


def test_summary_text(rich):
    s = rich.summary()
    assert isinstance(s, Summary)
    text = str(s)
    assert text == s.as_text() == str(rich)
    for value in list(rich.params) + list(rich.std_errors) + list(rich.conf_int().stack()):
        assert format_number(value) in text
    for value in [rich.loglik, rich.aic, rich.bic, *rich.loglik_parts.values()]:
        assert format_number(value) in text
    for label in ("CCP estimation results", "No. observations:", "1200", "No. units:", "150",
                  "Converged:", "yes", "Iterations:", "Time:", "0.25 s", "choice:",
                  "transition:", "Covariance:", "hessian", "P>|z|", "[0.025", "0.975]"):
        assert label in text
    fixed_line = next(line for line in text.splitlines() if line.startswith("beta "))
    assert "0.9500" in fixed_line and "(fixed)" in fixed_line
    assert "[2] transition parameters from a first stage" in text
    assert f"{rich.pvalues['theta_video']:.3f}" in text


def test_summary_of_another_kind(rich):
    text = str(rich.summary("cluster"))
    for value in rich.std_errors_of("cluster"):
        assert format_number(value) in text
    assert "cluster-robust by unit" in text and "150 units" in text


def test_summary_html_and_latex(rich):
    page = rich.summary().as_html()
    assert page == rich._repr_html_() == rich.summary()._repr_html_()
    assert page.startswith("<table") and "<caption>CCP estimation results</caption>" in page
    for value in list(rich.params) + list(rich.std_errors):
        assert f"<td>{format_number(value)}</td>" in page
    assert "P&gt;|z|" in page and "(fixed)" in page
    tex = rich.to_latex()
    assert tex == rich.summary().as_latex()
    for token in (r"\begin{tabular}{lrrrrrr}", r"\toprule", r"\midrule", r"\bottomrule",
                  r"theta\_price", r"theta\_30 & 0.3000 & (fixed)", r"\quad choice"):
        assert token in tex
    for value in list(rich.params) + list(rich.std_errors):
        assert format_number(value) in tex


def test_repr_is_short(rich):
    text = repr(rich)
    assert "\n" not in text and "CCP" in text and "converged=True" in text


def test_to_frame(rich):
    frame = rich.to_frame()
    assert list(frame.columns) == ["estimate", "std_error", "tstat", "pvalue", "lower", "upper",
                                   "fixed"]
    assert list(frame.index) == NAMES + ["beta", "theta_30"]
    np.testing.assert_array_equal(frame.loc[NAMES, "std_error"], rich.std_errors)
    np.testing.assert_array_equal(frame.loc[NAMES, "lower"], rich.conf_int()["lower"])
    assert frame.loc["beta", "fixed"] and not frame.loc["theta_0", "fixed"]
    assert np.isnan(frame.loc["beta", "std_error"])


# ------------------------------------------------------------------------------------ save / load


def test_save_load_round_trip(rich, tmp_path):
    path = rich.save(tmp_path / "res.json")
    assert path == tmp_path / "res.json"
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 1 and set(doc["covariances"]) == set(rich.cov_types)
    loaded = load_results(path)
    pd.testing.assert_series_equal(loaded.params, rich.params)
    pd.testing.assert_series_equal(loaded.fixed_params, rich.fixed_params)
    assert loaded.cov_types == rich.cov_types
    for kind in rich.cov_types:
        pd.testing.assert_frame_equal(loaded.cov_of(kind), rich.cov_of(kind))
    for attr in ("estimator", "loglik", "loglik_parts", "nobs", "n_units", "converged",
                 "iterations", "function_evals", "seconds", "notes", "cov_type", "aic", "bic"):
        assert getattr(loaded, attr) == getattr(rich, attr), attr
    np.testing.assert_array_equal(loaded.hessian, rich.hessian)
    pd.testing.assert_frame_equal(loaded.conf_int(), rich.conf_int())
    assert str(loaded.summary()) == str(rich.summary())
    assert str(loaded.summary("cluster")) == str(rich.summary("cluster"))
    assert loaded.model is None and loaded.scores is None


def test_loaded_results_explain_missing_kinds(logit, tmp_path):
    r = _results(logit, groups=None, cov_type="sandwich")
    loaded = load_results(r.save(tmp_path / "res.json"))
    assert loaded.cov_types == ["hessian", "opg", "sandwich"]
    assert loaded.cov_type == "sandwich"
    with pytest.raises(NotAvailableError, match="No 'cluster' covariance in the results loaded "
                                                "from .*did not record the unit"):
        loaded.cov_of("cluster")


def test_save_records_model_description(logit, tmp_path):
    import ddc

    model = ddc.models.rust_bus(n_states=10)
    r = _results(logit, model=model)
    loaded = load_results(r.save(tmp_path / "bus.json"))
    assert loaded.model_name == "rust_bus" == r.model_name
    info = loaded.model_info
    assert info["param_names"] == list(model.param_names)
    assert info["beta"] == model.beta and info["actions"] == list(model.actions)
    assert "Model:" in str(loaded.summary()) and "rust_bus" in repr(loaded)



def test_results_carry_the_model_fingerprint(logit, tmp_path):
    import ddc

    model = ddc.models.membership()
    r = _results(logit, model=model)
    assert r.fingerprint == json.loads(json.dumps(ddc.io.encode_json(model.fingerprint())))
    path = r.save(tmp_path / "m.json")
    assert load_results(path).fingerprint == r.fingerprint
    again = load_results(path, model)  # the same model: accepted, and the results refer to it
    assert again.model is model
    pd.testing.assert_series_equal(again.params, r.params)


@pytest.mark.parametrize(("other", "difference"), [
    pytest.param({"beta": 0.95}, "beta: 0.99 vs 0.95", id="beta"),
    pytest.param({"name": "other"}, "name: 'membership' vs 'other'", id="name"),
])
def test_load_refuses_a_different_model_naming_the_difference(logit, tmp_path, other,
                                                              difference):
    import ddc
    from estimators import ModelMismatchError

    model = ddc.models.membership()
    path = _results(logit, model=model).save(tmp_path / "m.json")
    with pytest.raises(ModelMismatchError, match=difference) as info:
        load_results(path, model.replace(**other))
    assert difference in info.value.differences


def test_load_with_a_model_needs_a_recorded_fingerprint(logit, tmp_path):
    import ddc

    path = _results(logit).save(tmp_path / "none.json")  # estimated without a model
    assert load_results(path).fingerprint is None
    with pytest.raises(ValueError, match="record no model fingerprint"):
        load_results(path, ddc.models.membership())


def test_non_finite_values_round_trip_as_strict_json(logit, tmp_path):
    r = _results(logit, loglik=float("nan"), seconds=float("inf"))
    path = r.save(tmp_path / "res.json")
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    loaded = load_results(path)
    assert np.isnan(loaded.loglik) and loaded.seconds == float("inf")


def test_atomic_save_leaves_no_partial_file(rich, tmp_path, monkeypatch):
    target = tmp_path / "res.json"

    def broken_fsync(fd):  # the file is written, but the disk fails before the rename
        raise RuntimeError("disk full")

    monkeypatch.setattr(ddc.io.os, "fsync", broken_fsync)
    with pytest.raises(RuntimeError, match="disk full"):
        rich.save(target)
    assert os.listdir(tmp_path) == []
    target.write_text("previous results")
    with pytest.raises(RuntimeError, match="disk full"):
        rich.save(target)
    assert target.read_text() == "previous results"
    assert os.listdir(tmp_path) == ["res.json"]


def test_save_to_missing_folder_names_it(rich, tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere.* does not exist"):
        rich.save(tmp_path / "nowhere" / "res.json")


@pytest.mark.parametrize(("content", "match"), [
    pytest.param("not json", "is not a JSON results file", id="not-json"),
    pytest.param('{"format": "something else"}', "is not a ddc-econ results file",
                 id="wrong-format"),
    pytest.param('{"format": "ddc-econ estimation results", "format_version": 99}',
                 "has format_version 99", id="future-version"),
    pytest.param('{"format": "ddc-econ estimation results", "format_version": 1}',
                 "has no 'params' field", id="incomplete"),
])
def test_load_rejects_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_results(path)


# ------------------------------------------------------------------------------------ compare


@pytest.fixture(scope="module")
def two(logit, rich):
    """NFXP estimates all four utility parameters; CCP three of them, and two fixed."""
    small = _results(logit, estimator="NFXP",
                     params=pd.Series(logit["b"][[0, 1, 3]], index=["theta_0", "theta_price",
                                                                    "theta_video"]),
                     hessian=logit["hessian"][np.ix_([0, 1, 3], [0, 1, 3])],
                     scores=logit["scores"][:, [0, 1, 3]], loglik=logit["loglik"] - 5.0)
    return {"full": rich, "small": small}


def test_compare_layout(two):
    table = compare(two)
    assert isinstance(table, Comparison)
    assert table.names == ["full", "small"]
    expected_rows = NAMES + ["beta", "theta_30"]
    assert list(table.params.index) == expected_rows
    assert np.isnan(table.params.loc["theta_ship", "small"])
    assert np.isnan(table.std_errors.loc["beta", "full"]) and table.fixed.loc["beta", "full"]
    np.testing.assert_array_equal(table.params.loc[NAMES, "full"], two["full"].params)
    np.testing.assert_array_equal(table.std_errors.loc[NAMES, "full"], two["full"].std_errors)
    np.testing.assert_array_equal(table.std_errors.loc[["theta_0", "theta_video"], "small"],
                                  two["small"].std_errors[["theta_0", "theta_video"]])
    lines = str(table).splitlines()
    header = next(line for line in lines if line.split() == ["full", "small"])
    ship = lines.index(next(line for line in lines if line.startswith("theta_ship")))
    assert lines[ship].split() == [
        "theta_ship", format_number(two["full"].params["theta_ship"])]
    se = format_number(two["full"].std_errors["theta_ship"])
    assert lines[ship + 1].split() == [f"({se})"]
    # the blank cell is under "small": the text ends before that column
    assert len(lines[ship + 1]) <= header.index("small")
    price = lines.index(next(line for line in lines if line.startswith("theta_price")))
    assert lines[price + 1].split() == [
        f"({format_number(two[k].std_errors['theta_price'])})" for k in ("full", "small")]
    stat_labels = [line.split("  ")[0] for line in lines]
    for label in ("Log-likelihood", "Observations", "Units", "Converged", "Covariance"):
        assert label in stat_labels
    assert format_number(two["small"].loglik) in str(table)


def test_compare_renderings(two, tmp_path):
    table = compare(two, stars=True)
    md = table.as_markdown()
    assert md.splitlines()[:3] == ["**Comparison of estimates**", "", "| | full | small |"]
    assert "| theta_ship | " in md and "(fixed)" in md
    tex = table.as_latex()
    assert r"\begin{tabular}{lrr}" in tex and r"\toprule" in tex and r"theta\_ship" in tex
    assert "$^{***}$" in tex
    page = table._repr_html_()
    assert page == table.as_html() and "<th>full</th>" in page
    path = table.to_csv(tmp_path / "table.csv")
    csv_rows = pd.read_csv(path, keep_default_na=False, dtype=str)
    assert list(csv_rows.columns) == ["Unnamed: 0", "full", "small"]
    ship = csv_rows.index[csv_rows.iloc[:, 0] == "theta_ship"][0]
    assert csv_rows.loc[ship, "small"] == "" and csv_rows.loc[ship + 1, "small"] == ""
    frame = table.to_frame()
    assert frame.columns.tolist()[:4] == [("full", "estimate"), ("full", "std_error"),
                                          ("full", "pvalue"), ("full", "fixed")]
    assert table.statistics.loc["nobs", "small"] == 1200


def test_compare_stars(two):
    table = compare(two, stars=True)
    p = table.pvalues.loc["theta_price", "full"]
    assert p < 0.01
    assert format_number(two["full"].params["theta_price"]) + "***" in str(table)
    assert "* p < 0.1, ** p < 0.05, *** p < 0.01." in str(table)


def test_compare_list_names_and_cov_type(two, logit):
    table = compare([two["small"], two["small"], two["full"]], cov_type="cluster")
    assert table.names == ["NFXP (1)", "NFXP (2)", "CCP"]
    np.testing.assert_array_equal(table.std_errors.loc[NAMES, "CCP"],
                                  two["full"].std_errors_of("cluster"))
    no_groups = _results(logit, groups=None)
    with pytest.raises(NotAvailableError, match="column 'MLE': No 'cluster' covariance"):
        compare([no_groups], cov_type="cluster")


def test_compare_rejects_non_results():
    with pytest.raises(TypeError, match=r"results\['x'\] is a dict, not EstimationResults"):
        compare({"x": {}})
