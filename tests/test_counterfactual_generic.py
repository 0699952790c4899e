"""The generic counterfactual engine on a model it was not built for: a firm entry/exit model.

The model (``tests/models_entry.py``) is written as a user would: two states variables
(incumbent 0/1, a 4-level demand chain), actions out/in, beta 0.95, parameters ``theta_d``
(demand) and ``FC`` (entry cost), one declared outcome (``share_in``) and no money parameter.

Oracles:

- identities: a scenario that changes nothing has CV 0; a lump sum of c utils in every state and
  action gives CV = c / (1 - beta) and leaves every share unchanged; two ways of writing the same
  change (a parameter change and a covariate change; a transition change and a user function)
  give the same figures at every draw; with a money parameter, CV in money is CV in utils over
  it, draw by draw;
- stationarity: next period's incumbents are this period's entrants and stayers, so the
  stationary share of ``incumbent = 1`` equals the share choosing ``in`` (exactly);
- exact solutions: the draws equal ``Model.solve`` + the stationary distribution at the same
  parameter draws;
- interval coverage: the default percentile intervals cover an exactly normal estimate at the
  nominal rate (a simulation whose Monte Carlo standard error is stated).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from models_entry import DEMAND_CHAIN, entry_model, share_in

import ddc
from estimators import NFXP
from estimators.first_stage import transition_model
from simulations import (
    CovariateChange,
    Custom,
    ParameterChange,
    TransitionChange,
    UtilityShift,
    counterfactual,
    simulate,
    stationary_distribution,
)
from simulations.counterfactual import DEFAULT_DRAWS, _interval

PERSISTENT = 0.5 * (DEMAND_CHAIN + np.eye(4))


def entrants(space):
    return space.values_of("incumbent") == 0


@pytest.fixture(scope="module")
def model():
    return entry_model()


@pytest.fixture(scope="module")
def fitted(model):
    panel = simulate(model, model.true_params, n_customers=2000, n_periods=20, seed=7)
    return NFXP(model).fit(panel)


SCENARIOS = [
    ParameterChange("FC", factor=1.5, name="entry_cost_up"),
    CovariateChange("FC", 0.5, actions="in", where=entrants, name="entry_subsidy",
                    description="entry cost halved (covariate of FC from -1 to -0.5)"),
    Custom(lambda m: entry_model(demand_chain=PERSISTENT), name="persistent_demand",
           identification=ddc.scenarios.NORMALIZATION),
]


@pytest.fixture(scope="module")
def report(model, fitted):
    return counterfactual(model, fitted, scenarios=SCENARIOS, n_draws=60, seed=4)


def test_report_has_welfare_shares_outcome_and_intervals(report):
    s = report.summary
    assert list(s.index) == ["baseline", "entry_cost_up", "entry_subsidy", "persistent_demand"]
    assert list(s.columns) == ["cv_per_firm", "cv_per_firm_lower", "cv_per_firm_upper",
                               "share_in", "share_in_lower", "share_in_upper"]
    assert np.isfinite(s.to_numpy(float)).all()
    lo, hi = s["share_in_lower"], s["share_in_upper"]
    assert (lo < s["share_in"]).all() and (s["share_in"] < hi).all()
    assert s.loc["entry_cost_up", "cv_per_firm"] < 0 < s.loc["entry_subsidy", "cv_per_firm"]
    assert s.loc["entry_cost_up", "share_in"] < s.loc["baseline", "share_in"]
    assert list(report.welfare.columns[:1]) == ["cv_utils"] and "cv_money" not in report.welfare
    np.testing.assert_allclose(report.welfare["cv_utils"], s["cv_per_firm"], rtol=0, atol=0)
    assert report.by_block is None  # no permanent state variable
    assert list(report.choice_shares.columns) == ["out", "out_lower", "out_upper", "in",
                                                  "in_lower", "in_upper"]
    np.testing.assert_allclose(report.choice_shares[["out", "in"]].sum(axis=1), 1.0,
                               rtol=0, atol=1e-12)
    ids = report.scenarios
    assert ids["entry_subsidy"].identification == "identified"
    assert ids["persistent_demand"].identification == "depends on the normalization"
    assert report.n_used == 60 and report.draws.shape == (60, 8)


def test_stationary_incumbents_are_the_firms_in(report):
    """mu(incumbent' = 1) = sum_s mu(s) pi(in | s) under a stationary distribution."""
    for name in report.summary.index:
        inc = report.state_shares.loc[(name, "incumbent", "1"), "share"]
        assert inc == pytest.approx(report.summary.loc[name, "share_in"], abs=1e-12)
        assert inc == pytest.approx(report.choice_shares.loc[name, "in"], abs=1e-12)
        demand = report.state_shares.xs((name, "demand"), level=("scenario", "variable"))
        assert demand["share"].sum() == pytest.approx(1.0, abs=1e-12)


def test_parameter_and_covariate_changes_agree(model, fitted):
    """FC halved for entrants, written two ways, at the estimate and at every draw."""
    rep = counterfactual(model, fitted, n_draws=20, seed=1, scenarios=[
        ParameterChange("FC", factor=0.5, name="half"),
        CovariateChange("FC", 0.5, actions="in", where=entrants, name="half_covariate")])
    s = rep.summary
    for col in ("cv_per_firm", "share_in"):
        assert s.loc["half", col] == pytest.approx(s.loc["half_covariate", col], abs=1e-10)
        np.testing.assert_allclose(rep.draws[("half", col)], rep.draws[("half_covariate", col)],
                                   rtol=0, atol=1e-9)


def test_transition_change_equals_the_user_function(model, fitted):
    rep = counterfactual(model, fitted.params, scenarios=[
        TransitionChange("demand", modify=lambda P: 0.5 * (P + np.eye(4)), name="tc"),
        Custom(lambda m: entry_model(demand_chain=PERSISTENT), name="fn")])
    for col in rep.summary.columns:
        assert rep.summary.loc["tc", col] == pytest.approx(rep.summary.loc["fn", col],
                                                           abs=1e-10)
    with pytest.raises(KeyError, match="no transition factor draws 'price'"):
        TransitionChange("price", table=np.eye(2)).apply(model)
    with pytest.raises(ValueError, match="shape"):
        TransitionChange("demand", table=np.eye(3)).apply(model)


def test_identities(model):
    truth = model.true_params
    c = 0.2
    rep = counterfactual(model, truth, scenarios=[UtilityShift(c, name="lump"),
                                                  ParameterChange("FC", factor=1.0,
                                                                  name="nothing")])
    s = rep.summary
    assert s.loc["lump", "cv_per_firm"] == pytest.approx(c / (1 - model.beta), abs=1e-8)
    assert s.loc["nothing", "cv_per_firm"] == pytest.approx(0.0, abs=1e-10)
    for name in ("lump", "nothing"):
        assert s.loc[name, "share_in"] == pytest.approx(s.loc["baseline", "share_in"],
                                                        abs=1e-10)


def test_draws_equal_exact_solutions(model, fitted, report):
    # the engine solves with the demand chain the fit estimated, not the model's default, and
    # (draw_transitions=True, the default) each draw with its own draw of the chain: the
    # Dirichlet draws of draw_first_stage on the transitions' stream of the seed
    from estimators.first_stage import draw_first_stage
    from simulations.draws import _first_stage_seed

    first = draw_first_stage(fitted.extra["transitions"], 60, _first_stage_seed(4))
    chain = transition_model(fitted).transitions()
    for d in (0, 31, 59):
        model = model.replace(transitions=first.transitions(chain, d))
        cf = SCENARIOS[1].apply(model)
        theta = report.param_draws.iloc[d]
        base = model.solve(theta)
        mu_b = stationary_distribution(base).to_numpy()
        for name, m in (("baseline", model), ("entry_subsidy", cf)):
            sol = m.solve(theta)
            mu = stationary_distribution(sol).to_numpy()
            assert report.draws.loc[d, (name, "share_in")] == pytest.approx(
                float(mu @ sol.pi[:, 1]), abs=1e-9)
            assert report.draws.loc[d, (name, "cv_per_firm")] == pytest.approx(
                float(mu_b @ (sol.V - base.V)), abs=1e-7)


def test_vectorized_outcome_equals_the_plain_one(model, fitted, report):
    """The same outcome declared vectorized (all draws in one call) gives the same draws."""
    def share_in_all(ctx):
        return (ctx.distribution * ctx.ccp[:, 1]).sum(axis=0)

    hooks = model.hooks.replace(outcomes=(
        model.hooks.outcome("share_in"),
        ddc.Outcome("share_in_v", share_in_all, unit="share", vectorized=True)))
    m2 = model.replace(hooks=hooks)
    rep = counterfactual(m2, fitted, scenarios=SCENARIOS[:2], n_draws=30, seed=4)
    for name in rep.summary.index:
        np.testing.assert_allclose(rep.draws[(name, "share_in_v")],
                                   rep.draws[(name, "share_in")], rtol=0, atol=1e-12)
        # the same seed gives the same draws as the report's
        np.testing.assert_allclose(rep.draws[(name, "share_in")],
                                   report.draws[(name, "share_in")].iloc[:30], rtol=0,
                                   atol=1e-12)


def test_money_converts_welfare_draw_by_draw(model, fitted):
    m2 = model.replace(hooks=model.hooks.replace(money=ddc.Money("theta_d", unit="EUR")))
    rep = counterfactual(m2, fitted.params, scenarios=SCENARIOS[:1])
    w = rep.welfare.loc["entry_cost_up"]
    assert w["cv_money"] == pytest.approx(w["cv_utils"] / fitted.params["theta_d"], rel=1e-12)
    assert rep.summary.loc["entry_cost_up", "cv_per_firm"] == w["cv_money"]
    assert "EUR" in rep.to_markdown()


def test_report_renders_and_saves(report, tmp_path, monkeypatch):
    md = report.to_markdown(image_dir=".")
    assert "CV per firm" in md and "share in" in md and "Choice shares" in md
    assert "u(out) = 0" in md and "## By " not in md and "welfare_by" not in md
    monkeypatch.setattr(type(report), "figure_pngs",
                        lambda self, dpi=110: {"changes.png": b"\x89PNG\r\n\x1a\n"})
    out = report.save(tmp_path / "entry")
    assert {p.name for p in out.iterdir()} == {
        "report.md", "report.html", "changes.png", "summary.csv", "welfare.csv", "changes.csv",
        "choice_shares.csv", "state_shares.csv", "params.csv", "draws.csv", "param_draws.csv",
        "MANIFEST.json"}
    summary = pd.read_csv(out / "summary.csv", index_col="scenario")
    np.testing.assert_allclose(summary.to_numpy(float), report.summary.to_numpy(float),
                               rtol=1e-9)


def test_changes_figure_draws(report):
    figs = report.figures()
    assert list(figs) == ["changes.png"]


def test_refuses_results_of_another_model(model, fitted):
    other_model = entry_model(beta=0.9)
    panel = simulate(other_model, other_model.true_params, n_customers=300, n_periods=10,
                     seed=3)
    other = NFXP(other_model).fit(panel)
    with pytest.raises(ValueError, match="beta: 0.9 vs 0.95"):
        counterfactual(model, other, scenarios=SCENARIOS[:1])
    assert fitted.fingerprint == model.fingerprint()  # its own model passes
    counterfactual(model, fitted, scenarios=SCENARIOS[:1], n_draws=0)


def test_no_default_scenarios_and_bad_arguments(model, fitted):
    with pytest.raises(ValueError, match="declares no default scenarios"):
        counterfactual(model, fitted)
    with pytest.raises(KeyError, match="'theta_x' is not a parameter of the model"):
        counterfactual(model, fitted, scenarios=[ParameterChange("theta_x", delta=1.0)])
    with pytest.raises(ValueError, match="exactly one of"):
        ParameterChange("FC", factor=1.5, delta=1.0)
    with pytest.raises(KeyError, match="'kappa' is not a utility parameter"):
        CovariateChange("kappa", 1.0).apply(model)


def test_user_outcome_sees_one_draw_at_a_time(model):
    """A plain outcome function gets 2-D arrays: the doc's simple form works unchanged."""
    seen = []

    def spy(ctx):
        seen.append((ctx.ccp.shape, ctx.distribution.shape, ctx.n_draws))
        return share_in(ctx)

    m2 = model.replace(hooks=model.hooks.replace(outcomes=(ddc.Outcome("spy", spy),)))
    counterfactual(m2, model.true_params, scenarios=SCENARIOS[:1])
    assert set(seen) == {((8, 2), (8,), None)}


def test_default_intervals_reach_nominal_coverage():
    """Percentile intervals of the default method cover an exactly normal estimate at 95%.

    theta_hat ~ N(0, 1); D = DEFAULT_DRAWS draws theta_d ~ N(theta_hat, 1); the interval covers
    the truth 0 in a share of R = 20,000 replications whose Monte Carlo standard error is
    sqrt(.95 * .05 / R) = 0.0015; the tolerance is 4 of those. (numpy's default linear
    position covers 0.940 at D = 200, 0.932 at D = 100: docs/counterfactuals.rst.)
    """
    R = 20_000
    rng = np.random.default_rng(20261202)
    theta_hat = rng.standard_normal(R)
    draws = theta_hat[:, None] + rng.standard_normal((R, DEFAULT_DRAWS))
    lo, hi = _interval(draws, 0.95)
    coverage = np.mean((lo <= 0) & (0 <= hi))
    assert abs(coverage - 0.95) <= 4 * np.sqrt(0.95 * 0.05 / R), coverage


def test_the_documented_entry_example_runs_and_prints_what_the_docs_say(capsys):
    """docs/counterfactuals.rst, "Any model": the code block, executed, prints the text block."""
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "counterfactuals.rst").read_text()
    start = doc.index("   import numpy as np\n   import ddc\n   from estimators import NFXP")
    stop = doc.index(".. code-block:: text", start)
    code = "\n".join(line[3:] for line in doc[start:stop].split("\n"))
    expected = doc[stop:].split("\n\n", 2)[1]
    exec(compile(code, "docs/counterfactuals.rst", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed == "\n".join(line[3:] for line in expected.split("\n")).strip()


def test_solve_batch_and_stationary_batch_equal_one_by_one(model):
    """ddc.solver.solve_batch and ddc.stationary.stationary_batch against solve_arrays and
    stationary_from_policy, draw by draw; a draw left unconverged is flagged, not returned."""
    from ddc.scenarios import utilities_batch
    from ddc.solver import Solver, solve_arrays, solve_batch
    from ddc.stationary import stationary_batch, stationary_from_policy

    sol = model.solve(model.true_params)
    mu0 = stationary_from_policy(model, sol.pi)
    theta = model.true_params.to_numpy() + np.random.default_rng(0).normal(0, 0.05, (7, 2))
    U = utilities_batch(model.utility, theta)
    fp = solve_batch(U, model.feasible, model.beta, sol.ct, sol.pi, sol.V)
    assert fp.converged.all()
    mu, done = stationary_batch(model, fp.pi, sol.pi, mu0)
    assert done.all()
    for d in range(len(theta)):
        one = solve_arrays(U[:, :, d], model.feasible, model.beta, sol.ct, Solver(), None)
        np.testing.assert_allclose(fp.V[:, d], one.V, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fp.pi[:, :, d], one.pi, rtol=0, atol=1e-10)
        np.testing.assert_allclose(mu[:, d], stationary_from_policy(model, one.pi), rtol=0,
                                   atol=1e-12)
    stuck = solve_batch(U, model.feasible, model.beta, sol.ct, sol.pi, sol.V, max_iter=1)
    assert not stuck.converged.all() and np.isnan(stuck.V[:, ~stuck.converged]).all()
