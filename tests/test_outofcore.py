"""Out-of-core sufficient statistics (ddc.outofcore) and the chunked Parquet writer
(simulations.outofcore).

The oracle is the panel in memory: the counts reduced chunk by chunk from Parquet, CSV, a dask
DataFrame or a pandas DataFrame -- with chunks smaller than a unit, units straddling chunks,
row groups and files, serially and in a process pool -- equal ``ddc.panel.Panel``'s exactly,
and the choice likelihood maximized from them equals NFXP's estimate on the frame.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import ddc
import ddc.outofcore as ooc
from ddc import Solver
from ddc.outofcore import SufficientStatistics, sufficient_statistics
from ddc.panel import Panel, PanelError
from estimators import NFXP
from estimators.data import choice_data
from estimators.likelihood import ChoiceLikelihood
from estimators.optimize import Optimizer, maximize
from simulations.outofcore import write_panel_parquet
from simulations.studies import add_bus_increments, su_judd_model

N_CUSTOMERS, N_PERIODS = 1_500, 12  # 18,000 rows; units of 12 rows


@pytest.fixture(scope="module")
def membership():
    return ddc.models.membership()


@pytest.fixture(scope="module")
def parquet_file(membership, tmp_path_factory):
    path = tmp_path_factory.mktemp("ooc") / "panel.parquet"
    out = write_panel_parquet(membership, membership.true_params, path, N_CUSTOMERS, N_PERIODS,
                              seed=4, customers_per_chunk=400, row_group_rows=1_000)
    return out


@pytest.fixture(scope="module")
def frame(parquet_file):
    return pd.read_parquet(parquet_file.path)


@pytest.fixture(scope="module")
def reference(membership, frame):
    return SufficientStatistics.from_panel(Panel(membership, frame))


def assert_same(st: SufficientStatistics, ref: SufficientStatistics):
    np.testing.assert_array_equal(st.counts, ref.counts)
    np.testing.assert_array_equal(st.first_counts, ref.first_counts)
    for k in ("s", "a", "s_next", "n"):
        np.testing.assert_array_equal(getattr(st.transition_counts, k),
                                      getattr(ref.transition_counts, k))
    assert (st.nobs, st.n_units) == (ref.nobs, ref.n_units)
    if ref.increment_counts is None:
        assert st.increment_counts is None
    else:
        np.testing.assert_array_equal(st.increment_counts, ref.increment_counts)


# ---------------------------------------------------------------------------- the writer


def test_writer_layout_and_determinism(membership, parquet_file, frame, tmp_path):
    assert parquet_file.rows == N_CUSTOMERS * N_PERIODS == len(frame)
    meta = pq.ParquetFile(parquet_file.path).metadata
    # blocks of 400, 400, 400 and 300 customers (4,800 and 3,600 rows), row groups <= 1,000 rows
    assert meta.num_row_groups == parquet_file.row_groups == 5 + 5 + 5 + 4
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 1_000
    ids = frame["customer_id"].to_numpy()
    assert np.all(np.diff(ids) >= 0) and ids[-1] == N_CUSTOMERS - 1
    Panel(membership, frame)  # a valid panel
    # same seed and block size: the same file; a different seed: another panel
    again = write_panel_parquet(membership, membership.true_params, tmp_path / "b.parquet",
                                N_CUSTOMERS, N_PERIODS, seed=4, customers_per_chunk=400,
                                row_group_rows=5_000)
    pd.testing.assert_frame_equal(pd.read_parquet(again.path), frame)
    other = write_panel_parquet(membership, membership.true_params, tmp_path / "c.parquet",
                                N_CUSTOMERS, N_PERIODS, seed=5, customers_per_chunk=400)
    assert not pd.read_parquet(other.path)["plan"].equals(frame["plan"])
    # block k is simulate() with the k-th spawned seed, ids shifted
    from simulations import simulate

    block1 = simulate(membership, membership.true_params, 400, N_PERIODS,
                      seed=np.random.SeedSequence(4).spawn(4)[1])
    got = frame[frame["customer_id"].between(400, 799)].reset_index(drop=True)
    block1["customer_id"] += 400
    pd.testing.assert_frame_equal(got, block1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parquet", "c.parquet"]


def test_writer_is_atomic(membership, tmp_path):
    def broken(block, model):
        if block["customer_id"].iloc[0] > 0:
            return block.assign(extra=1.0)  # the second block changes the schema
        return block

    with pytest.raises(ValueError, match="block 1: the columns or types differ"):
        write_panel_parquet(membership, membership.true_params, tmp_path / "x.parquet", 20, 3,
                            customers_per_chunk=10, transform=broken)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- equal to memory


@pytest.mark.parametrize("chunk_rows", [1_000, 5_000, 10**6],
                         ids=["row-group", "straddling", "one-chunk"])
def test_parquet_equals_panel_in_memory(membership, parquet_file, reference, chunk_rows):
    st = sufficient_statistics(membership, parquet_file.path, chunk_rows=chunk_rows,
                               task_rows=3_000)
    assert_same(st, reference)
    assert st.n_chunks >= -(-parquet_file.rows // chunk_rows)


@pytest.mark.parametrize("chunk_rows", [1, 7, 12, 25])
def test_chunks_smaller_than_a_unit(membership, frame, chunk_rows):
    """Units of 12 rows read 1, 7, 12 or 25 rows at a time (carried over several chunks)."""
    part = frame.iloc[:240]  # 20 customers
    ref = SufficientStatistics.from_panel(Panel(membership, part))
    assert_same(sufficient_statistics(membership, part, chunk_rows=chunk_rows), ref)


def test_process_pool_equals_serial(membership, parquet_file, reference):
    st = sufficient_statistics(membership, parquet_file.path, chunk_rows=1_700,
                               task_rows=2_500, scheduler="processes", n_workers=2)
    assert_same(st, reference)


def test_csv_files_directory_and_dask_frame(membership, frame, reference, tmp_path):
    # two CSV files, split inside a unit (customer 700's months straddle the files)
    cut = int(np.flatnonzero(frame["customer_id"].to_numpy() == 700)[5])
    frame.iloc[:cut].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[cut:].to_csv(tmp_path / "b.csv", index=False)
    st = sufficient_statistics(membership, [tmp_path / "a.csv", tmp_path / "b.csv"],
                               chunk_rows=999)
    assert_same(st, reference)
    # a directory of Parquet files (read in name order)
    d = tmp_path / "parts"
    d.mkdir()
    frame.iloc[:cut].to_parquet(d / "part-0.parquet", index=False)
    frame.iloc[cut:].to_parquet(d / "part-1.parquet", index=False)
    assert_same(sufficient_statistics(membership, d, chunk_rows=2_000), reference)
    # a dask DataFrame, partitions cutting units
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.from_pandas(frame, npartitions=7, sort=False)
    assert_same(sufficient_statistics(membership, ddf, chunk_rows=1_000, scheduler="serial"),
                reference)
    # a pandas DataFrame, in chunks
    assert_same(sufficient_statistics(membership, frame, chunk_rows=500), reference)


def test_sparse_accumulation_equals_dense(membership, parquet_file, reference, monkeypatch):
    monkeypatch.setattr(ooc.statistics, "DENSE_TRANSITIONS_MAX", 0)
    assert_same(sufficient_statistics(membership, parquet_file.path, chunk_rows=3_000),
                reference)


def test_statistics_methods(membership, frame, reference):
    panel = Panel(membership, frame)
    cd = choice_data(membership, frame, drop_first=True)
    np.testing.assert_array_equal(reference.choice_counts(drop_first=True), cd.counts)
    np.testing.assert_array_equal(reference.choice_counts(), panel.counts)
    log_pi = membership.solve(membership.true_params).log_pi
    assert reference.loglik_choice(log_pi) == pytest.approx(panel.loglik_choice(log_pi),
                                                            rel=1e-13)
    fc, fc_ref = reference.factor_counts(), panel.factor_counts()
    assert list(fc) == list(fc_ref)
    for k in fc:
        np.testing.assert_array_equal(fc[k], fc_ref[k])
    # statistics of two halves (distinct customers) add up
    half = frame["customer_id"] < 600
    a = SufficientStatistics.from_panel(Panel(membership, frame[half]))
    b = SufficientStatistics.from_panel(Panel(membership, frame[~half]))
    assert_same(a + b, reference)
    assert "18,000 rows, 1,500 units" in repr(reference)


# ---------------------------------------------------------------------------- estimation


def test_estimation_from_counts_equals_nfxp(membership, parquet_file, frame):
    """Maximizing the choice likelihood on the out-of-core counts gives NFXP's estimate on the
    frame with the membership model's transitions declared known; with them estimated (the
    default), NFXP on the counts equals NFXP on the frame."""
    st = sufficient_statistics(membership, parquet_file.path, chunk_rows=2_500)
    lik = ChoiceLikelihood(membership, st.choice_counts(), Solver())

    def objective(x, need):
        ev = lik.evaluate(x, need)
        return ev.loglik, ev.grad, ev.bhhh

    def hessian(x):
        return lik.evaluate(x, True, hessian=True).hessian

    K = len(membership.utility_params)
    # NFXP's outer loop (Newton on the analytic Hessian), which ends at the optimum to the
    # rounding noise of the fixed point (BHHH's default tol stops about 1e-6 short of it)
    res = maximize(objective, np.zeros(K), Optimizer("newton"), hessian)
    assert res.converged
    fit = NFXP(membership, transitions="known").fit(frame)
    np.testing.assert_allclose(res.x, fit.params[membership.utility_params].to_numpy(),
                               rtol=1e-6, atol=1e-8)
    assert res.fun == pytest.approx(fit.loglik_parts["choice"], rel=1e-10)
    est_frame, est_counts = NFXP(membership).fit(frame), NFXP(membership).fit(st)
    np.testing.assert_allclose(est_counts.params.to_numpy(), est_frame.params.to_numpy(),
                               rtol=1e-6, atol=1e-8)


def test_bus_increment_counts(tmp_path):
    bus = su_judd_model(0.975)
    out = write_panel_parquet(bus, bus.true_params, tmp_path / "bus.parquet", 60, 40, seed=2,
                              customers_per_chunk=25, transform=add_bus_increments)
    df = pd.read_parquet(out.path)
    assert str(df["increment"].dtype) == "Int64"
    st = sufficient_statistics(bus, out.path, chunk_rows=333)
    ref = SufficientStatistics.from_panel(Panel(bus, df), df)
    assert_same(st, ref)
    np.testing.assert_array_equal(st.increment_counts,
                                  np.bincount(df["increment"].dropna().astype(int), minlength=5))
    # the first stage of NFXP from the counts: the increment frequencies
    from estimators.first_stage import estimate_transitions

    ts = estimate_transitions(bus, Panel(bus, df), df)
    np.testing.assert_allclose(st.increment_counts[:-1] / st.increment_counts.sum(),
                               ts.params.to_numpy(), rtol=1e-14)


# ---------------------------------------------------------------------------- errors


def test_unsorted_ids_are_named(membership, frame, tmp_path):
    shuffled = pd.concat([frame.iloc[1200:2400], frame.iloc[:1200]])
    shuffled.to_parquet(tmp_path / "s.parquet", index=False)
    with pytest.raises(PanelError, match=r"s.parquet.*not sorted by 'customer_id': row 1200 "
                                          r"has customer_id=0 after customer_id=199"):
        sufficient_statistics(membership, tmp_path / "s.parquet", chunk_rows=500)


def test_bad_values_are_named_with_file_and_row(membership, frame, tmp_path):
    bad = frame.copy()
    bad["plan"] = bad["plan"].astype(str)
    bad.loc[4321, "plan"] = "platinum"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PanelError, match=r"bad.csv: column 'plan'.*row 4321 "
                                          r"\(customer_id=360, month=1\): 'platinum'"):
        sufficient_statistics(membership, tmp_path / "bad.csv", chunk_rows=1_000)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [pytest.param(lambda d, f: f.drop(columns="video").to_csv(d / "x.csv", index=False),
                  PanelError, r"missing column\(s\) \['video'\]", id="missing-column"),
     pytest.param(lambda d, f: (d / "x.txt.bin").write_text("x"), ValueError,
                  "cannot tell the format", id="format"),
     pytest.param(None, FileNotFoundError, "does not exist", id="no-file")],
)
def test_source_errors(membership, frame, tmp_path, make, error, match):
    target = tmp_path / "x.csv"
    if make is not None:
        make(tmp_path, frame)
        target = next(tmp_path.iterdir())
    with pytest.raises(error, match=match):
        sufficient_statistics(membership, target)


def test_increments_out_of_range(tmp_path):
    bus = su_judd_model(0.975)
    out = write_panel_parquet(bus, bus.true_params, tmp_path / "bus.parquet", 10, 10, seed=2,
                              transform=functools.partial(_shifted_increments, by=5))
    with pytest.raises(PanelError, match=r"column 'increment'.*outside 0..4"):
        sufficient_statistics(bus, out.path)


def _shifted_increments(panel, model, by):
    out = add_bus_increments(panel, model)
    out["increment"] = out["increment"] + by
    return out


# ---------------------------------------------------------------------------- damaged files


def _bus_csv(tmp_path):
    bus = su_judd_model(0.975)
    out = write_panel_parquet(bus, bus.true_params, tmp_path / "bus.parquet", 30, 12, seed=3,
                              transform=add_bus_increments)
    pd.read_parquet(out.path).to_csv(tmp_path / "bus.csv", index=False)
    return bus, tmp_path / "bus.csv"


@pytest.mark.parametrize("keep", [1, 3, 4], ids=lambda k: f"{k}-fields")
def test_csv_row_with_too_few_fields_names_its_line(tmp_path, keep):
    """A short row is an error naming the file and line, not missing values (the bus's last
    field, the increment, may legitimately be empty: a short row must not pass for that)."""
    bus, path = _bus_csv(tmp_path)
    lines = path.read_text().splitlines()
    lines[40] = ",".join(lines[40].split(",")[:keep])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ooc.SourceError, match=rf"'bus.csv': 1 row\(s\) with the wrong number "
                                              rf"of fields; first: line 41: {keep} field\(s\) "
                                              r"where the header has 5"):
        sufficient_statistics(bus, path, chunk_rows=50)


def test_csv_row_with_too_many_fields(tmp_path):
    bus, path = _bus_csv(tmp_path)
    lines = path.read_text().splitlines()
    lines[7] += ",9"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ooc.SourceError, match=r"line 8: 6 field\(s\) where the header has 5"):
        sufficient_statistics(bus, path)


def test_csv_text_in_a_number_column_names_the_row(tmp_path):
    bus, path = _bus_csv(tmp_path)
    lines = path.read_text().splitlines()
    fields = lines[12].split(",")
    fields[2] = "x17"  # mileage
    lines[12] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PanelError,
                       match=r"bus.csv: column 'mileage' mixes.*row 11 .*'x17' \(str\)"):
        sufficient_statistics(bus, path, chunk_rows=100)


def test_empty_csv_is_named(membership, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ooc.SourceError, match=r"empty.csv' is empty \(no header line, no rows\)"):
        sufficient_statistics(membership, tmp_path / "empty.csv")


@pytest.mark.parametrize("size", [0, 100, -100], ids=["0-bytes", "head-only", "no-footer"])
def test_truncated_parquet_is_named(membership, parquet_file, tmp_path, size):
    data = parquet_file.path.read_bytes()
    cut = data[:size] if size >= 0 else data[:size]
    (tmp_path / "cut.parquet").write_bytes(cut)
    with pytest.raises(ooc.SourceError, match=r"cut.parquet.*(empty \(0 bytes\)|truncated)"):
        sufficient_statistics(membership, tmp_path / "cut.parquet")


def _flip_outcomes(model, path, reference, tmp_path, n=30):
    """Read ``path`` with two bytes of its data pages flipped, ``n`` times (fixed seed): how
    often it is an error naming the file, the same counts, or different counts."""
    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little") + 8
    rng = np.random.default_rng(7)
    outcomes = {"error": 0, "same": 0, "different": 0}
    for _ in range(n):
        damaged = bytearray(data)
        for i in rng.integers(4, len(data) - footer, size=2):
            damaged[i] ^= 0xFF
        target = tmp_path / "flipped.parquet"
        target.write_bytes(bytes(damaged))
        try:
            st = sufficient_statistics(model, target, chunk_rows=2_000)
        except PanelError as e:
            assert "flipped.parquet" in str(e)
            outcomes["error"] += 1
            continue
        try:
            assert_same(st, reference)
            outcomes["same"] += 1
        except AssertionError:
            outcomes["different"] += 1
    return outcomes


def test_flipped_bytes_are_an_error_not_other_counts(membership, parquet_file, reference,
                                                     tmp_path):
    """Two flipped bytes in a file of write_panel_parquet (page checksums written): every
    corruption is an error naming the file, never different counts. The same corruptions of
    the same rows written without checksums (uncompressed) pass unnoticed some of the time: the
    checksums the writer stores are what catches them."""
    checked = _flip_outcomes(membership, parquet_file.path, reference, tmp_path)
    assert checked["different"] == 0 and checked["error"] >= 25, checked
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(parquet_file.path), plain, row_group_size=1_000,
                   compression="none")
    unchecked = _flip_outcomes(membership, plain, reference, tmp_path)
    assert unchecked["different"] > 0, unchecked


def test_column_mapping_and_dates(membership, frame, reference, tmp_path):
    """The same panel with other column names and monthly dates as text reduces to the same
    counts through the column mapping (the one of ddc.panel.prepare)."""
    renamed = frame.rename(columns={"customer_id": "client", "month": "date", "plan": "tier",
                                    "action": "choice"})
    renamed["date"] = (pd.Period("2020-07", freq="M") + renamed["date"]).astype(str)
    renamed.to_csv(tmp_path / "mapped.csv", index=False)
    cols = ddc.panel.Columns(id_col="client", time_col="date", action_col="choice",
                             states={"plan": "tier"})
    st = sufficient_statistics(membership, tmp_path / "mapped.csv", columns=cols,
                               chunk_rows=700)
    assert_same(st, reference)
    assert (st.id_col, st.time_col) == ("client", "date")
    with pytest.raises(PanelError, match=r"no id column.*name it with id_col="):
        sufficient_statistics(membership, tmp_path / "mapped.csv")
