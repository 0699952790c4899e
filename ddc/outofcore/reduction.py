"""The out-of-core reduction: tasks reduced chunk by chunk, run serially, in a process pool or
on dask, and combined into :class:`~ddc.outofcore.statistics.SufficientStatistics`.

Within a task the rows of the last unit of a chunk are carried over to the next chunk; the first
and last unit of each task are returned as raw rows (:class:`_Partial`) and joined with their
neighbours' before they are coded (the package's notes, :mod:`ddc.outofcore`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.executor import cached_loads, dask_client, dumps, executor, resolve_scheduler
from ddc.model import Model
from ddc.outofcore.sources import (
    SourceError,
    _columns_and_tasks,
    _is_dask_frame,
    _read_chunks,
    _Task,
)
from ddc.outofcore.statistics import SufficientStatistics, _Accumulator, _inc_column
from ddc.panel import Columns, Panel, PanelError, _fmt

#: Rows read and coded at a time by default: about 150 MB of working memory for the membership
#: model's seven columns (measured peak, see ``docs/scale.rst``).
CHUNK_ROWS = 1_000_000


@dataclass
class _Partial:
    """What a task returns: the counts of its complete interior units, and its first and last
    units as raw rows (they may continue in the neighbouring tasks)."""

    acc: _Accumulator
    head: pd.DataFrame | None
    tail: pd.DataFrame | None
    label: str
    rows: int


def _check_sorted(ids: np.ndarray, chunk: pd.DataFrame, id_col: str, label: str,
                  previous=None) -> None:
    if len(ids) == 0:
        return
    if previous is not None and ids[0] < previous:
        _not_sorted(label, id_col, chunk.index[0], previous, ids[0])
    try:
        bad = np.flatnonzero(ids[1:] < ids[:-1])
    except TypeError:
        raise PanelError(f"{label}: column {id_col!r} mixes ids that do not compare (e.g. "
                         "numbers and strings); give ids of one type") from None
    if bad.size:
        k = int(bad[0])
        _not_sorted(label, id_col, chunk.index[k + 1], ids[k], ids[k + 1])


def _not_sorted(label, id_col, row, before, value) -> None:
    raise PanelError(
        f"{label}: the rows are not sorted by {id_col!r}: row {_fmt(row)} has "
        f"{id_col}={_fmt(value)} after {id_col}={_fmt(before)}. Out-of-core reduction needs "
        f"each unit's rows together, with ids in non-decreasing order (files and row groups in "
        f"order too): sort by ({id_col}, period) first, e.g. DataFrame.sort_values or dask's "
        "set_index/shuffle")


def _reduce_task(model: Model, task: _Task, columns: list[str], id_col: str, cols: Columns,
                 inc_col: str | None, chunk_rows: int) -> _Partial:
    acc = _Accumulator(model)
    label = task.label
    head: pd.DataFrame | None = None
    head_pending = True
    carry: pd.DataFrame | None = None
    carry_id = None
    rows = 0

    def emit(frame: pd.DataFrame) -> None:
        nonlocal head, head_pending
        if head_pending:
            head, head_pending = frame, False
        else:
            _reduce_frame(acc, model, frame, id_col, cols, inc_col, label)

    for chunk in _read_chunks(task, columns, chunk_rows):
        n = len(chunk)
        if n == 0:
            continue
        acc.n_chunks += 1
        rows += n
        ids = chunk[id_col].to_numpy()
        if pd.isna(ids).any():
            pos = int(np.flatnonzero(pd.isna(ids))[0])
            raise PanelError(f"{label}: column {id_col!r} has a missing id at row "
                             f"{chunk.index[pos]!r}; every row needs a unit id")
        _check_sorted(ids, chunk, id_col, label, carry_id)
        run_start = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        p = 0
        if carry is not None and ids[0] == carry_id:
            k1 = int(run_start[1]) if len(run_start) > 1 else n
            carry = pd.concat([carry, chunk.iloc[:k1]])
            if k1 == n:  # the whole chunk continues the carried unit
                continue
            p = k1
        if carry is not None:
            emit(carry)
            carry = None
        last = int(run_start[-1])
        if head_pending and p < last:
            nxt = run_start[run_start > p]
            stop = int(nxt[0]) if len(nxt) else n
            emit(chunk.iloc[p:stop].copy())
            p = stop
        if p < last:
            _reduce_frame(acc, model, chunk.iloc[p:last], id_col, cols, inc_col, label)
        carry = chunk.iloc[last:].copy()
        carry_id = ids[last]
    tail = None
    if carry is not None:
        if head_pending:
            head = carry
        else:
            tail = carry
    return _Partial(acc, head, tail, label, rows)


def _reduce_frame(acc: _Accumulator, model: Model, frame: pd.DataFrame, id_col: str,
                  cols: Columns, inc_col: str | None, label: str) -> None:
    try:
        panel = Panel(model, frame, columns=cols)
        acc.add_panel(panel, frame, inc_col)
    except PanelError as e:
        raise PanelError([f"{label}: {p}" for p in e.problems]) from None


def _run_task(model_blob: bytes, task: _Task, columns: list[str], id_col: str, cols: Columns,
              inc_col: str | None, chunk_rows: int) -> _Partial:
    """Worker entry point (module level, so process pools and dask can import it)."""
    return _reduce_task(cached_loads(model_blob), task, columns, id_col, cols, inc_col,
                        chunk_rows)


def _run_dask_partition(model_blob: bytes, frame: pd.DataFrame, index: int, columns: list[str],
                        id_col: str, cols: Columns, inc_col: str | None,
                        chunk_rows: int) -> _Partial:
    task = _Task("frame", frame=frame)
    part = _reduce_task(cached_loads(model_blob), task, columns, id_col, cols, inc_col,
                        chunk_rows)
    part.label = f"partition {index}"
    return part


# ---------------------------------------------------------------------------- the reduction

def sufficient_statistics(
    model: Model,
    source,
    id_col: str | None = None,
    time_col: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    scheduler=None,
    n_workers: int | None = None,
    task_rows: int | None = None,
    progress: bool | None = False,
    *,
    action_col: str | None = None,
    columns: Columns | Mapping[str, str] | None = None,
) -> SufficientStatistics:
    """Reduce a long panel to its sufficient statistics without holding it in memory.

    Parameters
    ----------
    model : Model
        The model whose states and actions the rows are coded for.
    source : str, path, sequence of paths, dask DataFrame or pandas DataFrame
        A Parquet file or a directory of them (``*.parquet``, read in file-name order), CSV
        file(s) (read in the order given), a dask DataFrame (partitions in order) or a pandas
        DataFrame (reduced in chunks in this process). The columns are those of a panel in
        memory (:class:`ddc.panel.Panel`): the id, the period, one per state variable and
        ``action``, plus the model's increment column if it has one (Rust's bus:
        ``increment``); other columns are not read. The rows must be sorted by id (each unit's
        rows together, ids non-decreasing across chunks, files and partitions).
    id_col, time_col : str, optional
        The id and period columns; by default the model's (its data layout) or the first of
        :data:`ddc.panel.ID_COLUMNS` and :data:`ddc.panel.TIME_COLUMNS` present.
    chunk_rows : int
        Rows read and coded at a time (bounds the memory of each worker).
    scheduler : None, str or distributed.Client
        ``None`` or ``"serial"`` (in this process), ``"processes"`` (a local process pool),
        ``"dask"`` (a dask.distributed LocalCluster for the call), an address
        ``"tcp://host:port"`` of a dask scheduler, or a ``distributed.Client``. For a dask
        DataFrame source, ``None`` uses dask's current scheduler. A pandas DataFrame is always
        reduced in this process.
    n_workers : int, optional
        Workers of a process pool or LocalCluster (all cores / 2 by default).
    task_rows : int, optional
        Rows per task when a Parquet file is split across workers (row groups are not split);
        by default ``4 * chunk_rows``.
    progress : bool, optional
        Show a progress bar over the tasks (``None``: when stderr is a terminal).
    action_col : str, optional
        The action column (the model's by default).
    columns : ddc.panel.Columns or mapping, optional
        The column mapping (:class:`ddc.panel.Columns`, or ``{state variable: column}``), as
        :func:`ddc.panel.prepare` takes it: the same names, periods and time format.

    Returns
    -------
    SufficientStatistics

    Raises
    ------
    ddc.panel.PanelError
        When a chunk does not fit the model (as :class:`~ddc.panel.Panel` would report it,
        prefixed by the file, with the row numbers in the file), when the rows are not sorted by
        id, or when the files have different columns.

    Notes
    -----
    The counts equal those of ``Panel(model, all_rows)`` exactly (every unit is coded whole;
    see the module's notes). The likelihood of every estimator that works from counts follows:
    for instance the choice log-likelihood
    :math:`\\ell(\\theta) = \\sum_{s,a} N(s, a) \\log \\pi_\\theta(a \\mid s)` is
    :class:`estimators.likelihood.ChoiceLikelihood` on :meth:`SufficientStatistics.choice_counts`.
    """
    t0 = time.perf_counter()
    if not isinstance(model, Model):
        raise TypeError(f"model must be a ddc.Model, got {type(model).__name__}")
    if not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    task_rows = 4 * int(chunk_rows) if task_rows is None else int(task_rows)
    kind = resolve_scheduler(scheduler)
    dask_source = _is_dask_frame(source)
    if dask_source:
        columns_all = [str(c) for c in source.columns]
        tasks: list[_Task] = []
    else:
        columns_all, tasks = _columns_and_tasks(source, task_rows)
    cols = Columns.of(columns, id_col=id_col, time_col=time_col, action_col=action_col)
    id_col, cols, read, inc_col = _columns_for(model, columns_all, cols)
    if progress is None:
        progress = sys.stderr.isatty()

    if dask_source:
        partials = _dask_frame_partials(model, source, read, id_col, cols, inc_col,
                                        int(chunk_rows), scheduler, kind, n_workers)
    elif kind == "serial" or not tasks or tasks[0].kind == "frame":
        partials = [_reduce_task(model, t, read, id_col, cols, inc_col, int(chunk_rows))
                    for t in _progress(tasks, progress, "tasks")]
    else:
        blob = dumps(model, f"the model {model.name!r}")
        with executor(scheduler, n_workers) as ex:
            shared = ex.share(blob)
            futures = [ex.submit(_run_task, shared, t, read, id_col, cols, inc_col,
                                 int(chunk_rows)) for t in tasks]
            order = {id(f): i for i, f in enumerate(futures)}
            partials = [None] * len(futures)
            done = ex.as_completed(futures)
            for fut in _progress(done, progress, "tasks", total=len(futures)):
                partials[order[id(fut)]] = fut.result()
    stats = _combine(model, partials, id_col, cols, inc_col, time.perf_counter() - t0)
    if stats.nobs == 0:
        where = repr(str(source)) if isinstance(source, (str, os.PathLike)) else "the source"
        raise SourceError(f"{where} has a header but no rows: there is nothing to estimate from. "
                          "Give a long panel with one row per unit and period")
    return stats


def _columns_for(model: Model, available: list[str], given: Columns
                 ) -> tuple[str, Columns, list[str], str | None]:
    """The id column, the mapping with every name decided, the columns to read, and the
    increment column (or None)."""
    r = given.resolve(model, available)
    missing = [c for c in r.required if c not in available]
    if missing:
        raise PanelError(f"missing column(s) {missing}; a panel for model {model.name!r} needs "
                         f"the columns {r.required} (map other names with id_col=, time_col=, "
                         f"action_col=, columns={{variable: column}}). The source has "
                         f"{available}")
    cols = Columns(id_col=r.id_col, time_col=r.time_col, action_col=r.action_col,
                   states=r.states, period=r.period, time_format=r.time_format)
    inc_col = _inc_column(model, available)
    return r.id_col, cols, r.required + ([inc_col] if inc_col else []), inc_col


def _combine(model: Model, partials: Sequence[_Partial], id_col: str, cols: Columns,
             inc_col: str | None, seconds: float) -> SufficientStatistics:
    """Add the tasks' counts and code their boundary units, joined across tasks."""
    total = _Accumulator(model)
    fragments: list[tuple[pd.DataFrame, str]] = []
    for part in partials:
        if part is None:
            continue
        total.merge(part.acc)
        for frag in (part.head, part.tail):
            if frag is not None and len(frag):
                fragments.append((frag, part.label))
    group: list[pd.DataFrame] = []
    group_id, group_label = None, ""
    for frag, label in fragments:
        fid = frag[id_col].iloc[0]
        if group and fid == group_id:
            group.append(frag)
            continue
        if group:
            if fid < group_id:
                _not_sorted(label, id_col, frag.index[0], group_id, fid)
            _reduce_frame(total, model, pd.concat(group), id_col, cols, inc_col,
                          group_label)
        group, group_id, group_label = [frag], fid, label
    if group:
        _reduce_frame(total, model, pd.concat(group), id_col, cols, inc_col, group_label)
    return total.result(id_col, cols.time_col, seconds)


def _dask_frame_partials(model, ddf, columns, id_col, cols, inc_col, chunk_rows, scheduler,
                         kind, n_workers) -> list[_Partial]:
    import dask

    blob = dumps(model, f"the model {model.name!r}")
    parts = ddf[columns].to_delayed()
    tasks = [dask.delayed(_run_dask_partition)(blob, p, i, columns, id_col, cols, inc_col,
                                               chunk_rows) for i, p in enumerate(parts)]
    if scheduler is None:
        return list(dask.compute(*tasks))
    if kind == "serial":
        return list(dask.compute(*tasks, scheduler="synchronous"))
    if kind == "processes":
        return list(dask.compute(*tasks, scheduler="processes", num_workers=n_workers))
    with dask_client(scheduler, n_workers) as client:
        return list(client.gather(client.compute(tasks)))


def _progress(it, enabled: bool, unit: str, total: int | None = None):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, unit=unit)
