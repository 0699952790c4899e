"""`converged` means converged, and nothing wrong reaches the user quietly from ``fit``.

Regression tests for issue 11 (items 2 and 4, as they concern the estimators): each case was
found by a bad-input campaign and gave a wrong answer flagged as converged, or a raw numpy/scipy
exception, before the estimator template checked it.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc.panel import PanelError
from estimators import CCP, ESTIMATORS, NFXP, NPL, PQR, MaxEntIRL, Optimizer, get_estimator
from estimators.base import Estimator, Fit, Inference, check_convergence
from estimators.identification import IdentificationError
from simulations import simulate

ALL = [NFXP, CCP, NPL, PQR, MaxEntIRL]


@pytest.fixture(scope="module")
def membership():
    return ddc.models.membership()


@pytest.fixture(scope="module")
def panel(membership):
    return simulate(membership, membership.true_params, n_customers=600, n_periods=18, seed=3)


@pytest.fixture(scope="module")
def bus_data():
    return ddc.datasets.load_rust_bus(groups=(4,), n_states=90)


# ------------------------------------------------------------------ the three checks
def test_check_convergence_names_each_failed_check():
    H = -np.eye(2)
    ok = check_convergence(-10.0, np.array([1e-6, 0.0]), H, True, "tol", ["a", "b"])
    assert ok and ok.failed == []
    assert not check_convergence(-np.inf, np.zeros(2), H, True).finite
    big = check_convergence(-10.0, np.array([1.0, 0.0]), H, True, names=["a", "b"])
    assert big.failed == ["gradient"] and "largest component a" in big.describe()
    saddle = check_convergence(-10.0, np.zeros(2), np.diag([-1.0, 1.0]), True, names=["a", "b"])
    assert saddle.failed == ["hessian"] and "direction b" in saddle.describe()
    flat = check_convergence(-10.0, np.zeros(2), np.diag([-1.0, 0.0]), True, names=["a", "b"])
    assert "hessian" in flat.failed and "does not move with b" in flat.describe()
    assert check_convergence(-10.0, np.zeros(2), H, False, "max_iter").failed == ["optimizer"]


def test_converged_fit_records_its_checks(membership, panel):
    res = NFXP(membership).fit(panel)
    conv = res.convergence
    assert res.converged and bool(conv) and conv is res.extra["convergence"]
    assert conv.decrement < 1e-3 and conv.min_eigenvalue < 0


def test_far_start_stuck_on_a_flat_region_is_not_converged(membership, panel):
    """From kappa_join = 50, alpha_price = 5 every choice probability is saturated: BHHH stops
    (its own rule holds) on a flat region far below the maximum. The fit must say so. (BHHH
    explicitly: NFXP's default Newton outer loop reports the failure itself there, so only BHHH
    puts the template's Hessian check to this test.)"""
    bad = {"kappa_join": 50.0, "alpha_price": 5.0}
    # the transitions as given (where this start is known to stall; with the engagement chains
    # estimated the likelihood differs slightly and the optimizer may get out)
    bhhh = Optimizer("bhhh")
    with pytest.warns(ddc.ConvergenceWarning, match="NFXP did not converge: the Hessian is "
                                                    "(singular|not negative definite)"):
        res = NFXP(membership, transitions="known", optimizer=bhhh).fit(panel, start=bad)
    assert not res.converged and "hessian" in res.convergence.failed
    assert str(res.summary()).splitlines()[2].startswith("Converged:")
    with pytest.warns(ddc.ConvergenceWarning, match="ended at 2 different points"):
        both = NFXP(membership, transitions="known", optimizer=bhhh).fit(panel,
                                                                         starts=[bad, None])
    assert both.converged and both.loglik > res.loglik + 1000
    assert both.extra["starts"]["objective"].idxmax() == 1


def test_far_start_is_not_converged_under_the_default_newton_outer_loop(membership, panel):
    bad = {"kappa_join": 50.0, "alpha_price": 5.0}
    with pytest.warns(ddc.ConvergenceWarning, match="NFXP did not converge"):
        res = NFXP(membership, transitions="known").fit(panel, start=bad)
    assert not res.converged and res.convergence.failed


# ------------------------------------------------------------------ an action never chosen
def _without_annual(panel: pd.DataFrame) -> pd.DataFrame:
    """Each customer's months before their first annual choice (so no gaps are made)."""
    first = panel.assign(t=np.where(panel.action == "annual", panel.month, np.inf)) \
        .groupby("customer_id").t.transform("min")
    return panel[panel.month < first]


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.__name__)
def test_action_never_chosen_names_the_parameter_and_the_cause(estimator, membership, panel):
    data = _without_annual(panel)
    assert (data.action != "annual").all() and len(data) > 1000
    with pytest.raises(IdentificationError,
                       match=r"'annual' is never chosen in the \d+ observed states where it is "
                             r"feasible.*theta_annual"):
        estimator(membership).fit(data)


# ------------------------------------------------------------------ impossible transitions
def test_impossible_transition_is_a_named_error_not_minus_infinity(membership, panel):
    data = panel.copy()
    i = data.index[(data.customer_id == 7) & (data.month == 5)][0]
    data.loc[i, "market"] = (data.loc[i, "market"] + 1) % 3  # markets never change
    with pytest.raises(PanelError, match=r"probability 0.*customer_id=7"):
        NFXP(membership).fit(data)


def test_impossible_transition_in_sufficient_statistics_names_the_states(membership, panel):
    from ddc.outofcore import sufficient_statistics

    data = panel.copy()
    i = data.index[(data.customer_id == 7) & (data.month == 5)][0]
    data.loc[i, "market"] = (data.loc[i, "market"] + 1) % 3
    with pytest.raises(PanelError, match=r"probability 0.*state \(market=\d.*-> next state "
                                         r"\(market=\d.*zero in: market"):
        NFXP(membership).fit(sufficient_statistics(membership, data))


# ------------------------------------------------------------------ stages and starting values
def test_stage_three_does_not_run_after_stage_two_failed(bus_data):
    bus = ddc.models.rust_bus(90)
    with pytest.warns(ddc.ConvergenceWarning, match="NFXP did not converge"):
        res = NFXP(bus, optimizer=Optimizer(max_iter=2)).fit(bus_data)
    assert not res.converged and "optimizer" in res.convergence.failed
    assert any("stage 3 (full information) was not run" in n for n in res.notes)
    head = "\n".join(str(res.summary()).splitlines()[:3])
    assert "Converged:" in head and "NO (optimizer" in head
    assert list(res.params.index) == ["RC", "theta_11"]  # transitions held at stage 1


def test_far_start_never_raises_a_raw_linalg_error(bus_data):
    bus = ddc.models.rust_bus(90)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ddc.ConvergenceWarning)
        try:
            res = NFXP(bus).fit(bus_data, start={"RC": 1e4})
        except ddc.ConvergenceError as exc:  # a named failure is fine; a raw one is not
            assert "NFXP" in str(exc)
        else:
            assert res.converged == bool(res.extra["convergence"])
            if not res.converged:
                assert res.extra["convergence"].failed


@pytest.mark.parametrize("start, error, match", [
    pytest.param(np.zeros(3), ValueError, r"start has 3 value\(s\).*one per utility parameter \(6",
                 id="short-array"),
    pytest.param([0.0] * 7, ValueError, r"start has 7 value\(s\)", id="long-list"),
    pytest.param({"theta_bogus": 1.0}, KeyError, "unknown starting value", id="unknown-name"),
    pytest.param({"theta_0": "x"}, ValueError, "must be numbers", id="not-a-number"),
    pytest.param("zeros", TypeError, "must be a Series or mapping", id="string"),
])
def test_starting_values_of_the_wrong_length_or_names_are_refused(start, error, match,
                                                                  membership, panel):
    with pytest.raises(error, match=match):
        NFXP(membership).fit(panel, start=start)


def test_a_full_array_of_starting_values_is_taken(membership, panel):
    res = NFXP(membership).fit(panel, start=membership.true_params[membership.utility_params]
                               .to_numpy())
    assert res.converged


def test_six_item_list_for_the_bus_is_refused_by_length(bus_data):
    with pytest.raises(ValueError, match=r"start has 6 value\(s\).*\(2: \['RC', 'theta_11'\]\)"):
        NFXP(ddc.models.rust_bus(90)).fit(bus_data, start=[1.0] * 6)


@pytest.mark.parametrize("estimator", [CCP, NPL, PQR], ids=lambda e: e.__name__)
def test_estimators_without_starting_values_refuse_them(estimator, membership, panel):
    with pytest.raises(TypeError, match="takes no starting values"):
        estimator(membership).fit(panel, start={"theta_0": 1.0})


# ------------------------------------------------------------------ several starting values
def test_starts_reaching_one_optimum_say_so(membership, panel):
    truth = membership.true_params[membership.utility_params]
    res = NFXP(membership).fit(panel, starts=[None, truth, truth * 0.5])
    table = res.extra["starts"]
    assert len(table) == 3 and res.converged
    assert any(n == "all 3 of 3 starting values reached the same optimum" for n in res.notes)
    np.testing.assert_allclose(table["objective"], table["objective"].max(), rtol=1e-8)


class _TwoOptima(Estimator):
    """A stand-in whose objective has two local maxima: x = -1 (value 0) and x = 2 (value 1)."""

    name, key, takes_start, needs_rows = "TwoOptima", "", True, False

    def _estimate(self, prep, params):
        x0 = float(params.iloc[0])
        x = 2.0 if x0 > 0.5 else -1.0
        p = params.copy()
        p.iloc[0] = x
        return Fit(p, 1.0 if x > 0 else 0.0, np.zeros(1), True, "stand-in")

    def _inference(self, prep, fit):
        names = [self.model.utility_params[0]]
        return Inference(names, -np.eye(1), fit.objective, {"choice": fit.objective})


def test_starts_reaching_different_optima_warn_and_keep_the_best(membership, panel):
    est = _TwoOptima(membership)
    first = membership.utility_params[0]
    with pytest.warns(ddc.ConvergenceWarning, match="ended at 2 different points"):
        res = est.fit(panel, starts=[{first: 0.0}, {first: 1.0}])
    assert res.params[first] == 2.0 and res.extra["starts"].shape[0] == 2


# ------------------------------------------------------------------ the registry
def test_one_registry_of_estimators():
    assert {"nfxp": NFXP, "ccp": CCP, "npl": NPL, "pqr": PQR, "maxent": MaxEntIRL}.items() \
        <= ESTIMATORS.items()
    assert get_estimator("MaxEntIRL") is MaxEntIRL and get_estimator("NFXP") is NFXP
    with pytest.raises(KeyError, match="registered"):
        get_estimator("gmm")
    assert list(ESTIMATORS)[:5] == ["nfxp", "ccp", "npl", "pqr", "maxent"]


def test_command_line_and_cross_validation_read_the_registry(monkeypatch):
    from estimators.crossval import DEFAULT_ESTIMATORS
    from simulations.cli import _estimator_class

    assert DEFAULT_ESTIMATORS == tuple(c.name for c in ESTIMATORS.values())
    assert all(_estimator_class(k) is cls for k, cls in ESTIMATORS.items())
    # the command line keeps no list of its own: a key added to the registry is reachable
    monkeypatch.setitem(ESTIMATORS, "mine", NPL)
    assert _estimator_class("mine") is NPL


# ------------------------------------------------------------------ column mapping
def test_fit_takes_the_column_mapping(membership, panel):
    renamed = panel.rename(columns={"customer_id": "cid", "month": "t"})
    a = CCP(membership).fit(panel)
    b = CCP(membership).fit(renamed, id_col="cid", time_col="t")
    np.testing.assert_allclose(b.params, a.params, rtol=0, atol=1e-12)


class _Singular(_TwoOptima):
    """A stand-in whose estimation step hits a singular matrix inside numpy."""

    def _estimate(self, prep, params):
        np.linalg.solve(np.zeros((2, 2)), np.ones(2))


def test_numerical_library_errors_become_named_convergence_errors(membership, panel):
    with pytest.raises(ddc.ConvergenceError, match=r"TwoOptima failed in its estimation step "
                                                   r"\(numpy.linalg.LinAlgError: Singular"):
        _Singular(membership).fit(panel)


class _FailsFromOne(_TwoOptima):
    """A stand-in that hits a singular matrix from starts above 0.5, else reaches x = -1."""

    def _estimate(self, prep, params):
        if float(params.iloc[0]) > 0.5:
            np.linalg.solve(np.zeros((2, 2)), np.ones(2))
        return super()._estimate(prep, params)


def test_a_start_that_fails_is_recorded_and_the_others_kept(membership, panel):
    first = membership.utility_params[0]
    res = _FailsFromOne(membership).fit(panel, starts=[{first: 0.0}, {first: 1.0}])
    assert res.params[first] == -1.0
    assert np.isnan(res.extra["starts"].loc[1, "objective"])
    assert any("1 start(s) failed" in n for n in res.notes)
    with pytest.raises(ddc.ConvergenceError, match="every one of the 2 starting values"):
        _FailsFromOne(membership).fit(panel, starts=[{first: 1.0}, {first: 2.0}])


def test_fit_maps_state_and_extra_columns(bus_data):
    """The column mapping reaches the state variables (through the panel layer) and the extra
    columns a transition family reads (Rust's increments): same estimate under other names."""
    bus = ddc.models.rust_bus(90)
    names = {"bus_id": "unit", "month": "t", "action": "d", "mileage": "x", "increment": "inc"}
    a = NFXP(bus).fit(bus_data)
    b = NFXP(bus).fit(bus_data.rename(columns=names), id_col="unit", time_col="t",
                      action_col="d", columns={"mileage": "x", "increment": "inc"})
    np.testing.assert_allclose(b.params, a.params, rtol=0, atol=1e-10)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-8)
    with pytest.raises(KeyError, match=r"columns=\{'increment': 'bins'\}: no such column"):
        NFXP(bus).fit(bus_data, columns={"increment": "bins"})
