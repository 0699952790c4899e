"""Monte Carlo runner (simulations.montecarlo) and the Su-Judd study (simulations.studies).

Reproducibility is the contract tested most: the same seed gives the same table (all but the
``seconds`` column) serially, in a process pool and on a dask.distributed LocalCluster (one
module-scoped cluster of two worker processes). Failures are recorded, not raised. The summary's
statistics are checked against hand computations on a constructed table, and the simulated bus
increments against the design's probabilities (multinomial standard errors).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import ddc
from estimators import CCP, NFXP, NPL
from simulations import simulate
from simulations.cli import main as cli
from simulations.montecarlo import (
    TABLE_COLUMNS,
    MonteCarloResults,
    monte_carlo,
    replication_seed,
)
from simulations.studies import (
    SU_JUDD,
    add_bus_increments,
    su_judd,
    su_judd_model,
    su_judd_starts,
)

N_CUSTOMERS, N_PERIODS, REPS, SEED = 250, 10, 3, 11


@pytest.fixture(scope="module")
def membership():
    return ddc.models.membership()


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def serial_run(membership):
    return monte_carlo(membership, membership.true_params, [NFXP, CCP], reps=REPS,
                       n_customers=N_CUSTOMERS, n_periods=N_PERIODS, seed=SEED, progress=False)


# ---------------------------------------------------------------------------- seeds, schedulers


def test_replication_seed_is_the_spawned_child():
    for seed in (0, 12345, np.random.SeedSequence(7, spawn_key=(2,))):
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        children = root.spawn(5)
        for r in (0, 3):
            a = np.random.default_rng(replication_seed(seed, r)).random(4)
            b = np.random.default_rng(children[r]).random(4)
            np.testing.assert_array_equal(a, b)


def test_serial_table_layout(serial_run, membership):
    t = serial_run.table
    assert list(t.columns) == TABLE_COLUMNS
    K = len(membership.utility_params)
    assert len(t) == REPS * 2 * K
    assert t["error"].eq("").all() and t["converged"].all()
    assert list(dict.fromkeys(t["estimator"])) == ["NFXP", "CCP"]
    assert t["start"].isna().all()
    np.testing.assert_array_equal(t["truth"].to_numpy(),
                                  membership.true_params[t["param"]].to_numpy())
    # each replication is the panel simulated with its own seed: rerun replication 1 alone
    panel = simulate(membership, membership.true_params, N_CUSTOMERS, N_PERIODS,
                     seed=replication_seed(SEED, 1))
    with np.errstate(all="warn", under="ignore"):
        res = NFXP(membership).fit(panel)
    got = t[(t["rep"] == 1) & (t["estimator"] == "NFXP")].set_index("param")["estimate"]
    np.testing.assert_allclose(got[res.params.index].to_numpy(), res.params.to_numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("scheduler", ["processes", "dask"])
def test_same_seed_same_table_on_every_scheduler(serial_run, membership, dask_client,
                                                 scheduler):
    sched = dask_client if scheduler == "dask" else scheduler
    mc = monte_carlo(membership, membership.true_params, [NFXP, CCP], reps=REPS,
                     n_customers=N_CUSTOMERS, n_periods=N_PERIODS, seed=SEED, scheduler=sched,
                     n_workers=2, progress=False)
    pd.testing.assert_frame_equal(mc.table.drop(columns="seconds"),
                                  serial_run.table.drop(columns="seconds"))


def test_dask_scheduler_address(membership, dask_client):
    """A 'tcp://' address string connects to a running scheduler."""
    address = dask_client.scheduler.address
    mc = monte_carlo(membership, membership.true_params, {"CCP": CCP}, reps=2,
                     n_customers=N_CUSTOMERS, n_periods=N_PERIODS, seed=3, scheduler=address,
                     progress=False)
    assert mc.config["scheduler"] == "dask"
    assert mc.table["converged"].all()


# ---------------------------------------------------------------------------- failures


class Exploding:
    """An estimator whose fit raises on every data set with an odd number of annual choices."""

    name = "Exploding"

    def __init__(self, model):
        self.model = model

    def fit(self, data):
        if int((data["action"] == "annual").sum()) % 2:
            raise ValueError("boom: odd number of annual choices")
        return CCP(self.model).fit(data)


def _bad_prepare(panel, model):
    if panel["customer_id"].nunique() > 0:
        raise RuntimeError("no increments here")
    return panel


def test_failed_fits_are_recorded_not_raised(membership):
    mc = monte_carlo(membership, membership.true_params, {"X": Exploding, "CCP": CCP}, reps=4,
                     n_customers=N_CUSTOMERS, n_periods=N_PERIODS, seed=SEED, progress=False)
    failures = mc.failures
    assert len(failures) >= 1 and (failures["estimator"] == "X").all()
    assert failures["error"].str.startswith("ValueError: boom").all()
    assert mc.table.loc[mc.table["error"] != "", "param"].isna().all()
    s = mc.summary()
    n_failed = len(failures)
    assert s.loc[("X", "theta_0"), "failed"] == n_failed
    assert s.loc[("X", "theta_0"), "convergence_rate"] == pytest.approx(1 - n_failed / 4)
    assert s.loc[("X", "theta_0"), "n"] == 4 - n_failed
    assert s.loc[("CCP", "theta_0"), "n"] == 4


def test_failed_simulation_is_recorded(membership):
    mc = monte_carlo(membership, membership.true_params, [CCP], reps=2, n_customers=20,
                     n_periods=3, seed=0, prepare=_bad_prepare, progress=False)
    assert len(mc.failures) == 2
    assert mc.failures["error"].str.contains("simulation failed: RuntimeError").all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [pytest.param({"scheduler": "threads"}, ValueError, "unknown scheduler 'threads'",
                  id="scheduler"),
     pytest.param({"estimators": [NFXP, NFXP]}, ValueError, "two estimators are named 'NFXP'",
                  id="duplicate-names"),
     pytest.param({"estimators": {"x": 3}}, TypeError, "not callable", id="not-callable"),
     pytest.param({"reps": 0}, ValueError, "reps must be a positive integer", id="reps"),
     pytest.param({"seed": None}, TypeError, "seed must be an integer", id="seed"),
     pytest.param({"starts": [{"RC": 1.0}]}, KeyError, "unknown parameter", id="starts")],
)
def test_bad_arguments(membership, kwargs, error, match):
    args = dict(model=membership, truth=membership.true_params, estimators=[CCP], reps=1,
                n_customers=10, n_periods=2, seed=0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        monte_carlo(**args)


def test_estimator_names_from_classes_and_partials(membership):
    mc = monte_carlo(membership, membership.true_params,
                     [functools.partial(NPL, tol=1e-8), CCP], reps=1, n_customers=N_CUSTOMERS,
                     n_periods=N_PERIODS, seed=1, progress=False)
    assert mc.config["estimators"] == ["NPL", "CCP"]


# ---------------------------------------------------------------------------- the summary


def constructed() -> MonteCarloResults:
    """Two replications x two starts of one estimator with known numbers."""
    rows = []
    # rep 0: start 1 has the higher log-likelihood; rep 1: start 0 converged only
    for rep, start, est, se, ll, conv in [(0, 0, 1.0, 0.5, -10.0, True),
                                          (0, 1, 2.0, 0.5, -5.0, True),
                                          (1, 0, 4.0, 1.0, -7.0, True),
                                          (1, 1, 9.0, 1.0, -1.0, False)]:
        rows.append({"rep": rep, "estimator": "E", "start": start, "param": "b",
                     "estimate": est, "std_error": se, "truth": 3.0, "converged": conv,
                     "loglik": ll, "iterations": 1, "seconds": 1.0 + rep, "error": "",
                     "warnings": ""})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["start"] = table["start"].astype("Int64")
    return MonteCarloResults(table=table, truth=pd.Series({"b": 3.0}))


def test_summary_by_hand():
    s = constructed().summary().loc[("E", "b")]
    est = np.array([2.0, 4.0])  # best converged start of each replication
    se = np.array([0.5, 1.0])
    assert s["n"] == 2
    assert s["mean"] == pytest.approx(3.0)
    assert s["bias"] == pytest.approx(0.0)
    assert s["rmse"] == pytest.approx(1.0)
    assert s["sd"] == pytest.approx(est.std(ddof=1))
    assert s["mean_se"] == pytest.approx(0.75)
    assert s["se_ratio"] == pytest.approx(0.75 / est.std(ddof=1))
    assert s["coverage"] == pytest.approx(np.mean(np.abs(est - 3.0) <= 1.959963984540054 * se))
    assert s["convergence_rate"] == pytest.approx(0.75)
    assert s["fits"] == 4
    assert s["median_seconds"] == pytest.approx(1.5)


def test_summary_counts_what_it_leaves_out():
    """Replication 0 converges with both parameters; 1 converges but holds 'b' (a boundary
    fallback: no row for it, and the ``fallback`` column says why); 2 does not converge; 3
    fails. The summary of 'b' uses one of four replications and says why the other three are
    left out; the fallback is counted for the estimator."""
    rows = []

    def row(rep, param, est, conv=True, error="", fallback=""):
        rows.append({"rep": rep, "estimator": "E", "start": None, "param": param,
                     "estimate": est, "std_error": 0.5, "truth": 1.0 if param else np.nan,
                     "converged": conv, "loglik": -1.0, "iterations": 1, "seconds": 1.0,
                     "error": error, "warnings": "", "fallback": fallback})

    row(0, "a", 1.1), row(0, "b", 0.9)
    row(1, "a", 1.2, fallback="fell back to two-step because b is on the boundary")
    row(2, "a", 9.0, conv=False), row(2, "b", 9.0, conv=False)
    row(3, None, np.nan, conv=False, error="ValueError: boom")
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["start"] = table["start"].astype("Int64")
    mc = MonteCarloResults(table=table, truth=pd.Series({"a": 1.0, "b": 1.0}),
                           config={"reps": 4})
    s = mc.summary()
    assert s.loc[("E", "a"), ["n", "excluded", "excluded_failed", "excluded_not_converged",
                              "excluded_held"]].tolist() == [2, 2, 1, 1, 0]
    assert s.loc[("E", "b"), ["n", "excluded", "excluded_failed", "excluded_not_converged",
                              "excluded_held"]].tolist() == [1, 3, 1, 1, 1]
    assert s.loc[("E", "b"), "mean"] == pytest.approx(0.9)
    text = mc.exclusions()
    assert "E b: 3 of 4 replications left out (1 failed, 1 not converged, 1 converged with " \
           "the parameter held" in text
    # the fallback of replication 1 is counted (it is among those summarised for 'a')
    assert (s.loc["E", "fell_back"] == 1).all()
    assert "E: 1 of 4 replications summarised fell back" in text


def test_summary_when_every_fit_failed(membership):
    mc = monte_carlo(membership, membership.true_params, [CCP], reps=2, n_customers=20,
                     n_periods=3, seed=0, prepare=_bad_prepare, progress=False)
    s = mc.summary()  # no KeyError
    assert list(s.index.get_level_values("param")) == list(membership.true_params.index)
    assert (s["n"] == 0).all() and (s["excluded_failed"] == 2).all()
    assert s["mean"].isna().all()
    assert "2 of 2 replications left out (2 failed" in mc.exclusions()


def test_save_table(tmp_path, serial_run):
    path = serial_run.save(tmp_path / "mc.csv")
    back = pd.read_csv(path, keep_default_na=False, na_values={"estimate": [""]})
    assert len(back) == len(serial_run.table)
    with pytest.raises(ValueError, match="give a .csv or .parquet"):
        serial_run.save(tmp_path / "mc.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc.csv"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "mc.csv"
    code = cli(["montecarlo", "--model", "membership", "--reps", "2", "--n-customers", "200",
               "--n-periods", "8", "--estimators", "ccp", "--no-progress", "--out",
               str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "MonteCarloResults('membership': 2 replications" in text and "theta_0" in text
    assert out.exists() and (tmp_path / "mc_summary.csv").exists()


# ---------------------------------------------------------------------------- Su-Judd design


def test_su_judd_model_is_the_design():
    m = su_judd_model(0.985)
    assert m.n_states == 175 and m.beta == 0.985
    assert m.true_params["RC"] == SU_JUDD["RC"] and m.true_params["theta_11"] == 2.4569
    probs = m.transitions(m.true_params).factors[0].table[0, 0, :5]
    np.testing.assert_allclose(probs, SU_JUDD["theta_3"], atol=1e-15)
    assert su_judd_starts(5)[0] == {"RC": 4.0, "theta_11": 1.0}
    assert su_judd_starts(5)[-1] == {"RC": 8.0, "theta_11": 5.0}


def test_simulated_increments_have_the_design_frequencies():
    """The increments recovered from consecutive mileage are multinomial(theta_3): each
    frequency within 4 multinomial standard errors of its probability."""
    m = su_judd_model(0.975)
    panel = add_bus_increments(simulate(m, m.true_params, 400, 60, seed=3), m)
    inc = panel["increment"].dropna().to_numpy(dtype=int)
    n = len(inc)
    freq = np.bincount(inc, minlength=5) / n
    p = np.asarray(SU_JUDD["theta_3"])
    z = (freq - p) / np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(z) < 4), z
    # and the replace rows' increment is the next month's bin
    rep = panel[(panel["action"] == "replace") & panel["increment"].notna()]
    nxt = panel["mileage"].shift(-1)[rep.index]
    np.testing.assert_array_equal(rep["increment"].to_numpy(dtype=int), nxt.to_numpy(int))


def test_su_judd_tiny():
    res = su_judd(betas=(0.975,), n_datasets=2, n_starts=2, progress=False)
    mc = res.results[0.975]
    assert mc.config["n_customers"] == 50 and mc.config["n_periods"] == 120
    runs = mc.runs()
    full = runs[runs["estimator"] == "NFXP"]
    assert len(full) == 4 and full["start"].tolist() == [0, 1, 0, 1]
    table = res.table()
    assert {"convergence_rate", "RC_mean", "theta_11_sd", "RC_excluded",
            "seconds_median"} <= set(table.columns)
    best = mc.best()
    for est in ("NFXP", "NFXP-2step"):
        used = int(((best["estimator"] == est) & (best["param"] == "RC")).sum())
        assert table.loc[(0.975, est), "RC_excluded"] == 2 - used
    assert res.published()["MPEC/AMPL"] == 0.13
    ok = mc.best()
    ok = ok[ok["estimator"] == "NFXP-2step"].set_index(["rep", "param"])["estimate"]
    assert len(ok) == 4  # RC and theta_11 of two data sets (transitions: first stage)
    # every bus starts with a new engine
    # (the estimates are checked for plausibility only: two data sets)
    assert ok.xs("RC", level="param").between(5, 25).all()


def test_out_of_core_reduction_on_dask_twice(dask_client, membership, tmp_path):
    """The distributed path of ddc.outofcore, twice on one client (the shared model must not be
    released under the second call)."""
    from ddc.outofcore import SufficientStatistics, sufficient_statistics
    from ddc.panel import Panel
    from simulations.outofcore import write_panel_parquet

    out = write_panel_parquet(membership, membership.true_params, tmp_path / "p.parquet", 300,
                              10, seed=1, row_group_rows=700)
    ref = SufficientStatistics.from_panel(Panel(membership, pd.read_parquet(out.path)))
    for _ in range(2):
        st = sufficient_statistics(membership, out.path, chunk_rows=500, task_rows=1_400,
                                   scheduler=dask_client)
        np.testing.assert_array_equal(st.counts, ref.counts)
        np.testing.assert_array_equal(st.transition_counts.n, ref.transition_counts.n)


# ---------------------------------------------------------------------------- the executor


def test_models_pickle_and_travel(membership):
    """A model pickles (its cache of compiled transitions is rebuilt on load) and solves the
    same after the trip; a model whose transition function is a closure (the bus) travels by
    cloudpickle through ddc.executor.dumps."""
    import pickle

    from ddc.executor import cached_loads, dumps, loads

    back = pickle.loads(pickle.dumps(membership))
    np.testing.assert_array_equal(back.solve(back.true_params).ccp.to_numpy(),
                                  membership.solve(membership.true_params).ccp.to_numpy())
    bus = ddc.models.rust_bus(n_states=20)
    with pytest.raises((AttributeError, pickle.PicklingError), match="local object"):
        pickle.dumps(bus)
    pytest.importorskip("cloudpickle")
    blob = dumps(bus, "the bus")
    bus2 = loads(blob)
    np.testing.assert_allclose(bus2.compiled_transitions(bus.true_params).data,
                               bus.compiled_transitions(bus.true_params).data, rtol=0, atol=0)
    assert cached_loads(blob) is cached_loads(blob)


@pytest.mark.parametrize("scheduler", ["serial", "processes"])
def test_executor_runs_tasks_and_reports_errors(scheduler):
    from ddc.executor import executor

    with executor(scheduler, n_workers=2) as ex:
        futures = [ex.submit(divmod, 7, k) for k in (1, 2, 0)]
        done = {id(f): f for f in ex.as_completed(futures)}
        assert len(done) == 3
        assert futures[1].result() == (3, 1)
        assert isinstance(futures[2].exception(), ZeroDivisionError)
