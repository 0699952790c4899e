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
``ddc.models.rust_bus``); every hook is optional. The counterfactual engine
(``simulations.counterfactual``) reads ``money`` (welfare in money), ``outcomes`` and ``curves``
(what it reports for every scenario, with intervals; an outcome or curve declared
``vectorized=True`` is evaluated for all bootstrap draws in one call, see
:class:`OutcomeContext`), ``unit`` (the column ``cv_per_<unit>``), ``default_scenarios``,
``figures`` and ``description``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ddc.model import Model

__all__ = ["Curve", "DataLayout", "Hooks", "Money", "Outcome", "OutcomeContext",
           "TransitionFamily", "TransitionJacobian"]


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
    """What an :class:`Outcome` or :class:`Curve` function is given: a solved model and a state
    distribution, at one parameter vector or at many (bootstrap draws) at once.

    At one parameter vector the arrays are as below. For an outcome declared with
    ``vectorized=True`` the engine evaluates many draws in one call: every array then carries a
    trailing axis of length :math:`D` (``ccp`` (S, A, D), ``value`` (S, D), ``distribution``
    (S, D)) and the function returns an array of shape (D,).

    Attributes
    ----------
    model : Model
        The model (for a counterfactual, the scenario's model).
    params : pandas.Series or pandas.DataFrame
        Parameter values (with draws: one column per draw).
    ccp : numpy.ndarray, shape (S, A) or (S, A, D)
        Conditional choice probabilities :math:`\\pi(a \\mid s)` (zero where infeasible).
    value : numpy.ndarray, shape (S,) or (S, D)
        Ex-ante value function.
    distribution : numpy.ndarray, shape (S,) or (S, D)
        State distribution the outcome is averaged over (the stationary distribution of the
        controlled chain in a counterfactual report), summing to one (in each column).
    horizon : int
        Length of declared :class:`Curve` s (their last step).
    transitions : CompiledTransitions, optional
        The model's transitions at ``params`` (compiled on first use when not given); with
        draws, the same for every draw.
    cache : dict
        Scratch space shared by the outcomes and curves evaluated on this context (e.g. a
        propagation that two outcomes read); the engine gives every context a fresh one.
    """

    model: Model
    params: pd.Series | pd.DataFrame
    ccp: np.ndarray
    value: np.ndarray
    distribution: np.ndarray
    horizon: int = 36
    transitions: Any = None
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_draws(self) -> int | None:
        """:math:`D` when the arrays carry a draws axis, else ``None``."""
        return self.ccp.shape[2] if self.ccp.ndim == 3 else None

    def compiled_transitions(self):
        """The model's compiled transitions at :attr:`params` (cached)."""
        if self.transitions is not None:
            return self.transitions
        if "transitions" not in self.cache:
            p = self.params
            vec = (p.iloc[:, 0] if isinstance(p, pd.DataFrame) else p).to_numpy()
            self.cache["transitions"] = self.model.compiled_transitions(vec)
        return self.cache["transitions"]

    def push(self, w: np.ndarray, actions_first: bool = False) -> np.ndarray:
        """One step forward of a mass over states and actions.

        .. math:: x(s') = \\sum_{s, a} w(s, a) \\, P(s' \\mid s, a)

        Parameters
        ----------
        w : numpy.ndarray, shape (S, A) or (S, A, K)
            Mass by state and action (with a trailing axis: K masses pushed at once).
        actions_first : bool
            ``w`` is laid out (A, S) or (A, S, K) instead (no copy is needed then).

        Returns
        -------
        numpy.ndarray, shape (S,) or (S, K)
        """
        from ddc.solver import stacked_transition_matrix

        if "push_matrix" not in self.cache:
            self.cache["push_matrix"] = stacked_transition_matrix(
                self.compiled_transitions()).T.tocsr()
        PT = self.cache["push_matrix"]  # (S, A * S), column a * S + s
        w = np.asarray(w, dtype=np.float64)
        if not actions_first:
            w = np.swapaxes(w, 0, 1)
        A, S = w.shape[:2]
        if w.ndim == 2:
            return PT @ w.reshape(A * S)
        return PT @ w.reshape(A * S, w.shape[2])


@dataclass(frozen=True)
class Outcome:
    r"""A named scalar outcome of a solved model that reports show.

    Parameters
    ----------
    name : str
        Column name in reports (a Python identifier, e.g. ``"member_share"``).
    compute : callable
        ``compute(ctx: OutcomeContext) -> float`` (or, with ``vectorized=True``, an array of
        shape (D,) for a context whose arrays carry a trailing draws axis).
    description : str
        One line saying what it measures, for report legends.
    unit : str
        ``"share"`` (shown as a percentage), a currency such as ``"USD"``, or free text.
    label : str
        Column heading in rendered reports (e.g. ``"12-month retention"``); the name with
        spaces for underscores by default.
    vectorized : bool
        Whether ``compute`` takes contexts with a draws axis (:class:`OutcomeContext`); the
        counterfactual engine then evaluates all bootstrap draws (and all blocks of the
        permanent state variables) in one call instead of one call per draw.
    denominator : callable, optional
        For an outcome that is a ratio of two averages over the distribution,
        :math:`Y = E_\mu[n] / E_\mu[d]` (e.g. the share of *members* on a plan), the
        denominator :math:`E_\mu[d]`, computed like ``compute`` (same context, same
        ``vectorized`` convention). It is what pooling populations needs: populations
        :math:`k` with weights :math:`w_k` (the types of a :class:`ddc.Mixture`) pool to
        :math:`\sum_k w_k d_k Y_k / \sum_k w_k d_k`, the outcome of the pooled distribution.
        ``None`` (the default): the outcome is an average per unit (:math:`d = 1`), pooled as
        :math:`\sum_k w_k Y_k`.
    """

    name: str
    compute: Callable[[OutcomeContext], float]
    description: str = ""
    unit: str = ""
    label: str = ""
    vectorized: bool = False
    denominator: Callable[[OutcomeContext], float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"an outcome name must be an identifier such as 'member_share'; "
                             f"got {self.name!r}")
        if not callable(self.compute):
            raise TypeError(f"Outcome {self.name!r}: compute must be callable")
        if self.denominator is not None and not callable(self.denominator):
            raise TypeError(f"Outcome {self.name!r}: denominator must be callable or None")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))

    def __call__(self, ctx: OutcomeContext) -> float:
        if self.vectorized and ctx.n_draws is None:
            one = OutcomeContext(ctx.model, ctx.params, ctx.ccp[..., None],
                                 ctx.value[..., None], ctx.distribution[..., None], ctx.horizon,
                                 ctx.transitions, ctx.cache)
            return float(np.asarray(self.compute(one)).reshape(-1)[0])
        return float(self.compute(ctx))


@dataclass(frozen=True)
class Curve:
    """A named curve of a solved model (e.g. retention by months since joining), one line per
    group, that reports tabulate and draw with intervals.

    Parameters
    ----------
    name : str
        Name of the curve (an identifier, e.g. ``"retention"``): the report's table
        ``report.curves[name]`` (also ``report.<name>``).
    compute : callable
        ``compute(ctx: OutcomeContext) -> numpy.ndarray`` of shape (K + 1, G): the value at
        steps :math:`k = 0, \\dots, K` (``K = ctx.horizon``) of each of the G groups (NaN where a
        group is empty). With ``vectorized=True`` and a context with draws: (K + 1, G, D).
    groups : sequence of str
        Names of the G groups (columns), e.g. ``("all", "monthly", "annual")``.
    group_name : str
        Name of the group level in report tables (e.g. ``"joined"``).
    step_name : str
        Name of the step level (``"k"``).
    description : str
        One line for report legends.
    vectorized : bool
        As for :class:`Outcome`.
    denominator : callable, optional
        For a curve whose groups are ratios :math:`c_g(k) = n_g(k) / d_g` (the share of a
        cohort still a member ``k`` months after joining: :math:`d_g` the cohort's size per
        unit, :math:`n_g(k)` the part of it left), the sizes: ``denominator(ctx) ->
        numpy.ndarray`` of shape (G,) (with ``vectorized=True`` and draws: (G, D)). It is what
        pooling populations needs: populations :math:`k` with weights :math:`w_k` (the types of
        a :class:`ddc.Mixture`) pool to the curve of the pooled cohort,
        :math:`c_g(t) = \\sum_k w_k d_{kg} c_{kg}(t) / \\sum_k w_k d_{kg}`. ``None`` (the
        default): the curve is an average per unit, pooled as :math:`\\sum_k w_k c_{kg}(t)`.
    """

    name: str
    compute: Callable[[OutcomeContext], np.ndarray]
    groups: Sequence[str] = ("all",)
    group_name: str = "group"
    step_name: str = "k"
    description: str = ""
    vectorized: bool = False
    denominator: Callable[[OutcomeContext], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a curve name must be an identifier such as 'retention'; got "
                             f"{self.name!r}")
        if not callable(self.compute):
            raise TypeError(f"Curve {self.name!r}: compute must be callable")
        if self.denominator is not None and not callable(self.denominator):
            raise TypeError(f"Curve {self.name!r}: denominator must be callable or None")
        groups = tuple(str(g) for g in self.groups)
        if not groups or len(set(groups)) != len(groups):
            raise ValueError(f"Curve {self.name!r}: groups must be unique names; got "
                             f"{list(self.groups)}")
        object.__setattr__(self, "groups", groups)

    def __call__(self, ctx: OutcomeContext) -> np.ndarray:
        """The curve (K + 1, G) at a context without draws (or (K + 1, G, D) with)."""
        if self.vectorized and ctx.n_draws is None:
            one = OutcomeContext(ctx.model, ctx.params, ctx.ccp[..., None],
                                 ctx.value[..., None], ctx.distribution[..., None], ctx.horizon,
                                 ctx.transitions, ctx.cache)
            out = np.asarray(self.compute(one), dtype=float)[..., 0]
        else:
            out = np.asarray(self.compute(ctx), dtype=float)
        G = len(self.groups)
        want = (ctx.horizon + 1, G) + ((ctx.n_draws,) if ctx.n_draws and self.vectorized
                                      else ())
        if out.shape != want:
            raise ValueError(f"Curve {self.name!r} returned shape {out.shape}; expected {want} "
                             f"(steps 0..{ctx.horizon} x groups {list(self.groups)})")
        return out


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

    def hessian(self, model: Model, params: pd.Series, statistics: np.ndarray) -> np.ndarray:
        """Optional: the Hessian of the transition log-likelihood in the transition parameters
        in closed form (otherwise the estimators take differences of :meth:`loglik`)."""
        raise NotImplementedError(f"{type(self).__name__}.hessian")


@dataclass(frozen=True)
class TransitionJacobian:
    """The derivatives of a model's transition tables in its transition parameters, in closed
    form.

    Without it the engine differentiates the model's transition function numerically
    (:func:`ddc.transitions.differentiate_transitions`: four evaluations per parameter); with
    it, the tables' derivatives

    .. math:: \\frac{\\partial F_j(\\psi)}{\\partial \\psi_k}

    come from ``first`` in one call, and the derivatives of the transition probabilities
    :math:`P = \\prod_j F_j` are assembled from them by the product rule as before.

    Parameters
    ----------
    first : callable
        ``first(psi) -> sequence of mapping``: for each transition parameter :math:`\\psi_k`
        (the model's order; ``psi`` is the array of all of them), a mapping from the variable
        of a factor of the transition function's
        :class:`~ddc.transitions.FactoredTransitions` to :math:`\\partial F_j / \\partial
        \\psi_k`, an array of that factor's table's shape (factors the parameter does not move
        may be left out).
    affine : bool
        Whether every table is affine in the parameters (for example probabilities that are
        the parameters themselves, or one minus their sum): then the second derivatives of
        each table are zero and the second derivatives of :math:`P` need no differencing
        either. Otherwise second derivatives are taken numerically, as without the hook.

    Examples
    --------
    A Markov chain over two values that leaves the first with probability ``p``:

    >>> import numpy as np
    >>> jac = TransitionJacobian(lambda psi: [{"x": np.array([[-1.0, 1.0], [0.0, 0.0]])}],
    ...                          affine=True)
    >>> jac.affine
    True
    """

    first: Callable[[np.ndarray], Sequence[Mapping[str, np.ndarray]]]
    affine: bool = False

    def __post_init__(self) -> None:
        if not callable(self.first):
            raise TypeError("TransitionJacobian(first=...) must be callable: psi -> one mapping "
                            f"(factor variable -> table derivative) per parameter; got "
                            f"{type(self.first).__name__}")
        if not isinstance(self.affine, bool):
            raise TypeError(f"TransitionJacobian(affine=...) must be a bool; got {self.affine!r}")


@dataclass(frozen=True)
class Hooks:
    """Everything an application declares to the generic engine (all optional).

    Parameters
    ----------
    money : Money, optional
        The parameter that turns utils into money (welfare in money in counterfactuals).
    outcomes : sequence of Outcome
        Named outcomes that counterfactual reports compute for every scenario.
    curves : sequence of Curve
        Named curves (e.g. retention by months since joining) that counterfactual reports
        tabulate for every scenario.
    unit : str
        What one decision maker is called in reports (``"customer"``, ``"bus"``, ``"firm"``):
        welfare is reported per unit, in the column ``cv_per_<unit>``.
    layout : DataLayout
        Column names of the model's panel data and how its choice sample is formed.
    transition_family : TransitionFamily, optional
        How the transition parameters are estimated from the data (default: maximum likelihood
        over the observed transitions).
    transition_jacobian : TransitionJacobian, optional
        The transition tables' derivatives in the transition parameters in closed form
        (default: numerical differences of the transition function's tables).
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
    curves: Sequence[Curve] = ()
    unit: str = "unit"
    layout: DataLayout = field(default_factory=DataLayout)
    transition_family: TransitionFamily | None = None
    transition_jacobian: TransitionJacobian | None = None
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
        curves = tuple(self.curves)
        for c in curves:
            if not isinstance(c, Curve):
                raise TypeError(f"hooks.curves must hold ddc.Curve objects; got "
                                f"{type(c).__name__}")
        cnames = [c.name for c in curves]
        dup = sorted({n for n in cnames if cnames.count(n) > 1} | (set(cnames) & set(names)))
        if dup:
            raise ValueError(f"curve name(s) {dup} declared more than once (or also as an "
                             "outcome)")
        object.__setattr__(self, "curves", curves)
        if not isinstance(self.unit, str) or not self.unit.isidentifier():
            raise ValueError(f"hooks.unit must be a noun usable in a column name such as "
                             f"'customer'; got {self.unit!r}")
        if not isinstance(self.layout, DataLayout):
            raise TypeError(f"hooks.layout must be a ddc.DataLayout; got "
                            f"{type(self.layout).__name__}")
        if self.transition_family is not None and \
                not isinstance(self.transition_family, TransitionFamily):
            raise TypeError("hooks.transition_family must be a ddc.hooks.TransitionFamily; got "
                            f"{type(self.transition_family).__name__}")
        if self.transition_jacobian is not None and \
                not isinstance(self.transition_jacobian, TransitionJacobian):
            raise TypeError("hooks.transition_jacobian must be a ddc.hooks.TransitionJacobian; "
                            f"got {type(self.transition_jacobian).__name__}")
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
