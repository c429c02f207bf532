//! What the rest of Klaxon sees of an operation besides the plan: why it was
//! refused ([`RolloutError`]) and how it goes ([`Progress`]).

use std::time::Duration;

use crate::docker::{DockerError, UnknownHost};
use crate::ops_locks::{Action, HealthWait, Holder};
use crate::settings::services::UnknownService;
use crate::store::deployments::Deployment;
use crate::store::StoreError;

/// Refusals and failures before anything changed. The texts are written for the
/// member; only `Store` is internal.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    #[error(transparent)]
    UnknownHost(#[from] UnknownHost),
    #[error("`{0}` has no container configured, so there is nothing to roll back or restart.")]
    NoContainer(String),
    #[error("{0}")]
    Busy(Holder),
    #[error("{0}")]
    Docker(#[from] DockerError),
    #[error("No image of `{repo}` older than the running one is known to Docker or to Klaxon's history; name one with `to`.")]
    NoPrevious { repo: String },
    #[error("Image `{0}` is not on the Docker engine; pull it there first.")]
    ImageNotFound(String),
    #[error("`{0}` is not an image reference.")]
    BadImage(String),
    #[error("`{image}` is from `{image_repo}`, and `{service}` may only run images of {allowed}. Add the repository to the service's `allowed_images` in the config to allow it.")]
    ForeignImage {
        service: String,
        image: String,
        image_repo: String,
        /// The repositories allowed, already written for the member.
        allowed: String,
    },
    #[error("`{container}` already runs `{image}`; there is nothing to roll back.")]
    SameImage { container: String, image: String },
    #[error("`{0}` was started with --rm: stopping it would delete it, so Klaxon could not put it back. Recreate it without --rm first.")]
    AutoRemove(String),
    #[error("`{0}` is neither a compose service (`compose = \"project/service\"`) nor a Swarm service (`swarm_service`) in its config, so Klaxon cannot scale it.")]
    NotScalable(String),
    #[error("No container of compose `{compose}` (service `{service}`) is on the Docker engine: start it with `docker compose up` first.")]
    NoReplicas { service: String, compose: String },
    #[error("`{service}` can run 1 to {max} replicas (`[rollback] max_replicas`); {asked} is not possible.")]
    BadScale {
        service: String,
        asked: i64,
        max: u32,
    },
    #[error("`{service}` already runs {replicas} replicas; nothing to change.")]
    SameScale { service: String, replicas: u32 },
    #[error("No replica of `{0}` is running, so there is none to clone; start one first.")]
    NothingToClone(String),
    #[error("database error: {0}")]
    Store(#[from] StoreError),
}

impl RolloutError {
    /// Whether the text is meant for the member (everything but database trouble).
    pub fn is_user_facing(&self) -> bool {
        !matches!(self, RolloutError::Store(_))
    }
}

impl crate::user_facing::UserFacing for RolloutError {
    fn user_text(&self) -> Option<String> {
        self.is_user_facing().then(|| self.to_string())
    }
}

impl Holder {
    pub(super) fn of_row(d: &Deployment) -> Holder {
        Holder {
            service: d.service.clone(),
            action: match d.action.as_str() {
                "restart" => Action::Restart,
                "scale" => Action::Scale,
                _ => Action::Rollback,
            },
            by: d.requested_by_name.clone(),
            since_ms: d.started_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Confirmed; the first Docker call is on its way.
    Confirmed,
    Stopping,
    /// Creating and starting the new container.
    Starting,
    Restarting,
    WaitingHealth {
        waited: Duration,
    },
    Reverting {
        reason: String,
    },
    /// Healthy; for a rollback the old container is gone.
    Done,
    /// Not healthy in time; the original runs again.
    Reverted {
        reason: String,
    },
    /// Something went wrong; `reason` says what is left and what to do.
    Failed {
        reason: String,
    },
}

/// What the command module renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    /// Steps done so far, oldest first, one short line each.
    pub done: Vec<String>,
    /// Since the operation started (the Confirm click).
    pub elapsed: Duration,
    pub health: HealthWait,
    /// The last thing the health wait saw ("health: starting", "HTTP 503").
    pub last_check: Option<String>,
}

impl Progress {
    pub fn is_final(&self) -> bool {
        matches!(
            self.phase,
            Phase::Done | Phase::Reverted { .. } | Phase::Failed { .. }
        )
    }
}
