"""Property-based and fuzz tests (hypothesis).

Random small models go through solve and simulate; random corruptions of panels, saved results
and data files go through the public entry points. The properties:

* a solution is a probability distribution over the feasible actions in every state, its values
  are finite and it satisfies the Bellman equation, whatever the solver method;
* a public entry point either gives the same answer as on clean input or raises a *named* error:
  an exception raised by the package's own code (not a raw numpy/pandas/scipy exception from
  deep inside a library) with a message.

The default profile ("fast", a few seconds) runs in the default test run; the ``slow`` marker runs
the same properties with many more examples (``HYPOTHESIS_PROFILE`` is not needed: the slow tests
set their own settings).
"""

from __future__ import annotations

import json
import os
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ddc
from ddc.kernels.bellman_numpy import bellman
from simulations import simulate

PACKAGES = ("ddc", "estimators", "simulations")
FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def raised_by_package(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the package's own code, with a message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or not str(exc).strip():
        return False
    path = Path(frames[-1].filename).resolve().parts
    return any(p in PACKAGES for p in path[-3:-1])


# ------------------------------------------------------------------------------- random models
@st.composite
def small_models(draw) -> tuple[ddc.Model, np.ndarray]:
    """A random model with 1-2 state variables of 1-3 values, 1-3 actions, random feasibility,
    random factored transitions (with structural zeros) and linear utility, and parameters."""
    n_vars = draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 3)) for _ in range(n_vars)]
    A = draw(st.integers(1, 3))
    K = draw(st.integers(1, 2))
    beta = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.9999]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    variables = [ddc.StateVariable(f"x{i}", tuple(range(n))) for i, n in enumerate(sizes)]
    S = int(np.prod(sizes))
    factors = []
    for v, n in zip(variables, sizes, strict=True):
        T = rng.dirichlet(np.ones(n), size=(A, n))
        T[rng.random((A, n, n)) < 0.3] = 0.0  # structural zeros
        empty = T.sum(axis=2) == 0
        T[empty, 0] = 1.0
        T /= T.sum(axis=2, keepdims=True)
        factors.append(ddc.Factor(v.name, T, given=("action", v.name)))
    feasible = rng.random((S, A)) < 0.8
    feasible[np.arange(S), rng.integers(0, A, S)] = True
    X = rng.normal(size=(S, A, K))
    model = ddc.Model(variables, [f"a{j}" for j in range(A)],
                      ddc.LinearUtility(X, [f"t{k}" for k in range(K)]),
                      ddc.FactoredTransitions(factors), beta=beta, feasible=feasible,
                      name="random")
    theta = rng.normal(scale=2.0, size=K)
    return model, theta


@pytest.mark.parametrize("method", ["newton_kantorovich", "policy_iteration",
                                    "successive_approximation"])
@FAST
@given(case=small_models())
def test_random_models_solve_to_a_logit_fixed_point(case, method):
    model, theta = case
    if method == "successive_approximation" and model.beta > 0.99:
        return  # contraction at 0.9999 needs ~10^5 steps: covered by the other methods
    sol = model.solve(theta, solver=ddc.Solver(method, on_failure="raise"))
    ccp = sol.ccp.to_numpy()
    assert np.all(np.isfinite(ccp)) and np.all(np.isfinite(sol.value.to_numpy()))
    np.testing.assert_allclose(ccp.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(ccp[~model.feasible] == 0.0)
    assert np.all(ccp >= 0.0)
    # the Bellman equation, checked by the NumPy twin of the operator
    V = sol.value.to_numpy()
    _, TV, _ = bellman(V, model.utilities(theta), model.feasible, model.beta,
                       model.compiled_transitions())
    scale = max(1.0, float(np.abs(V).max()))
    assert np.max(np.abs(TV - V)) <= 1e-8 * scale


@FAST
@given(case=small_models(), n=st.integers(1, 5), T=st.integers(1, 4))
def test_simulate_never_raises_a_foreign_error(case, n, T):
    model, theta = case
    try:
        panel = simulate(model, theta, n_customers=n, n_periods=T, seed=0)
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions
        assert raised_by_package(exc), f"foreign error: {type(exc).__name__}: {exc}"
        return
    assert len(panel) == n * T
    codes = panel["action"].map({a: i for i, a in enumerate(model.actions)})
    assert codes.notna().all()


# ------------------------------------------------------------------------------- panels
@pytest.fixture(scope="module")
def bus_panel():
    bus = ddc.models.rust_bus(n_states=20, beta=0.95)
    truth = bus.params_series({"RC": 3.0, "theta_11": 20.0})
    from simulations.studies import add_bus_increments

    panel = simulate(bus, truth, n_customers=60, n_periods=30, seed=3)
    return bus, add_bus_increments(panel, bus)


CORRUPTIONS = ["drop_column", "nan_cell", "out_of_range", "string_cell", "duplicate_row",
               "shuffle_rows", "float_cell", "negative_time", "unknown_action"]


def corrupt(frame: pd.DataFrame, how: str, rng: np.random.Generator) -> pd.DataFrame:
    df = frame.copy()
    i = int(rng.integers(len(df)))
    if how == "drop_column":
        return df.drop(columns=str(rng.choice(["mileage", "action", "bus_id", "month"])))
    if how == "nan_cell":
        col = str(rng.choice(["mileage", "action"]))
        df[col] = df[col].astype(object)
        df.iloc[i, df.columns.get_loc(col)] = np.nan
    elif how == "out_of_range":
        df.iloc[i, df.columns.get_loc("mileage")] = 10_000
    elif how == "string_cell":
        df["mileage"] = df["mileage"].astype(object)
        df.iloc[i, df.columns.get_loc("mileage")] = "ten"
    elif how == "duplicate_row":
        df = pd.concat([df, df.iloc[[i]]], ignore_index=True)
    elif how == "shuffle_rows":
        df = df.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
    elif how == "float_cell":
        df["mileage"] = df["mileage"].astype(float)
        df.iloc[i, df.columns.get_loc("mileage")] = 2.5
    elif how == "negative_time":
        df.iloc[i, df.columns.get_loc("month")] = -7
    elif how == "unknown_action":
        df["action"] = df["action"].astype(object)
        df.iloc[i, df.columns.get_loc("action")] = "sell"
    return df


def _fit_params(model, data):
    from estimators import NFXP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = NFXP(model, full_information=False).fit(data)
    return res.params


@pytest.fixture(scope="module")
def bus_clean_params(bus_panel):
    bus, panel = bus_panel
    return _fit_params(bus, panel)


@FAST
@given(how=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 10_000))
def test_corrupted_panels_give_a_named_error_or_the_same_answer(bus_panel, bus_clean_params,
                                                                how, seed):
    bus, panel = bus_panel
    bad = corrupt(panel, how, np.random.default_rng(seed))
    try:
        params = _fit_params(bus, bad)
    except Exception as exc:  # noqa: BLE001
        assert raised_by_package(exc), f"{how}: foreign error {type(exc).__name__}: {exc}"
        return
    # accepted: then it must be the same answer (a harmless change such as row order)
    np.testing.assert_allclose(params.to_numpy(), bus_clean_params.to_numpy(), rtol=1e-6,
                               err_msg=f"{how} changed the estimates without an error")


# ------------------------------------------------------------------------------- saved results
@pytest.fixture(scope="module")
def saved_results(tmp_path_factory, bus_panel):
    from estimators import NFXP

    bus, panel = bus_panel
    res = NFXP(bus, full_information=False).fit(panel)
    path = tmp_path_factory.mktemp("res") / "results.json"
    res.save(path)
    return res, path


def _mutate_json(text: str, rng: np.random.Generator, how: str) -> str:
    obj = json.loads(text)

    def leaves(o, prefix=()):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from leaves(v, (*prefix, k))
        elif isinstance(o, list):
            for k, v in enumerate(o):
                yield from leaves(v, (*prefix, k))
        else:
            yield prefix

    paths = [p for p in leaves(obj) if p]
    path = paths[int(rng.integers(len(paths)))]
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if how == "null":
        parent[key] = None
    elif how == "string":
        parent[key] = "garbage"
    elif how == "delete" and isinstance(parent, dict):
        del parent[key]
    elif how == "number":
        parent[key] = 1e300
    else:
        return text[: int(rng.integers(1, len(text)))]  # truncated file
    return json.dumps(obj)


@FAST
@given(how=st.sampled_from(["null", "string", "delete", "number", "truncate"]),
       seed=st.integers(0, 10_000))
def test_corrupted_results_json_gives_a_named_error_or_the_same_answer(saved_results, tmp_path,
                                                                       how, seed):
    from estimators import load_results

    res, path = saved_results
    bad = tmp_path / f"bad-{how}-{seed}.json"
    bad.write_text(_mutate_json(path.read_text(), np.random.default_rng(seed), how))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load_results(bad)
        params, cov = loaded.params, loaded.cov
    except Exception as exc:  # noqa: BLE001
        assert raised_by_package(exc), f"{how}: foreign error {type(exc).__name__}: {exc}"
        return
    # a change to a field the results do not depend on is fine; the estimates must not change
    # silently (a changed parameter, covariance entry or NaN would be a different answer)
    pd.testing.assert_series_equal(params, res.params, check_names=False)
    np.testing.assert_array_equal(np.asarray(cov), np.asarray(res.cov))


# ------------------------------------------------------------------------------- data files
@FAST
@given(seed=st.integers(0, 10_000), how=st.sampled_from(["cut_after_comma", "letter",
                                                         "drop_field", "empty", "header_only"]))
def test_structurally_broken_csv_gives_a_named_error(bus_panel, tmp_path, seed, how):
    """A CSV file that cannot hold a valid panel (no rows, a row with too few fields, a letter in
    a numeric column, a file cut inside a row) is refused by a named error. (A digit changed into
    another digit is a different valid file: CSV has no checksum, so no reader can tell.)"""
    bus, panel = bus_panel
    text = panel.to_csv(index=False)
    rng = np.random.default_rng(seed)
    lines = text.splitlines()
    k = int(rng.integers(1, len(lines)))
    if how == "cut_after_comma":
        text = "\n".join(lines[:k]) + "\n" + lines[k][: lines[k].index(",") + 1]
    elif how == "letter":
        fields = lines[k].split(",")
        j = int(rng.integers(len(fields)))
        fields[j] = fields[j][:-1] + "x" if fields[j] else "x"
        lines[k] = ",".join(fields)
        text = "\n".join(lines) + "\n"
    elif how == "drop_field":
        lines[k] = ",".join(lines[k].split(",")[:-1])
        text = "\n".join(lines) + "\n"
    elif how == "header_only":
        text = lines[0] + "\n"
    else:
        text = ""
    path = tmp_path / f"panel-{how}-{seed}.csv"
    path.write_text(text)
    with pytest.raises(Exception) as info:  # noqa: B017 - which exception is the property
        _fit_params(bus, _read_panel_file(path))
    assert raised_by_package(info.value), \
        f"{how}: foreign error {type(info.value).__name__}: {info.value}"
    assert path.name in str(info.value), \
        f"{how}: the error does not name the file: {info.value}"


def _read_panel_file(path: os.PathLike):
    """The package's own reader of panel files: out-of-core sufficient statistics."""
    from ddc.outofcore import sufficient_statistics

    return sufficient_statistics(ddc.models.rust_bus(n_states=20, beta=0.95), path,
                                 progress=False)


# ------------------------------------------------------------------------------- slow profile
@pytest.mark.slow
@SLOW
@given(case=small_models())
def test_random_models_solve_slow_profile(case):
    test_random_models_solve_to_a_logit_fixed_point.hypothesis.inner_test(case,
                                                                         "newton_kantorovich")


@pytest.mark.slow
@SLOW
@given(case=small_models(), n=st.integers(1, 5), T=st.integers(1, 4))
def test_simulate_slow_profile(case, n, T):
    test_simulate_never_raises_a_foreign_error.hypothesis.inner_test(case, n, T)
