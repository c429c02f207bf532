//! `/rollback` and `/restart`: replacing a service's container and waiting for health.
//!
//! What an engineer does by hand in the runbooks, as code: [`plan()`] inspects the
//! service's container and picks the target image; once operators confirmed,
//! [`start`] runs the operation in its own task and reports [`Progress`] on a watch
//! channel (the command module only renders it); [`recover`] runs at start-up and
//! fixes up an operation a previous Klaxon left half done.
//!
//! A rollback never destroys the old container before the new one is healthy: it is
//! stopped and renamed out of the way, and put back (renamed, started) when the new
//! one does not become healthy in time. Every step goes to the audit log and to the
//! deployment history ([`crate::store::deployments`]).
//!
//! - [`model`]: the errors and the progress an operation reports (what is
//!   confirmed, and the locks, are [`crate::ops_locks`]'s, which `App` holds);
//! - [`plan`]: what may run (image policy) and the plan shown to the member;
//! - [`spec`]: copying a container's settings onto a new image;
//! - [`autocomplete`]: the `to` choices;
//! - [`run`]: the state machine of a confirmed operation;
//! - [`recover`]: fixing up at start-up what a previous Klaxon left half done;
//! - [`replicas`]: compose services (their engine, their replicas, the start-up
//!   warning and recovery of a half-done rolling operation);
//! - [`rolling`]: `/rollback` and `/restart` of replicas, one at a time, with put-back;
//! - [`scale`]: `/scale`, replicas added (cloned) or removed.
//! - [`swarm`]: the same operations for a Docker Swarm service (issue #16).

pub mod autocomplete;
pub mod model;
pub mod plan;
pub mod recover;
pub mod replicas;
pub mod rolling;
pub mod run;
pub mod scale;
pub mod spec;
pub mod swarm;

pub use crate::docker::images::{normalize_repository, repository, ImageInfo};
pub use crate::ops_locks::{
    Action, Approval, Confirmed, HealthWait, Holder, Locks, Pending, Plan, TargetSource,
};
pub use crate::settings::rollout::{RolloutConfig, MAX_HEALTH_TIMEOUT_SECS};
pub use autocomplete::{image_choices, ImageChoice};
pub use model::{Phase, Progress, RolloutError};
pub use plan::{check_free, plan, valid_repository};
pub use recover::{recover, Recovery};
pub use run::start;
pub use scale::plan_scale;
pub use spec::recreate_body;
