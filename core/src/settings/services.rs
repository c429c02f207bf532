//! `[[services]]` and `[health]`: what Klaxon watches and the thresholds it judges by.
//!
//! A leaf (serde only): `App` holds the services, and health, logs, rollouts and
//! maintenance all read them, so the types live apart from every one of those areas.

use serde::{Deserialize, Serialize};

/// `[[services]]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    /// How `/maintenance ... flag:true` switches it into maintenance (default: the
    /// file `/app/MAINTENANCE` in its container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_flag: Option<FlagConfig>,
    /// Repositories besides the container's own whose images `/rollback to:` may
    /// run. A rollback gives the new container the service's environment, mounts
    /// and networks, so by default only the service's own repository is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_images: Vec<String>,
    /// The Docker engine its container runs on: a `[[docker.hosts]]` name
    /// (default `default`, the `[docker] host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl ServiceConfig {
    /// The name of the engine it runs on (`default` when it names none).
    pub fn host_name(&self) -> &str {
        self.host.as_deref().unwrap_or("default")
    }
}

/// `[health]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A probe slower than this marks the service degraded.
    pub response_time_ms: u64,
    /// How long a probe may take before it counts as down.
    pub probe_timeout_ms: u64,
    /// Memory use over this percent of the limit marks the service degraded.
    pub memory_percent: f64,
    /// CPU over this percent (100 = one core, as `docker stats`) marks it degraded.
    pub cpu_percent: f64,
    /// A PEM file of CA certificates trusted for `health_url` probes besides the
    /// bundled roots (services behind an internal CA). Relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            response_time_ms: 5_000,
            probe_timeout_ms: 10_000,
            memory_percent: 80.0,
            cpu_percent: 70.0,
            ca_file: None,
        }
    }
}

/// A service name nobody configured; the text lists the ones that exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No service named `{name}`. Known services: {}.", known.join(", "))]
pub struct UnknownService {
    pub name: String,
    pub known: Vec<String>,
}

/// `[services.maintenance_flag]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagConfig {
    /// The file whose presence means "in maintenance" (default `/app/MAINTENANCE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Instead of a file: the command (argv) that switches maintenance on...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<String>>,
    /// ... and the one that switches it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<Vec<String>>,
    /// Optional with `on`/`off`: exits 0 while maintenance is on, non-zero while off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<String>>,
}
