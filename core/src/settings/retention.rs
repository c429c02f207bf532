//! Settings of the `retention` area: `[retention]` in the config, how long old rows
//! are kept before the leader's pruner (`retention.rs` at the crate root) deletes them.
//!
//! Why these defaults: a resolved alert is of little use after a quarter (90 days);
//! a delivered outbox row only serves retries and "same text, no request" checks,
//! a week is plenty; the audit record and the deployment history answer "who did
//! what" for a year. Incidents and their timelines are the team's memory and are
//! kept forever unless `incidents_days` is set.
//!
//! A leaf (see `settings`): `App` holds these without importing the pruner.

use serde::{Deserialize, Serialize};

/// `[retention]` in the config. Days are signed so that a negative value is
/// refused by [`RetentionConfig::problems`] naming its key, not by a type error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Resolved alerts (and their emptied groups, expired silences, maintenance
    /// windows that ended) older than this many days are deleted.
    pub alerts_days: i64,
    /// Delivered (or superseded) outbox rows, this many days after delivery.
    pub outbox_days: i64,
    /// Audit rows (every command invocation).
    pub audit_days: i64,
    /// Finished deployments (`/rollback`, `/restart`) and their steps.
    pub deployments_days: i64,
    /// Resolved incidents with their timelines and actions; unset: kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents_days: Option<i64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            alerts_days: 90,
            outbox_days: 7,
            audit_days: 365,
            deployments_days: 365,
            incidents_days: None,
        }
    }
}

/// The longest retention accepted: 100 years (beyond it, milliseconds overflow
/// nothing, but a typo such as `3650000` is more likely than a wish).
const MAX_DAYS: i64 = 36_500;

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

impl RetentionConfig {
    /// Every problem of the section, named by its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |key: &str, days: i64| {
            if !(1..=MAX_DAYS).contains(&days) {
                out.push(format!(
                    "retention.{key}: must be between 1 and {MAX_DAYS} days (got {days})"
                ));
            }
        };
        check("alerts_days", self.alerts_days);
        check("outbox_days", self.outbox_days);
        check("audit_days", self.audit_days);
        check("deployments_days", self.deployments_days);
        if let Some(days) = self.incidents_days {
            check("incidents_days", days);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_days_are_named() {
        assert!(RetentionConfig::default().problems().is_empty());
        let bad = RetentionConfig {
            alerts_days: 0,
            outbox_days: -3,
            incidents_days: Some(0),
            ..RetentionConfig::default()
        };
        assert_eq!(
            bad.problems(),
            vec![
                "retention.alerts_days: must be between 1 and 36500 days (got 0)",
                "retention.outbox_days: must be between 1 and 36500 days (got -3)",
                "retention.incidents_days: must be between 1 and 36500 days (got 0)",
            ]
        );
    }
}
