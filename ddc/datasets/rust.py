"""John Rust's (1987) bus engine replacement data: locate, verify and load the NFXP files.

The data are the odometer readings of the Madison (Wisconsin) Metropolitan Bus Company's buses,
December 1974 to May 1985, as distributed with Rust's NFXP software: nine ``.asc`` files, one per
bus model and vintage (``RUST_BUS_GROUPS``). :func:`load_rust_bus` turns them into the long
bus-month panel used by Rust, J. (1987), "Optimal Replacement of GMC Bus Engines: An Empirical
Model of Harold Zurcher", *Econometrica* 55(5), 999-1033.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ddc.panel import STATE_SIZES_ATTR

__all__ = [
    "DATA_ENV_VAR",
    "RUST_BUS_GROUPS",
    "ChecksumWarning",
    "RustBusGroup",
    "load_rust_bus",
    "rust_bus_files",
    "shipped_data_dir",
]

#: Environment variable naming a folder that holds the ``.asc`` files (instead of the shipped copy).
DATA_ENV_VAR = "DDC_RUST_DATA"
#: The shipped copy: package data beside this module.
_SHIPPED_SUBDIR = "rust1987"
_CHECKSUM_FILE = "SHA256SUMS"
_HEADER_ROWS = 11
_COLUMNS = ["bus_id", "group", "month", "mileage", "action", "increment", "odometer"]
_ACTIONS = ("keep", "replace")


class ChecksumWarning(UserWarning):
    """A data folder's files could not be verified (no usable ``SHA256SUMS``)."""


@dataclass(frozen=True)
class RustBusGroup:
    """One data file: a matrix of ``rows`` x ``buses`` stored column-major."""

    group: int
    file: str
    rows: int
    buses: int
    model: str


#: Group number -> file. Groups 1-8 are Rust's (1987); group 0 is the Davidson 309 file, which is
#: distributed with the data but not used in the paper's tables.
RUST_BUS_GROUPS: dict[int, RustBusGroup] = {
    g.group: g
    for g in (
        RustBusGroup(1, "g870.asc", 36, 15, "Grumman 870"),
        RustBusGroup(2, "rt50.asc", 60, 4, "Chance RT-50"),
        RustBusGroup(3, "t8h203.asc", 81, 48, "GMC T8H203"),
        RustBusGroup(4, "a530875.asc", 128, 37, "GMC A5308, 1975"),
        RustBusGroup(5, "a530874.asc", 137, 12, "GMC A5308, 1974"),
        RustBusGroup(6, "a452374.asc", 137, 10, "GMC A4523, 1974"),
        RustBusGroup(7, "a530872.asc", 137, 18, "GMC A5308, 1972"),
        RustBusGroup(8, "a452372.asc", 137, 18, "GMC A4523, 1972"),
        RustBusGroup(0, "d309.asc", 110, 4, "Davidson 309 (not in the paper's tables)"),
    )
}
_ALL_FILES = tuple(g.file for g in RUST_BUS_GROUPS.values())
_ACCEPTED = "1-8 (Rust 1987's groups) and 0 (d309.asc, Davidson 309, not used in the paper)"


# --------------------------------------------------------------------------- argument checks


def _check_groups(groups) -> tuple[int, ...]:
    if isinstance(groups, numbers.Integral) and not isinstance(groups, bool):
        groups = (groups,)
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable):
        raise ValueError(f"groups must be an iterable of group numbers, got {groups!r}; "
                         f"accepted groups: {_ACCEPTED}")
    out: list[int] = []
    for g in groups:
        if isinstance(g, bool) or not isinstance(g, numbers.Integral) or int(g) not in (
            RUST_BUS_GROUPS
        ):
            raise ValueError(f"groups: {g!r} is not a bus group; accepted groups: {_ACCEPTED}")
        if int(g) not in out:
            out.append(int(g))
    if not out:
        raise ValueError(f"groups is empty; accepted groups: {_ACCEPTED}")
    return tuple(out)


def _check_positive_int(name: str, value, allow_float: bool = False) -> int:
    if allow_float and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- locating the files


def shipped_data_dir() -> Path:
    """The folder of the data files shipped with the package (``ddc/datasets/rust1987``)."""
    return Path(__file__).resolve().parent / _SHIPPED_SUBDIR


def _missing(folder: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (folder / f).is_file()]


def _not_found(folder: Path, missing: list[str], how: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"Rust (1987) bus data: {how} {str(folder)!r} lacks the file(s) {', '.join(missing)}. "
        f"Give a folder holding Rust's NFXP files ({', '.join(_ALL_FILES)}) with path=... or "
        f"{DATA_ENV_VAR}=<folder>, or give neither to use the copy shipped with the package "
        f"({shipped_data_dir()})."
    )


def _locate(path, files: list[str]) -> tuple[Path, bool]:
    """The folder to read (``path``, else ``$DDC_RUST_DATA``, else the shipped copy) and whether
    it is the shipped copy."""
    if path is not None:
        folder, how = Path(path).expanduser(), "path="
    elif os.environ.get(DATA_ENV_VAR):
        folder, how = Path(os.environ[DATA_ENV_VAR]).expanduser(), f"{DATA_ENV_VAR}="
    else:
        folder, how = shipped_data_dir(), "the package's shipped data folder"
    missing = _missing(folder, files)
    if missing:
        if how.endswith("folder"):  # pragma: no cover - a broken installation
            raise FileNotFoundError(
                f"the copy of Rust's (1987) data shipped with the package is incomplete: "
                f"{folder} lacks {', '.join(missing)}; reinstall ddc-econ, or give a folder with "
                f"path=... or {DATA_ENV_VAR}")
        raise _not_found(folder, missing, how)
    return folder, how.endswith("folder")


def _read_checksums(sums_file: Path) -> dict[str, str] | None:
    """``file -> sha256`` from a ``sha256sum``-style file, or None when it is not one."""
    expected: dict[str, str] = {}
    try:
        text = sums_file.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if (len(parts) != 2 or len(parts[0]) != 64
                or any(c not in "0123456789abcdefABCDEF" for c in parts[0])):
            return None
        expected[parts[1].lstrip("*")] = parts[0].lower()
    return expected or None


def _verify(folder: Path, files: list[str], shipped: bool) -> None:
    """Check ``files`` against the folder's ``SHA256SUMS``.

    A mismatch raises; a folder of the user's without a readable ``SHA256SUMS``, or one that does
    not list a file, gives a :class:`ChecksumWarning` (the files are read unverified). The shipped
    copy must always verify.
    """
    sums_file = folder / _CHECKSUM_FILE
    expected = _read_checksums(sums_file) if sums_file.is_file() else None
    if expected is None:
        what = ("has no SHA256SUMS" if not sums_file.is_file()
                else f"has a {_CHECKSUM_FILE} that is not a list of '<sha256>  <file>' lines")
        if shipped:  # pragma: no cover - a broken installation
            raise ValueError(f"the package's data folder {folder} {what}; reinstall ddc-econ")
        warnings.warn(f"Rust (1987) bus data: {folder} {what}; the files are read without "
                      f"verifying them against the original checksums (see the package's "
                      f"{shipped_data_dir() / _CHECKSUM_FILE})",
                      ChecksumWarning, stacklevel=4)
        return
    unlisted = [f for f in files if f not in expected]
    if unlisted:
        if shipped:  # pragma: no cover - a broken installation
            raise ValueError(f"{folder / _CHECKSUM_FILE} does not list {', '.join(unlisted)}")
        warnings.warn(f"Rust (1987) bus data: {folder / _CHECKSUM_FILE} does not list "
                      f"{', '.join(unlisted)}; read without verifying", ChecksumWarning,
                      stacklevel=4)
    for f in files:
        if f not in expected:
            continue
        got = hashlib.sha256((folder / f).read_bytes()).hexdigest()
        if got != expected[f]:
            raise ValueError(
                f"checksum mismatch for {folder / f}: SHA256 {got}, but {sums_file} lists "
                f"{expected[f]}; the file is corrupt or not Rust's original"
            )


def rust_bus_files(groups=(1, 2, 3, 4), path=None, verify: bool = True) -> dict[int, Path]:
    """Locate (and verify) the data files of the bus groups.

    The folder is ``path`` if given, else the one named by the environment variable
    ``DDC_RUST_DATA``, else the copy shipped with the package (:func:`shipped_data_dir`). The
    files are checked against the folder's ``SHA256SUMS``: a mismatch is an error; a folder of
    the user's without a usable ``SHA256SUMS`` (missing, or not ``<sha256>  <file>`` lines) gives
    a :class:`ChecksumWarning` and its files are read unverified.

    Parameters
    ----------
    groups : int or iterable of int, default (1, 2, 3, 4)
        Bus groups, see :func:`load_rust_bus`.
    path : str or os.PathLike, optional
        Folder holding the files; see :func:`load_rust_bus` for where the files are looked for
        when it is not given.
    verify : bool, default True
        Check the files against the folder's ``SHA256SUMS``.

    Returns
    -------
    dict of int to pathlib.Path
        Group number -> data file.

    Raises
    ------
    FileNotFoundError
        When the folder lacks a file of ``groups`` (the message names the folder and the file).
    ValueError
        On a bad group, or a file whose checksum differs from the one its folder's
        ``SHA256SUMS`` lists (the message names the file).

    Warns
    -----
    ChecksumWarning
        When a folder given by ``path`` or ``DDC_RUST_DATA`` has no usable ``SHA256SUMS`` or it
        does not list a file.

    See Also
    --------
    load_rust_bus : The bus-month panel built from the files.

    Examples
    --------
    >>> from ddc.datasets import rust_bus_files
    >>> files = rust_bus_files(groups=[4])  # the shipped copy
    >>> files[4].name, files[4].parent.name
    ('a530875.asc', 'rust1987')
    """
    groups = _check_groups(groups)
    files = [RUST_BUS_GROUPS[g].file for g in groups]
    folder, shipped = _locate(path, files)
    if verify:
        _verify(folder, files, shipped)
    return {g: folder / RUST_BUS_GROUPS[g].file for g in groups}


# --------------------------------------------------------------------------- reading and building


def _read_matrix(file: Path, spec: RustBusGroup) -> np.ndarray:
    """The ``rows x buses`` integer matrix of one file (the file stores it column-major)."""
    try:
        values = np.array(file.read_text().split(), dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{file}: not a column of numbers ({exc})") from None
    if values.size != spec.rows * spec.buses:
        raise ValueError(f"{file}: {values.size} numbers, expected {spec.rows} x {spec.buses} = "
                         f"{spec.rows * spec.buses}")
    if not np.all(values == np.round(values)):
        raise ValueError(f"{file}: holds non-integer numbers")
    return values.astype(np.int64).reshape(spec.buses, spec.rows).T


def _year(yy: np.ndarray) -> np.ndarray:
    return np.where(yy < 100, 1900 + yy, yy)


def _fmt_month(counter: int) -> str:
    return f"{counter // 12:04d}-{counter % 12 + 1:02d}"


def _group_panel(mat: np.ndarray, spec: RustBusGroup, file: Path, n_states: int,
                 max_mileage: int) -> dict[str, np.ndarray]:
    head, odo = mat[:_HEADER_ROWS], mat[_HEADER_ROWS:]
    n_months, n_buses = odo.shape
    bus = head[0]
    if np.any((head[9] < 1) | (head[9] > 12)):
        raise ValueError(f"{file}: a start month (header row 10) outside 1..12")
    start = _year(head[10]) * 12 + head[9] - 1  # calendar-month counter of the first reading
    rows = np.arange(n_months)[:, None]

    step = np.diff(odo, axis=0)
    if np.any(step < 0):
        t, b = np.argwhere(step < 0)[0]
        raise ValueError(f"{file}: bus {bus[b]}: the odometer reading falls from "
                         f"{odo[t, b]} to {odo[t + 1, b]} in {_fmt_month(start[b] + t + 1)}")

    # Replacement months: the last month whose end-of-month reading is not above the replacement
    # odometer reading of the header (see the Notes of load_rust_bus).
    ref = np.zeros_like(odo)
    replace = np.zeros(odo.shape, dtype=bool)
    previous = np.full(n_buses, -1)
    for k, (r_month, r_odo) in enumerate(((3, 5), (6, 8)), start=1):  # header rows 4, 6; 7, 9
        has = head[r_month] != 0
        if not has.any():
            continue
        bad = has & ((head[r_month] > 12) | (head[r_odo] <= 0))
        if bad.any():
            b = np.flatnonzero(bad)[0]
            raise ValueError(f"{file}: bus {bus[b]}: replacement {k} has month "
                             f"{head[r_month, b]} and odometer reading {head[r_odo, b]}")
        n_le = (odo <= head[r_odo][None, :]).sum(axis=0)  # readings not above it
        outside = has & ((n_le == 0) | (n_le == n_months))
        if outside.any():
            b = np.flatnonzero(outside)[0]
            raise ValueError(
                f"{file}: bus {bus[b]}: replacement {k} at {head[r_odo, b]} miles lies outside "
                f"the readings {odo[0, b]}..{odo[-1, b]}")
        t_repl = np.where(has, n_le - 1, n_months)
        if np.any(has & (t_repl <= previous)):
            b = np.flatnonzero(has & (t_repl <= previous))[0]
            raise ValueError(f"{file}: bus {bus[b]}: replacement {k} is not after replacement "
                             f"{k - 1}")
        previous = np.where(has, t_repl, previous)
        replace |= rows == t_repl[None, :]
        ref = np.where(rows > t_repl[None, :], head[r_odo][None, :], ref)

    miles = odo - ref  # >= 0: readings rise and a replacement month's next reading is above it
    # Right-closed bins of max_mileage / n_states miles, in exact integer arithmetic:
    # bins_up = ceil(miles / width), the mileage bin is bins_up - 1 (0 at exactly 0 miles).
    bins_up = -((-miles * n_states) // max_mileage)
    over = bins_up > n_states
    if over.any():
        t, b = np.argwhere(over)[0]
        raise ValueError(
            f"bus {bus[b]} (group {spec.group}), month {_fmt_month(start[b] + t)}: "
            f"{miles[t, b]:,} miles since the last replacement are beyond the last of "
            f"n_states={n_states} bins of {max_mileage / n_states:,.2f} miles "
            f"(max_mileage={max_mileage:,}); raise max_mileage"
        )
    mileage = np.maximum(bins_up - 1, 0)
    increment = np.where(replace[:-1], bins_up[1:], mileage[1:] - mileage[:-1])

    def flat(a: np.ndarray) -> np.ndarray:  # bus-major: each bus's months together
        return a.T.reshape(-1)

    return {
        "bus_id": np.repeat(bus, n_months),
        "group": np.full(n_months * n_buses, spec.group, dtype=np.int64),
        "month": flat(start[None, :] + rows),
        "mileage": flat(mileage),
        "replace": flat(replace),
        "increment": flat(np.vstack([increment, np.zeros((1, n_buses), dtype=np.int64)])),
        "last": flat(np.broadcast_to(rows == n_months - 1, odo.shape)),
        "odometer": flat(odo),
    }


def load_rust_bus(groups=(1, 2, 3, 4), n_states: int = 90, path=None,
                  max_mileage: int = 450_000) -> pd.DataFrame:
    """Load Rust's (1987) bus engine replacement data as a long bus-month panel.

    Reads the NFXP ``.asc`` files of the requested bus groups, verifies them against
    ``SHA256SUMS``, and returns one row per bus and month with the discretized mileage since
    the last engine replacement, Harold Zurcher's decision and the mileage increment, built
    with the conventions that reproduce Rust's (1987) published counts and likelihoods.

    Parameters
    ----------
    groups : int or iterable of int, default (1, 2, 3, 4)
        Bus groups of Rust (1987): 1 Grumman 870 (``g870.asc``), 2 Chance RT-50
        (``rt50.asc``), 3 GMC T8H203 (``t8h203.asc``), 4 GMC A5308 1975 (``a530875.asc``),
        5 GMC A5308 1974 (``a530874.asc``), 6 GMC A4523 1974 (``a452374.asc``), 7 GMC A5308 1972
        (``a530872.asc``), 8 GMC A4523 1972 (``a452372.asc``); and 0 for ``d309.asc`` (Davidson
        309), which comes with the data but is in none of the paper's groups or tables. The
        paper's main sample is groups 1-4 (104 buses).
    n_states : int, default 90
        Number of mileage bins, each ``max_mileage / n_states`` miles wide (90: 5,000 miles,
        Table IX; 175: 2,571.43 miles, Table X).
    path : str or os.PathLike, optional
        Folder holding the ``.asc`` files. Without it the folder named by the environment
        variable ``DDC_RUST_DATA`` is used, and without that the copy shipped with the package
        (``ddc/datasets/rust1987``, see its ``PROVENANCE.md``). A folder given by ``path`` or
        ``DDC_RUST_DATA`` is used alone, without falling back, and is checked against its
        ``SHA256SUMS`` when it has one.
    max_mileage : int, default 450_000
        Upper end of the last bin, in miles.

    Returns
    -------
    pandas.DataFrame
        One row per bus-month, sorted by ``bus_id`` and ``month``, with the columns

        ``bus_id`` (int64)
            Rust's bus number (header row 1).
        ``group`` (int64)
            The bus group.
        ``month`` (int64)
            Calendar-month counter ``year * 12 + month - 1`` (4-digit year): consecutive rows
            of a bus differ by 1. ``divmod(month, 12)`` gives the year and the month - 1.
        ``mileage`` (int64)
            Bin ``0..n_states - 1`` of the miles driven since the last engine replacement at
            the end of the month.
        ``action`` (categorical: ``"keep"``, ``"replace"``)
            ``"replace"`` in the month after whose reading the engine is replaced.
        ``increment`` (Int64)
            Bins the state moves from this month to the next (Rust's convention, see Notes);
            ``<NA>`` in a bus's last month.
        ``odometer`` (int64)
            The raw end-of-month odometer reading, in miles.

    Raises
    ------
    FileNotFoundError
        When the folder given by ``path`` or ``DDC_RUST_DATA`` lacks a file of ``groups``; the
        message names the folder, the missing file and the other ways of giving the data.
    ValueError
        On a bad group, a non-positive or non-integer ``n_states`` or ``max_mileage``, a file
        that does not match the folder's ``SHA256SUMS`` (the message names it), a malformed file,
        or a mileage beyond the last bin (the message names the bus and the month; the loader
        never clips).

    See Also
    --------
    rust_bus_files : Where the files are found, and their checksums.
    ddc.models.rust_bus : The model these data are estimated with.

    Notes
    -----
    Conventions, those of Rust (1987), section 4, as his NFXP data encode them. With them the
    loader reproduces the paper's published numbers exactly (list below).

    * Rows 12 on of each bus's column are end-of-month odometer readings from the month and year
      of header rows 10-11. The mileage is the reading minus the odometer reading of the last
      engine replacement before it (header rows 6 and 9).
    * The replacement month is the last month whose reading is not above the replacement
      odometer reading: reading(t) <= replacement reading < reading(t + 1). The decision is
      taken at that month's state, and the following month's mileage counts from the
      replacement reading, so it is positive. The replacement month/year of the header is the
      same month or 1-2 months later for 45 of the 60 replacements in groups 1-4, up to 6
      months later or 1-2 months earlier for the others (in group 8, bus 4251's header says
      1/79 while its odometer passes the replacement reading only in 6/80). Putting the
      replacement in the header's month instead gives negative mileages and does not
      reproduce the paper: group 4 then has the increment counts 1674 / 2549 / 69 (1691 /
      2545 / 55 and one -1 when the move out of a replacement month is the next month's bin),
      and the choice log-likelihood at Rust's estimates is -163.793, not the published
      -163.584.
    * Bins are right-closed: bin ``k`` holds ``k w < m <= (k + 1) w`` miles, ``w = max_mileage /
      n_states``; the mileage bin is ``ceil(m / w) - 1`` (0 at exactly 0 miles). This differs
      from ``floor(m / w)`` only at exact multiples of ``w`` (one reading in groups 1-4 at 90
      states), but it is what reproduces the groups 1-4 log-likelihood (-6055.25; -6050.65
      with ``floor``).
    * ``increment`` in a month without replacement is ``mileage[t + 1] - mileage[t]``. In a
      replacement month it is ``ceil(m[t + 1] / w)``: the bins the new engine has moved from
      0 miles, which is ``mileage[t + 1] + 1``. It is one more than the bin of the next month;
      that is how Rust's data count the move out of a replacement month, and what reproduces
      the published counts (group 4: 1682 / 2555 / 55, while ``mileage[t + 1] - 0`` would give
      1715 / 2522 / 55). An estimator of the transition probabilities should therefore count
      ``increment``, not rebuild it from pairs of ``mileage``.
    * The published log-likelihoods condition on each bus's first month: the choice part sums
      over the months from the second on, the transition part over the increments (all but
      the last month).

    Checked against the paper (90 states unless stated): group 4 has 37 buses, 4,329 rows, 33
    replacements and the increment counts 1682 / 2555 / 55, whose frequencies are Table IX's
    theta_30 = .3919, theta_31 = .5953 and give the transition log-likelihood -3140.571; groups
    1-4 have 104 buses, 8,260 rows, 60 replacements and the counts 2845 / 5215 / 96
    (frequencies .3488, .6394; Table IX prints .3489, .6394); at 175
    states the counts are 873 / 4202 / 2954 / 117 / 7 / 3 (frequencies .1070, .5152, .3622,
    .0143, .0009, .0004; Table X prints .1071, .5152, .3621, .0143), and with all six the
    Table X log-likelihood -8607.889 is reproduced.

    References
    ----------
    Rust, J. (1987), "Optimal Replacement of GMC Bus Engines: An Empirical Model of Harold
    Zurcher", *Econometrica* 55(5), 999-1033.

    Examples
    --------
    >>> from ddc.datasets import load_rust_bus
    >>> df = load_rust_bus(groups=(1, 2, 3, 4), n_states=90)
    >>> df["bus_id"].nunique()
    104
    >>> df.attrs["ddc_state_sizes"]
    {'mileage': 90}
    >>> load_rust_bus(groups=4)["increment"].value_counts().sort_index()
    increment
    0    1682
    1    2555
    2      55
    Name: count, dtype: Int64
    """
    groups = _check_groups(groups)
    n_states = _check_positive_int("n_states", n_states)
    max_mileage = _check_positive_int("max_mileage", max_mileage, allow_float=True)
    files = rust_bus_files(groups, path=path)
    parts = [
        _group_panel(_read_matrix(files[g], RUST_BUS_GROUPS[g]), RUST_BUS_GROUPS[g], files[g],
                     n_states, max_mileage)
        for g in groups
    ]
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cols["month"], cols["bus_id"]))
    cols = {k: v[order] for k, v in cols.items()}
    same_bus = np.diff(cols["bus_id"]) == 0
    if np.any(np.diff(cols["month"])[same_bus] != 1):  # pragma: no cover - not in Rust's files
        raise ValueError("a bus number appears in more than one of the selected files")
    action = pd.Categorical.from_codes(cols["replace"].astype(np.int8), categories=_ACTIONS)
    increment = pd.arrays.IntegerArray(cols["increment"].astype(np.int64), cols["last"].copy())
    frame = pd.DataFrame(
        {
            "bus_id": cols["bus_id"].astype(np.int64),
            "group": cols["group"].astype(np.int64),
            "month": cols["month"].astype(np.int64),
            "mileage": cols["mileage"].astype(np.int64),
            "action": action,
            "increment": increment,
            "odometer": cols["odometer"].astype(np.int64),
        },
        columns=_COLUMNS,
    )
    # the bin count, so that a model of another state space refuses these codes (ddc.panel)
    frame.attrs[STATE_SIZES_ATTR] = {"mileage": n_states}
    return frame
