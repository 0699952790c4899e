"""State variables with labelled values, and the state space that is their product.

A state is a tuple ``(x_1, ..., x_J)`` of state-variable values. States are numbered in C
(row-major) order over the variables as they are listed, so that the last variable moves fastest:

.. math::

    s = \\sum_j c_j \\, \\mathrm{stride}_j, \\qquad
    \\mathrm{stride}_j = \\prod_{k > j} n_k,

where :math:`c_j \\in \\{0, \\dots, n_j - 1\\}` is the code of variable *j*'s value.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["StateVariable", "StateSpace"]


@dataclass(frozen=True)
class StateVariable:
    """A discrete state variable with labelled values.

    Parameters
    ----------
    name : str
        Name of the variable (a column of the panel data).
    values : sequence of hashable
        The labels of the variable's values, in code order (code ``i`` is ``values[i]``).
        Integers (e.g. ``range(90)`` for Rust's mileage bins) or strings (``"none"``,
        ``"member"``) both work.

    Examples
    --------
    >>> StateVariable("ship", (0, 1, 2)).size
    3
    """

    name: str
    values: tuple = field()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a state variable needs a non-empty string name, got {self.name!r}")
        values = tuple(self.values)
        object.__setattr__(self, "values", values)
        if len(values) == 0:
            raise ValueError(f"state variable {self.name!r} has no values; give at least one")
        if len(set(values)) != len(values):
            dup = pd.Series(values)[pd.Series(values).duplicated()].tolist()
            raise ValueError(f"state variable {self.name!r} has duplicate values {dup}")

    @property
    def size(self) -> int:
        """Number of values."""
        return len(self.values)

    def code(self, label: Hashable) -> int:
        """Code (position) of the value ``label``.

        Raises
        ------
        KeyError
            If ``label`` is not a value of this variable; the message lists the accepted values.
        """
        try:
            return self.values.index(label)
        except ValueError:
            raise KeyError(
                f"{label!r} is not a value of state variable {self.name!r}; "
                f"accepted values: {list(self.values)}"
            ) from None


class StateSpace:
    """The product of state variables, numbered in C order.

    Parameters
    ----------
    variables : sequence of StateVariable
        The state variables, slowest-moving first.

    Examples
    --------
    >>> space = StateSpace([StateVariable("a", (0, 1)), StateVariable("b", ("x", "y", "z"))])
    >>> space.size, space.shape
    (6, (2, 3))
    >>> int(space.flat_index({"a": 1, "b": "y"}))
    4
    """

    def __init__(self, variables: Sequence[StateVariable]):
        variables = tuple(variables)
        if not variables:
            raise ValueError("a state space needs at least one state variable")
        for v in variables:
            if not isinstance(v, StateVariable):
                raise TypeError(f"state variables must be StateVariable objects, got {v!r}")
        names = [v.name for v in variables]
        if len(set(names)) != len(names):
            raise ValueError(f"state variable names must be unique, got {names}")
        self.variables: tuple[StateVariable, ...] = variables

    def __repr__(self) -> str:
        inner = " x ".join(f"{v.name}({v.size})" for v in self.variables)
        return f"StateSpace({inner} = {self.size} states)"

    def __len__(self) -> int:
        return self.size

    @property
    def names(self) -> list[str]:
        """Names of the state variables, in order."""
        return [v.name for v in self.variables]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values of each variable."""
        return tuple(v.size for v in self.variables)

    @cached_property
    def size(self) -> int:
        """Number of states, the product of :attr:`shape` (kept: hot paths ask for it)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @cached_property
    def strides(self) -> np.ndarray:
        """Stride of each variable in the flat state index (C order)."""
        shape = self.shape
        strides = np.ones(len(shape), dtype=np.int64)
        for j in range(len(shape) - 2, -1, -1):
            strides[j] = strides[j + 1] * shape[j + 1]
        return strides

    def variable(self, name: str) -> StateVariable:
        """The state variable called ``name``."""
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"no state variable {name!r}; the model has {self.names}")

    def axis(self, name: str) -> int:
        """Position of variable ``name`` in the state tuple."""
        return self.names.index(self.variable(name).name)

    @cached_property
    def codes(self) -> np.ndarray:
        """Codes of every state, shape ``(S, J)``, in flat-index order."""
        grids = np.indices(self.shape).reshape(len(self.shape), -1)
        return np.ascontiguousarray(grids.T.astype(np.int64))

    def values_of(self, name: str) -> np.ndarray:
        """Labels of variable ``name`` at every state (length ``S``), as an object or int array."""
        v = self.variable(name)
        labels = np.asarray(v.values, dtype=object if _has_strings(v.values) else None)
        return labels[self.codes[:, self.axis(name)]]

    def code_of(self, name: str) -> np.ndarray:
        """Codes of variable ``name`` at every state (length ``S``)."""
        return self.codes[:, self.axis(name)]

    @cached_property
    def index(self) -> pd.MultiIndex:
        """A :class:`pandas.MultiIndex` of the states' labels, in flat-index order."""
        levels = [list(v.values) for v in self.variables]
        return pd.MultiIndex.from_product(levels, names=self.names)

    def label(self, s: int) -> tuple:
        """The labels of state ``s`` as plain Python values, e.g. ``(1, 'hi')``."""
        codes = self.codes[int(s)]
        return tuple(_plain(v.values[c]) for v, c in zip(self.variables, codes, strict=True))

    def flat_index(self, state: dict | None = None, **codes_or_labels) -> np.ndarray:
        """Flat index of states given by labels.

        Parameters
        ----------
        state : dict, optional
            Mapping from variable name to a label or an array of labels.
        **codes_or_labels
            The same, as keyword arguments.

        Returns
        -------
        numpy.ndarray
            The flat indices (a 0-d array for a single state).
        """
        given = dict(state or {}, **codes_or_labels)
        missing = [n for n in self.names if n not in given]
        if missing:
            raise KeyError(f"flat_index needs a value for every state variable; missing "
                           f"{missing}")
        shape = np.broadcast(*[np.asarray(given[n], dtype=object) for n in self.names]).shape
        flat = np.zeros(shape, dtype=np.int64)
        for j, v in enumerate(self.variables):
            labels = np.asarray(given[v.name], dtype=object)
            codes = np.vectorize(v.code, otypes=[np.int64])(labels) if labels.size else labels
            flat = flat + np.asarray(codes, dtype=np.int64) * self.strides[j]
        return flat


def _plain(x):
    """A numpy scalar as the Python value it holds (for readable messages)."""
    return x.item() if isinstance(x, np.generic) else x


def _has_strings(values: tuple) -> bool:
    return any(not isinstance(x, (int, np.integer, float, np.floating, bool)) for x in values)
