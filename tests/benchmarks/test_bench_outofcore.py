"""Benchmarks of the out-of-core reduction to sufficient statistics (ddc.outofcore).

Run with::

    python -m pytest tests/benchmarks/test_bench_outofcore.py --benchmark-only

(skipped by the default test run). A membership panel of ``DDC_BENCH_ROWS`` rows (10^7 by
default: 250,000 customers x 40 months, about 10 MB of Parquet) and one of a tenth of that are
written once per run with :func:`simulations.write_panel_parquet` (row groups of 500,000 rows);
the file takes about 90 seconds in all on two cores. Groups:

* ``outofcore-rows``: :func:`ddc.outofcore.sufficient_statistics` serially (chunks of 10^6 rows)
  on both files and in a two-process pool on the large one, against two in-memory baselines on
  the large one: the panel layer on the whole frame (``pandas.read_parquet`` then
  :class:`ddc.panel.Panel`: the same validation and coding at once), and a plain NumPy/pyarrow
  reduction without validation (dictionary codes, flat state by strides, ``np.bincount``), which
  is also checked to give the same counts. Rows per second are in ``extra_info``.
* ``outofcore-memory``: the same computations in a fresh process each, reporting the peak
  resident memory (``VmHWM`` on Linux: ``ru_maxrss`` of a process started by a big parent would
  include the parent's) next to that of a process that only imports the libraries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ddc
from ddc.outofcore import sufficient_statistics
from ddc.panel import Panel
from simulations.outofcore import write_panel_parquet

ROWS = int(os.environ.get("DDC_BENCH_ROWS", 10**7))
N_PERIODS = 40


@pytest.fixture(scope="module")
def model():
    return ddc.models.membership()


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench-outofcore")
    out = {}
    for rows in (ROWS // 10, ROWS):
        out[rows] = write_panel_parquet(model, model.true_params, d / f"panel-{rows}.parquet",
                                        n_customers=rows // N_PERIODS, n_periods=N_PERIODS,
                                        seed=0, customers_per_chunk=50_000,
                                        row_group_rows=500_000).path
    return out


def numpy_reduction(model, path):
    """Counts N(s, a), first-row counts and dense N(s, a, s') with pyarrow and NumPy only (the
    rows assumed sorted by customer and month, valid and without gaps)."""
    import pyarrow.parquet as pq

    S, A = model.n_states, model.n_actions
    space = model.space
    table = pq.read_table(path)
    state = np.zeros(table.num_rows, dtype=np.int64)
    for var, stride in zip(space.variables, space.strides, strict=True):
        state += stride * _codes(table.column(var.name), list(var.values))
    action = _codes(table.column("action"), list(model.actions))
    ids = table.column("customer_id").to_numpy()
    same = ids[1:] == ids[:-1]
    counts = np.bincount(state * A + action, minlength=S * A)
    first = np.r_[True, ~same]
    first_counts = np.bincount(state[first] * A + action[first], minlength=S * A)
    key = (state[:-1] * A + action[:-1]) * S + state[1:]
    trans = np.bincount(key[same], minlength=S * A * S)
    return counts.reshape(S, A), first_counts.reshape(S, A), trans


def _codes(column, values):
    import pyarrow as pa

    parts = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            lookup = np.array([values.index(v) for v in chunk.dictionary.to_pylist()])
            parts.append(lookup[chunk.indices.to_numpy()])
        else:
            parts.append(np.searchsorted(np.asarray(values), chunk.to_numpy()))
    return np.concatenate(parts).astype(np.int64)


def in_memory(model, path):
    import pandas as pd

    panel = Panel(model, pd.read_parquet(path))
    return panel.counts, panel.transition_counts


# --------------------------------------------------------------------------- speed


@pytest.mark.benchmark(group="outofcore-rows")
@pytest.mark.parametrize(("scheduler", "size"),
                         [pytest.param(None, "small", id="serial-small"),
                          pytest.param(None, "large", id="serial-large"),
                          pytest.param("processes", "large", id="processes2-large")])
def test_sufficient_statistics(benchmark, model, files, scheduler, size):
    rows = ROWS // 10 if size == "small" else ROWS
    st = benchmark.pedantic(sufficient_statistics, args=(model, files[rows]),
                            kwargs={"chunk_rows": 1_000_000, "scheduler": scheduler,
                                    "n_workers": 2}, rounds=2 if size == "large" else 3)
    assert st.nobs == rows
    benchmark.extra_info.update(rows=rows, rows_per_s=rows / benchmark.stats.stats.mean,
                                chunks=st.n_chunks)


@pytest.mark.benchmark(group="outofcore-rows")
def test_numpy_baseline(benchmark, model, files):
    counts, first, trans = benchmark.pedantic(numpy_reduction, args=(model, files[ROWS]),
                                              rounds=2)
    st = sufficient_statistics(model, files[ROWS])
    np.testing.assert_array_equal(counts, st.counts)
    np.testing.assert_array_equal(first, st.first_counts)
    tc = st.transition_counts
    np.testing.assert_array_equal(trans[(tc.s * model.n_actions + tc.a) * model.n_states
                                        + tc.s_next], tc.n)
    assert trans.sum() == tc.total
    benchmark.extra_info.update(rows=ROWS, rows_per_s=ROWS / benchmark.stats.stats.mean)


@pytest.mark.benchmark(group="outofcore-rows")
def test_panel_in_memory_baseline(benchmark, model, files):
    counts, tc = benchmark.pedantic(in_memory, args=(model, files[ROWS]), rounds=1)
    assert counts.sum() == ROWS
    benchmark.extra_info.update(rows=ROWS, rows_per_s=ROWS / benchmark.stats.stats.mean)


# --------------------------------------------------------------------------- memory


CHILD = """
import json, resource, sys, time
import numpy as np, pandas as pd, pyarrow.parquet
import ddc
from ddc.outofcore import sufficient_statistics
from ddc.panel import Panel
sys.path.insert(0, {bench_dir!r})
from test_bench_outofcore import numpy_reduction
model = ddc.models.membership()
method, path = {method!r}, {path!r}
t0 = time.perf_counter()
if method == "outofcore":
    sufficient_statistics(model, path, chunk_rows=1_000_000)
elif method == "outofcore-250k":
    sufficient_statistics(model, path, chunk_rows=250_000)
elif method == "numpy":
    numpy_reduction(model, path)
elif method == "panel":
    Panel(model, pd.read_parquet(path)).transition_counts
seconds = time.perf_counter() - t0
try:  # this process's own peak (ru_maxrss survives exec: it would include the parent's)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"peak_mb": peak, "seconds": seconds}}))
"""


def run_child(method: str, path: str) -> dict:
    code = CHILD.format(bench_dir=os.path.dirname(os.path.abspath(__file__)), method=method,
                        path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="outofcore-memory")
@pytest.mark.parametrize("method", ["imports-only", "outofcore", "outofcore-250k", "numpy",
                                    "panel"])
def test_peak_memory(benchmark, files, method):
    info = benchmark.pedantic(run_child, args=(method, files[ROWS]), rounds=1)
    benchmark.extra_info.update(rows=ROWS, peak_mb=info["peak_mb"],
                                seconds_in_child=info["seconds"])
