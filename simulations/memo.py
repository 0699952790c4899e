"""Sections that turn a counterfactual report into a memo: the data, the estimates, the
estimators compared and cross-validated, and caveats.

Each function returns document blocks for :meth:`CounterfactualReport.add_section
<simulations.report.CounterfactualReport.add_section>`; ``ddc demo`` adds them to its report.
Nothing here knows an application: parameter meanings and caveats are passed in (the membership
model's are in :mod:`ddc.models.membership.memo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["comparison_blocks", "data_blocks", "parameter_blocks"]

#: What the cross-validation columns shown in the memo mean.
TRUTH_COLUMNS = {
    "converged": "whether the estimator's own convergence check passed",
    "max_abs_z": "largest |estimate - truth| / standard error over the parameters (above 3 "
                 "would be unusual under the truth)",
    "wald": "(estimate - truth)' V^-1 (estimate - truth), chi-square with as many degrees of "
            "freedom as parameters under the truth",
    "reward_max_z": "largest error of the implied flow utilities over the observed choice "
                    "cells, in standard errors (a Scheffé statistic)",
    "ccp_max_error": "largest error of the implied choice probabilities over the observed "
                     "states, as a probability (0.03 is 3 percentage points)",
    "loglik_choice": "choice log-likelihood at the estimate, computed the same way for every "
                     "estimator (higher fits the data better)",
    "seconds": "wall time of the fit",
}
#: What the pairwise columns shown in the memo mean.
PAIR_COLUMNS = {
    "max_abs_diff": "largest difference of a parameter between the two estimators",
    "max_z_diff": "the same in units of sqrt(se_a^2 + se_b^2)",
    "loglik_diff": "difference of their choice log-likelihoods (a - b)",
}


def data_blocks(n_units: int, n_periods: int, seed: int, unit: str = "customer",
                period: str = "month", how: str = "") -> list:
    """A paragraph saying what the data are: simulated from known parameters, sizes, seed.

    Parameters
    ----------
    n_units, n_periods : int
        Sizes of the simulated panel.
    seed : int
        Its seed.
    unit, period : str
        What a unit and a period are called.
    how : str
        How the units start (one sentence), e.g. from the steady state.

    Returns
    -------
    list
        Document blocks.
    """
    rows = n_units * n_periods
    return [("p", f"The data are **simulated, not observed**: a panel of {n_units:,} {unit}s "
                  f"over {n_periods} {period}s ({rows:,} {unit}-{period}s), drawn from the "
                  f"model at known true parameters (the table below) with seed {seed}. "
                  + (how + " " if how else "")
                  + "Because the truth is known, every estimate and every figure can be checked "
                  "against it; with real data the same pipeline runs from the estimation "
                  "step on.")]


def parameter_blocks(cross: Any, reference: str, money: Any = None,
                     meanings: Mapping[str, tuple[str, str]] | None = None) -> list:
    """The parameter table: meaning, unit, truth, the reference estimate with its interval.

    Parameters
    ----------
    cross : estimators.CrossValidation
        The cross-validation (its ``table``: estimate, standard error, interval, truth, z by
        estimator and parameter).
    reference : str
        The estimator whose estimate the table shows (the one the counterfactuals use).
    money : ddc.Money, optional
        The money parameter: a column gives each parameter in money (estimate / money).
    meanings : mapping of str to (str, str), optional
        Parameter -> (meaning, unit).

    Returns
    -------
    list
        Document blocks.
    """
    meanings = dict(meanings or {})
    t = cross.table.xs(reference, level="estimator")
    level = getattr(cross, "level", 0.95)
    alpha = float(t.loc[money.param, "estimate"]) if money is not None and \
        money.param in t.index else None
    header = ["parameter", "meaning", "unit", "truth", f"{reference} estimate",
              f"{100 * level:.0f}% interval", "z"]
    if alpha is not None:
        header.append(f"in {money.unit}")
    rows = []
    for name, r in t.iterrows():
        meaning, unit = meanings.get(name, ("", ""))
        row = [str(name), meaning, unit, _num(r.get("truth")), _num(r["estimate"]),
               f"[{_num(r['ci_lower'])}, {_num(r['ci_upper'])}]", f"{r['z']:+.2f}"
               if np.isfinite(r.get("z", np.nan)) else ""]
        if alpha is not None:
            row.append("" if name == money.param else f"{r['estimate'] / alpha:,.2f}")
        rows.append(row)
    text = (f"The {reference} estimate (used for the counterfactuals below), with "
            f"{100 * level:.0f}% intervals (estimate ± {_zq(level):.2f} standard errors) and "
            "z = (estimate - truth) / standard error. Utilities are in utils, the scale of the "
            "logit shocks.")
    if alpha is not None:
        text += (f" The last column divides each utility parameter by {money.param}, the "
                 f"utils one {money.unit} is worth, to give it in {money.unit}.")
    return [("p", text), ("table", "Parameters", header, rows, "lllrrrr" + "r" *
                          (alpha is not None))]


def comparison_blocks(cross: Any, results: Mapping[str, Any]) -> list:
    """Every estimator side by side and cross-validated, with the columns explained.

    Parameters
    ----------
    cross : estimators.CrossValidation
        The cross-validation of ``results`` against the truth and each other.
    results : mapping of str to EstimationResults
        The fits, in column order.

    Returns
    -------
    list
        Document blocks.
    """
    names = list(results)
    t = cross.table
    params = list(dict.fromkeys(t.index.get_level_values("parameter")))
    has_truth = "truth" in t.columns and t["truth"].notna().any()
    header = ["parameter", *(["truth"] if has_truth else []), *names]
    rows = []
    for p in params:
        row = [p]
        if has_truth:
            row.append(_num(t.xs(p, level="parameter")["truth"].iloc[0]))
        for n in names:
            r = t.loc[(n, p)]
            row.append(f"{_num(r['estimate'])} ({_num(r['std_error'])})")
        rows.append(row)
    cov = ", ".join(f"{n}: {results[n].cov_type}" for n in names)
    blocks: list = [
        ("p", "Each estimator fitted to the same panel; standard errors in parentheses "
              f"(covariance: {cov}). NFXP maximizes the likelihood, solving the model at every "
              "trial parameter; CCP (Hotz-Miller) and NPL use the choice probabilities of the "
              "data instead, NPL iterating to the maximum likelihood estimate; PQR recovers "
              "utilities relative to an anchor action from estimated choice probabilities; "
              "MaxEntIRL (maximum causal entropy) has the likelihood's gradient and so the same "
              "estimate."),
        ("table", "Estimates by estimator", header, rows, "l" + "r" * (len(header) - 1)),
    ]
    summary = cross.summary
    cols = [c for c in TRUTH_COLUMNS if c in summary.columns]
    if cols:
        rows = [[str(n), *[_cell(summary.loc[n, c]) for c in cols]] for n in summary.index]
        blocks += [
            ("h3", "Cross-validation against the truth and the data"),
            ("table", "Each estimator against the truth", ["estimator", *cols], rows,
             "l" + "r" * len(cols)),
            ("list", [f"`{c}`: {TRUTH_COLUMNS[c]}" for c in cols]),
        ]
    pairs = getattr(cross, "pairwise", None)
    if pairs is not None and len(pairs):
        pcols = [c for c in PAIR_COLUMNS if c in pairs.columns]
        rows = [[str(a), str(b), *[_cell(pairs.loc[(a, b), c]) for c in pcols]]
                for a, b in pairs.index]
        blocks += [
            ("table", "Estimators against each other", ["a", "b", *pcols], rows,
             "ll" + "r" * len(pcols)),
            ("list", [f"`{c}`: {PAIR_COLUMNS[c]}" for c in pcols]),
        ]
    return blocks


def _zq(level: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(0.5 + level / 2))


def _num(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or pd.isna(x):
        return ""
    return f"{float(x):.4f}"


def _cell(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, str):
        return x
    x = float(x)
    if not np.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "n/a")
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:,.4f}" if abs(x) < 100 else f"{x:,.1f}"
