"""Rust's (1987) bus engine replacement model.

Mileage since the last engine replacement, discretized into ``n_states`` bins, is the state.
Each month Harold Zurcher keeps the engine, paying the operating cost :math:`c(x)`, or replaces
it at cost :math:`RC`, which resets the mileage to 0. The mileage then moves up by
:math:`j = 0, 1, \\dots, J-1` bins with probability :math:`\\theta_{3j}` (the top bin is
absorbing):

.. math::

    u(x, keep) = -c(x), \\qquad u(x, replace) = -RC,

with the cost functions of Rust's (1987) specification search (``RUST_COSTS``; linear
:math:`c(x) = 0.001 \\, \\theta_{11} x` by default, the specification of his Tables IX and X).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddc.hooks import DataLayout, Hooks, TransitionJacobian
from ddc.model import Model
from ddc.statespace import StateVariable
from ddc.transition_families import IncrementTransitions
from ddc.transitions import Factor, FactoredTransitions
from ddc.utility import LinearUtility

__all__ = ["rust_bus", "RustCost", "RUST_COSTS", "TABLE_IX", "TABLE_X"]

# Rust (1987), Table IX (90 states, beta = 0.9999, groups 1-4), and Table X (175 states); the
# last increment probability is implied by the others summing to one. At 175 states the data
# of groups 1-4 have increments of up to 5 bins (873 / 4202 / 2954 / 117 / 7 / 3 months): Table
# X lists the first four probabilities; theta_34 = 7 / 8156 is the frequency in the data.
TABLE_IX = {"RC": 9.7558, "theta_11": 2.6275, "theta_3": (0.3489, 0.6394)}
TABLE_X = {"RC": 9.7687, "theta_11": 1.3428,
           "theta_3": (0.1071, 0.5152, 0.3621, 0.0143, 7 / 8156)}


@dataclass(frozen=True)
class RustCost:
    """One operating-cost specification :math:`c(x) = \\sum_k s_k \\theta_{1k} f_k(x)`.

    Attributes
    ----------
    name : str
        The key of :data:`RUST_COSTS` (``rust_bus(cost=name)``).
    params : tuple of str
        The cost parameters ``theta_11``, ``theta_12``, ...
    scales : tuple of float
        The fixed scale :math:`s_k` of each term.
    terms : callable
        ``terms(x, n_states)`` -> ``(len(x), len(params))`` array of :math:`f_k(x)`.
    formula : str
        The cost function as text.
    """

    name: str
    params: tuple[str, ...]
    scales: tuple[float, ...]
    terms: Callable[[np.ndarray, int], np.ndarray]
    formula: str

    def features(self, n_states: int) -> np.ndarray:
        """``(n_states, len(params))`` array of :math:`s_k f_k(x)`, :math:`x = 0..n-1`."""
        x = np.arange(n_states, dtype=float)
        return self.terms(x, n_states) * np.asarray(self.scales)[None, :]

    def __str__(self) -> str:
        return f"{self.name}: {self.formula}"


def _powers(k: int) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda x, n: np.stack([x ** (j + 1) for j in range(k)], axis=1)


#: The cost functions of Rust's (1987) specification search (section 6), :math:`x` the mileage
#: bin ``0..n_states-1``. Scales: 0.001 for the linear term, as in Rust's Tables IX and X (so that
#: their published estimates stand); each higher power of :math:`x` 100 times smaller (1e-5 for
#: :math:`x^2`, 1e-7 for :math:`x^3`) and 0.01 for :math:`\sqrt{x}`, so that every term is about
#: 0.1 at the top of the 90-bin grid and the parameters are of order one (well-conditioned
#: Newton and BHHH steps); hyperbolic :math:`\theta_{11} / (n + 1 - x)` (:math:`91 - x` at 90
#: bins) unscaled.
RUST_COSTS: dict[str, RustCost] = {
    c.name: c
    for c in (
        RustCost("linear", ("theta_11",), (1e-3,), _powers(1), "0.001 theta_11 x"),
        RustCost("quadratic", ("theta_11", "theta_12"), (1e-3, 1e-5), _powers(2),
                 "0.001 theta_11 x + 1e-5 theta_12 x^2"),
        RustCost("cubic", ("theta_11", "theta_12", "theta_13"), (1e-3, 1e-5, 1e-7), _powers(3),
                 "0.001 theta_11 x + 1e-5 theta_12 x^2 + 1e-7 theta_13 x^3"),
        RustCost("sqrt", ("theta_11",), (1e-2,), lambda x, n: np.sqrt(x)[:, None],
                 "0.01 theta_11 sqrt(x)"),
        RustCost("hyperbolic", ("theta_11",), (1.0,), lambda x, n: (1.0 / (n + 1 - x))[:, None],
                 "theta_11 / (n_states + 1 - x)"),
    )
}


def increment_matrix(n_states: int, probs: np.ndarray) -> np.ndarray:
    """``(n, n)`` matrix of the mileage moving up by ``j`` bins with ``probs[j]``; the mass that
    would pass the last bin stays in it.

    :math:`P[x, \\min(x + j, n - 1)] \\mathrel{+}= p_j`, accumulated in the order of ``j`` from
    zero (each cell's sum is formed in that order, so the table does not depend on how the
    cells are visited).
    """
    probs = np.asarray(probs, dtype=float)
    out = np.zeros((n_states, n_states))
    _add_increments(out.reshape(-1), _increment_cells(n_states, probs.size), probs)
    return out


def _increment_cells(n_states: int, n_increments: int) -> np.ndarray:
    """``(n_increments, n_states)`` flat indices of the cells :math:`(x, \\min(x + j, n - 1))`
    of an ``(n, n)`` matrix; row ``j`` visits each row :math:`x` once."""
    rows = np.arange(n_states)
    cols = np.minimum(rows[None, :] + np.arange(n_increments)[:, None], n_states - 1)
    return rows[None, :] * n_states + cols


def _add_increments(flat: np.ndarray, cells: np.ndarray, probs: np.ndarray) -> None:
    """``flat[cells[j]] += probs[j]`` for ``j = 0, 1, ...`` in order (no cell repeats within
    one ``j``, so the fancy-indexed sum is exact)."""
    for j in range(probs.size):
        flat[cells[j]] += probs[j]


def rust_bus(
    n_states: int = 90,
    beta: float = 0.9999,
    theta_3: Sequence[float] | None = None,
    true_params: pd.Series | None = None,
    cost: str = "linear",
) -> Model:
    """Rust's bus engine replacement model.

    Parameters
    ----------
    n_states : int
        Mileage bins (90: 5,000-mile bins, Rust's Table IX; 175: Table X).
    beta : float
        Monthly discount factor (0.9999 in Rust's tables).
    theta_3 : sequence of float, optional
        Increment probabilities :math:`\\theta_{30}, \\theta_{31}, \\dots` of all but the last
        increment (the last is one minus their sum). Defaults: Table X's (six increments) for
        175 states or more, Table IX's (three increments) otherwise.
    true_params : pandas.Series, optional
        Defaults to Rust's estimates of the matching table for the linear cost; none for the
        other cost functions (no published estimate to default to).
    cost : str, default "linear"
        The operating cost :math:`c(x)` of keeping the engine, one of the specifications of
        Rust's (1987) section 6 specification search (:data:`RUST_COSTS`), with :math:`x` the
        mileage bin ``0..n_states-1`` and :math:`n` = ``n_states``:

        ==============  ================================================================
        ``linear``      :math:`0.001\\,\\theta_{11} x` (Tables IX and X)
        ``quadratic``   :math:`0.001\\,\\theta_{11} x + 10^{-5}\\,\\theta_{12} x^2`
        ``cubic``       :math:`0.001\\,\\theta_{11} x + 10^{-5}\\,\\theta_{12} x^2
                        + 10^{-7}\\,\\theta_{13} x^3`
        ``sqrt``        :math:`0.01\\,\\theta_{11} \\sqrt{x}`
        ``hyperbolic``  :math:`\\theta_{11} / (n + 1 - x)` (:math:`91 - x` at 90 bins)
        ==============  ================================================================

        Scaling: the linear term keeps Rust's 0.001 so that Tables IX and X stand as printed
        (:math:`\\theta_{11}` = 2.6275 at 90 bins). The paper's text on the other forms' scales was
        not at hand, so each further power of :math:`x` is scaled 100 times smaller and
        :math:`\\sqrt{x}` by 0.01: every term is then about 0.1 at the top of the 90-bin grid
        (0.09, 0.081, 0.073, 0.095), the parameters are of order one and the Newton and BHHH
        steps well conditioned. The scale changes only the units of :math:`\\theta_{1k}`, not
        the fit: estimates scale inversely, log-likelihoods are unchanged. The functional forms
        (the hyperbolic one with :math:`n + 1 - x`) are those listed by the documentation of
        ``ruspy`` (OpenSourceEconomics), a port of Rust's NFXP code, whose scales differ.
        The estimates on group 4 are in ``docs/rust_bus.rst``.

    Returns
    -------
    Model
        State variable ``mileage`` (bins ``0..n_states-1``), actions ``keep`` and ``replace``,
        utility parameters ``RC`` and the cost parameters ``theta_11`` (``theta_12``,
        ``theta_13`` for the quadratic and cubic costs), transition parameters ``theta_30``,
        ``theta_31``, ... (the free increment probabilities).

    Raises
    ------
    ValueError
        On ``n_states`` below 2, increment probabilities outside the simplex, or an unknown
        ``cost`` (the message lists the accepted ones with their formulas).

    Examples
    --------
    >>> import ddc
    >>> bus = ddc.models.rust_bus(n_states=90, beta=0.9999)
    >>> bus.param_names
    ['RC', 'theta_11', 'theta_30', 'theta_31']
    >>> ddc.models.rust_bus(90, cost="quadratic").utility_params
    ['RC', 'theta_11', 'theta_12']
    """
    if not isinstance(n_states, (int, np.integer)) or n_states < 2:
        raise ValueError(f"n_states must be an integer >= 2, got {n_states!r}")
    table = TABLE_X if n_states >= 175 else TABLE_IX
    free = np.asarray(table["theta_3"] if theta_3 is None else theta_3, dtype=float)
    if free.ndim != 1 or free.size < 1:
        raise ValueError("theta_3 must list at least one increment probability")
    names = [f"theta_3{j}" for j in range(free.size)]
    _check_increments(free, names)
    spec = _check_cost(cost)
    X = np.zeros((n_states, 2, 1 + len(spec.params)))
    X[:, 0, 1:] = -spec.features(n_states)  # keep: -c(x)
    X[:, 1, 0] = -1.0  # replace: -RC

    cells = _increment_cells(n_states, free.size + 1)

    def transitions(tp: pd.Series) -> FactoredTransitions:
        # the hot path of first stages and full-information steps: NumPy only, labels for errors
        probs = _check_increments(np.asarray(tp, dtype=float), names)
        table = np.zeros((2, n_states, n_states))
        _add_increments(table[0].reshape(-1), cells, probs)  # keep: move up from x
        table[1] = table[0, 0]  # replace: move up from 0, whatever x was
        return FactoredTransitions([Factor("mileage", table, given=("action", "mileage"))])

    def jacobian(tp: np.ndarray) -> list[dict[str, np.ndarray]]:
        # theta_3j moves p_j up and the last probability (one minus the others) down
        out = []
        for j in range(free.size):
            d = np.zeros((2, n_states, n_states))
            flat = d[0].reshape(-1)
            flat[cells[j]] += 1.0
            flat[cells[-1]] -= 1.0
            d[1] = d[0, 0]
            out.append({"mileage": d})
        return out

    if true_params is None and spec.name == "linear":
        true_params = pd.Series({"RC": table["RC"], "theta_11": table["theta_11"],
                                 **dict(zip(names, free, strict=True))})
    return Model(
        [StateVariable("mileage", tuple(range(n_states)))], ("keep", "replace"),
        LinearUtility(X, ("RC", *spec.params)), transitions, beta=beta,
        transition_params=pd.Series(free, index=names), true_params=true_params,
        name="rust_bus", anchor="replace",
        # Rust's data: the published likelihoods condition on each bus's first month
        hooks=Hooks(layout=DataLayout(id_col="bus_id", time_col="month",
                                      drop_first_period=True),
                    # transitions are counted from the `increment` column (bins moved in the
                    # month, measured from the replacement reading in a replacement month)
                    transition_family=IncrementTransitions("increment"),
                    # the tables are linear in the increment probabilities
                    transition_jacobian=TransitionJacobian(jacobian, affine=True)),
    )


def _check_cost(cost) -> RustCost:
    if isinstance(cost, RustCost):
        return cost
    if not isinstance(cost, str) or cost not in RUST_COSTS:
        choices = "; ".join(str(c) for c in RUST_COSTS.values())
        raise ValueError(f"cost must be one of Rust's (1987) cost functions, got {cost!r}; "
                         f"choose one of: {choices}")
    return RUST_COSTS[cost]


def _check_increments(free: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The increment probabilities, the last (one minus the others) appended; ``names`` label
    them in the error messages only (this runs on every evaluation of the transitions)."""
    bad = (free < 0) | (free > 1)
    if bad.any():
        labelled = {n: float(v) for n, v, b in zip(names, free, bad, strict=True) if b}
        raise ValueError(f"increment probabilities must lie in [0, 1]: {labelled}")
    last = 1.0 - free.sum()
    if last < -1e-12:
        labelled = {n: float(v) for n, v in zip(names, free, strict=True)}
        raise ValueError(f"increment probabilities {labelled} sum to {free.sum():.6g} > 1")
    return np.append(free, max(last, 0.0))
