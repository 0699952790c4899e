"""Large simulated panels written to Parquet in chunks, for out-of-core estimation.

:func:`write_panel_parquet` simulates customers in blocks of ``customers_per_chunk``, each block
with its own seed spawned from ``seed`` (:class:`numpy.random.SeedSequence`), and appends each
block to one Parquet file as a row group, so that a panel of :math:`10^8` customer-months is
written with the memory of one block. The rows come out sorted by customer id and month, as
:func:`ddc.outofcore.sufficient_statistics` needs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ddc.io import atomic_path
from ddc.model import Model
from ddc.panel import Columns
from ddc.solver import Solution
from simulations.simulate import output_columns, simulate

__all__ = ["ParquetPanel", "write_panel_parquet"]


@dataclass(frozen=True)
class ParquetPanel:
    """What :func:`write_panel_parquet` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The Parquet file.
    rows, n_customers, n_periods, row_groups : int
        Its size.
    bytes : int
        Size on disk.
    seconds : float
        Wall time of simulating and writing.
    """

    path: Path
    rows: int
    n_customers: int
    n_periods: int
    row_groups: int
    bytes: int
    seconds: float

    def __fspath__(self) -> str:
        return str(self.path)


def write_panel_parquet(
    model: Model,
    params,
    path: str | os.PathLike,
    n_customers: int,
    n_periods: int,
    seed: int | np.random.SeedSequence = 0,
    customers_per_chunk: int = 100_000,
    row_group_rows: int = 500_000,
    transform: Callable[[pd.DataFrame, Model], pd.DataFrame] | None = None,
    weights: Mapping | pd.Series | None = None,
    compression: str = "snappy",
    columns: Columns | Mapping[str, str] | None = None,
) -> ParquetPanel:
    """Simulate a long panel block by block and write it to one Parquet file.

    Block :math:`k` holds customers :math:`k c, \\dots, (k+1) c - 1` (:math:`c` =
    ``customers_per_chunk``), simulated by :func:`simulations.simulate` with the seed
    ``SeedSequence(seed).spawn(n_blocks)[k]`` and appended as row groups of at most
    ``row_group_rows`` rows. The file is written
    to a temporary name and renamed when complete: it exists whole or not at all.

    Parameters
    ----------
    model : ddc.Model
        The model.
    params : pandas.Series, mapping, array or ddc.Solution
        Parameters (solved once) or a solution.
    path : str or path
        The Parquet file to write (its directory must exist).
    n_customers, n_periods : int
        Size of the panel: ``n_customers * n_periods`` rows.
    seed : int or numpy.random.SeedSequence
        Root seed. The panel depends on ``seed`` and ``customers_per_chunk`` (not on the
        machine): the same two give the same file.
    customers_per_chunk : int
        Customers simulated and held in memory at a time.
    row_group_rows : int
        Most rows per Parquet row group (a reader decodes a row group at a time, so this bounds
        its memory; row groups are also the units that readers split across workers).
    transform : callable, optional
        ``transform(block, model) -> block``, applied to each block's DataFrame before it is
        written (e.g. :func:`simulations.studies.add_bus_increments`, which adds the bus model's
        ``increment`` column); it must return the same columns with the same types for every
        block.
    weights : mapping or pandas.Series, optional
        Shares of the permanent state variables' combinations (see :func:`simulate`).
    compression : str
        Parquet compression codec.
    columns : ddc.panel.Columns or mapping, optional
        Names of the written columns (as :func:`simulations.simulate`).

    Returns
    -------
    ParquetPanel

    Examples
    --------
    >>> import tempfile, os, ddc
    >>> model = ddc.models.membership()
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = write_panel_parquet(model, model.true_params, os.path.join(d, "p.parquet"),
    ...                               n_customers=1_000, n_periods=12, customers_per_chunk=300)
    ...     (out.rows, out.row_groups)
    (12000, 4)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    for name, v in (("n_customers", n_customers), ("n_periods", n_periods),
                    ("customers_per_chunk", customers_per_chunk),
                    ("row_group_rows", row_group_rows)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the directory of {str(path)!r} does not exist")
    sol = params if isinstance(params, Solution) else model.solve(params)
    n_blocks = -(-int(n_customers) // int(customers_per_chunk))
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = root.spawn(n_blocks)
    id_name = output_columns(model, columns).id_col
    writer = None
    rows = groups = 0
    with atomic_path(path) as tmp:
        try:
            for k, child in enumerate(seeds):
                lo = k * int(customers_per_chunk)
                n = min(int(customers_per_chunk), int(n_customers) - lo)
                block = simulate(model, sol, n_customers=n, n_periods=n_periods, seed=child,
                                 weights=weights, columns=columns)
                block[id_name] = block[id_name].to_numpy() + lo
                if transform is not None:
                    block = transform(block, model)
                table = pa.Table.from_pandas(block, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), table.schema, compression=compression,
                                              write_page_checksum=True)
                elif not table.schema.equals(writer.schema):
                    raise ValueError(f"block {k}: the columns or types differ from the first "
                                     f"block's ({table.schema} vs {writer.schema}); the "
                                     "transform must return the same columns and types for "
                                     "every block")
                writer.write_table(table, row_group_size=int(row_group_rows))
                rows += len(block)
                groups += -(-len(block) // int(row_group_rows))
        finally:
            if writer is not None:
                writer.close()
    return ParquetPanel(path=path, rows=rows, n_customers=int(n_customers),
                        n_periods=int(n_periods), row_groups=groups,
                        bytes=path.stat().st_size, seconds=time.perf_counter() - t0)
