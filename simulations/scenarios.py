"""Counterfactual scenarios: composable changes to a model.

A scenario is a small frozen object with a ``name``, a one-line :meth:`~Scenario.describe` and
``apply(model) -> Model``, which returns a *new* model (the original is never modified) with the
same states, actions and parameters. :func:`simulations.counterfactual` solves the baseline and
every scenario model at the same parameters (and at every bootstrap draw of them).

- :class:`PriceChange`: a plan's price moves by ``delta`` dollars, in every market or some. The
  utility feature of the price coefficient is :math:`-P` where the price is paid, so the flow
  utility changes by :math:`-\\alpha_{price} \\, \\Delta P`; the new prices are kept in the
  scenario model's ``metadata`` so that revenue uses them.
- :class:`UtilityShift`: a known change of flow utility,
  :math:`u'(s, a) = u(s, a) + \\delta \\, 1[s \\in W, a \\in B]` (a new or better benefit
  for chosen states :math:`W` and actions :math:`B`).
- :class:`RemoveAction`: an action leaves the choice set (it stays feasible only where it is the
  sole feasible action, so that every state keeps a choice).
- :class:`Custom`: any user function ``model -> model`` (utilities, transitions, feasibility).
- :class:`Compose`: several scenarios applied in order.

:func:`default_scenarios` gives the four scenarios of ``MEMBERSHIP_MODEL.md``.

Identification (Kalouptsidi, Scott and Souza-Rodrigues 2021): with the flow utility of ``none``
normalized to zero, counterfactuals that change flow utilities by known amounts (prices, a
benefit) are identified; counterfactuals that change the choice set or the transitions depend on
that normalization. Every scenario states which kind it is in :attr:`Scenario.identification`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as _dc_replace

import numpy as np

from ddc.model import Model
from ddc.statespace import StateSpace
from ddc.utility import CallableUtility, LinearUtility

__all__ = [
    "Scenario",
    "PriceChange",
    "UtilityShift",
    "RemoveAction",
    "Custom",
    "Compose",
    "ShiftedUtility",
    "default_scenarios",
    "get_scenario",
    "resolve_scenarios",
    "video_users",
    "DEFAULT_SCENARIOS",
    "IDENTIFIED",
    "NORMALIZATION",
    "UNCLASSIFIED",
]

IDENTIFIED = "identified"
"""Identification class of a known change of flow utilities (prices, benefits): identified under
the normalization :math:`u(none) = 0`, and invariant to the choice of that normalization."""

NORMALIZATION = "depends on the normalization"
"""Identification class of a change of the choice set or the transitions: its result depends on
the normalization :math:`u(none) = 0`."""

UNCLASSIFIED = "not classified"
"""Identification class of a user function: depends on what it changes."""

_ORDER = {IDENTIFIED: 0, UNCLASSIFIED: 1, NORMALIZATION: 2}


class ShiftedUtility(CallableUtility):
    """A utility plus a fixed offset: :math:`u'(s, a; \\theta) = u(s, a; \\theta) + c(s, a)`.

    The derivatives in the parameters are the base utility's. It is a
    :class:`ddc.CallableUtility`, so estimators that need a utility linear in parameters (CCP,
    NPL) refuse it instead of silently ignoring the offset; it is meant for solving scenario
    models, not for estimation.

    Parameters
    ----------
    base : ddc.LinearUtility or ddc.CallableUtility
        The utility before the shift.
    offset : numpy.ndarray, shape (S, A)
        The shift :math:`c(s, a)`, in utils.
    """

    def __init__(self, base: LinearUtility | CallableUtility, offset: np.ndarray):
        offset = np.array(offset, dtype=np.float64)
        if offset.shape != tuple(base.shape):
            raise ValueError(f"the utility offset has shape {offset.shape}; the utility is "
                             f"defined on {tuple(base.shape)} (states, actions)")
        if not np.all(np.isfinite(offset)):
            s, a = np.argwhere(~np.isfinite(offset))[0]
            raise ValueError(f"the utility offset is not finite at state {s}, action {a}")
        offset.setflags(write=False)
        self.base = base
        self.offset = offset
        super().__init__(self._evaluate, base.names, tuple(base.shape), jacobian=base.jacobian)

    def _evaluate(self, theta: np.ndarray) -> np.ndarray:
        return self.base(theta) + self.offset

    def shifted(self, offset: np.ndarray) -> ShiftedUtility:
        """The same base with the offsets added."""
        return ShiftedUtility(self.base, self.offset + offset)

    def with_base(self, base: LinearUtility | CallableUtility) -> ShiftedUtility:
        """The same offset on another base utility."""
        return ShiftedUtility(base, self.offset)


def _shift_utility(utility, offset: np.ndarray):
    if isinstance(utility, ShiftedUtility):
        return utility.shifted(offset)
    return ShiftedUtility(utility, offset)


def _linear_base(utility) -> LinearUtility:
    base = utility.base if isinstance(utility, ShiftedUtility) else utility
    if not isinstance(base, LinearUtility):
        raise TypeError(
            f"PriceChange edits the price coefficient's features, which needs a utility linear "
            f"in parameters (ddc.LinearUtility); this model's utility is a "
            f"{type(base).__name__}. Write the change as Custom(fn) instead")
    return base


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
class PriceChange(Scenario):
    """A plan's price moves by ``delta`` dollars.

    The membership model's utility of a plan :math:`a` contains
    :math:`-\\alpha_{price} P_a(m)` where the price is paid (plan ``none`` or ``member``): the
    price coefficient's feature is :math:`-P_a(m)` there and 0 elsewhere. The scenario rewrites
    that feature with the new prices :math:`P_a(m) + \\Delta 1[m \\in M]` and stores them in
    ``metadata["prices_<plan>"]`` (revenue uses them). Other features, the states, transitions
    and the other plan are unchanged.

    Parameters
    ----------
    plan : str
        The action whose price changes (``"monthly"`` or ``"annual"``); the model must have
        ``metadata["prices_<plan>"]`` (one price per market).
    delta : float
        Change in dollars (``+2.0``: two dollars dearer).
    markets : sequence, optional
        Labels of the markets where the price changes; every market by default.
    param : str
        The price coefficient (``"alpha_price"``).
    name : str, optional
        Scenario name; ``"<plan>_price_<delta>"`` by default.

    Examples
    --------
    >>> import ddc
    >>> cf = PriceChange("monthly", 2.0).apply(ddc.models.membership())
    >>> cf.metadata["prices_monthly"].round(2).tolist()
    [16.99, 14.99, 18.99]
    """

    plan: str
    delta: float
    markets: tuple | None = None
    param: str = "alpha_price"
    name: str | None = None

    identification = IDENTIFIED

    def __post_init__(self) -> None:
        if not isinstance(self.plan, str):
            raise TypeError(f"PriceChange plan must be an action name such as 'monthly', got "
                            f"{self.plan!r}")
        try:
            delta = float(self.delta)
        except (TypeError, ValueError):
            raise TypeError(f"PriceChange delta must be a number of dollars, got "
                            f"{self.delta!r}") from None
        if not np.isfinite(delta):
            raise ValueError(f"PriceChange delta must be finite, got {self.delta!r}")
        object.__setattr__(self, "delta", delta)
        if self.markets is not None:
            markets = (self.markets,) if np.isscalar(self.markets) else tuple(self.markets)
            if not markets:
                raise ValueError("PriceChange markets is empty; leave it out (None) for every "
                                 "market")
            object.__setattr__(self, "markets", markets)
        if self.name is None:
            object.__setattr__(self, "name", f"{self.plan}_price_{delta:+g}")

    def describe(self) -> str:
        """E.g. ``"monthly price +$2.00 in every market"``."""
        sign = "+" if self.delta >= 0 else "-"
        where = ("every market" if self.markets is None else
                 ("market " if len(self.markets) == 1 else "markets ")
                 + ", ".join(str(m) for m in self.markets))
        return f"{self.plan} price {sign}${abs(self.delta):,.2f} in {where}"

    def apply(self, model: Model) -> Model:
        """The model with the new prices (features of :attr:`param` and ``metadata``)."""
        key = f"prices_{self.plan}"
        if key not in model.metadata:
            keys = sorted(k for k in model.metadata if str(k).startswith("prices_"))
            raise KeyError(f"PriceChange({self.plan!r}) needs model.metadata[{key!r}] (the "
                           f"plan's price by market); the model {model.name!r} has "
                           f"{keys or 'no prices'}")
        a = model.action_code(self.plan)
        base = _linear_base(model.utility)
        if self.param not in base.names:
            raise KeyError(f"PriceChange: the price coefficient {self.param!r} is not a utility "
                           f"parameter of the model; its parameters are {list(base.names)}")
        k = list(base.names).index(self.param)
        space = model.space
        if "market" not in space.names:
            raise ValueError(f"PriceChange needs a state variable 'market' (prices are by "
                             f"market); the model has {space.names}")
        market = space.code_of("market")
        market_var = space.variable("market")
        old = np.asarray(model.metadata[key], dtype=float).ravel()
        if old.shape != (market_var.size,):
            raise ValueError(f"model.metadata[{key!r}] has {old.size} prices; the model has "
                             f"{market_var.size} markets")
        X = base.features
        feature = X[:, a, k]
        paying = feature != 0.0
        if "plan" in space.names:
            plans = list(space.variable("plan").values)
            paying = np.isin(space.values_of("plan"), [p for p in ("none", "member")
                                                       if p in plans])
        if not np.allclose(feature[paying], -old[market[paying]], rtol=0, atol=1e-9) \
                or np.any(feature[~paying] != 0.0):
            raise ValueError(
                f"PriceChange expects the feature of {self.param!r} for action {self.plan!r} to "
                f"be -price[market] where the price is paid and 0 elsewhere (the membership "
                f"model's layout), with the prices of model.metadata[{key!r}] = "
                f"{old.tolist()}; this model's features differ. Write the change as Custom(fn)")
        change = np.zeros(market_var.size)
        if self.markets is None:
            change[:] = self.delta
        else:
            for label in self.markets:
                try:
                    change[market_var.code(label)] = self.delta
                except KeyError as exc:
                    raise KeyError(f"PriceChange markets: {exc.args[0]}") from None
        new = old + change
        if np.any(new < 0):
            m = int(np.flatnonzero(new < 0)[0])
            raise ValueError(f"PriceChange would make the {self.plan} price in market "
                             f"{market_var.values[m]!r} negative ({old[m]:g} {self.delta:+g} = "
                             f"{new[m]:g})")
        X_new = X.copy()
        X_new[:, a, k] = np.where(paying, -new[market], 0.0)
        linear = LinearUtility(X_new, base.names)
        utility = (model.utility.with_base(linear) if isinstance(model.utility, ShiftedUtility)
                   else linear)
        metadata = dict(model.metadata)
        metadata[key] = new
        return model.replace(utility=utility, metadata=metadata)


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
        What the shift means (e.g. ``"+0.1 utils to video users"``), used by
        :meth:`describe`.

    Examples
    --------
    A better video benefit: +0.1 utils in every state with ``video = 1``, for both plans
    (locked annual months included).

    >>> import ddc
    >>> model = ddc.models.membership()
    >>> shift = UtilityShift(0.1, where=lambda space: space.values_of("video") == 1,
    ...                      actions=("monthly", "annual"))
    >>> cf = shift.apply(model)
    >>> float((cf.utilities(model.true_params) - model.utilities(model.true_params)).sum())
    23.4
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
        S, A = model.n_states, model.n_actions
        mask = _state_mask(self.where, model.space, A, what)
        chosen = np.zeros(A, dtype=bool)
        chosen[_action_codes(model, self.actions, what)] = True
        mask &= chosen[None, :]
        delta = np.asarray(self.delta, dtype=float)
        if delta.shape == (S,):
            delta = delta[:, None]
        elif delta.shape not in ((), (S, A)):
            raise ValueError(f"{what}: delta must be a number or an array of shape ({S},) or "
                             f"({S}, {A}); got {delta.shape}")
        if not np.all(np.isfinite(delta)):
            raise ValueError(f"{what}: delta must be finite")
        offset = np.where(mask, delta, 0.0)
        return model.replace(utility=_shift_utility(model.utility, offset))


@dataclass(frozen=True, eq=False)
class RemoveAction(Scenario):
    """An action leaves the choice set.

    The action becomes infeasible in every chosen state where another action remains feasible
    (it stays where it is the only feasible action, so that every state keeps a choice). In the
    membership model, ``RemoveAction("monthly")`` drops the monthly plan everywhere; the result
    depends on the normalization :math:`u(none) = 0`.

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
    >>> both = Compose(PriceChange("monthly", 2.0), RemoveAction("annual"), name="monthly_only")
    >>> both.describe()
    'monthly price +$2.00 in every market; action annual removed from the choice set'
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


def video_users(space: StateSpace) -> np.ndarray:
    """States of video users: ``video`` at its top level (``video = 1`` on the default grid).

    Parameters
    ----------
    space : ddc.StateSpace
        The membership model's state space.

    Returns
    -------
    numpy.ndarray of bool, shape (S,)
    """
    var = space.variable("video")
    return space.code_of("video") == var.size - 1


DEFAULT_SCENARIOS = ("monthly_price_up", "annual_discount", "no_monthly", "video_benefit")
"""Names of the default scenarios of ``MEMBERSHIP_MODEL.md``, in report order."""


def default_scenarios() -> list[Scenario]:
    """The four scenarios of ``MEMBERSHIP_MODEL.md``.

    - ``monthly_price_up``: the monthly price +$2 in every market;
    - ``annual_discount``: the annual price -$20 in every market;
    - ``no_monthly``: the monthly plan removed everywhere;
    - ``video_benefit``: +0.1 utils (:math:`0.1 / \\alpha_{price}` = $2 at the truth) per month
      to members who are video users: added to the benefit :math:`b` when ``video = 1``, i.e. to
      ``monthly`` and ``annual`` in those states, locked annual months included.

    Returns
    -------
    list of Scenario
    """
    return [
        PriceChange("monthly", 2.0, name="monthly_price_up"),
        PriceChange("annual", -20.0, name="annual_discount"),
        RemoveAction("monthly", name="no_monthly"),
        UtilityShift(0.1, where=video_users, actions=("monthly", "annual"),
                     name="video_benefit",
                     description="+0.1 utils per month to members who are video users "
                                 "(monthly and annual, locked months included)"),
    ]


def get_scenario(name: str) -> Scenario:
    """A default scenario by name.

    Parameters
    ----------
    name : str
        One of :data:`DEFAULT_SCENARIOS`.

    Returns
    -------
    Scenario

    Raises
    ------
    KeyError
        For another name; the message lists the accepted ones.
    """
    for s in default_scenarios():
        if s.name == name:
            return s
    raise KeyError(f"unknown scenario {name!r}; the built-in scenarios are "
                   f"{list(DEFAULT_SCENARIOS)} (or 'default' for all four)")


def resolve_scenarios(scenarios: str | Scenario | Iterable | Mapping) -> list[Scenario]:
    """Normalize the ``scenarios`` argument of :func:`simulations.counterfactual`.

    Parameters
    ----------
    scenarios : str, Scenario, sequence or mapping
        ``"default"`` (the four scenarios of :func:`default_scenarios`), a built-in scenario's
        name, a :class:`Scenario`, a sequence of these, or a mapping from names to scenarios
        (which renames them).

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
    out: list[Scenario] = []
    for item in items:
        if isinstance(item, str):
            out.extend(default_scenarios() if item == "default" else [get_scenario(item)])
        elif isinstance(item, Scenario):
            out.append(item)
        else:
            raise TypeError(f"a scenario must be a Scenario or a built-in name "
                            f"{list(DEFAULT_SCENARIOS)}; got {type(item).__name__}")
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
