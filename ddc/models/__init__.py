"""Built-in models: the membership model and Rust's bus engine replacement model."""

from ddc.models.membership import membership
from ddc.models.rust_bus import rust_bus

__all__ = ["membership", "rust_bus"]
