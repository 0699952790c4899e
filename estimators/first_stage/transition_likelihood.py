"""Transition probabilities :math:`\\log P(s' \\mid s, a)`, the model's transition family and its
data, and the transition log-likelihood."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.hooks import TransitionFamily
from ddc.model import Model
from ddc.panel import Panel, TransitionCounts


# ---------------------------------------------------------------------- transition probabilities
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


def _family(model: Model) -> TransitionFamily | None:
    return model.hooks.transition_family


def _own_data(model: Model) -> bool:
    fam = _family(model)
    return fam is not None and fam.has_statistics and len(model.transition_params) > 0


def _family_frame(model: Model, panel: Panel, frame: pd.DataFrame | None, data=None
                  ) -> pd.DataFrame:
    """The family's columns, one row per panel row in the panel's order (indexed by the rows'
    labels): read through the data protocol (``data.column``, which knows the column mapping)
    when given, else from ``frame``."""
    fam = _family(model)
    if data is not None and data.has_rows:
        return pd.DataFrame({c: data.column(c, f"the first stage ({fam!r})")
                             for c in fam.columns}, index=pd.Index(panel.row))
    if frame is None:
        raise KeyError(f"the {model.name} model's transitions are estimated from the column(s) "
                       f"{list(fam.columns)} ({fam.describe()}); pass the DataFrame that has "
                       "them (a Panel carries the states only)")
    missing = [c for c in fam.columns if c not in frame.columns]
    if missing:
        # the family names the missing column and what it needs
        fam.statistics(model, frame.iloc[:0])
        raise KeyError(f"the data have no column(s) {missing}, which {fam!r} reads")
    return frame[list(fam.columns)].iloc[panel.position]


def family_statistics(model: Model, panel: Panel | None, frame: pd.DataFrame | None,
                      stats=None, data=None) -> np.ndarray:
    """The model's transition family's statistics, from the panel's frame or from sufficient
    statistics computed out of core."""
    fam = _family(model)
    if panel is None:
        counted = getattr(stats, "column_counts", None)
        if isinstance(counted, dict) and len(fam.columns) == 1 and fam.columns[0] in counted:
            return np.asarray(counted[fam.columns[0]])
        if stats is None or getattr(stats, "increment_counts", None) is None:
            raise KeyError(f"the {model.name} model's transitions are estimated from the "
                           f"column(s) {list(fam.columns)}; the sufficient statistics have no "
                           "statistics of them (the source lacked the column)")
        return np.asarray(stats.increment_counts)
    return fam.statistics(model, _family_frame(model, panel, frame, data))


def transition_loglik(model: Model, panel: Panel, frame: pd.DataFrame | None, params
                      ) -> tuple[float, int]:
    """Transition log-likelihood and the number of transitions at ``params``."""
    if _own_data(model):
        fam = _family(model)
        st = family_statistics(model, panel, frame)
        tp = model.params_series(params)[model.transition_params.index]
        return fam.loglik(model, tp, st)[0], int(np.sum(st))
    tc = panel.transition_counts
    if len(tc.n) == 0:
        return 0.0, 0
    lp = transition_log_probs(model, params, tc.s, tc.a, tc.s_next)
    return float(np.sum(tc.n * lp)), int(tc.total)


def _transition_counts(panel: Panel | None, stats) -> TransitionCounts:
    return panel.transition_counts if panel is not None else stats.transition_counts


def _base_params(model: Model) -> pd.Series:
    """Utility parameters at zero (they do not enter the transitions), transition parameters at
    the model's defaults."""
    return model.params_series(np.zeros(len(model.utility_params)))

def _simplex(model: Model) -> list[list[str]]:
    fam = _family(model)
    return fam.simplex_groups(model) if fam is not None else []
