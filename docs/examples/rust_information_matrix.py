"""Rust's data fail the information matrix equality; panels simulated from his model do not.

The numbers of docs/estimation.rst, "Inference" (the information-matrix paragraph), which shows
this script's output; tests/test_docs_examples.py runs it (a slow test: 100 full-information
fits, about a minute) and checks that the page shows what it prints.

1. NFXP on Rust's groups 1-4 (90 bins, beta = 0.9999; the transitions estimated jointly, the
   default): the observed-information (Hessian) and outer-product (OPG, BHHH) standard errors
   and their ratio.
2. 100 panels simulated at those estimates with Rust's design: the same 104 buses, each starting
   from its first month's mileage bin and observed for as many months as in the data. Each is
   fitted the same way; the ratio OPG/Hessian of each parameter's standard error is what the
   information matrix equality says should be near 1. The data's ratio is compared with the
   simulated ones (a one-sided information matrix test: the share of simulated ratios at least
   as large).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import ddc
from estimators import NFXP
from simulations import simulate
from simulations.studies import add_bus_increments

N_STATES = 90
REPLICATIONS = 100
SEED = 1987
PARAMS = ["RC", "theta_11"]

model = ddc.models.rust_bus(n_states=N_STATES)  # beta = 0.9999
data = ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=N_STATES)
res = NFXP(model).fit(data)
hessian, opg = res.std_errors_of("hessian")[PARAMS], res.std_errors_of("opg")[PARAMS]
data_ratio = opg / hessian
print(f"Rust's data, groups 1-4: {data['bus_id'].nunique()} buses, {len(data):,} bus-months, "
      f"{int((data['action'] == 'replace').sum())} replacements")
print(pd.DataFrame({"estimate": res.params[PARAMS], "se hessian": hessian, "se opg": opg,
                    "opg / hessian": data_ratio}).round(4).to_string())

# Rust's design: the same buses, from their first month's mileage, for as many months
layout = model.hooks.layout
by_bus = data.sort_values([layout.id_col, layout.time_col]).groupby(layout.id_col, sort=True)
initial = by_bus[["mileage"]].first().reset_index()
months = by_bus.size().to_numpy()
seeds = np.random.SeedSequence(SEED).spawn(REPLICATIONS)
ratios, estimates, hessians, replacements, converged = [], [], [], [], 0
for seed in seeds:
    panel = simulate(model, res.params, n_periods=int(months.max()), initial=initial, seed=seed)
    length = np.repeat(months, months.max())  # simulate sorts by bus (as `initial`), then month
    panel = add_bus_increments(panel[panel[layout.time_col].to_numpy() < length], model)
    fit = NFXP(model).fit(panel)
    converged += bool(fit.converged)
    hessians.append(fit.std_errors_of("hessian")[PARAMS])
    ratios.append(fit.std_errors_of("opg")[PARAMS] / hessians[-1])
    estimates.append(fit.params[PARAMS])
    replacements.append(int((panel[layout.action_col] == "replace").sum()))
ratios, estimates, hessians = (pd.DataFrame(x) for x in (ratios, estimates, hessians))

print()
print(f"{REPLICATIONS} panels simulated at these estimates with Rust's design (seed {SEED}): "
      f"{converged} fits converged, {np.mean(replacements):.1f} replacements on average")
print(pd.DataFrame({
    "mean ratio": ratios.mean(),
    "99th percentile": ratios.quantile(0.99),
    "largest": ratios.max(),
    "data": data_ratio,
    "as large as data": (ratios >= data_ratio).sum(),
    "sd of estimates": estimates.std(),
    "mean se hessian": hessians.mean(),
}).round(2).to_string())
