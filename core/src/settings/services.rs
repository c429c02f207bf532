//! Settings of the `services` area (filled in by the architecture step).
