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
6. **convergence**: :func:`estimators.convergence.check_convergence` -- the optimizer stopped
   by its rule, the objective is finite, the scaled gradient is small and the Hessian negative
   definite -- and one failure
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
from ddc.panel import Columns, PanelError
from ddc.solver import ConvergenceError, ConvergenceWarning, Solver, small_blas
from estimators.convergence import Convergence, check_convergence
from estimators.results import EstimationResults

__all__ = ["ESTIMATORS", "Estimator", "Fit", "Inference", "Prepared", "get_estimator",
           "prepare", "register", "starting_values"]

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
    convergence check (default: ``hessian``); ``gradient`` overrides the fit's gradient;
    ``curvature_names`` name the coordinates of ``curvature`` and ``gradient`` when they are
    not ``names`` (an estimate maximized along directions, the parameters a linear function of
    them), and ``df_model`` the number of those directions (for AIC and BIC);
    ``score_kinds`` optionally gives the scores by kind of row
    (:class:`estimators.inference.Ingredients`), for the covariances computed during the fit.
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
    score_kinds: tuple[np.ndarray, np.ndarray] | None = None
    curvature_names: list[str] | None = None
    df_model: int | None = None


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

    def __new__(cls, model=None, *args, **kwargs):
        # a ddc.Mixture gets the estimator's mixture version (estimators.mixture), or a
        # reasoned refusal; any other model this class itself
        from estimators.mixture.dispatch import mixture_estimator

        return mixture_estimator(cls, model, args, kwargs) or super().__new__(cls)

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
            columns: Columns | Mapping[str, str] | None = None) -> EstimationResults:
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
        columns : ddc.panel.Columns or mapping of str to str, optional
            State variable (or extra variable) -> the column holding it, or the whole mapping
            (a :class:`~ddc.panel.Columns`, whose id, period and action columns, period and time
            format are used too; keywords given beside it must agree with it).

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
            except Exception as exc:
                if not _foreign(exc):
                    raise
                what = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
                if step[0] == "data":
                    raise PanelError(f"{self.name} could not read the data ({what}); check the "
                                     "columns' types and values") from exc
                raise ConvergenceError(
                    f"{self.name} failed in its {step[0]} step ({what}). The parameters "
                    "probably left the region where the model is numerically well behaved; "
                    "try starting values nearer the data (starts=[...]) or check the data for "
                    "actions that are (almost) never chosen") from exc

    def _run(self, data, start, starts, mapping, step) -> EstimationResults:
        t0 = time.perf_counter()
        model = self.model
        prep = self._prepare(data, mapping)
        step[0] = "estimation"
        # a start not given (None) is the estimator's default, which may look at the data
        points = [self._default_start(prep) if x0 is None else x0
                  for x0 in self._starting_points(start, starts)]
        fits: list[Fit | None] = []
        for x0 in points:
            base = with_values(prep.params, x0)
            try:
                fits.append(self._estimate(prep, base))
            except Exception as exc:  # one of several starts failing numerically is recorded
                if len(points) == 1 or not (_foreign(exc) or isinstance(exc, ConvergenceError)):
                    raise
                fits.append(None)
        ran = [i for i, f in enumerate(fits) if f is not None]
        if not ran:
            raise ConvergenceError(f"{self.name} failed from every one of the {len(points)} "
                                   "starting values")
        best = max(ran, key=lambda i: np.nan_to_num(fits[i].objective, nan=-np.inf))
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
            fit.optimizer_converged, fit.message,
            names if inf.curvature_names is None else inf.curvature_names)
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
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)  # the summary says it too
        params = fit.params
        fixed = subset(params, [n for n in params.index.tolist() if n not in set(names)]) \
            if len(params) > len(names) else None
        # the first stage (its .model holds the estimated transitions: what the estimate means)
        extra = {"convergence": conv, "message": fit.message, "transitions": prep.transitions,
                 **inf.extra}
        if extra_starts is not None:
            extra["starts"] = extra_starts
        data = prep.data
        return EstimationResults(
            model=model, estimator=self.name, params=subset(params, names), hessian=inf.hessian,
            scores=inf.scores, groups=inf.groups, loglik=inf.loglik,
            loglik_parts=inf.loglik_parts, nobs=data.nobs, n_units=data.n_units,
            converged=bool(conv), iterations=fit.iterations, function_evals=fit.function_evals,
            seconds=time.perf_counter() - t0, cov_type=inf.cov_type, extra_covs=inf.extra_covs,
            fixed_params=fixed, notes=notes, solution=inf.solution, extra=extra,
            df_model=inf.df_model)

    # ------------------------------------------------------------------ shared steps
    def _prepare(self, data, mapping) -> Prepared:
        """Data, identification, first stage, base parameters."""
        return prepare(self.model, data, self.drop_first, self.name, self.needs_rows, mapping,
                       self.transitions)

    def _default_start(self, prep: Prepared) -> pd.Series:
        """Starting values of the utility parameters when none are given: zeros (an estimator
        may do better from the prepared data, e.g. NFXP from a CCP estimate)."""
        return starting_values(self.model)

    def _starting_points(self, start, starts) -> list[pd.Series | None]:
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
            return [None if s is None else starting_values(self.model, s, f"starts[{i}]")
                    for i, s in enumerate(starts)]
        return [None if start is None else starting_values(self.model, start)]

    def _compare_starts(self, points, fits, best, notes) -> pd.DataFrame:
        util = self.model.utility_params
        rows = []
        for i, (x0, f) in enumerate(zip(points, fits, strict=True)):
            got = {"objective": np.nan, "optimizer_stopped": False} if f is None else \
                {"objective": f.objective, "optimizer_stopped": f.optimizer_converged,
                 **f.params[util].to_dict()}
            rows.append({"start": i, **got, **{f"start_{k}": v for k, v in x0.items()}})
        table = pd.DataFrame(rows).set_index("start")
        top = fits[best].objective
        table = table.reindex(columns=["objective", "optimizer_stopped", *util,
                                       *[c for c in table.columns if c.startswith("start_")]])
        obj = table["objective"].to_numpy(dtype=float)
        ok = np.isfinite(obj)
        # distinct optima: objectives further apart than the tolerance
        levels = np.sort(obj[ok])[::-1]
        tol = OPTIMA_RTOL * max(1.0, abs(top))
        optima = [levels[0]]
        for v in levels[1:]:
            if optima[-1] - v > tol:
                optima.append(v)
        failed = "" if ok.all() else \
            f"; {int((~ok).sum())} start(s) failed (no finite objective)"
        if len(optima) > 1:
            levels_text = ", ".join(f"{v:.6g}" for v in optima)
            msg = (f"the {len(fits)} starting values ended at {len(optima)} different points "
                   f"(local optima or places where the optimizer stopped; objectives "
                   f"{levels_text}){failed}; the best, from start {best}, is reported "
                   "(res.extra['starts'] lists them)")
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
            notes.append(msg)
        else:
            notes.append(f"all {int(ok.sum())} of {len(fits)} starting values reached the same "
                         f"optimum{failed}")
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


#: Libraries whose exceptions are not let through ``fit`` raw.
FOREIGN = ("numpy", "scipy", "pandas", "numba", "statsmodels")


def _foreign(exc: BaseException) -> bool:
    """Whether ``exc`` is an arithmetic failure, or was raised inside a numerical library (not by
    the package's own checks, whose messages name the fault)."""
    if isinstance(exc, (ArithmeticError, np.linalg.LinAlgError)):
        return True
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in FOREIGN


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
    if len(ts.params):  # by position: label indexing costs a tenth of a millisecond a time
        where = {n: i for i, n in enumerate(params.index.tolist())}
        values = params.to_numpy(dtype=float, copy=True)
        values[[where[n] for n in ts.params.index.tolist()]] = ts.params.to_numpy(dtype=float)
        params = pd.Series(values, index=params.index, name=params.name)
    if not np.isfinite(ts.loglik):
        ed.check_transitions(params)  # names the rows of the impossible transitions
        raise PanelError(f"the transition log-likelihood is {ts.loglik} at the first-stage "
                         "estimates: some observed transition has probability zero")
    return Prepared(ed, ts, params)


def subset(values: pd.Series, names: Sequence[str]) -> pd.Series:
    """``values[names]``, selected by position: label indexing of a string index costs about
    0.15 ms a time, a tenth of a stage-2 fit of Rust's model."""
    where = {n: i for i, n in enumerate(values.index.tolist())}
    return values.iloc[[where[n] for n in names]]


def with_values(values: pd.Series, new: pd.Series) -> pd.Series:
    """A copy of ``values`` with the entries named in ``new`` replaced (by position, see
    :func:`subset`)."""
    where = {n: i for i, n in enumerate(values.index.tolist())}
    out = values.to_numpy(dtype=float, copy=True)
    out[[where[n] for n in new.index.tolist()]] = new.to_numpy(dtype=float)
    return pd.Series(out, index=values.index, name=values.name)


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
