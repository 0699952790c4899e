"""A firm entry/exit model, as a user would write it: a test fixture for the generic engine.

Each period a firm, incumbent or not, sees the demand level :math:`d` of its market (a 4-level
Markov chain) and chooses ``out`` or ``in``. Being in pays :math:`\\theta_d \\, x(d)` with
:math:`x(d) \\in \\{-1.5, -0.5, 0.5, 1.5\\}`; entering (``in`` when not an incumbent) costs
:math:`FC`; ``out`` pays 0 (the anchor). Next period's incumbency is this period's action.
Discount factor 0.95. It declares one outcome of its own, the share of firms in the market, and
nothing else (no money parameter: welfare is in utils).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import ddc

DEMAND = np.array([-1.5, -0.5, 0.5, 1.5])
DEMAND_CHAIN = np.array([[0.70, 0.20, 0.10, 0.00],
                         [0.20, 0.60, 0.15, 0.05],
                         [0.05, 0.15, 0.60, 0.20],
                         [0.00, 0.10, 0.20, 0.70]])
TRUTH = pd.Series({"theta_d": 1.0, "FC": 2.5})


def share_in(ctx: ddc.OutcomeContext) -> float:
    """Share of firm-periods in the market: :math:`\\sum_s \\mu(s) \\pi(in \\mid s)`."""
    return float(ctx.distribution @ ctx.ccp[:, ctx.model.action_code("in")])


def entry_model(beta: float = 0.95, demand_chain: np.ndarray = DEMAND_CHAIN) -> ddc.Model:
    """The entry/exit model: states ``incumbent`` (0, 1) x ``demand`` (0..3), actions ``out``,
    ``in``, parameters ``theta_d`` and ``FC`` (truth 1.0 and 2.5)."""
    states = [ddc.StateVariable("incumbent", (0, 1)), ddc.StateVariable("demand", (0, 1, 2, 3))]
    inc, dem = (g.ravel() for g in np.indices((2, 4)))
    X = np.zeros((8, 2, 2))
    X[:, 1, 0] = DEMAND[dem]
    X[:, 1, 1] = -(inc == 0).astype(float)
    T_inc = np.zeros((2, 2, 2))  # (action, incumbent, incumbent')
    T_inc[0, :, 0] = 1.0
    T_inc[1, :, 1] = 1.0
    transitions = ddc.FactoredTransitions([
        ddc.Factor("incumbent", T_inc, given=("action", "incumbent")),
        ddc.Factor("demand", np.asarray(demand_chain, dtype=float)),
    ])
    hooks = ddc.Hooks(outcomes=(ddc.Outcome("share_in", share_in,
                                            "share of firm-periods in the market",
                                            unit="share"),),
                      unit="firm", layout=ddc.DataLayout(id_col="firm", time_col="year"))
    return ddc.Model(states, ["out", "in"], ddc.LinearUtility(X, ["theta_d", "FC"]),
                     transitions, beta=beta, true_params=TRUTH, name="entry", anchor="out",
                     hooks=hooks)


def entry_scenarios(model: ddc.Model) -> list:
    """Two scenarios by name: entry cost up by half, and a tax of 0.5 utils on being in."""
    from ddc.scenarios import ParameterChange, UtilityShift

    return [ParameterChange("FC", factor=1.5, name="entry_cost_up"),
            UtilityShift(-0.5, actions="in", name="tax_on_in")]


def entry_model_with_scenarios(beta: float = 0.95) -> ddc.Model:
    """:func:`entry_model` declaring :func:`entry_scenarios` as its default scenarios (the hook
    ``ddc.Hooks.default_scenarios``), for ``ddc counterfactual --scenario NAME``."""
    model = entry_model(beta=beta)
    return model.replace(hooks=model.hooks.replace(default_scenarios=entry_scenarios))
