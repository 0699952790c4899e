"""First-stage estimation of the transition parameters, and the transition log-likelihood.

Two cases:

* **Increment models** (``model.metadata["increment_column"]``, e.g. Rust's bus: the state moves
  up by :math:`j = 0, \\dots, J-1` bins with probability :math:`p_j`). The transition
  parameters are the free probabilities :math:`p_0, \\dots, p_{J-2}` (the last is one minus their
  sum) and their maximum likelihood estimate is the increment frequencies, with the multinomial
  covariance :math:`(\\mathrm{diag}(p) - p p') / N`.
* **Other models with transition parameters**: maximum likelihood over the observed
  (state, action, next state) transitions, :math:`\\sum n(s, a, s') \\log P(s' \\mid s, a; \\psi)`,
  by L-BFGS-B with numerical derivatives.

A model without transition parameters has known transitions: nothing is estimated and the
transition log-likelihood is reported at those transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Panel

__all__ = ["TransitionEstimate", "estimate_transitions", "increment_counts",
           "transition_log_probs", "transition_loglik"]


@dataclass
class TransitionEstimate:
    """Transition parameters estimated in a first stage.

    Attributes
    ----------
    params : pandas.Series
        Estimates (empty when the model has no transition parameters).
    cov : numpy.ndarray
        Their covariance.
    loglik : float
        Transition log-likelihood at the estimates.
    nobs : int
        Transitions used.
    row_scores : numpy.ndarray
        Per panel row (sorted order) score of the transition log-likelihood in ``params``
        (zeros for rows without a transition), shape (nobs_panel, P).
    method : str
        How they were estimated.
    """

    params: pd.Series
    cov: np.ndarray
    loglik: float
    nobs: int
    row_scores: np.ndarray
    method: str


def _increments(model: Model, panel: Panel, frame: pd.DataFrame | None) -> np.ndarray:
    col = model.metadata["increment_column"]
    if frame is None or col not in frame.columns:
        raise KeyError(f"the {model.name} model's transitions are estimated from the column "
                       f"{col!r} (bins moved each period); the data have no such column. Pass "
                       f"the DataFrame (not a Panel) with {col!r}, e.g. from "
                       "ddc.datasets.load_rust_bus")
    inc = frame[col].to_numpy(dtype=float, na_value=np.nan)[panel.position]
    J = len(model.transition_params) + 1
    ok = ~np.isnan(inc)
    bad = ok & ((inc < 0) | (inc >= J) | (inc != np.round(inc)))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(f"column {col!r} has value {inc[i]!r} at row {panel.row[i]!r}; the model "
                         f"allows increments 0..{J - 1} (give more transition parameters, e.g. "
                         f"rust_bus(theta_3=...) with {int(np.nanmax(inc))} values)")
    return inc


def transition_log_probs(model: Model, params, s: np.ndarray, a: np.ndarray,
                         s_next: np.ndarray) -> np.ndarray:
    """:math:`\\log P(s' \\mid s, a)` for arrays of transitions, factor by factor."""
    ct = model.compiled_transitions(params)
    out = np.zeros(len(s))
    changed = np.zeros(len(s), dtype=np.int64)
    for f in range(len(ct.f_stride)):
        stride, size = ct.f_stride[f], ct.f_size[f]
        row = ct.row_offset[f] + a * ct.f_action_mult[f]
        for g in range(ct.g_ptr[f], ct.g_ptr[f + 1]):
            row = row + ((s // ct.g_stride[g]) % ct.g_size[g]) * ct.g_mult[g]
        x_next = (s_next // stride) % size
        changed += (x_next - (s // stride) % size) * stride
        p = np.zeros(len(s))
        lo, hi = ct.indptr[row], ct.indptr[row + 1]
        for k in range(int((hi - lo).max(initial=0))):
            has = lo + k < hi
            idx = np.where(has, lo + k, 0)
            p += np.where(has & (ct.indices[idx] == x_next), ct.data[idx], 0.0)
        with np.errstate(divide="ignore"):
            out += np.log(p)
    out[(s_next - s) != changed] = -np.inf  # a variable without a factor changed
    return out


def transition_loglik(model: Model, panel: Panel, frame: pd.DataFrame | None, params
                      ) -> tuple[float, int]:
    """Transition log-likelihood and the number of transitions at ``params``."""
    if "increment_column" in model.metadata and len(model.transition_params):
        inc = _increments(model, panel, frame)
        ok = ~np.isnan(inc)
        p = _increment_probs(model.params_series(params)[model.transition_params.index])
        with np.errstate(divide="ignore"):
            return float(np.log(p)[inc[ok].astype(int)].sum()), int(ok.sum())
    tc = panel.transition_counts
    if len(tc.n) == 0:
        return 0.0, 0
    lp = transition_log_probs(model, params, tc.s, tc.a, tc.s_next)
    return float(np.sum(tc.n * lp)), int(tc.total)


def _increment_probs(free: pd.Series) -> np.ndarray:
    p = free.to_numpy(dtype=float)
    return np.append(p, 1.0 - p.sum())


def increment_counts(model: Model, panel: Panel | None, frame: pd.DataFrame | None,
                     stats=None) -> np.ndarray:
    """Counts of the increments 0..J-1, from the panel's increment column or from sufficient
    statistics."""
    J = len(model.transition_params) + 1
    if panel is None:
        if stats is None or stats.increment_counts is None:
            raise KeyError(f"the {model.name} model's transitions are estimated from the "
                           f"column {model.metadata['increment_column']!r}; the sufficient "
                           "statistics have no increment counts")
        c = np.asarray(stats.increment_counts, dtype=np.int64)
        if len(c) > J and c[J:].any():
            raise ValueError(f"increments of up to {len(c) - 1} bins observed; the model "
                             f"allows 0..{J - 1}")
        return np.pad(c[:J], (0, max(0, J - len(c))))
    inc = _increments(model, panel, frame)
    ok = ~np.isnan(inc)
    return np.bincount(inc[ok].astype(int), minlength=J)


def _transition_counts(panel: Panel | None, stats):
    return panel.transition_counts if panel is not None else stats.transition_counts


def estimate_transitions(model: Model, panel: Panel | None, frame: pd.DataFrame | None = None,
                         stats=None) -> TransitionEstimate:
    """Estimate the model's transition parameters from the panel (first stage), or from
    sufficient statistics ``stats`` when ``panel`` is ``None`` (then ``row_scores`` is empty)."""
    if panel is None and stats is None:
        raise TypeError("estimate_transitions needs a panel or sufficient statistics")
    names = list(model.transition_params.index)
    P = len(names)
    n_rows = panel.nobs if panel is not None else 0
    if P == 0:
        tc = _transition_counts(panel, stats)
        params = model.true_params if model.true_params is not None else \
            np.zeros(len(model.utility_params))
        ll = float(np.sum(tc.n * transition_log_probs(model, params, tc.s, tc.a, tc.s_next))) \
            if len(tc.n) else 0.0
        return TransitionEstimate(pd.Series(dtype=float), np.zeros((0, 0)), ll,
                                  int(np.sum(tc.n)), np.zeros((n_rows, 0)),
                                  "known (not estimated)")
    if "increment_column" in model.metadata:
        counts = increment_counts(model, panel, frame, stats)
        N = int(counts.sum())
        p = counts / N
        est = pd.Series(p[:P], index=names)
        cov = (np.diag(p[:P]) - np.outer(p[:P], p[:P])) / N
        # score of log p_j in the free probabilities: e_j / p_j - 1[j = J-1] / p_{J-1}
        with np.errstate(divide="ignore", invalid="ignore"):
            table = np.zeros((P + 1, P))
            table[:P] = np.diag(np.where(p[:P] > 0, 1.0 / p[:P], 0.0))
            table[P] = -1.0 / p[P] if p[P] > 0 else 0.0
        scores = np.zeros((n_rows, P))
        if panel is not None:
            inc = _increments(model, panel, frame)
            ok = ~np.isnan(inc)
            scores[ok] = table[inc[ok].astype(int)]
        with np.errstate(divide="ignore"):
            ll = float(counts[counts > 0] @ np.log(p[counts > 0]))
        return TransitionEstimate(est, cov, ll, N, scores, "increment frequencies")

    tc = _transition_counts(panel, stats)
    base = model.params_series(model.true_params if model.true_params is not None
                               else np.zeros(len(model.utility_params)))

    def negll(psi):
        full = base.copy()
        full[names] = psi
        try:
            return -float(np.sum(tc.n * transition_log_probs(model, full, tc.s, tc.a,
                                                              tc.s_next)))
        except ValueError:
            return np.inf

    import scipy.optimize as so  # lazily: 0.15 s of start-up

    res = so.minimize(negll, model.transition_params.to_numpy(), method="L-BFGS-B")
    if not res.success:
        raise RuntimeError(f"first-stage transition estimation did not converge: {res.message}")
    H = _numeric_hessian(negll, res.x)
    cov = np.linalg.inv(H)
    return TransitionEstimate(pd.Series(res.x, index=names), cov, -float(res.fun),
                              int(np.sum(tc.n)), np.zeros((n_rows, P)),
                              "maximum likelihood over observed transitions (L-BFGS-B)")


def _numeric_hessian(f, x, rel=1e-4):
    x = np.asarray(x, dtype=float)
    n = len(x)
    H = np.empty((n, n))
    h = rel * np.maximum(1.0, np.abs(x))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * h[i], np.eye(n)[j] * h[j]
            H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                                 + f(x - ei - ej)) / (4 * h[i] * h[j])
    return H
