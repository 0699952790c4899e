"""The default counterfactuals of the membership model at the true parameters, and the coverage
of percentile intervals (docs/counterfactuals.rst).

The page shows this script's output and quotes its figures; tests/test_docs_examples.py runs it
(a few seconds) and checks that the page shows what it prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import ddc
from ddc.scenarios import NORMALIZATION
from simulations import Custom, counterfactual, stationary_distribution

model = ddc.models.membership()
truth = model.true_params

# --- a transition change: members take up video faster ----------------------------------------
faster = Custom(lambda m: ddc.models.membership(video_member=[[0.75, 0.25], [0.05, 0.95]]),
                name="video_engagement", identification=NORMALIZATION)
fast = counterfactual(model, truth, scenarios=[faster]).summary
print(f"video_engagement: member share {fast.loc['baseline', 'member_share']:.1%} -> "
      f"{fast.loc['video_engagement', 'member_share']:.1%}, "
      f"CV ${fast.loc['video_engagement', 'cv_per_customer']:.2f} per customer")

# --- the default scenarios at the truth (exact, no sampling error) -----------------------------
report = counterfactual(model, truth, scenarios="default")
print()
print(report)
summary, by_market = report.summary, report.by_market
shares = report.choice_shares

# what the prose reads from the baseline: shares of customer-months by choice, annual purchases
solution = model.solve(truth)
mu = stationary_distribution(solution).to_numpy()
unlocked = model.feasible.sum(axis=1) > 1  # in the locked annual months the only action is kept
purchases = float(mu[unlocked] @ solution.ccp["annual"].to_numpy()[unlocked])
print()
print(f"baseline: monthly {shares.loc['baseline', 'monthly']:.1%} of customer-months, annual "
      f"purchases {purchases:.1%} of customer-months")

retention = report.retention["retention"].loc["baseline"].unstack("joined")
print()
print("baseline retention S(k) by plan joined")
print(retention.loc[[1, 11, 12, 24]].round(3).to_string())
print()
print("by market")
print(by_market[["cv_per_customer", "member_share"]].unstack("market")
      .reindex(summary.index).round(3).to_string())

# --- coverage of 95% percentile intervals for an exactly normal estimate -----------------------
# theta_hat ~ N(0, 1); D draws theta_d ~ N(theta_hat, 1); does the interval cover 0?
REPLICATIONS, SEED = 40_000, 2026
rng = np.random.default_rng(SEED)
rows = {}
for draws in (100, 200, 500):
    covered = dict.fromkeys(["linear (numpy default)", "p (D + 1)", "median-unbiased",
                             "normal +-1.96 sd"], 0)
    for chunk in np.array_split(np.arange(REPLICATIONS), 20):
        theta = rng.standard_normal(len(chunk))[:, None] + rng.standard_normal((len(chunk), draws))
        for name, method in (("linear (numpy default)", "linear"), ("p (D + 1)", "weibull"),
                             ("median-unbiased", "median_unbiased")):
            lo, hi = np.quantile(theta, [0.025, 0.975], axis=1, method=method)
            covered[name] += int(np.sum((lo <= 0) & (0 <= hi)))
        centre, sd = theta.mean(axis=1), theta.std(axis=1, ddof=1)
        covered["normal +-1.96 sd"] += int(np.sum(np.abs(centre) <= 1.96 * sd))
    rows[draws] = {k: v / REPLICATIONS for k, v in covered.items()}
coverage = pd.DataFrame(rows).T.rename_axis("draws D")
print()
print(f"coverage of 95% intervals, {REPLICATIONS:,} replications (seed {SEED}; Monte Carlo s.e. "
      f"{100 * np.sqrt(0.95 * 0.05 / REPLICATIONS):.2f} points)")
print((100 * coverage).round(1).to_string())
