//! Settings of the `logs` area (filled in by the architecture step).
