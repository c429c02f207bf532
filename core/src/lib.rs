//! Klaxon's domain and its backends.
//!
//! This crate knows nothing about serenity or poise: everything it sends to chat goes
//! through [`chat::ChatSink`], so the same logic runs behind the Discord client, the
//! command-line tools and the tests.

pub mod actor;
pub mod alert;
pub mod alerts;
pub mod app;
pub mod audit;
pub mod builder;
pub mod chat;
pub mod clock;
pub mod delivery;
pub mod digests;
pub mod docker;
pub mod events;
pub mod follows;
pub mod health;
pub mod incidents;
pub mod leader;
pub mod log_reads;
pub mod logs;
pub mod maintenance;
pub mod metrics;
pub mod mirror;
pub mod observe;
pub mod oncall;
pub mod ops_locks;
pub mod permissions;
pub mod posts;
pub mod probe;
pub mod retention;
pub mod rollout;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod severity;
pub mod status_page;
pub mod store;
pub mod subscriptions;
pub mod swarm;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod timefmt;
pub mod user_facing;

pub use app::App;
pub use builder::AppBuilder;
