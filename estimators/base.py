"""The estimator template: what every estimator's ``fit`` does, written once.

:meth:`Estimator.fit` runs the same steps for every estimator:

1. **data**: :func:`ddc.data.estimation_data` validates and codes the data (a DataFrame, a coded
   panel or out-of-core sufficient statistics, with the column mapping ``id_col=``,
   ``time_col=``, ``action_col=``, ``columns=``) into the one data protocol
   :class:`ddc.data.EstimationData`;
2. **identification**: :func:`estimators.identification.check_identification` (collinear features,
   actions never chosen where they are feasible);
3. **first stage**: the transition parameters (:mod:`estimators.first_stage`); an observed
   transition the model cannot make is a named error;
4. **estimation** from each starting value (``start=`` or several, ``starts=``): the estimator's
   own :meth:`Estimator._estimate`;
5. **inference**: the estimator's own :meth:`Estimator._inference` (Hessian, scores, covariances);
6. **convergence**: :func:`check_convergence` -- the optimizer stopped by its rule, the objective
   is finite, the scaled gradient is small and the Hessian negative definite -- and one failure
   policy (``on_failure="warn"``: :class:`ddc.ConvergenceWarning`; ``"raise"``:
   :class:`ddc.ConvergenceError`);
7. **results**: one :class:`~estimators.results.EstimationResults`.

Numerical exceptions from numpy and scipy (a singular matrix, an overflow) never reach the user
raw: they become a :class:`ddc.ConvergenceError` naming the estimator, the step and a remedy.
BLAS threads are limited once, around the whole fit (:func:`ddc.solver.small_blas`).

:data:`ESTIMATORS` is the one registry of estimators (key -> class) that the command line, the
Monte Carlo and cross-validation read; :func:`get_estimator` looks a key up.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ddc.data import EstimationData, RowsUnavailable, estimation_data
from ddc.model import Model
from ddc.panel import PanelError
from ddc.solver import ConvergenceError, ConvergenceWarning, Solver, small_blas
from estimators.results import EstimationResults

__all__ = ["ESTIMATORS", "Convergence", "Estimator", "Fit", "Inference", "Prepared",
           "check_convergence", "get_estimator", "prepare", "register", "starting_values"]

#: Newton decrement :math:`g'(-H)^{-1}g` below which the gradient counts as zero: the Newton
#: step left is :math:`\\sqrt{10^{-3}} \\approx 0.03` standard errors long, and the
#: log-likelihood could rise by at most about :math:`5 \\cdot 10^{-4}`.
GRADIENT_TOL = 1e-3
#: Relative gap in the objective between the optima reached from different starting values
#: above which they count as different optima.
OPTIMA_RTOL = 1e-6

#: The estimator registry: key (as the command line spells it) -> class.
ESTIMATORS: dict[str, type[Estimator]] = {}


def register(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator adding an estimator to :data:`ESTIMATORS` under ``cls.key``."""
    key = cls.key
    if key in ESTIMATORS and ESTIMATORS[key] is not cls:
        raise ValueError(f"estimator key {key!r} is already taken by {ESTIMATORS[key].__name__}")
    ESTIMATORS[key] = cls
    return cls


def get_estimator(name: str) -> type[Estimator]:
    """The estimator class registered as ``name`` (its key such as ``"nfxp"`` or its name such as
    ``"MaxEntIRL"``, any case).

    Raises
    ------
    KeyError
        Naming the registered keys.
    """
    wanted = str(name).lower()
    for key, cls in ESTIMATORS.items():
        if wanted in (key, cls.name.lower()):
            return cls
    raise KeyError(f"no estimator {name!r}; registered: {sorted(ESTIMATORS)}")


# ------------------------------------------------------------------------------ convergence
@dataclass(frozen=True)
class Convergence:
    """The convergence checks of a fit; true only when every one holds.

    Attributes
    ----------
    optimizer : bool
        The optimizer (or fixed-point iteration) stopped by its own rule.
    finite : bool
        The objective (log-likelihood) is finite at the estimate.
    gradient : bool
        The scaled gradient is small: the Newton decrement :math:`g'(-H)^{-1}g` (with the
        Hessian when it is negative definite, else :math:`\\sum_k g_k^2 / |H_{kk}|`) is below
        :data:`GRADIENT_TOL`.
    hessian : bool
        The Hessian of the objective is negative definite (its smallest eigenvalue after scaling
        to unit diagonal is below zero by more than rounding).
    decrement : float
        The scaled gradient.
    min_eigenvalue : float
        Largest eigenvalue of the scaled Hessian (negative when it is negative definite).
    message : str
        The optimizer's message.
    detail : tuple of str
        One sentence per failed check, saying what failed and what to do.
    """

    optimizer: bool
    finite: bool
    gradient: bool
    hessian: bool
    decrement: float = float("nan")
    min_eigenvalue: float = float("nan")
    message: str = ""
    detail: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.optimizer and self.finite and self.gradient and self.hessian

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [k for k in ("optimizer", "finite", "gradient", "hessian") if not getattr(self, k)]

    def describe(self) -> str:
        """One paragraph: converged, or which checks failed and why."""
        if self:
            return (f"converged: {self.message}; log-likelihood finite, Newton decrement "
                    f"{self.decrement:.1e}, Hessian negative definite")
        return "; ".join(self.detail)

    def __str__(self) -> str:
        return self.describe()


def check_convergence(objective: float, grad: np.ndarray | None, hessian: np.ndarray | None,
                      optimizer_ok: bool, message: str = "", names: Sequence[str] = (),
                      gradient_tol: float = GRADIENT_TOL) -> Convergence:
    """Check a maximum: finite objective, small scaled gradient, negative definite Hessian.

    Parameters
    ----------
    objective : float
        The maximized objective at the estimate.
    grad : numpy.ndarray or None
        Its gradient in the estimated parameters (``None``: not available, the check fails).
    hessian : numpy.ndarray or None
        Its Hessian (``None``: not available, the check fails).
    optimizer_ok : bool
        Whether the optimizer stopped by its own rule.
    message : str
        The optimizer's message.
    names : sequence of str
        Parameter names, for the messages.
    gradient_tol : float
        Bound on the Newton decrement.

    Returns
    -------
    Convergence
    """
    names = list(names)
    detail = []
    if not optimizer_ok:
        detail.append(f"the optimizer did not stop by its rule ({message})")
    finite = bool(np.isfinite(objective))
    if not finite:
        detail.append(f"the log-likelihood is {objective} at the estimate")
    H = None if hessian is None else np.asarray(hessian, dtype=float)
    g = None if grad is None else np.asarray(grad, dtype=float)
    concave, top = False, np.nan
    if H is None or H.size == 0 and g is not None and g.size:
        detail.append("the Hessian is not available at the estimate")
    elif not np.all(np.isfinite(H)):
        detail.append("the Hessian has non-finite entries at the estimate")
    elif H.size:
        d = np.sqrt(np.abs(np.diag(H)))
        if np.all(d > 0):
            R = H / np.outer(d, d)
            eig, vec = np.linalg.eigh(0.5 * (R + R.T))
            top = float(eig[-1])
            concave = top < -1e-10
            if not concave:
                v = vec[:, -1]
                who = [names[k] for k in np.flatnonzero(np.abs(v) > 0.3 * np.abs(v).max())] \
                    if names else []
                detail.append(f"the Hessian is not negative definite (largest scaled eigenvalue "
                              f"{top:.2g}{', direction ' + ', '.join(who) if who else ''}): the "
                              "point is not a strict maximum; try other starting values "
                              "(starts=[...])")
        else:
            flat = [names[k] if names else str(k) for k in np.flatnonzero(d == 0)]
            detail.append(f"the Hessian is singular: the objective does not move with "
                          f"{', '.join(flat)} at the estimate (not identified there)")
    else:
        concave = True  # nothing estimated
    decrement = np.nan
    if g is None:
        detail.append("the gradient is not available at the estimate")
        small = False
    elif not np.all(np.isfinite(g)):
        detail.append("the gradient is not finite at the estimate")
        small = False
    elif g.size == 0:
        small, decrement = True, 0.0
    else:
        if concave:
            decrement = float(g @ np.linalg.solve(-H, g))
        elif H is not None and np.all(np.isfinite(H)):
            with np.errstate(divide="ignore", invalid="ignore"):
                decrement = float(np.sum(np.where(g != 0, g**2 / np.abs(np.diag(H)), 0.0)))
        else:
            decrement = np.inf
        small = bool(np.isfinite(decrement) and decrement < gradient_tol)
        if not small:
            k = int(np.argmax(np.abs(g)))
            detail.append(f"the gradient is not zero (Newton decrement {decrement:.2g} >= "
                          f"{gradient_tol:g}; largest component "
                          f"{names[k] if names else k}: {g[k]:.3g})")
    return Convergence(bool(optimizer_ok), finite, small, concave, decrement, top, message,
                       tuple(detail))


# ------------------------------------------------------------------------------ the template
@dataclass
class Prepared:
    """The common start of every fit: the data, the first stage and the base parameter vector.

    Attributes
    ----------
    data : ddc.data.EstimationData
        The data.
    transitions : estimators.first_stage.TransitionEstimate
        The first stage.
    params : pandas.Series
        All parameters: utility parameters at zero, transition parameters at their first-stage
        estimates.
    """

    data: EstimationData
    transitions: Any
    params: pd.Series


@dataclass
class Fit:
    """What one estimation run returns (from one starting value).

    Attributes
    ----------
    params : pandas.Series
        All parameters at the estimate.
    objective : float
        The maximized objective (used to compare starting values).
    grad : numpy.ndarray or None
        Its gradient in the estimated parameters at the estimate.
    optimizer_converged : bool
        Whether the optimizer stopped by its own rule.
    message : str
        The optimizer's message.
    iterations, function_evals : int or None
        Counts.
    notes : list of str
        Notes for the summary.
    state : dict
        The estimator's own intermediate results, for its inference step.
    """

    params: pd.Series
    objective: float
    grad: np.ndarray | None
    optimizer_converged: bool
    message: str = ""
    iterations: int | None = None
    function_evals: int | None = None
    notes: list[str] = field(default_factory=list)
    state: dict = field(default_factory=dict)


@dataclass
class Inference:
    """What an estimator's inference step returns (the results object is built from it).

    ``curvature`` is the Hessian of the maximized objective in the estimated parameters for the
    convergence check (default: ``hessian``); ``gradient`` overrides the fit's gradient.
    """

    names: list[str]
    hessian: np.ndarray | None
    loglik: float
    loglik_parts: dict
    scores: np.ndarray | None = None
    groups: np.ndarray | None = None
    cov_type: str = "hessian"
    extra_covs: dict | None = None
    solution: Any = None
    extra: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    curvature: np.ndarray | None = None
    gradient: np.ndarray | None = None
    check_curvature: bool = True


class Estimator:
    """Base class of the estimators: :meth:`fit` runs the template; subclasses supply the steps.

    Subclasses set :attr:`name` (for summaries), :attr:`key` (for the registry and the command
    line), :attr:`takes_start` (whether starting values mean anything) and implement
    :meth:`_estimate` and :meth:`_inference`.

    Parameters
    ----------
    model : ddc.Model
        The model.
    solver : ddc.Solver, optional
        The Bellman solver (and linear-solver choice).
    drop_first : bool, optional
        Leave each unit's first period out of the choice likelihood (default:
        ``model.hooks.layout.drop_first_period``).
    on_failure : {"warn", "raise"}
        What a fit that did not converge does: warn (:class:`ddc.ConvergenceWarning`, and
        ``converged`` is false) or raise :class:`ddc.ConvergenceError`.
    transitions : {"estimate", "known"} or estimators.first_stage.TransitionOptions
        The first stage of the transitions: estimated from the data (default; see
        :mod:`estimators.first_stage`) or declared known, and what unvisited cells and
        impossible transitions do.
    """

    name: ClassVar[str] = "Estimator"
    key: ClassVar[str] = ""
    takes_start: ClassVar[bool] = False
    #: whether the estimator needs the panel's rows (not only sufficient statistics)
    needs_rows: ClassVar[bool] = True
    #: how the standard errors account for an estimated first stage of the transitions:
    #: ``"own"`` (the estimator's inference does it, e.g. Murphy-Topel for likelihood
    #: maximizers) or ``"reestimate"`` (the template adds :math:`D V_\psi D'`, with
    #: :math:`D` from re-estimating at moved first-stage parameters;
    #: :func:`estimators.first_stage.reestimation_covariances`)
    first_stage_correction: ClassVar[str] = "own"

    def __init__(self, model: Model, solver: Solver | None = None,
                 drop_first: bool | None = None, on_failure: str = "warn",
                 transitions=None):
        from estimators.first_stage import TransitionOptions

        if not isinstance(model, Model):
            raise TypeError(f"{self.name} needs a ddc.Model, got {type(model).__name__}")
        if on_failure not in ("warn", "raise"):
            raise ValueError(f"on_failure must be 'warn' or 'raise', got {on_failure!r}")
        if solver is not None and not isinstance(solver, Solver):
            raise TypeError(f"solver must be a ddc.Solver, got {type(solver).__name__}")
        self.model = model
        self.solver = solver or Solver()
        self.drop_first = drop_first
        self.on_failure = on_failure
        self.transitions = TransitionOptions.of(transitions)

    def __repr__(self) -> str:
        return f"{self.name}({self.model.name})"

    # ------------------------------------------------------------------ the template
    def fit(self, data, start=None, *, starts: Sequence | None = None, id_col: str | None = None,
            time_col: str | None = None, action_col: str | None = None,
            columns: Mapping[str, str] | None = None) -> EstimationResults:
        """Estimate the model's parameters.

        Parameters
        ----------
        data : pandas.DataFrame, ddc.panel.Panel, SufficientStatistics or EstimationData
            The long panel (validated against the model), or its sufficient statistics for the
            estimators that work from counts.
        start : pandas.Series, mapping or array, optional
            Starting values of the utility parameters: a Series or mapping by name (the others
            start at zero), or an array of exactly one value per utility parameter. Zeros by
            default.
        starts : sequence, optional
            Several starting values (each as ``start``); the fit with the highest objective is
            returned, and the results say when they reached different optima
            (``res.extra["starts"]``).
        id_col, time_col, action_col : str, optional
            Column names of the unit id, the period and the action (default: the model's
            layout, ``model.hooks.layout``).
        columns : mapping of str to str, optional
            State variable (or extra variable) -> the column holding it.

        Returns
        -------
        EstimationResults

        Raises
        ------
        ddc.panel.PanelError
            The data do not fit the model (naming the rows).
        estimators.IdentificationError
            The data cannot identify some parameter (naming it and the cause).
        ddc.ConvergenceError
            ``on_failure="raise"`` and the fit did not converge, or a numerical failure (naming
            the step and a remedy).
        """
        mapping = {k: v for k, v in (("id_col", id_col), ("time_col", time_col),
                                     ("action_col", action_col), ("columns", columns))
                   if v is not None}
        with small_blas(self.model.n_states, self.solver):
            step = ["data"]
            try:
                return self._run(data, start, starts, mapping, step)
            except (np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError,
                    OverflowError) as exc:
                raise ConvergenceError(
                    f"{self.name} failed in its {step[0]} step: {type(exc).__name__}: {exc}. "
                    "The parameters probably left the region where the model is numerically "
                    "well behaved; try starting values nearer the data (starts=[...]) or check "
                    "the data for actions that are (almost) never chosen") from exc

    def _run(self, data, start, starts, mapping, step) -> EstimationResults:
        t0 = time.perf_counter()
        model = self.model
        prep = self._prepare(data, mapping)
        step[0] = "estimation"
        points = self._starting_points(start, starts)
        fits = []
        for x0 in points:
            base = prep.params.copy()
            base[x0.index] = x0
            fits.append(self._estimate(prep, base))
        best = max(range(len(fits)), key=lambda i: (np.nan_to_num(fits[i].objective,
                                                                  nan=-np.inf)))
        fit = fits[best]
        notes = list(prep.transitions.notes) + list(fit.notes)
        extra_starts = self._compare_starts(points, fits, best, notes) if len(fits) > 1 else None
        step[0] = "inference"
        inf = self._inference(prep, fit)
        if self.first_stage_correction == "reestimate":
            from estimators.first_stage import reestimation_covariances

            covs, fs_notes = reestimation_covariances(self, prep, fit, inf)
            if covs:
                inf.extra_covs = {**(inf.extra_covs or {}), **covs}
            inf.notes = [*inf.notes, *fs_notes]
        names = inf.names
        conv = check_convergence(
            fit.objective, inf.gradient if inf.gradient is not None else fit.grad,
            inf.curvature if inf.curvature is not None else inf.hessian,
            fit.optimizer_converged, fit.message, names)
        if not inf.check_curvature and not conv.hessian:
            conv = Convergence(conv.optimizer, conv.finite, conv.gradient, True, conv.decrement,
                               conv.min_eigenvalue, conv.message,
                               tuple(d for d in conv.detail if "Hessian" not in d))
        if not conv.finite and prep.data is not None:
            self._explain_infinite(prep, fit)
        notes = notes + list(inf.notes)
        if not conv:
            msg = f"{self.name} did not converge: {conv.describe()}"
            if self.on_failure == "raise":
                raise ConvergenceError(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)
            notes.insert(0, msg)
        params = fit.params
        fixed = params.drop(names) if len(params) > len(names) else None
        # the first stage (its .model holds the estimated transitions: what the estimate means)
        extra = {"convergence": conv, "message": fit.message, "transitions": prep.transitions,
                 **inf.extra}
        if extra_starts is not None:
            extra["starts"] = extra_starts
        data = prep.data
        return EstimationResults(
            model=model, estimator=self.name, params=params[names], hessian=inf.hessian,
            scores=inf.scores, groups=inf.groups, loglik=inf.loglik,
            loglik_parts=inf.loglik_parts, nobs=data.nobs, n_units=data.n_units,
            converged=bool(conv), iterations=fit.iterations, function_evals=fit.function_evals,
            seconds=time.perf_counter() - t0, cov_type=inf.cov_type, extra_covs=inf.extra_covs,
            fixed_params=fixed, notes=notes, solution=inf.solution, extra=extra)

    # ------------------------------------------------------------------ shared steps
    def _prepare(self, data, mapping) -> Prepared:
        """Data, identification, first stage, base parameters."""
        return prepare(self.model, data, self.drop_first, self.name, self.needs_rows, mapping,
                       self.transitions)

    def _starting_points(self, start, starts) -> list[pd.Series]:
        if start is not None and starts is not None:
            raise TypeError("give start= or starts=, not both")
        if not self.takes_start and (start is not None or starts is not None):
            raise TypeError(f"{self.name} takes no starting values: its estimate does not "
                            "depend on them (a concave or closed-form step)")
        if starts is not None:
            if isinstance(starts, (str, bytes, Mapping, pd.Series)) or \
                    not isinstance(starts, Sequence) or len(starts) == 0:
                raise TypeError("starts must be a non-empty list of starting values (each a "
                                "Series, mapping or array as start=)")
            return [starting_values(self.model, s, f"starts[{i}]") for i, s in enumerate(starts)]
        return [starting_values(self.model, start)]

    def _compare_starts(self, points, fits, best, notes) -> pd.DataFrame:
        util = self.model.utility_params
        rows = []
        for i, (x0, f) in enumerate(zip(points, fits, strict=True)):
            rows.append({"start": i, "objective": f.objective,
                         "converged": f.optimizer_converged, **f.params[util].to_dict(),
                         **{f"start_{k}": v for k, v in x0.items()}})
        table = pd.DataFrame(rows).set_index("start")
        top = fits[best].objective
        ok = np.isfinite(table["objective"].to_numpy())
        far = ok & (np.abs(table["objective"].to_numpy() - top)
                    > OPTIMA_RTOL * max(1.0, abs(top)))
        if far.any():
            msg = (f"the {len(fits)} starting values reached {1 + int(far.sum())} different "
                   f"optima (objectives {sorted(set(np.round(table['objective'][ok], 3)))}); "
                   f"the best, from start {best}, is reported")
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
            notes.append(msg)
        else:
            notes.append(f"all {int(ok.sum())} of {len(fits)} starting values reached the same "
                         "optimum" + ("" if ok.all() else
                                      f" ({int((~ok).sum())} failed)"))
        return table

    def _explain_infinite(self, prep: Prepared, fit: Fit) -> None:
        """Raise a named error when an infinite log-likelihood comes from the data."""
        prep.data.check_transitions(fit.params)

    # ------------------------------------------------------------------ the steps to supply
    def _estimate(self, prep: Prepared, params: pd.Series) -> Fit:
        """The point estimate from starting values ``params`` (all parameters)."""
        raise NotImplementedError

    def _inference(self, prep: Prepared, fit: Fit) -> Inference:
        """Hessian, scores, covariances and the log-likelihood at the estimate."""
        raise NotImplementedError


def prepare(model: Model, data, drop_first: bool | None, who: str, needs_rows: bool = True,
            mapping: Mapping | None = None, transitions=None) -> Prepared:
    """The shared start of every fit: data protocol, identification, first stage.

    Parameters
    ----------
    model : ddc.Model
        The model.
    data : DataFrame, Panel, SufficientStatistics or EstimationData
        The data.
    drop_first : bool or None
        See :func:`ddc.data.estimation_data`.
    who : str
        The estimator's name, for messages.
    needs_rows : bool
        Whether the estimator needs the panel's rows.
    mapping : mapping, optional
        ``id_col``, ``time_col``, ``action_col``, ``columns``.
    transitions : TransitionOptions, "estimate", "known" or None
        The first stage's options. Data the model cannot have generated (an observed transition
        of probability zero under the model) raise
        :class:`ddc.panel.ImpossibleTransitionError`, or with ``impossible="drop"`` their units
        are left out and counted in the notes (:func:`estimators.first_stage.check_possible`).

    Returns
    -------
    Prepared
        Its ``transitions.model`` is the model the estimator continues with (the model itself,
        or a copy with the transition tables estimated by the first stage).
    """
    from ddc.data import PanelData
    from estimators.first_stage import TransitionOptions, check_possible, estimate_transitions
    from estimators.identification import check_identification

    mapping = {k: v for k, v in (mapping or {}).items() if v is not None}
    ed = estimation_data(model, data, drop_first=drop_first, **mapping)
    if needs_rows and not ed.has_rows:
        raise RowsUnavailable(
            f"{who} needs the panel's rows; the data are sufficient statistics (counts only). "
            f"Estimators that work from counts: "
            f"{sorted(k for k, c in ESTIMATORS.items() if not c.needs_rows)}")
    options = TransitionOptions.of(transitions)
    panel, dropped = check_possible(model, ed.panel, ed.stats, options.impossible)
    if panel is not ed.panel:  # units left out: the same data without them
        ed = PanelData(panel, ed.frame, ed.drop_first, getattr(ed, "_columns", None))
    check_identification(model, ed.counts)
    ts = estimate_transitions(model, ed, options=options)
    ts.notes = [*dropped, *ts.notes]
    params = model.params_series(np.zeros(len(model.param_names)))
    if len(ts.params):
        params[ts.params.index] = ts.params
    if not np.isfinite(ts.loglik):
        ed.check_transitions(params)  # names the rows of the impossible transitions
        raise PanelError(f"the transition log-likelihood is {ts.loglik} at the first-stage "
                         "estimates: some observed transition has probability zero")
    return Prepared(ed, ts, params)


def starting_values(model: Model, start=None, what: str = "start") -> pd.Series:
    """Utility-parameter starting values: ``start`` where given, zeros elsewhere.

    Parameters
    ----------
    model : ddc.Model
        The model.
    start : pandas.Series, mapping or array, optional
        By name (a subset is fine), or an array with exactly one value per utility parameter.
    what : str
        The argument's name, for messages.

    Raises
    ------
    KeyError
        A name that is not a utility parameter.
    ValueError
        An array of the wrong length, or a value that is not finite.
    TypeError
        Something else.
    """
    names = list(model.utility_params)
    if start is None:
        return pd.Series(0.0, index=names)
    if isinstance(start, (pd.Series, Mapping)):
        given = pd.Series(dict(start) if isinstance(start, Mapping) else start, dtype=object)
    elif isinstance(start, (np.ndarray, list, tuple)):
        arr = np.asarray(start, dtype=object)
        if arr.ndim != 1 or len(arr) != len(names):
            raise ValueError(f"{what} has {arr.size} value(s) in shape {arr.shape}; give one per "
                             f"utility parameter ({len(names)}: {names}) or a mapping by name "
                             "for a subset")
        given = pd.Series(arr, index=names, dtype=object)
    else:
        raise TypeError(f"{what} must be a Series or mapping by parameter name, or an array of "
                        f"{len(names)} values; got {type(start).__name__}")
    unknown = [k for k in given.index if k not in names]
    if unknown:
        hint = [n for n in unknown if n in model.param_names]
        raise KeyError(f"{what}: unknown starting value(s) {unknown}; the utility parameters are "
                       f"{names}" + (f" ({hint} are transition parameters, estimated in the "
                                     "first stage)" if hint else ""))
    try:
        values = given.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: starting values must be numbers; got "
                         f"{given.to_dict()}") from None
    bad = values[~np.isfinite(values.to_numpy())]
    if len(bad):
        raise ValueError(f"{what}: starting values must be finite: {bad.to_dict()}")
    return values.reindex(names).fillna(0.0)
