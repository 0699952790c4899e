"""Counterfactual scenarios: composable transformations of a model.

A scenario is a small frozen object with a ``name``, a one-line :meth:`~Scenario.describe` and
``apply(model) -> Model``, which returns a *new* model (the original is never modified) with the
same states, actions and parameters. The counterfactual engine (:func:`simulations.counterfactual`)
solves the baseline and every scenario model at the same parameters (and at every bootstrap draw
of them). Scenarios live in the model layer so that applications (:mod:`ddc.models`) can declare
their default scenarios (:attr:`ddc.Hooks.default_scenarios`); :mod:`simulations` re-exports them.

- :class:`ParameterChange`: a utility parameter set to a value, moved by ``delta`` or scaled by
  ``factor`` (e.g. an entry cost 50% higher), at every parameter draw.
- :class:`CovariateChange`: a covariate of a utility that is linear in parameters moves by
  ``delta`` in chosen states and actions, :math:`x_k'(s, a) = x_k(s, a) + \\delta` (a price, a
  distance, a tax); the flow utility changes by :math:`\\theta_k \\delta` there.
- :class:`UtilityShift`: a known change of flow utility,
  :math:`u'(s, a) = u(s, a) + \\delta \\, 1[s \\in W, a \\in B]`.
- :class:`RemoveAction`: an action leaves the choice set (it stays feasible only where it is the
  sole feasible action, so that every state keeps a choice).
- :class:`TransitionChange`: one factor of the transitions replaced, or modified by a function.
- :class:`Custom`: any user function ``model -> model``.
- :class:`Compose`: several scenarios applied in order.

Identification (Kalouptsidi, Scott and Souza-Rodrigues 2021): the data identify flow utilities
only relative to a normalization (the anchor action's utility set to zero). Counterfactuals that
change flow utilities by known amounts are identified and do not depend on that normalization;
counterfactuals that change the choice set or the transitions do. Every scenario states which kind
it is in :attr:`Scenario.identification`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as _dc_replace

import numpy as np

from ddc.model import Model
from ddc.statespace import StateSpace
from ddc.transitions import Factor, FactoredTransitions
from ddc.utility import CallableUtility, LinearUtility

__all__ = [
    "Scenario",
    "ParameterChange",
    "CovariateChange",
    "UtilityShift",
    "RemoveAction",
    "TransitionChange",
    "Custom",
    "Compose",
    "ShiftedUtility",
    "resolve_scenarios",
    "identification_note",
    "IDENTIFIED",
    "NORMALIZATION",
    "UNCLASSIFIED",
]

IDENTIFIED = "identified"
"""Identification class of a known change of flow utilities (prices, benefits, costs): identified
under the normalization of the anchor action's utility, and invariant to that normalization."""

NORMALIZATION = "depends on the normalization"
"""Identification class of a change of the choice set or the transitions: its result depends on
the normalization of the anchor action's utility."""

UNCLASSIFIED = "not classified"
"""Identification class of a user function: depends on what it changes."""

_ORDER = {IDENTIFIED: 0, UNCLASSIFIED: 1, NORMALIZATION: 2}


def identification_note(model: Model) -> str:
    """The identification note of a counterfactual report on ``model``.

    Parameters
    ----------
    model : ddc.Model
        The model (its anchor action names the normalization).

    Returns
    -------
    str
    """
    norm = (f"u({model.anchor}) = 0" if model.anchor is not None else
            "the model's normalization of utility (one action's utility fixed)")
    return (
        f"Changes of flow utility by known amounts (prices, covariates, benefits, parameter "
        f"values) are identified under the normalization {norm}: their effects do not depend "
        f"on which normalization is used. Changes of the choice set or of the transitions "
        f"depend on that normalization: the data identify utilities only relative to it, and "
        f"such a counterfactual takes it literally (Kalouptsidi, Scott and Souza-Rodrigues "
        f"2021)."
    )


class ShiftedUtility(CallableUtility):
    """A utility with its parameters mapped and a fixed offset added.

    .. math:: u'(s, a; \\theta) = u(s, a; m \\odot \\theta + c) + o(s, a)

    with a per-parameter scale :math:`m` (ones by default), shift :math:`c` (zeros) and offset
    :math:`o` (zeros). The derivatives in the parameters follow by the chain rule. It is a
    :class:`ddc.CallableUtility`, so estimators that need a utility linear in parameters (CCP,
    NPL) refuse it instead of silently ignoring the change; it is meant for solving scenario
    models, not for estimation.

    Parameters
    ----------
    base : ddc.LinearUtility or ddc.CallableUtility
        The utility before the change.
    offset : numpy.ndarray, shape (S, A), optional
        The offset :math:`o(s, a)`, in utils.
    scale, shift : numpy.ndarray, shape (K,), optional
        The parameter map :math:`\\theta \\mapsto m \\odot \\theta + c`.
    """

    def __init__(self, base: LinearUtility | CallableUtility, offset: np.ndarray | None = None,
                 scale: np.ndarray | None = None, shift: np.ndarray | None = None):
        K = len(base.names)
        offset = np.zeros(tuple(base.shape)) if offset is None else \
            np.array(offset, dtype=np.float64)
        if offset.shape != tuple(base.shape):
            raise ValueError(f"the utility offset has shape {offset.shape}; the utility is "
                             f"defined on {tuple(base.shape)} (states, actions)")
        if not np.all(np.isfinite(offset)):
            s, a = np.argwhere(~np.isfinite(offset))[0]
            raise ValueError(f"the utility offset is not finite at state {s}, action {a}")
        scale = np.ones(K) if scale is None else np.array(scale, dtype=np.float64)
        shift = np.zeros(K) if shift is None else np.array(shift, dtype=np.float64)
        for name, arr in (("scale", scale), ("shift", shift)):
            if arr.shape != (K,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"the parameter map's {name} must be {K} finite numbers; got "
                                 f"{arr!r}")
        for arr in (offset, scale, shift):
            arr.setflags(write=False)
        self.base, self.offset, self.scale, self.shift = base, offset, scale, shift
        super().__init__(self._evaluate, base.names, tuple(base.shape),
                         jacobian=self._jacobian_of)

    def mapped(self, theta: np.ndarray) -> np.ndarray:
        """:math:`m \\odot \\theta + c`: the base utility's parameters; ``theta`` (K,) or
        (D, K)."""
        return np.asarray(theta, dtype=np.float64) * self.scale + self.shift

    def _evaluate(self, theta: np.ndarray) -> np.ndarray:
        return self.base(self.mapped(theta)) + self.offset

    def _jacobian_of(self, theta: np.ndarray) -> np.ndarray:
        return self.base.jacobian(self.mapped(theta)) * self.scale[None, None, :]

    def shifted(self, offset: np.ndarray) -> ShiftedUtility:
        """The same utility with ``offset`` added."""
        return ShiftedUtility(self.base, self.offset + offset, self.scale, self.shift)

    def with_base(self, base: LinearUtility | CallableUtility) -> ShiftedUtility:
        """The same change on another base utility."""
        return ShiftedUtility(base, self.offset, self.scale, self.shift)

    def remapped(self, scale: np.ndarray, shift: np.ndarray) -> ShiftedUtility:
        """The parameter map applied first: :math:`u''(\\theta) = u'(m_2 \\odot \\theta +
        c_2)`."""
        return ShiftedUtility(self.base, self.offset, self.scale * scale,
                              self.scale * shift + self.shift)

    def batch(self, theta: np.ndarray) -> np.ndarray:
        """Utilities (S, A, D) at the parameter draws ``theta`` (D, K), without a Python loop
        over the draws when the base is linear."""
        return utilities_batch(self, theta)


def utilities_batch(utility: LinearUtility | CallableUtility, theta: np.ndarray) -> np.ndarray:
    """Flow utilities (S, A, D) at the parameter vectors ``theta`` (D, K).

    One matrix product for a :class:`ddc.LinearUtility` (or a :class:`ShiftedUtility` of one),
    one call per draw otherwise.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if isinstance(utility, ShiftedUtility) and isinstance(utility.base, LinearUtility):
        return (np.tensordot(utility.base.features, utility.mapped(theta).T, axes=(2, 0))
                + utility.offset[:, :, None])
    if isinstance(utility, LinearUtility):
        return np.tensordot(utility.features, theta.T, axes=(2, 0))
    return np.stack([utility(th) for th in theta], axis=2)


def _shift_utility(utility, offset: np.ndarray):
    if isinstance(utility, ShiftedUtility):
        return utility.shifted(offset)
    return ShiftedUtility(utility, offset)


def _linear_base(utility, what: str) -> LinearUtility:
    base = utility.base if isinstance(utility, ShiftedUtility) else utility
    if not isinstance(base, LinearUtility):
        raise TypeError(
            f"{what} edits a covariate of the utility, which needs a utility linear in "
            f"parameters (ddc.LinearUtility); this model's utility is a "
            f"{type(base).__name__}. Write the change as Custom(fn) instead")
    return base


def _with_linear_base(model: Model, linear: LinearUtility):
    return (model.utility.with_base(linear) if isinstance(model.utility, ShiftedUtility)
            else linear)


def _state_mask(where, space: StateSpace, n_actions: int, what: str) -> np.ndarray:
    """``where`` as a boolean mask of shape (S, A) (a state mask is broadcast over actions)."""
    S = space.size
    if where is None:
        return np.ones((S, n_actions), dtype=bool)
    mask = where(space) if callable(where) else where
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"{what}: `where` must give a boolean mask (a function of the state "
                        f"space returning one, or the mask itself); got dtype {mask.dtype}")
    if mask.shape == (S,):
        return np.repeat(mask[:, None], n_actions, axis=1)
    if mask.shape == (S, n_actions):
        return mask.copy()
    raise ValueError(f"{what}: `where` must give a mask of shape ({S},) (states) or "
                     f"({S}, {n_actions}) (states, actions); got {mask.shape}")


def _action_codes(model: Model, actions, what: str) -> list[int]:
    if actions is None:
        return list(range(model.n_actions))
    if isinstance(actions, (str, int, np.integer)):
        actions = (actions,)
    try:
        return [model.action_code(a) for a in actions]
    except KeyError as exc:
        raise KeyError(f"{what}: {exc.args[0]}") from None


def _masked_delta(model: Model, delta, where, actions, what: str) -> np.ndarray:
    """:math:`\\delta(s, a) 1[s \\in W] 1[a \\in B]`, shape (S, A): ``delta`` a number, an (S,)
    or an (S, A) array, ``where`` the states :math:`W`, ``actions`` the actions :math:`B`
    (all when None)."""
    S, A = model.n_states, model.n_actions
    mask = _state_mask(where, model.space, A, what)
    chosen = np.zeros(A, dtype=bool)
    chosen[_action_codes(model, actions, what)] = True
    mask &= chosen[None, :]
    delta = np.asarray(delta, dtype=float)
    if delta.shape == (S,):
        delta = delta[:, None]
    elif delta.shape not in ((), (S, A)):
        raise ValueError(f"{what}: delta must be a number or an array of shape ({S},) or "
                         f"({S}, {A}); got {delta.shape}")
    if not np.all(np.isfinite(delta)):
        raise ValueError(f"{what}: delta must be finite")
    return np.where(mask, delta, 0.0)


def _check_same_shape(before: Model, after: Model, what: str) -> None:
    if not isinstance(after, Model):
        raise TypeError(f"{what} must return a ddc.Model, got {type(after).__name__}")
    if after.n_states != before.n_states or after.space.names != before.space.names:
        raise ValueError(f"{what} changed the state space ({before.space.names}, "
                         f"{before.n_states} states -> {after.space.names}, {after.n_states}); "
                         "a scenario must keep the states so that welfare can be compared")
    if after.actions != before.actions:
        raise ValueError(f"{what} changed the actions {list(before.actions)} -> "
                         f"{list(after.actions)}; remove an action with RemoveAction instead")
    if after.param_names != before.param_names:
        raise ValueError(f"{what} changed the parameters {before.param_names} -> "
                         f"{after.param_names}; a scenario is solved at the baseline's "
                         "parameters")


def _finite_number(value, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return out


@dataclass(frozen=True, eq=False)
class Scenario:
    """Base class of counterfactual scenarios.

    Subclasses define :meth:`apply` and :meth:`describe` and set :attr:`identification`.
    """

    #: Identification class: :data:`IDENTIFIED`, :data:`NORMALIZATION` or :data:`UNCLASSIFIED`.
    identification = UNCLASSIFIED

    def apply(self, model: Model) -> Model:  # pragma: no cover - abstract
        """The scenario model: a new :class:`ddc.Model` (``model`` is not modified)."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        """One line saying what the scenario changes."""
        raise NotImplementedError

    def renamed(self, name: str) -> Scenario:
        """The same scenario under another name."""
        return _dc_replace(self, name=name)

    def __str__(self) -> str:
        return f"{self.name}: {self.describe()}"


@dataclass(frozen=True, eq=False)
class ParameterChange(Scenario):
    """A utility parameter set to a value, moved, or scaled, at every parameter draw.

    .. math:: \\theta_k' = v, \\qquad \\theta_k' = \\theta_k + \\delta \\qquad\\text{or}\\qquad
              \\theta_k' = f \\, \\theta_k

    (exactly one of ``value``, ``delta``, ``factor``). The scenario model maps its parameters
    before evaluating the utility (:class:`ShiftedUtility`), so that at a bootstrap draw
    :math:`\\theta_d` the change applies to that draw (an entry cost 50% higher is 1.5 times the
    drawn entry cost).

    Parameters
    ----------
    param : str
        A utility parameter.
    value, delta, factor : float, optional
        The new value, the change, or the factor.
    name : str, optional
        Scenario name; e.g. ``"FC_x1.5"`` by default.

    Examples
    --------
    >>> import numpy as np, ddc
    >>> X = np.zeros((2, 2, 1)); X[:, 1, 0] = -1.0
    >>> m = ddc.Model([ddc.StateVariable("x", (0, 1))], ["out", "in"],
    ...               ddc.LinearUtility(X, ["cost"]),
    ...               ddc.FactoredTransitions([ddc.Factor("x", np.full((2, 2), 0.5))]), beta=0.9)
    >>> ParameterChange("cost", factor=1.5).apply(m).utilities([2.0])[:, 1].tolist()
    [-3.0, -3.0]
    """

    param: str
    value: float | None = None
    delta: float | None = None
    factor: float | None = None
    name: str | None = None

    identification = IDENTIFIED

    def __post_init__(self) -> None:
        given = [k for k in ("value", "delta", "factor") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"ParameterChange({self.param!r}) takes exactly one of value=, "
                             f"delta=, factor=; got {given or 'none'}")
        kind = given[0]
        object.__setattr__(self, kind, _finite_number(getattr(self, kind),
                                                      f"ParameterChange {kind}"))
        if self.name is None:
            x = getattr(self, kind)
            label = {"value": f"={x:g}", "delta": f"{x:+g}", "factor": f"_x{x:g}"}[kind]
            object.__setattr__(self, "name", f"{self.param}{label}")

    def describe(self) -> str:
        """E.g. ``"FC multiplied by 1.5"``."""
        if self.value is not None:
            return f"{self.param} set to {self.value:g}"
        if self.delta is not None:
            return f"{self.param} changed by {self.delta:+g}"
        return f"{self.param} multiplied by {self.factor:g}"

    def apply(self, model: Model) -> Model:
        """The model whose utility maps :attr:`param` as asked."""
        names = model.utility_params
        if self.param not in names:
            where = ("a transition parameter; change transitions with TransitionChange"
                     if self.param in model.param_names else "not a parameter of the model")
            raise KeyError(f"ParameterChange: {self.param!r} is {where}; the utility "
                           f"parameters are {names}")
        k = names.index(self.param)
        scale, shift = np.ones(len(names)), np.zeros(len(names))
        if self.value is not None:
            scale[k], shift[k] = 0.0, self.value
        elif self.delta is not None:
            shift[k] = self.delta
        else:
            scale[k] = self.factor
        u = model.utility
        utility = (u.remapped(scale, shift) if isinstance(u, ShiftedUtility)
                   else ShiftedUtility(u, scale=scale, shift=shift))
        return model.replace(utility=utility)


@dataclass(frozen=True, eq=False)
class CovariateChange(Scenario):
    """A covariate of a linear utility moves by ``delta`` in chosen states and actions.

    With :math:`u(s, a; \\theta) = \\sum_k x_k(s, a) \\theta_k`, the covariate of parameter
    :math:`k` becomes

    .. math:: x_k'(s, a) = x_k(s, a) + \\delta(s, a) \\, 1[s \\in W] \\, 1[a \\in B],

    so the flow utility changes by :math:`\\theta_k \\delta` there (at every parameter draw).
    Prices are the usual example: with the money parameter's covariate :math:`-p`, a price rise
    of :math:`\\Delta` is ``CovariateChange(money_param, -Δ, actions=..., where=...)``.

    Parameters
    ----------
    param : str
        The utility parameter whose covariate changes.
    delta : float or numpy.ndarray
        The change of the covariate: a number, or an array of shape (S,) or (S, A).
    actions : str or sequence of str, optional
        The actions :math:`B` (names or codes); every action by default.
    where : callable or numpy.ndarray of bool, optional
        The states :math:`W`: a function of the :class:`ddc.StateSpace` returning a boolean
        mask of shape (S,) or (S, A), or the mask itself; every state by default.
    name : str, optional
        Scenario name; ``"<param>_covariate_<delta>"`` by default.
    description : str, optional
        What the change means, for :meth:`describe`.
    """

    param: str
    delta: float | np.ndarray
    actions: str | Sequence[str] | None = None
    where: Callable[[StateSpace], np.ndarray] | np.ndarray | None = None
    name: str | None = None
    description: str | None = None

    identification = IDENTIFIED

    def __post_init__(self) -> None:
        if np.ndim(self.delta) == 0:
            object.__setattr__(self, "delta", _finite_number(self.delta,
                                                             "CovariateChange delta"))
        if self.name is None:
            amount = f"{self.delta:+g}" if np.ndim(self.delta) == 0 else "shift"
            object.__setattr__(self, "name", f"{self.param}_covariate_{amount}")

    def describe(self) -> str:
        """The description given, else a summary of the change."""
        if self.description:
            return self.description
        amount = (f"{float(self.delta):+g}" if np.ndim(self.delta) == 0
                  else "a state-dependent amount")
        acts = ("every action" if self.actions is None else
                "action(s) " + ", ".join(str(a) for a in np.atleast_1d(self.actions)))
        states = "every state" if self.where is None else "the chosen states"
        return f"covariate of {self.param} changed by {amount} for {acts} in {states}"

    def change(self, model: Model) -> np.ndarray:
        """The change :math:`\\delta(s, a) 1[s \\in W] 1[a \\in B]` of the covariate, (S, A)."""
        what = f"CovariateChange {self.name!r}"
        return _masked_delta(model, self.delta, self.where, self.actions, what)

    def apply(self, model: Model) -> Model:
        """The model with the covariate changed in its :class:`ddc.LinearUtility`."""
        what = f"CovariateChange {self.name!r}"
        base = _linear_base(model.utility, what)
        if self.param not in base.names:
            raise KeyError(f"{what}: {self.param!r} is not a utility parameter of the model; "
                           f"its utility parameters are {list(base.names)}")
        k = list(base.names).index(self.param)
        X = base.features.copy()
        X[:, :, k] += self.change(model)
        return model.replace(utility=_with_linear_base(model, LinearUtility(X, base.names)))


@dataclass(frozen=True, eq=False)
class UtilityShift(Scenario):
    """A known change of flow utility in chosen states and actions.

    .. math:: u'(s, a; \\theta) = u(s, a; \\theta) + \\delta(s, a) \\, 1[s \\in W] \\,
              1[a \\in B]

    Parameters
    ----------
    delta : float or numpy.ndarray
        The change in utils: a number, or an array of shape (S,) or (S, A).
    where : callable or numpy.ndarray of bool, optional
        The states :math:`W`: a function of the :class:`ddc.StateSpace` returning a boolean
        mask of shape (S,) or (S, A), or the mask itself; every state by default.
    actions : str or sequence of str, optional
        The actions :math:`B` (names or codes); every action by default (the anchor included:
        a shift of every state and action is a lump sum).
    name : str, optional
        Scenario name; ``"utility_shift"`` by default.
    description : str, optional
        What the shift means (e.g. ``"+0.1 utils to users of a benefit"``), used by
        :meth:`describe`.

    Examples
    --------
    +0.5 utils to the action ``in`` in the states where ``x = 1``:

    >>> import numpy as np, ddc
    >>> X = np.zeros((2, 2, 1)); X[:, 1, 0] = 1.0
    >>> m = ddc.Model([ddc.StateVariable("x", (0, 1))], ["out", "in"],
    ...               ddc.LinearUtility(X, ["theta"]),
    ...               ddc.FactoredTransitions([ddc.Factor("x", np.full((2, 2), 0.5))]), beta=0.9)
    >>> cf = UtilityShift(0.5, where=lambda space: space.values_of("x") == 1,
    ...                   actions="in").apply(m)
    >>> (cf.utilities([1.0]) - m.utilities([1.0])).tolist()
    [[0.0, 0.0], [0.0, 0.5]]
    """

    delta: float | np.ndarray
    where: Callable[[StateSpace], np.ndarray] | np.ndarray | None = None
    actions: str | Sequence[str] | None = None
    name: str | None = "utility_shift"
    description: str | None = None

    identification = IDENTIFIED

    def describe(self) -> str:
        """The description given, else a summary of the shift."""
        if self.description:
            return self.description
        if np.ndim(self.delta) == 0:
            amount = f"{float(self.delta):+g} utils"
        else:
            amount = "a state-dependent shift of utility"
        acts = ("every action" if self.actions is None else
                "action(s) " + ", ".join(str(a) for a in np.atleast_1d(self.actions)))
        if self.where is None:
            states = "every state"
        elif callable(self.where) and getattr(self.where, "__name__", "<lambda>") != "<lambda>":
            states = f"the states where {self.where.__name__}"
        else:
            states = "the chosen states"
        return f"{amount} to {acts} in {states}"

    def apply(self, model: Model) -> Model:
        """The model with the offset added to its utility."""
        what = f"UtilityShift {self.name!r}"
        offset = _masked_delta(model, self.delta, self.where, self.actions, what)
        return model.replace(utility=_shift_utility(model.utility, offset))


@dataclass(frozen=True, eq=False)
class RemoveAction(Scenario):
    """An action leaves the choice set.

    The action becomes infeasible in every chosen state where another action remains feasible
    (it stays where it is the only feasible action, so that every state keeps a choice). The
    result depends on the normalization of the anchor action's utility.

    Parameters
    ----------
    action : str
        The action (name or code).
    where : callable or numpy.ndarray of bool, optional
        Restrict the removal to these states (as in :class:`UtilityShift`); every state by
        default.
    name : str, optional
        Scenario name; ``"no_<action>"`` by default.
    """

    action: str
    where: Callable[[StateSpace], np.ndarray] | np.ndarray | None = None
    name: str | None = None

    identification = NORMALIZATION

    def __post_init__(self) -> None:
        if self.name is None:
            object.__setattr__(self, "name", f"no_{self.action}")

    def describe(self) -> str:
        """E.g. ``"action monthly removed from the choice set"``."""
        where = "" if self.where is None else " in the chosen states"
        return f"action {self.action} removed from the choice set{where}"

    def apply(self, model: Model) -> Model:
        """The model with the reduced feasibility mask."""
        what = f"RemoveAction {self.name!r}"
        try:
            a = model.action_code(self.action)
        except KeyError as exc:
            raise KeyError(f"{what}: {exc.args[0]}") from None
        mask = _state_mask(self.where, model.space, model.n_actions, what)[:, a]
        feasible = model.feasible.copy()
        others = np.delete(feasible, a, axis=1).any(axis=1)
        feasible[:, a] &= ~(mask & others)
        return model.replace(feasible=feasible)


@dataclass(frozen=True, eq=False)
class Custom(Scenario):
    """A user-defined change: any function ``model -> model``.

    The function may change utilities (e.g. ``model.replace(utility=...)``), transitions or
    feasibility, but must keep the states, actions and parameters (checked).

    Parameters
    ----------
    function : callable
        ``function(model) -> ddc.Model``.
    name : str
        Scenario name.
    description : str, optional
        What the function does, for the report.
    identification : str
        Its identification class (:data:`UNCLASSIFIED` by default; set :data:`IDENTIFIED` for a
        known change of flow utilities, :data:`NORMALIZATION` for a change of transitions or of
        the choice set).
    """

    function: Callable[[Model], Model]
    name: str = "custom"
    description: str | None = None
    identification: str = UNCLASSIFIED

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"Custom needs a function model -> model, got "
                            f"{type(self.function).__name__}")
        if self.identification not in _ORDER:
            raise ValueError(f"Custom identification must be one of {list(_ORDER)}, got "
                             f"{self.identification!r}")

    def describe(self) -> str:
        """The description given, else the function's name."""
        return self.description or f"user function {getattr(self.function, '__name__', '?')}"

    def apply(self, model: Model) -> Model:
        """``function(model)``, checked to keep states, actions and parameters."""
        out = self.function(model)
        _check_same_shape(model, out, f"Custom scenario {self.name!r}")
        return out


@dataclass(frozen=True, eq=False, init=False)
class Compose(Scenario):
    """Several scenarios applied in order.

    Parameters
    ----------
    *parts : Scenario
        The scenarios, applied left to right.
    name : str, optional
        Scenario name; the parts' names joined by ``"+"`` by default.

    Examples
    --------
    >>> both = Compose(ParameterChange("FC", factor=1.5), RemoveAction("out"), name="stay_in")
    >>> both.describe()
    'FC multiplied by 1.5; action out removed from the choice set'
    """

    parts: tuple = field(default=())
    name: str | None = None

    def __init__(self, *parts: Scenario, name: str | None = None):
        if len(parts) == 1 and isinstance(parts[0], (list, tuple)):
            parts = tuple(parts[0])
        if not parts:
            raise ValueError("Compose needs at least one scenario")
        bad = [p for p in parts if not isinstance(p, Scenario)]
        if bad:
            raise TypeError(f"Compose takes Scenario objects, got {type(bad[0]).__name__}")
        object.__setattr__(self, "parts", tuple(parts))
        object.__setattr__(self, "name", name or "+".join(str(p.name) for p in parts))

    @property
    def identification(self) -> str:  # type: ignore[override]
        """The least favourable class of the parts."""
        return max((p.identification for p in self.parts), key=_ORDER.__getitem__)

    def renamed(self, name: str) -> Compose:
        """The same composition under another name."""
        return Compose(*self.parts, name=name)

    def describe(self) -> str:
        """The parts' descriptions joined by ``"; "``."""
        return "; ".join(p.describe() for p in self.parts)

    def apply(self, model: Model) -> Model:
        """Each part applied in turn."""
        out = model
        for p in self.parts:
            out = p.apply(out)
        return out


@dataclass(frozen=True, eq=False)
class TransitionChange(Scenario):
    """One factor of the transitions replaced, or modified by a function.

    The model's transitions must be :class:`ddc.FactoredTransitions` (at the baseline's
    transition parameters); the factor that draws ``variable`` gets the new table (same
    conditioning, same shape), so the scenario model has fixed transitions.

    Parameters
    ----------
    variable : str
        The state variable whose factor changes.
    table : array_like, optional
        The new table (the factor's shape: one axis per conditioning name, then the next value).
    modify : callable, optional
        ``modify(table) -> table``: a function of the current table (exactly one of ``table``
        and ``modify``).
    name : str, optional
        Scenario name; ``"<variable>_transitions"`` by default.
    description : str, optional
        What the change means, for :meth:`describe`.

    Examples
    --------
    Demand twice as likely to stay where it is (a more persistent chain)::

        TransitionChange("demand", modify=lambda P: 0.5 * (P + np.eye(4)))
    """

    variable: str
    table: np.ndarray | None = None
    modify: Callable[[np.ndarray], np.ndarray] | None = None
    name: str | None = None
    description: str | None = None

    identification = NORMALIZATION

    def __post_init__(self) -> None:
        if (self.table is None) == (self.modify is None):
            raise ValueError("TransitionChange takes exactly one of table= and modify=")
        if self.modify is not None and not callable(self.modify):
            raise TypeError("TransitionChange modify must be a function table -> table")
        if self.name is None:
            object.__setattr__(self, "name", f"{self.variable}_transitions")

    def describe(self) -> str:
        """The description given, else which factor changes."""
        if self.description:
            return self.description
        how = "replaced" if self.table is not None else "modified"
        return f"transitions of {self.variable} {how}"

    def apply(self, model: Model) -> Model:
        """The model with the new factor (its transitions become fixed)."""
        what = f"TransitionChange {self.name!r}"
        trans = model.transitions()
        if not isinstance(trans, FactoredTransitions):
            raise TypeError(f"{what} needs factored transitions (ddc.FactoredTransitions); the "
                            f"model has {type(trans).__name__}. Write the change as Custom(fn)")
        names = [f.variable for f in trans.factors]
        if self.variable not in names:
            raise KeyError(f"{what}: no transition factor draws {self.variable!r}; the factors "
                           f"draw {names}")
        factors = []
        for f in trans.factors:
            if f.variable == self.variable:
                new = np.asarray(self.table if self.table is not None else
                                 self.modify(f.table.copy()), dtype=float)
                if new.shape != f.table.shape:
                    raise ValueError(f"{what}: the new table has shape {new.shape}; the factor "
                                     f"of {self.variable!r} given {f.given} has "
                                     f"{f.table.shape}")
                f = Factor(f.variable, new, given=f.given)
            factors.append(f)
        if len(model.transition_params):
            raise ValueError(f"{what}: the model's transitions depend on the parameters "
                             f"{list(model.transition_params.index)}; fix them first or write "
                             "the change as Custom(fn)")
        return model.replace(transitions=FactoredTransitions(factors))


def resolve_scenarios(scenarios: str | Scenario | Iterable | Mapping,
                      model: Model | None = None) -> list[Scenario]:
    """Normalize the ``scenarios`` argument of :func:`simulations.counterfactual`.

    Parameters
    ----------
    scenarios : str, Scenario, sequence or mapping
        ``"default"`` (the model's default scenarios, :attr:`ddc.Hooks.default_scenarios`), the
        name of one of them, a :class:`Scenario`, a sequence of these, or a mapping from names
        to scenarios (which renames them).
    model : ddc.Model, optional
        The model whose default scenarios names refer to.

    Returns
    -------
    list of Scenario
        With unique names, none called ``"baseline"``.
    """
    if isinstance(scenarios, str):
        items: list = [scenarios]
    elif isinstance(scenarios, Scenario):
        items = [scenarios]
    elif isinstance(scenarios, Mapping):
        items = []
        for key, s in scenarios.items():
            if not isinstance(s, Scenario):
                raise TypeError(f"scenarios[{key!r}] must be a Scenario, got "
                                f"{type(s).__name__}")
            items.append(s.renamed(str(key)))
    else:
        try:
            items = list(scenarios)
        except TypeError:
            raise TypeError(f"scenarios must be 'default', a scenario name, a Scenario, or a "
                            f"list or dict of them; got {type(scenarios).__name__}") from None
    defaults: list[Scenario] | None = None

    def declared() -> list[Scenario]:
        nonlocal defaults
        if defaults is None:
            hook = None if model is None else model.hooks.default_scenarios
            if hook is None:
                who = "no model given" if model is None else f"the model {model.name!r}"
                raise ValueError(f"{who} declares no default scenarios "
                                 "(ddc.Hooks.default_scenarios); pass Scenario objects, e.g. "
                                 "[ParameterChange(...), CovariateChange(...), Custom(fn)]")
            defaults = list(hook(model))
        return defaults

    out: list[Scenario] = []
    for item in items:
        if isinstance(item, str):
            if item == "default":
                out.extend(declared())
                continue
            found = [s for s in declared() if s.name == item]
            if not found:
                raise KeyError(f"unknown scenario {item!r}; the model {model.name!r} declares "
                               f"{[s.name for s in declared()]} (or 'default' for all of "
                               "them)")
            out.extend(found)
        elif isinstance(item, Scenario):
            out.append(item)
        else:
            raise TypeError(f"a scenario must be a Scenario or the name of a default scenario; "
                            f"got {type(item).__name__}")
    if not out:
        raise ValueError("no scenario given")
    names = [str(s.name) for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"scenario names must be unique; {dup} appear more than once (name "
                         "them with name=... or pass a dict)")
    if "baseline" in names:
        raise ValueError("'baseline' is reserved for the model as it is; rename that scenario")
    return out
