//! Alerts: what the intake accepts (Alertmanager, Grafana, a generic schema for
//! scripts), how it is stored and deduplicated. Grouping and delivery build on this.
//!
//! - [`intake`]: a notification's alerts into groups, silences and windows;
//! - [`render`]: a group into chat messages (pure);
//! - [`deliver`]: due groups into the outbox, and repeats;
//! - [`sender`]: the outbox to chat, channel by channel;
//! - [`groups`]: what the buttons under a group's message read and write.
//!
//! The SQL of all of it is in [`crate::store::alerts`] and [`crate::store::outbox`];
//! the alert model is the leaf [`crate::alert`], routing the leaf [`crate::routing`].

pub mod deliver;
pub mod events;
pub mod groups;
pub mod heartbeats;
pub mod hosts;
pub mod intake;
pub mod parse;
pub mod probes;
pub mod render;
pub mod sender;
pub mod silence;
pub mod swarm_tasks;

pub use crate::alert::{fingerprint_of, Alert, AlertStatus, Source};
