//! Settings of the `maintenance` area: `[maintenance]` in the config and its parsed
//! form, which `App` holds.
//!
//! A leaf (see `settings`): `App` holds these without importing `maintenance`.

use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// `[maintenance]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// The IANA time zone the team plans in (`Europe/Berlin`); times typed without
    /// an offset are read in it, and announcements show it beside UTC.
    pub timezone: String,
    /// When to remind the incidents channel before a window starts.
    pub announce_before: Vec<String>,
    /// The longest window `/maintenance` accepts.
    pub max_duration: String,
    /// How often the scheduler looks for windows to start, end or announce.
    pub tick_secs: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            timezone: "UTC".into(),
            announce_before: vec!["48h".into(), "1h".into()],
            max_duration: "24h".into(),
            tick_secs: 5,
        }
    }
}

/// [`MaintenanceConfig`], parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub tz: Tz,
    /// Lead times, longest first.
    pub leads: Vec<Duration>,
    pub max: Duration,
    pub tick: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(&MaintenanceConfig::default()).unwrap_or(Settings {
            tz: Tz::UTC,
            leads: Vec::new(),
            max: Duration::from_secs(86_400),
            tick: Duration::from_secs(5),
        })
    }
}

impl Settings {
    /// Every problem of the section, named by its key.
    pub fn new(c: &MaintenanceConfig) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let tz = c.timezone.parse::<Tz>().unwrap_or_else(|_| {
            problems.push(format!(
                "maintenance.timezone: `{}` is not an IANA time zone (e.g. UTC, Europe/Berlin)",
                c.timezone
            ));
            Tz::UTC
        });
        let mut leads = Vec::new();
        for l in &c.announce_before {
            match crate::timefmt::parse_duration(l).filter(|d| !d.is_zero()) {
                Some(d) => leads.push(d),
                None => problems.push(format!(
                    "maintenance.announce_before: `{l}` is not a duration such as 48h or 1h"
                )),
            }
        }
        leads.sort_by(|a, b| b.cmp(a));
        leads.dedup();
        let max = match crate::timefmt::parse_duration(&c.max_duration).filter(|d| !d.is_zero()) {
            Some(d) => d,
            None => {
                problems.push(format!(
                    "maintenance.max_duration: `{}` is not a duration such as 24h",
                    c.max_duration
                ));
                Duration::from_secs(86_400)
            }
        };
        if c.tick_secs == 0 || c.tick_secs > 60 {
            problems.push("maintenance.tick_secs: between 1 and 60".into());
        }
        if problems.is_empty() {
            Ok(Settings {
                tz,
                leads,
                max,
                tick: Duration::from_secs(c.tick_secs),
            })
        } else {
            Err(problems)
        }
    }
}
