//! Incident vocabulary: severities, statuses, roles, ids, and the configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    P1,
    P2,
    P3,
    P4,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::P1, Severity::P2, Severity::P3, Severity::P4];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
            Severity::P4 => "P4",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| format!("`{t}` is not a severity: use P1, P2, P3 or P4"))
    }
}

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

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Who {
    pub id: u64,
    pub name: String,
}

/// One severity's definition and response targets, as resolved from the defaults
/// and the config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityRule {
    /// What the level means, shown on the card.
    pub description: String,
    /// No acknowledgement within this many minutes re-pages the on-call role.
    pub ack_minutes: u64,
    /// No status update for this many minutes reminds the commander (0: never).
    pub update_minutes: u64,
    /// Whether opening the incident pages the on-call role.
    pub page: bool,
}

/// `[incidents.severity.P1]`: every key optional. What is left out keeps that
/// level's default, so overriding `ack_minutes` alone never switches paging off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Severities {
    #[serde(rename = "P1", default)]
    pub p1: SeverityConfig,
    #[serde(rename = "P2", default)]
    pub p2: SeverityConfig,
    #[serde(rename = "P3", default)]
    pub p3: SeverityConfig,
    #[serde(rename = "P4", default)]
    pub p4: SeverityConfig,
}

/// Defaults from common runbooks.
fn default_rule(s: Severity) -> SeverityRule {
    let (description, ack_minutes, update_minutes, page) = match s {
        Severity::P1 => ("Service down or data at risk", 15, 30, true),
        Severity::P2 => ("Major feature broken", 60, 30, true),
        Severity::P3 => ("Minor feature broken or degraded", 240, 0, false),
        Severity::P4 => ("Non-urgent; next business day", 24 * 60, 0, false),
    };
    SeverityRule {
        description: description.into(),
        ack_minutes,
        update_minutes,
        page,
    }
}

impl Severities {
    pub fn get(&self, s: Severity) -> SeverityRule {
        let c = match s {
            Severity::P1 => &self.p1,
            Severity::P2 => &self.p2,
            Severity::P3 => &self.p3,
            Severity::P4 => &self.p4,
        };
        let d = default_rule(s);
        SeverityRule {
            description: c.description.clone().unwrap_or(d.description),
            ack_minutes: c.ack_minutes.unwrap_or(d.ack_minutes),
            update_minutes: c.update_minutes.unwrap_or(d.update_minutes),
            page: c.page.unwrap_or(d.page),
        }
    }
}

/// Where an incident is worked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Room {
    /// A public thread in the incidents channel (no extra permission needed).
    #[default]
    Thread,
    /// A dedicated text channel (`inc-7-checkout-down`), under `category_id` when set;
    /// needs the Manage Channels permission.
    Channel,
}

/// `[incidents]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    #[serde(default)]
    pub room: Room,
    /// The category new incident channels go under (`room = "channel"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<u64>,
    /// The Discord role paged for P1/P2 (an explicit role mention; nothing else pings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call_role: Option<u64>,
    /// How often the reminder worker looks for overdue acks and updates.
    #[serde(default = "default_tick")]
    pub reminder_tick_secs: u64,
    #[serde(default)]
    pub severity: Severities,
}

fn default_tick() -> u64 {
    30
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            room: Room::Thread,
            category_id: None,
            on_call_role: None,
            reminder_tick_secs: default_tick(),
            severity: Severities::default(),
        }
    }
}

impl IncidentsConfig {
    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.reminder_tick_secs == 0 || self.reminder_tick_secs > 3_600 {
            out.push("incidents.reminder_tick_secs: must be between 1 and 3600".into());
        }
        for s in Severity::ALL {
            let c = self.severity.get(s);
            if c.ack_minutes == 0 || c.ack_minutes > 7 * 24 * 60 {
                out.push(format!(
                    "incidents.severity.{s}.ack_minutes: between 1 and 10080 (a week)"
                ));
            }
            if c.description.trim().is_empty() || c.description.chars().count() > 100 {
                out.push(format!(
                    "incidents.severity.{s}.description: 1 to 100 characters"
                ));
            }
        }
        out
    }
}

/// Longest note, summary or modal answer Klaxon takes: what a Discord modal's text
/// input allows.
pub const MAX_TEXT: usize = 4_000;
/// Longest title: it must fit a thread name with the `INC-n` prefix.
pub const MAX_TITLE: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_at_the_edge() {
        assert_eq!("INC-7".parse::<IncidentId>(), Ok(IncidentId(7)));
        assert_eq!(" inc-12 ".parse::<IncidentId>(), Ok(IncidentId(12)));
        assert_eq!("3".parse::<IncidentId>(), Ok(IncidentId(3)));
        assert!("INC-0".parse::<IncidentId>().is_err());
        assert!("INC-x".parse::<IncidentId>().is_err());
        assert_eq!(IncidentId(7).to_string(), "INC-7");
    }

    #[test]
    fn vocabulary_parses_case_insensitively() {
        assert_eq!("p1".parse::<Severity>(), Ok(Severity::P1));
        assert!("P5".parse::<Severity>().is_err());
        assert_eq!("Identified".parse::<Status>(), Ok(Status::Identified));
        assert_eq!("IC".parse::<Role>(), Ok(Role::Commander));
    }

    #[test]
    fn a_partial_override_keeps_the_levels_defaults() {
        let c: IncidentsConfig =
            toml::from_str("[severity.P1]\nack_minutes = 5\n").expect("parses");
        let p1 = c.severity.get(Severity::P1);
        assert_eq!(p1.ack_minutes, 5);
        assert!(p1.page, "paging stays on");
        assert_eq!(p1.update_minutes, 30);
    }

    #[test]
    fn defaults_follow_the_runbooks() {
        let c = IncidentsConfig::default();
        assert_eq!(c.severity.get(Severity::P1).ack_minutes, 15);
        assert_eq!(c.severity.get(Severity::P2).ack_minutes, 60);
        assert_eq!(c.severity.get(Severity::P3).ack_minutes, 240);
        assert!(c.severity.get(Severity::P2).page && !c.severity.get(Severity::P3).page);
        assert_eq!(c.severity.get(Severity::P1).update_minutes, 30);
        assert!(c.problems().is_empty());
    }
}
