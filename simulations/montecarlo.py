"""Monte Carlo studies: simulate, estimate, repeat; serially, in a process pool or on dask.

:func:`monte_carlo` draws ``reps`` data sets from a model at known parameters and fits every
estimator to each. Replication :math:`r` simulates with the seed
``numpy.random.SeedSequence(seed).spawn(reps)[r]`` (equal to ``SeedSequence(seed,
spawn_key=(r,))``: a replication can be rerun alone), and each replication runs with one BLAS
thread and NumPy's default floating-point error handling, so the same ``seed`` gives the same
table whether the replications run serially, in a local process pool or on a dask.distributed
cluster (only the ``seconds`` column differs). A replication that fails -- in the simulation, in
an estimator, or because its worker died -- is recorded with its error and the study goes on.

The result holds a tidy table (one row per replication, estimator, starting value and
parameter) and :meth:`MonteCarloResults.summary` reduces it, per estimator and parameter, to

.. math::

    \\text{bias} = \\bar{\\hat\\theta} - \\theta_0, \\qquad
    \\text{RMSE} = \\sqrt{\\tfrac{1}{R}\\textstyle\\sum_r (\\hat\\theta_r - \\theta_0)^2}, \\qquad
    \\text{sd} = \\sqrt{\\tfrac{1}{R-1}\\textstyle\\sum_r (\\hat\\theta_r - \\bar{\\hat\\theta})^2},

the mean reported standard error :math:`\\bar s` and its ratio to the spread
:math:`\\bar s / \\text{sd}` (1 when the standard errors are right), the coverage of the 95%
intervals :math:`\\hat\\theta_r \\pm 1.96\\, s_r` (0.95 when they are right, up to the binomial
error :math:`\\sqrt{0.95 \\cdot 0.05 / R}`), the convergence rate and the median time per
estimation.

Examples
--------
>>> import ddc
>>> from estimators import NFXP, CCP
>>> model = ddc.models.membership()
>>> mc = monte_carlo(model, model.true_params, {"NFXP": NFXP, "CCP": CCP}, reps=2,
...                  n_customers=500, n_periods=12, seed=1, progress=False)
>>> mc.table.columns.tolist()[:6]
['rep', 'estimator', 'start', 'param', 'estimate', 'std_error']
>>> sorted(mc.summary().index.get_level_values("estimator").unique())
['CCP', 'NFXP']
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ddc.executor import dumps, executor, loads, resolve_scheduler
from ddc.model import Model
from simulations.simulate import simulate

__all__ = ["MonteCarloResults", "monte_carlo", "replication_seed"]

#: Two-sided 95% normal quantile used for the coverage of the intervals.
Z95 = 1.959963984540054

TABLE_COLUMNS = ["rep", "estimator", "start", "param", "estimate", "std_error", "truth",
                 "converged", "loglik", "iterations", "seconds", "error", "warnings",
                 "fallback"]

EstimatorFactory = Callable[[Model], object]


def replication_seed(seed: int | np.random.SeedSequence, rep: int) -> np.random.SeedSequence:
    """The seed of replication ``rep`` of a study with root ``seed``.

    Equal to ``SeedSequence(seed).spawn(reps)[rep]`` for any ``reps > rep``.

    Parameters
    ----------
    seed : int or numpy.random.SeedSequence
        The study's root seed.
    rep : int
        The replication (from 0).

    Returns
    -------
    numpy.random.SeedSequence
    """
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, rep),
                                      pool_size=seed.pool_size)
    return np.random.SeedSequence(seed, spawn_key=(rep,))


# ---------------------------------------------------------------------------- the results


@dataclass
class MonteCarloResults:
    """The outcome of :func:`monte_carlo`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per replication, estimator, starting value and parameter (columns
        :data:`TABLE_COLUMNS`): ``rep``, ``estimator``, ``start`` (index of the starting value;
        ``<NA>`` for an estimator fitted once), ``param``, ``estimate``, ``std_error`` (the
        estimator's default kind), ``truth``, ``converged``, ``loglik``, ``iterations``,
        ``seconds`` (wall time of the fit), ``error`` (empty when the fit ran; else the
        exception, and ``param`` is ``<NA>``), ``warnings`` (those the fit raised, joined) and
        ``fallback`` (``res.extra["fallback"]``: empty, or why the fit fell back to a simpler
        estimator, e.g. full-information NFXP to two-step).
        Sorted by replication, estimator (in the order given), start and parameter.
    truth : pandas.Series
        The parameters the data were simulated at.
    config : dict
        The study's settings (model, sizes, seed, scheduler, estimators).
    seconds : float
        Wall time of the whole study.
    """

    table: pd.DataFrame
    truth: pd.Series
    config: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __repr__(self) -> str:
        c = self.config
        failed = int((self.table["error"] != "").sum())
        return (f"MonteCarloResults({c.get('model', '?')!r}: {c.get('reps', '?')} replications "
                f"x {len(c.get('estimators', []))} estimator(s) {c.get('estimators', [])}, "
                f"{c.get('n_customers', '?')} x {c.get('n_periods', '?')}, seed "
                f"{c.get('seed', '?')}, {c.get('scheduler', '?')}; {failed} failed fit(s); "
                f"{self.seconds:.1f} s)")

    @property
    def failures(self) -> pd.DataFrame:
        """The fits that raised: replication, estimator, start and the error."""
        t = self.table
        return t.loc[t["error"] != "", ["rep", "estimator", "start", "error"]] \
            .reset_index(drop=True)

    def runs(self) -> pd.DataFrame:
        """One row per fit (replication, estimator, start): ``converged``, ``loglik``,
        ``iterations``, ``seconds``, ``error``."""
        keys = ["rep", "estimator", "start"]
        cols = ["converged", "loglik", "iterations", "seconds", "error"]
        return self.table.drop_duplicates(keys)[keys + cols].reset_index(drop=True)

    def best(self) -> pd.DataFrame:
        """The table restricted to one fit per replication and estimator: among the converged
        starts, the one with the highest log-likelihood (all starts coincide for an estimator
        fitted once)."""
        t = self.table[(self.table["error"] == "") & self.table["converged"]]
        if t.empty:
            return t
        runs = t.drop_duplicates(["rep", "estimator", "start"])
        idx = runs.sort_values(["rep", "estimator", "loglik", "start"],
                               ascending=[True, True, False, True], na_position="last") \
            .drop_duplicates(["rep", "estimator"])
        keep = idx[["rep", "estimator", "start"]]
        return t.merge(keep, on=["rep", "estimator", "start"], how="inner")

    def _n_reps(self) -> int:
        reps = self.config.get("reps")
        if isinstance(reps, (int, np.integer)):
            return int(reps)
        return int(self.table["rep"].nunique())

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Bias, RMSE, spread, standard-error accuracy and coverage per estimator and parameter,
        with the replications left out counted by cause.

        Statistics of the estimates are over the replications whose fit converged (the best
        start of each, :meth:`best`) *and* estimated the parameter. The other replications are
        not hidden: ``excluded`` counts them and ``excluded_failed``,
        ``excluded_not_converged`` and ``excluded_held`` say why (every fit raised; no fit
        converged; the fit converged but held the parameter at a value it did not estimate,
        e.g. a transition probability on the simplex's boundary held at its first-stage
        value). A summary over a selected subset can mislead (the replications that fail are
        rarely a random draw): read ``excluded`` beside every statistic, and
        :meth:`exclusions` for the sentence. The convergence rate is over all fits
        (replications x starts), failed ones included.

        Parameters
        ----------
        level : float
            Confidence level of the intervals :math:`\\hat\\theta \\pm z\\, s` whose coverage
            is reported.

        Returns
        -------
        pandas.DataFrame
            Indexed by (estimator, param); columns ``truth``, ``reps`` (replications in the
            study), ``n`` (replications used), ``excluded`` (``reps - n``),
            ``excluded_failed``, ``excluded_not_converged``, ``excluded_held``,
            ``fell_back`` (replications summarised whose fit fell back to a simpler estimator,
            e.g. full-information NFXP to two-step; the ``fallback`` column of :attr:`table`
            says why), ``mean``,
            ``bias``, ``bias_se`` (Monte Carlo standard error of the bias, sd / sqrt(n)),
            ``rmse``, ``sd``, ``mean_se``, ``se_ratio`` (mean_se / sd), ``coverage``,
            ``convergence_rate``, ``fits``, ``failed`` (fits that raised),
            ``median_seconds``. Statistics of a parameter no replication estimated are NaN
            (never an error: a study whose every fit failed still has its summary).
        """
        from scipy import stats

        z = float(stats.norm.isf((1 - level) / 2))
        runs = self.runs()
        best = self.best()
        n_reps = self._n_reps()
        order = list(dict.fromkeys(self.table["estimator"]))
        rows = []
        for est in order:
            r = runs[runs["estimator"] == est]
            conv_rate = float(r["converged"].mean()) if len(r) else np.nan
            n_failed = int((r["error"] != "").sum())
            ran = r["error"] == ""
            median_s = float(r.loc[ran, "seconds"].median()) if ran.any() else np.nan
            by_rep = r.groupby("rep")
            all_failed = int((by_rep["error"].apply(lambda e: (e != "").all())).sum())
            any_conv = by_rep["converged"].any()
            not_conv = int((~any_conv).sum()) - all_failed
            used_reps = int(any_conv.sum())
            b = best[best["estimator"] == est]
            fell_back = _fell_back(b)
            params = list(dict.fromkeys(
                self.table.loc[self.table["estimator"] == est, "param"].dropna()))
            if not params:
                params = list(self.truth.index)
            for p in params:
                x = b[b["param"] == p]
                est_v = x["estimate"].to_numpy(dtype=float)
                se = x["std_error"].to_numpy(dtype=float)
                truth = float(x["truth"].iloc[0]) if len(x) else float(self.truth.get(p, np.nan))
                n = len(est_v)
                mean = float(est_v.mean()) if n else np.nan
                sd = float(est_v.std(ddof=1)) if n > 1 else np.nan
                ok = np.isfinite(se)
                mean_se = float(se[ok].mean()) if ok.any() else np.nan
                cover = float(np.mean(np.abs(est_v[ok] - truth) <= z * se[ok])) \
                    if ok.any() else np.nan
                rows.append({
                    "estimator": est, "param": p, "truth": truth, "reps": n_reps, "n": n,
                    "excluded": n_reps - n, "excluded_failed": all_failed,
                    "excluded_not_converged": not_conv,
                    "excluded_held": used_reps - n, "fell_back": fell_back,
                    "mean": mean,
                    "bias": mean - truth, "bias_se": sd / np.sqrt(n) if n > 1 else np.nan,
                    "rmse": float(np.sqrt(np.mean((est_v - truth) ** 2))) if n else np.nan,
                    "sd": sd, "mean_se": mean_se,
                    "se_ratio": mean_se / sd if n > 1 and sd > 0 else np.nan,
                    "coverage": cover, "convergence_rate": conv_rate, "fits": len(r),
                    "failed": n_failed, "median_seconds": median_s})
        columns = ["estimator", "param", "truth", "reps", "n", "excluded", "excluded_failed",
                   "excluded_not_converged", "excluded_held", "fell_back", "mean", "bias",
                   "bias_se", "rmse", "sd", "mean_se", "se_ratio", "coverage",
                   "convergence_rate", "fits", "failed", "median_seconds"]
        return pd.DataFrame(rows, columns=columns).set_index(["estimator", "param"])

    def exclusions(self) -> str:
        """One line per estimator and parameter whose summary leaves replications out, with the
        causes, and one per estimator some of whose summarised fits fell back to a simpler
        estimator (the ``fallback`` column); empty when neither happened.

        Examples
        --------
        ``NFXP theta_30: 97 of 250 replications left out (0 failed, 0 not converged, 97
        converged with the parameter held, not estimated)``
        """
        s = self.summary()
        lines = []
        for (est, p), row in s[s["excluded"] > 0].iterrows():
            lines.append(
                f"{est} {p}: {int(row['excluded'])} of {int(row['reps'])} replications left "
                f"out ({int(row['excluded_failed'])} failed, "
                f"{int(row['excluded_not_converged'])} not converged, "
                f"{int(row['excluded_held'])} converged with the parameter held, not "
                "estimated)")
        fell = s.groupby(level="estimator", sort=False)["fell_back"].max()
        for est, k in fell[fell > 0].items():
            lines.append(f"{est}: {int(k)} of {self._n_reps()} replications summarised fell "
                         "back to a simpler estimator (the table's 'fallback' column says why)")
        if not lines:
            return ""
        return "Summaries over a subset of the replications:\n" + "\n".join(
            f"  {line}" for line in lines)

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path`` (``.csv`` or ``.parquet``), completely or not at all."""
        from ddc.io import atomic_path

        path = Path(path)
        if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
            raise ValueError(f"cannot tell the format of {str(path)!r}: give a .csv or "
                             ".parquet file")
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".csv":
                self.table.to_csv(tmp, index=False)
            else:
                self.table.to_parquet(tmp, index=False, write_page_checksum=True)
        return path


# ---------------------------------------------------------------------------- one replication


@dataclass
class _Study:
    """Everything a replication needs; pickled once and cached in each worker."""

    model: Model
    truth: pd.Series
    estimators: dict[str, EstimatorFactory]
    n_customers: int
    n_periods: int
    seed: int | np.random.SeedSequence
    simulate_kwargs: dict
    prepare: Callable | None
    starts: tuple[dict, ...] | None
    blas_threads: int | None


class _Worker:
    """A study unpacked in a process: the model, the solution at the truth, the estimators."""

    def __init__(self, study: _Study):
        self.study = study
        self.model = study.model
        self._solution = None

    @property
    def solution(self):
        if self._solution is None:
            self._solution = self.model.solve(self.study.truth)
        return self._solution


_WORKERS: dict[str, _Worker] = {}


def _worker_for(blob: bytes) -> _Worker:
    import hashlib

    key = hashlib.sha1(blob).hexdigest()
    w = _WORKERS.get(key)
    if w is None:
        study = loads(blob)
        w = _Worker(study)
        if len(_WORKERS) >= 4:
            _WORKERS.pop(next(iter(_WORKERS)))
        _WORKERS[key] = w
    return w


def _error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text or type(e).__name__


def _fit_accepts_start(est) -> bool:
    try:
        return "start" in inspect.signature(est.fit).parameters
    except (TypeError, ValueError):
        return False


def _run_replication(blob: bytes, rep: int) -> list[dict]:
    """Simulate data set ``rep`` and fit every estimator (worker entry point)."""
    w = _worker_for(blob)
    study = w.study
    from threadpoolctl import threadpool_limits

    limit = threadpool_limits(limits=study.blas_threads, user_api="blas") \
        if study.blas_threads else None
    try:
        with np.errstate(all="warn", under="ignore"):
            return _replicate(w, rep)
    finally:
        if limit is not None:
            limit.restore_original_limits()


def _replicate(w: _Worker, rep: int) -> list[dict]:
    study = w.study
    model = w.model
    records: list[dict] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = simulate(model, w.solution, n_customers=study.n_customers,
                            n_periods=study.n_periods, seed=replication_seed(study.seed, rep),
                            **study.simulate_kwargs)
            if study.prepare is not None:
                data = study.prepare(data, model)
    except Exception as e:  # noqa: BLE001 - recorded, the study goes on
        msg = f"simulation failed: {_error_text(e)}"
        return [_failed(rep, name, None, msg) for name in study.estimators]
    for name, factory in study.estimators.items():
        try:
            est = factory(model)
        except Exception as e:  # noqa: BLE001
            records.append(_failed(rep, name, None, f"constructing the estimator: "
                                                    f"{_error_text(e)}"))
            continue
        starts = study.starts if study.starts and _fit_accepts_start(est) else None
        for k, start in enumerate(starts or [None]):
            records.append(_fit_one(est, data, rep, name, None if starts is None else k, start))
    return records


def _fit_one(est, data, rep: int, name: str, k: int | None, start) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = est.fit(data) if start is None else est.fit(data, start=start)
        except Exception as e:  # noqa: BLE001
            rec = _failed(rep, name, k, _error_text(e))
            rec["seconds"] = time.perf_counter() - t0
            rec["warnings"] = _warning_text(caught)
            return rec
        seconds = time.perf_counter() - t0
        try:
            se = res.std_errors.reindex(res.params.index).to_numpy(dtype=float)
        except Exception as e:  # noqa: BLE001 - e.g. a singular Hessian: estimates stand
            se = np.full(len(res.params), np.nan)
            caught.append(warnings.WarningMessage(f"standard errors: {_error_text(e)}",
                                                  RuntimeWarning, "", 0))
    return {"rep": rep, "estimator": name, "start": k,
            "params": dict(zip(map(str, res.params.index), res.params.to_numpy(dtype=float),
                               strict=True)),
            "std_errors": dict(zip(map(str, res.params.index), se, strict=True)),
            "converged": bool(res.converged), "loglik": float(res.loglik),
            "iterations": -1 if getattr(res, "iterations", None) is None
            else int(res.iterations),
            "seconds": seconds, "error": "", "warnings": _warning_text(caught),
            "fallback": str(getattr(res, "extra", {}).get("fallback", "") or "")}


def _fell_back(best: pd.DataFrame) -> int:
    """Replications among ``best`` (one fit each) whose fit fell back to a simpler estimator
    (0 for a table from before the ``fallback`` column)."""
    if "fallback" not in best.columns or best.empty:
        return 0
    per_rep = best.drop_duplicates("rep")["fallback"]
    return int(sum(isinstance(f, str) and f != "" for f in per_rep))


def _warning_text(caught) -> str:
    return "; ".join(dict.fromkeys(str(w.message) for w in caught))


def _failed(rep: int, name: str, k: int | None, error: str) -> dict:
    return {"rep": rep, "estimator": name, "start": k, "params": {}, "std_errors": {},
            "converged": False, "loglik": np.nan, "iterations": -1, "seconds": np.nan,
            "error": error, "warnings": "", "fallback": ""}


# ---------------------------------------------------------------------------- the study


def _registered(f):
    """An estimator key or name (``"nfxp"``, ``"NFXP"``) -> its class in the estimator registry
    (:data:`estimators.ESTIMATORS`); anything else unchanged."""
    if not isinstance(f, str):
        return f
    from estimators import get_estimator

    try:
        return get_estimator(f)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def _estimator_dict(estimators) -> dict[str, EstimatorFactory]:
    if isinstance(estimators, str):
        estimators = [estimators]
    if isinstance(estimators, Mapping):
        out = {str(k): _registered(v) for k, v in estimators.items()}
    else:
        if callable(estimators):
            estimators = [estimators]
        out = {}
        for f in map(_registered, estimators):
            base = f.func if isinstance(f, functools.partial) else f
            name = getattr(base, "name", None) or getattr(base, "__name__", None)
            if not isinstance(name, str):
                raise TypeError(f"cannot name the estimator {f!r}; pass a dict "
                                "{'name': factory}")
            if name in out:
                raise ValueError(f"two estimators are named {name!r}; pass a dict with "
                                 "distinct names")
            out[name] = f
    if not out:
        raise ValueError("no estimators given")
    bad = [k for k, v in out.items() if not callable(v)]
    if bad:
        raise TypeError(f"estimators {bad} are not callable: give classes such as NFXP or "
                        "factories model -> estimator (e.g. functools.partial(NFXP, "
                        "drop_first=False))")
    return out


def monte_carlo(
    model: Model,
    truth,
    estimators,
    reps: int,
    n_customers: int,
    n_periods: int,
    seed: int | np.random.SeedSequence = 0,
    scheduler=None,
    *,
    n_workers: int | None = None,
    starts: Sequence[Mapping] | None = None,
    prepare: Callable[[pd.DataFrame, Model], pd.DataFrame] | None = None,
    simulate_kwargs: Mapping | None = None,
    blas_threads: int | None = 1,
    progress: bool | None = None,
) -> MonteCarloResults:
    """Simulate ``reps`` data sets from ``model`` at ``truth`` and fit every estimator to each.

    Parameters
    ----------
    model : ddc.Model or str
        The model (data are simulated from it and the estimators are built on it), or the name
        of a registered model (:func:`ddc.models.get_model` with its default options).
    truth : pandas.Series, mapping or array
        The true parameters (the model is solved at them once per worker).
    estimators : mapping, class or sequence
        ``{"name": factory}`` or a list of factories, a factory being an estimator class or any
        callable ``model -> estimator`` with ``.fit(data)`` returning an
        :class:`~estimators.EstimationResults` (e.g. ``functools.partial(NFXP,
        drop_first=False)``); a list is named by each class's ``name`` (``"NFXP"``). A factory
        may also be a key of the estimator registry (``"nfxp"``, ``"ccp"``: see
        :data:`estimators.ESTIMATORS`).
    reps : int
        Replications.
    n_customers, n_periods : int
        Size of each simulated panel.
    seed : int or numpy.random.SeedSequence
        Root seed; replication ``r`` uses :func:`replication_seed` ``(seed, r)``.
    scheduler : None, str or distributed.Client
        ``None``/``"serial"`` (this process), ``"processes"`` (a local process pool with the
        'spawn' start method), ``"dask"`` (a dask.distributed LocalCluster of ``n_workers``
        processes, one thread each, for the call), an address ``"tcp://host:port"`` of a running
        dask scheduler, or a ``distributed.Client``.
    n_workers : int, optional
        Processes of the pool (all cores by default) or workers of the LocalCluster (2).
    starts : sequence of mappings, optional
        Starting values (utility parameters by name); an estimator whose ``fit`` takes
        ``start`` is fitted once per starting value (column ``start``), the others once.
    prepare : callable, optional
        ``prepare(panel, model) -> panel``, applied to each simulated panel before the fits
        (e.g. :func:`simulations.studies.add_bus_increments`, which adds the bus model's
        ``increment`` column).
    simulate_kwargs : mapping, optional
        More arguments of :func:`simulations.simulate` (``initial=...``, ``weights=...``).
    blas_threads : int or None
        BLAS threads per replication (1: the same results on every scheduler, and no
        oversubscription when replications run in parallel; ``None`` leaves BLAS alone).
    progress : bool, optional
        Show a progress bar (tqdm) over the replications; by default when stderr is a terminal.

    Returns
    -------
    MonteCarloResults

    Notes
    -----
    Factories, ``prepare`` and the model's transition function are sent to worker processes
    with pickle, or cloudpickle when pickle cannot (lambdas, the built-in models' transition
    functions); cloudpickle is installed with dask (``pip install 'ddc-econ[distributed]'``).
    Worker processes import the package; numba's on-disk cache spares them the compilation.
    """
    t0 = time.perf_counter()
    if isinstance(model, str):  # a name of the model registry (ddc.models.REGISTRY)
        from ddc.models import get_model

        model = get_model(model)
    if not isinstance(model, Model):
        raise TypeError(f"model must be a ddc.Model or the name of a registered model "
                        f"(ddc.models.REGISTRY), got {type(model).__name__}")
    for name, v in (("reps", reps), ("n_customers", n_customers), ("n_periods", n_periods)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(seed, (int, np.integer, np.random.SeedSequence)):
        raise TypeError(f"seed must be an integer or a numpy SeedSequence (a fixed seed makes "
                        f"the study reproducible), got {seed!r}")
    kind = resolve_scheduler(scheduler)
    ests = _estimator_dict(estimators)
    truth_s = model.params_series(truth)
    start_list = None
    if starts is not None:
        start_list = tuple(dict(s) for s in starts)
        unknown = sorted({k for s in start_list for k in s} - set(model.param_names))
        if unknown:
            raise KeyError(f"starting values name unknown parameter(s) {unknown}; the model's "
                           f"parameters are {model.param_names}")
    study = _Study(model=model, truth=truth_s, estimators=ests,
                   n_customers=int(n_customers), n_periods=int(n_periods),
                   seed=seed if isinstance(seed, np.random.SeedSequence) else int(seed),
                   simulate_kwargs=dict(simulate_kwargs or {}), prepare=prepare,
                   starts=start_list, blas_threads=blas_threads)
    blob = dumps(study, "the model, the estimators or the prepare function")
    if progress is None:
        progress = sys.stderr.isatty()
    records: dict[int, list[dict]] = {}
    with executor(scheduler, n_workers) as ex:
        shared = ex.share(blob)
        futures = {}
        for r in range(int(reps)):
            futures[ex.submit(_run_replication, shared, r)] = r
        from tqdm.auto import tqdm

        with tqdm(total=int(reps), disable=not progress, desc="Monte Carlo",
                  unit="rep") as bar:
            for fut in ex.as_completed(list(futures)):
                r = futures[fut]
                try:
                    records[r] = fut.result()
                except Exception as e:  # noqa: BLE001 - a dead worker: record, go on
                    msg = f"replication failed in its worker: {_error_text(e)}"
                    records[r] = [_failed(r, name, None, msg) for name in ests]
                bar.update(1)
    table = _tidy([rec for r in sorted(records) for rec in records[r]], ests, truth_s)
    config = {"model": model.name, "n_states": model.n_states, "beta": model.beta,
              "reps": int(reps), "n_customers": int(n_customers), "n_periods": int(n_periods),
              "seed": seed if not isinstance(seed, np.random.SeedSequence) else repr(seed),
              "scheduler": kind if isinstance(scheduler, str) or scheduler is None
              else "dask (client)", "estimators": list(ests),
              "starts": list(start_list) if start_list else None}
    return MonteCarloResults(table=table, truth=truth_s, config=config,
                             seconds=time.perf_counter() - t0)


def _tidy(records: list[dict], ests: dict, truth: pd.Series) -> pd.DataFrame:
    rows = []
    for rec in records:
        base = {k: rec[k] for k in ("rep", "estimator", "start", "converged", "loglik",
                                    "iterations", "seconds", "error", "warnings")}
        base["fallback"] = rec.get("fallback", "")
        if not rec["params"]:
            rows.append({**base, "param": None, "estimate": np.nan, "std_error": np.nan,
                         "truth": np.nan, "_order": -1})
            continue
        for i, (p, v) in enumerate(rec["params"].items()):
            rows.append({**base, "param": p, "estimate": v, "std_error": rec["std_errors"][p],
                         "truth": float(truth[p]) if p in truth.index else np.nan, "_order": i})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_COLUMNS})
    t = pd.DataFrame(rows)
    t["_est"] = t["estimator"].map({k: i for i, k in enumerate(ests)})
    t["start"] = t["start"].astype("Int64")
    t = t.sort_values(["rep", "_est", "start", "_order"], na_position="first", kind="stable")
    t = t.drop(columns=["_est", "_order"]).reset_index(drop=True)
    t["param"] = t["param"].astype(object).where(t["param"].notna(), None)
    t["converged"] = t["converged"].astype(bool)
    t["iterations"] = t["iterations"].astype(np.int64)
    return t[TABLE_COLUMNS]
