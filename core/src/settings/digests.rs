//! `[digests]`: the runbooks' morning health check and the weekly review, posted
//! by Klaxon (issue #15). Times are read in `[maintenance] timezone`, the zone the
//! team plans in, so "09:00" is nine in the morning where the team is.
//!
//! A leaf (see `settings`): `App` holds the parsed [`Digests`].

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// `[digests]` in the config. Both digests are off unless their time is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestsConfig {
    /// `"09:00"`: the daily health check, every day at that local time.
    pub daily: Option<String>,
    /// `"Mon 09:00"`: the weekly review, on that day at that local time.
    pub weekly: Option<String>,
    /// The channel both go to; default the incidents channel (`channels.incidents`),
    /// else the alerts channel.
    pub channel: Option<u64>,
}

/// [`DigestsConfig`], parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Digests {
    pub daily: Option<NaiveTime>,
    pub weekly: Option<(Weekday, NaiveTime)>,
    pub channel: Option<u64>,
}

impl Digests {
    pub fn any(&self) -> bool {
        self.daily.is_some() || self.weekly.is_some()
    }
}

/// `09:00` or `9:00`.
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

/// `Mon 09:00` (a day's English name or its first three letters, any case).
pub fn parse_weekly(s: &str) -> Option<(Weekday, NaiveTime)> {
    let (day, time) = s.trim().split_once(char::is_whitespace)?;
    Some((day.trim().parse::<Weekday>().ok()?, parse_time(time)?))
}

impl Digests {
    /// Every problem of the section, named by its key.
    pub fn new(c: &DigestsConfig) -> Result<Digests, Vec<String>> {
        let mut problems = Vec::new();
        let daily = c.daily.as_deref().and_then(|d| {
            let t = parse_time(d);
            if t.is_none() {
                problems.push(format!(
                    "digests.daily: `{d}` is not a time of day such as \"09:00\""
                ));
            }
            t
        });
        let weekly = c.weekly.as_deref().and_then(|w| {
            let t = parse_weekly(w);
            if t.is_none() {
                problems.push(format!(
                    "digests.weekly: `{w}` is not a day and a time such as \"Mon 09:00\""
                ));
            }
            t
        });
        if c.channel == Some(0) {
            problems.push("digests.channel: a channel id, not 0".into());
        }
        if problems.is_empty() {
            Ok(Digests {
                daily,
                weekly,
                channel: c.channel,
            })
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_the_team_writes_them() {
        let d = Digests::new(&DigestsConfig {
            daily: Some("09:00".into()),
            weekly: Some("mon 9:30".into()),
            channel: None,
        })
        .unwrap();
        assert_eq!(d.daily, NaiveTime::from_hms_opt(9, 0, 0));
        assert_eq!(
            d.weekly,
            Some((Weekday::Mon, NaiveTime::from_hms_opt(9, 30, 0).unwrap()))
        );
        assert!(Digests::new(&DigestsConfig::default()).unwrap() == Digests::default());
    }

    #[test]
    fn bad_input_is_named_by_its_key() {
        let e = Digests::new(&DigestsConfig {
            daily: Some("9am".into()),
            weekly: Some("Someday 09:00".into()),
            channel: Some(0),
        })
        .unwrap_err();
        assert!(e[0].starts_with("digests.daily: `9am`"), "{e:?}");
        assert!(e[1].starts_with("digests.weekly: `Someday 09:00`"), "{e:?}");
        assert!(e[2].starts_with("digests.channel"), "{e:?}");
    }
}
