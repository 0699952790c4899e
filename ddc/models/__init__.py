"""Built-in models: the membership model and Rust's bus engine replacement model."""

from ddc.models.membership import membership
from ddc.models.rust_bus import rust_bus
from ddc.models.segments import membership_segments

__all__ = ["membership", "membership_segments", "rust_bus"]
