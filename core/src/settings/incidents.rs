//! Settings of the `incidents` area: `[incidents]` in the config, and each
//! severity's response targets resolved from the runbook defaults.
//!
//! A leaf (see `settings`): `App` holds these without importing `incidents`.

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

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
    /// The `[[oncall.policies]]` an incident of this severity starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
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
    /// Where a policy is named (`incidents.severity.P1.escalation`) and the name, for
    /// `settings::oncall::OnCall::new` to check.
    pub fn escalation_refs(&self) -> Vec<(String, String)> {
        [
            (Severity::P1, &self.p1),
            (Severity::P2, &self.p2),
            (Severity::P3, &self.p3),
            (Severity::P4, &self.p4),
        ]
        .into_iter()
        .filter_map(|(s, c)| {
            c.escalation
                .clone()
                .map(|e| (format!("incidents.severity.{s}.escalation"), e))
        })
        .collect()
    }

    /// The escalation policy an incident of severity `s` starts, if any.
    pub fn escalation(&self, s: Severity) -> Option<&str> {
        match s {
            Severity::P1 => &self.p1,
            Severity::P2 => &self.p2,
            Severity::P3 => &self.p3,
            Severity::P4 => &self.p4,
        }
        .escalation
        .as_deref()
    }

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
