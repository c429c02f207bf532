//! `[logs]`: redaction patterns, follow and read limits of `/logs`.
//!
//! A leaf (serde only), so that `App` holds it without importing the logs domain;
//! the checks that need the redactor (`validate`, `redactor`) stay in
//! the `logs` module.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Follow mode runs at most this long, whatever the config says.
pub const MAX_FOLLOW: Duration = Duration::from_secs(3_600);

/// `[logs]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Extra redaction patterns (regular expressions), applied after the built-in
    /// ones. The whole match is redacted, or only a group named `secret` if the
    /// pattern has one.
    pub redact: Vec<String>,
    /// How long `/logs follow:true` runs at most, in minutes.
    pub follow_minutes: u64,
    /// The same in seconds; overrides `follow_minutes` when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_seconds: Option<u64>,
    /// Deadline on one whole read of a container's log, in seconds.
    pub read_timeout_secs: u64,
    /// `/logs` reads running at once; more wait their turn (each may hold
    /// 5,000 lines of up to 4 KiB while it renders them).
    pub max_concurrent_reads: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            redact: Vec::new(),
            follow_minutes: 5,
            follow_seconds: None,
            read_timeout_secs: 120,
            max_concurrent_reads: crate::log_reads::DEFAULT_CONCURRENT_READS,
        }
    }
}

impl LogsConfig {
    /// How long a follow runs.
    pub fn follow_limit(&self) -> Duration {
        let d = match self.follow_seconds {
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(self.follow_minutes.saturating_mul(60)),
        };
        d.min(MAX_FOLLOW)
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs.max(1))
    }
}
