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

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ddc.executor import cached_loads, dask_client, dumps, executor, resolve_scheduler
from ddc.model import Model
from ddc.panel import (
    Columns,
    Panel,
    PanelError,
    TransitionCounts,
    _factor_rows,
    _fmt,
)
from ddc.transitions import FactoredTransitions

__all__ = ["SourceError", "SufficientStatistics", "sufficient_statistics"]

#: Rows read and coded at a time by default: about 150 MB of working memory for the membership
#: model's seven columns (measured peak, see ``docs/scale.rst``).
CHUNK_ROWS = 1_000_000

#: Above this many cells :math:`S \\cdot A \\cdot S` the transition counts are accumulated as
#: sorted (key, count) pairs instead of a dense array.
DENSE_TRANSITIONS_MAX = 1 << 22


class SourceError(PanelError):
    """A data file cannot be read as it should: empty, truncated, corrupted (a page checksum
    fails, fewer rows than its footer declares) or malformed (a CSV row with too few or too many
    fields). The message names the file, the row or line where known, and the remedy."""


# ---------------------------------------------------------------------------- the statistics


@dataclass(frozen=True, eq=False)
class SufficientStatistics:
    """The counts that the likelihood of a panel depends on.

    Attributes
    ----------
    model : Model
        The model the rows were coded for.
    counts : numpy.ndarray of int64, shape (S, A)
        :math:`N(s, a)`: rows by state and action.
    first_counts : numpy.ndarray of int64, shape (S, A)
        The same counts over each unit's first row (its earliest period), so that
        ``counts - first_counts`` is the choice sample of an estimator that conditions on the
        first period (Rust's convention for his bus data; :meth:`choice_counts`).
    transition_counts : ddc.panel.TransitionCounts
        The distinct observed :math:`(s, a, s')` with their counts.
    increment_counts : numpy.ndarray of int64 or None
        For a model whose transition family estimates from its own column
        (:class:`ddc.transition_families.IncrementTransitions`, Rust's bus) and whose source has
        that column: the family's statistics (how many rows show each increment
        ``0, 1, ..., J-1``, missing values not counted); else ``None``.
    nobs : int
        Rows.
    n_units : int
        Units (distinct ids).
    id_col, time_col : str
        The id and period columns used.
    n_chunks : int
        Chunks read.
    seconds : float
        Wall time of the reduction.
    """

    model: Model
    counts: np.ndarray
    first_counts: np.ndarray
    transition_counts: TransitionCounts
    increment_counts: np.ndarray | None
    nobs: int
    n_units: int
    id_col: str = "id"
    time_col: str = "period"
    n_chunks: int = 1
    seconds: float = field(default=0.0, compare=False)

    def __repr__(self) -> str:
        inc = "" if self.increment_counts is None else \
            f", increments {self.increment_counts.tolist()}"
        return (f"SufficientStatistics({self.model.name!r}: {self.nobs:,} rows, "
                f"{self.n_units:,} units, {self.n_transitions:,} transitions "
                f"({len(self.transition_counts):,} distinct){inc}; {self.n_chunks} chunk(s), "
                f"{self.seconds:.2f} s)")

    @classmethod
    def from_panel(cls, panel: Panel, frame: pd.DataFrame | None = None) -> SufficientStatistics:
        """The statistics of a panel in memory (the reference the out-of-core reduction equals).

        Parameters
        ----------
        panel : ddc.panel.Panel
            A coded panel.
        frame : pandas.DataFrame, optional
            The frame it was coded from, to count the model's increment column if it has one.
        """
        acc = _Accumulator(panel.model)
        acc.n_chunks = 1
        acc.add_panel(panel, frame, _inc_column(panel.model, frame.columns if frame is not None
                                                else ()))
        return acc.result(panel.id_col, panel.time_col)

    @property
    def n_transitions(self) -> int:
        """Rows with a next state (all but each unit's last row)."""
        return self.transition_counts.total

    def choice_counts(self, drop_first: bool = False) -> np.ndarray:
        """:math:`N(s, a)` of the choice sample: all rows, or all but each unit's first row.

        Parameters
        ----------
        drop_first : bool
            Leave each unit's first period out (as ``estimators.data.choice_data(...,
            drop_first=True)``).

        Returns
        -------
        numpy.ndarray of int64, shape (S, A)
        """
        return self.counts - self.first_counts if drop_first else self.counts.copy()

    def loglik_choice(self, log_pi: np.ndarray, drop_first: bool = False) -> float:
        """:math:`\\sum_{s, a} N(s, a) \\log \\pi(a \\mid s)` over the cells with a count.

        Parameters
        ----------
        log_pi : array_like, shape (S, A)
            Log choice probabilities (``-inf`` at infeasible actions is fine: those cells have
            no count).
        drop_first : bool
            As in :meth:`choice_counts`.
        """
        lp = np.asarray(log_pi, dtype=np.float64)
        c = self.choice_counts(drop_first)
        if lp.shape != c.shape:
            raise ValueError(f"log_pi must have shape (states, actions) = {c.shape}, got "
                             f"{lp.shape}")
        used = c > 0
        return float(np.sum(c[used] * lp[used]))

    def factor_counts(self, params=None) -> dict[str, np.ndarray]:
        """Counts per transition factor, in the shape of each factor's table (as
        :meth:`ddc.panel.Panel.factor_counts`).

        Parameters
        ----------
        params : optional
            Parameters at which the transitions' structure is taken (defaults when ``None``).

        Returns
        -------
        dict
            Variable name -> int64 array of the factor table's shape.
        """
        model = self.model
        trans = model.transitions(params)
        if not isinstance(trans, FactoredTransitions):
            raise TypeError(f"factor_counts needs factored transitions; model {model.name!r} "
                            f"has {type(trans).__name__}. Use .transition_counts instead")
        ct = model.compiled_transitions(params)
        tc = self.transition_counts
        by_stride = {int(st): f for f, st in enumerate(ct.f_stride)}
        weights = tc.n.astype(np.float64)
        out = {}
        for factor in trans.factors:
            f = by_stride[int(model.space.strides[model.space.axis(factor.variable)])]
            size = int(ct.f_size[f])
            local = _factor_rows(ct, f, tc.s, tc.a)
            nxt = (tc.s_next // ct.f_stride[f]) % size
            c = np.bincount(local * size + nxt, weights=weights,
                            minlength=int(np.prod(factor.table.shape)))
            out[factor.variable] = np.rint(c).astype(np.int64).reshape(factor.table.shape)
        return out

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        """The statistics of two panels of distinct units stacked."""
        if not isinstance(other, SufficientStatistics):
            return NotImplemented
        if other.counts.shape != self.counts.shape:
            raise ValueError(f"cannot add statistics of models with (states, actions) "
                             f"{self.counts.shape} and {other.counts.shape}")
        acc = _Accumulator(self.model)
        for st in (self, other):
            acc.merge(_Accumulator.of(st))
        out = acc.result(self.id_col, self.time_col)
        return _replace(out, n_chunks=self.n_chunks + other.n_chunks,
                        seconds=self.seconds + other.seconds)


def _replace(st: SufficientStatistics, **changes) -> SufficientStatistics:
    from dataclasses import replace

    return replace(st, **changes)


class _Accumulator:
    """Running counts of complete units (picklable; merged across tasks)."""

    def __init__(self, model: Model):
        S, A = model.n_states, model.n_actions
        self.model = model
        self.S, self.A = S, A
        self.counts = np.zeros(S * A, dtype=np.int64)
        self.first = np.zeros(S * A, dtype=np.int64)
        self.dense = S * A * S <= DENSE_TRANSITIONS_MAX
        if S * A * S >= 2**62:
            raise ValueError(f"{S} states x {A} actions: (state, action, next state) keys "
                             "overflow 64-bit integers")
        self.trans = np.zeros(S * A * S if self.dense else 0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)  # sparse: sorted distinct keys and counts
        self.J = len(model.transition_params) + 1
        self.inc: np.ndarray | None = None
        self.nobs = 0
        self.n_units = 0
        self.n_chunks = 0

    def __getstate__(self):
        state = dict(self.__dict__)
        state["model"] = None  # the driver re-attaches its own model
        return state

    @classmethod
    def of(cls, st: SufficientStatistics) -> _Accumulator:
        acc = cls(st.model)
        acc.counts = st.counts.ravel().copy()
        acc.first = st.first_counts.ravel().copy()
        tc = st.transition_counts
        acc._add_keys((tc.s * acc.A + tc.a) * acc.S + tc.s_next, tc.n)
        acc.inc = None if st.increment_counts is None else st.increment_counts.copy()
        acc.nobs, acc.n_units, acc.n_chunks = st.nobs, st.n_units, st.n_chunks
        return acc

    def _add_keys(self, keys: np.ndarray, n: np.ndarray | None = None) -> None:
        if self.dense:
            if n is None:
                self.trans += np.bincount(keys, minlength=self.trans.size)
            else:
                np.add.at(self.trans, keys, n)
            return
        if n is None:
            keys, n = np.unique(keys, return_counts=True)
        all_keys = np.concatenate([self.keys, keys])
        all_n = np.concatenate([self.trans, n.astype(np.int64)])
        self.keys, inverse = np.unique(all_keys, return_inverse=True)
        self.trans = np.bincount(inverse.ravel(), weights=all_n,
                                 minlength=len(self.keys)).astype(np.int64)

    def add_panel(self, panel: Panel, frame: pd.DataFrame | None, inc_col: str | None) -> None:
        """Add the counts of a panel of complete units."""
        S, A = self.S, self.A
        s, a, sn = panel.state, panel.action, panel.next_state
        self.counts += np.bincount(s * A + a, minlength=S * A)
        first = np.ones(len(s), dtype=bool)
        first[1:] = panel.unit[1:] != panel.unit[:-1]
        self.first += np.bincount(s[first] * A + a[first], minlength=S * A)
        has = sn >= 0
        self._add_keys((s[has] * A + a[has]) * S + sn[has])
        if inc_col is not None and frame is not None:
            self._add_increments(frame, inc_col)
        self.nobs += panel.nobs
        self.n_units += panel.n_units

    def _add_increments(self, frame: pd.DataFrame, col: str) -> None:
        # the model's transition family counts its own column (additive over chunks)
        try:
            c = self.model.hooks.transition_family.statistics(self.model, frame)
        except ValueError as exc:
            raise PanelError(str(exc)) from None
        self.inc = c if self.inc is None else self.inc + c

    def merge(self, other: _Accumulator) -> None:
        self.counts += other.counts
        self.first += other.first
        if other.dense:
            if self.dense:
                self.trans += other.trans
            else:  # pragma: no cover - both sides share the model's layout
                nz = np.flatnonzero(other.trans)
                self._add_keys(nz.astype(np.int64), other.trans[nz])
        elif len(other.keys):
            self._add_keys(other.keys, other.trans)
        if other.inc is not None:
            self.inc = other.inc.copy() if self.inc is None else self.inc + other.inc
        self.nobs += other.nobs
        self.n_units += other.n_units
        self.n_chunks += other.n_chunks

    def result(self, id_col: str, time_col: str, seconds: float = 0.0) -> SufficientStatistics:
        S, A = self.S, self.A
        if self.dense:
            keys = np.flatnonzero(self.trans).astype(np.int64)
            n = self.trans[keys]
        else:
            keep = self.trans > 0
            keys, n = self.keys[keep], self.trans[keep]
        s, rest = np.divmod(keys, A * S)
        a, sn = np.divmod(rest, S)
        tc = TransitionCounts(_frozen(s), _frozen(a), _frozen(sn), _frozen(n.astype(np.int64)),
                              S, A)
        return SufficientStatistics(
            model=self.model, counts=_frozen(self.counts.reshape(S, A).copy()),
            first_counts=_frozen(self.first.reshape(S, A).copy()), transition_counts=tc,
            increment_counts=None if self.inc is None else _frozen(self.inc.copy()),
            nobs=int(self.nobs), n_units=int(self.n_units), id_col=id_col, time_col=time_col,
            n_chunks=int(self.n_chunks), seconds=float(seconds))


def _frozen(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    x.flags.writeable = False
    return x


def _inc_column(model: Model, columns: Iterable) -> str | None:
    """The column of the model's transition family, when it estimates from its own data (e.g.
    :class:`ddc.transition_families.IncrementTransitions`) and the source has it."""
    fam = model.hooks.transition_family
    if fam is None or not fam.has_statistics or len(model.transition_params) == 0 \
            or len(fam.columns) != 1:
        return None
    col = fam.columns[0]
    return col if col in set(columns) else None


# ---------------------------------------------------------------------------- sources and tasks


@dataclass(frozen=True)
class _Task:
    """One unit of work: a file (or row-group range of one), or a frame in memory."""

    kind: str  # "parquet", "csv", "frame"
    path: str = ""
    row_groups: tuple[int, int] | None = None
    row_offset: int = 0
    frame: Any = None

    @property
    def label(self) -> str:
        if self.kind == "frame":
            return "the DataFrame"
        name = Path(self.path).name
        if self.row_groups is not None:
            return f"{name} (row groups {self.row_groups[0]}-{self.row_groups[1] - 1})"
        return name


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise FileNotFoundError(f"no *.parquet files under the directory {str(path)!r}")
        return files
    return [path]


def _source_kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir() or name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")):
        return "csv"
    raise ValueError(f"cannot tell the format of {str(path)!r}: give a Parquet file or directory "
                     "(*.parquet), CSV file(s) (*.csv, optionally compressed), a dask DataFrame "
                     "or a pandas DataFrame")


def _is_dask_frame(source) -> bool:
    mod = type(source).__module__
    return mod.startswith(("dask.dataframe", "dask_expr")) and hasattr(source, "to_delayed")


def _columns_and_tasks(source, task_rows: int) -> tuple[list[str], list[_Task]]:
    """The source's column names and its tasks, in order."""
    if isinstance(source, pd.DataFrame):
        return [str(c) for c in source.columns], [_Task("frame", frame=source)]
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not paths:
        raise ValueError("no source files given")
    tasks: list[_Task] = []
    columns: list[str] | None = None
    kinds = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"source {str(p)!r} does not exist")
        kind = _source_kind(p)
        kinds.add(kind)
        if kind == "parquet":
            for f in _parquet_files(p):
                meta = _parquet_metadata(f)
                cols = list(meta.schema.to_arrow_schema().names)
                columns = _same_columns(columns, cols, f)
                rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
                offsets = np.r_[0, np.cumsum(rows)]
                lo = 0
                while lo < len(rows):
                    hi = lo + 1
                    while hi < len(rows) and offsets[hi + 1] - offsets[lo] <= task_rows:
                        hi += 1
                    tasks.append(_Task("parquet", str(f), (lo, hi), int(offsets[lo])))
                    lo = hi
        else:
            cols = _csv_header(p)
            columns = _same_columns(columns, cols, p)
            tasks.append(_Task("csv", str(p)))
    if len(kinds) > 1:
        raise ValueError(f"mixed source formats {sorted(kinds)}; give files of one format")
    return columns or [], tasks


def _parquet_metadata(path: Path):
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise SourceError(f"{str(path)!r} is empty (0 bytes): not a Parquet file. Write it "
                          "again (an interrupted copy or write leaves such files), or remove it")
    try:
        return pq.ParquetFile(path).metadata
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid / ArrowIOError
        raise SourceError(
            f"{str(path)!r} cannot be read as Parquet ({_first_line(e)}): the file is "
            "truncated, corrupted or not Parquet. Write it again from its source (an "
            "interrupted copy or write truncates the footer), or remove it") from None


def _csv_header(path: Path) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise SourceError(f"{str(path)!r} is empty (no header line, no rows): give a CSV long "
                          "panel with a header line, or remove the file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SourceError(f"{str(path)!r}: the header cannot be read as CSV "
                          f"({_first_line(e)}); give a comma-separated file with a header "
                          "line") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _same_columns(known: list[str] | None, cols: list[str], path) -> list[str]:
    if known is not None and set(known) != set(cols):
        raise PanelError(f"{str(path)!r} has the columns {cols}, the files before it "
                         f"{known}; every file of a panel needs the same columns")
    return cols


def _read_chunks(task: _Task, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The task's rows in chunks of at most ``chunk_rows``, indexed by their row number in the
    file (for messages: row 0 is the first data row)."""
    if task.kind == "frame":
        frame = task.frame
        for lo in range(0, len(frame), chunk_rows):
            yield frame.iloc[lo:lo + chunk_rows][columns]
        return
    if task.kind == "csv":
        yield from _csv_chunks(task.path, columns, chunk_rows)
        return
    yield from _parquet_chunks(task, columns, chunk_rows)


def _parquet_chunks(task: _Task, columns: list[str], chunk_rows: int
                    ) -> Iterator[pd.DataFrame]:
    """Row groups ``task.row_groups`` of a Parquet file, with their page checksums verified
    (where the writer stored them, as :func:`simulations.outofcore.write_panel_parquet` does)
    and their row counts checked against the footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = Path(task.path).name
    lo, hi = task.row_groups
    remedy = ("Write the file again from its source (or restore it from a copy); its bytes "
              "differ from what was written")
    try:
        f = pq.ParquetFile(task.path, page_checksum_verification=True)
        declared = sum(f.metadata.row_group(i).num_rows for i in range(lo, hi))
    except (OSError, ValueError) as e:
        raise SourceError(f"{name!r} cannot be read as Parquet ({_first_line(e)}). "
                          f"{remedy}") from None
    offset = task.row_offset
    batches = f.iter_batches(batch_size=chunk_rows, row_groups=range(lo, hi), columns=columns)
    # what a damaged file raises inside pyarrow: a failed checksum (OSError), undecodable pages
    # (ArrowInvalid, a ValueError), out-of-range dictionary indices (ArrowIndexError), ...
    damaged = (OSError, ValueError, IndexError, pa.lib.ArrowException)
    while True:
        try:
            batch = next(batches)
            chunk = batch.to_pandas()
        except StopIteration:
            break
        except damaged as e:
            raise SourceError(
                f"{name!r}: row groups {lo}-{hi - 1} (rows {task.row_offset:,} to "
                f"{task.row_offset + declared - 1:,}) cannot be read: {_first_line(e)}. "
                f"{remedy}") from None
        chunk.index = pd.RangeIndex(offset, offset + len(chunk))
        offset += len(chunk)
        yield chunk
    if offset - task.row_offset != declared:
        raise SourceError(f"{name!r}: row groups {lo}-{hi - 1} hold {offset - task.row_offset:,} "
                          f"rows where the file's footer declares {declared:,}. {remedy}")


def _csv_chunks(path: str, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A CSV file in chunks; every row must have as many fields as the header (a row with too
    few fields is an error naming its line, not missing values)."""
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:  # pandas alone cannot tell a short row from missing values
        yield from _csv_chunks_pandas(path, columns, chunk_rows)
        return
    yield from _csv_chunks_arrow(path, columns, chunk_rows)


def _csv_chunks_pandas(path: str, columns: list[str], chunk_rows: int
                       ) -> Iterator[pd.DataFrame]:
    name = Path(path).name
    try:
        with pd.read_csv(path, chunksize=chunk_rows) as reader:
            for chunk in reader:
                yield chunk[columns]
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SourceError(f"{name!r}: {_first_line(e)}. Every row needs one value per column "
                          "of the header (an empty field for a missing value)") from None


def _csv_chunks_arrow(path: str, columns: list[str], chunk_rows: int
                      ) -> Iterator[pd.DataFrame]:
    """Read with pyarrow's streaming CSV reader, every column as text, then convert each chunk's
    numeric columns: a value that is not a number stays text, so that the panel's checks name
    its row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    name = Path(path).name
    header = _csv_header(Path(path))
    bad_rows: list = []

    def invalid(row) -> str:
        bad_rows.append(row)
        return "skip"

    size = max(1, os.path.getsize(path))
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    lines_in_head = max(1, head.count(b"\n"))
    bytes_per_row = max(8, len(head) // lines_in_head)
    block = int(min(max(bytes_per_row * chunk_rows, 1 << 16), 1 << 28, 2 * size))
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=block, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), include_columns=columns,
                strings_can_be_null=True))
    except (OSError, ValueError) as e:
        raise SourceError(f"{name!r} cannot be read as CSV ({_first_line(e)})") from None
    offset = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (OSError, ValueError) as e:
            raise SourceError(f"{name!r}: after data row {offset:,}: {_first_line(e)}. Every "
                              "row needs one value per column of the header") from None
        if bad_rows:
            shown = "; ".join(
                f"line {r.number}: {r.actual_columns} field(s) where the header has "
                f"{r.expected_columns} ({r.text[:80]!r})" for r in bad_rows[:5])
            more = f"; and {len(bad_rows) - 5} more" if len(bad_rows) > 5 else ""
            raise SourceError(f"{name!r}: {len(bad_rows)} row(s) with the wrong number of "
                              f"fields; first: {shown}{more}. Every row needs one value per "
                              "column of the header (write an empty field for a missing value)")
        arrays = {c: _arrow_numbers(batch.column(c)) for c in columns}
        mixed = [c for c, arr in arrays.items() if arr is _MIXED]
        frame = pa.table({c: batch.column(c) if c in mixed else arr
                          for c, arr in arrays.items()}).to_pandas()
        for c in mixed:  # numbers and text: numbers where they are, the text named later
            frame[c] = _numbers_where_possible(frame[c])
        for lo in range(0, len(frame), chunk_rows):
            chunk = frame.iloc[lo:lo + chunk_rows]
            chunk.index = pd.RangeIndex(offset, offset + len(chunk))
            offset += len(chunk)
            yield chunk


#: Marks a text column holding both numbers and other text (converted in pandas).
_MIXED = object()
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _arrow_numbers(arr):
    """A text column (pyarrow) as int64 or float64 when every value present is a number, as
    text when none is, else :data:`_MIXED` (the caller converts it value by value)."""
    import re

    import pyarrow as pa
    import pyarrow.compute as pc

    if arr.null_count == len(arr):
        return arr.cast(pa.float64())
    first = arr.drop_null()[0].as_py()
    if re.match(_NUMBER, first):
        for target in (pa.int64(), pa.float64()):
            try:
                return pc.cast(arr, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        return _MIXED
    numeric = pc.any(pc.match_substring_regex(arr, _NUMBER)).as_py()
    return _MIXED if numeric else arr


def _numbers_where_possible(col: pd.Series) -> pd.Series:
    """A text column as integers (or floats, with missing values) when every value present is a
    number; else numbers where they are and text elsewhere (the panel's checks then name the
    rows holding text)."""
    present = col.notna()
    if not present.any():
        return col.astype(float)
    converted = pd.to_numeric(col, errors="coerce")
    text = present & converted.isna()
    if text.any():  # numbers as numbers, the rest as the text it is
        if text.all():
            return col.astype(object)
        whole = (converted == np.floor(converted)) & converted.notna()
        values = converted.astype(object).where(~whole, converted.where(whole).astype("Int64"))
        return values.where(~text, col).astype(object)
    if not converted.isna().any() and (converted == np.floor(converted)).all() and \
            np.abs(converted).max() < 2**53:
        return converted.astype(np.int64)
    return converted


# ---------------------------------------------------------------------------- one task


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
