//! Settings of the `maintenance` area (filled in by the architecture step).
