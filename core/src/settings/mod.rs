//! What `App` holds from the config, one file per area.
//!
//! A leaf of the module graph: it imports no domain module, so `app` can hold these
//! values while the domain modules (alerts, incidents, maintenance, rollout, ...) take
//! the application as their context without an import circle.

pub mod digests;
pub mod heartbeats;
pub mod incidents;
pub mod logs;
pub mod maintenance;
pub mod oncall;
pub mod retention;
pub mod rollout;
pub mod services;
pub mod status_page;
pub mod subscriptions;
