//! Durations and times as people type and read them: one parser, one formatter.
