//! `[rollback]`: how `/rollback` and `/restart` wait, confirm and stop containers.
//!
//! A leaf (serde only), so that `App` holds it without importing the rollout domain.

use serde::{Deserialize, Serialize};

/// `[rollback]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// How long a new container has to become healthy before Klaxon puts the old one back.
    /// At most [`MAX_HEALTH_TIMEOUT_SECS`]: progress is edited with the click's
    /// interaction token, which Discord honours for 15 minutes.
    pub health_timeout_secs: u64,
    /// With neither a Docker health check nor a health_url, "healthy" means running this long.
    pub running_secs: u64,
    /// Confirm and Cancel buttons stop working after this many seconds.
    pub confirm_timeout_secs: u64,
    /// How long Docker waits after SIGTERM before killing a container it stops or
    /// restarts, unless the container sets its own stop timeout (Docker's default: 10).
    pub stop_timeout_secs: u64,
    /// Services whose rollbacks and restarts need two different operators to confirm.
    pub two_person: Vec<String>,
    /// The most replicas `/scale` may ask for (compose services).
    pub max_replicas: u32,
}

/// The longest health wait Klaxon accepts (see `health_timeout_secs`).
pub const MAX_HEALTH_TIMEOUT_SECS: u64 = 600;

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            health_timeout_secs: 60,
            running_secs: 10,
            confirm_timeout_secs: 60,
            stop_timeout_secs: 10,
            two_person: Vec::new(),
            max_replicas: 20,
        }
    }
}

impl RolloutConfig {
    /// How many different operators must confirm an operation on `service`.
    pub fn approvals_for(&self, service: &str) -> u8 {
        if self
            .two_person
            .iter()
            .any(|s| s.trim().eq_ignore_ascii_case(service))
        {
            2
        } else {
            1
        }
    }
}
