//! Docker Swarm services (issue #16): a `[[services]]` entry with `swarm_service =
//! "NAME"` is a Swarm service instead of a container.
//!
//! Swarm already knows how to roll a service's tasks (its `UpdateConfig`) and how
//! to go back (its rollback to the previous spec), so Klaxon does not replace
//! tasks itself as it replaces a container: it changes the service's spec, then
//! follows Swarm until the change converges ([`converge`]) and reports the
//! progress the same way as for a container. `/rollback` and `/restart` run this
//! through the rollout engine (`rollout::swarm`: lock, Confirm, audit and the
//! deployment history as for containers); [`scale`] is the core of `/scale` for a
//! Swarm service, for the command to wire in.
//!
//! - [`status`]: what `/health` shows (tasks, replicas, node, last error);
//! - [`converge`]: changing the spec and following it;
//! - task failures as alerts are `alerts::swarm_tasks`'s (alerts import this
//!   module, not the other way round).
//!
//! Every engine call goes through [`engine`]: the one place that picks the
//! engine a service lives on.

use std::time::Duration;

use crate::app::App;
use crate::docker::{DockerClient, DockerError};
use crate::settings::services::{ServiceConfig, UnknownService};

pub mod converge;
pub mod status;

pub use converge::{Change, Look};
pub use status::{SwarmStatus, TaskLine};

/// The engine a Swarm service is managed through (its manager node).
pub fn engine<'a>(app: &'a App, svc: &ServiceConfig) -> &'a DockerClient {
    app.engine_of(svc)
}

/// Why a Swarm operation did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    #[error("`{0}` is not a Swarm service (it has no `swarm_service` in the config).")]
    NotSwarm(String),
    #[error("{0}")]
    Docker(#[from] DockerError),
    /// Changed, but did not converge in time (the text says what was seen last).
    #[error("`{service}` {reason}")]
    NotConverged { service: String, reason: String },
}

impl crate::user_facing::UserFacing for SwarmError {
    fn user_text(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// The Swarm service of a configured service, by its Klaxon name.
pub fn service<'a>(app: &'a App, name: &str) -> Result<(&'a ServiceConfig, String), SwarmError> {
    let svc = app.service(name)?;
    let swarm = svc
        .swarm_service
        .clone()
        .ok_or_else(|| SwarmError::NotSwarm(svc.name.clone()))?;
    Ok((svc, swarm))
}

/// Sets the replica count of a Swarm service and follows Swarm until `replicas`
/// tasks run (Swarm's health checks gate "running"), at most `timeout`.
/// `progress(waited, text)` is called after each look, as the rollout's health
/// wait reports. Locking, Confirm and audit are the caller's (the `/scale`
/// command takes the service's lock as `/rollback` does). Returns how long it took.
pub async fn scale(
    app: &App,
    service_name: &str,
    replicas: u64,
    timeout: Duration,
    progress: &mut (dyn FnMut(Duration, &str) + Send),
) -> Result<Duration, SwarmError> {
    let (svc, swarm) = service(app, service_name)?;
    let engine = engine(app, svc);
    let (_, since) = converge::apply(engine, &swarm, Change::Replicas(replicas)).await?;
    tracing::info!(service = %svc.name, swarm = %swarm, replicas, "Swarm service scaled; following");
    converge::follow(engine, &swarm, since, timeout, false, progress)
        .await
        .map_err(|reason| SwarmError::NotConverged {
            service: svc.name.clone(),
            reason,
        })
}
