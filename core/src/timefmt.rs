//! Durations and times as people type and read them: one parser, one formatter.
//!
//! A leaf of the module graph (it imports no other module of the crate), so every
//! area that shows or reads a duration — health, probes, rollouts, logs, incidents,
//! maintenance — shares one spelling without importing each other.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// "3d 4h", "5m 10s", "45s": compact for a phone screen.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else if s > 0 {
        format!("{secs}s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// `10m`, `90s`, `1h30m`, `2d`, `1w`: digits and a unit, repeated.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty()).then(|| Duration::from_secs(total))
}

/// An RFC 3339 time as the Docker engine writes it; its zero time
/// (`0001-01-01T00:00:00Z`) means "never".
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86_400 + 4 * 3_600 + 5)),
            "3d 4h"
        );
        assert_eq!(human_duration(Duration::from_secs(310)), "5m 10s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
    }

    #[test]
    fn docker_zero_time_is_never() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert!(parse_time("2026-11-23T19:00:00.123456789Z").is_some());
        assert_eq!(parse_time("garbage"), None);
    }
}
