"""Typed application hooks (ddc.hooks) and model fingerprints."""

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc import DataLayout, Hooks, Money, Outcome, OutcomeContext, fingerprint_diff


def _toy(hooks=None, beta=0.9):
    X = np.zeros((2, 2, 2))
    X[:, 1, 0] = 1.0
    X[:, 1, 1] = -np.array([1.0, 2.0])  # -price
    return ddc.Model([ddc.StateVariable("x", (0, 1))], ["out", "in"],
                     ddc.LinearUtility(X, ["theta", "alpha"]),
                     ddc.FactoredTransitions([ddc.Factor("x", np.full((2, 2), 0.5))]),
                     beta=beta, hooks=hooks)


def test_default_hooks_are_empty():
    m = _toy()
    assert m.hooks.money is None and m.hooks.outcomes == ()
    assert m.hooks.layout == DataLayout()
    assert m.replace(beta=0.5).hooks is m.hooks


def test_money_must_name_a_utility_parameter():
    with pytest.raises(ValueError, match="'price' is not a utility parameter"):
        _toy(Hooks(money=Money("price")))


def test_money_converts_utils():
    money = Money("alpha", unit="EUR")
    assert money.utils_per_unit(pd.Series({"theta": 1.0, "alpha": 0.25})) == 0.25
    with pytest.raises(ValueError, match="positive"):
        money.utils_per_unit(pd.Series({"alpha": -1.0}))


def test_outcomes_are_checked_and_evaluated():
    share_in = Outcome("share_in", lambda c: float(c.distribution @ c.ccp[:, 1]), "share in",
                       unit="share")
    m = _toy(Hooks(outcomes=[share_in]))
    sol = m.solve([0.5, 0.1])
    ctx = OutcomeContext(m, m.params_series([0.5, 0.1]), sol.ccp.to_numpy(),
                         sol.value.to_numpy(), np.array([0.5, 0.5]))
    assert m.hooks.outcome("share_in")(ctx) == pytest.approx(sol.ccp["in"].mean())
    with pytest.raises(KeyError, match="declared: \\['share_in'\\]"):
        m.hooks.outcome("revenue")
    with pytest.raises(ValueError, match="declared more than once"):
        Hooks(outcomes=[share_in, share_in])
    with pytest.raises(ValueError, match="identifier"):
        Outcome("share in", lambda c: 0.0)


@pytest.mark.parametrize("bad", [dict(money="alpha"), dict(layout={"id_col": "x"}),
                                 dict(outcomes=[lambda c: 0.0]), dict(default_scenarios=3)],
                         ids=["money-str", "layout-dict", "outcome-fn", "scenarios-int"])
def test_hooks_reject_untyped_values(bad):
    with pytest.raises(TypeError):
        Hooks(**bad)


def test_builtin_models_declare_hooks():
    assert ddc.models.membership().hooks.money == Money("alpha_price", unit="USD")
    bus = ddc.models.rust_bus()
    assert bus.hooks.layout.id_col == "bus_id" and bus.hooks.layout.drop_first_period


def test_fingerprint_names_the_difference():
    m = ddc.models.membership()
    assert fingerprint_diff(m.fingerprint(), ddc.models.membership().fingerprint()) == []
    assert fingerprint_diff(ddc.models.membership(beta=0.95).fingerprint(),
                            m.fingerprint()) == ["beta: 0.95 vs 0.99"]
    diff = fingerprint_diff(ddc.models.rust_bus(n_states=175).fingerprint(),
                            ddc.models.rust_bus(n_states=90).fingerprint())
    assert "state variable 'mileage': 175 values [0, ..., 174] vs 90 values [0, ..., 89]" in diff
    assert fingerprint_diff(ddc.models.membership(prices_monthly=(1, 2, 3)).fingerprint(),
                            m.fingerprint()) == ["utility: the specifications differ"]


def test_fingerprint_is_json_serialisable():
    import json

    fp = ddc.models.rust_bus().fingerprint()
    assert json.loads(json.dumps(fp)) == fp
