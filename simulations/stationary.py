"""The stationary distribution of a solved model's controlled chain: re-exported from
:mod:`ddc.stationary`, where it lives beside the solver (applications in :mod:`ddc.models`
compute their outcomes from it)."""

from ddc.stationary import (
    DIRECT_MAX_NNZ,
    DIRECT_MAX_STATES,
    BlockStructure,
    MultipleRecurrentClassesError,
    block_structure,
    block_weights,
    permanent_variables,
    stationary_batch,
    stationary_distribution,
    stationary_from_policy,
)

__all__ = [
    "stationary_distribution",
    "stationary_from_policy",
    "stationary_batch",
    "permanent_variables",
    "block_structure",
    "BlockStructure",
    "block_weights",
    "MultipleRecurrentClassesError",
    "DIRECT_MAX_STATES",
    "DIRECT_MAX_NNZ",
]
