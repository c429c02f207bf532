//! `/rollback` and `/restart`: replacing a service's container and waiting for health.

use serde::{Deserialize, Serialize};

/// `[rollback]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// How long a new container has to become healthy before Klaxon puts the old one back.
    pub health_timeout_secs: u64,
    /// With neither a Docker health check nor a health_url, "healthy" means running this long.
    pub running_secs: u64,
    /// Confirm and Cancel buttons stop working after this many seconds.
    pub confirm_timeout_secs: u64,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            health_timeout_secs: 60,
            running_secs: 10,
            confirm_timeout_secs: 60,
        }
    }
}
