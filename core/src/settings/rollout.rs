//! Settings of the `rollout` area (filled in by the architecture step).
