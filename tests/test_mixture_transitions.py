"""Transitions in finite mixtures (issue 12): the first stage of the one-type estimators, and
optionally type-specific transition tables.

Designs:

* **other engagement**: the two-segment mixture of :func:`ddc.models.membership_segments`
  simulated with engagement matrices other than the model's defaults -- the matrices of
  ``tests/test_first_stage.py`` ("less persistent, members drifting up faster"; this package's
  own design) -- and fitted with the default model, whose matrices are wrong;
* **segment chains**: the same segments, whose members' shipping-engagement chains differ by
  segment (our own design, below): the video-heavy segment's engagement drifts down
  (``SHIP_LIGHT``), the shipping-heavy segment's up and stays (``SHIP_HEAVY``); the other
  tables are the model's defaults.

Statistical tolerances: each |z| below the two-sided Bonferroni bound at a family-wise level of
1e-4 over the parameters compared (as in ``test_first_stage.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import ddc
from estimators import CCP, NFXP
from estimators.first_stage import transition_model
from simulations import counterfactual, simulate

# tests/test_first_stage.py: engagement dynamics other than the defaults
SHIP_NONMEMBER = np.array([[0.50, 0.30, 0.20], [0.40, 0.40, 0.20], [0.30, 0.30, 0.40]])
SHIP_MEMBER = np.array([[0.20, 0.50, 0.30], [0.10, 0.30, 0.60], [0.05, 0.15, 0.80]])
VIDEO_NONMEMBER = np.array([[0.80, 0.20], [0.70, 0.30]])
VIDEO_MEMBER = np.array([[0.50, 0.50], [0.20, 0.80]])

# our own design: members' shipping engagement by segment (rows: level now; columns: next)
SHIP_LIGHT = np.array([[0.80, 0.17, 0.03], [0.30, 0.60, 0.10], [0.10, 0.40, 0.50]])
SHIP_HEAVY = np.array([[0.40, 0.45, 0.15], [0.05, 0.55, 0.40], [0.01, 0.09, 0.90]])


def z_max(k: int) -> float:
    """Two-sided Bonferroni bound for ``k`` z-scores at a family-wise level of 1e-4."""
    return float(norm.isf(1e-4 / (2 * k)))


def ship_table(member: np.ndarray) -> np.ndarray:
    """The membership model's ship factor (action x level x next level) with ``member`` as
    the members' chain."""
    model = ddc.models.membership(ship_member=member)
    return next(f.table for f in model.transitions().factors if f.variable == "ship")


# ------------------------------------------------------------------------- other engagement
@pytest.fixture(scope="module")
def other_engagement():
    dgp = ddc.models.membership_segments(
        ship_nonmember=SHIP_NONMEMBER, ship_member=SHIP_MEMBER,
        video_nonmember=VIDEO_NONMEMBER, video_member=VIDEO_MEMBER)
    panel = simulate(dgp, dgp.true_params, n_customers=3000, n_periods=36, seed=1)
    return ddc.models.membership_segments(), panel


@pytest.fixture(scope="module")
def other_fit(other_engagement):
    mix, panel = other_engagement
    return NFXP(mix).fit(panel)


def test_mixture_estimates_the_engagement_tables(other_engagement, other_fit):
    """The default model's matrices are wrong; the first stage estimates them (as for one
    type), so NFXP(mix) recovers the truth (measured max |z| 2.6 against the bound 4.4)."""
    mix, _ = other_engagement
    res = other_fit
    assert res.converged
    z = (res.params - mix.true_params[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < z_max(len(z))), z.round(2).to_dict()
    assert any("cell frequencies" in n for n in res.notes)
    assert any("Murphy-Topel" in n for n in res.notes)
    # the results carry the estimated tables: the first stage and the mixture solved
    ship = transition_model(res).transitions().factors[1].table
    assert res.transition_mixture.model.transitions().factors[1].table is ship
    assert not np.allclose(ship[1], mix.model.transitions().factors[1].table[1], atol=0.02)
    # and the type solutions are those of the estimated model
    sols = res.transition_mixture.solve(pd.concat([res.params, res.fixed_params])
                                        if res.fixed_params is not None else res.params)
    np.testing.assert_allclose(sols[1].pi, res.type_solutions[1].pi, atol=1e-10)


def test_mixture_with_wrong_known_tables_is_biased(other_engagement):
    """The same data with the default matrices declared known: far off (measured max |z|
    about 35)."""
    mix, panel = other_engagement
    res = NFXP(mix, transitions="known").fit(panel)
    z = (res.params - mix.true_params[res.params.index]) / res.std_errors
    assert np.max(np.abs(z)) > 3 * z_max(len(z)), z.round(2).to_dict()
    assert any("declared known" in n for n in res.notes)


def test_murphy_topel_widens_the_hessian_errors(other_engagement, other_fit):
    """The corrected covariance adds a positive semi-definite term to the inverse Hessian."""
    res = other_fit
    V0 = np.linalg.inv(-res.hessian.to_numpy() if hasattr(res.hessian, "to_numpy")
                       else -np.asarray(res.hessian))
    V = res.cov.to_numpy()
    assert np.all(np.diag(V) >= np.diag(V0) - 1e-12)
    assert np.min(np.linalg.eigvalsh(V - V0)) > -1e-9 * np.max(np.diag(V0))
    assert np.max(np.diag(V) / np.diag(V0)) > 1.05


def test_counterfactual_uses_the_estimated_tables(other_engagement, other_fit):
    mix, _ = other_engagement
    res = other_fit
    got = counterfactual(mix, res, scenarios=["video_benefit"], n_draws=0)
    same = counterfactual(res.transition_mixture, res.params, scenarios=["video_benefit"],
                          n_draws=0)
    wrong = counterfactual(mix, res.params, scenarios=["video_benefit"], n_draws=0)
    pd.testing.assert_frame_equal(got.summary, same.summary)
    assert not np.allclose(got.summary.to_numpy(), wrong.summary.to_numpy(), rtol=1e-3)
    assert any("first stage" in n for n in got.notes)


@pytest.mark.parametrize("estimator", [pytest.param("CCP", id="CCP"),
                                       pytest.param("NPL", id="NPL")])
def test_ccp_mixtures_use_the_estimated_tables(other_engagement, estimator):
    from estimators import NPL

    mix, panel = other_engagement
    cls = {"CCP": CCP, "NPL": NPL}[estimator]
    res = cls(mix).fit(panel)
    assert any("cell frequencies" in n for n in res.notes)
    z = (res.params - mix.true_params[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < z_max(len(z))), z.round(2).to_dict()
    assert res.transition_mixture.model is not mix.model


# ------------------------------------------------------------------------- segment chains
@pytest.fixture(scope="module")
def chains():
    """(DGP mixture with each segment's ship chain, the mixture to estimate)."""
    seg = ddc.models.membership_segments()
    model = seg.model
    dgp = ddc.Mixture(model, 2, seg.by_type, transitions_by_type=["ship"],
                      type_transitions=[{"ship": ship_table(SHIP_LIGHT)},
                                        {"ship": ship_table(SHIP_HEAVY)}],
                      true_params=seg.true_params, name="segment chains")
    est = ddc.Mixture(model, 2, seg.by_type, transitions_by_type=["ship"])
    return dgp, est


@pytest.fixture(scope="module")
def chain_panel(chains):
    dgp, _ = chains
    return simulate(dgp, dgp.true_params, n_customers=3000, n_periods=36, seed=1,
                    type_col="type")


@pytest.fixture(scope="module")
def chain_fit(chains, chain_panel):
    _, est = chains
    return NFXP(est).fit(chain_panel.drop(columns="type"))


def test_type_specific_tables_in_the_specification(chains):
    dgp, est = chains
    assert dgp.transitions_by_type == ["ship"]
    np.testing.assert_array_equal(dgp.type_tables(1)["ship"], ship_table(SHIP_HEAVY))
    np.testing.assert_array_equal(est.type_tables(0)["ship"], est.type_tables(1)["ship"])
    sols = dgp.solve(dgp.true_params)
    for k in range(2):
        tp = dgp.type_params(dgp.true_params, k)
        own = dgp.type_models[k].solve(tp)
        np.testing.assert_array_equal(sols[k].pi, own.pi)
        assert not np.allclose(own.pi, dgp.model.solve(tp).pi, atol=1e-3)
    assert "transitions_by_type" in dgp.fingerprint()
    assert "transitions_by_type" in repr(dgp)


def test_simulated_types_move_by_their_own_tables(chains, chain_panel):
    """Each type's observed member transitions of ship are its table's rows, within four
    multinomial standard errors per cell."""
    dgp, _ = chains
    p = chain_panel.sort_values(["customer_id", "month"])
    nxt = p.groupby("customer_id")["ship"].shift(-1)
    member = (p["action"] != "none") & nxt.notna()
    for k, table in enumerate([SHIP_LIGHT, SHIP_HEAVY]):
        rows = member & (p["type"] == k)
        counts = pd.crosstab(p.loc[rows, "ship"], nxt[rows].astype(int)).to_numpy()
        n = counts.sum(axis=1, keepdims=True)
        se = np.sqrt(table * (1 - table) / n)
        assert np.all(np.abs(counts / n - table) < 4 * se + 1e-12), (k, counts / n)


def test_type_specific_chains_recovered(chains, chain_fit):
    """NFXP(mix) with type-specific ship tables (joint maximum likelihood in the parameters,
    shares and both types' tables): the parameters and shares, and each type's member chain
    (the 18 cells of the monthly plan's rows), within the Bonferroni bounds of their standard
    errors from the joint information (measured max |z| 3.0 and 1.3)."""
    dgp, _ = chains
    res = chain_fit
    assert res.converged
    z = (res.params - dgp.true_params[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < z_max(len(z))), z.round(2).to_dict()
    assert res.classification["share_classified_090"] > 0.95
    assert any("joint information" in n for n in res.notes)
    zt = []
    for k, truth in enumerate([SHIP_LIGHT, SHIP_HEAVY]):
        est = res.type_tables[k]["ship"][1]  # action "monthly": members
        se = res.type_table_std_errors[k]["ship"][1]
        assert np.all(se > 0)
        zt.append((est - truth) / se)
    zt = np.array(zt)
    assert np.all(np.abs(zt) < z_max(zt.size)), zt.round(2)


def test_shared_tables_on_chain_data_are_biased(chains, chain_panel, chain_fit):
    """Ignoring the segments' different chains (one shared table) biases the estimates and
    fits worse (measured max |z| about 6.4)."""
    dgp, _ = chains
    shared = NFXP(ddc.models.membership_segments()).fit(chain_panel.drop(columns="type"))
    z = (shared.params - dgp.true_params[shared.params.index]) / shared.std_errors
    assert np.max(np.abs(z)) > z_max(len(z)), z.round(2).to_dict()
    assert chain_fit.loglik > shared.loglik


def test_one_type_with_type_tables_is_full_information(chain_panel):
    """K = 1 with transitions_by_type: the joint maximum in the utility parameters and the
    ship table's cells is the one-type full-information NFXP of the model whose ship cells are
    transition parameters (the video table at the first stage's estimate in both): the same
    estimate and log-likelihood (measured to 1e-6 and 1e-9), higher than the two-step one."""
    from estimators.mixture.table_inference import cell_layout, cell_model

    model = ddc.models.membership()
    data = chain_panel.drop(columns="type")
    mix = ddc.Mixture(model, 1, ["theta_ship"], transitions_by_type=["ship"])
    res = NFXP(mix).fit(data)
    two = NFXP(model).fit(data)
    ts = two.extra["transitions"]
    est = transition_model(two)
    layout = cell_layout(est, {"ship": ts.tables["ship"]}, {"ship": ts.counts["ship"]})
    cells = cell_model(est, {"ship": ts.tables["ship"]}, [layout])
    ref = NFXP(cells, full_information=True).fit(data)
    assert res.converged and ref.converged
    renamed = res.params.rename(lambda n: n.replace("[0]", ""))
    np.testing.assert_allclose(renamed.to_numpy(), ref.params[renamed.index].to_numpy(),
                               rtol=1e-5)
    assert res.loglik == pytest.approx(ref.loglik, abs=1e-5)
    assert res.loglik > two.loglik
    # the cells' estimates and standard errors against the full-information ones
    flat = res.type_tables[0]["ship"].reshape(-1, 3)
    se = res.type_table_std_errors[0]["ship"].reshape(-1, 3)
    for _var, r, free, _, start in layout.rows:
        for j, c in enumerate(free):
            name = layout.names[start + j]
            assert flat[r, c] == pytest.approx(ref.params[name], abs=1e-6)
            assert se[r, c] == pytest.approx(ref.std_errors[name], rel=0.05)


def test_counterfactual_uses_each_types_tables(chains, chain_fit):
    _, est = chains
    res = chain_fit
    got = counterfactual(est, res, scenarios=["video_benefit"], n_draws=0)
    same = counterfactual(res.transition_mixture, res.params, scenarios=["video_benefit"],
                          n_draws=0)
    pd.testing.assert_frame_equal(got.summary, same.summary)
    assert any("each type's own tables" in n for n in got.notes)
    pooled = counterfactual(est, res.params, scenarios=["video_benefit"], n_draws=0)
    assert not np.allclose(got.summary.to_numpy(), pooled.summary.to_numpy(), rtol=1e-3)


def test_known_type_tables_are_held(chains, chain_panel):
    """transitions="known": the mixture's own type tables are held (here the truth's), and
    still enter the posteriors."""
    dgp, _ = chains
    res = NFXP(dgp, transitions="known", n_starts=1).fit(chain_panel.drop(columns="type"))
    for k in range(2):
        np.testing.assert_array_equal(res.type_tables[k]["ship"], dgp.type_tables(k)["ship"])
    z = (res.params - dgp.true_params[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < z_max(len(z))), z.round(2).to_dict()
    assert res.classification["share_classified_090"] > 0.95


@pytest.mark.parametrize("kwargs, error, match", [
    pytest.param({"transitions_by_type": ["plan"]}, ValueError, "deterministic", id="plan"),
    pytest.param({"transitions_by_type": ["region"]}, KeyError, "no transition factor",
                 id="unknown"),
    pytest.param({"type_transitions": [{}, {}]}, ValueError, "without transitions_by_type",
                 id="tables-alone"),
    pytest.param({"transitions_by_type": ["ship"], "type_transitions": [{}]}, ValueError,
                 "2 mappings", id="count"),
    pytest.param({"transitions_by_type": ["ship"], "type_transitions": [{}, {"video": 1}]},
                 KeyError, "not among", id="other-variable"),
    pytest.param({"transitions_by_type": ["ship"],
                  "type_transitions": [{}, {"ship": np.ones((3, 3))}]}, ValueError, "shape",
                 id="shape"),
])
def test_type_transition_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ddc.Mixture(ddc.models.membership(), 2, ["theta_ship"], **kwargs)


def test_type_transitions_need_tables_and_nfxp():
    with pytest.raises(ValueError, match="transition parameters"):
        ddc.Mixture(ddc.models.rust_bus(n_states=20), 2, ["RC"], transitions_by_type=True)
    mix = ddc.Mixture(ddc.models.membership(), 2, ["theta_ship"], transitions_by_type=True)
    assert mix.transitions_by_type == ["ship", "video"]
    with pytest.raises(TypeError, match="NFXP"):
        CCP(mix)


def test_joint_scores_of_the_type_tables(chains, chain_panel, chain_fit):
    """The analytic joint scores (estimators.mixture.table_inference) against central
    differences of the mixture log-likelihood computed independently (MixtureLikelihood with
    moved tables), in utility parameters, in the cells of both types' tables and in a shared
    first-stage cell; at the estimate the joint gradient in the parameters and the types'
    cells is zero (the joint maximization reached the maximum)."""
    from estimators.data import choice_data
    from estimators.mixture.likelihood import MixtureLikelihood, unit_counts
    from estimators.mixture.table_inference import joint_scores
    from estimators.mixture.transitions import TypeTransitions

    _, est = chains
    res = chain_fit
    data = chain_panel.drop(columns="type")
    tmix = res.transition_mixture
    cd = choice_data(tmix.model, data)
    full = pd.concat([res.params, res.fixed_params]) if res.fixed_params is not None \
        else res.params
    ml = MixtureLikelihood(tmix, unit_counts(tmix, cd), tmix.params_series(full).to_numpy(),
                           ddc.Solver())
    tt = TypeTransitions(tmix, cd.panel)
    tables = [tmix.type_tables(k) for k in range(2)]
    ml.set_type_tables(tt, tables)
    x = ml.internal(tmix.params_series(full).to_numpy())
    js = joint_scores(ml, x, res.extra["transitions"], cd.panel)
    g = js.scores(js.z0).sum(axis=0)
    n_a = int(js.phi_offsets[-1])
    # stationary in the parameters and both types' cells (relative to a unit's score scale)
    scale = np.abs(js.scores(js.z0)[:, :n_a]).sum(axis=0)
    assert np.all(np.abs(g[:n_a]) < 1e-4 * scale), (g[:n_a] / scale).round(6)

    def loglik_at(x_, tabs):
        ml.set_type_tables(tt, tabs)
        return ml.evaluate(x_, False).loglik

    def moved(k, j, h):
        """Type k's tables with free cell j moved by h (its row's reference cell by -h)."""
        tabs = [{v: t.copy() for v, t in tab.items()} for tab in tables]
        for var, r, free, last, start in js.layouts[k].rows:
            if start <= j < start + len(free):
                flat = tabs[k][var].reshape(-1, tabs[k][var].shape[-1])
                flat[r, free[j - start]] += h
                flat[r, last] -= h
        return tabs

    gz = js.scores(js.z0 + np.eye(len(js.z0))[0] * 0.05).sum(axis=0)  # away from the max
    x1 = x.copy()
    x1[0] += 0.05
    for j in (0, 3):
        h = 1e-6
        xu, xd = x1.copy(), x1.copy()
        xu[j] += h
        xd[j] -= h
        num = (loglik_at(xu, tables) - loglik_at(xd, tables)) / (2 * h)
        assert gz[j] == pytest.approx(num, rel=1e-5, abs=1e-3)
    for k in range(2):
        for j in (0, len(js.layouts[k].names) - 1):
            h = 1e-6
            num = (loglik_at(x1, moved(k, j, h)) - loglik_at(x1, moved(k, j, -h))) / (2 * h)
            col = int(js.phi_offsets[k] - js.n_x) + js.n_x + j
            assert gz[col] == pytest.approx(num, rel=1e-5, abs=1e-3), (k, j)
    # a shared first-stage cell (video): the mixture over moved shared tables
    var, r, free, last, start = js.psi_layout.rows[0]
    n_psi0 = int(js.phi_offsets[-1]) + start

    def loglik_shared(h):
        factors = []
        for f in tmix.model.transitions().factors:
            t = f.table.copy()
            if f.variable == var:
                flat = t.reshape(-1, t.shape[-1])
                flat[r, free[0]] += h
                flat[r, last] -= h
            factors.append(ddc.Factor(f.variable, t, given=f.given))
        moved_mix = tmix.with_transitions(ddc.FactoredTransitions(factors))
        ml2 = MixtureLikelihood(moved_mix, ml.counts, ml.base, ddc.Solver())
        ml2.set_type_tables(tt, tables)
        return ml2.evaluate(x1, False).loglik

    num = (loglik_shared(1e-6) - loglik_shared(-1e-6)) / 2e-6
    assert gz[n_psi0] == pytest.approx(num, rel=1e-5, abs=1e-3)
    se = res.type_table_std_errors
    assert se is not None and se[1]["ship"].shape == tables[1]["ship"].shape
    assert any("joint information" in n for n in res.notes)


def test_one_type_bus_mixture_has_the_two_step_murphy_topel_errors():
    """Transition parameters (Rust's increment probabilities, a declared family): the one-type
    mixture equals NFXP's two-step estimate, and its Murphy-Topel standard errors (cross
    derivative from the analytic gradient in the transition parameters) equal NFXP's (from
    differences of the choice gradient in them)."""
    from simulations.studies import add_bus_increments

    bus = ddc.models.rust_bus(n_states=30, beta=0.95)
    truth = bus.params_series({"RC": 3.0, "theta_11": 20.0})
    panel = add_bus_increments(simulate(bus, truth, n_customers=100, n_periods=40, seed=3),
                               bus)
    res = NFXP(ddc.Mixture(bus, 1, ["RC"])).fit(panel)
    ref = NFXP(bus, full_information=False).fit(panel)
    assert any("Murphy-Topel" in n for n in ref.notes)
    assert any("Murphy-Topel" in n for n in res.notes)
    renamed = res.params.rename(lambda n: n.replace("[0]", ""))[ref.params.index]
    # the same optimum reached by two outer loops (NFXP: Newton on the analytic Hessian; the
    # mixture: BHHH/BFGS), each stopped by its own tolerance: measured 6e-9 apart
    np.testing.assert_allclose(renamed.to_numpy(), ref.params.to_numpy(), rtol=1e-7)
    se = res.std_errors.rename(lambda n: n.replace("[0]", ""))[ref.params.index]
    np.testing.assert_allclose(se.to_numpy(), ref.std_errors.to_numpy(), rtol=1e-5)


@pytest.mark.slow
def test_monte_carlo_type_tables(chains):
    """30 replications of 1,500 customers x 36 months of the segment-chain design, fitted with
    type-specific ship tables: the z-statistics of the parameters and shares (standard errors
    from the joint information) have mean near 0 and standard deviation near 1, and the 95%
    intervals cover near 95% (measured: means -0.36..0.31, standard deviations 0.85..1.17,
    coverage 0.93..0.97; a two-step version, tables from the transitions alone and treated as
    known in the standard errors, had standard deviations up to 1.23 and coverage down to
    0.90).

    Tolerances from the replications, as in ``test_mixture.py``: the mean of 30 z-statistics
    has standard error 0.18 (bound 4 x that); the standard deviation of 30 standard normals
    lies in [0.6, 1.4] with probability above 99.9%; coverage at least 0.75 per parameter and
    0.90 pooled over the 270 intervals."""
    import warnings

    from estimators.mixture import TypesNotSeparatedWarning

    dgp, est = chains
    truth = dgp.true_params
    rows = []
    for seed in range(100, 130):
        panel = simulate(dgp, truth, n_customers=1500, n_periods=36, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TypesNotSeparatedWarning)
            res = NFXP(est, n_starts=1).fit(panel)
        rows.append((res.params - truth[res.params.index]) / res.std_errors)
    z = pd.DataFrame(rows)
    assert (z.mean().abs() < 4 / np.sqrt(len(z))).all(), z.mean().round(2).to_dict()
    assert (z.std().between(0.6, 1.4)).all(), z.std().round(2).to_dict()
    cover = z.abs() < 1.96
    assert (cover.mean() >= 0.75).all() and cover.to_numpy().mean() >= 0.90, cover.mean()
