//! Maintenance windows: planned work on services, announced to stakeholders ahead
//! of time, at the start and at the end; alerts for the services held back (and
//! summarised afterwards) while it runs; `/health` showing "in maintenance" rather
//! than "down"; and, when asked, the services' maintenance flag switched on and off.
//!
//! Windows live in the database (`store::maintenance`) with one column per step
//! still to do. A window is moved on from the commands ([`change`]) and from the
//! scheduler's [`tick`], one at a time (`App::maintenance_lock`), so a restart in
//! the middle of a window picks up exactly where the last run stopped, and an end
//! that was missed while Klaxon was down is applied (and announced as late) at the
//! first tick. What is due is decided by the pure [`plan`], apart from
//! [`run`], which performs it: the rules are tested without a database or chat.

pub mod change;
pub mod flag;
pub mod plan;
pub mod run;
pub mod when;

use std::time::Duration;

use tracing::warn;

pub use change::{cancel, check_cancel, check_extend, check_new, create, end, ending, extend};
pub use run::tick;

pub use crate::settings::maintenance::{MaintenanceConfig, Settings};
pub use crate::store::maintenance::{get, in_force, list, Window, WindowState};

use crate::actor::Actor;
use crate::store::StoreError;
use crate::App;

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// Bad input or a refused change; the text is written for the member.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MaintenanceError {
    fn from(e: sqlx::Error) -> Self {
        MaintenanceError::Store(e.into())
    }
}

impl MaintenanceError {
    pub fn is_user_facing(&self) -> bool {
        matches!(self, MaintenanceError::Invalid(_))
    }
}

impl crate::user_facing::UserFacing for MaintenanceError {
    fn user_text(&self) -> Option<String> {
        self.is_user_facing().then(|| self.to_string())
    }
}

fn invalid<T>(text: impl Into<String>) -> Result<T, MaintenanceError> {
    Err(MaintenanceError::Invalid(text.into()))
}

/// `services:` as typed: configured names separated by commas or spaces, or `all`.
pub fn resolve_services(app: &App, text: &str) -> Result<(Vec<String>, bool), MaintenanceError> {
    let words: Vec<&str> = text
        .split([',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return invalid("Name the services, e.g. `api, web`, or `all`.");
    }
    if words.iter().any(|w| w.eq_ignore_ascii_case("all")) {
        if words.len() > 1 {
            return invalid("`all` already means every service: give it alone.");
        }
        if app.services.is_empty() {
            return invalid("No services are configured.");
        }
        return Ok((app.services.iter().map(|s| s.name.clone()).collect(), true));
    }
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let svc = app
            .service(w)
            .map_err(|e| MaintenanceError::Invalid(e.to_string()))?;
        if !out.contains(&svc.name) {
            out.push(svc.name.clone());
        }
    }
    Ok((out, false))
}

/// A window to create: `/maintenance start` (starting now) or `schedule`.
#[derive(Debug, Clone)]
pub struct NewWindow {
    pub services: Vec<String>,
    pub all: bool,
    pub reason: String,
    pub flag: bool,
    pub starts_ms: i64,
    pub duration: Duration,
    pub by: Actor,
}

/// What a command did, for its reply.
#[derive(Debug, Clone)]
pub struct Done {
    pub window: Window,
    /// What happened beyond the change itself (the flag's steps), one line each.
    pub notes: Vec<String>,
}

/// Services in a window now, for `/health`: (service, one line about the window).
pub async fn health_notes(app: &App) -> Vec<(String, String)> {
    let now = app.clock.now_ms();
    match in_force(&app.store, now).await {
        Ok(windows) => windows
            .iter()
            .flat_map(|w| {
                let line = format!(
                    "🔧 maintenance #{} until {}: {}",
                    w.id,
                    when::time_text(w.ends_ms, now, app.maintenance.tz),
                    w.reason
                );
                w.services.iter().map(move |s| (s.clone(), line.clone()))
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "maintenance windows not read for /health");
            Vec::new()
        }
    }
}
