"""The estimators cross-validated on one membership panel (docs/irl.rst, "Worked example").

The page shows this script's output; tests/test_docs_examples.py runs it (a slow test: seven fits
on 720,000 rows) and checks that the page shows what it prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import ddc
from estimators import PQR, MaxEntIRL, cross_validate
from simulations import simulate

model = ddc.models.membership()
truth = model.true_params
panel = simulate(model, truth, n_customers=20_000, n_periods=36, seed=11)
cv = cross_validate(model, panel, truth=truth)  # NFXP, CCP, NPL, PQR, MaxEntIRL
print(cv.wide().to_string())

# what the comparison shows, each figure computed from the fits above (or two more on the panel)
table, summary = cv.table, cv.summary
est = table["estimate"].unstack("estimator")
se = table["std_error"].unstack("estimator")
loglik = summary["loglik_choice"]
mle = "NFXP"


def in_mle_se(name: str) -> float:
    """Largest |estimate - NFXP's| over the parameters, in NFXP's standard errors."""
    return float(((est[name] - est[mle]).abs() / se[mle]).max())


def hausman(name: str) -> float:
    """Largest |estimate - NFXP's| / sqrt(se^2 - se_NFXP^2) over the parameters."""
    return float(((est[name] - est[mle]).abs() / np.sqrt(se[name]**2 - se[mle]**2)).max())


# two variants discussed on the page, fitted to the same panel and compared the same way
more = cross_validate(model, panel, truth=truth, estimators={
    mle: cv.results[mle], "PQR two-step": PQR(model, fixed_point=False),
    "MaxEntIRL horizon": MaxEntIRL(model, feature_counts="horizon")})
est = pd.concat([est, more.table["estimate"].unstack("estimator").drop(columns=mle)], axis=1)
se = pd.concat([se, more.table["std_error"].unstack("estimator").drop(columns=mle)], axis=1)
loglik = pd.concat([loglik, more.summary["loglik_choice"].drop(mle)])
max_z = pd.concat([summary["max_abs_z"], more.summary["max_abs_z"].drop(mle)])
support = cv.results["PQR"].extra["anchor_support"].dropna()

print()
print("converged: " + ", ".join(f"{n} {'yes' if r.converged else 'NO'}" for n, r in
                                {**cv.results, **more.results}.items()))
print(f"NPL and MaxEntIRL vs NFXP: largest difference "
      f"{max(in_mle_se('NPL'), in_mle_se('MaxEntIRL')):.1e} NFXP s.e.; choice "
      f"log-likelihoods differ by at most "
      f"{max(abs(loglik['NPL'] - loglik[mle]), abs(loglik['MaxEntIRL'] - loglik[mle])):.1e}")
print(f"CCP vs NFXP: largest difference {in_mle_se('CCP'):.2f} NFXP s.e.")
for name in ("PQR", "PQR two-step"):
    ratio = se[name] / se[mle]
    print(f"{name}: largest |z| {max_z[name]:.2f}; s.e. {ratio.min():.2f} to {ratio.max():.2f} "
          f"times NFXP's (largest: {ratio.idxmax()}); largest difference from NFXP "
          f"{hausman(name):.2f} Hausman s.e.; choice log-likelihood "
          f"{loglik[mle] - loglik[name]:.2f} below NFXP's")
print(f"PQR's anchor chosen in under 2% of visits in {int((support < 0.02).sum())} of "
      f"{len(support)} observed choice states")
print(f"rewards vs the truth's over the observed choice cells, largest |z| (Scheffé bound "
      f"{cv.reward_bound:.2f}): "
      + ", ".join(f"{n} {summary.loc[n, 'reward_max_z']:.2f}" for n in cv.results
                  if np.isfinite(summary.loc[n, "reward_max_z"])))
pqr = cv.results["PQR"]
r_step = cv.rewards["PQR (R-step)"] - cv.rewards["truth"]
r_step_z = (r_step.abs() / pqr.extra["rewards_se"].reindex_like(r_step)).stack().dropna()
print(f"PQR's nonparametric R-step rewards vs the truth's: largest |z| {r_step_z.max():.2f} over "
      f"{len(r_step_z)} cells")
print(f"choice probabilities vs the truth's: largest error "
      f"{summary['ccp_max_error'].max():.4f}")
h = "MaxEntIRL horizon"
print(f"MaxEntIRL, feature_counts='horizon': s.e. {(se[h] / se[mle]).min():.1f} to "
      f"{(se[h] / se[mle]).max():.1f} times NFXP's; largest difference from NFXP "
      f"{in_mle_se(h):.1f} NFXP s.e. ({((est[h] - est[mle]).abs() / se[h]).max():.1f} of "
      f"its own)")
