"""The one registry of models: names -> model factories, read by the command line, the Monte
Carlo and cross-validation.

A *factory* is a callable returning a :class:`ddc.Model` or a :class:`ddc.Mixture` from keyword
options (``ddc.models.rust_bus(n_states=90, beta=0.9999, cost="linear")``). The built-in
applications are registered under their names (:data:`REGISTRY`); a user registers their own
with :func:`register`, or names it without registering as ``"package.module:factory"``, which
:func:`get_factory` imports. :func:`get_model` builds a model and remembers how
(:func:`spec_of`), so that saved estimation results can record the registry name and options of
their model and the model can be rebuilt from them (:meth:`ModelSpec.build`) and checked against
the results' fingerprint.

Options given as text (the command line's ``--option key=value``) are converted by
:func:`parse_options` against the factory's signature: to the type of the parameter's default
(``bool``, ``int``, ``float``, ``str``), otherwise read as JSON (``[0.3, 0.7]``, ``null``) or, if
that fails, kept as text.

Examples
--------
>>> import ddc
>>> bus = ddc.models.get_model("rust_bus", n_states=20, beta=0.95)
>>> ddc.models.spec_of(bus)
ModelSpec(name='rust_bus', options={'n_states': 20, 'beta': 0.95})
>>> ddc.models.parse_options("rust_bus", {"n_states": "20", "cost": "quadratic"})
{'n_states': 20, 'cost': 'quadratic'}
"""

from __future__ import annotations

import importlib
import inspect
import json
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REGISTRY", "ModelSpec", "get_factory", "get_model", "parse_options", "register",
           "spec_of"]

#: Registered model factories by name (the built-ins are added by :mod:`ddc.models`).
REGISTRY: dict[str, Callable[..., Any]] = {}

_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ModelSpec:
    """How a model was built: a registry name (or ``"package.module:factory"``) and options.

    Attributes
    ----------
    name : str
        The name given to :func:`get_model`.
    options : mapping
        The keyword options passed to the factory.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self):
        """The model again: ``get_model(name, **options)``."""
        return get_model(self.name, **dict(self.options))

    def to_dict(self) -> dict[str, Any] | None:
        """``{"name": ..., "options": {...}}`` as plain JSON, or ``None`` when an option is not
        JSON (an array, a function): such a model cannot be rebuilt from a file."""
        doc = {"name": self.name, "options": dict(self.options)}
        try:
            json.dumps(doc, allow_nan=False)
        except (TypeError, ValueError):
            return None
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ModelSpec:
        """The spec of :meth:`to_dict`."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str) \
                or not isinstance(doc.get("options", {}), Mapping):
            raise ValueError(f"a model spec is {{'name': str, 'options': {{...}}}}, got {doc!r}")
        return cls(doc["name"], dict(doc.get("options", {})))


def register(name: str, factory: Callable[..., Any], *, replace: bool = False) -> None:
    """Add a model factory to :data:`REGISTRY` under ``name``.

    Parameters
    ----------
    name : str
        The name (no ``":"``, which marks ``"package.module:factory"`` names).
    factory : callable
        Keyword options -> a :class:`ddc.Model` or :class:`ddc.Mixture`.
    replace : bool
        Allow replacing a factory already registered under ``name``.

    Raises
    ------
    ValueError
        If the name is taken (and ``replace`` is false) or malformed.
    """
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise ValueError(f"model name {name!r}: give a non-empty name without ':' or spaces "
                         "around it")
    if not callable(factory):
        raise TypeError(f"register({name!r}, ...): the factory must be callable, got "
                        f"{type(factory).__name__}")
    if name in REGISTRY and REGISTRY[name] is not factory and not replace:
        raise ValueError(f"model name {name!r} is already registered "
                         f"({_qualname(REGISTRY[name])}); pass replace=True to replace it")
    REGISTRY[name] = factory


def get_factory(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``, or imported from ``"package.module:factory"``.

    Raises
    ------
    KeyError
        For an unknown name; the message lists the registered names.
    ImportError
        When the module of a ``"module:factory"`` name cannot be imported, or has no such
        attribute, or the attribute is not callable; the message says which.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    if not isinstance(name, str) or ":" not in name:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(REGISTRY)}, or give your "
                       "own factory as 'package.module:function'")
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ImportError(f"model {name!r}: give 'package.module:function' (both parts)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"model {name!r}: cannot import the module {module_name!r} ({exc}); "
                          "is it installed or on PYTHONPATH?") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImportError(f"model {name!r}: the module {module_name!r} has no attribute "
                              f"{attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImportError(f"model {name!r}: {attr!r} in {module_name!r} is a "
                          f"{type(obj).__name__}, not a function returning a model")
    return obj


def get_model(name: str, **options: Any):
    """Build the model ``name`` (registered, or ``"package.module:factory"``) with ``options``.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY` or ``"package.module:factory"``.
    **options
        Keyword arguments of the factory.

    Returns
    -------
    ddc.Model or ddc.Mixture
        The model; :func:`spec_of` returns how it was built.

    Raises
    ------
    TypeError
        If an option is not a parameter of the factory (the message lists those accepted),
        or the factory does not return a model.
    """
    factory = get_factory(name)
    accepted = _parameters(factory)
    if accepted is not None:
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"model {name!r} takes no option(s) {unknown}; accepted: "
                            f"{sorted(accepted) or 'none'}")
    model = factory(**options)
    if not callable(getattr(model, "fingerprint", None)) or not hasattr(model, "param_names"):
        raise TypeError(f"model {name!r}: {_qualname(factory)} returned a "
                        f"{type(model).__name__}, not a ddc.Model or ddc.Mixture")
    try:
        _SPECS[model] = ModelSpec(name, dict(options))
    except TypeError:  # not weakly referenceable: built, but not remembered
        pass
    return model


def spec_of(model: Any) -> ModelSpec | None:
    """How ``model`` was built by :func:`get_model` (``None`` for a model built otherwise,
    including :meth:`ddc.Model.replace` copies)."""
    try:
        return _SPECS.get(model)
    except TypeError:
        return None


def parse_options(name: str, options: Mapping[str, str]) -> dict[str, Any]:
    """Convert text options (``{"n_states": "20"}``) to the types of the factory's parameters.

    A parameter whose default is a ``bool``, ``int``, ``float`` or ``str`` gets that type
    (``true``/``false``/``1``/``0``/``yes``/``no`` for ``bool``; an ``int`` parameter accepts no
    fraction); any other is read as JSON (``[0.3, 0.7]``, ``null``, ``2.5``) or, if the text is
    not JSON, kept as text.

    Raises
    ------
    TypeError
        For an option the factory does not take (the message lists those it takes).
    ValueError
        For a value that is not of the parameter's type (the message names both).
    """
    factory = get_factory(name)
    accepted = _parameters(factory)
    out: dict[str, Any] = {}
    for key, text in options.items():
        if accepted is not None and key not in accepted:
            raise TypeError(f"model {name!r} takes no option {key!r}; accepted: "
                            f"{sorted(accepted) or 'none'}")
        default = accepted[key].default if accepted is not None else inspect.Parameter.empty
        out[key] = _convert(name, key, text, default)
    return out


def _convert(name: str, key: str, text: str, default: Any) -> Any:
    if not isinstance(text, str):
        return text
    where = f"model {name!r} option {key}={text!r}"
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"{where}: give true or false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{where}: give an integer") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{where}: give a number") from None
    if isinstance(default, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of ``factory`` (``None`` when it takes ``**kwargs`` or its
    signature cannot be read: anything is passed through)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    params = {}
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            params[p.name] = p
    return params


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
