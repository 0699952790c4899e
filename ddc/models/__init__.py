"""Built-in models and the one registry of models.

The built-ins: the membership model (one type, or two segments), Rust's bus engine replacement
model (also in Su and Judd's 2012 Monte Carlo specification) and Arcidiacono and Miller's (2011)
bus design with an unobserved state. Each is registered by name in :data:`REGISTRY`, which the
command line, the Monte Carlo and cross-validation read (:mod:`ddc.models.registry`):
``get_model("rust_bus", n_states=175)``; a user's own factory is reached the same way as
``get_model("package.module:factory", ...)`` or registered with :func:`register`.
"""

from ddc.models.am_bus import am_bus
from ddc.models.membership import membership
from ddc.models.registry import (
    REGISTRY,
    ModelSpec,
    get_factory,
    get_model,
    parse_options,
    register,
    spec_of,
)
from ddc.models.rust_bus import rust_bus
from ddc.models.segments import membership_segments
from ddc.models.su_judd import su_judd

for _name, _factory in (("membership", membership), ("membership_segments", membership_segments),
                        ("rust_bus", rust_bus), ("su_judd", su_judd), ("am_bus", am_bus)):
    register(_name, _factory)
del _name, _factory

__all__ = ["REGISTRY", "ModelSpec", "am_bus", "get_factory", "get_model", "membership",
           "membership_segments", "parse_options", "register", "rust_bus", "spec_of", "su_judd"]
