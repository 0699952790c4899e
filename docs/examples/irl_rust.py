"""PQR, MaxEntIRL and NFXP on Rust's bus data, where the anchor ``replace`` is rarely chosen
(docs/irl.rst, "Rust's bus").

The page shows this script's output; tests/test_docs_examples.py runs it and checks that the page
shows what it prints.
"""

from __future__ import annotations

import warnings

import pandas as pd

import ddc
from estimators import NFXP, PQR, MaxEntIRL

model = ddc.models.rust_bus(n_states=90)  # beta = 0.9999
data = ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=90)
replaced = data.loc[data["action"] == "replace", "mileage"]
print(f"{len(replaced)} replacements in {len(data):,} bus-months, none below mileage bin "
      f"{replaced.min()}")

fits = {
    "NFXP (Rust 1987, Table IX)": lambda: NFXP(model),
    "MaxEntIRL": lambda: MaxEntIRL(model),
    "MaxEntIRL, feature_counts='horizon'": lambda: MaxEntIRL(model, feature_counts="horizon"),
    "two-step PQR, frequencies (alpha 0.5)": lambda: PQR(model, fixed_point=False),
    "two-step PQR, logit": lambda: PQR(model, policy="logit", fixed_point=False),
    "PQR fixed point, frequencies (alpha 0.5)": lambda: PQR(model),
    "PQR fixed point, logit": lambda: PQR(model, policy="logit"),
}
rows, results = {}, {}  # the warnings of fits that do not converge are silenced: the table says
for name, build in fits.items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ddc.ConvergenceWarning)  # reported in the table
        res = results[name] = build().fit(data)
    rows[name] = {**{f"{p}": f"{res.params[p]:.4f} ({res.std_errors[p]:.4f})"
                     for p in ("RC", "theta_11")},
                  "converged": "yes" if res.converged else "NO"}
print()
print(pd.DataFrame(rows).T.rename_axis("estimator").to_string())

# with frequencies, RC where replacement is never seen is set by the smoothing constant
print()
print("RC by the smoothing constant alpha of the frequencies")
smoothing = {}
for alpha in (0.5, 0.1, 0.01):
    two_step = PQR(model, smoothing=alpha, fixed_point=False).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ddc.ConvergenceWarning)
        fixed = PQR(model, smoothing=alpha).fit(data)
    smoothing[alpha] = {
        "two-step": f"{two_step.params['RC']:.2f} ({two_step.std_errors['RC']:.2f})",
        "fixed point": f"{fixed.params['RC']:.2f} ({fixed.std_errors['RC']:.2f})"
                       + ("" if fixed.converged else " not converged")}
print(pd.DataFrame(smoothing).T.rename_axis("alpha").to_string())
