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
    /// `"project/service"`: the service is the replicas of a compose service, the
    /// containers labelled `com.docker.compose.project` / `.service` (instead of
    /// one `container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<String>,
    /// A Docker Swarm service instead of a container (exactly one of the two):
    /// `/health` shows its tasks, `/rollback` and `/restart` update the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_service: Option<String>,
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

    /// `compose` split into project and service, when it is set and well formed.
    pub fn compose_parts(&self) -> Option<(&str, &str)> {
        compose_parts(self.compose.as_deref()?)
    }

    /// Whether Docker holds something of it to operate on (a container or replicas).
    pub fn has_containers(&self) -> bool {
        self.container.is_some() || self.compose.is_some()
    }

    /// check-config's rules for `swarm_service` (issue #16): a service is either a
    /// container or a Swarm service, never both, and the name must be one Docker
    /// accepts (it reaches the engine's URL paths).
    pub fn swarm_problems(&self, key: &str) -> Vec<String> {
        let mut errs = Vec::new();
        let Some(name) = &self.swarm_service else {
            return errs;
        };
        if self.container.is_some() {
            errs.push(format!(
                "{key}.swarm_service: `{}` names both `container` and `swarm_service`; a service is one container or one Swarm service: remove one of them",
                self.name
            ));
        }
        let valid = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(['-', '.', '_'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            errs.push(format!(
                "{key}.swarm_service: `{name}` is not a Swarm service name (letters, digits, `-`, `_`, `.`; at most 63)"
            ));
        }
        errs
    }
}

/// `"project/service"` → `("project", "service")`; `None` unless both are
/// non-empty and free of `/` and whitespace.
pub fn compose_parts(s: &str) -> Option<(&str, &str)> {
    let (project, service) = s.split_once('/')?;
    let ok = |p: &str| !p.is_empty() && !p.contains('/') && !p.chars().any(char::is_whitespace);
    (ok(project) && ok(service)).then_some((project, service))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(container: Option<&str>, swarm: Option<&str>) -> ServiceConfig {
        ServiceConfig {
            name: "api".into(),
            container: container.map(String::from),
            health_url: None,
            maintenance_flag: None,
            allowed_images: Vec::new(),
            compose: None,
            swarm_service: swarm.map(String::from),
            host: None,
        }
    }

    #[test]
    fn swarm_service_and_container_are_exclusive() {
        assert!(svc(Some("api"), None)
            .swarm_problems("services[0]")
            .is_empty());
        assert!(svc(None, Some("web_api.1"))
            .swarm_problems("services[0]")
            .is_empty());
        let both = svc(Some("api"), Some("api")).swarm_problems("services[0]");
        assert_eq!(both.len(), 1);
        assert!(
            both[0].starts_with("services[0].swarm_service:"),
            "{both:?}"
        );
        let bad = svc(None, Some("../x")).swarm_problems("services[2]");
        assert!(
            bad[0].starts_with("services[2].swarm_service: `../x`"),
            "{bad:?}"
        );
    }
}
