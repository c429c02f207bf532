//! The incident aggregate as it is stored: its vocabulary (status, roles, ids, who
//! acted) and its records (the incident, timeline entries, actions).
//!
//! Beside the SQL in `store::incidents`, so the storage layer names these types
//! without importing the `incidents` domain module (which imports the store);
//! `incidents::model` re-exports them as the incident vocabulary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Investigating,
        Status::Identified,
        Status::Monitoring,
        Status::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Investigating => "investigating",
            Status::Identified => "identified",
            Status::Monitoring => "monitoring",
            Status::Resolved => "resolved",
        }
    }

    /// As stakeholders read it: `Investigating`.
    pub fn title(self) -> &'static str {
        match self {
            Status::Investigating => "Investigating",
            Status::Identified => "Identified",
            Status::Monitoring => "Monitoring",
            Status::Resolved => "Resolved",
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Status::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                format!(
                    "`{t}` is not a status: use investigating, identified, monitoring or resolved"
                )
            })
    }
}

/// The incident roles of the runbooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Commander,
    Comms,
    Scribe,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Commander => "commander",
            Role::Comms => "comms",
            Role::Scribe => "scribe",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "commander" | "ic" => Ok(Role::Commander),
            "comms" | "communications" => Ok(Role::Comms),
            "scribe" => Ok(Role::Scribe),
            other => Err(format!(
                "`{other}` is not an incident role: use commander, comms or scribe"
            )),
        }
    }
}

/// An incident number as members write it: `INC-7`, `inc-7` or `7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentId(pub i64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{}", self.0)
    }
}

impl FromStr for IncidentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("INC-")
            .or_else(|| t.strip_prefix("inc-"))
            .or_else(|| t.strip_prefix("Inc-"))
            .unwrap_or(t);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 => Ok(IncidentId(n)),
            _ => Err(format!(
                "`{}` is not an incident id: write it as INC-7",
                crate::chat::truncate(t, 40)
            )),
        }
    }
}

use crate::actor::Actor;

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: IncidentId,
    pub title: String,
    pub severity: Severity,
    pub status: Status,
    pub service: Option<String>,
    pub summary: String,
    pub guild_id: Option<u64>,
    pub channel_id: Option<u64>,
    pub card_message_id: Option<u64>,
    pub commander: Actor,
    pub comms: Option<Actor>,
    pub scribe: Option<Actor>,
    pub opened_ms: i64,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    /// When an escalation first paged someone for it (MTTA starts there, else at
    /// `opened_ms`).
    pub first_page_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub last_update_ms: i64,
    pub next_page_ms: Option<i64>,
    pub next_update_ms: Option<i64>,
    pub root_cause: String,
    pub resolution: String,
    pub impact: String,
    pub lessons: String,
    pub postmortem: Option<String>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status != Status::Resolved
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Opened,
    Ack,
    Status,
    Severity,
    Role,
    Note,
    Action,
    Resolved,
    Command,
    Alert,
    Message,
    Reminder,
    /// A maintenance window of the service started, ended, changed.
    Maintenance,
}

impl EntryKind {
    pub const ALL: [EntryKind; 13] = [
        EntryKind::Opened,
        EntryKind::Ack,
        EntryKind::Status,
        EntryKind::Severity,
        EntryKind::Role,
        EntryKind::Note,
        EntryKind::Action,
        EntryKind::Resolved,
        EntryKind::Command,
        EntryKind::Alert,
        EntryKind::Message,
        EntryKind::Reminder,
        EntryKind::Maintenance,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Opened => "opened",
            EntryKind::Ack => "ack",
            EntryKind::Status => "status",
            EntryKind::Severity => "severity",
            EntryKind::Role => "role",
            EntryKind::Note => "note",
            EntryKind::Action => "action",
            EntryKind::Resolved => "resolved",
            EntryKind::Command => "command",
            EntryKind::Alert => "alert",
            EntryKind::Message => "message",
            EntryKind::Reminder => "reminder",
            EntryKind::Maintenance => "maintenance",
        }
    }
    pub(crate) fn parse(s: &str) -> EntryKind {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(EntryKind::Note)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub at_ms: i64,
    pub kind: EntryKind,
    pub actor_id: Option<u64>,
    pub actor_name: String,
    pub text: String,
    pub message_id: Option<u64>,
    pub permalink: String,
    pub attachments: Vec<String>,
    pub edited_ms: Option<i64>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub number: i64,
    pub text: String,
    pub created_ms: i64,
    pub created_by: String,
    pub done_ms: Option<i64>,
    pub done_by: Option<String>,
}

/// A new timeline entry.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    pub at_ms: i64,
    pub kind: Option<EntryKind>,
    pub actor: Actor,
    pub text: String,
}

impl NewEntry {
    pub fn new(kind: EntryKind, at_ms: i64, actor: &Actor, text: impl Into<String>) -> NewEntry {
        NewEntry {
            at_ms,
            kind: Some(kind),
            actor: actor.clone(),
            text: text.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub summary: String,
    pub guild_id: Option<u64>,
    pub commander: Actor,
    pub opened_ms: i64,
    pub next_page_ms: Option<i64>,
    pub next_update_ms: Option<i64>,
    /// `false`: kept off the public status page (`/incident open ... public:false`).
    pub public: bool,
}
