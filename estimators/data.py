"""What every estimator needs from a panel: the choice sample and its sufficient statistics.

The choice part of the likelihood is

.. math:: \\ell_c(\\theta) = \\sum_i \\sum_t \\log \\pi(a_{it} \\mid s_{it}; \\theta)
          = \\sum_{s, a} n(s, a) \\log \\pi(a \\mid s; \\theta),

so it costs :math:`O(S A)` once the counts :math:`n(s, a)` are known, whatever the number of rows.
Rows whose state has a single feasible action contribute :math:`\\log 1 = 0`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Panel, prepare

__all__ = ["ChoiceData", "choice_data"]


@dataclass
class ChoiceData:
    """The choice sample of a panel.

    Attributes
    ----------
    panel : ddc.panel.Panel
        The coded panel.
    frame : pandas.DataFrame or None
        The data as given (for columns that only some models read, e.g. ``increment``).
    used : numpy.ndarray of bool
        Which panel rows (in the panel's sorted order) enter the choice likelihood.
    counts : numpy.ndarray, shape (S, A)
        :math:`n(s, a)` over the used rows.
    stats : ddc.outofcore.SufficientStatistics or None
        When the data came as sufficient statistics (computed out of core): then ``panel``,
        ``frame`` and ``used`` are ``None``.
    notes : list of str
        What the data preparation did that the results must say (units left out).
    """

    panel: Panel | None
    frame: pd.DataFrame | None
    used: np.ndarray | None
    counts: np.ndarray
    stats: object | None = None
    notes: list[str] = field(default_factory=list)

    def require_rows(self, what: str) -> Panel:
        """The panel, or a clear error when only sufficient statistics were given."""
        if self.panel is None:
            raise TypeError(f"{what} needs the panel's rows; sufficient statistics "
                            "(ddc.outofcore) carry counts only. NFXP estimates from them; for "
                            "other estimators pass the panel")
        return self.panel

    @property
    def state(self) -> np.ndarray:
        """States of the used rows."""
        return self.panel.state[self.used]

    @property
    def action(self) -> np.ndarray:
        """Actions of the used rows."""
        return self.panel.action[self.used]

    @property
    def unit(self) -> np.ndarray:
        """Unit codes of the used rows (for clustering)."""
        return self.panel.unit[self.used]

    @property
    def nobs(self) -> int:
        """Rows in the choice sample."""
        return int(self.counts.sum()) if self.used is None else int(self.used.sum())

    @property
    def n_units(self) -> int:
        """Units (customers) in the data."""
        return self.stats.n_units if self.panel is None else self.panel.n_units

    def loglik(self, log_pi: np.ndarray) -> float:
        """:math:`\\sum_{s,a} n(s,a) \\log \\pi(a|s)` (cells with no count skipped)."""
        mask = self.counts > 0
        return float(np.sum(self.counts[mask] * log_pi[mask]))


def choice_data(model: Model, data: pd.DataFrame | Panel, drop_first: bool | None = None,
                impossible: str = "raise") -> ChoiceData:
    """Validate and code ``data`` for ``model`` and build its choice sample.

    Parameters
    ----------
    model : ddc.Model
        The model.
    data : pandas.DataFrame, ddc.panel.Panel or ddc.outofcore.SufficientStatistics
        The long panel, or its sufficient statistics computed out of core.
    drop_first : bool, optional
        Leave each unit's first period out of the choice likelihood (conditioning on it). By
        default ``model.metadata["choice_drops_first_period"]`` (true for Rust's bus data, whose
        published likelihoods condition on each bus's first month), else false.
    impossible : {"raise", "drop"}
        Data the model cannot have generated (an observed transition of probability zero under
        the model's transitions, :func:`estimators.first_stage.check_possible`) raise
        :class:`ddc.panel.ImpossibleTransitionError` naming the row, unit and states, or their
        units are left out and counted in :attr:`ChoiceData.notes`.

    Returns
    -------
    ChoiceData
    """
    from estimators.first_stage import check_possible

    if drop_first is None:
        drop_first = bool(model.metadata.get("choice_drops_first_period", False))
    if "ddc.outofcore" in sys.modules:  # sufficient statistics can only come from there
        from ddc.outofcore import SufficientStatistics

        if isinstance(data, SufficientStatistics):
            if data.model.space.shape != model.space.shape or \
                    data.model.actions != model.actions:
                raise ValueError("the sufficient statistics were computed for another model "
                                 f"({data.model!r})")
            check_possible(model, None, data)
            return ChoiceData(panel=None, frame=None, used=None,
                              counts=data.choice_counts(drop_first), stats=data)
    frame = data if isinstance(data, pd.DataFrame) else None
    panel, notes = check_possible(model, prepare(model, data), impossible=impossible)
    used = np.ones(panel.nobs, dtype=bool)
    if drop_first:
        first = np.ones(panel.nobs, dtype=bool)
        first[1:] = panel.unit[1:] != panel.unit[:-1]
        used &= ~first
    S, A = model.n_states, model.n_actions
    counts = np.bincount(panel.state[used] * A + panel.action[used], minlength=S * A)
    return ChoiceData(panel=panel, frame=frame, used=used, counts=counts.reshape(S, A),
                      notes=notes)


def setup(model: Model, data, drop_first: bool | None, estimator: str, start=None,
          needs_rows: bool = True, transitions=None):
    """The common start of every estimator's ``fit``.

    Validates and codes the data (:func:`choice_data`, refusing data the model cannot have
    generated), checks identification, estimates the transitions in a first stage
    (:func:`estimators.first_stage.estimate_transitions`), and returns the parameter vector to
    start from: utility parameters from ``start`` (zeros by default), transition parameters at
    their first-stage estimates. The estimator continues with ``ts.model``: the model itself,
    or a copy holding the estimated transition tables (nonparametric first stage); ``ts.notes``
    says what the first stage and the data preparation did.

    Parameters
    ----------
    model : ddc.Model
        The model.
    data : pandas.DataFrame, ddc.panel.Panel or ddc.outofcore.SufficientStatistics
        The data.
    drop_first : bool or None
        See :func:`choice_data`.
    estimator : str
        The estimator's name, for messages.
    start : pandas.Series, mapping or array, optional
        Starting values of (some of) the utility parameters.
    needs_rows : bool
        Whether the estimator needs the panel's rows (not only sufficient statistics).
    transitions : TransitionOptions, "estimate", "known" or None
        How the transitions are treated (:class:`estimators.first_stage.TransitionOptions`).

    Returns
    -------
    tuple
        ``(ChoiceData, TransitionEstimate, params)`` with ``params`` a Series over
        ``model.param_names``.
    """
    from estimators.first_stage import TransitionOptions, estimate_transitions
    from estimators.identification import check_identification

    options = TransitionOptions.of(transitions)
    cd = choice_data(model, data, drop_first, impossible=options.impossible)
    if needs_rows:
        cd.require_rows(estimator)
    check_identification(model, cd.counts)
    ts = estimate_transitions(model, cd.panel, cd.frame, stats=cd.stats, options=options)
    ts.notes = [*cd.notes, *ts.notes]
    params = model.params_series(starting_values(model, start))
    if len(ts.params):
        params[ts.params.index] = ts.params
    return cd, ts, params


def starting_values(model: Model, start=None) -> pd.Series:
    """Utility-parameter starting values: ``start`` where given, zeros elsewhere.

    Raises
    ------
    KeyError
        A name that is not a utility parameter.
    ValueError
        A value that is not finite.
    """
    names = model.utility_params
    if start is None:
        return pd.Series(0.0, index=names)
    given = pd.Series(start, index=names[: len(start)], dtype=float) \
        if isinstance(start, np.ndarray) else pd.Series(start, dtype=float)
    unknown = [k for k in given.index if k not in names]
    if unknown:
        raise KeyError(f"unknown starting value(s) {unknown}; the utility parameters are "
                       f"{names}")
    bad = given[~np.isfinite(given.to_numpy())]
    if len(bad):
        raise ValueError(f"starting values must be finite: {bad.to_dict()}")
    return given.reindex(names).fillna(0.0)
