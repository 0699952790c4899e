"""What the first stage is asked (:class:`TransitionOptions`) and what it returns
(:class:`TransitionEstimate`), the boundary constants, and :func:`transition_model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddc.model import Model

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
