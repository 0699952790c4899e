"""Finite mixtures of unobserved types over a model (Heckman and Singer 1984).

Each unit :math:`i` belongs to one of :math:`K` types, unobserved, with probabilities
:math:`w_1, \\dots, w_K` (the type shares). Type :math:`k` behaves as the one-type model at its
own parameters :math:`\\theta^{(k)}`: the parameters named in ``by_type`` differ by type, the
others are shared. Conditional on the first observed state, the likelihood of unit :math:`i`'s
choices :math:`a_{i1}, \\dots, a_{iT}` is

.. math::

    L_i(\\theta, w) = \\sum_{k=1}^{K} w_k \\prod_{t} \\pi(a_{it} \\mid s_{it}; \\theta^{(k)}),

the type being drawn once per unit and kept for life.

Transitions are shared by all types by default. With ``transitions_by_type`` the factors of the
named state variables (:class:`ddc.Factor` tables) differ by type: type :math:`k` moves by its
own tables :math:`f_k`, and the type is then informative about the transitions too,

.. math::

    L_i = \\sum_{k=1}^{K} w_k \\prod_{t} \\pi_k(a_{it} \\mid s_{it})
          \\prod_{t} f_k(x_{i,t+1} \\mid s_{it}, a_{it}),

with :math:`x` the by-type variables (the shared factors do not depend on the type and factor
out of the sum). Each type's tables are set with ``type_transitions`` (e.g. a data-generating
process) and estimated by the mixture estimators inside their EM (posterior-weighted cell
frequencies). The shares are constant, or a
multinomial logit in the unit's characteristics that do not change over its observed life: the
values of some state variables in the unit's first observed state (``shares_by``; the usual
answer to the initial conditions problem, Heckman 1981) and time-invariant covariates read from
the data (``share_covariates``, e.g. a customer's sign-up channel or region):

.. math::

    w_k(z_i) = \\frac{\\exp(z_{i}'\\gamma_k)}{\\sum_j \\exp(z_{i}'\\gamma_j)}, \\qquad
    \\gamma_0 = 0,

with :math:`z_i` a constant, the indicators of every value but the first of each variable named
in ``shares_by`` at :math:`s_{i1}`, then per covariate the indicators of every declared value but
the first (a categorical covariate) or its value as is (a numeric one).

Parameter names: a type-specific parameter ``p`` becomes ``p[0], ..., p[K-1]``; the shares are
``share[1], ..., share[K-1]`` (``share[0]`` is one minus their sum), or with varying shares the
logit coefficients ``gamma[k]:const``, ``gamma[k]:<variable>=<value>`` (state variables and
categorical covariates) and ``gamma[k]:<covariate>`` (numeric covariates), ``k = 1..K-1``.
:attr:`Mixture.param_names`
lists, in order, the type-specific parameters (by parameter, then type), the shared utility
parameters, the transition parameters and the shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import _fmt
from ddc.solver import Solution, Solver

__all__ = ["Mixture"]

_TYPED = re.compile(r"^(?P<base>.+)\[(?P<k>\d+)\]$")


class Mixture:
    """A finite mixture of ``n_types`` unobserved types over ``model``.

    Parameters
    ----------
    model : ddc.Model
        The one-type model.
    n_types : int
        Number of types :math:`K \\ge 1`. With ``n_types=1`` the mixture is the model itself
        (its parameters renamed ``p[0]`` for those in ``by_type``).
    by_type : sequence of str
        Utility parameters of ``model`` that differ by type. Transition *parameters* cannot be
        type-specific (use ``transitions_by_type`` for fixed transition tables).
    true_params : pandas.Series or mapping, optional
        Parameter values over :attr:`param_names`, e.g. to simulate from.
    name : str, optional
        Name used in reports (default ``"<model name> (K types)"``).
    shares_by : sequence of str, optional
        State variables whose value in the unit's first observed state shifts the type shares
        (a multinomial logit; see the module docstring). Constant shares by default.
    share_covariates : mapping of str to sequence or None, optional
        Time-invariant covariates that shift the type shares: data columns (not state
        variables) constant within each unit. Each maps to its values, first the base level
        (a categorical covariate: indicators of every other value enter the logit), or to
        ``None`` (a numeric covariate, entered as is). E.g.
        ``{"channel": ["store", "web", "referral"], "age": None}`` gives the coefficients
        ``gamma[k]:channel=web``, ``gamma[k]:channel=referral`` and ``gamma[k]:age``. The
        estimators read them from the panel (a column varying within a unit, or missing in a
        row, is an error naming it); :func:`simulations.simulate` takes them per unit and
        writes them as columns.

    Raises
    ------
    TypeError
        ``model`` is not a ``ddc.Model``.
    ValueError
        ``n_types`` is not an integer of at least 1, ``by_type`` is empty, repeats a name or
        names a transition parameter; varying shares with one type; a covariate that is a
        state variable, or whose declared values are fewer than two or repeat.
    KeyError
        ``by_type`` names a parameter the model does not have, ``shares_by`` a variable that is
        not a state variable, ``transitions_by_type`` a variable without a transition factor.

    Examples
    --------
    >>> import ddc
    >>> mix = ddc.Mixture(ddc.models.membership(), n_types=2, by_type=["theta_ship"])
    >>> mix.param_names[:3], mix.param_names[-1]
    (['theta_ship[0]', 'theta_ship[1]', 'theta_0'], 'share[1]')
    """

    def __init__(self, model: Model, n_types: int, by_type: Sequence[str],
                 true_params: pd.Series | Mapping | None = None, name: str | None = None,
                 shares_by: Sequence[str] = (),
                 share_covariates: Mapping[str, Sequence | None] | None = None,
                 transitions_by_type: Sequence[str] | bool = (),
                 type_transitions: Sequence[Mapping[str, np.ndarray]] | None = None):
        if not isinstance(model, Model):
            raise TypeError(f"Mixture needs a ddc.Model to mix over, got {type(model).__name__}")
        if isinstance(n_types, (bool, np.bool_)) or not isinstance(n_types, (int, np.integer)) \
                or n_types < 1:
            raise ValueError(f"n_types must be an integer of at least 1 (the number of "
                             f"unobserved types), got {n_types!r}")
        if isinstance(by_type, str):
            by_type = [by_type]
        by_type = [str(p) for p in by_type]
        if not by_type:
            raise ValueError("by_type is empty: name at least one utility parameter that differs "
                             f"by type; the model's utility parameters are {model.utility_params}")
        dup = sorted({p for p in by_type if by_type.count(p) > 1})
        if dup:
            raise ValueError(f"by_type names {dup} more than once")
        transition = [p for p in by_type if p in model.transition_params.index]
        if transition:
            raise ValueError(f"by_type names transition parameter(s) {transition}; type-specific "
                             "transition parameters are not supported (fixed transition tables "
                             "can differ by type: transitions_by_type=[...]). Choose among the "
                             f"utility parameters {model.utility_params}")
        unknown = [p for p in by_type if p not in model.utility_params]
        if unknown:
            raise KeyError(f"by_type names {unknown}, which the model {model.name!r} does not "
                           f"have; its utility parameters are {model.utility_params}")
        shares_by = [shares_by] if isinstance(shares_by, str) else [str(v) for v in shares_by]
        unknown = [v for v in shares_by if v not in model.space.names]
        if unknown:
            raise KeyError(f"shares_by names {unknown}, which are not state variables of the "
                           f"model; its state variables are {list(model.space.names)}. "
                           "Time-invariant data columns go in share_covariates={name: values "
                           "or None}")
        covariates = _check_covariates(model, share_covariates)
        if (shares_by or covariates) and n_types < 2:
            raise ValueError("shares_by and share_covariates need at least two types (with one "
                             "type there are no shares)")
        self.shares_by = [v for v in model.space.names if v in shares_by]
        self.share_covariates = covariates
        self.model = model
        self.n_types = int(n_types)
        self.by_type = [p for p in model.utility_params if p in by_type]  # model order
        self.shared = [p for p in model.param_names if p not in self.by_type]
        self.name = name or f"{model.name} ({self.n_types} type{'s' * (self.n_types > 1)})"
        K = self.n_types
        typed = [f"{p}[{k}]" for p in self.by_type for k in range(K)]
        self.share_columns = ["const"] + [f"{v}={val}" for v in self.shares_by
                                          for val in model.space.variable(v).values[1:]]
        self.share_columns += [c for name, values in covariates.items()
                               for c in _covariate_columns(name, values)]
        if self.varying_shares:
            self.share_names = [f"gamma[{k}]:{c}" for k in range(1, K)
                                for c in self.share_columns]
        else:
            self.share_names = [f"share[{k}]" for k in range(1, K)]
        self._names = typed + self.shared + self.share_names
        self._index = pd.Index(self._names)
        # position of each type's one-type parameter vector in the mixture vector
        pos = {n: i for i, n in enumerate(self._names)}
        self._type_index = np.array([[pos[f"{p}[{k}]"] if p in self.by_type else pos[p]
                                      for p in model.param_names] for k in range(K)],
                                    dtype=np.int64)
        self.transitions_by_type = _typed_variables(model, transitions_by_type)
        self._type_models = _type_models(model, K, self.transitions_by_type, type_transitions)
        self.true_params = None if true_params is None else self.params_series(true_params)

    def __repr__(self) -> str:
        extra = f", shares_by={self.shares_by}" if self.shares_by else ""
        if self.share_covariates:
            extra += f", share_covariates={self.share_covariates}"
        if self.transitions_by_type:
            extra += f", transitions_by_type={self.transitions_by_type}"
        return (f"Mixture({self.model.name!r}, n_types={self.n_types}, "
                f"by_type={self.by_type}{extra})")

    # ----------------------------------------------------------------- names and values
    @property
    def varying_shares(self) -> bool:
        """Whether the shares vary over units (``shares_by`` or ``share_covariates``)."""
        return bool(self.shares_by or self.share_covariates)

    @property
    def param_names(self) -> list[str]:
        """All parameters: type-specific (``p[k]``), shared utility, transition, shares."""
        return list(self._names)

    @property
    def utility_params(self) -> list[str]:
        """Parameters other than the transition parameters and the shares."""
        trans = set(self.model.transition_params.index)
        return [n for n in self._names if n not in trans and n not in self.share_names]

    @property
    def type_index(self) -> np.ndarray:
        """``(K, P)`` positions in :attr:`param_names` of each type's parameters, in the
        one-type model's :attr:`ddc.Model.param_names` order."""
        return self._type_index.copy()

    @property
    def space(self):
        """The model's state space (shared by all types)."""
        return self.model.space

    @property
    def actions(self) -> tuple[str, ...]:
        """The model's actions."""
        return self.model.actions

    @property
    def beta(self) -> float:
        """The model's discount factor."""
        return self.model.beta

    def params_series(self, params: pd.Series | Mapping | Sequence[float] | np.ndarray
                      ) -> pd.Series:
        """Normalize ``params`` to a Series over :attr:`param_names`.

        Transition parameters not given take the model's defaults; with a single type there are
        no shares. Missing or unknown names raise ``KeyError``; shares outside the simplex raise
        ``ValueError``.
        """
        names = self._names
        if isinstance(params, (pd.Series, Mapping)):
            given = dict(params.items())
            unknown = [k for k in given if k not in self._index]
            if unknown:
                hint = ""
                bases = {m.group("base") for k in unknown if (m := _TYPED.match(str(k)))}
                if bases & set(self.by_type):
                    hint = f" (types are numbered 0..{self.n_types - 1})"
                elif set(map(str, unknown)) & set(self.by_type):
                    hint = " (type-specific parameters are named p[0], p[1], ...)"
                raise KeyError(f"unknown parameter(s) {unknown}{hint}; the mixture's parameters "
                               f"are {names}")
            defaults = self.model.transition_params
            missing = [k for k in names if k not in given and k not in defaults.index]
            if missing:
                raise KeyError(f"missing parameter(s) {missing}; give all of {names} "
                               "(transition parameters may be left at their defaults)")
            values = [given[k] if k in given else defaults[k] for k in names]
        else:
            arr = np.asarray(params, dtype=float).ravel()
            if arr.size != len(names):
                raise ValueError(f"expected {len(names)} values ({names}); got {arr.size}")
            values = list(arr)
        try:
            vec = np.array(values, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"parameter values must be numbers; got {values}") from None
        if not np.all(np.isfinite(vec)):
            bad = {n: float(x) for n, x in zip(names, vec, strict=True) if not np.isfinite(x)}
            raise ValueError(f"parameter(s) {list(bad)} are not finite: {bad}")
        out = pd.Series(vec, index=self._index, name="params")
        if not self.varying_shares:
            self.shares(out)  # checks the simplex
        return out

    def shares(self, params) -> np.ndarray:
        """Type shares :math:`(w_0, \\dots, w_{K-1})`, ``w_0 = 1 - sum of the others``.

        Raises
        ------
        ValueError
            A share outside ``[0, 1]``, or shares that vary over units (``shares_by``,
            ``share_covariates``; then see :meth:`unit_shares`).
        """
        if self.varying_shares:
            raise ValueError(f"the shares vary over units (with {self.shares_depend_on()}); use "
                             "unit_shares(params, first_states, covariates)")
        if isinstance(params, pd.Series):
            rest = params[self.share_names].to_numpy(dtype=float)
        else:
            rest = np.asarray(params, dtype=float).ravel()[len(self._names) - self.n_types + 1:]
        w = np.concatenate([[1.0 - rest.sum()], rest])
        bad = np.flatnonzero((w < 0) | (w > 1))
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"type shares must lie in [0, 1] and sum to one; share[{k}] = "
                             f"{w[k]:.6g} (share[0] is one minus the sum of share[1..])")
        return w

    def shares_depend_on(self) -> str:
        """What the shares vary with, in words (for messages and notes)."""
        parts = [f"the first state's {self.shares_by}"] if self.shares_by else []
        if self.share_covariates:
            parts.append(f"the covariates {list(self.share_covariates)}")
        return " and ".join(parts)

    def covariate_design(self, covariates: pd.DataFrame | None, n_units: int | None = None
                         ) -> np.ndarray:
        """``(N, C_x)`` columns of the share covariates: one row per unit of ``covariates``
        (a DataFrame with a column per name of :attr:`share_covariates`, e.g.
        :meth:`ddc.data.EstimationData.unit_covariates`), categorical ones as indicators of
        every declared value but the first, numeric ones as they are.

        Raises
        ------
        KeyError
            A covariate column is absent (the message lists the columns there are).
        ValueError
            A missing value, a value not among a categorical covariate's declared values or a
            non-number in a numeric one (naming the row and the value), or ``n_units`` rows
            expected and another number given.
        """
        if not self.share_covariates:
            return np.zeros((0 if covariates is None else len(covariates), 0))
        names = list(self.share_covariates)
        if covariates is None:
            raise ValueError(f"the type shares depend on the covariates {names}; pass them, "
                             "one row per unit (a DataFrame with those columns)")
        if not isinstance(covariates, pd.DataFrame):
            raise TypeError(f"covariates must be a pandas DataFrame with the columns {names}, "
                            f"one row per unit; got {type(covariates).__name__}")
        missing = [c for c in names if c not in covariates.columns]
        if missing:
            raise KeyError(f"the share covariate column(s) {missing} are not in the data; it "
                           f"has {list(covariates.columns)}")
        if n_units is not None and len(covariates) != n_units:
            raise ValueError(f"the covariates have {len(covariates)} rows; one per unit "
                             f"({n_units}) is needed")
        label = covariates.index.name or "row"
        cols = []
        for name, values in self.share_covariates.items():
            col = covariates[name]
            na = col.isna().to_numpy()
            if na.any():
                rows = [f"{label}={_fmt(covariates.index[i])}" for i in np.flatnonzero(na)[:5]]
                raise ValueError(f"share covariate {name!r} is missing in {int(na.sum())} "
                                 f"row(s), e.g. {', '.join(rows)}; give every unit a value")
            if values is None:
                x = pd.to_numeric(col, errors="coerce")
                bad = np.flatnonzero(x.isna().to_numpy() | ~np.isfinite(
                    x.to_numpy(dtype=float, na_value=np.nan)))
                if bad.size:
                    i = int(bad[0])
                    at = f"{label}={_fmt(covariates.index[i])}"
                    raise ValueError(f"share covariate {name!r} is numeric (declared None) but "
                                     f"holds {_fmt(col.iloc[i])} at {at}; declare its values, "
                                     f"share_covariates={{{name!r}: [...]}}, to treat it as "
                                     "categorical")
                cols.append(x.to_numpy(dtype=float)[:, None])
                continue
            lookup = {v: j for j, v in enumerate(values)}
            codes = col.astype(object).map(lookup)
            bad = np.flatnonzero(codes.isna().to_numpy())
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"share covariate {name!r} holds {_fmt(col.iloc[i])} at "
                                 f"{label}={_fmt(covariates.index[i])}, which is not one of its "
                                 f"declared values {list(values)}")
            code = codes.to_numpy(dtype=np.int64)
            cols.append((code[:, None] == np.arange(1, len(values))[None, :]).astype(float))
        return np.column_stack(cols)

    def share_design(self, first_states: np.ndarray,
                     covariates: pd.DataFrame | None = None) -> np.ndarray:
        """``(N, C)`` share covariates :math:`z_i` of units with first (flat) states
        ``first_states`` and (with :attr:`share_covariates`) the per-unit ``covariates``
        (:meth:`covariate_design`): a constant, then one indicator per value but the first of
        each ``shares_by`` variable, then the covariates' columns (columns
        :attr:`share_columns`)."""
        s = np.asarray(first_states, dtype=np.int64)
        cols = [np.ones(len(s))]
        for v in self.shares_by:
            code = self.model.space.code_of(v)[s]
            cols.extend((code == j).astype(float)
                        for j in range(1, self.model.space.variable(v).size))
        Z = np.column_stack(cols)
        if covariates is not None and not self.share_covariates:
            raise ValueError(f"covariates were given, but the shares of {self!r} have no "
                             "share_covariates; declare them in ddc.Mixture(..., "
                             "share_covariates={name: values or None})")
        if self.share_covariates:
            Z = np.column_stack([Z, self.covariate_design(covariates, len(s))])
        return Z

    def share_coefficients(self, params) -> np.ndarray:
        """``(K-1, C)`` logit coefficients of the shares (varying shares only)."""
        vec = self.params_series(params)[self.share_names].to_numpy()
        return vec.reshape(self.n_types - 1, len(self.share_columns))

    def design_shares(self, params, design: np.ndarray) -> np.ndarray:
        """``(N, K)`` type probabilities of units with share covariates ``design``
        (:meth:`share_design`): the multinomial logit of the module docstring."""
        Z = np.asarray(design, dtype=float)
        eta = np.column_stack([np.zeros(len(Z)), Z @ self.share_coefficients(params).T])
        eta -= eta.max(axis=1, keepdims=True)
        w = np.exp(eta)
        return w / w.sum(axis=1, keepdims=True)

    def unit_shares(self, params, first_states: np.ndarray,
                    covariates: pd.DataFrame | None = None) -> np.ndarray:
        """``(N, K)`` type probabilities of units with first (flat) states ``first_states``
        and per-unit ``covariates`` (with :attr:`share_covariates`; see
        :meth:`covariate_design`); constant rows without varying shares."""
        s = np.asarray(first_states, dtype=np.int64)
        if not self.varying_shares:
            return np.tile(self.shares(self.params_series(params)), (len(s), 1))
        return self.design_shares(params, self.share_design(s, covariates))

    def type_params(self, params, k: int) -> pd.Series:
        """Parameters of type ``k`` as a Series over the one-type model's parameter names."""
        k = self._check_type(k)
        vec = self.params_series(params).to_numpy()
        return pd.Series(vec[self._type_index[k]], index=self.model._param_index, name="params")

    def type_model(self, params, k: int) -> Model:
        """The one-type model of type ``k`` (with type ``k``'s transitions), with its
        ``true_params`` set to type ``k``'s parameters at ``params`` (e.g. to simulate that
        type alone)."""
        tp = self.type_params(params, k)
        return self._type_models[k].replace(true_params=tp, name=f"{self.model.name}[type {k}]")

    @property
    def type_models(self) -> list[Model]:
        """Each type's one-type model: :attr:`model` itself, or with the type's tables of the
        ``transitions_by_type`` variables."""
        return list(self._type_models)

    def type_tables(self, k: int) -> dict[str, np.ndarray]:
        """Type ``k``'s tables of the ``transitions_by_type`` variables (empty without)."""
        k = self._check_type(k)
        factors = {f.variable: f for f in self._type_models[k].transitions().factors}
        return {v: factors[v].table.copy() for v in self.transitions_by_type}

    def with_transitions(self, transitions=None,
                         type_transitions: Sequence[Mapping[str, np.ndarray]] | None = None
                         ) -> Mixture:
        """The same mixture over other transitions: ``transitions`` replaces the model's (e.g.
        the tables a first stage estimated; a :class:`ddc.FactoredTransitions` or a model's
        transition function), ``type_transitions`` the types' tables of the
        ``transitions_by_type`` variables (default: each type's current ones)."""
        model = self.model if transitions is None else self.model.replace(transitions=transitions)
        if type_transitions is None and self.transitions_by_type:
            type_transitions = [self.type_tables(k) for k in range(self.n_types)]
        new = Mixture(model, self.n_types, self.by_type, name=self.name,
                      shares_by=self.shares_by, share_covariates=self.share_covariates or None,
                      transitions_by_type=self.transitions_by_type,
                      type_transitions=type_transitions)
        new.true_params = self.true_params
        return new

    def _check_type(self, k) -> int:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) \
                or not 0 <= k < self.n_types:
            raise ValueError(f"type must be an integer in 0..{self.n_types - 1}, got {k!r}")
        return int(k)

    def fingerprint(self) -> dict:
        """The one-type model's fingerprint (:meth:`ddc.Model.fingerprint`) with the mixture's
        name, parameter names, number of types and type-specific parameters."""
        fp = self.model.fingerprint()
        fp.update({"name": self.name, "params": self.param_names, "n_types": self.n_types,
                   "by_type": list(self.by_type), "shares_by": list(self.shares_by)})
        if self.share_covariates:
            fp["share_covariates"] = {k: None if v is None else list(v)
                                      for k, v in self.share_covariates.items()}
        if self.transitions_by_type:
            fp["transitions_by_type"] = list(self.transitions_by_type)
        return fp

    # ----------------------------------------------------------------- solving
    def solve(self, params, solver: Solver | None = None) -> list[Solution]:
        """Solve every type's fixed point at ``params`` (each with its own transitions): one
        :class:`ddc.Solution` per type."""
        params = self.params_series(params)
        return [self._type_models[k].solve(self.type_params(params, k), solver=solver)
                for k in range(self.n_types)]


def _check_covariates(model: Model, covariates) -> dict[str, tuple | None]:
    """``share_covariates`` checked: name -> tuple of values (categorical) or None (numeric)."""
    if covariates is None:
        return {}
    if not isinstance(covariates, Mapping):
        raise TypeError("share_covariates must map each covariate column to its values (first "
                        "the base level) or to None (numeric), e.g. {'channel': ['store', "
                        f"'web'], 'age': None}}; got {type(covariates).__name__}")
    out: dict[str, tuple | None] = {}
    for name, values in covariates.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"share_covariates: covariate names must be non-empty strings, got "
                            f"{name!r}")
        if name in model.space.names:
            raise ValueError(f"share_covariates names {name!r}, a state variable; a state "
                             "variable enters the shares through its value in the first state: "
                             f"name it in shares_by=[{name!r}]")
        if values is None:
            out[name] = None
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray,
                                                                      pd.Index)):
            raise TypeError(f"share_covariates[{name!r}] must be the covariate's values (a list, "
                            f"first the base level) or None (numeric); got {values!r}")
        vals = tuple(values)
        if len(vals) < 2:
            raise ValueError(f"share_covariates[{name!r}] declares {list(vals)}: a categorical "
                             "covariate needs at least two values")
        if len(set(vals)) < len(vals):
            dup = sorted({repr(v) for v in vals if vals.count(v) > 1})
            raise ValueError(f"share_covariates[{name!r}] repeats the value(s) {dup}")
        out[name] = vals
    return out


def _covariate_columns(name: str, values: tuple | None) -> list[str]:
    """The share design's columns of one covariate."""
    return [name] if values is None else [f"{name}={v}" for v in values[1:]]
def _typed_variables(model: Model, transitions_by_type) -> list[str]:
    """The checked ``transitions_by_type`` variables, in the model's factor order."""
    from ddc.transitions import FactoredTransitions

    if isinstance(transitions_by_type, str):
        transitions_by_type = [transitions_by_type]
    if transitions_by_type is None or transitions_by_type is False or \
            (transitions_by_type is not True and len(transitions_by_type) == 0):
        return []
    trans = model.transitions() if len(model.transition_params) == 0 else None
    if not isinstance(trans, FactoredTransitions):
        raise ValueError(
            "transitions_by_type needs transitions given as fixed factored tables "
            "(ddc.FactoredTransitions without transition parameters), estimated by cell "
            f"frequencies; the model {model.name!r} has "
            + (f"transition parameters {list(model.transition_params.index)}"
               if len(model.transition_params) else "transitions given by a function")
            + ". Type-specific transition parameters are not supported")
    random = [f.variable for f in trans.factors
              if ((f.table > 0).sum(axis=-1) > 1).any()]
    if transitions_by_type is True:
        if not random:
            raise ValueError(f"transitions_by_type=True, but every transition factor of the "
                             f"model {model.name!r} is deterministic")
        return random
    names = [str(v) for v in transitions_by_type]
    dup = sorted({v for v in names if names.count(v) > 1})
    if dup:
        raise ValueError(f"transitions_by_type names {dup} more than once")
    factors = [f.variable for f in trans.factors]
    unknown = [v for v in names if v not in factors]
    if unknown:
        raise KeyError(f"transitions_by_type names {unknown}, which have no transition factor; "
                       f"the model's factors are {factors}")
    fixed = [v for v in names if v not in random]
    if fixed:
        raise ValueError(f"transitions_by_type names {fixed}, whose transitions are "
                         "deterministic (nothing can differ by type); random factors: "
                         f"{random}")
    return [v for v in factors if v in names]


def _type_models(model: Model, K: int, typed: list[str], type_transitions) -> list[Model]:
    """Each type's model: the model, or a copy with the type's tables of ``typed``."""
    from ddc.transitions import Factor, FactoredTransitions

    if type_transitions is None:
        return [model] * K
    if not typed:
        raise ValueError("type_transitions given without transitions_by_type: name the state "
                         "variables whose transitions differ by type")
    if isinstance(type_transitions, Mapping) or len(type_transitions) != K:
        raise ValueError(f"type_transitions must be a sequence of {K} mappings (one per type, "
                         "variable -> table)")
    base = model.transitions()
    out = []
    for k, tables in enumerate(type_transitions):
        if not isinstance(tables, Mapping):
            raise TypeError(f"type_transitions[{k}] must be a mapping variable -> table, got "
                            f"{type(tables).__name__}")
        unknown = [v for v in tables if v not in typed]
        if unknown:
            raise KeyError(f"type_transitions[{k}] gives tables of {unknown}, which are not "
                           f"among transitions_by_type {typed}")
        factors = []
        for f in base.factors:
            if f.variable not in tables:
                factors.append(f)
                continue
            t = np.asarray(tables[f.variable], dtype=float)
            if t.shape != f.table.shape:
                raise ValueError(f"type_transitions[{k}][{f.variable!r}] has shape {t.shape}; "
                                 f"the model's table has shape {f.table.shape}")
            extra = (t > 0) & ~(f.table > 0)
            if extra.any():
                where = tuple(int(i) for i in np.argwhere(extra)[0])
                raise ValueError(f"type_transitions[{k}][{f.variable!r}] is positive at "
                                 f"{where}, a structural zero of the model's table (types "
                                 "share the support of the transitions)")
            factors.append(Factor(f.variable, t, given=f.given))
        out.append(model if not tables else
                   model.replace(transitions=FactoredTransitions(factors)))
    return out
