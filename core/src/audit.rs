//! The audit log: every invocation, allowed or denied.

use crate::chat::{Span, Text};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran and succeeded.
    Ok,
    /// Refused by Klaxon's permission check.
    Denied,
    /// Ran, and the member got an explanation (bad input, unknown service...).
    UserError,
    /// Ran and failed inside Klaxon or a backend.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::UserError => "user_error",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Ok,
            Outcome::Denied,
            Outcome::UserError,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch, UTC.
    pub at_ms: i64,
    pub guild_id: Option<u64>,
    pub channel_id: Option<u64>,
    pub user_id: u64,
    pub user_name: String,
    /// Qualified command name, e.g. `health` or `incident open`.
    pub command: String,
    /// Arguments as the member gave them, `name=value` separated by spaces.
    pub arguments: String,
    pub outcome: Outcome,
    /// A short reason for anything but `Ok`.
    pub detail: String,
    pub duration_ms: i64,
}

impl AuditEntry {
    /// The `service=` argument, for commands that act on one service.
    pub fn service(&self) -> Option<&str> {
        self.arguments
            .split(' ')
            .find_map(|a| a.strip_prefix("service="))
            .filter(|s| !s.is_empty())
    }

    /// One line for the audit channel, naming the member; the mention never pings,
    /// because the mirror allows no mentions. Cut to the content limit when shown.
    pub fn summary(&self) -> Text {
        let mark = match self.outcome {
            Outcome::Ok => "✅",
            Outcome::Denied => "⛔",
            Outcome::UserError => "⚠️",
            Outcome::Failed => "❌",
        };
        let args = if self.arguments.is_empty() {
            String::new()
        } else {
            format!(" {}", self.arguments)
        };
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", self.detail)
        };
        Text::from(format!("{mark} "))
            .with(Span::User(self.user_id))
            .with(format!(
                " `/{}{}` {}{} ({} ms)",
                self.command,
                args.replace('`', "'"),
                self.outcome.as_str(),
                detail,
                self.duration_ms
            ))
    }
}
