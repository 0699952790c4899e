"""Reading out-of-core sources in chunks: Parquet files and row groups, CSV files, frames.

A source is cut into tasks (:class:`_Task`: a range of row groups of one Parquet file, one CSV
file, or a frame in memory) and each task's rows are read in chunks indexed by their row number
in the file. Corrupted, truncated and malformed files raise :class:`SourceError` naming the file
and the row or line; text columns become numbers where every value is one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ddc.panel import PanelError


class SourceError(PanelError):
    """A data file cannot be read as it should: empty, truncated, corrupted (a page checksum
    fails, fewer rows than its footer declares) or malformed (a CSV row with too few or too many
    fields). The message names the file, the row or line where known, and the remedy."""



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
