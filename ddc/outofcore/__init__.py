"""Sufficient statistics of panels larger than memory, reduced chunk by chunk, in parallel.

The likelihood of a dynamic discrete choice model depends on a panel only through counts
(:mod:`ddc.panel`): :math:`N(s, a)` of rows by state and action, the same counts of each unit's
first row (for estimators that condition on it), :math:`N(s, a, s')` of observed transitions and,
for models whose transitions are estimated from an increment column (Rust's bus), the counts of
the increments. :func:`sufficient_statistics` computes them from Parquet or CSV files or a dask
DataFrame without ever holding more than a chunk of rows (``chunk_rows``) per worker:

1. the source is cut into *tasks* (Parquet: ranges of row groups of about ``task_rows`` rows;
   CSV: one file; dask: one partition; a pandas DataFrame: one task);
2. each task reads its rows in chunks and codes every chunk with the panel layer
   (:class:`ddc.panel.Panel`: the same validation and coding as in memory), adding the counts of
   its *complete* units to its accumulators;
3. the tasks run serially, in a local process pool or on dask.distributed, and their counts are
   added up.

**Units that straddle chunks.** The source must hold each unit's rows together, with the ids in
non-decreasing order (sorted by id; the periods of a unit may come in any order), as
:func:`simulations.write_panel_parquet`, :func:`simulations.simulate` and a sort by
``(id, period)`` write them. This is checked, and a violation names the file and row. Within a
task, the rows of the last unit of a chunk are carried over to the next chunk; the first and
the last unit of each task (which may continue in the neighbouring tasks) are returned as raw
rows and joined with their neighbours' before they are coded. Every unit is thus coded whole,
so the checks of :class:`~ddc.panel.Panel` (gaps, duplicate periods, infeasible actions) hold
across chunk and file boundaries and the counts equal those of the panel in memory. Memory per
worker is :math:`O(\\text{chunk\\_rows} + S A + \\#\\{(s, a, s')\\})`; the driver holds the
counts and two units per task.

The package's modules: :mod:`ddc.outofcore.sources` reads the sources (Parquet row groups, CSV
files, frames) in chunks and checks them (:class:`SourceError`);
:mod:`ddc.outofcore.statistics` holds the counts (:class:`SufficientStatistics` and the
accumulator the tasks add into); :mod:`ddc.outofcore.reduction` cuts a source into tasks, reduces
each chunk by chunk with the units that straddle chunks and tasks joined, and runs the tasks
serially, in a process pool or on dask (:func:`sufficient_statistics`).

Examples
--------
>>> import ddc
>>> from ddc.outofcore import sufficient_statistics
>>> from simulations import simulate
>>> model = ddc.models.membership()
>>> panel = simulate(model, model.true_params, n_customers=50, n_periods=12, seed=0)
>>> stats = sufficient_statistics(model, panel, chunk_rows=100)
>>> stats.nobs, stats.n_units, stats.n_transitions
(600, 50, 550)
>>> bool((stats.counts == ddc.panel.Panel(model, panel).counts).all())
True
"""

from ddc.outofcore.reduction import CHUNK_ROWS as CHUNK_ROWS  # the default chunk_rows
from ddc.outofcore.reduction import sufficient_statistics
from ddc.outofcore.sources import SourceError
from ddc.outofcore.statistics import SufficientStatistics

__all__ = ["SourceError", "SufficientStatistics", "sufficient_statistics"]
