//! `/logs`: reading, filtering and redacting container logs.

use serde::{Deserialize, Serialize};

/// `[logs]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Extra redaction patterns (regular expressions), applied after the built-in ones.
    pub redact: Vec<String>,
    /// How long `/logs follow:true` runs at most, in minutes.
    pub follow_minutes: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            redact: Vec::new(),
            follow_minutes: 5,
        }
    }
}
