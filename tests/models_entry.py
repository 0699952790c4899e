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


# ---------------------------------------------------------------------------- estimated demand
# The same model with the demand chain's probabilities as free transition parameters, in Rust's
# layout: row i has parameters p{i}0, p{i}1, p{i}2 and its last probability is one minus their
# sum. The transition function refuses parameters off the simplex, as a user's would. The
# model's defaults (the first stage's starting values) are a naive banded chain with zeros, not
# the truth.

#: the defaults of the parametric model's demand probabilities: zeros off the band
DEMAND_DEFAULT = np.array([[0.70, 0.30, 0.00, 0.00],
                           [0.30, 0.40, 0.30, 0.00],
                           [0.00, 0.30, 0.40, 0.30],
                           [0.00, 0.00, 0.30, 0.70]])


def demand_names() -> list[list[str]]:
    """The free demand probabilities, one list per row of the chain."""
    return [[f"p{i}{j}" for j in range(3)] for i in range(4)]


def demand_params(chain: np.ndarray) -> pd.Series:
    """The free parameters of a 4 x 4 chain (its first three columns)."""
    return pd.Series({n: float(chain[i, j]) for i, row in enumerate(demand_names())
                      for j, n in enumerate(row)})


#: truth of the parametric model: the utility truth and :data:`DEMAND_CHAIN`'s probabilities
TRUTH_PARAMETRIC = pd.concat([TRUTH, demand_params(DEMAND_CHAIN)]).rename("truth")


def demand_chain(tp: pd.Series) -> np.ndarray:
    """The chain from the free parameters (last = 1 - sum); refuses values off the simplex."""
    P = np.zeros((4, 4))
    for i, row in enumerate(demand_names()):
        p = tp[row].to_numpy(dtype=float)
        if np.any(p < 0) or np.any(p > 1) or p.sum() > 1 + 1e-12:
            raise ValueError(f"demand probabilities of row {i} must lie in [0, 1] and sum to at "
                             f"most 1; got {dict(zip(row, p, strict=True))}")
        P[i, :3] = p
        P[i, 3] = max(0.0, 1.0 - p.sum())
    return P


def entry_model_parametric(beta: float = 0.95, declare_simplex: bool = True) -> ddc.Model:
    """The entry/exit model with the demand chain estimated: parameters ``theta_d``, ``FC`` and
    ``p00`` ... ``p32``; ``declare_simplex`` declares each row's probabilities as a simplex group
    (:class:`ddc.transition_families.SimplexParameters`)."""
    from ddc.transition_families import SimplexParameters

    base = entry_model(beta)
    inc_factor = base.transitions().factors[0]

    def transitions(tp: pd.Series) -> ddc.FactoredTransitions:
        return ddc.FactoredTransitions([inc_factor, ddc.Factor("demand", demand_chain(tp))])

    family = SimplexParameters(*demand_names()) if declare_simplex else None
    return base.replace(transitions=transitions,
                        transition_params=demand_params(DEMAND_DEFAULT),
                        true_params=TRUTH_PARAMETRIC,
                        hooks=base.hooks.replace(transition_family=family))


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
