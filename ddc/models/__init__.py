"""Built-in models: the membership model (one type, or two segments), Rust's bus engine
replacement model and Arcidiacono and Miller's (2011) bus design with an unobserved state."""

from ddc.models.am_bus import am_bus
from ddc.models.membership import membership
from ddc.models.rust_bus import rust_bus
from ddc.models.segments import membership_segments

__all__ = ["am_bus", "membership", "membership_segments", "rust_bus"]
