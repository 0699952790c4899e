"""Typed hooks through which an application tells the generic engine what is its own.

The engine (solver, estimators, counterfactual engine, report, command line) knows no application.
What is specific to one (which utility parameter is money, which outcomes a decision maker reads,
how the data name their columns, how the transitions are estimated from the data, which scenarios
are the default ones) is declared by the model through a :class:`Hooks` object:

.. code-block:: python

    hooks = ddc.Hooks(
        money=ddc.Money("alpha_price", unit="USD"),
        outcomes=(ddc.Outcome("share_in", share_in, "share of firms in the market"),),
        layout=ddc.DataLayout(id_col="firm", time_col="year"),
    )
    model = ddc.Model(..., hooks=hooks)

A user's model declares the same hooks as the built-in ones (``ddc.models.membership`` and
``ddc.models.rust_bus``); every hook is optional.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ddc.model import Model

__all__ = ["DataLayout", "Hooks", "Money", "Outcome", "OutcomeContext", "TransitionFamily"]


@dataclass(frozen=True)
class Money:
    """The utility parameter that turns utils into money.

    With flow utility :math:`u = \\dots - \\alpha \\, p`, one unit of money is worth
    :math:`\\alpha` utils, so a change of :math:`\\Delta` utils is worth :math:`\\Delta / \\alpha`
    units of money (the compensating variation in money).

    Parameters
    ----------
    param : str
        Name of the utility parameter :math:`\\alpha` (the marginal utility of money; it must be
        positive at the point where money values are computed).
    unit : str
        Currency or unit label used in reports (e.g. ``"USD"``).
    """

    param: str
    unit: str = "USD"

    def __post_init__(self) -> None:
        if not isinstance(self.param, str) or not self.param:
            raise TypeError(f"Money.param must be a parameter name (str); got {self.param!r}")

    def utils_per_unit(self, params: pd.Series) -> float:
        """:math:`\\alpha`, the utils one unit of money is worth at ``params``.

        Raises
        ------
        KeyError
            ``params`` has no entry :attr:`param`.
        ValueError
            :math:`\\alpha \\le 0` or not finite (money values would be meaningless).
        """
        if self.param not in params.index:
            raise KeyError(f"the money parameter {self.param!r} is not among the parameters "
                           f"{list(params.index)}")
        alpha = float(params[self.param])
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"the money parameter {self.param!r} is {alpha!r}; money values "
                             "need a positive, finite marginal utility of money")
        return alpha


@dataclass(frozen=True)
class OutcomeContext:
    """What an :class:`Outcome` function is given: a solved model and a state distribution.

    Attributes
    ----------
    model : Model
        The model (for a counterfactual, the scenario's model).
    params : pandas.Series
        Parameter values.
    ccp : numpy.ndarray, shape (S, A)
        Conditional choice probabilities :math:`\\pi(a \\mid s)` (zero where infeasible).
    value : numpy.ndarray, shape (S,)
        Ex-ante value function.
    distribution : numpy.ndarray, shape (S,)
        State distribution the outcome is averaged over (the stationary distribution of the
        controlled chain in a counterfactual report), summing to one.
    """

    model: Model
    params: pd.Series
    ccp: np.ndarray
    value: np.ndarray
    distribution: np.ndarray


@dataclass(frozen=True)
class Outcome:
    """A named scalar outcome of a solved model that reports show.

    Parameters
    ----------
    name : str
        Column name in reports (a Python identifier, e.g. ``"member_share"``).
    compute : callable
        ``compute(ctx: OutcomeContext) -> float``.
    description : str
        One line saying what it measures, for report legends.
    unit : str
        ``"share"`` (shown as a percentage), a currency such as ``"USD"``, or free text.
    """

    name: str
    compute: Callable[[OutcomeContext], float]
    description: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"an outcome name must be an identifier such as 'member_share'; "
                             f"got {self.name!r}")
        if not callable(self.compute):
            raise TypeError(f"Outcome {self.name!r}: compute must be callable")

    def __call__(self, ctx: OutcomeContext) -> float:
        return float(self.compute(ctx))


@dataclass(frozen=True)
class DataLayout:
    """How a model's panel data name their columns, and how the choice sample is formed.

    Parameters
    ----------
    id_col, time_col, action_col : str
        Default column names of the unit id, the period and the action.
    columns : mapping of str to str
        State variable -> column name, where they differ (default: the variable's name).
    drop_first_period : bool
        Leave each unit's first period out of the choice likelihood (condition on it), as Rust
        (1987) does for the bus data.
    """

    id_col: str = "customer_id"
    time_col: str = "period"
    action_col: str = "action"
    columns: Mapping[str, str] = field(default_factory=dict)
    drop_first_period: bool = False

    def __post_init__(self) -> None:
        for attr in ("id_col", "time_col", "action_col"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value:
                raise TypeError(f"DataLayout.{attr} must be a non-empty column name; got "
                                f"{value!r}")
        object.__setattr__(self, "columns", dict(self.columns))

    def column(self, variable: str) -> str:
        """The data column holding state variable ``variable``."""
        return self.columns.get(variable, variable)


class TransitionFamily:
    """A model's transitions that know how to estimate themselves from data (a first stage).

    The generic first stage (:func:`estimators.first_stage.estimate_transitions`) estimates the
    transition parameters :math:`\\psi` of any model by maximum likelihood over the observed
    ``(s, a, s')`` transitions, :math:`\\ell_t(\\psi) = \\sum n(s, a, s') \\log P(s' \\mid s, a;
    \\psi)`. A family tells it more than the transition function can:

    * **constraints** (:meth:`simplex_groups`): groups of parameters that are probabilities
      of one distribution whose last value is implied (one minus their sum). The first stage
      then optimizes in a softmax parametrisation that cannot leave the simplex, and checks
      the data against the model at an interior point of it;
    * **its own data** (:attr:`columns`, :meth:`statistics`, :meth:`estimate`,
      :meth:`loglik`, :meth:`row_scores`): when the data carry more than the states. Rust's bus
      data record the bins the odometer moved each month (``increment``), which identify the
      increment probabilities even where the state is censored at the top bin
      (:class:`ddc.transition_families.IncrementTransitions`).

    A family that overrides :meth:`statistics` must override :meth:`estimate`,
    :meth:`loglik` and :meth:`row_scores` too; the estimators then never read the transitions
    from the states (the first stage, NFXP's full-information stage and the out-of-core
    sufficient statistics call these methods).

    The protocol, with :math:`T` the family's statistics (additive over rows: the statistics of
    a panel are the sum of those of its chunks):

    ``statistics(model, frame) -> T``
        from the rows of ``frame`` (its :attr:`columns`, one row per panel row);
    ``estimate(model, T) -> (params, cov)``
        the maximum likelihood estimate of ``model.transition_params`` and its covariance;
    ``loglik(model, params, T) -> (value, gradient)``
        :math:`\\ell_t` and :math:`\\partial \\ell_t / \\partial \\psi` at transition
        parameters ``params`` (a Series over ``model.transition_params.index``);
    ``row_scores(model, params, frame) -> (n_rows, P)``
        per-row :math:`\\partial \\log P / \\partial \\psi` (zero for rows without a transition).
    """

    #: extra data columns the family reads, beyond the state variables and the action
    columns: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for summaries: how the transition parameters are estimated."""
        return type(self).__name__

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the family (for :meth:`ddc.Model.fingerprint`)."""
        return {"family": type(self).__name__, "columns": list(self.columns)}

    def simplex_groups(self, model: Model) -> list[list[str]]:
        """Groups of transition parameters that are the free probabilities of one distribution
        (the omitted last probability is one minus their sum). Default: none."""
        return []

    @property
    def has_statistics(self) -> bool:
        """Whether the family estimates from its own data columns (overrides
        :meth:`statistics`) rather than from the observed state transitions."""
        return type(self).statistics is not TransitionFamily.statistics

    def statistics(self, model: Model, frame: pd.DataFrame) -> np.ndarray:
        """Additive sufficient statistics of the rows of ``frame``."""
        raise NotImplementedError(f"{type(self).__name__} estimates from the observed state "
                                  "transitions; it has no statistics of its own")

    def estimate(self, model: Model, statistics: np.ndarray) -> tuple[pd.Series, np.ndarray]:
        """Maximum likelihood estimate of the transition parameters and its covariance."""
        raise NotImplementedError(f"{type(self).__name__}.estimate")

    def loglik(self, model: Model, params: pd.Series, statistics: np.ndarray
               ) -> tuple[float, np.ndarray]:
        """Transition log-likelihood and its gradient in the transition parameters."""
        raise NotImplementedError(f"{type(self).__name__}.loglik")

    def row_scores(self, model: Model, params: pd.Series, frame: pd.DataFrame) -> np.ndarray:
        """Per-row score of the transition log-likelihood, shape ``(len(frame), P)``."""
        raise NotImplementedError(f"{type(self).__name__}.row_scores")


@dataclass(frozen=True)
class Hooks:
    """Everything an application declares to the generic engine (all optional).

    Parameters
    ----------
    money : Money, optional
        The parameter that turns utils into money (welfare in money in counterfactuals).
    outcomes : sequence of Outcome
        Named outcomes that counterfactual reports compute for every scenario.
    layout : DataLayout
        Column names of the model's panel data and how its choice sample is formed.
    transition_family : TransitionFamily, optional
        How the transition parameters are estimated from the data (default: maximum likelihood
        over the observed transitions).
    default_scenarios : callable, optional
        ``default_scenarios(model) -> list of scenarios`` run by ``scenarios="default"``.
    figures : callable, optional
        ``figures(report) -> dict[str, matplotlib.figure.Figure]``: the application's own report
        figures, added to the generic ones.
    description : str
        A paragraph describing the model for reports.
    """

    money: Money | None = None
    outcomes: Sequence[Outcome] = ()
    layout: DataLayout = field(default_factory=DataLayout)
    transition_family: TransitionFamily | None = None
    default_scenarios: Callable[[Model], Sequence[Any]] | None = None
    figures: Callable[[Any], Mapping[str, Any]] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.money is not None and not isinstance(self.money, Money):
            raise TypeError(f"hooks.money must be a ddc.Money; got {type(self.money).__name__}")
        outcomes = tuple(self.outcomes)
        for o in outcomes:
            if not isinstance(o, Outcome):
                raise TypeError(f"hooks.outcomes must hold ddc.Outcome objects; got "
                                f"{type(o).__name__}")
        names = [o.name for o in outcomes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"outcome name(s) {dup} declared more than once")
        object.__setattr__(self, "outcomes", outcomes)
        if not isinstance(self.layout, DataLayout):
            raise TypeError(f"hooks.layout must be a ddc.DataLayout; got "
                            f"{type(self.layout).__name__}")
        if self.transition_family is not None and \
                not isinstance(self.transition_family, TransitionFamily):
            raise TypeError("hooks.transition_family must be a ddc.hooks.TransitionFamily; got "
                            f"{type(self.transition_family).__name__}")
        for attr in ("default_scenarios", "figures"):
            value = getattr(self, attr)
            if value is not None and not callable(value):
                raise TypeError(f"hooks.{attr} must be callable or None")

    def outcome(self, name: str) -> Outcome:
        """The declared outcome called ``name``."""
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(f"no outcome {name!r}; declared: {[o.name for o in self.outcomes]}")

    def replace(self, **changes) -> Hooks:
        """A copy with some fields changed."""
        import dataclasses

        return dataclasses.replace(self, **changes)
