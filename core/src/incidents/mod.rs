//! The incident lifecycle: open, acknowledge, status updates, roles, notes,
//! actions, resolution; the incident's thread, the stakeholder notices, reminders
//! from the database, and the timeline every step writes.
//!
//! What Klaxon posts about an incident (the card, the stakeholder notices and pages,
//! the reminders) goes through the posts outbox ([`crate::posts`]): stored after the
//! change, delivered by the leader's worker in order, retried until Discord takes
//! it. Discord failing never undoes the change in the database: the record is the
//! truth. Only the room (thread or channel) is created directly at open, so the reply
//! can link to it; if that fails the worker creates it later ([`room`]).
//!
//! One thing per file: [`lifecycle`] (the changes members make), [`render`] (card,
//! notice, channel name), [`remind`] (the reminder worker), [`room`] (the room and
//! the card's id, for the posts worker), [`feed`] (what other
//! areas add: command runs, alerts), [`postmortem`]; the vocabulary in [`model`]
//! and the SQL in [`crate::store::incidents`]. Here: the errors,
//! text helpers and the reads every file shares.

pub mod feed;
pub mod lifecycle;
pub mod model;
pub mod postmortem;
pub mod remind;
pub mod render;
pub mod room;
pub mod stats;

pub use crate::store::incidents::{Action, Entry, EntryKind, Incident, NewEntry};

use crate::store::incidents as db;
pub use feed::*;
pub use lifecycle::*;
pub use model::*;
pub use remind::*;
pub use render::*;

use crate::app::App;
use crate::store::StoreError;

/// The `custom_id` prefix of the incident card's buttons.
pub const PREFIX: &str = "incident";

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("There is no incident {0}.")]
    Unknown(IncidentId),
    #[error(
        "{0} is resolved; it takes no more changes. Open a new incident if the problem is back."
    )]
    Resolved(IncidentId),
    #[error("{0} was already acknowledged by {1}.")]
    AlreadyAcked(IncidentId, String),
    #[error("{0}")]
    Invalid(String),
    #[error("No incidents channel is configured (`channels.incidents`): Klaxon has nowhere to open the incident.")]
    NoChannel,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IncidentError {
    /// Whether the text is for the member (everything but a database failure).
    pub fn is_user_facing(&self) -> bool {
        !matches!(self, IncidentError::Store(_))
    }
}

impl crate::user_facing::UserFacing for IncidentError {
    fn user_text(&self) -> Option<String> {
        self.is_user_facing().then(|| self.to_string())
    }
}

/// A member's text, trimmed, not empty and at most `max` characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<String, IncidentError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(IncidentError::Invalid(format!("The {what} is empty.")));
    }
    let n = t.chars().count();
    if n > max {
        return Err(IncidentError::Invalid(format!(
            "The {what} is {n} characters long; at most {max} fit."
        )));
    }
    Ok(t.to_string())
}

fn minutes(m: u64) -> i64 {
    (m as i64) * 60_000
}

impl App {
    fn severity_config(&self, s: Severity) -> SeverityRule {
        self.incidents.severity.get(s)
    }

    /// The role an incident of severity `s` pages. None when the severity has an
    /// escalation policy: the policy pages the people (issue #14).
    fn pages(&self, s: Severity) -> Option<u64> {
        self.incidents
            .on_call_role
            .filter(|_| self.severity_config(s).page && self.escalation(s).is_none())
    }

    fn escalation(&self, s: Severity) -> Option<&str> {
        self.incidents.severity.escalation(s)
    }

    fn next_update(&self, s: Severity, from_ms: i64) -> Option<i64> {
        match self.severity_config(s).update_minutes {
            0 => None,
            m => Some(from_ms + minutes(m)),
        }
    }
}

async fn load(app: &App, id: IncidentId) -> Result<Incident, IncidentError> {
    db::get(&app.store, id)
        .await?
        .ok_or(IncidentError::Unknown(id))
}

/// After `db::change` said nothing changed: why.
async fn why_unchanged(app: &App, id: IncidentId) -> IncidentError {
    match db::get(&app.store, id).await {
        Ok(Some(_)) => IncidentError::Resolved(id),
        Ok(None) => IncidentError::Unknown(id),
        Err(e) => e.into(),
    }
}

async fn apply(
    app: &App,
    id: IncidentId,
    change: db::Change<'_>,
) -> Result<Incident, IncidentError> {
    match db::change(&app.store, id, change).await? {
        Some(i) => Ok(i),
        None => Err(why_unchanged(app, id).await),
    }
}

/// The incident an invocation is about: the one given, else the one whose thread
/// the member is in.
pub async fn resolve_id(
    app: &App,
    given: Option<&str>,
    channel_id: u64,
) -> Result<IncidentId, IncidentError> {
    if let Some(g) = given.filter(|g| !g.trim().is_empty()) {
        return g.parse().map_err(IncidentError::Invalid);
    }
    match db::by_channel(&app.store, channel_id).await? {
        Some(i) => Ok(i.id),
        None => Err(IncidentError::Invalid(
            "Outside an incident thread, name the incident: `id:INC-7`.".into(),
        )),
    }
}

pub async fn get(app: &App, id: IncidentId) -> Result<Incident, IncidentError> {
    load(app, id).await
}

pub async fn list_open(app: &App) -> Result<Vec<Incident>, IncidentError> {
    Ok(db::list_open(&app.store).await?)
}

pub async fn timeline(app: &App, id: IncidentId) -> Result<(Incident, Vec<Entry>), IncidentError> {
    let incident = load(app, id).await?;
    Ok((incident, db::timeline(&app.store, id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::{date_time, duration_text, hhmm};

    #[test]
    fn times_read_in_utc() {
        // 2026-12-01 14:03:00 UTC
        let t = 1_796_133_780_000;
        assert_eq!(hhmm(t), "14:03 UTC");
        assert_eq!(date_time(t), "2026-12-01 14:03 UTC");
        assert_eq!(duration_text(72 * 60_000), "1h 12m");
    }

    #[test]
    fn channel_names_are_discord_style() {
        assert_eq!(
            channel_name(IncidentId(7), "Checkout API: down (EU)!"),
            "inc-7-checkout-api-down-eu"
        );
    }

    #[test]
    fn texts_are_checked() {
        assert!(check_text("note", "  ", 10).is_err());
        assert!(check_text("note", &"x".repeat(11), 10).is_err());
        assert_eq!(check_text("note", " ok ", 10).unwrap(), "ok");
    }
}
