"""The Monte Carlo design of Su and Judd (2012) and Iskhakov et al. (2016) for Rust's bus.

Su and Judd (2012, *Econometrica*, Section 5) compare NFXP with MPEC on Rust's (1987) bus engine
model in the specification of his Table X, and Iskhakov, Lee, Rust, Schjerning and Seo (2016,
*Econometrica*, comment) rerun the design with NFXP's Newton-Kantorovich polyalgorithm:

=========================  ==================================================================
states                     175 mileage bins; cost :math:`c(x) = 0.001\\, \\theta_{11} x`
true parameters            :math:`RC = 11.7257`, :math:`\\theta_{11} = 2.4569`,
                           :math:`\\theta_3 = (.0937, .4475, .4459, .0127, .0002)`
data set                   50 buses x 120 months, every bus starting with a new engine
discount factors           .975, .985, .995, .999, .9995, .9999
replications               250 data sets per discount factor, 5 starting values each
starting values            :math:`(RC, \\theta_{11}) = (3 + k, k)`, :math:`k = 1, \\dots, 5`
published times            NFXP (naive fixed-point iteration) 24.6 s and MPEC/AMPL 0.13 s per
                           run at :math:`\\beta = .975` (Su and Judd, Table 2)
=========================  ==================================================================

:func:`su_judd` runs it with :class:`estimators.NFXP` (full information: the utility and
transition parameters jointly, as in the papers; the starting values apply to
:math:`(RC, \\theta_{11})`, the transition probabilities start at their first-stage
frequencies, where Su and Judd start them at 1/5) and reports, per discount factor, the
convergence rate over all runs, the mean and spread of the estimates (best converged start per
data set) and the time per estimation, beside the published times.

**Simulated increments.** Rust's data carry the mileage increment of each month (the column
``increment`` read by the estimators' first stage); a simulated panel has only the mileage
bins. :func:`add_bus_increments` recovers them: after *keep* the increment is the next month's
bin minus this month's, after *replace* it is the next month's bin (the new engine starts at
bin 0); it is missing in a bus's last month and, after *keep*, within ``J - 1`` bins of the
absorbing top bin, where the move is censored (which rows are censored depends only on the
state, and increments are i.i.d., so leaving them out does not bias the frequencies). The
estimators are built with ``drop_first=False``: Rust's convention of conditioning on each bus's
first month belongs to his data, not to simulated panels that start at a known state.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddc.executor import dask_client
from ddc.model import Model
from ddc.models.su_judd import SU_JUDD_MODEL
from ddc.models.su_judd import su_judd as _su_judd_model
from simulations.montecarlo import MonteCarloResults, monte_carlo

__all__ = ["SU_JUDD", "SuJuddResults", "add_bus_increments", "su_judd", "su_judd_model",
           "su_judd_starts"]

#: The design's constants (Su and Judd 2012, Section 5; REFERENCES.md).
SU_JUDD = {
    **SU_JUDD_MODEL,  # n_states, RC, theta_11, theta_3 (the model: ddc.models.su_judd)
    "n_buses": 50,
    "n_periods": 120,
    "betas": (0.975, 0.985, 0.995, 0.999, 0.9995, 0.9999),
    "n_datasets": 250,
    "n_starts": 5,
    # seconds per run at beta = .975 (Su and Judd 2012, Table 2)
    "published_seconds": {"NFXP (Su-Judd, fixed-point iteration)": 24.6, "MPEC/AMPL": 0.13},
}


def su_judd_model(beta: float = 0.975) -> Model:
    """Rust's bus model in the Su-Judd specification: :func:`ddc.models.su_judd` (registered as
    ``"su_judd"``), kept here under its old name."""
    return _su_judd_model(beta)


def su_judd_starts(n_starts: int = 5) -> list[dict[str, float]]:
    """Su and Judd's starting values: :math:`(RC, \\theta_{11}) = (3 + k, k)`, ``k = 1..n``."""
    return [{"RC": 3.0 + k, "theta_11": float(k)} for k in range(1, n_starts + 1)]


def add_bus_increments(panel: pd.DataFrame, model: Model) -> pd.DataFrame:
    """Add the ``increment`` column of Rust's data to a simulated bus panel.

    Parameters
    ----------
    panel : pandas.DataFrame
        A panel of the bus model from :func:`simulations.simulate` (sorted by bus and month,
        columns ``bus_id``, ``month``, ``mileage``, ``action``).
    model : ddc.Model
        The bus model (its number of states and of increments decide the censoring).

    Returns
    -------
    pandas.DataFrame
        A copy with the increment column (``increment``: the column the model's transition
        family reads) (nullable Int64): the bins
        moved that month (see the module's notes), ``<NA>`` in a bus's last month and where the
        move is censored by the top bin.

    Examples
    --------
    >>> import pandas as pd
    >>> bus = su_judd_model()
    >>> p = pd.DataFrame({"bus_id": [0, 0, 0, 1], "month": [0, 1, 2, 0],
    ...                   "mileage": [0, 2, 1, 5], "action": ["keep", "replace", "keep", "keep"]})
    >>> add_bus_increments(p, bus)["increment"].tolist()
    [2, 1, <NA>, <NA>]
    """
    family = model.hooks.transition_family
    if family is None or not family.columns:
        raise ValueError(f"add_bus_increments needs a model whose transition family reads an "
                         f"increment column (ddc.transition_families.IncrementTransitions); "
                         f"the model {model.name!r} declares none")
    col = family.columns[0]
    layout = model.hooks.layout
    n_states = model.n_states
    J = len(model.transition_params) + 1
    m = panel[layout.column("mileage")].to_numpy(dtype=np.int64)
    replace = (panel[layout.action_col].astype(str) == "replace").to_numpy()
    ids = panel[layout.id_col].to_numpy()
    if len(m) > 1:
        t = panel[layout.time_col].to_numpy()
        same = ids[1:] == ids[:-1]
        if np.any(same & (t[1:] != t[:-1] + 1)):
            raise ValueError("add_bus_increments needs the panel sorted by bus and month with "
                             "consecutive months (as simulate() returns it)")
    nxt = np.append(m[1:], -1)
    inc = nxt - np.where(replace, 0, m)
    last = np.append(ids[1:] != ids[:-1], True)
    censored = ~replace & (m > n_states - J)
    out = panel.copy()
    out[col] = pd.array(np.where(last | censored, pd.NA, inc), dtype="Int64")
    return out


@dataclass
class SuJuddResults:
    """The Su-Judd study: one :class:`~simulations.montecarlo.MonteCarloResults` per discount
    factor.

    Attributes
    ----------
    results : dict
        Discount factor -> MonteCarloResults.
    seconds : float
        Wall time.
    config : dict
        Settings.
    """

    results: dict[float, MonteCarloResults]
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def table(self, params: Sequence[str] = ("RC", "theta_11")) -> pd.DataFrame:
        """One row per discount factor and estimator: convergence rate (over all runs), mean
        and standard deviation of the estimates (best converged start per data set), the data
        sets those leave out (``<param>_excluded``: failed, not converged, or the parameter held
        rather than estimated; see :meth:`MonteCarloResults.summary`), the data sets whose fit
        fell back to a simpler estimator (``fell_back``: full-information NFXP to two-step when
        an increment was never observed), and seconds per estimation (median and mean over
        runs; per data set = all starts).

        Parameters
        ----------
        params : sequence of str
            Parameters to show.
        """
        rows = []
        for beta, mc in self.results.items():
            s = mc.summary()
            runs = mc.runs()
            for est in dict.fromkeys(mc.table["estimator"]):
                r = runs[runs["estimator"] == est]
                ok = r["error"] == ""
                row = {"beta": beta, "estimator": est, "data_sets": mc.config["reps"],
                       "runs": len(r), "convergence_rate": float(r["converged"].mean()),
                       "failed": int((~ok).sum()),
                       "fell_back": int(s.xs(est, level="estimator")["fell_back"].max())
                       if est in s.index.get_level_values("estimator") else 0}
                for p in params:
                    if (est, p) in s.index:
                        row[f"{p}_mean"] = s.loc[(est, p), "mean"]
                        row[f"{p}_sd"] = s.loc[(est, p), "sd"]
                        row[f"{p}_coverage"] = s.loc[(est, p), "coverage"]
                        row[f"{p}_excluded"] = int(s.loc[(est, p), "excluded"])
                row["seconds_median"] = float(r.loc[ok, "seconds"].median())
                row["seconds_mean"] = float(r.loc[ok, "seconds"].mean())
                row["seconds_per_data_set"] = float(
                    r.loc[ok].groupby("rep")["seconds"].sum().mean())
                rows.append(row)
        return pd.DataFrame(rows).set_index(["beta", "estimator"])

    def published(self) -> pd.Series:
        """Su and Judd's published seconds per run at :math:`\\beta = .975`."""
        return pd.Series(SU_JUDD["published_seconds"], name="seconds per run, beta=.975")


def su_judd(
    betas: Sequence[float] = SU_JUDD["betas"],
    n_datasets: int = SU_JUDD["n_datasets"],
    n_starts: int = SU_JUDD["n_starts"],
    scheduler=None,
    *,
    n_buses: int = SU_JUDD["n_buses"],
    n_periods: int = SU_JUDD["n_periods"],
    estimators: Mapping | None = None,
    seed: int = 2012,
    n_workers: int | None = None,
    progress: bool | None = None,
) -> SuJuddResults:
    """Run the Su-Judd / Iskhakov et al. Monte Carlo design (see the module's notes).

    Parameters
    ----------
    betas : sequence of float
        Discount factors (the design's six by default).
    n_datasets : int
        Data sets per discount factor (250).
    n_starts : int
        Starting values per data set (5; :func:`su_judd_starts`).
    scheduler : None, str or distributed.Client
        As in :func:`~simulations.montecarlo.monte_carlo`; ``"dask"`` starts one LocalCluster
        for the whole study.
    n_buses, n_periods : int
        Size of each data set (50 x 120).
    estimators : mapping, optional
        ``{"name": factory}``. By default ``"NFXP"``: :class:`~estimators.NFXP` with
        ``drop_first=False`` and full information (the papers' joint likelihood of the utility
        and transition parameters), and ``"NFXP-2step"``: the same without the joint stage
        (Rust's partial likelihood: transitions from their frequencies, then
        :math:`(RC, \theta_{11})`). Estimators whose ``fit`` takes no ``start`` are fitted
        once per data set.
    seed : int
        Root seed; discount factor ``i`` uses ``SeedSequence(seed, spawn_key=(i,))`` (so the
        data sets differ across discount factors, as the design's do).
    n_workers : int, optional
        Workers of the pool or LocalCluster.
    progress : bool, optional
        Progress bars (by default when stderr is a terminal).

    Returns
    -------
    SuJuddResults

    Examples
    --------
    The full design is 6 x 250 x 5 = 7,500 estimations (about two hours on two cores);
    a small version:

    >>> res = su_judd(betas=(0.975,), n_datasets=2, n_starts=1, progress=False)  # doctest: +SKIP
    >>> res.table()  # doctest: +SKIP
    """
    from estimators import NFXP

    t0 = time.perf_counter()
    if estimators is None:
        estimators = {"NFXP": functools.partial(NFXP, drop_first=False),
                      "NFXP-2step": functools.partial(NFXP, drop_first=False,
                                                      full_information=False)}
    starts = su_judd_starts(n_starts)
    root = np.random.SeedSequence(seed)
    results: dict[float, MonteCarloResults] = {}
    with _shared_scheduler(scheduler, n_workers) as sched:
        for i, beta in enumerate(betas):
            model = su_judd_model(float(beta))
            initial = np.zeros(model.n_states)
            initial[0] = 1.0  # every bus starts with a new engine
            results[float(beta)] = monte_carlo(
                model, model.true_params, estimators, reps=n_datasets, n_customers=n_buses,
                n_periods=n_periods, seed=np.random.SeedSequence(root.entropy, spawn_key=(i,)),
                scheduler=sched, n_workers=n_workers, starts=starts,
                prepare=add_bus_increments,
                simulate_kwargs={"initial": initial}, progress=progress)
    config = {"betas": [float(b) for b in betas], "n_datasets": n_datasets,
              "n_starts": n_starts, "n_buses": n_buses, "n_periods": n_periods, "seed": seed,
              "estimators": list(estimators)}
    return SuJuddResults(results=results, seconds=time.perf_counter() - t0, config=config)


@contextlib.contextmanager
def _shared_scheduler(scheduler, n_workers):
    """One LocalCluster for all discount factors when ``scheduler == "dask"``."""
    if scheduler == "dask":
        with dask_client("dask", n_workers) as client:
            yield client
    else:
        yield scheduler
