"""Simulating a long panel of customers from a solved model.

Each customer starts in a state :math:`s_0` and, every month :math:`t = 0, \\dots, T-1`, chooses
:math:`a_t \\sim \\pi(\\cdot \\mid s_t)` (the logit choice probabilities of the solved model) and
moves to :math:`s_{t+1} \\sim P(\\cdot \\mid s_t, a_t)`, each factored state variable drawn from its
own factor. The draws are by the inverse CDF of pre-drawn uniforms in a numba kernel
(:func:`simulations._kernels.simulate_codes`), so a seed fixes the panel.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ddc.mixture import Mixture
from ddc.model import Model
from ddc.panel import Columns
from ddc.solver import Solution
from simulations._kernels import simulate_codes
from simulations.stationary import block_structure, block_weights, stationary_from_policy

__all__ = ["simulate", "allocate", "id_column", "output_columns"]

CHUNK_CUSTOMERS = 65_536
"""Customers simulated per batch of uniforms (bounds memory; part of the seed's meaning)."""

PROB_SUM_TOL = 1e-8


def id_column(model: Model) -> str:
    """Name of the panel's id column: the model's data layout's (``model.hooks.layout.id_col``,
    ``"customer_id"`` by default)."""
    return output_columns(model).id_col


def output_columns(model: Model, columns: Columns | Mapping[str, str] | None = None
                   ) -> Columns:
    """The column names :func:`simulate` writes: those of ``columns``
    (:class:`ddc.panel.Columns`, or ``{state variable: column}``) where given, else the model's
    data layout (``model.hooks.layout``: id, period and action columns, state columns).

    Returns
    -------
    ddc.panel.Columns
        With every name set.
    """
    cols = Columns.of(columns)
    layout = model.hooks.layout
    unknown = sorted(set(cols.states) - set(model.space.names))
    if unknown:
        raise KeyError(f"columns: {unknown} are not state variables of model {model.name!r}; "
                       f"its state variables are {list(model.space.names)}")
    states = {v: cols.states.get(v, layout.column(v)) for v in model.space.names}
    out = Columns(id_col=cols.id_col or layout.id_col, time_col=cols.time_col or layout.time_col,
                  action_col=cols.action_col or layout.action_col, states=states)
    names = [out.id_col, out.time_col, *states.values(), out.action_col]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"columns: the names {dup} are given to more than one column "
                         f"({names}); every column needs its own name")
    return out


def allocate(n: int, weights: np.ndarray) -> np.ndarray:
    """Split ``n`` units over groups in proportion to ``weights`` (largest remainder).

    With equal weights the split is as equal as possible, the first groups taking one more.

    Parameters
    ----------
    n : int
        Number of units.
    weights : numpy.ndarray
        Non-negative weights summing to one.

    Returns
    -------
    numpy.ndarray of int
        Counts summing to ``n``.
    """
    exact = n * np.asarray(weights, dtype=float)
    counts = np.floor(exact + 1e-9).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:rest]] += 1
    elif rest < 0:  # floor(exact + 1e-9) overshot by round-off
        order = np.argsort(exact - counts, kind="stable")
        counts[order[:-rest]] -= 1
    return counts


def _inverse_cdf(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw indices from the probabilities ``p`` with uniforms ``u`` (first k with
    ``u * total < cumsum(p)[k]``); never an index of zero probability."""
    pos = p > 0
    cdf = np.cumsum(np.where(pos, p, 0.0))
    k = np.searchsorted(cdf, u * cdf[-1], side="right")
    return np.minimum(k, np.flatnonzero(pos)[-1])


def _resolve_solution(model: Model, params_or_solution) -> Solution:
    if isinstance(params_or_solution, Solution):
        sol = params_or_solution
        other = sol.model
        if other is not model and (other.space.names != model.space.names
                                   or other.space.shape != model.space.shape
                                   or other.actions != model.actions):
            raise ValueError(
                f"the solution is of a different model ({other!r}) than the one to simulate "
                f"({model!r}); solve this model, or pass its parameters"
            )
        return sol
    return model.solve(params_or_solution)


def _state_codes_from_frame(model: Model, frame: pd.DataFrame) -> np.ndarray:
    """Flat state index of each row of ``frame`` (a column per state variable, labels or codes
    of string-valued variables)."""
    space = model.space
    missing = [n for n in space.names if n not in frame.columns]
    if missing:
        raise KeyError(f"initial states: the DataFrame lacks the state variable column(s) "
                       f"{missing}; it needs one column per state variable {space.names}")
    flat = np.zeros(len(frame), dtype=np.int64)
    for j, var in enumerate(space.variables):
        col = frame[var.name]
        values = list(var.values)
        lookup = {v: k for k, v in enumerate(values)}
        labelled_by_strings = any(isinstance(v, str) for v in values)
        if labelled_by_strings and pd.api.types.is_integer_dtype(col.dtype):
            lookup = {k: k for k in range(len(values))}  # integer codes of string labels
        codes = col.astype(object).map(lookup)
        bad = codes.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"initial states: column {var.name!r}, row {frame.index[i]!r} has the value "
                f"{col.iloc[i]!r}, which is not a value of {var.name!r}; accepted: {values}"
                + (f" or codes 0..{len(values) - 1}" if labelled_by_strings else "")
            )
        flat += codes.to_numpy(dtype=np.int64) * space.strides[j]
    return flat


def _distribution_from(model: Model, initial) -> np.ndarray:
    """A probability vector over states from an array or a Series indexed by states."""
    S = model.n_states
    if isinstance(initial, pd.Series):
        target = model.space.index
        if not isinstance(initial.index, pd.MultiIndex) and target.nlevels == 1:
            target = target.get_level_values(0)
        if initial.index.nlevels != target.nlevels:
            raise ValueError("an initial distribution Series must be indexed by the states "
                             f"(levels {model.space.names}); its index has "
                             f"{initial.index.nlevels} level(s)")
        unknown = initial.index.difference(target)
        if len(unknown):
            raise KeyError(f"initial distribution: index entries {list(unknown[:5])} are "
                           f"not states of the model (levels {model.space.names})")
        if initial.index.has_duplicates:
            raise ValueError("initial distribution: the Series index has duplicate states")
        p = initial.reindex(target, fill_value=0.0).to_numpy(dtype=float)
    else:
        p = np.asarray(initial, dtype=float).ravel()
        if p.shape != (S,):
            raise ValueError(f"an initial distribution array needs one probability per state "
                             f"({S}); got {p.size}")
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        s = int(np.flatnonzero(bad)[0])
        raise ValueError(f"initial distribution: probability {p[s]!r} of state "
                         f"{model.space.index[s]} is not a finite non-negative number")
    if abs(p.sum() - 1.0) > PROB_SUM_TOL:
        raise ValueError(f"initial distribution sums to {p.sum():.12g}, not 1")
    return p


def _names(cols: Columns) -> list[str]:
    return [cols.id_col, cols.time_col, *cols.states.values(), cols.action_col]


def _panel(model: Model, ids: np.ndarray, states: np.ndarray, actions: np.ndarray,
           names: Columns | None = None) -> pd.DataFrame:
    names = output_columns(model) if names is None else names
    n, T = states.shape
    space = model.space
    flat = states.ravel()
    codes_table = space.codes
    cols: dict[str, object] = {
        names.id_col: np.repeat(ids, T),
        names.time_col: np.tile(np.arange(T, dtype=np.int64), n),
    }
    for j, var in enumerate(space.variables):
        codes = codes_table[flat, j]
        values = var.values
        col = names.states[var.name]
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            cols[col] = np.asarray(values, dtype=np.int64)[codes]
        elif all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
            cols[col] = np.asarray(values, dtype=float)[codes]
        else:
            cols[col] = pd.Categorical.from_codes(codes, categories=list(values))
    cols[names.action_col] = pd.Categorical.from_codes(actions.ravel(),
                                                       categories=list(model.actions))
    return pd.DataFrame(cols)


def simulate(
    model: Model,
    params_or_solution: pd.Series | Mapping | np.ndarray | Solution,
    n_customers: int | None = None,
    n_periods: int = 36,
    seed: int | np.random.Generator | np.random.SeedSequence | None = 0,
    initial: pd.Series | np.ndarray | pd.DataFrame | None = None,
    weights: Mapping | pd.Series | None = None,
    columns: Columns | Mapping[str, str] | None = None,
    type_col: str | None = None,
) -> pd.DataFrame:
    """Simulate a long panel of customers from the solved model.

    Month by month, :math:`a_t \\sim \\pi(\\cdot \\mid s_t)` and
    :math:`s_{t+1} \\sim P(\\cdot \\mid s_t, a_t)`, starting from :math:`s_0`:

    - by default from the stationary distribution :math:`\\mu` of the controlled chain
      (:func:`simulations.stationary_distribution`) within each combination of the permanent
      state variables, with the customers split over those combinations in proportion to
      ``weights`` (equal numbers by default: for the membership model, equal numbers per
      market, as docs/membership.rst specifies);
    - or i.i.d. from a given probability vector over states;
    - or from given initial states, one per customer.

    Parameters
    ----------
    model : ddc.Model
        The model.
    params_or_solution : pandas.Series, mapping, array or ddc.Solution
        Parameters (the model is solved at them) or a solution of ``model``.
    n_customers : int, optional
        Number of customers; 1,000 by default, or the number of rows of an ``initial``
        DataFrame.
    n_periods : int
        Months per customer (the panel's ``month`` runs ``0..n_periods-1``).
    seed : int, numpy.random.Generator or numpy.random.SeedSequence, optional
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same panel.
    initial : pandas.Series, array or pandas.DataFrame, optional
        A probability vector over states (an array of length S in state order, or a Series
        indexed by the state MultiIndex; states missing from the Series have probability 0),
        summing to one; or a DataFrame with one row per customer and a column per state variable
        (labels, or integer codes for string-valued variables), and optionally the id column
        (then its values are the ids); other columns are not read.
    weights : mapping or pandas.Series, optional
        With the default initial distribution: the share of customers per combination of the
        permanent variables (keyed by their labels, see :func:`simulations.block_weights`).
    columns : ddc.panel.Columns or mapping, optional
        Names of the columns written (id, period, action, ``{state variable: column}``), where
        they should differ from the model's data layout (``model.hooks.layout``); the same
        mapping reads the panel back (``ddc.panel.prepare(model, panel, columns=...)``).
    type_col : str, optional
        Only for a :class:`ddc.Mixture` (which :func:`simulations.mixture.simulate_mixture`
        simulates, drawing each customer's type): the name of a column recording the type.

    Returns
    -------
    pandas.DataFrame
        The long panel, one row per customer-month, sorted by customer then month: the id column
        (the layout's ``id_col``, e.g. ``customer_id``; ids ``0..n-1`` unless given), the period
        (the layout's ``time_col``, e.g. ``month``, ``0..n_periods-1``), one column per state
        variable (integers for integer-valued variables, a Categorical with the model's value
        order otherwise) and the action (a Categorical of the action names in model order).

    Examples
    --------
    >>> import ddc
    >>> model = ddc.models.membership()
    >>> panel = simulate(model, model.true_params, n_customers=30, n_periods=12, seed=0)
    >>> panel.shape, list(panel.columns)
    ((360, 7), ['customer_id', 'month', 'market', 'plan', 'ship', 'video', 'action'])
    >>> panel.groupby("market").customer_id.nunique().tolist()
    [10, 10, 10]
    """
    if isinstance(model, Mixture):
        from simulations.mixture import simulate_mixture

        panel = simulate_mixture(model, params_or_solution, n_customers, n_periods, seed,
                                 initial, weights, type_col)
        if columns is None:
            return panel
        default, given = output_columns(model.model), output_columns(model.model, columns)
        rename = dict(zip(_names(default), _names(given), strict=True))
        return panel.rename(columns={k: v for k, v in rename.items() if k != v})
    if not isinstance(model, Model):
        raise TypeError(f"model must be a ddc.Model or ddc.Mixture, got {type(model).__name__}")
    if type_col is not None:
        raise ValueError("type_col records each customer's type in a ddc.Mixture; a one-type "
                         "model has no types")
    if not isinstance(n_periods, (int, np.integer)) or n_periods < 1:
        raise ValueError(f"n_periods must be a positive integer, got {n_periods!r}")
    names = output_columns(model, columns)
    id_name = names.id_col
    frame = initial if isinstance(initial, pd.DataFrame) else None
    if frame is not None:
        if n_customers is not None and n_customers != len(frame):
            raise ValueError(f"n_customers={n_customers} but the initial DataFrame has "
                             f"{len(frame)} rows (one per customer)")
        n_customers = len(frame)
    elif n_customers is None:
        n_customers = 1_000
    if not isinstance(n_customers, (int, np.integer)) or n_customers < 1:
        raise ValueError(f"n_customers must be a positive integer, got {n_customers!r}")
    n = int(n_customers)
    T = int(n_periods)
    if weights is not None and initial is not None:
        raise ValueError("weights apply to the default (stationary) initial distribution; "
                         "with initial=... leave weights out")

    sol = _resolve_solution(model, params_or_solution)
    pi = np.ascontiguousarray(sol.pi, dtype=np.float64)
    ct = model.compiled_transitions(sol.params)
    rng = np.random.default_rng(seed)

    ids = np.arange(n, dtype=np.int64)
    if frame is not None:
        s0 = _state_codes_from_frame(model, frame)
        if id_name in frame.columns:
            ids = frame[id_name].to_numpy()
            dup = pd.Series(ids).duplicated().to_numpy()
            if dup.any():
                raise ValueError(f"initial states: {id_name!r} has the duplicate id "
                                 f"{ids[np.flatnonzero(dup)[0]]!r}; one row per customer")
    elif initial is not None:
        p = _distribution_from(model, initial)
        s0 = _inverse_cdf(p, rng.random(n))
    else:
        structure = block_structure(model, sol.params)
        w = block_weights(structure, weights)
        mu = stationary_from_policy(model, pi, weights=w, params=sol.params)
        counts = allocate(n, w)
        u0 = rng.random(n)
        s0 = np.empty(n, dtype=np.int64)
        start = 0
        for c in np.flatnonzero(counts):  # a loop over blocks (markets), not customers
            states_c = np.flatnonzero(structure.block == c)
            stop = start + int(counts[c])
            s0[start:stop] = states_c[_inverse_cdf(mu[states_c], u0[start:stop])]
            start = stop

    trans = tuple(ct)[2:]
    n_f = len(ct.f_stride)
    states = np.empty((n, T), dtype=np.int64)
    actions = np.empty((n, T), dtype=np.int64)
    for lo in range(0, n, CHUNK_CUSTOMERS):  # batches of customers bound the memory
        hi = min(n, lo + CHUNK_CUSTOMERS)
        U = rng.random((hi - lo, T, 1 + n_f))
        states[lo:hi], actions[lo:hi] = simulate_codes(np.ascontiguousarray(s0[lo:hi]), U, pi,
                                                       *trans)
    return _panel(model, ids, states, actions, names)
