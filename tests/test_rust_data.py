"""Tests of the loader of Rust's (1987) bus engine replacement data (ddc.datasets.load_rust_bus).

Provenance of the published numbers: Rust, J. (1987), "Optimal Replacement of GMC Bus Engines: An
Empirical Model of Harold Zurcher", Econometrica 55(5), 999-1033, Tables IX (90 states) and X (175
states), as listed in ddc/datasets/rust1987/PROVENANCE.md. The data files ship with the package,
so no test here needs anything outside it.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import ddc
from ddc.datasets import (
    DATA_ENV_VAR,
    RUST_BUS_GROUPS,
    ChecksumWarning,
    load_rust_bus,
    rust_bus_files,
    shipped_data_dir,
)
from ddc.panel import PanelError, prepare

GROUPS_1_4 = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def data_dir():
    """The copy shipped with the package."""
    return shipped_data_dir()


@pytest.fixture(scope="module")
def g4(data_dir):
    return load_rust_bus(groups=(4,), n_states=90, path=data_dir)


@pytest.fixture(scope="module")
def g1_4(data_dir):
    return load_rust_bus(groups=GROUPS_1_4, n_states=90, path=data_dir)


@pytest.fixture(scope="module")
def g1_4_175(data_dir):
    return load_rust_bus(groups=GROUPS_1_4, n_states=175, path=data_dir)


def counts(df: pd.DataFrame) -> list[int]:
    return np.bincount(df["increment"].dropna().to_numpy(dtype=int)).tolist()


# ---------------------------------------------------------- published counts and estimates


def test_group4_increment_counts(g4):
    # Rust (1987), Table IX, group 4 at 90 states: 1682 / 2555 / 55 monthly increments of 0 / 1 / 2
    assert counts(g4) == [1682, 2555, 55]


def test_group4_transition_estimates(g4):
    # Table IX, group 4: theta_30 = .3919, theta_31 = .5953 (the increment frequencies), and the
    # transition part of the log-likelihood -3140.571
    c = np.array(counts(g4))
    freq = c / c.sum()
    assert np.round(freq[:2], 4).tolist() == [0.3919, 0.5953]
    theta = np.array([0.3919, 0.5953, 1 - 0.3919 - 0.5953])
    assert round(float(c @ np.log(theta)), 3) == -3140.571


def test_groups_1_4_transition_estimates(g1_4):
    # Table IX, groups 1-4: theta_30 = .3489, theta_31 = .6394 (the frequencies 2845/8156 =
    # .34882 and 5215/8156 = .63941 agree to 1e-4)
    c = counts(g1_4)
    assert c == [2845, 5215, 96]
    freq = np.array(c) / sum(c)
    np.testing.assert_allclose(freq[:2], [0.3489, 0.6394], atol=1e-4)


def test_175_states_transition_estimates(g1_4_175):
    # Table X, groups 1-4 at 175 states: theta_3 = (.1071, .5152, .3621, .0143); the data also
    # hold 7 increments of 4 and 3 of 5 bins
    c = counts(g1_4_175)
    assert c == [873, 4202, 2954, 117, 7, 3]
    freq = np.array(c) / sum(c)
    np.testing.assert_allclose(freq[:4], [0.1071, 0.5152, 0.3621, 0.0143], atol=1e-4)


def test_buses_rows_and_replacements(g4, g1_4, data_dir):
    # Rust (1987): groups 1-4 are 104 buses; 37 of them in group 4
    assert g1_4["bus_id"].nunique() == 104
    assert g4["bus_id"].nunique() == 37
    rows = g1_4.groupby("group").size().to_dict()
    assert rows == {1: 15 * 25, 2: 4 * 49, 3: 48 * 70, 4: 37 * 117}
    replaced = (g1_4["action"] == "replace").groupby(g1_4["group"]).sum().to_dict()
    assert replaced == {1: 0, 2: 0, 3: 27, 4: 33}
    everything = load_rust_bus(groups=range(9), path=data_dir)
    assert everything["bus_id"].nunique() == 166  # 162 buses in groups 1-8, 4 in d309.asc


def _choice_loglik(df, rc, theta_11, theta_3, n_states, beta):
    """Rust's choice log-likelihood at given parameters: a small self-contained NFXP solve."""
    x = np.arange(n_states)
    cost = 0.001 * theta_11 * x
    P = np.zeros((n_states, n_states))
    for j, p in enumerate(theta_3):
        np.add.at(P, (x, np.minimum(x + j, n_states - 1)), p)
    V = np.zeros(n_states)
    for _ in range(100):  # Newton-Kantorovich on V = log(exp(v_keep) + exp(v_replace))
        vk, vr = -cost + beta * P @ V, -rc + beta * P[0] @ V
        TV = np.logaddexp(vk, vr)
        pk = np.exp(vk - TV)
        J = beta * (pk[:, None] * P + (1 - pk)[:, None] * P[0][None, :])
        step = np.linalg.solve(np.eye(n_states) - J, TV - V)
        V += step
        if np.abs(step).max() < 1e-11:
            break
    vk, vr = -cost + beta * P @ V, -rc + beta * P[0] @ V
    log_p_replace = vr - np.logaddexp(vk, vr)
    log_p_keep = vk - np.logaddexp(vk, vr)
    later = df.groupby("bus_id").cumcount().to_numpy() > 0  # conditions on the first month
    m = df["mileage"].to_numpy()[later]
    rep = (df["action"] == "replace").to_numpy()[later]
    return float(np.where(rep, log_p_replace[m], log_p_keep[m]).sum())


def test_group4_choice_loglik(g4):
    # Table IX, group 4, beta = .9999: RC 10.075, theta_11 2.293, choice part -163.584. This pins
    # down the replacement months and the states (the header dates would give -163.793).
    theta_3 = [0.3919, 0.5953, 1 - 0.3919 - 0.5953]
    ll = _choice_loglik(g4, 10.075, 2.293, theta_3, 90, 0.9999)
    assert round(ll, 3) == -163.584


def test_groups_1_4_loglik(g1_4):
    # Table IX, groups 1-4, beta = .9999: RC 9.7558, theta_11 2.6275, log-likelihood -6055.25
    theta_3 = np.array([0.3489, 0.6394, 1 - 0.3489 - 0.6394])
    ll = _choice_loglik(g1_4, 9.7558, 2.6275, theta_3, 90, 0.9999)
    ll += float(np.array(counts(g1_4)) @ np.log(theta_3))
    assert ll == pytest.approx(-6055.25, abs=0.01)


# ---------------------------------------------------------- the panel's shape and conventions


def test_columns_and_dtypes(g1_4):
    assert list(g1_4.columns) == ["bus_id", "group", "month", "mileage", "action", "increment",
                                  "odometer"]
    for col in ("bus_id", "group", "month", "mileage", "odometer"):
        assert g1_4[col].dtype == np.int64, col
    assert isinstance(g1_4["action"].dtype, pd.CategoricalDtype)
    assert list(g1_4["action"].cat.categories) == ["keep", "replace"]
    assert g1_4["increment"].dtype == pd.Int64Dtype()
    assert g1_4["mileage"].between(0, 89).all()


def test_sorted_and_consecutive_months(g1_4):
    assert g1_4.index.equals(pd.RangeIndex(len(g1_4)))
    keys = list(zip(g1_4["bus_id"], g1_4["month"], strict=True))
    assert keys == sorted(keys)
    same_bus = g1_4["bus_id"].diff() == 0
    assert (g1_4["month"].diff()[same_bus] == 1).all()
    # increment is <NA> exactly in each bus's last month
    last = g1_4["bus_id"].ne(g1_4["bus_id"].shift(-1))
    assert g1_4["increment"].isna().equals(last)


def test_month_counter_and_first_bus(data_dir):
    # FORMAT.md: bus 5257 (a530872.asc, group 7), readings from 12/74, engines replaced in 6/79 at
    # 242,400 miles and in 8/84 at 384,900 miles
    df = load_rust_bus(groups=7, path=data_dir)
    bus = df[df["bus_id"] == 5257]
    assert bus["month"].iloc[0] == 1974 * 12 + 12 - 1
    rep = bus[bus["action"] == "replace"]
    assert len(rep) == 2
    for (_, row), repl_odometer in zip(rep.iterrows(), (242_400, 384_900), strict=True):
        nxt = bus[bus["month"] == row["month"] + 1].iloc[0]
        # the replacement month is the last reading not above the replacement reading
        assert row["odometer"] <= repl_odometer < nxt["odometer"]
        miles = nxt["odometer"] - repl_odometer
        assert nxt["mileage"] == -(-miles // 5000) - 1
        assert row["increment"] == -(-miles // 5000) == nxt["mileage"] + 1


def test_state_and_increment_rules(g1_4):
    keep = (g1_4["action"] == "keep") & g1_4["increment"].notna()
    nxt = g1_4["mileage"].shift(-1)
    assert (g1_4.loc[keep, "increment"] == (nxt - g1_4["mileage"])[keep]).all()
    rep = g1_4["action"] == "replace"
    assert (g1_4.loc[rep, "increment"] == nxt[rep] + 1).all()
    # right-closed 5,000-mile bins of the miles since the last replacement
    fresh = g1_4.groupby("bus_id").cumcount() == 0
    assert (g1_4.loc[fresh, "mileage"] == -(-g1_4.loc[fresh, "odometer"] // 5000) - 1).all()


def test_bin_width_175(g1_4_175, g1_4):
    assert g1_4_175["mileage"].max() < 175
    fresh = g1_4_175.groupby("bus_id").cumcount() == 0
    odo = g1_4_175.loc[fresh, "odometer"].to_numpy()
    assert (g1_4_175.loc[fresh, "mileage"].to_numpy() == -(-odo * 175 // 450_000) - 1).all()
    assert (g1_4_175["action"] == g1_4["action"]).all()


def test_mileage_beyond_last_bin_raises(data_dir):
    with pytest.raises(ValueError, match=r"bus \d+ \(group 4\), month \d{4}-\d{2}"):
        load_rust_bus(groups=4, n_states=90, max_mileage=100_000, path=data_dir)


def test_group_0_is_d309(data_dir):
    df = load_rust_bus(groups=0, path=data_dir)
    assert df["bus_id"].nunique() == 4 and (df["group"] == 0).all()


# ---------------------------------------------------------- arguments


@pytest.mark.parametrize("groups", [(1, 9), [-1], ("4",), (True,), (), "1234", 4.0])
def test_bad_group(groups):
    with pytest.raises(ValueError, match="accepted groups: 1-8") as err:
        load_rust_bus(groups=groups)
    if groups == (1, 9):
        assert "9" in str(err.value)


@pytest.mark.parametrize("n_states", [0, -90, 90.0, 90.5, "90", None, True])
def test_bad_n_states(n_states):
    with pytest.raises(ValueError, match="n_states must be a positive integer"):
        load_rust_bus(n_states=n_states)


@pytest.mark.parametrize("max_mileage", [0, -1, 450_000.5, "450000"])
def test_bad_max_mileage(max_mileage):
    with pytest.raises(ValueError, match="max_mileage must be a positive integer"):
        load_rust_bus(max_mileage=max_mileage)


# ---------------------------------------------------------- locating and verifying the files


def test_shipped_copy_is_the_default(monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    files = rust_bus_files(groups=sorted(RUST_BUS_GROUPS))
    assert {f.parent for f in files.values()} == {shipped_data_dir()}
    assert shipped_data_dir().parts[-3:] == ("ddc", "datasets", "rust1987")
    for name in ("FORMAT.md", "PROVENANCE.md", "SHA256SUMS"):
        assert (shipped_data_dir() / name).is_file(), name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped copy verifies without a warning
        assert counts(load_rust_bus(groups=4)) == [1682, 2555, 55]


def test_shipped_checksums_list_every_file():
    listed = {line.split()[1] for line in
              (shipped_data_dir() / "SHA256SUMS").read_text().splitlines() if line.strip()}
    assert listed == {g.file for g in RUST_BUS_GROUPS.values()}


def test_missing_folder_given_as_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="path=") as err:
        load_rust_bus(path=tmp_path / "nowhere")
    for text in ("nowhere", "g870.asc", "a530875.asc", DATA_ENV_VAR, "shipped"):
        assert text in str(err.value), text


def test_missing_folder_given_by_env(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=DATA_ENV_VAR) as err:
        load_rust_bus()
    assert str(tmp_path) in str(err.value)
    assert "g870.asc" in str(err.value)


def test_the_missing_file_is_named(data_dir, tmp_path):
    for name in ("a530875.asc", "SHA256SUMS"):
        shutil.copy(data_dir / name, tmp_path / name)
    with pytest.raises(FileNotFoundError) as err:
        load_rust_bus(groups=(1, 4), path=tmp_path)
    message = str(err.value)
    assert "lacks the file(s) g870.asc." in message
    assert str(tmp_path) in message


def test_env_var_and_path_are_used(data_dir, tmp_path, monkeypatch):
    for name in ("a530875.asc", "SHA256SUMS"):
        shutil.copy(data_dir / name, tmp_path / name)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert rust_bus_files(groups=4) == {4: tmp_path / "a530875.asc"}
    assert counts(load_rust_bus(groups=4)) == [1682, 2555, 55]
    with pytest.raises(FileNotFoundError, match="g870.asc"):  # not in that folder: no fallback
        load_rust_bus(groups=1)
    assert rust_bus_files(groups=1, path=data_dir) == {1: data_dir / "g870.asc"}


def test_checksum_mismatch(data_dir, tmp_path):
    shutil.copy(data_dir / "SHA256SUMS", tmp_path / "SHA256SUMS")
    text = (data_dir / "a530875.asc").read_text()
    (tmp_path / "a530875.asc").write_text(text.replace("5297", "9999", 1))
    with pytest.raises(ValueError, match=r"checksum mismatch for .*a530875\.asc"):
        load_rust_bus(groups=4, path=tmp_path)
    # without SHA256SUMS the (altered) file is read as it is, with a warning
    (tmp_path / "SHA256SUMS").unlink()
    with pytest.warns(ChecksumWarning, match="has no SHA256SUMS"):
        df = load_rust_bus(groups=4, path=tmp_path)
    assert 9999 in df["bus_id"].to_numpy()


@pytest.mark.parametrize("content", [
    pytest.param("not a checksum file\n", id="prose"),
    pytest.param("abc123  a530875.asc\n", id="short-hash"),
    pytest.param(b"\xff\xfe\x00garbage", id="binary"),
])
def test_garbage_checksum_file_warns(data_dir, tmp_path, content):
    shutil.copy(data_dir / "a530875.asc", tmp_path / "a530875.asc")
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.warns(ChecksumWarning, match="not a list of"):
        assert counts(load_rust_bus(groups=4, path=tmp_path)) == [1682, 2555, 55]


def test_unlisted_file_warns(data_dir, tmp_path):
    shutil.copy(data_dir / "a530875.asc", tmp_path / "a530875.asc")
    line = next(x for x in (data_dir / "SHA256SUMS").read_text().splitlines() if "g870" in x)
    (tmp_path / "SHA256SUMS").write_text(line + "\n")
    with pytest.warns(ChecksumWarning, match="does not list a530875.asc"):
        load_rust_bus(groups=4, path=tmp_path)


# ---------------------------------------------------------- data of another state space


def test_frame_records_its_bin_count(g4, g1_4_175):
    assert g4.attrs["ddc_state_sizes"] == {"mileage": 90}
    assert g1_4_175.attrs["ddc_state_sizes"] == {"mileage": 175}
    assert g4[g4["bus_id"] > 0].attrs == g4.attrs  # selections keep it


@pytest.mark.parametrize("data_states, model_states", [(90, 175), (175, 90), (90, 60)])
def test_data_binned_for_another_state_space_is_refused(g4, g1_4_175, data_states,
                                                        model_states):
    data = g4 if data_states == 90 else g1_4_175
    with pytest.raises(PanelError, match=rf"column 'mileage' was coded for {data_states} values"
                                         rf".* has {model_states}"):
        prepare(ddc.models.rust_bus(n_states=model_states), data)


def test_matching_state_space_is_accepted(g4):
    assert prepare(ddc.models.rust_bus(n_states=90), g4).nobs == len(g4)
