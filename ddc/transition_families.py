"""Transition families a model can declare (``ddc.Hooks(transition_family=...)``).

* :class:`SimplexParameters`: the transition parameters include the free probabilities of one or
  more distributions (the last probability of each is one minus the sum of the others, Rust's
  layout). The generic first stage estimates them by maximum likelihood over the observed
  transitions in a softmax parametrisation that cannot leave the simplex.
* :class:`IncrementTransitions`: the state moves up by :math:`j = 0, \\dots, J-1` bins with
  probability :math:`p_j`, and the data record the bins moved in a column (Rust's bus:
  ``increment``). The transition parameters are :math:`p_0, \\dots, p_{J-2}`
  (:math:`p_{J-1} = 1 - \\sum_{j<J-1} p_j`); with :math:`n_j` the rows showing increment *j*
  and :math:`N = \\sum_j n_j`,

  .. math::

      \\ell_t(p) = \\sum_j n_j \\log p_j, \\qquad \\hat p_j = n_j / N, \\qquad
      \\widehat{\\mathrm{Var}}(\\hat p_{0:J-2}) = (\\mathrm{diag}(\\hat p) - \\hat p \\hat p') / N.

  Any model whose state moves up by a random number of bins can declare it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ddc.hooks import TransitionFamily

if TYPE_CHECKING:
    from ddc.model import Model

__all__ = ["IncrementTransitions", "SimplexParameters"]


class SimplexParameters(TransitionFamily):
    """Transition parameters that are free probabilities of distributions (last = 1 - sum).

    Parameters
    ----------
    *groups : sequence of str
        Each group lists the transition parameters :math:`p_1, \\dots, p_{K-1}` of one
        distribution over :math:`K` outcomes; the omitted :math:`p_K = 1 - \\sum_k p_k`.

    Examples
    --------
    A two-level chain with the stay probabilities as parameters:

    >>> fam = SimplexParameters(["stay_low"], ["stay_high"])
    >>> fam.groups
    (('stay_low',), ('stay_high',))
    """

    def __init__(self, *groups: Sequence[str]):
        out = []
        for g in groups:
            if isinstance(g, str) or not len(g):
                raise TypeError(f"each simplex group is a non-empty list of parameter names; got "
                                f"{g!r}")
            out.append(tuple(str(n) for n in g))
        names = [n for g in out for n in g]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"parameter(s) {dup} appear in more than one simplex group")
        self.groups = tuple(out)

    def __repr__(self) -> str:
        return f"SimplexParameters{self.groups}"

    def describe(self) -> str:
        return (f"maximum likelihood over the observed transitions, {len(self.groups)} simplex "
                "group(s) in a softmax parametrisation")

    def fingerprint(self) -> dict[str, Any]:
        return {"family": "SimplexParameters", "groups": [list(g) for g in self.groups]}

    def simplex_groups(self, model: Model) -> list[list[str]]:
        known = set(model.transition_params.index)
        for g in self.groups:
            unknown = [n for n in g if n not in known]
            if unknown:
                raise KeyError(f"simplex group {list(g)} names {unknown}, which are not "
                               f"transition parameters of model {model.name!r} "
                               f"({list(model.transition_params.index)})")
        return [list(g) for g in self.groups]


class IncrementTransitions(TransitionFamily):
    """The state moves up by ``j`` bins with probability :math:`p_j`, recorded in a column.

    Parameters
    ----------
    column : str
        The data column holding the bins moved from each row to the unit's next row (missing
        where there is no next row).

    Notes
    -----
    The model's transition parameters, in order, are :math:`p_0, \\dots, p_{J-2}`. The
    statistics are the counts :math:`n_j` of the increments; rows with a missing value are not
    counted.
    """

    def __init__(self, column: str = "increment"):
        if not isinstance(column, str) or not column:
            raise TypeError(f"IncrementTransitions(column=...) takes a column name; got "
                            f"{column!r}")
        self.column = column
        self.columns = (column,)

    def __repr__(self) -> str:
        return f"IncrementTransitions(column={self.column!r})"

    def describe(self) -> str:
        return f"increment frequencies (column {self.column!r})"

    def simplex_groups(self, model: Model) -> list[list[str]]:
        return [list(model.transition_params.index)]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def n_increments(model: Model) -> int:
        """:math:`J`, one more than the number of transition parameters."""
        return len(model.transition_params) + 1

    @staticmethod
    def probabilities(params: pd.Series | np.ndarray) -> np.ndarray:
        """All :math:`J` probabilities from the :math:`J-1` free ones."""
        p = np.asarray(params, dtype=float)
        return np.append(p, 1.0 - p.sum())

    def values(self, model: Model, frame: pd.DataFrame) -> np.ndarray:
        """The increments of the rows of ``frame`` as floats (NaN where missing), checked.

        Raises
        ------
        KeyError
            ``frame`` has no column :attr:`column`.
        ValueError
            A value that is negative, not whole, or :math:`\\ge J`, naming the row.
        """
        col = self.column
        if col not in frame.columns:
            raise KeyError(f"the {model.name} model's transitions are estimated from the column "
                           f"{col!r} (bins moved each period); the data have no such column "
                           f"(columns: {list(frame.columns)}). Pass the DataFrame with {col!r} "
                           "(not a Panel)")
        raw = frame[col]
        if isinstance(raw.dtype, np.dtype) and raw.dtype.kind in "fiu":  # numeric already
            numeric = raw
        else:
            numeric = pd.to_numeric(raw, errors="coerce")
        text = None if numeric is raw else numeric.isna() & raw.notna()
        if text is not None and text.any():
            pos = np.flatnonzero(text.to_numpy())
            shown = "; ".join(f"row {frame.index[p]!r}: {frame[col].iloc[p]!r}" for p in pos[:5])
            raise ValueError(f"column {col!r}: {pos.size} row(s) hold a value that is not a "
                             f"number; first: {shown}. Increments are whole numbers of bins (an "
                             "empty field where unknown)")
        v = numeric.to_numpy(dtype=float, na_value=np.nan)
        J = self.n_increments(model)
        ok = ~np.isnan(v)
        bad = ok & ((v < 0) | (v >= J) | (v != np.round(np.where(ok, v, 0.0))))
        if bad.any():
            pos = np.flatnonzero(bad)
            shown = "; ".join(f"row {frame.index[p]!r}: {v[p]!r}" for p in pos[:5])
            raise ValueError(f"column {col!r}: {pos.size} row(s) hold an increment outside "
                             f"0..{J - 1} or not a whole number; first: {shown}. The model "
                             f"{model.name!r} has {J} increments (give it more transition "
                             "parameters)")
        return v

    # ------------------------------------------------------------------ protocol
    def statistics(self, model: Model, frame: pd.DataFrame) -> np.ndarray:
        """Counts :math:`n_j` of the increments :math:`j = 0, \\dots, J-1` (int64)."""
        v = self.values(model, frame)
        ok = ~np.isnan(v)
        return np.bincount(v[ok].astype(np.int64), minlength=self.n_increments(model))

    def estimate(self, model: Model, statistics: np.ndarray) -> tuple[pd.Series, np.ndarray]:
        """Frequencies :math:`\\hat p_j = n_j / N` and their multinomial covariance.

        Raises
        ------
        ValueError
            No increment observed, or counts of more increments than the model has.
        """
        c = self._counts(model, statistics)
        N = int(c.sum())
        if N == 0:
            raise ValueError(f"no increment observed in column {self.column!r}; the transition "
                             "parameters cannot be estimated")
        p = c / N
        P = len(c) - 1
        cov = (np.diag(p[:P]) - np.outer(p[:P], p[:P])) / N
        return pd.Series(p[:P], index=model.transition_params.index), cov

    def loglik(self, model: Model, params: pd.Series, statistics: np.ndarray
               ) -> tuple[float, np.ndarray]:
        """:math:`\\sum_j n_j \\log p_j` and its gradient
        :math:`n_j / p_j - n_{J-1} / p_{J-1}` (``-inf`` where an observed increment has
        probability zero or less)."""
        c = self._counts(model, statistics)
        p = self.probabilities(params)
        P = len(p) - 1
        seen = c > 0
        if np.any(p[seen] <= 0):
            return -np.inf, np.zeros(P)
        ll = float(c[seen] @ np.log(p[seen]))
        g = np.where(seen[:P], c[:P] / np.where(seen[:P], p[:P], 1.0), 0.0)
        g = g - (c[P] / p[P] if seen[P] else 0.0)
        return ll, g

    def row_scores(self, model: Model, params: pd.Series, frame: pd.DataFrame) -> np.ndarray:
        """:math:`\\partial \\log p_{j_i} / \\partial p_k = 1[j_i = k] / p_k - 1[j_i = J-1] /
        p_{J-1}` per row (zero where the increment is missing or its probability is zero)."""
        v = self.values(model, frame)
        p = self.probabilities(params)
        P = len(p) - 1
        table = np.zeros((P + 1, P))
        with np.errstate(divide="ignore"):
            table[:P] = np.diag(np.where(p[:P] > 0, 1.0 / np.where(p[:P] > 0, p[:P], 1.0), 0.0))
            table[P] = -1.0 / p[P] if p[P] > 0 else 0.0
        # one gather: a missing increment reads an extra row of zeros
        table = np.vstack([table, np.zeros((1, P))])
        return table[np.where(np.isnan(v), P + 1, v).astype(np.int64)]

    def hessian(self, model: Model, params: pd.Series, statistics: np.ndarray) -> np.ndarray:
        """:math:`-\\mathrm{diag}(n_j / p_j^2) - n_{J-1} / p_{J-1}^2` over the free
        probabilities (the last being one minus the others; zero where :math:`n_j = 0`)."""
        c = self._counts(model, statistics)
        p = self.probabilities(params)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(c > 0, c / np.where(c > 0, p, 1.0) ** 2, 0.0)
        return -np.diag(w[:-1]) - w[-1]

    def _counts(self, model: Model, statistics: np.ndarray) -> np.ndarray:
        c = np.asarray(statistics, dtype=np.int64).ravel()
        J = self.n_increments(model)
        if len(c) > J and c[J:].any():
            raise ValueError(f"increments of up to {len(c) - 1} bins observed; the model "
                             f"{model.name!r} allows 0..{J - 1}")
        return np.pad(c[:J], (0, max(0, J - len(c))))
