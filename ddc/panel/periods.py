"""Reading a time column into integer periods: integers as they are; dates, pandas periods and
strings (ISO dates or ``time_format``) as ordinals of the model's period."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.panel.coding import _column_kind
from ddc.panel.errors import _fmt, _n_rows, _RowDescriber, _rows_message

#: The model's period when neither the call nor the model's data layout declares one (pandas
#: frequency: calendar months).
DEFAULT_PERIOD = "M"


def _code_time(col: pd.Series, na: np.ndarray, name: str, where: _RowDescriber,
               period: str = DEFAULT_PERIOD, time_format: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Integer periods; returns the periods (0 where unusable), the mask of unreadable values
    and a message (or None).

    Integers are periods as they are; dates (datetime64, ``datetime.date``), pandas periods and
    strings (ISO dates such as ``"2022-01"``, or ``time_format``) become the ordinal of their
    period of frequency ``period`` (months since 1970-01 for ``"M"``), so that consecutive
    periods are consecutive integers."""
    n = len(col)
    ok = ~na
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    kind = _column_kind(col)
    accepted = ("give whole numbers, consecutive within each unit, or dates, pandas periods or "
                "ISO strings such as '2022-01' (other formats: time_format=..., e.g. '%Y%m')")
    if time_format is not None:
        text = col.astype(object).where(ok, None).map(
            lambda v: None if v is None else (str(int(v)) if isinstance(v, (int, np.integer))
                                              or (isinstance(v, float) and v.is_integer())
                                              else str(v)))
        stamps = pd.to_datetime(text, format=time_format, errors="coerce")
        return _period_ordinals(stamps, ok, period, col, name, where,
                                f"that does not match time_format {time_format!r}", accepted)
    if kind == "integer":
        return col.to_numpy(dtype=np.int64, na_value=0), np.zeros(n, dtype=bool), None
    if isinstance(col.dtype, pd.PeriodDtype):
        return _period_ordinals(col, ok, period, col, name, where, "", accepted)
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        stamps = col.dt.tz_localize(None) if getattr(col.dt, "tz", None) is not None else col
        return _period_ordinals(stamps, ok, period, col, name, where, "", accepted)
    if kind == "floating":
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(np.where(ok, vals, 0.0))
        whole = finite & (np.floor(np.where(finite, vals, 0.0)) == np.where(finite, vals, 0.0))
        bad = ok & ~whole
        t = np.where(ok & whole, vals, 0.0).astype(np.int64)
        hint = ""
    else:
        inferred = pd.api.types.infer_dtype(col, skipna=True)
        if inferred == "period":
            try:
                return _period_ordinals(pd.Series(pd.PeriodIndex(col.where(ok, None)),
                                                  index=col.index), ok, period, col, name,
                                        where, "", accepted)
            except (ValueError, TypeError):
                pass
        if inferred in ("datetime", "datetime64", "date"):
            stamps = pd.to_datetime(col.where(ok, None), errors="coerce")
            return _period_ordinals(stamps, ok, period, col, name, where, "", accepted)
        if inferred == "string":
            values = col.where(ok, "").astype(str)
            numeric = values.str.fullmatch(r"\s*[-+]?\d+\s*") & ok
            if numeric[ok].all() and ok.any():
                bad = ok.copy()
                t = np.zeros(n, dtype=np.int64)
                hint = (" (numbers stored as text: convert them with pandas.to_numeric, or "
                        "give time_format=..., e.g. '%Y%m' for YYYYMM)")
            else:
                return _period_ordinals(_parse_period_strings(col, ok, period), ok, period,
                                        col, name, where, "that is not an ISO date or a "
                                        "period such as '2022Q1'", accepted)
        else:
            bad = ok.copy()
            t = np.zeros(n, dtype=np.int64)
            hint = ""
    if not bad.any():
        return t, bad, None
    pos = np.flatnonzero(bad)
    return t, bad, _rows_message(
        f"column {name!r} must hold integer periods; {_n_rows(pos.size, 'holds', 'hold')} a "
        f"value that is not a whole number (dtype {col.dtype}){hint}", pos,
        lambda p: f"{where(p)}: {_fmt(col.iloc[p])}", accepted)


def _parse_period_strings(col: pd.Series, ok: np.ndarray, period: str) -> pd.Series:
    """Periods of frequency ``period`` from strings: ISO dates (``"2022-01"``,
    ``"2022-01-31"``) or pandas period strings (``"2022Q1"``); NaT where unreadable. Each
    distinct string is parsed once."""
    codes, uniques = pd.factorize(col.where(ok, None))
    parsed = []
    for text in uniques:
        value = pd.NaT
        try:
            value = pd.Timestamp(pd.to_datetime(str(text), format="ISO8601")).to_period(period)
        except (ValueError, TypeError, OverflowError):
            try:
                value = pd.Period(str(text), freq=period)
            except (ValueError, TypeError, OverflowError):
                value = pd.NaT
        parsed.append(value)
    lookup = pd.array(parsed + [pd.NaT], dtype=pd.PeriodDtype(period))
    return pd.Series(lookup[codes], index=col.index)


def _period_ordinals(values: pd.Series, ok: np.ndarray, period: str, original: pd.Series,
                     name: str, where: _RowDescriber, what: str, accepted: str
                     ) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Ordinals of ``values`` (datetimes or periods) in the frequency ``period``; rows that are
    given (``ok``) but unreadable (NaT) are reported."""
    n = len(values)
    values = pd.Series(values, index=original.index)
    if isinstance(values.dtype, pd.PeriodDtype):
        periods = values.dt.asfreq(period, how="start")
        readable = periods.notna().to_numpy()
        ords = np.zeros(n, dtype=np.int64)
        ords[readable] = periods[readable].map(lambda p: p.ordinal).to_numpy(dtype=np.int64)
    else:
        stamps = pd.to_datetime(values, errors="coerce")
        readable = stamps.notna().to_numpy()
        ords = np.zeros(n, dtype=np.int64)
        if readable.any():
            ords[readable] = stamps[readable].dt.to_period(period).array.asi8
    bad = ok & ~readable
    if not bad.any():
        return ords, bad, None
    pos = np.flatnonzero(bad)
    return ords, bad, _rows_message(
        f"column {name!r} must hold periods; {_n_rows(pos.size, 'holds', 'hold')} a value "
        f"{what or 'that is not a date or period'} (dtype {original.dtype})", pos,
        lambda p: f"{where(p)}: {_fmt(original.iloc[p])}", accepted)
