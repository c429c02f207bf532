//! Settings of the `incidents` area (filled in by the architecture step).
