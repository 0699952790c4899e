"""The demonstration data of ``ddc demo``: every estimator, then the default counterfactuals
from the NFXP estimate with 95% intervals (docs/counterfactuals.rst).

The page shows this script's output and quotes its figures; tests/test_docs_examples.py runs it
(a slow test: five fits on 720,000 rows and 200 draws of five scenarios) and checks that the page
shows what it prints.
"""

from __future__ import annotations

import ddc
import estimators
from simulations import counterfactual, simulate

model = ddc.models.membership()
truth = model.true_params
panel = simulate(model, truth, n_customers=20_000, n_periods=36, seed=0)  # as `ddc demo`
results = {cls.name: cls(model).fit(panel) for cls in estimators.ESTIMATORS.values()}
print(estimators.compare(results).as_text())
z = {name: float(((res.params[truth.index] - truth) / res.std_errors[truth.index]).abs().max())
     for name, res in results.items()}
print("largest |estimate - truth| / se: " + ", ".join(f"{n} {v:.2f}" for n, v in z.items()))

# --- the default scenarios from the NFXP estimate, 200 draws ----------------------------------
report = counterfactual(model, results["NFXP"], scenarios="default", n_draws=200, seed=0)
print()
print(report)

# how many of the intervals contain the figure at the truth (leaving out the figures that do not
# vary across draws: the baseline's CV, 0 by definition, and the annual share without the
# monthly plan, 100%)
at_truth = counterfactual(model, truth, scenarios="default").summary
s = report.summary
inside = spread = 0
for k in s.index:
    for c in (c for c in at_truth.columns if f"{c}_lower" in s.columns):
        lo, hi = s.loc[k, f"{c}_lower"], s.loc[k, f"{c}_upper"]
        if hi - lo > 1e-9:
            spread += 1
            inside += bool(lo <= at_truth.loc[k, c] <= hi)
print(f"intervals containing the figure at the truth: {inside} of {spread}")
ch = report.changes
for k in ("monthly_price_up", "annual_discount"):
    print(f"member share change, {k}: {100 * ch.loc[k, 'member_share']:+.2f} points "
          f"[{100 * ch.loc[k, 'member_share_lower']:+.2f}, "
          f"{100 * ch.loc[k, 'member_share_upper']:+.2f}]")
width = 100 * (s["member_share_upper"] - s["member_share_lower"])
print(f"width of the member share intervals (levels): {width.min():.1f} to {width.max():.1f} "
      "points")
