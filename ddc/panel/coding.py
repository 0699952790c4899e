"""Coding columns of labels into integer codes, ids into unit codes, and the rows' sort order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.panel.errors import MAX_SHOWN, _fmt, _n_rows, _RowDescriber, _rows_message


def _column_kind(col: pd.Series) -> str:
    """``integer``, ``floating``, ``string``, ``boolean``, ``mixed`` or ``other``; for a
    categorical column, the kind of its categories."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return _index_kind(col.dtype.categories)
    return _index_kind(col)


def _index_kind(x: pd.Series | pd.Index) -> str:
    dtype = x.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "floating"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        kind = pd.api.types.infer_dtype(x, skipna=True)
        if kind in ("integer", "floating", "string", "boolean", "empty"):
            return kind
        if kind == "mixed-integer-float":
            return "floating"
        if kind in ("mixed", "mixed-integer"):
            return "mixed"
        return "other"
    return "other"


def _code_labels(col: pd.Series, na: np.ndarray, values: tuple, name: str, what: str,
                 where: _RowDescriber) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Codes of a column of labels (or integer codes for string-valued variables).

    Returns the codes (0 where unknown or missing), the mask of rows with an unknown value, and
    a message (or None)."""
    n = len(col)
    kind = _column_kind(col)
    string_values = all(isinstance(v, str) for v in values)
    code_text = f"integer codes 0..{len(values) - 1}"
    accepted = f"accepted: {list(values)}" + (f" or {code_text}" if string_values else "")
    if kind == "mixed":
        sample = np.flatnonzero(~na)[:10_000]
        first: dict[str, int] = {}
        for pos, value in zip(sample.tolist(), col.iloc[sample].tolist(), strict=True):
            first.setdefault(type(value).__name__, pos)
        examples = "; ".join(f"{where(p)}: {_fmt(col.iloc[p])} ({tp})"
                             for tp, p in list(first.items())[:MAX_SHOWN])
        return (np.zeros(n, dtype=np.int64), ~na,
                f"column {name!r} mixes values of different types ({examples}); give values "
                f"of one type ({accepted})")
    as_codes = string_values and kind in ("integer", "floating")
    lookup = pd.RangeIndex(len(values)) if as_codes else pd.Index(list(values), dtype=object)
    codes = _integer_codes(col, lookup)
    if codes is None:
        # code the distinct values only: categories, or pandas' factorization of the column
        if isinstance(col.dtype, pd.CategoricalDtype):
            value_codes, distinct = col.array.codes, col.dtype.categories
        else:
            value_codes, distinct = pd.factorize(col)
        if kind == "string" and string_values and len(distinct) <= 64:
            # a few labels: looked up in a dict (as the object index would hash them)
            first: dict = {}
            for i, v in enumerate(values):
                first.setdefault(v, i)
            mapping = np.array([first.get(c, -1) for c in distinct] + [-1], dtype=np.int64)
        else:
            mapping = np.append(lookup.get_indexer(distinct), -1).astype(np.int64)
        codes = mapping[value_codes]  # value code -1 (missing) -> mapping[-1] = -1
    unknown = codes < 0
    if not unknown.any():
        return codes, unknown, None
    bad = unknown & ~na
    codes = np.where(unknown, 0, codes)
    if not bad.any():
        return codes, bad, None
    pos = np.flatnonzero(bad)
    unknown = pd.unique(col.iloc[pos[:10_000]].astype(object))
    shown = ", ".join(_fmt(v) for v in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
    if as_codes:
        head = (f"column {name!r} holds integer codes; {_n_rows(pos.size, 'holds', 'hold')} "
                f"a code outside 0..{len(values) - 1}"
                f"{' or not a whole number' if kind == 'floating' else ''} ({shown})")
    else:
        hint = ""
        if kind == "string" and not string_values:
            hint = " (the column holds strings; the model's values are numbers)"
        head = f"column {name!r}: {_n_rows(pos.size, 'holds', 'hold')} {what} ({shown}){hint}"
    return codes, bad, _rows_message(head, pos, lambda p: f"{where(p)}: {_fmt(col.iloc[p])}",
                                     accepted)


#: Widest range of an integer column coded through a lookup table (wider: hashing).
_TABLE_SPAN = 1 << 16


def _integer_codes(col: pd.Series, lookup: pd.Index) -> np.ndarray | None:
    """The codes (position in ``lookup``, -1 where absent) of a column of NumPy integers,
    through a table over the column's range: the same codes as hashing the column
    (``pd.factorize``) and looking its distinct values up, at a fraction of the cost. ``None``
    when it does not apply (another dtype, values that are not integers, a wide range)."""
    if not (isinstance(col.dtype, np.dtype) and np.issubdtype(col.dtype, np.integer)) \
            or len(col) == 0:
        return None
    values = list(lookup)
    if not all(isinstance(v, (int, np.integer)) for v in values):
        return None
    arr = col.to_numpy()
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo >= _TABLE_SPAN:
        return None
    arr = arr.astype(np.int64, copy=False)  # narrow integers: arr - lo must not wrap
    table = np.full(hi - lo + 1, -1, dtype=np.int64)
    for i, v in reversed(list(enumerate(values))):  # the first position of a repeated value
        if lo <= int(v) <= hi:
            table[int(v) - lo] = i
    return table[arr - lo]


def _sort_order(unit: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stable order by unit, then period, and whether it is the identity (rows already sorted,
    as usual)."""
    if unit.size == 0:
        return np.zeros(0, dtype=np.int64), True
    du = np.diff(unit)
    if bool(np.all(du >= 0)) and bool(np.all((np.diff(t) >= 0) | (du != 0))):
        return np.arange(unit.size), True
    t_min, t_span = int(t.min()), int(t.max()) - int(t.min()) + 1
    if (int(unit.max()) + 1) * t_span < 2**62:
        key = unit * t_span + (t - t_min)
        return np.argsort(key, kind="stable"), False
    return np.lexsort((t, unit)), False


def _factorize(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes of the ids in sorted order of the distinct ids, and those ids."""
    if isinstance(ids.dtype, np.dtype) and np.issubdtype(ids.dtype, np.integer) and len(ids):
        arr = ids.to_numpy()
        change = arr[1:] != arr[:-1]
        if bool(np.all(arr[1:] >= arr[:-1])):  # ids in order (a sorted panel): no hashing
            starts = np.r_[0, np.flatnonzero(change) + 1]
            codes = np.repeat(np.arange(starts.size, dtype=np.int64),
                              np.diff(np.r_[starts, arr.size]))
            return codes, pd.Index(arr[starts])
    try:
        codes, uniques = pd.factorize(ids, sort=True)
    except TypeError:  # ids of types that do not sort together
        codes, uniques = pd.factorize(ids, sort=False)
    return codes.astype(np.int64), pd.Index(uniques)
