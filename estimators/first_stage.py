"""First-stage estimation of the transitions, for any model, and the transition log-likelihood.

Which first stage runs depends on what the model declares:

* **A transition family with its own data** (``model.hooks.transition_family`` overriding
  :meth:`~ddc.hooks.TransitionFamily.statistics`, e.g. Rust's bus with
  :class:`ddc.transition_families.IncrementTransitions`): the family estimates itself from its
  additive statistics; NFXP's full-information stage and the out-of-core statistics call the
  same family.
* **Transition parameters** :math:`\\psi` (a callable transition function): maximum likelihood
  over the observed transitions,

  .. math:: \\ell_t(\\psi) = \\sum_{s, a, s'} n(s, a, s') \\log P(s' \\mid s, a; \\psi).

  Parameters the family declares to be probabilities of one distribution
  (:meth:`~ddc.hooks.TransitionFamily.simplex_groups`, last = 1 - sum) are optimized in a
  softmax parametrisation :math:`p_k = e^{z_k} / \\sum_l e^{z_l}` (the largest starting
  probability's logit fixed at 0), which cannot leave the simplex; a zero in the default
  transitions is moved into the interior before starting. The optimum is checked, not taken
  from the optimizer's flag: the Newton decrement :math:`g' (-H)^{-1} g` (the squared distance
  to the maximum in standard-error units) must be below ``tol`` and :math:`-H` positive
  definite, else :class:`ddc.ConvergenceError`. Derivatives are central differences in the
  unconstrained coordinates (the transition function is the user's; no analytic derivative
  exists in general); the covariance is :math:`J (-H_z)^{-1} J'` with :math:`J = \\partial
  \\psi / \\partial z`. Probabilities that end below :data:`BOUNDARY` (an outcome never
  observed) are set to zero and held there (zero variance; listed in the notes).
* **Fixed factored transitions** (no transition parameters): nonparametric cell frequencies.
  For each factor :math:`F_j(x' \\mid g)` (``g``: its conditioning variables and the action),

  .. math::

      \\hat F_j(x' \\mid g) = \\frac{C_j[g, x']}{\\sum_{y} C_j[g, y]},
      \\qquad \\widehat{\\mathrm{Var}}(\\hat F_j(\\cdot \\mid g)) =
      \\frac{\\mathrm{diag}(\\hat F) - \\hat F \\hat F'}{\\sum_y C_j[g, y]},

  with :math:`C_j` the observed counts. Structural zeros stay zero (an observed transition into
  one is refused in the data preparation, see :class:`ddc.panel.ImpossibleTransitionError`);
  rows with a single nonzero (deterministic) are not estimated; rows never visited keep the
  model's value and are listed (``unvisited="model"``) or raise (``unvisited="raise"``); rows no
  feasible action can reach are ignored. The estimators then use a copy of the model with the
  estimated tables (:attr:`TransitionEstimate.model`); standard errors of the utility
  parameters treat those tables as known (listed in the results' notes).
* ``TransitionOptions(known=True)`` (or ``transitions="known"`` on an estimator): the model's
  transitions are taken as known, nothing is estimated, and the transition log-likelihood is
  reported at them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddc.hooks import TransitionFamily
from ddc.model import Model
from ddc.panel import ImpossibleTransitionError, Panel, PanelError, TransitionCounts
from ddc.solver import ConvergenceError
from ddc.transitions import Factor, FactoredTransitions, TransitionDerivatives

__all__ = ["BOUNDARY", "FirstStageDraws", "TransitionEstimate", "TransitionOptions",
           "check_possible", "draw_first_stage", "estimate_transitions", "factor_counts",
           "first_stage_covariances", "first_stage_cross_derivative", "first_stage_view",
           "murphy_topel", "sum_zero_directions", "support_params",
           "transition_log_probs", "transition_loglik", "transition_model"]

#: Probabilities of a simplex group below this at the optimum are on the boundary: set to zero.
BOUNDARY = 1e-6
#: Probabilities of a declared family closer than this to the boundary are held fixed in a joint
#: (full-information) likelihood, whose derivatives take steps of this size.
FD_MARGIN = 1e-5
#: Share of the uniform distribution mixed into simplex starting values (a zero in the defaults
#: must not start the softmax at minus infinity).
INTERIOR_MIX = 0.1


@dataclass(frozen=True)
class TransitionOptions:
    """How the estimators treat the model's transitions (their first stage).

    Parameters
    ----------
    known : bool
        The transitions are known: take the model's as given, estimate nothing. By default
        they are estimated from the data (see :mod:`estimators.first_stage`).
    unvisited : {"model", "raise"}
        Nonparametric first stage: a row of a factor (a conditioning cell) that no observed
        transition visits keeps the model's value and is listed (``"model"``), or raises an
        error naming it (``"raise"``).
    impossible : {"raise", "drop"}
        An observed transition of probability zero under the model (data the model cannot
        have generated) raises :class:`ddc.panel.ImpossibleTransitionError` naming the row, the
        unit and the two states (``"raise"``), or its unit is left out of the estimation,
        counted and listed in the results' notes (``"drop"``).
    tol : float
        Parametric first stage: bound on the Newton decrement at the optimum.
    max_iter : int
        Parametric first stage: iterations of the optimizer.

    Examples
    --------
    >>> TransitionOptions.of("known")
    TransitionOptions(known=True, unvisited='model', impossible='raise', tol=1e-08, max_iter=500)
    """

    known: bool = False
    unvisited: str = "model"
    impossible: str = "raise"
    tol: float = 1e-8
    max_iter: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.known, bool):
            raise TypeError(f"TransitionOptions.known must be True or False; got {self.known!r}")
        if self.unvisited not in ("model", "raise"):
            raise ValueError(f"unvisited must be 'model' or 'raise'; got {self.unvisited!r}")
        if self.impossible not in ("raise", "drop"):
            raise ValueError(f"impossible must be 'raise' or 'drop'; got {self.impossible!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive; got {self.tol!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer; got {self.max_iter!r}")

    @classmethod
    def of(cls, value: TransitionOptions | str | None) -> TransitionOptions:
        """Options from an estimator's ``transitions=`` argument: ``None`` or ``"estimate"``
        (the default), ``"known"``, or a :class:`TransitionOptions`."""
        if value is None or value == "estimate":
            return cls()
        if value == "known":
            return cls(known=True)
        if isinstance(value, cls):
            return value
        raise ValueError(f"transitions must be 'estimate', 'known' or a TransitionOptions; got "
                         f"{value!r}")


#: The empty table of unvisited rows (copied: building a DataFrame costs a tenth of a
#: millisecond, a copy a twentieth of that).
_NO_UNVISITED = pd.DataFrame({"variable": pd.Series(dtype=object),
                              "given": pd.Series(dtype=object)})


@dataclass
class TransitionEstimate:
    """Transitions estimated in a first stage.

    Attributes
    ----------
    params : pandas.Series
        Estimated transition parameters (empty for a nonparametric or known first stage).
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
    model : ddc.Model
        The model the estimators use: the given one, or a copy with the estimated factor tables
        (nonparametric first stage).
    tables : dict of str to numpy.ndarray
        Nonparametric: the estimated table of every estimated factor, by variable.
    counts : dict of str to numpy.ndarray
        Nonparametric: the observed counts :math:`C_j[g, x']` in each factor's table shape.
    unvisited : pandas.DataFrame
        Nonparametric: the factor rows no observation visited, kept at the model's value
        (columns ``variable`` and ``given``, a dict of the conditioning values).
    boundary : list of str
        Parametric: parameters estimated on the simplex boundary (set to zero, held fixed).
    free : list of str
        Transition parameters a joint (full-information) likelihood may move.
    directions : pandas.DataFrame or None
        When not ``None``, a joint likelihood moves the :attr:`free` parameters only along
        these directions (rows: :attr:`free`; columns: the directions' labels; orthonormal
        columns :math:`D`, so :math:`\\psi = \\hat\\psi + D z`). Set when a distribution's
        implied last probability :math:`1 - \\sum_j \\psi_j` is on the simplex boundary: the
        directions :math:`\\sum_j d_j = 0` hold it there while the others move jointly.
    implied_held : str
        The implied last probability held on the boundary (e.g. ``"1 - (theta_30 + theta_31)
        = 0"``), when :attr:`directions` is set; empty otherwise.
    joint_fallback : str
        Why a joint likelihood can move none of the transition parameters although not all
        are on the boundary (empty when it can): a full-information estimator then falls back
        to the two-step estimate and must say so.
    sensitivity : pandas.DataFrame or None
        :math:`B = \\partial\\hat\\theta / \\partial\\psi'`, how the utility estimate
        that used this first stage moves with its free coordinates :math:`\\psi`
        (rows: utility parameters; columns: :attr:`FirstStageDraws.names`), recorded by the
        first-stage correction of the standard errors (:func:`first_stage_covariances`:
        :math:`A^{-1} C`; :func:`reestimation_covariances`: :math:`D`); ``None`` when no
        correction was computed. Counterfactual draws use it to move the utility parameters
        with drawn transitions.
    notes : list of str
        What the results should say about the first stage.
    """

    params: pd.Series
    cov: np.ndarray
    loglik: float
    nobs: int
    row_scores: np.ndarray
    method: str
    model: Model | None = None
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    unvisited: pd.DataFrame = field(default_factory=lambda: _NO_UNVISITED.copy())
    boundary: list[str] = field(default_factory=list)
    free: list[str] = field(default_factory=list)
    directions: pd.DataFrame | None = None
    implied_held: str = ""
    joint_fallback: str = ""
    notes: list[str] = field(default_factory=list)
    sensitivity: pd.DataFrame | None = None
    _loglik_fn: Callable | None = field(default=None, repr=False)
    _scores_fn: Callable | None = field(default=None, repr=False)
    _hessian_fn: Callable | None = field(default=None, repr=False)

    def table_cov(self, variable: str) -> np.ndarray:
        """Multinomial covariance of each estimated row of a factor: an array of the table's
        shape plus one more axis, ``cov[g][x, y]`` (zero for rows kept at the model's value)."""
        if variable not in self.tables:
            raise KeyError(f"no estimated table for {variable!r}; estimated: "
                           f"{list(self.tables)}")
        p, c = self.tables[variable], self.counts[variable]
        N = c.sum(axis=-1, keepdims=True)
        est = (N > 0) & ((p > 0).sum(axis=-1, keepdims=True) > 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = (np.einsum("...i,ij->...ij", p, np.eye(p.shape[-1]))
                   - p[..., :, None] * p[..., None, :]) / N[..., None]
        return np.where(est[..., None], cov, 0.0)

    def loglik_grad(self, params: pd.Series) -> tuple[float, np.ndarray]:
        """Transition log-likelihood and its gradient in :attr:`free` at full ``params``
        (``-inf`` where the transitions are not defined or an observation is impossible)."""
        if self._loglik_fn is None:
            return self.loglik, np.zeros(0)
        return self._loglik_fn(params)

    def loglik_hessian(self, params: pd.Series) -> np.ndarray:
        """Hessian of the transition log-likelihood in :attr:`free` at full ``params``: closed
        form when the transition family has one, else central differences of
        :meth:`loglik_grad`."""
        if self._hessian_fn is not None:
            H = self._hessian_fn(params)
            if H is not None:
                return H
        P = len(self.free)
        out = np.empty((P, P))
        for k, name in enumerate(self.free):
            h = 1e-5 * max(1.0, abs(params[name]))
            up, dn = params.copy(), params.copy()
            up[name] += h
            dn[name] -= h
            out[:, k] = (self.loglik_grad(up)[1] - self.loglik_grad(dn)[1]) / (2 * h)
        return out

    def scores_at(self, params: pd.Series) -> np.ndarray:
        """Per-row scores in :attr:`free` at full ``params``, shape (nobs_panel, len(free))."""
        return self._scores_fn(params)


def transition_model(results) -> Model:
    """The model with the transitions an estimate was made with: the results' model, or the copy
    holding the transition tables its first stage estimated (``results.extra["transitions"]``).
    Solve this one to reproduce the estimate's choice probabilities."""
    ts = getattr(results, "extra", {}).get("transitions")
    return ts.model if isinstance(ts, TransitionEstimate) and ts.model is not None else \
        results.model


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


# ---------------------------------------------------------------------- impossible transitions
def support_params(model: Model) -> pd.Series | None:
    """Parameters at which the data are checked for impossible transitions.

    The model's default transitions, except that the simplex groups its transition family
    declares are moved into the interior (a probability that is zero at the defaults but is
    a free parameter is not a structural zero). ``None`` for a model without transition
    parameters (its transitions are the fixed tables).
    """
    if len(model.transition_params) == 0:
        return None
    params = _base_params(model)
    fam = _family(model)
    # by position (label indexing of a string index costs a tenth of a millisecond a time)
    where = {n: i for i, n in enumerate(params.index.tolist())}
    values = params.to_numpy(dtype=float, copy=True)
    for group in (fam.simplex_groups(model) if fam is not None else []):
        pos = [where[n] for n in group]
        p = values[pos]
        full = np.append(p, max(0.0, 1.0 - p.sum()))
        full = (1 - INTERIOR_MIX) * full / full.sum() + INTERIOR_MIX / len(full)
        values[pos] = full[:-1]
    return pd.Series(values, index=params.index, name=params.name)


def check_possible(model: Model, panel: Panel | None, stats=None, impossible: str = "raise"
                   ) -> tuple[Panel | None, list[str]]:
    """Refuse (or drop) data the model cannot have generated.

    An observed transition :math:`(s, a, s')` with :math:`P(s' \\mid s, a) = 0` under the model
    (at :func:`support_params`) is impossible.

    Parameters
    ----------
    model : ddc.Model
    panel : ddc.panel.Panel or None
    stats : ddc.outofcore.SufficientStatistics, optional
        Used when ``panel`` is ``None`` (then only ``"raise"`` is possible: there are no rows).
    impossible : {"raise", "drop"}
        See :class:`TransitionOptions`.

    Returns
    -------
    panel : ddc.panel.Panel or None
        The panel, without the offending units when ``impossible="drop"``.
    notes : list of str
        One note per drop, saying how many units and rows were left out and the first ones.

    Raises
    ------
    ddc.panel.ImpossibleTransitionError
        Naming the first rows (unit, period, the two states, the factor at fault).
    """
    params = support_params(model)
    if panel is None:
        from ddc.data import StatisticsData

        try:  # the data protocol names the states and the factor at fault
            StatisticsData(stats).check_transitions(_base_params(model) if params is None
                                                    else params)
        except PanelError as err:
            raise ImpossibleTransitionError(
                f"{err} (to drop such units instead, pass the rows: a panel, not sufficient "
                "statistics)") from None
        return None, []
    if impossible == "raise":
        try:
            panel.check_transitions(params)
        except ImpossibleTransitionError as err:
            fam = _family(model)
            if len(model.transition_params) and (fam is None or not fam.simplex_groups(model)):
                raise ImpossibleTransitionError(
                    f"{err} (The check uses the model's default transition parameters "
                    f"{model.transition_params.to_dict()}; if a zero among them is a free "
                    "probability, declare it with ddc.transition_families.SimplexParameters: "
                    "the check then uses an interior point)", err.rows) from None
            raise
        return panel, []
    rows = panel.impossible_rows(params)
    if rows.size == 0:
        return panel, []
    units = np.unique(panel.unit[rows])
    dropped = int(np.isin(panel.unit, units).sum())
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v)
                      for v in panel.ids[units[:5]])
    note = (f"{units.size} unit(s) ({dropped} rows) left out: their data show transitions of "
            f"probability 0 under the model ({rows.size} such rows; {panel.id_col} {shown}"
            f"{', ...' if units.size > 5 else ''})")
    return panel.without_units(units), [note]


# ---------------------------------------------------------------------- entry point
def estimate_transitions(model: Model, panel, frame: pd.DataFrame | None = None,
                         stats=None, options: TransitionOptions | None = None
                         ) -> TransitionEstimate:
    """Estimate the model's transitions from the data (the first stage).

    Parameters
    ----------
    model : ddc.Model
    panel : ddc.data.EstimationData, ddc.panel.Panel or None
        The data (the estimators pass the data protocol, which also reads extra columns through
        the column mapping), or the coded panel; ``None`` with sufficient statistics ``stats``
        (then ``row_scores`` is empty).
    frame : pandas.DataFrame, optional
        The data as given (a transition family may read extra columns).
    stats : ddc.outofcore.SufficientStatistics, optional
    options : TransitionOptions, optional

    Returns
    -------
    TransitionEstimate
        See :mod:`estimators.first_stage` for which first stage runs.
    """
    from ddc.data import EstimationData

    data = None
    if isinstance(panel, EstimationData):
        data, panel, frame, stats = panel, panel.panel, panel.frame, panel.stats
    if panel is None and stats is None:
        raise TypeError("estimate_transitions needs a panel or sufficient statistics")
    options = options or TransitionOptions()
    n_rows = panel.nobs if panel is not None else 0
    P = len(model.transition_params)
    if options.known or (P == 0 and not isinstance(model.transitions(), FactoredTransitions)):
        return _known(model, panel, stats, n_rows, options)
    if P == 0:
        return _nonparametric(model, _transition_counts(panel, stats), n_rows, options)
    if _own_data(model):
        return _from_family(model, panel, frame, stats, n_rows, data)
    return _parametric(model, panel, stats, n_rows, options)


def _known(model, panel, stats, n_rows, options) -> TransitionEstimate:
    tc = _transition_counts(panel, stats)
    params = _base_params(model)
    ll = float(np.sum(tc.n * transition_log_probs(model, params, tc.s, tc.a, tc.s_next))) \
        if len(tc.n) else 0.0
    P = len(model.transition_params)
    why = "declared known" if options.known else "sparse transitions, not estimated"
    notes = [f"transitions known ({why}); transition log-likelihood reported at them"]
    return TransitionEstimate(pd.Series(dtype=float), np.zeros((0, 0)), ll, int(np.sum(tc.n)),
                              np.zeros((n_rows, 0)), f"known ({why})", model=model,
                              notes=notes if P == 0 or options.known else [])


# ---------------------------------------------------------------------- nonparametric
def factor_counts(model: Model, tc: TransitionCounts) -> dict[str, np.ndarray]:
    """Observed counts per factor of the model's (fixed) factored transitions, in each table's
    shape: :math:`C_j[g, x'] = \\sum n(s, a, s') 1[G_j(s, a) = g] 1[x_j(s') = x']`."""
    trans = model.transitions()
    out = {}
    for factor in trans.factors:
        rows = _given_rows(model, factor, tc.s, tc.a)
        nxt = model.space.code_of(factor.variable)[tc.s_next]
        K = factor.table.shape[-1]
        c = np.bincount(rows * K + nxt, weights=tc.n.astype(np.float64),
                        minlength=factor.table.size)
        out[factor.variable] = np.rint(c).astype(np.int64).reshape(factor.table.shape)
    return out


def _given_rows(model: Model, factor: Factor, s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Flat row index of ``factor``'s table (C order over ``given``) for states and actions."""
    codes = [a if g == "action" else model.space.code_of(g)[s] for g in factor.given]
    if not codes:
        return np.zeros(len(s), dtype=np.int64)
    return np.ravel_multi_index(tuple(np.asarray(c, dtype=np.int64) for c in codes),
                                factor.table.shape[:-1]).astype(np.int64)


def _reachable_rows(model: Model, factor: Factor) -> np.ndarray:
    """Rows of ``factor`` that some feasible (state, action) uses."""
    s, a = np.nonzero(model.feasible)
    out = np.zeros(int(np.prod(factor.table.shape[:-1])), dtype=bool)
    out[_given_rows(model, factor, s, a)] = True
    return out


def _row_label(model: Model, factor: Factor, r: int) -> dict:
    idx = np.unravel_index(r, factor.table.shape[:-1])
    out = {}
    for g, i in zip(factor.given, idx, strict=True):
        v = model.actions[int(i)] if g == "action" else model.space.variable(g).values[int(i)]
        out[g] = v.item() if isinstance(v, np.generic) else v
    return out


def _nonparametric(model: Model, tc: TransitionCounts, n_rows: int,
                   options: TransitionOptions) -> TransitionEstimate:
    trans = model.transitions()
    counts = factor_counts(model, tc)
    factors, tables, kept_counts, unvisited = [], {}, {}, []
    n_cells = 0
    for factor in trans.factors:
        T = factor.table
        K = T.shape[-1]
        rows = T.reshape(-1, K)
        C = counts[factor.variable].reshape(-1, K)
        support = rows > 0
        off = np.argwhere((C > 0) & ~support)
        if len(off):  # the data preparation refuses these first; kept as a guard
            r, x = off[0]
            raise ImpossibleTransitionError(
                f"transition factor of {factor.variable!r}: {int(C[r, x])} observed "
                f"transition(s) from {_row_label(model, factor, int(r))} to "
                f"{factor.variable}={model.space.variable(factor.variable).values[x]!r}, which the "
                "model declares impossible (a structural zero)")
        random = support.sum(axis=1) > 1
        if not random.any():
            factors.append(factor)  # deterministic: nothing to estimate
            continue
        N = C.sum(axis=1)
        est = random & (N > 0)
        missing = random & (N == 0) & _reachable_rows(model, factor)
        if missing.any() and options.unvisited == "raise":
            r = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"transition factor of {factor.variable!r}: the row "
                f"{_row_label(model, factor, r)} is never visited in the data "
                f"({int(missing.sum())} such row(s)), so its distribution cannot be estimated. "
                "Pass TransitionOptions(unvisited='model') to keep the model's values there, or "
                "transitions='known'")
        new = rows.copy()
        new[est] = C[est] / N[est, None]
        unvisited += [(factor.variable, _row_label(model, factor, int(r)))
                      for r in np.flatnonzero(missing)]
        n_cells += int(est.sum())
        tables[factor.variable] = new.reshape(T.shape)
        kept_counts[factor.variable] = C.reshape(T.shape)
        factors.append(Factor(factor.variable, new.reshape(T.shape), given=factor.given))
    est_model = model.replace(transitions=FactoredTransitions(factors)) if tables else model
    ll = float(np.sum(tc.n * transition_log_probs(est_model, _base_params(model), tc.s, tc.a,
                                                  tc.s_next))) if len(tc.n) else 0.0
    notes = []
    if tables:
        notes.append(f"transitions estimated by cell frequencies ({', '.join(tables)}: "
                     f"{n_cells} conditioning rows)")
    if unvisited:
        shown = "; ".join(f"{v} | {g}" for v, g in unvisited[:3])
        notes.append(f"{len(unvisited)} transition row(s) never visited in the data kept at the "
                     f"model's values (first: {shown})")
    method = "cell frequencies (nonparametric)" if tables else \
        "deterministic transitions (nothing to estimate)"
    return TransitionEstimate(
        pd.Series(dtype=float), np.zeros((0, 0)), ll, int(np.sum(tc.n)), np.zeros((n_rows, 0)),
        method, model=est_model, tables=tables, counts=kept_counts,
        unvisited=pd.DataFrame(unvisited, columns=["variable", "given"]), notes=notes)


# ---------------------------------------------------------------------- a declared family
def _from_family(model: Model, panel, frame, stats, n_rows, data=None) -> TransitionEstimate:
    fam = _family(model)
    names = list(model.transition_params.index)
    # the family's columns read once: for the statistics and for the rows' scores
    fframe = _family_frame(model, panel, frame, data) if panel is not None else None
    st = fam.statistics(model, fframe) if fframe is not None else \
        family_statistics(model, panel, frame, stats, data)
    est, cov = fam.estimate(model, st)
    ll, _ = fam.loglik(model, est, st)
    p = np.append(est.to_numpy(), 1.0 - est.sum()) if [names] == fam.simplex_groups(model) \
        else None
    # NFXP's joint stage differentiates with steps of FD_MARGIN: keep clear of the boundary
    fallback, directions, implied = "", None, ""
    if p is not None:
        free = [n for n, pj in zip(names, p[:-1], strict=True) if pj > FD_MARGIN]
        boundary = [n for n in names if n not in free]
        if p[-1] <= FD_MARGIN * len(p):
            # the implied last probability 1 - sum(psi) is on the boundary: every step of one
            # parameter moves it, and a step up leaves the simplex. Steps that keep the sum of
            # the free parameters fixed hold it there and move the others jointly.
            implied = f"1 - ({' + '.join(names)}) = {p[-1]:.3g}"
            if len(free) >= 2:
                directions = sum_zero_directions(free)
            else:
                fallback = (f"the implied last probability {implied} is on the simplex "
                            "boundary (that outcome was never observed) and at most one other "
                            "probability is inside it, so no transition parameter can move "
                            "without leaving the simplex")
                free, implied = [], ""
    else:
        free, boundary = names, []
    where = [names.index(n) for n in free]

    def loglik_fn(params):
        val, g = fam.loglik(model, params[names], st)
        return val, g[where]

    def scores_fn(params):
        return fam.row_scores(model, params[names], fframe)[:, where]

    def hessian_fn(params):
        try:
            H = fam.hessian(model, params[names], st)
        except NotImplementedError:
            return None
        return H[np.ix_(where, where)]

    scores = fam.row_scores(model, est, fframe) if fframe is not None else np.zeros((0, len(names)))
    return TransitionEstimate(est, cov, ll, int(np.sum(st)), scores, fam.describe(), model=model,
                              boundary=boundary, free=free, directions=directions,
                              implied_held=implied, joint_fallback=fallback,
                              _loglik_fn=loglik_fn, _scores_fn=scores_fn,
                              _hessian_fn=hessian_fn)


def sum_zero_directions(names: list[str]) -> pd.DataFrame:
    """An orthonormal basis of the directions :math:`d` with :math:`\\sum_j d_j = 0` over
    ``names`` (rows) -- the moves of probabilities that keep their sum, and so the implied
    last probability :math:`1 - \\sum_j \\psi_j`, fixed. Columns are labelled
    ``"sum-zero direction k of (names)"``."""
    m = len(names)
    if m < 2:
        raise ValueError(f"sum-zero directions need at least two parameters, got {names}")
    span = np.eye(m)[:, : m - 1] - 1.0 / m  # e_k - 1/m: independent, each sums to zero
    Q, _ = np.linalg.qr(span)
    Q -= Q.mean(axis=0)  # exact zero sums (QR leaves rounding)
    Q /= np.linalg.norm(Q, axis=0)
    what = f"({names[0]}..{names[-1]})" if m > 2 else f"({names[0]}, {names[1]})"
    return pd.DataFrame(Q, index=list(names),
                        columns=[f"sum-zero direction {k + 1} of {what}" for k in range(m - 1)])


# ---------------------------------------------------------------------- parametric
class _Coordinates:
    """The map from unconstrained coordinates :math:`z` to transition parameters :math:`\\psi`:
    softmax within each simplex group (reference: the largest starting probability, logit 0),
    identity elsewhere."""

    def __init__(self, names: list[str], groups: list[list[str]], start: pd.Series):
        self.names = names
        self.groups = []  # (positions of the free probabilities in names, reference index)
        in_group = set()
        z_parts = []
        self.fixed_zero: set[str] = set()
        for g in groups:
            pos = [names.index(n) for n in g]
            p = np.append(start[g].to_numpy(), max(0.0, 1.0 - start[g].sum()))
            p = (1 - INTERIOR_MIX) * p / p.sum() + INTERIOR_MIX / len(p)
            ref = int(np.argmax(p))
            self.groups.append((pos, ref))
            z_parts.append(np.log(np.delete(p, ref) / p[ref]))
            in_group.update(pos)
        self.plain = [i for i in range(len(names)) if i not in in_group]
        self.z0 = np.concatenate([*z_parts, start.to_numpy()[self.plain]]) if names else \
            np.zeros(0)
        self.zero_mask = np.zeros(len(self.z0), dtype=bool)  # boundary coordinates (p = 0)

    def psi(self, z: np.ndarray) -> np.ndarray:
        out = np.empty(len(self.names))
        k = 0
        for pos, ref in self.groups:
            m = len(pos)
            zz = z[k:k + m].copy()
            zz[self.zero_mask[k:k + m]] = -np.inf
            full = np.insert(zz, ref, 0.0)
            e = np.exp(full - full.max())
            p = e / e.sum()
            out[pos] = p[:-1]
            k += m
        out[self.plain] = z[k:]
        return out

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        """:math:`\\partial \\psi / \\partial z` (analytic softmax derivative)."""
        J = np.zeros((len(self.names), len(z)))
        k = 0
        psi = self.psi(z)
        for pos, ref in self.groups:
            m = len(pos)
            p = np.append(psi[pos], 1.0 - psi[pos].sum())
            # d p_i / d z_l = p_i (1[i = l] - p_l), over the non-reference outcomes l
            others = [i for i in range(m + 1) if i != ref]
            for c, l in enumerate(others):
                d = p * ((np.arange(m + 1) == l) - p[l])
                J[pos, k + c] = d[:-1]
            k += m
        for c, i in enumerate(self.plain):
            J[i, k + c] = 1.0
        return J

    def rebase(self, z: np.ndarray) -> np.ndarray:
        """The same point with each group's reference the largest probability (a reference
        heading for zero would send the other logits to infinity)."""
        psi = self.psi(z)
        parts, mask = [], []
        for j, (pos, _) in enumerate(self.groups):
            p = np.append(psi[pos], 1.0 - psi[pos].sum())
            ref = int(np.argmax(p))
            self.groups[j] = (pos, ref)
            others = np.delete(p, ref)
            zero = others <= 0
            with np.errstate(divide="ignore"):
                parts.append(np.where(zero, 0.0, np.log(np.where(zero, 1.0, others) / p[ref])))
            mask.append(zero)
        k = sum(len(pos) for pos, _ in self.groups)
        self.zero_mask = np.concatenate([*mask, self.zero_mask[k:]]) if mask else self.zero_mask
        return np.concatenate([*parts, z[k:]]) if parts else z

    def boundary_names(self, z: np.ndarray) -> list[str]:
        """Free probabilities at the boundary, and the coordinates to fix there."""
        psi = self.psi(z)
        out = []
        k = 0
        for pos, ref in self.groups:
            m = len(pos)
            p = np.append(psi[pos], 1.0 - psi[pos].sum())
            others = [i for i in range(m + 1) if i != ref]
            for c, i in enumerate(others):
                if p[i] < BOUNDARY:
                    self.zero_mask[k + c] = True
                    if i < m:
                        out.append(self.names[pos[i]])
            k += m
        return out


def _triple_log_probs(model: Model, params: np.ndarray, s: np.ndarray, a: np.ndarray,
                      s_next: np.ndarray) -> np.ndarray:
    """:math:`\\log P(s' \\mid s, a)` at full parameters ``params``, read from the factor tables
    the transition function returns (no compilation: the first stage evaluates it often)."""
    trans = model.transitions(params)
    if not isinstance(trans, FactoredTransitions):
        return transition_log_probs(model, params, s, a, s_next)
    space = model.space
    out = np.zeros(len(s))
    covered = set()
    with np.errstate(divide="ignore"):
        for factor in trans.factors:
            K = factor.table.shape[-1]
            rows = _given_rows(model, factor, s, a)
            p = factor.table.reshape(-1, K)[rows, space.code_of(factor.variable)[s_next]]
            out += np.log(p)
            covered.add(factor.variable)
    for name in space.names:
        if name not in covered:
            out[space.code_of(name)[s] != space.code_of(name)[s_next]] = -np.inf
    return out


def _parametric(model: Model, panel: Panel | None, stats, n_rows: int,
                options: TransitionOptions) -> TransitionEstimate:
    """Maximum likelihood over the observed transitions in unconstrained coordinates.

    BHHH steps with a backtracking line search (the per-triple Jacobian of
    :math:`\\log P` by central differences gives the gradient :math:`J'n` and the information
    :math:`J' \\mathrm{diag}(n) J`), then Newton steps with the Hessian (central differences of
    the gradient) until the Newton decrement is below ``tol`` and the Hessian is negative
    definite, which decide convergence."""
    names = list(model.transition_params.index)
    fam = _family(model)
    groups = fam.simplex_groups(model) if fam is not None else []
    tc = _transition_counts(panel, stats)
    if len(tc.n) == 0:
        raise ValueError("no observed transitions: the transition parameters cannot be "
                         "estimated (pass transitions='known' to use the model's)")
    base = _base_params(model)
    base_vec = base.to_numpy().copy()
    K = len(model.utility_params)
    coords = _Coordinates(names, groups, model.transition_params)
    n = tc.n.astype(np.float64)

    cache: dict[bytes, np.ndarray | None] = {}

    def logp(psi: np.ndarray) -> np.ndarray | None:
        key = np.asarray(psi, dtype=np.float64).tobytes()
        if key in cache:
            return cache[key]
        vec = base_vec.copy()
        vec[K:] = psi
        try:
            lp = _triple_log_probs(model, vec, tc.s, tc.a, tc.s_next)
        except (ValueError, FloatingPointError):
            lp = None  # the transition function refuses these parameters
        if lp is not None and not np.all(np.isfinite(lp)):
            lp = None
        if len(cache) > 256:
            cache.clear()
        cache[key] = lp
        return lp

    def ll(z: np.ndarray) -> float:
        lp = logp(coords.psi(z))
        return -np.inf if lp is None else float(n @ lp)

    def free_idx() -> np.ndarray:
        return np.flatnonzero(~coords.zero_mask)

    def jac(z: np.ndarray) -> np.ndarray:
        """Per-triple derivatives of log P in the free coordinates: central differences, or
        one-sided where the transition function refuses one side (a parameter outside its
        domain: declare it with SimplexParameters to avoid this)."""
        idx = free_idx()
        J = np.zeros((len(n), len(idx)))
        mid = logp(coords.psi(z))
        for c, k in enumerate(idx):
            h = 1e-5 * max(1.0, abs(z[k]))
            e = np.zeros(len(z))
            e[k] = h
            up, dn = logp(coords.psi(z + e)), logp(coords.psi(z - e))
            if up is not None and dn is not None:
                J[:, c] = (up - dn) / (2 * h)
            elif up is not None and mid is not None:
                J[:, c] = (up - mid) / h
            elif dn is not None and mid is not None:
                J[:, c] = (mid - dn) / h
            else:
                raise ConvergenceError(
                    f"the transition function refuses both sides of {names[k]!r} = "
                    f"{coords.psi(z)[k]!r}; declare the parameter's constraint (e.g. "
                    "SimplexParameters) so the first stage can stay inside its domain")
        return J

    def grad(z: np.ndarray) -> np.ndarray:
        return jac(z).T @ n

    def hess(z: np.ndarray) -> np.ndarray:
        idx = free_idx()
        H = np.zeros((len(idx), len(idx)))
        for c, k in enumerate(idx):
            h = 1e-4 * max(1.0, abs(z[k]))
            e = np.zeros(len(z))
            e[k] = h
            H[:, c] = (grad(z + e) - grad(z - e)) / (2 * h)
        return 0.5 * (H + H.T)

    z = coords.z0.copy()
    if not np.isfinite(ll(z)):
        raise ValueError(
            "the observed transitions have probability zero (or the transition function "
            "refuses the parameters) at the starting transition parameters "
            f"{dict(zip(names, coords.psi(z).round(6), strict=True))}; declare the "
            "probabilities with ddc.transition_families.SimplexParameters so the first stage "
            "starts inside the simplex, or give defaults under which the data are possible")

    def step_from(z, direction, slope, f0):
        lam = 1.0
        for _ in range(60):
            trial = z.copy()
            trial[free_idx()] += lam * direction
            f = ll(trial)
            if np.isfinite(f) and f >= f0 + 1e-4 * lam * slope:
                return trial, f
            lam *= 0.5
        return None, f0

    boundary: list[str] = []
    f = ll(z)
    decrement, H, stage, it, done = np.inf, None, "BHHH", 0, False
    for it in range(1, options.max_iter + 1):  # noqa: B007
        J = jac(z)
        g = J.T @ n
        if stage == "BHHH":
            info = J.T @ (n[:, None] * J)
        else:
            H = hess(z)
            info = -H
        try:
            d = np.linalg.solve(info, g)
        except np.linalg.LinAlgError:
            d = np.linalg.lstsq(info, g, rcond=None)[0]
        decrement = float(g @ d)
        if decrement < options.tol:
            if stage == "Newton":
                done = True
                break
            stage = "Newton"
            continue
        new, f_new = step_from(z, d, decrement, f)
        if new is None:
            if stage == "BHHH":
                stage = "Newton"
                continue
            break
        z, f = coords.rebase(new), f_new
        fixed_before = coords.zero_mask.sum()
        boundary += coords.boundary_names(z)
        if coords.zero_mask.sum() > fixed_before:
            f, stage = ll(z), "BHHH"
    if not done:  # the checks below use the Hessian at the last point
        H, g = hess(z), grad(z)
        try:
            decrement = float(g @ np.linalg.solve(-H, g))
        except np.linalg.LinAlgError:
            decrement = np.inf
    eig = np.linalg.eigvalsh(-H) if H.size else np.ones(1)
    if not (np.isfinite(decrement) and decrement < options.tol and np.all(eig > 0)):
        raise ConvergenceError(
            f"first-stage maximum likelihood of the transition parameters {names} did not reach "
            f"a maximum in {it} iterations: Newton decrement {decrement:.3g} (must be < "
            f"{options.tol:g}), smallest eigenvalue of the negative Hessian {eig.min():.3g} "
            "(must be > 0). Declare probabilities with SimplexParameters, check that the data "
            "identify every parameter (a conditioning value never observed does not), or give "
            "better defaults")
    psi = coords.psi(z)
    idx = free_idx()
    Jz = coords.jacobian(z)[:, idx]
    cov = Jz @ np.linalg.inv(-H) @ Jz.T
    est = pd.Series(psi, index=names)
    boundary = [nm for nm in names if nm in set(boundary)]
    # a group whose implied last probability is on the boundary cannot move in a joint stage
    held = set(boundary)
    for g_ in groups:
        if 1.0 - est[g_].sum() < FD_MARGIN:
            held.update(g_)
    free = [nm for nm in names if nm not in held]
    where = [names.index(nm) for nm in free]
    # these groups are held whole (this first stage's central differences cannot step along
    # the boundary, unlike a family's closed-form likelihood): when that holds every transition
    # parameter, a joint stage is the two-step estimator and must say so
    fallback = ""
    if held - set(boundary) and not free:
        fallback = ("the implied last probability of the simplex group(s) "
                    f"{[g_ for g_ in groups if 1.0 - est[g_].sum() < FD_MARGIN]} is on the "
                    "boundary (that outcome was never observed), and a parametric first stage "
                    "holds such a group whole, so no transition parameter can move")
    notes = []
    if boundary:
        notes.append(f"transition parameter(s) {boundary} estimated on the simplex boundary "
                     "(an outcome never observed): set to 0 and held there")
    if held - set(boundary):
        notes.append(f"transition parameter(s) {sorted(held - set(boundary))} whose implied "
                     "last probability is on the boundary are held at their first-stage values "
                     "in a joint likelihood")

    # full-information hooks: log-likelihood, gradient and row scores in the free parameters
    in_group = {names.index(nm): g for g in groups for nm in g}

    def step(psi_: np.ndarray, k: int) -> float:
        """A central-difference step that keeps a probability and its group's last one
        inside [0, 1]."""
        h = 1e-6 * max(1.0, abs(psi_[k]))
        if k in in_group:
            last = 1.0 - sum(psi_[names.index(m)] for m in in_group[k])
            h = min(h, 0.5 * psi_[k], 0.5 * last)
        return h

    def loglik_fn(params: pd.Series):
        psi_ = params[names].to_numpy()
        lp = logp(psi_)
        if lp is None or not np.all(np.isfinite(lp[n > 0])):
            return -np.inf, np.zeros(len(free))
        g = np.zeros(len(free))
        for c, k in enumerate(where):
            h = step(psi_, k)
            up, dn = psi_.copy(), psi_.copy()
            up[k] += h
            dn[k] -= h
            lu, ld = logp(up), logp(dn)
            if lu is None or ld is None:
                return -np.inf, g
            g[c] = float(n @ (lu - ld)) / (2 * h)
        return float(n @ lp), g

    def scores_fn(params: pd.Series):
        out = np.zeros((n_rows, len(free)))
        if panel is None:
            return out
        has = panel.next_state >= 0
        s, a, sn = panel.state[has], panel.action[has], panel.next_state[has]
        vec = params.to_numpy().copy()
        for c, k in enumerate(where):
            h = step(vec[K:], k)
            up, dn = vec.copy(), vec.copy()
            up[K + k] += h
            dn[K + k] -= h
            out[has, c] = (transition_log_probs(model, up, s, a, sn)
                           - transition_log_probs(model, dn, s, a, sn)) / (2 * h)
        return out

    full = base.copy()
    full[names] = psi
    row_scores = np.zeros((n_rows, len(names)))
    row_scores[:, where] = scores_fn(full)
    method = "maximum likelihood over observed transitions" + \
        (f" ({len(groups)} simplex group(s), softmax)" if groups else "")
    return TransitionEstimate(est, cov, f, int(n.sum()), row_scores, method, model=model,
                              boundary=boundary, free=free, notes=notes,
                              joint_fallback=fallback,
                              _loglik_fn=loglik_fn, _scores_fn=scores_fn)


# ---------------------------------------------------------------------- inference
def _cell_layout(ts: TransitionEstimate) -> tuple[list[tuple], list[str]]:
    """The free cells of a nonparametric estimate: in each estimated row (visited, more than
    one positive cell) the positive cells except the largest (``last``, one minus the others).
    Returns ``[(variable, row, free cells, last, start), ...]`` (``start``: the position of the
    row's first free cell among all) and the cells' names ``"<var>[<given>]-><value>"``."""
    model = ts.model
    names, layout = [], []
    for var, table in ts.tables.items():
        K = table.shape[-1]
        rows = table.reshape(-1, K)
        N = ts.counts[var].reshape(-1, K).sum(axis=1)
        factor = next(f for f in model.transitions().factors if f.variable == var)
        vals = model.space.variable(var).values
        for r in np.flatnonzero((N > 0) & ((rows > 0).sum(axis=1) > 1)):
            p = rows[r]
            pos = np.flatnonzero(p > 0)
            last = int(pos[np.argmax(p[pos])])
            free = [int(c) for c in pos if c != last]
            label = ", ".join(f"{k}={v}" for k, v in _row_label(model, factor, int(r)).items())
            layout.append((var, int(r), free, last, len(names)))
            names += [f"{var}[{label}]->{vals[c]}" for c in free]
    return layout, names


@dataclass
class FirstStageDraws:
    """Draws of a first-stage transition estimate from its sampling distribution
    (:func:`draw_first_stage`).

    Attributes
    ----------
    names : list of str
        The first stage's free coordinates :math:`\\psi`: the free cells of a nonparametric
        estimate (:func:`_cell_layout`) or the free transition parameters.
    estimate : numpy.ndarray
        :math:`\\hat\\psi`, shape (P,).
    delta : numpy.ndarray
        :math:`\\psi_d - \\hat\\psi`, shape (D, P).
    cov : numpy.ndarray
        :math:`V_\\psi`, the first stage's covariance of :math:`\\hat\\psi` (P, P).
    tables : list of dict or None
        Nonparametric: per draw, every estimated variable's drawn table (the estimate's shape).
    what : str
        A phrase naming what is drawn.
    """

    names: list[str]
    estimate: np.ndarray
    delta: np.ndarray
    cov: np.ndarray
    tables: list[dict[str, np.ndarray]] | None
    what: str

    @property
    def values(self) -> np.ndarray:
        """:math:`\\psi_d`, shape (D, P)."""
        return self.estimate[None, :] + self.delta

    def transitions(self, base: FactoredTransitions, d: int) -> FactoredTransitions:
        """``base`` with the estimated factors' tables of draw ``d`` (nonparametric)."""
        drawn = self.tables[d]
        return FactoredTransitions([Factor(f.variable, drawn[f.variable], given=f.given)
                                    if f.variable in drawn else f for f in base.factors])


def draw_first_stage(ts: TransitionEstimate, n_draws: int, seed=None
                     ) -> FirstStageDraws | None:
    """Draws of the first stage's estimate from its sampling distribution, or ``None`` when
    nothing was estimated.

    * Cell frequencies: each estimated row (its positive cells, with counts :math:`C_j`) is
      drawn from the Dirichlet distribution :math:`\\mathrm{Dir}(C_1, \\dots, C_J)`, the
      posterior of the multinomial cell probabilities under the improper prior
      :math:`\\prod_j p_j^{-1}`: mean :math:`\\hat p = C / N`, covariance
      :math:`(\\mathrm{diag}(\\hat p) - \\hat p \\hat p') / (N + 1)` (the estimate's
      :math:`/N` to first order), every draw a probability distribution; cells never observed
      stay zero and unvisited or deterministic rows at their value.
    * Transition parameters: :math:`\\psi_d \\sim N(\\hat\\psi, V_\\psi)` over the free
      parameters (the boundary ones held at zero). Draws outside the transition function's
      domain (a probability below zero) are for the caller to count and leave out.

    Parameters
    ----------
    ts : TransitionEstimate
    n_draws : int
    seed : int, numpy.random.SeedSequence or None
        Seed of :func:`numpy.random.default_rng`.
    """
    rng = np.random.default_rng(seed)
    if ts.tables:
        layout, names = _cell_layout(ts)
        P = len(names)
        est = np.zeros(P)
        delta = np.zeros((n_draws, P))
        drawn = {var: np.repeat(t.reshape(1, -1, t.shape[-1]), n_draws, axis=0)
                 for var, t in ts.tables.items()}
        # one gamma variate per positive cell of every estimated row, draw after draw (so the
        # first n of more draws are the n draws of the same seed)
        alpha = np.concatenate([ts.counts[var].reshape(-1, ts.tables[var].shape[-1])[r][
            [*free, last]] for var, r, free, last, _ in layout]).astype(float)
        gammas = rng.standard_gamma(np.broadcast_to(alpha, (n_draws, len(alpha))))
        at = 0
        blocks = []
        for var, r, free, last, start in layout:
            K = ts.tables[var].shape[-1]
            p = ts.tables[var].reshape(-1, K)[r]
            c = ts.counts[var].reshape(-1, K)[r]
            pos = [*free, last]
            g = gammas[:, at:at + len(pos)]
            at += len(pos)
            drawn[var][:, r, pos] = g / g.sum(axis=1, keepdims=True)
            est[start:start + len(free)] = p[free]
            delta[:, start:start + len(free)] = drawn[var][:, r, free] - p[free]
            pf = p[free]
            blocks.append((start, (np.diag(pf) - np.outer(pf, pf)) / c.sum()))
        cov = np.zeros((P, P))
        for start, b in blocks:
            cov[start:start + len(b), start:start + len(b)] = b
        tables = [{var: drawn[var][d].reshape(ts.tables[var].shape) for var in drawn}
                  for d in range(n_draws)]
        return FirstStageDraws(names, est, delta, cov, tables,
                               f"{P} estimated transition cells")
    if len(ts.params) and ts.free:
        where = [list(ts.params.index).index(n) for n in ts.free]
        V = ts.cov[np.ix_(where, where)]
        V = 0.5 * (V + V.T)
        w, Q = np.linalg.eigh(V)
        if w.min() < -1e-10 * max(1.0, w.max()):
            raise ValueError(f"the first stage's covariance is not positive semi-definite "
                             f"(smallest eigenvalue {w.min():.3g}); transitions cannot be drawn")
        z = rng.standard_normal((n_draws, len(where)))
        delta = (z * np.sqrt(np.clip(w, 0, None))) @ Q.T
        return FirstStageDraws(list(ts.free), ts.params[ts.free].to_numpy(dtype=float), delta,
                               V, None, f"{len(where)} first-stage transition parameters")
    return None


@dataclass
class CellView:
    """The nonparametric first stage seen as parameters: the free cells of every estimated row
    (:func:`_cell_parts`).

    Attributes
    ----------
    ts : TransitionEstimate
        The first stage.
    psi : pandas.Series
        The free cells' estimates, named ``variable[given values]->next value``.
    cov : numpy.ndarray
        Their multinomial covariance (block diagonal by row).
    layout : list of tuple
        ``(variable, row, free cells, last cell, position in psi)`` per estimated row
        (:func:`_cell_layout`).
    triple_scores : numpy.ndarray or None
        ``(T + 1, P)``: the transition scores of each distinct observed :math:`(s, a, s')` of
        the panel (:attr:`ddc.panel.Panel.transition_counts`), and a last row of zeros.
    triple : numpy.ndarray or None
        ``(n_rows,)``: each panel row's triple (``T`` for a row without a next state).
    """

    ts: TransitionEstimate
    psi: pd.Series
    cov: np.ndarray
    layout: list
    triple_scores: np.ndarray | None
    triple: np.ndarray | None

    @property
    def model(self) -> Model:
        """The parametric model: transition parameters = the cells, defaults = the
        estimates."""
        ts, layout = self.ts, self.layout
        base = ts.model.transitions()
        by_var = {f.variable: f for f in base.factors}

        def transitions(tp: pd.Series) -> FactoredTransitions:
            x = tp.to_numpy(dtype=float)
            tables = {v: by_var[v].table.reshape(-1, by_var[v].table.shape[-1]).copy()
                      for v in ts.tables}
            for var, r, free, last, start in layout:
                row = tables[var][r]
                row[free] = x[start:start + len(free)]
                row[last] = 1.0 - row[free].sum()
                if np.any(row < 0):
                    raise ValueError(f"cell probabilities of {var} row {r} leave the simplex")
            return FactoredTransitions([
                Factor(f.variable, tables[f.variable].reshape(f.table.shape), given=f.given)
                if f.variable in tables else f for f in base.factors])

        return ts.model.replace(transitions=transitions, transition_params=self.psi,
                                true_params=None)

    def derivatives(self) -> TransitionDerivatives:
        """The derivatives of the transitions in the cells, exact: moving free cell ``c`` of
        row ``r`` by :math:`h` moves the row's last cell by :math:`-h`, so the derivative of the
        factor's table is :math:`e_{r,c} - e_{r,\\mathrm{last}}` (the other factors unchanged);
        compiled for :meth:`ddc.Solution.d2logccp_dtheta_dpsi`."""
        model = self.ts.model
        base = model.transitions()
        by_var = {f.variable: f for f in base.factors}
        first = []
        for var, r, free, last, _start in self.layout:
            shape = by_var[var].table.shape
            for c in free:
                d = np.zeros(shape).reshape(-1, shape[-1])
                d[r, c], d[r, last] = 1.0, -1.0
                first.append([base.compile(model.space, model.n_actions,
                                           tables={var: d.reshape(shape)})])
        return TransitionDerivatives(list(self.psi.index), np.zeros(len(first)), first, None,
                                     model.n_states, model.n_actions)


def _cell_parts(ts: TransitionEstimate, panel: Panel | None) -> CellView:
    """The nonparametric estimate as parameters: the free cells of every estimated row
    (:func:`_cell_layout`), their multinomial covariance and, with a panel, the transition
    scores per distinct observed triple (a row's scores depend on its :math:`(s, a, s')`
    only)."""
    model = ts.model
    layout, names = _cell_layout(ts)
    values, blocks = [], []
    for var, r, free, _, start in layout:
        K = ts.tables[var].shape[-1]
        p = ts.tables[var].reshape(-1, K)[r]
        N = ts.counts[var].reshape(-1, K)[r].sum()
        values += [float(p[c]) for c in free]
        pf = p[free]
        blocks.append((start, (np.diag(pf) - np.outer(pf, pf)) / N))
    P = len(names)
    cov = np.zeros((P, P))
    for start, b in blocks:
        cov[start:start + len(b), start:start + len(b)] = b
    psi = pd.Series(values, index=names, dtype=float)
    per_triple = which = None
    if panel is not None:
        by_var = {f.variable: f for f in model.transitions().factors}
        tc = panel.transition_counts
        rows, inverse = panel.triple_of_row
        per_triple = np.zeros((len(tc.n) + 1, P))
        for var, r, free, last, start in layout:
            at = np.flatnonzero(_given_rows(model, by_var[var], tc.s, tc.a) == r)
            nxt = model.space.code_of(var)[tc.s_next[at]]
            p = ts.tables[var].reshape(-1, by_var[var].table.shape[-1])[r]
            for c, cell in enumerate(free):
                per_triple[at, start + c] = np.where(nxt == cell, 1.0 / p[cell], 0.0) \
                    - np.where(nxt == last, 1.0 / p[last], 0.0)
        which = np.full(panel.nobs, len(tc.n))
        which[rows] = inverse
    return CellView(ts, psi, cov, layout, per_triple, which)


def _cell_view(ts: TransitionEstimate, panel: Panel | None):
    """The nonparametric estimate as parameters (:func:`_cell_parts`): the parametric model
    (transition parameters = cells, defaults = the estimates), the cells, their multinomial
    covariance and the per-row transition scores (``None`` without a panel)."""
    view = _cell_parts(ts, panel)
    scores = None if panel is None else view.triple_scores[view.triple]
    return view.model, view.psi, view.cov, scores


@dataclass
class _RowKinds:
    """The rows of a panel by kind: ``key[i]`` is row ``i``'s kind, and a per-row quantity that
    depends on the kind only is a table with a row per kind (:func:`_row_kinds`)."""

    key: np.ndarray
    count: np.ndarray
    choice: np.ndarray
    corrected: np.ndarray

    def outer(self, table: np.ndarray) -> np.ndarray:
        """:math:`\\sum_i x_i x_i'` over the panel's rows, :math:`x_i` = the row's ``table``
        row."""
        return (table * self.count[:, None]).T @ table

    def group_sums(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """Within-group sums of the corrected scores (``n_groups x K``)."""
        from estimators._kernels import keyed_group_sums

        out = np.zeros((n_groups, self.corrected.shape[1]))
        keyed_group_sums(np.ascontiguousarray(groups, dtype=np.int64), self.key,
                         np.ascontiguousarray(self.corrected), out)
        return out


def _row_kinds(view: CellView, panel: Panel, cell_scores: np.ndarray, used: np.ndarray | None,
               CV: np.ndarray) -> _RowKinds:
    """The kinds of the panel's rows for the Murphy-Topel scores: a row with a next state is of
    the kind of its triple :math:`(s, a, s')` (``0 .. T-1``), a unit's last row of the kind of
    its cell :math:`(s, a)` (``T + s A + a``), and rows outside the choice sample (``used``
    false) of the same kinds shifted by ``T + S A``, their choice score being zero. ``choice``
    holds the choice scores :math:`s_\\theta` by kind, ``corrected`` the corrected scores
    :math:`s_\\theta + C V_\\psi s_\\psi`."""
    S, A, K = cell_scores.shape
    tc = panel.transition_counts
    T = len(tc.n)
    n_kinds = T + S * A
    triple = view.triple
    key = np.where(triple < T, triple, T + panel.state * A + panel.action)
    if used is not None and not used.all():
        key[~used] += n_kinds
    by_cell = np.ascontiguousarray(cell_scores, dtype=np.float64).reshape(S * A, K)
    choice = np.zeros((2 * n_kinds, K))
    choice[:T] = by_cell[tc.s * A + tc.a]
    choice[T:n_kinds] = by_cell
    corrected = choice.copy()
    trans = view.triple_scores[:T] @ CV.T
    corrected[:T] += trans
    corrected[n_kinds:n_kinds + T] += trans
    count = np.bincount(key, minlength=2 * n_kinds).astype(np.float64)
    return _RowKinds(key.astype(np.int64, copy=False), count, choice, corrected)


#: Largest number of first-stage parameters the covariance correction handles.
MAX_CORRECTED = 2_000


def first_stage_covariances(ts: TransitionEstimate, counts: np.ndarray, solver, params: pd.Series,
                            hessian: np.ndarray, scores: np.ndarray | None,
                            groups: np.ndarray | None, panel: Panel | None,
                            solution=None, cell_scores: np.ndarray | None = None,
                            used: np.ndarray | None = None
                            ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Covariances of the utility parameters that account for the first stage (Murphy and
    Topel 1985).

    With :math:`A = -\\partial^2 \\ell_c / \\partial\\theta\\partial\\theta'`,
    :math:`C = \\partial^2 \\ell_c / \\partial\\theta \\partial\\psi' = \\sum_{s,a} n(s,a)\\,
    \\partial^2 \\log\\pi(a \\mid s) / \\partial\\theta\\partial\\psi'` in the first-stage
    parameters :math:`\\psi` (the free transition parameters, or the free cells of a
    nonparametric estimate), analytic by the second-order implicit function theorem
    (:meth:`ddc.Solution.d2logccp_dtheta_dpsi`: one solve of the factorized policy system,
    no fixed point solved again), :math:`V_\\psi` the first stage's covariance and
    :math:`s_{\\psi i}` its per-row scores, the estimate expands as
    :math:`\\hat\\theta - \\theta \\approx A^{-1} \\sum_i (s_{\\theta i} + C V_\\psi s_{\\psi i})`,
    the two stages' scores being uncorrelated (they are the choice and transition parts of one
    likelihood). So

    * ``"hessian"``: :math:`A^{-1} + A^{-1} C V_\\psi C' A^{-1}`;
    * ``"opg"``, ``"sandwich"``, ``"cluster"``: the usual formulas with the corrected scores
      :math:`\\tilde s_i = s_{\\theta i} + C V_\\psi s_{\\psi i}` (``"opg"`` as
      :math:`B^{-1} \\tilde G'\\tilde G B^{-1}`, :math:`B = G'G`).

    Records :math:`B = A^{-1} C` (:math:`\\partial\\hat\\theta / \\partial\\psi'`) as
    ``ts.sensitivity``.

    Parameters
    ----------
    ts : TransitionEstimate
        The first stage.
    counts : numpy.ndarray
        The choice counts :math:`n(s, a)`.
    solver : ddc.Solver
        Solves the model when ``solution`` is not given.
    params : pandas.Series
        All parameters at the estimate.
    hessian : numpy.ndarray
        Hessian of the choice log-likelihood in the utility parameters.
    scores : numpy.ndarray or None
        Per-row choice scores :math:`s_{\\theta i}` (``n_rows x K``; ``None``: the
        ``"hessian"`` kind only).
    groups : numpy.ndarray or None
        The unit of each row (``"cluster"``).
    panel : ddc.panel.Panel or None
        The coded panel (transition scores).
    solution : ddc.Solution, optional
        The solution at ``params`` of ``ts.model`` (solved here when not given).
    cell_scores, used : numpy.ndarray, optional
        The choice scores by state and action (S, A, K) and the mask of the panel's rows in the
        choice sample, of which ``scores`` is the per-row form: given with a nonparametric
        first stage, every product and group sum runs over the kinds of rows (a row's
        corrected score depends on its state, action, next state and whether it is in the
        choice sample only), not over the rows.

    Returns
    -------
    covs : dict
        Corrected covariances by kind (empty when nothing was estimated); pass them as the
        results' ``extra_covs`` (they replace the uncorrected built-in kinds).
    notes : list of str
    """
    from estimators.likelihood import ChoiceLikelihood

    kinds = None
    if ts.tables:
        view = _cell_parts(ts, panel)
        psi, Vpsi, what = view.psi, view.cov, f"{len(view.psi)} estimated transition cells"
        S = None
        if panel is not None and scores is not None:
            if cell_scores is not None:  # by kinds of rows: no (rows x P) arrays

                def kinds(CV):
                    return _row_kinds(view, panel, cell_scores, used, CV)
            else:
                S = view.triple_scores[view.triple]
    else:
        got = first_stage_view(ts, panel)
        if got is None:
            return {}, []
        _, psi, Vpsi, S, what = got
    if len(psi) > MAX_CORRECTED:
        return {}, [f"standard errors do not account for the {what} (more than "
                    f"{MAX_CORRECTED}: the correction is not computed)"]
    sol = solution
    if sol is None:
        sol = ChoiceLikelihood(ts.model, counts, solver).solve(params)
    if not sol.converged or not np.all(np.isfinite(sol.V)):
        raise RuntimeError("the fixed point did not converge at the estimate; cannot correct "
                           "the standard errors for the first stage")
    dtrans = view.derivatives() if ts.tables else \
        sol.transition_derivatives(list(psi.index))
    C = np.einsum("sa,saij->ij", counts, sol.d2logccp_dtheta_dpsi(dtrans))
    covs = murphy_topel(hessian, scores, groups, C, Vpsi, S, kinds)
    util = list(ts.model.utility_params)
    ts.sensitivity = pd.DataFrame(np.linalg.solve(-np.asarray(hessian), C), index=util,
                                  columns=list(psi.index))
    return covs, [f"standard errors account for the {what} (Murphy-Topel)"]


def first_stage_view(ts: TransitionEstimate, panel: Panel | None):
    """The first stage as parameters :math:`\\psi` for a covariance correction: the free
    transition parameters, or the free cells of a nonparametric estimate (:func:`_cell_view`).

    Returns
    -------
    tuple or None
        ``(pmodel, psi, Vpsi, S, what)``: the model with :math:`\\psi` as its transition
        parameters, their values (Series), covariance, per-row transition scores (``None``
        without a panel) and a phrase naming them; ``None`` when nothing was estimated.
    """
    if ts.tables:
        pmodel, psi, Vpsi, S = _cell_view(ts, panel)
        return pmodel, psi, Vpsi, S, f"{len(psi)} estimated transition cells"
    if len(ts.params) and ts.free:
        where = [list(ts.params.index).index(n) for n in ts.free]
        S = ts.row_scores[:, where] if panel is not None else None
        return (ts.model, ts.params[ts.free], ts.cov[np.ix_(where, where)], S,
                f"{len(ts.free)} first-stage transition parameters")
    return None


def first_stage_cross_derivative(grad, full: pd.Series, names, cells: bool, n_out: int
                                 ) -> np.ndarray:
    """:math:`C = \\partial g / \\partial \\psi'` by central differences of the gradient
    ``grad(params)`` (a vector of length ``n_out``) in the entries ``names`` of ``full``, step
    :math:`10^{-6}\\max(1, |\\psi_j|)` (at most half a cell probability)."""
    C = np.zeros((n_out, len(names)))
    for k, name in enumerate(names):
        h = 1e-6 * max(1.0, abs(full[name]))
        if cells:
            h = min(h, 0.5 * full[name])
        up, dn = full.copy(), full.copy()
        up[name] += h
        dn[name] -= h
        g_up, g_dn = grad(up), grad(dn)
        if g_up is None or g_dn is None:
            raise RuntimeError(f"the choice likelihood is not finite near the first-stage "
                               f"estimate in {name}; cannot correct the standard errors")
        C[:, k] = (g_up - g_dn) / (2 * h)
    return C


def murphy_topel(hessian: np.ndarray, scores: np.ndarray | None, groups: np.ndarray | None,
                 C: np.ndarray, Vpsi: np.ndarray, S: np.ndarray | None,
                 kinds: Callable[[np.ndarray], _RowKinds] | None = None
                 ) -> dict[str, np.ndarray]:
    """Murphy-Topel covariances from the Hessian :math:`H = -A`, the scores :math:`G` (rows
    grouped by ``groups``), the cross derivative :math:`C`, the first stage's covariance
    :math:`V_\\psi` and its scores :math:`S` on the same rows (see
    :func:`first_stage_covariances`). Instead of ``S``, ``kinds(C V_psi)`` may give the rows by
    kind (:func:`_row_kinds`): the products and group sums then run over the kinds."""
    from estimators.inference import group_sums

    A = -np.asarray(hessian)
    Ainv = np.linalg.inv(A)
    CV = C @ Vpsi
    covs = {"hessian": Ainv + Ainv @ CV @ C.T @ Ainv}
    if scores is not None and (S is not None or kinds is not None):
        if kinds is not None:
            rk = kinds(CV)
            n = rk.key.size
            GG, GtGt = rk.outer(rk.choice), rk.outer(rk.corrected)

            def sums_by_group(n_groups):
                return rk.group_sums(groups, n_groups)
        else:
            G = np.asarray(scores)
            Gt = G + S @ CV.T
            n = Gt.shape[0]
            GG, GtGt = G.T @ G, Gt.T @ Gt

            def sums_by_group(n_groups):
                return group_sums(groups, Gt, n_groups)
        Binv = np.linalg.inv(GG)
        covs["opg"] = Binv @ GtGt @ Binv
        covs["sandwich"] = Ainv @ GtGt @ Ainv
        if groups is not None:
            k = GG.shape[0]
            n_groups = int(np.max(groups)) + 1
            if n_groups >= 2 and n > k:
                sums = sums_by_group(n_groups)
                factor = n_groups / (n_groups - 1.0) * (n - 1.0) / (n - k)
                covs["cluster"] = factor * (Ainv @ (sums.T @ sums) @ Ainv)
    return {kind: 0.5 * (v + v.T) for kind, v in covs.items()}


def reestimation_covariances(estimator, prep, fit, inf) -> tuple[dict[str, np.ndarray],
                                                                   list[str]]:
    """First-stage correction for an estimator that is not a likelihood maximizer (CCP, PQR):
    the delta method over re-estimation.

    With :math:`\\hat\\theta(\\psi)` the estimator's estimate on the same choice data when the
    first-stage parameters :math:`\\psi` (free transition parameters, or the free cells of a
    nonparametric estimate) are moved, :math:`D = \\partial\\hat\\theta/\\partial\\psi'` --
    from the estimator's own ``_estimate_jacobian(prep, fit, dtrans)`` when it has one (CCP:
    the implicit function theorem on its first-order condition, given the derivatives
    ``dtrans`` of the transitions), else by central differences (two re-estimations per
    parameter) -- and

    .. math:: V = V_{own} + D V_\\psi D',

    for every covariance kind the estimator offers; the two terms are independent to first
    order, the choice and transition parts being separate factors of the likelihood.

    Records :math:`D` as ``prep.transitions.sensitivity``.

    Records :math:`D` as ``prep.transitions.sensitivity``.

    Returns
    -------
    covs : dict
        Corrected covariances by kind (the built-in kinds and the estimator's own), to pass as
        ``extra_covs``; empty when nothing was estimated.
    notes : list of str
    """
    from estimators.inference import Ingredients, NotAvailableError, covariance

    ts = prep.transitions
    util = list(ts.model.utility_params)
    if ts.tables:
        view = _cell_parts(ts, None)
        psi, Vpsi = view.psi, view.cov
        what = f"{len(psi)} estimated transition cells"
    elif len(ts.params) and ts.free:
        view, psi = None, ts.params[ts.free]
        where = [list(ts.params.index).index(n) for n in ts.free]
        Vpsi = ts.cov[np.ix_(where, where)]
        what = f"{len(psi)} first-stage transition parameters"
    else:
        return {}, []
    if len(psi) > MAX_CORRECTED:
        return {}, [f"standard errors do not account for the {what} (more than "
                    f"{MAX_CORRECTED}: the correction is not computed)"]
    jacobian = getattr(estimator, "_estimate_jacobian", None)
    if jacobian is not None:  # the estimator differentiates its own estimate
        from ddc.solver import transition_derivatives

        base = prep.params.copy()
        base[util] = fit.params[util]
        dtrans = view.derivatives() if ts.tables else \
            transition_derivatives(ts.model, base, list(psi.index))
        D = jacobian(prep, fit, dtrans)
        how = "its derivative in them by the implicit function theorem"
    else:
        D = _reestimated_jacobian(estimator, prep, fit, view, psi, util)
        how = f"{2 * len(psi)} re-estimations"
    ts.sensitivity = pd.DataFrame(D, index=util, columns=list(psi.index))
    add = D @ Vpsi @ D.T
    groups = inf.groups
    ing = Ingredients(names=inf.names, hessian=inf.hessian, scores=inf.scores,
                      group_codes=None if groups is None else np.asarray(groups),
                      n_groups=None if groups is None else int(np.max(groups)) + 1,
                      precomputed=dict(inf.extra_covs or {}), score_kinds=inf.score_kinds)
    covs = {}
    for kind in ("hessian", "opg", "sandwich", "cluster", *(inf.extra_covs or {})):
        try:
            covs[kind] = covariance(kind, ing) + add
        except (NotAvailableError, ValueError, np.linalg.LinAlgError):
            continue
    return covs, [f"standard errors account for the {what} (delta method, {how})"]


def _reestimated_jacobian(estimator, prep, fit, view: CellView | None, psi: pd.Series,
                          util: list[str], names: list[str] | None = None) -> np.ndarray:
    """:math:`\\partial\\hat\\theta / \\partial\\psi'` by central differences: two
    re-estimations per first-stage parameter (the columns of ``names``, all by default)."""
    import dataclasses

    ts = prep.transitions
    pmodel = view.model if ts.tables else ts.model
    names = list(psi.index) if names is None else list(names)
    D = np.zeros((len(util), len(names)))
    for k, name in enumerate(names):
        h = 1e-6 * max(1.0, abs(psi[name]))
        if ts.tables or name in {n for g in _simplex(ts.model) for n in g}:
            h = min(h, 0.5 * psi[name])
        thetas = []
        for sign in (1.0, -1.0):
            moved = psi.copy()
            moved[name] += sign * h
            if ts.tables:  # the cells are the parameters of the moved model
                model_k = pmodel.replace(transition_params=moved)
                base = model_k.params_series(fit.params[util].to_numpy())
                prep_k = dataclasses.replace(prep, params=base, transitions=dataclasses.replace(
                    ts, model=model_k))
            else:
                prep_k = prep
                base = prep.params.copy()
                base[moved.index] = moved
                base[util] = fit.params[util]
            thetas.append(estimator._estimate(prep_k, base).params[util].to_numpy())
        D[:, k] = (thetas[0] - thetas[1]) / (2 * h)
    return D


def _simplex(model: Model) -> list[list[str]]:
    fam = _family(model)
    return fam.simplex_groups(model) if fam is not None else []
