"""First-stage transitions for any model (issue 10, items 1 and 3).

* nonparametric cell frequencies for fixed factored transitions (the membership model's
  engagement chains), structural zeros kept, unvisited rows explicit;
* parametric maximum likelihood on the simplex (the firm entry/exit model of
  ``tests/models_entry.py``), checked convergence, boundary estimates;
* Rust's increment first stage as a transition family;
* data the model cannot have generated refused (or its units dropped, counted).

Statistical tolerances: each |z| below the two-sided Bonferroni bound at a family-wise level of
1e-4 over the parameters compared (as in ``test_estimators.py``).
"""

import numpy as np
import pandas as pd
import pytest
from models_entry import (
    DEMAND_CHAIN,
    DEMAND_DEFAULT,
    TRUTH_PARAMETRIC,
    demand_names,
    entry_model_parametric,
)
from scipy.stats import norm

import ddc
from ddc.panel import ImpossibleTransitionError, prepare
from ddc.transition_families import IncrementTransitions, SimplexParameters
from estimators import CCP, NFXP, NPL, PQR, MaxEntIRL
from estimators.first_stage import (
    TransitionOptions,
    check_possible,
    estimate_transitions,
    factor_counts,
    transition_model,
)
from simulations import simulate


def z_max(k: int) -> float:
    """Two-sided Bonferroni bound for ``k`` z-scores at a family-wise level of 1e-4."""
    return float(norm.isf(1e-4 / (2 * k)))


# ---------------------------------------------------------------------------- membership
# Engagement dynamics other than the defaults: less persistent, members drifting up faster.
SHIP_NONMEMBER = np.array([[0.50, 0.30, 0.20], [0.40, 0.40, 0.20], [0.30, 0.30, 0.40]])
SHIP_MEMBER = np.array([[0.20, 0.50, 0.30], [0.10, 0.30, 0.60], [0.05, 0.15, 0.80]])
VIDEO_NONMEMBER = np.array([[0.80, 0.20], [0.70, 0.30]])
VIDEO_MEMBER = np.array([[0.50, 0.50], [0.20, 0.80]])


@pytest.fixture(scope="module")
def other_engagement():
    dgp = ddc.models.membership(ship_nonmember=SHIP_NONMEMBER, ship_member=SHIP_MEMBER,
                                video_nonmember=VIDEO_NONMEMBER, video_member=VIDEO_MEMBER)
    panel = simulate(dgp, dgp.true_params, n_customers=8_000, n_periods=24, seed=3)
    return ddc.models.membership(), panel


ESTIMATORS = [pytest.param(NFXP, id="NFXP"), pytest.param(CCP, id="CCP"),
              pytest.param(NPL, id="NPL")]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_membership_engagement_estimated_by_default(other_engagement, estimator):
    """On data simulated with other engagement matrices, the default model (whose matrices are
    wrong) recovers the utility parameters, because the engagement chains are estimated."""
    model, panel = other_engagement
    res = estimator(model).fit(panel)
    assert res.converged
    z = (res.params - model.true_params) / res.std_errors
    assert np.all(np.abs(z) < z_max(6)), z.round(2).to_dict()
    assert any("cell frequencies" in n for n in res.notes)
    # the results carry the model with the estimated chains
    ship = transition_model(res).transitions().factors[1]
    assert ship.variable == "ship"
    assert not np.allclose(ship.table[1], model.transitions().factors[1].table[1], atol=0.02)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_membership_wrong_known_engagement_is_biased(other_engagement, estimator):
    """The same data with the default matrices declared known: the estimates are far off (the
    failure of issue 10; measured |z| up to about 29)."""
    model, panel = other_engagement
    res = estimator(model, transitions="known").fit(panel)
    z = (res.params - model.true_params) / res.std_errors
    assert np.max(np.abs(z)) > 3 * z_max(6), z.round(2).to_dict()
    assert any("declared known" in n for n in res.notes)


def test_nonparametric_tables_are_cell_frequencies(other_engagement):
    model, panel = other_engagement
    p = prepare(model, panel)
    ts = estimate_transitions(model, p, panel)
    counts = factor_counts(model, p.transition_counts)
    assert set(ts.tables) == {"ship", "video"}  # plan is deterministic: not estimated
    for var in ("ship", "video"):
        c = counts[var]
        np.testing.assert_array_equal(ts.counts[var], c)
        N = c.sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(ts.tables[var], c / N, rtol=1e-12)
        # multinomial covariance of one row
        cov = ts.table_cov(var)
        row = ts.tables[var][1, 0]
        np.testing.assert_allclose(cov[1, 0], (np.diag(row) - np.outer(row, row)) / N[1, 0, 0])
    # the estimated ship chain of members is the data-generating one within sampling error
    se = np.sqrt(np.diagonal(ts.table_cov("ship")[1], axis1=-2, axis2=-1))
    z = (ts.tables["ship"][1] - SHIP_MEMBER) / se
    assert np.all(np.abs(z) < z_max(9)), z
    assert ts.model.transitions().factors[0] is model.transitions().factors[0]
    assert ts.unvisited.empty


def _toy_chain(table, feasible=None):
    """One state variable x in 0..2, actions stay/go; x follows ``table`` given the action."""
    X = np.zeros((3, 2, 1))
    X[:, 1, 0] = 1.0
    return ddc.Model([ddc.StateVariable("x", (0, 1, 2))], ["stay", "go"],
                     ddc.LinearUtility(X, ["b"]),
                     ddc.FactoredTransitions([ddc.Factor("x", table, given=("action", "x"))]),
                     beta=0.9, feasible=feasible, true_params=pd.Series({"b": 0.0}))


def _frame(rows):
    return pd.DataFrame(rows, columns=["id", "period", "x", "action"])


def test_structural_zeros_and_unvisited_rows():
    table = np.array([[[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]],   # stay
                      [[1.0, 0.0, 0.0], [0.3, 0.3, 0.4], [0.2, 0.3, 0.5]]])  # go
    model = _toy_chain(table)
    data = _frame([(1, 0, 0, "stay"), (1, 1, 0, "stay"), (1, 2, 1, "stay"), (1, 3, 1, "stay"),
                   (1, 4, 2, "go"), (1, 5, 0, "stay")])
    ts = estimate_transitions(model, prepare(model, data), data)
    est = ts.tables["x"]
    np.testing.assert_allclose(est[0, 0], [0.5, 0.5, 0.0])  # 0 -> 0, 0 -> 1
    np.testing.assert_allclose(est[0, 1], [0.0, 0.5, 0.5])  # 1 -> 1, 1 -> 2: zero kept
    np.testing.assert_allclose(est[1, 2], [1.0, 0.0, 0.0])  # 2 -> 0 under go
    np.testing.assert_array_equal(est[0, 2], table[0, 2])   # deterministic row
    np.testing.assert_array_equal(est[1, 0], table[1, 0])   # deterministic row
    np.testing.assert_array_equal(est[1, 1], table[1, 1])   # never visited: kept, listed
    assert ts.unvisited.to_dict("records") == [{"variable": "x",
                                                "given": {"action": "go", "x": 1}}]
    assert any("never visited" in n for n in ts.notes)
    with pytest.raises(ValueError, match=r"the row \{'action': 'go', 'x': 1\} is never visited"):
        estimate_transitions(model, prepare(model, data), data,
                             options=TransitionOptions(unvisited="raise"))
    # rows no feasible action reaches are neither estimated nor reported
    feas = np.ones((3, 2), dtype=bool)
    feas[1, 1] = False
    m2 = _toy_chain(table, feasible=feas)
    ts2 = estimate_transitions(m2, prepare(m2, data), data,
                               options=TransitionOptions(unvisited="raise"))
    assert ts2.unvisited.empty
    # known transitions: nothing estimated, the model itself
    known = estimate_transitions(model, prepare(model, data), data,
                                 options=TransitionOptions(known=True))
    assert known.model is model and not known.tables


def test_transition_options_are_checked():
    assert TransitionOptions.of(None) == TransitionOptions()
    assert TransitionOptions.of("known").known
    with pytest.raises(ValueError, match="'estimate', 'known' or a TransitionOptions"):
        TransitionOptions.of("fixed")
    with pytest.raises(ValueError, match="unvisited must be 'model' or 'raise'"):
        TransitionOptions(unvisited="nan")
    with pytest.raises(ValueError, match="impossible must be 'raise' or 'drop'"):
        TransitionOptions(impossible="ignore")
    with pytest.raises(ValueError, match="'estimate', 'known'"):
        NFXP(ddc.models.membership(), transitions="fixed")


# ---------------------------------------------------------------------------- impossible data
@pytest.fixture(scope="module")
def membership_small():
    model = ddc.models.membership()
    return model, simulate(model, model.true_params, n_customers=300, n_periods=12, seed=5)


def test_market_switch_is_refused_naming_row_unit_and_states(membership_small):
    model, panel = membership_small
    bad = panel.copy()
    unit = bad["customer_id"].iloc[40]
    rows = bad.index[bad["customer_id"] == unit]
    bad.loc[rows[5], "market"] = (bad.loc[rows[4], "market"] + 1) % 3  # a market switch
    with pytest.raises(ImpossibleTransitionError) as err:
        NFXP(model).fit(bad)
    msg = str(err.value)
    assert f"customer_id={unit}" in msg and f"row {rows[4]}" in msg
    assert "state (market=" in msg and "next state (market=" in msg and "zero in: market" in msg
    assert len(err.value.rows) >= 1


def test_impossible_units_dropped_and_counted(membership_small):
    model, panel = membership_small
    bad = panel.copy()
    ids = bad["customer_id"].unique()[[3, 7]]
    for cid in ids:  # a plan jump: none -> annual_5 in one month, in two customers
        rows = bad.index[bad["customer_id"] == cid]
        bad.loc[rows[2], ["plan", "action"]] = ["annual_5", "annual"]
    res = CCP(model, transitions=TransitionOptions(impossible="drop")).fit(bad)
    note = [n for n in res.notes if "left out" in n]
    assert len(note) == 1 and note[0].startswith("2 unit(s) (24 rows) left out"), res.notes
    assert res.n_units == 298 and res.nobs == len(panel) - 24
    clean = panel[~panel["customer_id"].isin(ids)]
    ref = CCP(model).fit(clean)
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-10)


def test_unreachable_mileage_bin_is_refused():
    bus = ddc.models.rust_bus(n_states=20)
    data = pd.DataFrame({"bus_id": [1, 1, 1, 2, 2], "month": [0, 1, 2, 0, 1],
                         "mileage": [0, 1, 6, 3, 3], "action": ["keep"] * 5,
                         "increment": [1, 5, pd.NA, 0, pd.NA]})
    with pytest.raises(ImpossibleTransitionError, match=r"bus_id=1.*mileage=1.*mileage=6"):
        NFXP(bus).fit(data)
    panel, notes = check_possible(bus, prepare(bus, data), impossible="drop")
    assert panel.n_units == 1 and "1 unit(s) (3 rows) left out" in notes[0]


# ---------------------------------------------------------------------------- increments
def test_bus_declares_the_increment_family():
    bus = ddc.models.rust_bus(n_states=90)
    fam = bus.hooks.transition_family
    assert isinstance(fam, IncrementTransitions) and fam.columns == ("increment",)
    assert bus.fingerprint()["transitions"]["family"]["family"] == "IncrementTransitions"
    assert fam.simplex_groups(bus) == [["theta_30", "theta_31"]]


def test_increment_family_estimates_frequencies():
    bus = ddc.models.rust_bus(n_states=20)
    data = pd.DataFrame({"bus_id": [1, 1, 1, 1, 2, 2, 2], "month": [0, 1, 2, 3, 0, 1, 2],
                         "mileage": [0, 1, 1, 3, 3, 4, 5], "action": ["keep"] * 7,
                         "increment": [1, 0, 2, pd.NA, 1, 1, pd.NA]})
    ts = estimate_transitions(bus, prepare(bus, data), data)
    np.testing.assert_allclose(ts.params, [1 / 5, 3 / 5])  # counts 1, 3, 1
    p = np.array([0.2, 0.6])
    np.testing.assert_allclose(ts.cov, (np.diag(p) - np.outer(p, p)) / 5)
    assert ts.loglik == pytest.approx(np.log(0.2) + 3 * np.log(0.6) + np.log(0.2))
    assert ts.method == "increment frequencies (column 'increment')"
    # row scores: d log p_j / d p_k, the last probability's through 1 - sum
    np.testing.assert_allclose(ts.row_scores[0], [0, 1 / 0.6])
    np.testing.assert_allclose(ts.row_scores[2], [-1 / 0.2, -1 / 0.2])
    with pytest.raises(ValueError, match=r"column 'increment': 1 row\(s\) hold an increment "
                                         r"outside 0..2"):
        estimate_transitions(bus, prepare(bus, data), data.assign(increment=[1, 0, 7, pd.NA,
                                                                              1, 1, pd.NA]))
    no_inc = data.drop(columns="increment")
    with pytest.raises(KeyError, match="no such column"):
        estimate_transitions(bus, prepare(bus, no_inc), no_inc)


# ---------------------------------------------------------------------------- parametric
@pytest.fixture(scope="module")
def entry_panel():
    model = entry_model_parametric()
    return model, simulate(model, TRUTH_PARAMETRIC, n_customers=1_500, n_periods=20, seed=1)


NAMES = [n for row in demand_names() for n in row]


def test_entry_first_stage_recovers_the_demand_chain(entry_panel):
    """Starting from defaults with zeros (no NaN), the softmax first stage reaches the truth;
    the truth's zeros (row 0's last probability, p30) are boundary estimates at exactly 0."""
    model, panel = entry_panel
    assert (DEMAND_DEFAULT == 0).any() and (DEMAND_CHAIN == 0).any()
    ts = estimate_transitions(model, prepare(model, panel), panel)
    assert ts.boundary == ["p30"] and ts.params["p30"] == 0.0
    assert 1.0 - ts.params[["p00", "p01", "p02"]].sum() == pytest.approx(0.0, abs=1e-12)
    inner = [n for n in NAMES if n != "p30"]
    z = (ts.params[inner] - TRUTH_PARAMETRIC[inner]) / np.sqrt(np.diag(ts.cov))[
        [NAMES.index(n) for n in inner]]
    assert np.all(np.abs(z) < z_max(len(inner))), z.round(2).to_dict()
    # row 0's last probability is on the boundary: its parameters are held in a joint stage
    assert ts.free == [n for n in NAMES if n[:2] not in ("p0", "p3")] + ["p31", "p32"]
    assert np.all(np.isfinite(ts.row_scores))
    # starting values are not an optimum: one iteration is not enough, and that is an error
    with pytest.raises(ddc.ConvergenceError, match="did not reach a maximum"):
        estimate_transitions(model, prepare(model, panel), panel,
                             options=TransitionOptions(max_iter=1))


def test_entry_without_declared_simplex_names_the_remedy(entry_panel):
    """Undeclared, the defaults' zeros make observed moves impossible at the start: a named
    error with the remedy, not a NaN."""
    model, panel = entry_panel
    plain = entry_model_parametric(declare_simplex=False)
    with pytest.raises(ddc.panel.ImpossibleTransitionError, match="demand"):
        NFXP(plain).fit(panel)
    with pytest.raises(ValueError, match="SimplexParameters"):
        estimate_transitions(plain, prepare(plain, panel), panel)


@pytest.mark.parametrize("estimator", [pytest.param(CCP, id="CCP"),
                                       pytest.param(NPL, id="NPL")])
def test_entry_utility_recovered(entry_panel, estimator):
    model, panel = entry_panel
    res = estimator(model).fit(panel)
    assert res.converged
    z = (res.params - TRUTH_PARAMETRIC[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < z_max(2)), z.round(2).to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [pytest.param(NFXP, id="NFXP"),
                                       pytest.param(PQR, id="PQR"),
                                       pytest.param(MaxEntIRL, id="MaxEntIRL")])
def test_entry_utility_recovered_slow(entry_panel, estimator):
    """NFXP estimates the free demand probabilities jointly with the utility (full
    information): every estimated parameter within its standard errors."""
    model, panel = entry_panel
    res = estimator(model).fit(panel)
    assert res.converged
    z = (res.params - TRUTH_PARAMETRIC[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < z_max(len(z))), z.round(2).to_dict()


def test_simplex_parameters_are_checked():
    with pytest.raises(TypeError, match="non-empty list"):
        SimplexParameters("p00")
    with pytest.raises(ValueError, match="more than one simplex group"):
        SimplexParameters(["a", "b"], ["b"])
    with pytest.raises(KeyError, match="not transition parameters"):
        SimplexParameters(["q"]).simplex_groups(entry_model_parametric())
