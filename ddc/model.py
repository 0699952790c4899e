"""The dynamic discrete choice model: states, actions, feasibility, utility, transitions, beta.

An infinite-horizon model with i.i.d. type-I extreme value shocks (scale 1), one per action:

.. math::

    V(s) = E\\max_{a \\in A(s)} \\{u(s, a; \\theta) + \\epsilon_a + \\beta E[V(s') \\mid s, a]\\}
         = \\log \\sum_{a \\in A(s)} \\exp v(s, a) + \\gamma.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from ddc.hooks import Hooks
from ddc.statespace import StateSpace, StateVariable
from ddc.transitions import CompiledTransitions, FactoredTransitions, SparseTransitions
from ddc.utility import CallableUtility, LinearUtility

__all__ = ["Model", "fingerprint_diff"]

Transitions = FactoredTransitions | SparseTransitions


class Model:
    """A discrete-state, discrete-action, infinite-horizon DDC model with logit shocks.

    Parameters
    ----------
    states : StateSpace or sequence of StateVariable
        The state variables; the state space is their product (C order).
    actions : sequence of str
        Action names, in code order.
    utility : LinearUtility or CallableUtility
        Flow utility in the (utility) parameters.
    transitions : FactoredTransitions, SparseTransitions or callable
        The transitions, or a function ``f(params: pandas.Series) -> FactoredTransitions`` of the
        transition parameters (named in ``transition_params``).
    beta : float
        Discount factor in ``[0, 1)``.
    feasible : array_like of bool, shape (S, A), optional
        Which actions can be chosen in which state (all by default). Every state needs at least
        one feasible action.
    transition_params : pandas.Series, optional
        Names and default values of the transition parameters (when ``transitions`` is a
        callable).
    true_params : pandas.Series, optional
        Parameter values used to simulate (all parameters, utility first).
    name : str
        A short name, used in reports.
    anchor : str, optional
        The reference action whose utility is normalized to zero (used by IRL estimators).
    hooks : Hooks, optional
        What the application declares to the generic engine: the money parameter, named
        outcomes, the data layout, how transitions are estimated, default scenarios
        (:class:`ddc.Hooks`; nothing by default).

    Examples
    --------
    >>> import numpy as np
    >>> from ddc import Model, StateVariable, LinearUtility, Factor, FactoredTransitions
    >>> X = np.zeros((2, 2, 1)); X[:, 1, 0] = 1.0   # utility theta * 1[a = 1]
    >>> m = Model([StateVariable("x", (0, 1))], ["stay", "go"], LinearUtility(X, ["theta"]),
    ...           FactoredTransitions([Factor("x", np.full((2, 2), 0.5))]), beta=0.9)
    >>> m.n_states, m.n_actions
    (2, 2)
    """

    def __init__(
        self,
        states: StateSpace | Sequence[StateVariable],
        actions: Sequence[str],
        utility: LinearUtility | CallableUtility,
        transitions: Transitions | Callable[[pd.Series], Transitions],
        beta: float,
        feasible: np.ndarray | None = None,
        transition_params: pd.Series | None = None,
        true_params: pd.Series | None = None,
        name: str = "model",
        anchor: str | None = None,
        hooks: Hooks | None = None,
    ):
        self.space = states if isinstance(states, StateSpace) else StateSpace(states)
        self.actions = tuple(str(a) for a in actions)
        if not self.actions:
            raise ValueError("a model needs at least one action")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError(f"action names must be unique, got {list(self.actions)}")
        S, A = self.space.size, len(self.actions)
        if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.integer,
                                                                        np.floating)) \
                or not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"the discount factor beta must be a number in [0, 1); got {beta!r}")
        self.beta = float(beta)

        if not isinstance(utility, (LinearUtility, CallableUtility)):
            raise TypeError("utility must be a LinearUtility or CallableUtility")
        if tuple(utility.shape) != (S, A):
            raise ValueError(f"utility is defined on {tuple(utility.shape)} (states, actions) but "
                             f"the model has {S} states and {A} actions")
        self.utility = utility

        feas = np.ones((S, A), dtype=bool) if feasible is None else np.asarray(feasible)
        if feas.shape != (S, A):
            raise ValueError(f"feasible must have shape ({S}, {A}) (states, actions); got "
                             f"{feas.shape}")
        if feas.dtype != bool:
            raise ValueError(f"feasible must be a boolean array, got dtype {feas.dtype}")
        empty = np.flatnonzero(~feas.any(axis=1))
        if empty.size:
            raise ValueError(f"state {self.space.label(empty[0])} (flat index {empty[0]}) has no "
                             f"feasible action; {empty.size} state(s) in all")
        self.feasible = np.ascontiguousarray(feas)

        self.transition_params = (pd.Series(dtype=float) if transition_params is None
                                  else pd.Series(transition_params, dtype=float))
        bad = self.transition_params[~np.isfinite(self.transition_params.to_numpy())]
        if len(bad):
            raise ValueError(f"default transition parameter(s) {list(bad.index)} are not "
                             f"finite: {bad.astype(float).to_dict()}")
        if callable(transitions) and not isinstance(transitions, (FactoredTransitions,
                                                                  SparseTransitions)):
            self._transition_fn = transitions
            self._fixed_transitions = None
        elif isinstance(transitions, (FactoredTransitions, SparseTransitions)):
            self._transition_fn = None
            self._fixed_transitions = transitions
        else:
            raise TypeError("transitions must be FactoredTransitions, SparseTransitions or a "
                            "callable of the transition parameters")
        if anchor is not None and anchor not in self.actions:
            raise ValueError(f"anchor {anchor!r} is not an action; actions are {self.actions}")
        self.anchor = anchor
        self.name = name
        if hooks is not None and not isinstance(hooks, Hooks):
            raise TypeError(f"hooks must be a ddc.Hooks; got {type(hooks).__name__}")
        self.hooks = Hooks() if hooks is None else hooks
        if self.hooks.money is not None and self.hooks.money.param not in self.utility_params:
            raise ValueError(f"the money parameter {self.hooks.money.param!r} is not a utility "
                             f"parameter; the model's utility parameters are "
                             f"{self.utility_params}")
        self._compiled = lru_cache(maxsize=8)(self._compile)
        # compile the default transitions now: an inconsistent model fails at construction
        self.compiled_transitions()
        self.true_params = None if true_params is None else self.params_series(true_params)

    def __getstate__(self) -> dict:
        # the per-instance cache of compiled transitions is not picklable; rebuilt on load
        state = self.__dict__.copy()
        state.pop("_compiled", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._compiled = lru_cache(maxsize=8)(self._compile)

    def __repr__(self) -> str:
        return (f"Model({self.name!r}: {self.space!r}, actions={list(self.actions)}, "
                f"beta={self.beta}, params={self.param_names})")

    # ----------------------------------------------------------------- sizes and names
    @property
    def n_states(self) -> int:
        """Number of states S."""
        return self.space.size

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return len(self.actions)

    @property
    def utility_params(self) -> list[str]:
        """Names of the utility parameters."""
        return list(self.utility.names)

    @property
    def param_names(self) -> list[str]:
        """All parameter names: utility parameters, then transition parameters."""
        return self.utility_params + list(self.transition_params.index)

    @cached_property
    def _param_index(self) -> pd.Index:
        return pd.Index(self.param_names)

    def action_code(self, action: str | int) -> int:
        """Code of an action given by name or code."""
        if isinstance(action, (int, np.integer)) and 0 <= int(action) < self.n_actions:
            return int(action)
        if action in self.actions:
            return self.actions.index(action)
        raise KeyError(f"{action!r} is not an action of the model; accepted: {list(self.actions)} "
                       f"or codes 0..{self.n_actions - 1}")

    # ----------------------------------------------------------------- parameters
    def params_series(self, params: pd.Series | Mapping | Sequence[float] | np.ndarray
                      ) -> pd.Series:
        """Normalize ``params`` to a Series over :attr:`param_names`.

        Transition parameters not given take their defaults; missing utility parameters and
        unknown names raise ``KeyError``.
        """
        names = self.param_names
        if isinstance(params, (pd.Series, Mapping)):
            if isinstance(params, pd.Series) and params.index.has_duplicates:
                dup = sorted(set(params.index[params.index.duplicated()]))
                raise ValueError(f"parameter name(s) {dup} given more than once")
            given = dict(params.items())
            unknown = [k for k in given if k not in names]
            if unknown:
                raise KeyError(f"unknown parameter(s) {unknown}; the model's parameters are "
                               f"{names}")
            missing = [k for k in self.utility_params if k not in given]
            if missing:
                raise KeyError(f"missing utility parameter(s) {missing}; give all of "
                               f"{self.utility_params}")
            defaults = self.transition_params
            values = [given[k] if k in given else defaults[k] for k in names]
        else:
            arr = np.asarray(params, dtype=float)
            if arr.ndim > 1:
                raise ValueError(f"parameters must be a vector; got an array of shape "
                                 f"{arr.shape}")
            arr = arr.ravel()
            if arr.size == len(self.utility_params):
                values = [*arr, *self.transition_params.to_numpy()]
            elif arr.size == len(names):
                values = list(arr)
            else:
                raise ValueError(f"expected {len(self.utility_params)} utility parameters "
                                 f"{self.utility_params} or all {len(names)} ({names}); "
                                 f"got {arr.size} values")
        try:
            vec = np.array(values, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"parameter values must be numbers; got {values}") from None
        if not np.all(np.isfinite(vec)):
            bad = {n: float(x) for n, x in zip(names, vec, strict=True) if not np.isfinite(x)}
            raise ValueError(f"parameter(s) {list(bad)} are not finite: {bad}")
        out = pd.Series(vec, index=self._param_index, name="params")
        return out

    def theta(self, params) -> np.ndarray:
        """The utility parameter vector, in :attr:`utility_params` order."""
        return self.params_series(params).to_numpy()[: len(self.utility_params)]

    def utilities(self, params) -> np.ndarray:
        """Flow utilities ``(S, A)`` at ``params`` (infeasible entries as computed; masked by
        the solver)."""
        return self.utility(self.theta(params))

    # ----------------------------------------------------------------- transitions
    def transitions(self, params=None) -> Transitions:
        """The transitions at ``params`` (the defaults when ``None``)."""
        if self._transition_fn is None:
            return self._fixed_transitions
        if params is None:
            return self._transition_fn(self.transition_params)
        K = len(self.utility_params)
        if isinstance(params, np.ndarray) and params.shape == (len(self.param_names),):
            values = params[K:]  # the hot path of first stages: no label lookups
        else:
            values = self.params_series(params).to_numpy()[K:]
        return self._transition_fn(pd.Series(values, index=self.transition_params.index,
                                             dtype=float))

    def _compile(self, key: tuple[float, ...]) -> CompiledTransitions:
        tp = pd.Series(key, index=self.transition_params.index, dtype=float)
        trans = self._fixed_transitions if self._transition_fn is None else \
            self._transition_fn(tp)
        if not isinstance(trans, (FactoredTransitions, SparseTransitions)):
            raise TypeError("the transition function must return FactoredTransitions or "
                            f"SparseTransitions, got {type(trans).__name__}")
        return trans.compile(self.space, self.n_actions)

    def compiled_transitions(self, params=None) -> CompiledTransitions:
        """Transitions packed for the kernels (cached by transition-parameter values)."""
        if params is None or len(self.transition_params) == 0:
            key = tuple(self.transition_params.to_numpy().tolist())
        elif isinstance(params, np.ndarray) and params.shape == (len(self._param_index),):
            key = tuple(params[len(self.utility.names):].tolist())  # the hot path: no pandas
        else:
            key = tuple(self.params_series(params).to_numpy()[len(self.utility_params):]
                        .tolist())
        return self._compiled(key)

    # ----------------------------------------------------------------- solving
    def solve(self, params, solver=None, V0: np.ndarray | None = None):
        """Solve the Bellman fixed point at ``params``.

        Parameters
        ----------
        params : pandas.Series, mapping or array
            Parameter values (see :meth:`params_series`).
        solver : Solver, optional
            Method and tolerances; ``Solver()`` (Newton-Kantorovich polyalgorithm) by default.
        V0 : numpy.ndarray, optional
            Starting value function (a warm start).

        Returns
        -------
        Solution
        """
        from ddc.solver import solve

        return solve(self, params, solver=solver, V0=V0)

    # ----------------------------------------------------------------- identity
    def fingerprint(self) -> dict:
        """What identifies the model, for checking that results and data belong to it.

        A JSON-serialisable dict: name, discount factor, state variables with their values,
        actions, parameter names, and SHA-256 digests of the feasibility mask, the utility
        specification (the feature array of a :class:`LinearUtility`; the parameter names of a
        :class:`CallableUtility`) and the transitions at their default parameters.
        Compare two with :func:`fingerprint_diff`.
        """
        import hashlib

        def digest(*arrays) -> str:
            h = hashlib.sha256()
            for a in arrays:
                a = np.ascontiguousarray(a)
                h.update(str((a.dtype.str, a.shape)).encode())
                h.update(a.tobytes())
            return h.hexdigest()[:16]

        ct = self.compiled_transitions()
        util = self.utility
        util_digest = digest(util.features) if isinstance(util, LinearUtility) else \
            f"callable:{type(util).__name__}"
        trans = {"digest": digest(*(np.asarray(x) for x in tuple(ct))),
                 "parameters": list(self.transition_params.index)}
        family = self.hooks.transition_family
        if family is not None:
            trans["family"] = family.fingerprint()
        return {
            "name": self.name,
            "beta": self.beta,
            "states": {v.name: [_plain(x) for x in v.values] for v in self.space.variables},
            "actions": list(self.actions),
            "params": list(self.param_names),
            "feasible": digest(self.feasible),
            "utility": util_digest,
            "transitions": trans,
        }

    def replace(self, **changes) -> Model:
        """A copy of the model with some constructor arguments changed (``beta=...``,
        ``utility=...``, ``feasible=...``, ``transitions=...``, ``name=...``). New
        ``transitions`` drop the hooks' closed-form ``transition_jacobian`` (it differentiates
        the transition function replaced) unless ``hooks`` are given too."""
        args = dict(
            states=self.space, actions=self.actions, utility=self.utility,
            transitions=self._transition_fn or self._fixed_transitions, beta=self.beta,
            feasible=self.feasible, transition_params=self.transition_params,
            true_params=self.true_params, name=self.name, anchor=self.anchor,
            hooks=self.hooks,
        )
        unknown = set(changes) - set(args)
        if unknown:
            raise TypeError(f"Model.replace got unknown argument(s) {sorted(unknown)}; "
                            f"accepted: {sorted(args)}")
        new_fn = "transitions" in changes and \
            changes["transitions"] is not (self._transition_fn or self._fixed_transitions)
        if new_fn and "hooks" not in changes and self.hooks.transition_jacobian is not None:
            # the declared Jacobian is that of the transition function being replaced
            args["hooks"] = self.hooks.replace(transition_jacobian=None)
        args.update(changes)
        return Model(**args)



def _plain(x):
    """A state value as a JSON-able Python scalar."""
    return x.item() if isinstance(x, np.generic) else x


def fingerprint_diff(expected: Mapping, actual: Mapping) -> list[str]:
    """Human-readable differences between two model fingerprints (empty when they agree).

    Parameters
    ----------
    expected, actual : mapping
        Fingerprints from :meth:`Model.fingerprint` (e.g. the one stored with results, and the
        one of the model given now).

    Returns
    -------
    list of str
        One line per difference, e.g. ``"beta: 0.95 vs 0.99"``.

    Examples
    --------
    >>> import ddc
    >>> fingerprint_diff(ddc.models.membership(beta=0.95).fingerprint(),
    ...                  ddc.models.membership().fingerprint())
    ['beta: 0.95 vs 0.99']
    """
    out = []
    for key in sorted(set(expected) | set(actual)):
        a, b = expected.get(key, "<missing>"), actual.get(key, "<missing>")
        if a == b:
            continue
        if key == "states" and isinstance(a, Mapping) and isinstance(b, Mapping):
            for var in sorted(set(a) | set(b), key=str):
                va, vb = a.get(var), b.get(var)
                if va is None or vb is None:
                    out.append(f"state variable {var!r}: "
                               f"{'absent' if va is None else 'present'} vs "
                               f"{'absent' if vb is None else 'present'}")
                elif va != vb:
                    out.append(f"state variable {var!r}: {len(va)} values "
                               f"{_short(va)} vs {len(vb)} values {_short(vb)}")
        elif key in ("feasible", "utility", "transitions"):
            out.append(f"{key}: the specifications differ")
        else:
            out.append(f"{key}: {a!r} vs {b!r}" if key != "beta" else f"beta: {a} vs {b}")
    return out


def _short(values: Sequence) -> str:
    vals = list(values)
    return str(vals) if len(vals) <= 6 else f"[{vals[0]!r}, ..., {vals[-1]!r}]"
