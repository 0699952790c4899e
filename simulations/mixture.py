"""Simulating a panel from a finite mixture of types (:class:`ddc.Mixture`).

Each customer's type :math:`k` is drawn once, with probabilities the type shares
:math:`w_k`, and kept for life; the customer then chooses and moves as
:func:`simulations.simulate` does, with type :math:`k`'s choice probabilities and type
:math:`k`'s transitions (its own tables of the ``transitions_by_type`` variables, if any;
:attr:`ddc.Mixture.type_models`).

Initial states: by default drawn **independently of the type**, from the share-weighted average
:math:`\\sum_k w_k \\mu_k` of the types' stationary distributions (equal numbers per block of
permanent variables, as in :func:`simulations.simulate`). Then the type is independent of the
first state, and a likelihood that conditions on the first state with constant shares is
correctly specified. With ``initial="by_type"`` each customer starts from its own type's
stationary distribution :math:`\\mu_k`: the first state then carries information on the type
(the initial conditions problem, Heckman 1981), which constant shares ignore. A mixture whose
shares vary (``shares_by``, ``share_covariates``) draws the first state first (from the types'
stationary distributions averaged with equal weights) and then the type from its shares given
that state and the customer's covariates. The covariates are given per customer
(``covariates=``, a DataFrame) and written to the panel as columns, constant within a customer,
so that the panel can be estimated again.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ddc.mixture import Mixture
from simulations._kernels import simulate_codes
from simulations.sampling import (
    CHUNK_CUSTOMERS,
    _distribution_from,
    _inverse_cdf,
    _panel,
    _state_codes_from_frame,
    allocate,
    id_column,
    n_units,
)
from simulations.stationary import block_structure, block_weights, stationary_from_policy

__all__ = ["simulate_mixture"]


def _stationary_start(structure, w: np.ndarray, mu: np.ndarray, u: np.ndarray,
                      counts: np.ndarray) -> np.ndarray:
    """Initial states: ``counts[c]`` customers in block ``c``, drawn from ``mu`` within it."""
    s0 = np.empty(len(u), dtype=np.int64)
    start = 0
    for c in np.flatnonzero(counts):  # a loop over blocks (markets), not customers
        states_c = np.flatnonzero(structure.block == c)
        stop = start + int(counts[c])
        s0[start:stop] = states_c[_inverse_cdf(mu[states_c], u[start:stop])]
        start = stop
    return s0


def simulate_mixture(
    mix: Mixture,
    params: pd.Series | Mapping | np.ndarray,
    n_customers: int | None = None,
    n_periods: int = 36,
    seed: int | np.random.Generator | np.random.SeedSequence | None = 0,
    initial: pd.Series | np.ndarray | pd.DataFrame | str | None = None,
    weights: Mapping | pd.Series | None = None,
    type_col: str | None = None,
    covariates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Simulate a long panel from a mixture of types; see :func:`simulations.simulate`.

    Parameters
    ----------
    mix : ddc.Mixture
        The mixture.
    params : pandas.Series, mapping or array
        Parameters over ``mix.param_names``.
    n_customers, n_periods, seed, weights
        As in :func:`simulations.simulate`.
    initial : None, "by_type", array, Series or DataFrame
        ``None``: independent of the type, from :math:`\\sum_k w_k \\mu_k` (see the module
        docstring); ``"by_type"``: from the customer's own type's stationary distribution; a
        probability vector or a DataFrame of initial states as in :func:`simulations.simulate`
        (independent of the type).
    type_col : str, optional
        Name of a column recording each customer's type (``0..K-1``); no such column by default
        (the type is unobserved).
    covariates : pandas.DataFrame, optional
        With ``mix.share_covariates``: one row per customer, in customer order (the rows of an
        ``initial`` DataFrame, or ids ``0..n-1``), with a column per covariate (categorical ones
        hold declared values, numeric ones numbers; other columns are not read). They set each
        customer's type shares and are written to the panel, repeated over the customer's
        months (categorical ones as a Categorical of the declared values). ``n_customers``
        defaults to its number of rows.

    Returns
    -------
    pandas.DataFrame
        The long panel, as :func:`simulations.simulate` returns it, plus the covariates'
        columns and ``type_col`` if asked.

    Raises
    ------
    ValueError
        Covariates missing for a mixture that has share covariates, or given for one that has
        none; a covariate column missing, with a missing or undeclared value, or named as a
        column the panel already has; covariates whose number of rows is not the number of
        customers.
    """
    if not isinstance(mix, Mixture):
        raise TypeError(f"simulate_mixture needs a ddc.Mixture, got {type(mix).__name__}")
    model = mix.model
    if not isinstance(n_periods, (int, np.integer)) or n_periods < 1:
        raise ValueError(f"n_periods must be a positive integer, got {n_periods!r}")
    if type_col is not None:
        reserved = [id_column(model), "month", *model.space.names, "action"]
        if not isinstance(type_col, str) or type_col in reserved:
            raise ValueError(f"type_col must be a new column name (not one of {reserved}), got "
                             f"{type_col!r}")
    frame = initial if isinstance(initial, pd.DataFrame) else None
    if isinstance(initial, str) and initial != "by_type":
        raise ValueError(f"initial={initial!r}: accepted are None, 'by_type', a probability "
                         "vector over states or a DataFrame of initial states")
    _check_covariates_given(mix, covariates, type_col)
    if frame is not None and covariates is not None and len(covariates) != len(frame):
        raise ValueError(f"the covariates have {len(covariates)} rows but the initial states "
                         f"{len(frame)}; one row per customer in both")
    n_customers = n_units(n_customers, frame if frame is not None else covariates)
    if weights is not None and initial is not None and not isinstance(initial, str):
        raise ValueError("weights apply to the stationary initial distributions; with an "
                         "explicit initial=... leave weights out")
    n, T, K = int(n_customers), int(n_periods), mix.n_types
    params = mix.params_series(params)
    if mix.varying_shares and initial == "by_type":
        raise ValueError("initial='by_type' draws the first state given the type, but with "
                         "varying shares (shares_by, share_covariates) the type is drawn given "
                         "the first state and the covariates; leave initial out")
    if mix.share_covariates:
        mix.covariate_design(covariates, n)  # checks them before anything is solved
    # with varying shares the types are drawn after the first states (from unit_shares); the
    # initial distribution then mixes the types' stationary distributions with equal weights
    w_types = np.full(K, 1.0 / K) if mix.varying_shares else mix.shares(params)
    sols = mix.solve(params)
    pis = [np.ascontiguousarray(s.pi, dtype=np.float64) for s in sols]
    tp0 = mix.type_params(params, 0)
    type_models = mix.type_models
    cts = [tm.compiled_transitions(mix.type_params(params, k))
           for k, tm in enumerate(type_models)]
    rng = np.random.default_rng(seed)
    u_type = rng.random(n) if K > 1 else None  # one type: the stream of simulate(model)
    types = _inverse_cdf(w_types, u_type) if K > 1 else np.zeros(n, dtype=np.int64)

    ids = np.arange(n, dtype=np.int64)
    id_name = id_column(model)
    if frame is not None:
        s0 = _state_codes_from_frame(model, frame)
        if id_name in frame.columns:
            ids = frame[id_name].to_numpy()
            dup = pd.Series(ids).duplicated().to_numpy()
            if dup.any():
                raise ValueError(f"initial states: {id_name!r} has the duplicate id "
                                 f"{ids[np.flatnonzero(dup)[0]]!r}; one row per customer")
    elif initial is not None and not isinstance(initial, str):
        s0 = _inverse_cdf(_distribution_from(model, initial), rng.random(n))
    else:
        structure = block_structure(model, tp0)
        w = block_weights(structure, weights)
        mus = [stationary_from_policy(tm, pi, weights=w, params=mix.type_params(params, k))
               for k, (tm, pi) in enumerate(zip(type_models, pis, strict=True))]
        counts = allocate(n, w)
        u0 = rng.random(n)
        if initial is None:
            mu = sum(wk * m for wk, m in zip(w_types, mus, strict=True))
            s0 = _stationary_start(structure, w, mu, u0, counts)
        else:  # by type: each type's customers spread over the blocks, from its own mu_k
            s0 = np.empty(n, dtype=np.int64)
            for k in range(K):
                idx = np.flatnonzero(types == k)
                if idx.size:
                    s0[idx] = _stationary_start(structure, w, mus[k], u0[idx],
                                                allocate(idx.size, w))

    if mix.varying_shares:  # the type given the first state and the covariates
        cdf = np.cumsum(mix.unit_shares(params, s0, covariates), axis=1)
        types = np.minimum((u_type[:, None] >= cdf).sum(axis=1), K - 1)
    trans = [tuple(ct)[2:] for ct in cts]
    n_f = len(cts[0].f_stride)
    states = np.empty((n, T), dtype=np.int64)
    actions = np.empty((n, T), dtype=np.int64)
    for lo in range(0, n, CHUNK_CUSTOMERS):
        hi = min(n, lo + CHUNK_CUSTOMERS)
        U = rng.random((hi - lo, T, 1 + n_f))
        for k in range(K):
            idx = np.flatnonzero(types[lo:hi] == k)
            if idx.size:
                st, ac = simulate_codes(np.ascontiguousarray(s0[lo:hi][idx]),
                                        np.ascontiguousarray(U[idx]), pis[k], *trans[k])
                states[lo + idx], actions[lo + idx] = st, ac
    out = _panel(model, ids, states, actions)
    for name, values in mix.share_covariates.items():  # constant within each customer
        col = covariates[name].to_numpy()
        if values is None:
            out[name] = np.repeat(col, T)
        else:
            codes = pd.Categorical(col, categories=list(values)).codes
            out[name] = pd.Categorical.from_codes(np.repeat(codes, T), categories=list(values))
    if type_col is not None:
        out[type_col] = np.repeat(types, T)
    return out


def _check_covariates_given(mix: Mixture, covariates, type_col: str | None) -> None:
    """Covariates given exactly when the mixture has share covariates, with new names."""
    names = list(mix.share_covariates)
    if not names:
        if covariates is not None:
            raise ValueError(f"covariates were given, but the mixture {mix!r} has no share "
                             "covariates (declare them: ddc.Mixture(..., share_covariates="
                             "{name: values or None}))")
        return
    if covariates is None:
        raise ValueError(f"the type shares of {mix!r} depend on the covariates {names}; pass "
                         "covariates=DataFrame with those columns, one row per customer")
    if not isinstance(covariates, pd.DataFrame):
        raise TypeError(f"covariates must be a pandas DataFrame with the columns {names}, one "
                        f"row per customer; got {type(covariates).__name__}")
    reserved = [id_column(mix.model), "month", *mix.model.space.names, "action",
                *([type_col] if type_col else [])]
    clash = [c for c in names if c in reserved]
    if clash:
        raise ValueError(f"share covariate(s) {clash} would overwrite the panel's column(s) of "
                         f"the same name ({reserved}); rename the covariate")
