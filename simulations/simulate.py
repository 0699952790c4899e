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
from simulations.sampling import (
    CHUNK_CUSTOMERS,
    _distribution_from,
    _inverse_cdf,
    _names,
    _panel,
    _resolve_solution,
    _state_codes_from_frame,
    allocate,
    id_column,
    n_units,
    output_columns,
)
from simulations.stationary import block_structure, block_weights, stationary_from_policy

__all__ = ["simulate", "allocate", "id_column", "output_columns"]

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
    covariates: pd.DataFrame | None = None,
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
    covariates : pandas.DataFrame, optional
        Only for a :class:`ddc.Mixture` with share covariates (``share_covariates``): one row
        per customer with a column per covariate; they shift the customer's type shares and are
        written to the panel as columns (see :func:`simulations.mixture.simulate_mixture`).

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
                                 initial, weights, type_col, covariates)
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
    if covariates is not None:
        raise ValueError("covariates shift the type shares of a ddc.Mixture with "
                         "share_covariates; a one-type model has no types")
    if not isinstance(n_periods, (int, np.integer)) or n_periods < 1:
        raise ValueError(f"n_periods must be a positive integer, got {n_periods!r}")
    names = output_columns(model, columns)
    id_name = names.id_col
    frame = initial if isinstance(initial, pd.DataFrame) else None
    n = n_units(n_customers, frame)
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
