# ruff: noqa: E402  (a tutorial imports each piece where it is first used)
"""Your own model: a firm entry/exit model specified, simulated, estimated and used.

The tutorial of docs/own_model.rst, which includes it piece by piece; tests/test_tutorial.py runs
it and checks that it prints what the page says.
"""

# --- the model ---------------------------------------------------------------------------------
import numpy as np
import pandas as pd

import ddc

# the state: is the firm in the market (an incumbent), and the market's demand level
states = [ddc.StateVariable("incumbent", (0, 1)), ddc.StateVariable("demand", (0, 1, 2, 3))]
actions = ["out", "in"]

# flow utility, linear in the parameters, u(s, a) = z(s, a)' theta:
#   in:  theta_d * profit(demand) - FC * [not an incumbent];   out: 0 (the anchor)
profit = np.array([-1.5, -0.5, 0.5, 1.5])  # operating profit at each demand level, $ millions
incumbent, demand = (g.ravel() for g in np.indices((2, 4)))  # the 8 states, in order
Z = np.zeros((8, 2, 2))  # (states, actions, parameters)
Z[:, 1, 0] = profit[demand]
Z[:, 1, 1] = -1.0 * (incumbent == 0)
utility = ddc.LinearUtility(Z, ["theta_d", "FC"])

# transitions: next month's incumbency is this month's action; demand is a Markov chain
# whose probabilities we do not know. The table given here only says which moves are
# possible (demand never jumps from the lowest level to the highest or back: those zeros are
# structural); the estimators replace its probabilities by the frequencies in the data.
moves = np.zeros((2, 2, 2))  # (action, incumbent, incumbent')
moves[0, :, 0] = 1.0
moves[1, :, 1] = 1.0
demand_support = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
demand_guess = demand_support / demand_support.sum(axis=1, keepdims=True)
transitions = ddc.FactoredTransitions([
    ddc.Factor("incumbent", moves, given=("action", "incumbent")),
    ddc.Factor("demand", demand_guess),
])


def share_in(ctx: ddc.OutcomeContext) -> float:
    """Share of firm-months in the market, sum_s mu(s) pi(in | s)."""
    return float(ctx.distribution @ ctx.ccp[:, ctx.model.action_code("in")])


hooks = ddc.Hooks(
    outcomes=[ddc.Outcome("share_in", share_in, "share of firm-months in the market",
                          unit="share", label="firms in")],
    money=ddc.Money("theta_d", unit="$m"),  # profits are in $ millions: $m = utils / theta_d
    unit="firm",
    layout=ddc.DataLayout(id_col="firm", time_col="date"),
)
model = ddc.Model(states, actions, utility, transitions, beta=0.95, name="entry",
                  anchor="out", hooks=hooks)
print(model)

# --- the data ----------------------------------------------------------------------------------
import tempfile
from pathlib import Path

from simulations import simulate

# the truth, known here because we simulate: utility parameters and the demand chain
truth = pd.Series({"theta_d": 1.0, "FC": 2.5})
demand_chain = np.array([[0.70, 0.20, 0.10, 0.00],
                         [0.20, 0.60, 0.15, 0.05],
                         [0.05, 0.15, 0.60, 0.20],
                         [0.00, 0.10, 0.20, 0.70]])
true_model = model.replace(transitions=ddc.FactoredTransitions([
    ddc.Factor("incumbent", moves, given=("action", "incumbent")),
    ddc.Factor("demand", demand_chain)]))

panel = simulate(true_model, truth, n_customers=1500, n_periods=24, seed=1)
# written as the firm's own records: monthly dates, its own column names
panel["date"] = pd.period_range("2022-01", periods=24, freq="M").astype(str)[panel["date"]]
panel = panel.rename(columns={"incumbent": "active", "demand": "demand_level",
                              "action": "decision"})
csv = Path(tempfile.mkdtemp()) / "firms.csv"
panel.to_csv(csv, index=False)

data = pd.read_csv(csv)
print(data.head(3).to_string(index=False))

# --- reading it back ---------------------------------------------------------------------------
from ddc.panel import Columns

columns = Columns(id_col="firm", time_col="date", action_col="decision",
                  states={"incumbent": "active", "demand": "demand_level"})

# --- estimation --------------------------------------------------------------------------------
from estimators import ESTIMATORS, compare

results = {cls.name: cls(model).fit(data, columns=columns) for cls in ESTIMATORS.values()}
print(compare(results))

for name, res in results.items():
    z = (res.params - truth) / res.std_errors
    print(f"{name:>9}: " + ", ".join(f"{p} {res.params[p]:.4f} ({res.std_errors[p]:.4f}, "
                                     f"z {z[p]:+.2f})" for p in truth.index))

# --- the estimated transitions -----------------------------------------------------------------
first_stage = results["NFXP"].extra["transitions"]
estimated = first_stage.tables["demand"]
se = np.sqrt(np.diagonal(first_stage.table_cov("demand"), axis1=-2, axis2=-1))
print(pd.DataFrame(estimated, index=pd.Index(range(4), name="demand"),
                   columns=pd.Index(range(4), name="next")).round(3))
print("largest |estimate - truth| / se:",
      f"{np.max(np.abs(estimated - demand_chain)[se > 0] / se[se > 0]):.2f}")

# --- a counterfactual: entry cost +50% ---------------------------------------------------------
from simulations import ParameterChange, counterfactual

nfxp = results["NFXP"]
report = counterfactual(model, nfxp, n_draws=200, seed=0, scenarios=[
    ParameterChange("FC", factor=1.5, name="entry_cost_up")])
print(report)
