"""Data sets: John Rust's (1987) bus engine replacement data.

``load_rust_bus`` returns the long bus-month panel of Rust, J. (1987), "Optimal Replacement of GMC
Bus Engines: An Empirical Model of Harold Zurcher", *Econometrica* 55(5), 999-1033;
``rust_bus_files`` locates and verifies the data files. The files ship with the package
(``ddc/datasets/rust1987``, with their provenance, format notes and checksums).
"""

from ddc.datasets.rust import (
    DATA_ENV_VAR,
    RUST_BUS_GROUPS,
    ChecksumWarning,
    RustBusGroup,
    load_rust_bus,
    rust_bus_files,
    shipped_data_dir,
)

__all__ = ["DATA_ENV_VAR", "RUST_BUS_GROUPS", "ChecksumWarning", "RustBusGroup", "load_rust_bus",
           "rust_bus_files", "shipped_data_dir"]
