"""Tests of the panel layer (ddc.panel): validation, coding and sufficient statistics.

Every statistic is checked against a brute-force count over the rows of small panels built by
hand or drawn with a seeded NumPy random walk on the model's own transitions (dense matrices from
``ddc.kernels.bellman_numpy``); every kind of bad input is checked to raise a ``PanelError`` whose
message names the fault.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc.kernels.bellman_numpy import transition_matrix
from ddc.panel import Columns, Panel, PanelError, TransitionCounts, prepare


@pytest.fixture(autouse=True)
def _raise_on_float_errors():
    with np.errstate(all="raise"):
        yield


@pytest.fixture(scope="module")
def membership():
    return ddc.models.membership()


@pytest.fixture(scope="module")
def bus():
    return ddc.models.rust_bus(n_states=10)


# ---------------------------------------------------------------------- panels
def hand_membership_frame() -> pd.DataFrame:
    """Three customers whose moves are all possible under the membership model."""
    rows = [
        # customer_id, month, market, plan, ship, video, action
        (10, 0, 0, "none", 0, 0, "none"),
        (10, 1, 0, "none", 1, 0, "monthly"),
        (10, 2, 0, "member", 2, 1, "annual"),
        (10, 3, 0, "annual_11", 2, 1, "annual"),
        (10, 4, 0, "annual_10", 1, 0, "annual"),
        (20, 5, 2, "member", 0, 0, "none"),
        (20, 6, 2, "none", 0, 1, "none"),
        (20, 7, 2, "none", 1, 1, "annual"),
        (20, 8, 2, "annual_11", 1, 1, "annual"),
        (30, 0, 1, "annual_1", 2, 0, "annual"),
        (30, 1, 1, "member", 2, 0, "monthly"),
    ]
    cols = ["customer_id", "month", "market", "plan", "ship", "video", "action"]
    return pd.DataFrame(rows, columns=cols)


def hand_bus_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "bus_id": [5, 5, 5, 5, 9, 9, 9],
        "group": [1, 1, 1, 1, 4, 4, 4],
        "month": [0, 1, 2, 3, 10, 11, 12],
        "mileage": [0, 1, 3, 3, 8, 9, 0],
        "action": ["keep", "keep", "keep", "keep", "keep", "replace", "keep"],
        "increment": pd.array([1, 2, 0, pd.NA, 1, 0, pd.NA], dtype="Int64"),
        "odometer": [0.0, 4000.0, 11000.0, 14000.0, 41000.0, 46000.0, 2000.0],
    })


def random_panel(model, n_units: int, n_periods: int, seed: int) -> pd.DataFrame:
    """A valid long panel: uniform choice among feasible actions, next states drawn from the
    model's (dense) transitions. Loops over periods only."""
    rng = np.random.default_rng(seed)
    ct = model.compiled_transitions()
    cum = np.stack([transition_matrix(ct, a) for a in range(model.n_actions)]).cumsum(axis=-1)
    S, A = model.n_states, model.n_actions
    s = rng.integers(0, S, n_units)
    states, actions = [], []
    for _ in range(n_periods):
        a = (model.feasible[s] * rng.random((n_units, A))).argmax(axis=1)
        states.append(s)
        actions.append(a)
        u = rng.random(n_units)
        s = np.minimum((cum[a, s] < u[:, None]).sum(axis=1), S - 1)
    st, ac = np.stack(states, axis=1).ravel(), np.stack(actions, axis=1).ravel()
    id_col = "bus_id" if model.name == "rust_bus" else "customer_id"
    df = pd.DataFrame({id_col: np.repeat(np.arange(100, 100 + n_units), n_periods),
                       "month": np.tile(np.arange(n_periods), n_units)})
    for name in model.space.names:
        df[name] = model.space.values_of(name)[st]
    df["action"] = np.asarray(model.actions, dtype=object)[ac]
    return df


def brute_codes(model, df: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """Flat state, action code and next flat state per row, by plain Python over rows."""
    space = model.space
    out = []
    for r in df.itertuples(index=False):
        d = r._asdict()
        s = sum(space.variables[j].code(d[n]) * int(space.strides[j])
                for j, n in enumerate(space.names))
        out.append((d[id_col], d["month"], s, model.action_code(d["action"])))
    coded = pd.DataFrame(out, columns=["id", "month", "s", "a"]).sort_values(["id", "month"])
    nxt = coded.groupby("id")["s"].shift(-1)
    coded["s_next"] = nxt.fillna(-1).astype(np.int64)
    return coded.reset_index(drop=True)


@pytest.fixture(scope="module")
def membership_random(membership):
    return random_panel(membership, n_units=60, n_periods=25, seed=1)


@pytest.fixture(scope="module")
def bus_random(bus):
    return random_panel(bus, n_units=30, n_periods=40, seed=2)


# ---------------------------------------------------------------------- coding
def test_hand_panel_coding(membership):
    df = hand_membership_frame()
    p = prepare(membership, df)
    space = membership.space
    expected = space.flat_index({n: df[n].to_numpy() for n in space.names})
    np.testing.assert_array_equal(p.state, expected)
    np.testing.assert_array_equal(p.action, [0, 1, 2, 2, 2, 0, 0, 2, 2, 2, 1])
    np.testing.assert_array_equal(p.next_state, np.r_[expected[1:5], -1, expected[6:9], -1,
                                                      expected[10], -1])
    np.testing.assert_array_equal(p.unit, [0] * 5 + [1] * 4 + [2] * 2)
    assert list(p.ids) == [10, 20, 30]
    np.testing.assert_array_equal(p.time, df["month"])
    np.testing.assert_array_equal(p.row, np.arange(11))
    for arr in (p.state, p.action, p.next_state, p.unit, p.time):
        assert arr.dtype == np.int64
        assert not arr.flags.writeable
    assert (p.nobs, p.n_units, p.n_periods, p.n_transitions) == (11, 3, 9, 8)
    assert len(p) == 11
    assert repr(p) == ("Panel('membership': 11 rows, 3 units (customer_id), months 0-8, "
                       "8 transitions; 234 states, 3 actions)")


def _plan_codes(df, model):
    df = df.copy()
    df["plan"] = [model.space.variable("plan").code(v) for v in df["plan"]]
    return df


def _action_codes(df, model):
    df = df.copy()
    df["action"] = [model.action_code(v) for v in df["action"]]
    return df


def _categorical(df, model):
    df = df.copy()
    for c in ("plan", "action", "ship"):
        df[c] = df[c].astype("category")
    # unused categories not in the model are fine
    df["plan"] = df["plan"].cat.add_categories(["annual_99"])
    return df


def _object(df, model):
    return df.astype({"plan": object, "action": object, "market": object})


def _float_codes(df, model):
    df = _action_codes(df, model).astype({"action": float, "ship": float, "month": float})
    return df


def _nullable(df, model):
    return _action_codes(df, model).astype({"action": "Int64", "month": "Int64", "ship": "Int64"})


def _shuffled(df, model):
    return df.sample(frac=1.0, random_state=3)


def _extra_columns(df, model):
    return df.assign(note="x", revenue=np.nan)


@pytest.mark.parametrize("transform", [
    pytest.param(_plan_codes, id="plan-as-integer-codes"),
    pytest.param(_action_codes, id="action-as-integer-codes"),
    pytest.param(_categorical, id="categorical-columns"),
    pytest.param(_object, id="object-columns"),
    pytest.param(_float_codes, id="float-whole-numbers"),
    pytest.param(_nullable, id="nullable-integer-columns"),
    pytest.param(_shuffled, id="shuffled-rows"),
    pytest.param(_extra_columns, id="extra-columns-ignored"),
])
def test_representations_code_alike(membership, membership_random, transform):
    reference = prepare(membership, membership_random)
    p = prepare(membership, transform(membership_random, membership))
    for name in ("state", "action", "next_state", "unit", "time"):
        np.testing.assert_array_equal(getattr(p, name), getattr(reference, name), err_msg=name)
    np.testing.assert_array_equal(p.counts, reference.counts)


def test_sorting_keeps_original_row_labels(membership):
    df = hand_membership_frame()
    df.index = [f"r{i}" for i in range(len(df))]
    shuffled = df.iloc[[10, 3, 0, 7, 1, 9, 2, 5, 4, 8, 6]]
    p = prepare(membership, shuffled)
    np.testing.assert_array_equal(p.row, df.index)
    np.testing.assert_array_equal(shuffled.index[p.position], df.index)
    pd.testing.assert_frame_equal(
        p.to_frame().drop(columns="customer_id").reset_index(drop=True),
        df.drop(columns="customer_id").reset_index(drop=True), check_dtype=False)


def test_bus_panel_with_data_columns(bus):
    p = prepare(bus, hand_bus_frame())
    assert (p.id_col, p.time_col) == ("bus_id", "month")
    np.testing.assert_array_equal(p.state, [0, 1, 3, 3, 8, 9, 0])
    np.testing.assert_array_equal(p.action, [0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(p.next_state, [1, 3, 3, -1, 9, 0, -1])


def test_explicit_and_fallback_columns(bus):
    df = hand_bus_frame().rename(columns={"bus_id": "engine", "month": "period"})
    p = prepare(bus, df, id_col="engine")
    assert (p.id_col, p.time_col) == ("engine", "period")
    df2 = hand_bus_frame().rename(columns={"bus_id": "id"})
    assert prepare(bus, df2).id_col == "id"


def test_string_ids_sorted(bus):
    df = hand_bus_frame()
    df["bus_id"] = df["bus_id"].map({5: "b", 9: "a"})
    p = prepare(bus, df)
    assert list(p.ids) == ["a", "b"]
    np.testing.assert_array_equal(p.state, [8, 9, 0, 0, 1, 3, 3])


# ---------------------------------------------------------------------- statistics
@pytest.mark.parametrize("which", ["membership", "bus"])
def test_counts_and_transition_counts_brute_force(request, which):
    model = request.getfixturevalue(which)
    df = request.getfixturevalue(f"{which}_random")
    id_col = "bus_id" if which == "bus" else "customer_id"
    p = prepare(model, df)
    coded = brute_codes(model, df, id_col)
    np.testing.assert_array_equal(p.state, coded["s"])
    np.testing.assert_array_equal(p.next_state, coded["s_next"])

    S, A = model.n_states, model.n_actions
    counts = np.zeros((S, A), dtype=np.int64)
    triples: dict[tuple[int, int, int], int] = {}
    for s, a, sn in coded[["s", "a", "s_next"]].itertuples(index=False):
        counts[s, a] += 1
        if sn >= 0:
            triples[(s, a, sn)] = triples.get((s, a, sn), 0) + 1
    np.testing.assert_array_equal(p.counts, counts)
    assert p.counts.dtype == np.int64 and p.counts.sum() == p.nobs

    tc = p.transition_counts
    assert isinstance(tc, TransitionCounts)
    got = {(int(s), int(a), int(sn)): int(n) for s, a, sn, n in zip(tc.s, tc.a, tc.s_next, tc.n,
                                                                     strict=True)}
    assert got == triples
    assert tc.total == p.n_transitions == len(df) - p.n_units
    keys = np.column_stack([tc.s, tc.a, tc.s_next])
    assert (np.diff(keys[:, 0] * A * S + keys[:, 1] * S + keys[:, 2]) > 0).all()  # sorted

    csr = tc.to_csr()
    assert csr.shape == (S * A, S) and csr.dtype == np.int64
    dense = np.zeros((S * A, S), dtype=np.int64)
    for (s, a, sn), n in triples.items():
        dense[s * A + a, sn] = n
    np.testing.assert_array_equal(csr.toarray(), dense)
    # rows of the count matrix add up to the (state, action) counts less each unit's last row
    last = coded.groupby("id").tail(1)
    last_counts = np.zeros(S * A, dtype=np.int64)
    np.add.at(last_counts, last["s"] * A + last["a"], 1)
    np.testing.assert_array_equal(np.asarray(csr.sum(axis=1)).ravel(),
                                  counts.reshape(-1) - last_counts)


def _with_next(df: pd.DataFrame, id_col: str, names: list[str]) -> pd.DataFrame:
    out = df.sort_values([id_col, "month"]).copy()
    for n in names:
        out[f"next_{n}"] = out.groupby(id_col)[n].shift(-1)
    return out.dropna(subset=[f"next_{n}" for n in names])


def test_factor_counts_membership_groupby(membership, membership_random):
    p = prepare(membership, membership_random)
    fc = p.factor_counts()
    assert list(fc) == ["plan", "ship", "video"]
    for name, factor in zip(fc, membership.transitions().factors, strict=True):
        assert fc[name].shape == factor.table.shape and fc[name].dtype == np.int64
        assert fc[name].sum() == p.n_transitions

    d = _with_next(membership_random, "customer_id", ["plan", "ship", "video"])
    d["a"] = d["action"].map({a: i for i, a in enumerate(membership.actions)})
    plans = membership.space.variable("plan").values
    d["plan_code"] = d["plan"].map(plans.index)
    d["next_plan_code"] = d["next_plan"].map(plans.index)
    for name, cur, nxt in [("ship", "ship", "next_ship"), ("video", "video", "next_video"),
                           ("plan", "plan_code", "next_plan_code")]:
        expected = np.zeros_like(fc[name])
        for (a, x, xn), n in d.groupby(["a", cur, nxt]).size().items():
            expected[int(a), int(x), int(xn)] = n
        np.testing.assert_array_equal(fc[name], expected, err_msg=name)


def test_factor_counts_give_frequency_estimates_of_bus_increments(bus, bus_random):
    p = prepare(bus, bus_random)
    fc = p.factor_counts(bus.true_params)["mileage"]
    assert fc.shape == (2, 10, 10)
    d = _with_next(bus_random, "bus_id", ["mileage"])
    expected = np.zeros_like(fc)
    for (a, x, xn), n in d.groupby(["action", "mileage", "next_mileage"]).size().items():
        expected[bus.actions.index(a), int(x), int(xn)] = n
    np.testing.assert_array_equal(fc, expected)


def test_factor_counts_need_factored_transitions():
    space = [ddc.StateVariable("x", (0, 1))]
    P = [np.array([[0.5, 0.5], [0.0, 1.0]]), np.eye(2)]
    model = ddc.Model(space, ["stay", "go"], ddc.LinearUtility(np.zeros((2, 2, 1)), ["t"]),
                      ddc.SparseTransitions(P), beta=0.9)
    df = pd.DataFrame({"id": [1, 1, 1], "period": [0, 1, 2], "x": [1, 0, 0],
                       "action": ["stay", "go", "stay"]})
    p = prepare(model, df)
    with pytest.raises(TypeError, match="factor_counts needs factored transitions.*Sparse"):
        p.factor_counts()
    # the probability check works on any transitions: 1 -> 0 under "stay" is impossible
    bad = p.impossible_transitions()
    assert len(bad) == 1 and bad.iloc[0]["first_row"] == 0
    assert bad.iloc[0]["zero_in"] == "x"


def test_loglik_choice_brute_force(membership, membership_random):
    p = prepare(membership, membership_random)
    rng = np.random.default_rng(5)
    logits = np.where(membership.feasible, rng.normal(size=membership.feasible.shape), -np.inf)
    m = logits.max(axis=1, keepdims=True)
    log_pi = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    n_feasible = membership.feasible.sum(axis=1)
    total, n_choice = 0.0, 0
    for s, a in zip(p.state, p.action, strict=True):
        if n_feasible[s] > 1:
            total += log_pi[s, a]
            n_choice += 1
    assert p.loglik_choice(log_pi) == pytest.approx(total, rel=1e-12)
    assert p.n_choice_obs == n_choice
    assert 0 < n_choice < p.nobs  # locked annual months carry no choice information
    log_pi_zero = log_pi.copy()
    log_pi_zero[p.state[0], p.action[0]] = -np.inf
    if n_feasible[p.state[0]] > 1:
        assert p.loglik_choice(log_pi_zero) == -np.inf
    with pytest.raises(ValueError, match=r"shape \(states, actions\) = \(234, 3\)"):
        p.loglik_choice(log_pi[:, :2])


def test_loglik_choice_matches_solution(bus, bus_random):
    sol = bus.solve(bus.true_params)
    p = prepare(bus, bus_random)
    brute = float(np.sum(sol.log_pi[p.state, p.action]))
    assert p.loglik_choice(sol.log_pi) == pytest.approx(brute, rel=1e-12)
    assert p.n_choice_obs == p.nobs


# ---------------------------------------------------------------------- transitions check
def test_valid_panels_have_no_impossible_transitions(membership, membership_random, bus,
                                                     bus_random):
    for model, df in [(membership, membership_random), (membership, hand_membership_frame()),
                      (bus, bus_random), (bus, hand_bus_frame())]:
        p = prepare(model, df)
        assert p.impossible_transitions().empty
        p.check_transitions()


@pytest.mark.parametrize("row, column, value, zero_in", [
    pytest.param(3, "plan", "annual_5", "plan", id="plan-jumps"),
    pytest.param(1, "market", 2, "market (never changes)", id="market-changes"),
])
def test_impossible_membership_transitions(membership, row, column, value, zero_in):
    df = hand_membership_frame()
    df.loc[row, column] = value
    if column == "plan":
        df.loc[row, "action"] = "annual"
    p = prepare(membership, df)
    bad = p.impossible_transitions()
    assert (bad["zero_in"] == zero_in).any()
    assert row in set(bad["first_row"]) or row - 1 in set(bad["first_row"])
    expected = (rf"probability 0 .*row {row - 1} \(customer_id=10, month={row - 1}\) -> row "
                rf"{row}.*zero in: {re.escape(zero_in)}")
    with pytest.raises(PanelError, match=expected):
        p.check_transitions()


def test_impossible_bus_transitions(bus):
    df = hand_bus_frame()
    df.loc[2, "mileage"] = 0  # mileage 1 -> 0 under keep: impossible
    p = prepare(bus, df)
    bad = p.impossible_transitions(bus.true_params)
    assert bad[["mileage", "action", "next_mileage", "count", "first_row"]].values.tolist() == [
        [1, "keep", 0, 1, 1], [0, "keep", 3, 1, 2]]
    # the bus model moves at most 2 bins a month with Table IX's increments
    df = hand_bus_frame()
    df.loc[1, "mileage"] = 4  # 0 -> 4: probability 0
    df.loc[2, "mileage"] = 4
    df.loc[3, "mileage"] = 4
    with pytest.raises(PanelError, match=r"1 row move.*row 0 \(bus_id=5, month=0\) -> row 1: "
                                         r"state \(mileage=0\), action 'keep', next state "
                                         r"\(mileage=4\) \(zero in: mileage\)"):
        prepare(bus, df).check_transitions()


# ---------------------------------------------------------------------- from_codes
def test_from_codes_matches_frame(membership, membership_random):
    p = prepare(membership, membership_random)
    q = Panel.from_codes(membership, p.state, p.action, p.next_state, p.ids[p.unit])
    np.testing.assert_array_equal(q.counts, p.counts)
    np.testing.assert_array_equal(q.time, p.time)  # periods 0.. by position within unit
    np.testing.assert_array_equal(q.transition_counts.to_csr().toarray(),
                                  p.transition_counts.to_csr().toarray())
    for name in ("plan", "ship", "video"):
        np.testing.assert_array_equal(q.factor_counts()[name], p.factor_counts()[name])
    assert (q.nobs, q.n_units, q.n_periods) == (p.nobs, p.n_units, p.n_periods)
    # rows in any order, with explicit periods
    perm = np.random.default_rng(0).permutation(p.nobs)
    r = Panel.from_codes(membership, p.state[perm], p.action[perm], p.next_state[perm],
                         p.unit[perm], time=p.time[perm])
    np.testing.assert_array_equal(r.counts, p.counts)
    np.testing.assert_array_equal(r.transition_counts.n, p.transition_counts.n)
    assert r.loglik_choice(np.zeros((234, 3))) == 0.0
    assert "unit" in repr(r)


@pytest.mark.parametrize("change, match", [
    pytest.param({"state": [0, 1, 234]}, r"state: 1 row outside.*row 2 \(unit=1\): 234.*0\.\.233",
                 id="state-out-of-range"),
    pytest.param({"action": [0, 3, 0]}, r"action: 1 row outside.*row 1 .*: 3", id="bad-action"),
    pytest.param({"next_state": [-2, -1, -1]}, r"next_state: 1 row outside.*-1 \(no next",
                 id="bad-next-state"),
    pytest.param({"state": [0, 1, 12], "action": [0, 0, 0]},
                 r"infeasible.*row 2 \(unit=1\): action 'none' in state \(market=0, "
                 r"plan='annual_11', ship=0, video=0\), feasible there: \['annual'\]",
                 id="infeasible"),
    pytest.param({"state": [0, 1]}, r"one entry per row; lengths", id="lengths"),
    pytest.param({"action": [0.0, 1.0, 0.0]}, r"action must hold integer codes", id="dtype"),
])
def test_from_codes_errors(membership, change, match):
    arrays = {"state": [0, 1, 2], "action": [0, 1, 0], "next_state": [1, -1, -1],
              "unit": [0, 0, 1]}
    arrays.update(change)
    with pytest.raises(PanelError, match=match):
        Panel.from_codes(membership, **{k: np.asarray(v) for k, v in arrays.items()})


# ---------------------------------------------------------------------- prepare / models
def test_prepare_returns_prepared_panel(membership, bus):
    p = prepare(membership, hand_membership_frame())
    assert prepare(membership, p) is p
    other = membership.replace(beta=0.95)
    q = prepare(other, p)
    assert q.model is other and q is not p
    np.testing.assert_array_equal(q.counts, p.counts)
    with pytest.raises(PanelError, match="coded for model 'membership'.*other states"):
        prepare(bus, p)


# ---------------------------------------------------------------------- bad input
def _drop(col):
    return lambda df: df.drop(columns=col)


def _set(row, col, value):
    def f(df):
        df = df.copy()
        if isinstance(value, str) and not pd.api.types.is_string_dtype(df[col]):
            df[col] = df[col].astype(object)
        if isinstance(value, float) and pd.api.types.is_integer_dtype(df[col]):
            df[col] = df[col].astype(float)
        df.loc[row, col] = value
        return df
    return f


def _set_many(col, rows, value):
    def f(df):
        df = df.copy()
        df.loc[rows, col] = value
        return df
    return f


def _astype(col, dtype):
    return lambda df: df.astype({col: dtype})


def _mixed_action(df):
    df = df.copy()
    df["action"] = pd.Series(["none", 1, "annual", "annual", "annual", "none", "none", "annual",
                              "annual", "annual", "monthly"], dtype=object)
    return df


def _duplicate_row(df):
    return pd.concat([df, df.iloc[[6]]], ignore_index=True)


def _gap(df):
    return df.drop(index=[2, 3])  # customer 10 loses months 2 and 3


def _string_month(df):
    df = df.copy()
    df["month"] = df["month"].astype(str)
    return df


def _two_problems(df):
    df = _set(0, "ship", 7)(df)
    return _gap(df)


BAD_INPUTS = [
    pytest.param(_drop("ship"), r"missing column\(s\) \['ship'\].*needs the columns "
                 r"\['customer_id', 'month', 'market', 'plan', 'ship', 'video', 'action'\]",
                 id="missing-state-column"),
    pytest.param(_drop("action"), r"missing column\(s\) \['action'\]", id="missing-action"),
    pytest.param(_drop("customer_id"), r"no id column: none of \['customer_id', 'unit_id', "
                 r"'id'\].*id_col=", id="no-id-column"),
    pytest.param(_drop("month"), r"no time column: none of \['month', 'period'\]",
                 id="no-time-column"),
    pytest.param(_set(4, "plan", None), r"column 'plan': 1 missing value; first: row 4 "
                 r"\(customer_id=10, month=4\)", id="missing-plan"),
    pytest.param(_set_many("ship", [1, 5, 6, 7, 8, 9, 10], np.nan),
                 r"column 'ship': 7 missing values; first: row 1 .*; and 2 more",
                 id="missing-ship-many"),
    pytest.param(_set(3, "plan", "annual_13"), r"column 'plan': 1 row holds a value that is not "
                 r"a value of state variable 'plan' \('annual_13'\); first: row 3 \(customer_id="
                 r"10, month=3\): 'annual_13'\. Accepted: \['none', 'member', 'annual_11'",
                 id="unknown-plan-label"),
    pytest.param(_set(2, "ship", 3), r"column 'ship': 1 row holds a value that is not a value "
                 r"of state variable 'ship' \(3\).*Accepted: \[0, 1, 2\]", id="ship-out-of-range"),
    # int8: 55 - (-100) wraps around in int8 arithmetic, onto the table entry of 0
    pytest.param(lambda df: _set(2, "ship", -100)(_set(5, "ship", 100)(_set(7, "ship", 55)(
        df))).astype({"ship": np.int8}), r"column 'ship': 3 rows hold a value that is not a "
        r"value of state variable 'ship' \(-100, 100, 55\); first: row 2 .*: -100",
        id="ship-int8-out-of-range"),
    pytest.param(lambda df: _set(3, "video", 250)(df).astype({"video": np.uint8}),
                 r"column 'video': 1 row holds a value that is not a value of state variable "
                 r"'video' \(250\)", id="video-uint8-out-of-range"),
    pytest.param(_astype("market", str), r"column 'market': 11 rows hold a value.*\('0', "
                 r"'2', '1'\).*the column holds strings", id="market-as-strings"),
    pytest.param(_set(2, "market", "0"), r"column 'market' mixes values of different types "
                 r"\(row 0 .*: 0 \(int\); row 2 \(customer_id=10, month=2\): '0' \(str\)\)",
                 id="mixed-market-column"),
    pytest.param(_set(1, "action", "cancel"), r"column 'action': 1 row holds an action that is "
                 r"not one of the model's actions \('cancel'\); first: row 1 .*'cancel'\. "
                 r"Accepted: \['none', 'monthly', 'annual'\] or integer codes 0\.\.2",
                 id="unknown-action"),
    pytest.param(lambda df: _set(1, "action", 5)(_action_codes(df, ddc.models.membership())),
                 r"column 'action' holds integer codes; 1 row holds a code outside 0\.\.2 \(5\)",
                 id="action-code-out-of-range"),
    pytest.param(_mixed_action, r"column 'action' mixes values of different types.*"
                 r"row 1 \(customer_id=10, month=1\): 1 \(int\)", id="mixed-action-column"),
    pytest.param(_set(4, "action", "none"), r"1 row chooses an action that is infeasible in "
                 r"its state; first: row 4 \(customer_id=10, month=4\): action 'none' in state "
                 r"\(market=0, plan='annual_10', ship=1, video=0\), feasible there: \['annual'\]",
                 id="infeasible-action"),
    pytest.param(_duplicate_row, r"1 duplicate \(customer_id, month\) pair \(2 rows\); first: "
                 r"customer_id=20, month=6 at rows 6, 11", id="duplicate-id-month"),
    pytest.param(_gap, r"1 gap in units' periods \(2 missing months\); first: customer_id=10 "
                 r"has no row for months 2-3 \(between row 1, month 1, and row 4, month 4\)\. "
                 r"Each customer_id needs consecutive months", id="gap-in-months"),
    pytest.param(_set(2, "month", 1.5), r"^column 'month' must hold integer periods; 1 row "
                 r"holds a value that is not a whole number.*row 2 .*: 1\.5[^\n]*$",
                 id="fractional-month"),
    pytest.param(_string_month, r"column 'month' must hold integer periods; 11 rows hold.*"
                 r"dtype (str|object)\) \(numbers stored as text.*to_numeric",
                 id="string-month"),
    pytest.param(_two_problems, r"2 problems with the panel:\n- column 'ship'.*\n- 1 gap",
                 id="several-problems-reported-together"),
]


@pytest.mark.parametrize("corrupt, match", BAD_INPUTS)
def test_bad_input_names_the_fault(membership, corrupt, match):
    df = corrupt(hand_membership_frame())
    with pytest.raises(PanelError, match=match):
        prepare(membership, df)


def test_errors_use_index_labels_and_list_first_rows(membership):
    df = hand_membership_frame()
    df.index = [f"r{i}" for i in range(len(df))]
    df.loc[["r0", "r1", "r5", "r6", "r7", "r10"], "video"] = 4
    with pytest.raises(PanelError, match=r"6 rows hold a value.*first: row 'r0' \(customer_id=10, "
                                         r"month=0\): 4; row 'r1' .*; and 1 more") as info:
        prepare(membership, df)
    assert info.value.problems == [str(info.value)]
    assert isinstance(info.value, ValueError)


def test_bus_gap_and_explicit_columns(bus):
    df = hand_bus_frame().drop(index=5)
    with pytest.raises(PanelError, match=r"bus_id=9 has no row for month 11 \(between row 4, "
                                         r"month 10, and row 6, month 12\)"):
        prepare(bus, df)
    with pytest.raises(PanelError, match=r"missing column\(s\) \['unit'\]"):
        prepare(bus, hand_bus_frame(), id_col="unit")


def test_rejects_non_frames_and_empty_frames(bus):
    with pytest.raises(TypeError, match="pandas DataFrame"):
        prepare(bus, {"bus_id": [1]})
    with pytest.raises(PanelError, match="no rows"):
        prepare(bus, hand_bus_frame().iloc[:0])


def test_single_period_panel_has_no_transitions(membership):
    df = hand_membership_frame().drop_duplicates("customer_id")
    p = prepare(membership, df)
    assert (p.nobs, p.n_transitions, len(p.transition_counts)) == (3, 0, 0)
    assert (p.next_state == -1).all()
    assert all(c.sum() == 0 for c in p.factor_counts().values())
    assert p.impossible_transitions().empty
    assert p.transition_counts.to_csr().nnz == 0


def test_next_row_links_each_row_to_its_units_next_period():
    bus = ddc.models.rust_bus(n_states=10)
    df = pd.DataFrame({"bus_id": [2, 1, 1, 2, 1], "month": [5, 1, 0, 4, 2],
                       "mileage": [1, 1, 0, 0, 2], "action": ["keep"] * 5})
    panel = prepare(bus, df)
    nxt = panel.next_row
    for i in range(panel.nobs):
        later = np.flatnonzero((panel.unit == panel.unit[i]) & (panel.time == panel.time[i] + 1))
        assert nxt[i] == (later[0] if later.size else -1)
    assert (panel.state[nxt[nxt >= 0]] == panel.next_state[nxt >= 0]).all()
    # rows given out of order with their next states: linked where the next row is present
    codes = Panel.from_codes(bus, state=[1, 0, 2], action=[0, 0, 0], next_state=[2, 1, 3],
                             unit=[7, 7, 7], time=[1, 0, 2])
    assert codes.next_row.tolist() == [2, 0, -1]


def test_fit_takes_a_columns_object():
    """``fit(data, columns=Columns(...))`` is the same as the keywords (was a TypeError:
    'Columns' object is not iterable)."""
    from models_entry import entry_model

    from estimators import NFXP
    from simulations import simulate

    model = entry_model()
    cols = Columns(id_col="company", time_col="t", action_col="decision",
                   states={"incumbent": "active", "demand": "demand_level"})
    data = simulate(model, model.true_params, n_customers=300, n_periods=8, seed=3,
                    columns=cols)
    assert {"company", "t", "decision", "active", "demand_level"} <= set(data.columns)
    by_object = NFXP(model).fit(data, columns=cols)
    by_keywords = NFXP(model).fit(data, id_col="company", time_col="t", action_col="decision",
                                  columns={"incumbent": "active", "demand": "demand_level"})
    pd.testing.assert_series_equal(by_object.params, by_keywords.params, rtol=0, atol=1e-12)
    assert by_object.nobs == 300 * 8
    with pytest.raises(ValueError, match="given twice, differently"):
        NFXP(model).fit(data, columns=cols, id_col="firm")
