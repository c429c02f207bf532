//! Times and durations as operators type them, in the team's time zone.
//!
//! `schedule start:` takes RFC 3339 (`2026-12-03T02:00:00Z`), a local date and time
//! (`2026-12-03 02:00`), `today 14:30` / `tomorrow 02:00` / `tomorrow at 2am`, a bare
//! time (the next one to come), or a relative time (`in 2h`, `in 90 minutes`). Every
//! refusal says what was wrong, because it ends up in front of the member.

use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A duration for a window: positive, at most `max`.
pub fn parse_duration(s: &str, max: Duration) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "`{t}` is negative: a window lasts a positive time, e.g. 30m or 2h."
        ));
    }
    let d = crate::timefmt::parse_duration(&normalize_units(t))
        .ok_or_else(|| format!("`{t}` is not a duration: write 30m, 2h or 1h30m."))?;
    if d.is_zero() {
        return Err("A window cannot last zero time: give e.g. 30m or 2h.".into());
    }
    if d > max {
        return Err(format!(
            "`{t}` is longer than the longest window allowed here ({}; `[maintenance] max_duration`).",
            human(max)
        ));
    }
    Ok(d)
}

/// `2 hours 30 minutes` -> `2h30m`, so the compact parser takes the long forms too.
fn normalize_units(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut out = String::new();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty() && *w != "and")
        .collect();
    for w in words {
        let split = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
        let (digits, unit) = w.split_at(split);
        let unit = match unit {
            "" => "",
            "s" | "sec" | "secs" | "second" | "seconds" => "s",
            "m" | "min" | "mins" | "minute" | "minutes" => "m",
            "h" | "hr" | "hrs" | "hour" | "hours" => "h",
            "d" | "day" | "days" => "d",
            "w" | "week" | "weeks" => "w",
            other => other,
        };
        out.push_str(digits);
        out.push_str(unit);
    }
    out
}

/// A start time. `now` decides what "tomorrow" and "in 2h" mean.
pub fn parse_start(s: &str, now: DateTime<Utc>, tz: Tz) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(
            "Give a start time, e.g. `in 2h`, `tomorrow 02:00` or 2026-12-03T02:00:00Z.".into(),
        );
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let lower = t.to_lowercase();
    if let Some(rest) = lower.strip_prefix("in ") {
        let d = crate::timefmt::parse_duration(&normalize_units(rest))
            .ok_or_else(|| format!("`{t}`: write a relative time as `in 2h` or `in 90m`."))?;
        let d = ChronoDuration::from_std(d).map_err(|_| format!("`{t}` is too far away."))?;
        return now
            .checked_add_signed(d)
            .ok_or_else(|| format!("`{t}` is too far away."));
    }
    let local_now = now.with_timezone(&tz);
    let (date, time_text, bare) = if let Some(rest) = lower.strip_prefix("tomorrow") {
        (local_now.date_naive().succ_opt(), rest, false)
    } else if let Some(rest) = lower.strip_prefix("today") {
        (Some(local_now.date_naive()), rest, false)
    } else if let Some((d, rest)) = split_date(&lower) {
        (Some(d), rest, false)
    } else {
        (Some(local_now.date_naive()), lower.as_str(), true)
    };
    let date = date.ok_or_else(|| format!("`{t}` is out of range."))?;
    let time_text = time_text.trim().trim_start_matches("at ").trim();
    let time = parse_clock(time_text).ok_or_else(|| {
        format!(
            "`{t}` is not a time Klaxon understands: write `in 2h`, `tomorrow 02:00`, \
             `2026-12-03 02:00` ({}) or RFC 3339 such as 2026-12-03T02:00:00Z.",
            tz.name()
        )
    })?;
    let mut start = local(tz, date, time, t)?;
    if bare && start <= now {
        // A bare time means the next one: 02:00 typed at 23:00 is tomorrow's.
        let next = date
            .succ_opt()
            .ok_or_else(|| format!("`{t}` is out of range."))?;
        start = local(tz, next, time, t)?;
    }
    Ok(start)
}

/// `2026-12-03 02:00` or `2026-12-03T02:00` (no offset: the team's time zone).
fn split_date(s: &str) -> Option<(NaiveDate, &str)> {
    let head = s.get(..10)?;
    let date = NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()?;
    let rest = &s[10..];
    let rest = rest.strip_prefix('t').unwrap_or(rest);
    Some((date, rest))
}

/// `02:00`, `2:00`, `14:30:00`, `2am`, `2:30pm`, `noon`, `midnight`.
fn parse_clock(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    match s {
        "noon" | "midday" => return NaiveTime::from_hms_opt(12, 0, 0),
        "midnight" => return NaiveTime::from_hms_opt(0, 0, 0),
        _ => {}
    }
    let (body, pm) = if let Some(b) = s.strip_suffix("pm") {
        (b.trim(), Some(true))
    } else if let Some(b) = s.strip_suffix("am") {
        (b.trim(), Some(false))
    } else {
        (s, None)
    };
    let mut parts = body.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    let sec: u32 = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    if parts.next().is_some() || (pm.is_none() && !body.contains(':')) {
        // "2" alone is too ambiguous to schedule work on.
        return None;
    }
    let h = match pm {
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(true) if h < 12 => h + 12,
        Some(false) if h == 12 => 0,
        _ => h,
    };
    NaiveTime::from_hms_opt(h, m, sec)
}

fn local(tz: Tz, date: NaiveDate, time: NaiveTime, typed: &str) -> Result<DateTime<Utc>, String> {
    match tz.from_local_datetime(&date.and_time(time)) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        // The hour that happens twice when clocks go back: the first of them.
        chrono::LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        chrono::LocalResult::None => Err(format!(
            "`{typed}` does not exist in {} on {} (the clocks skip it); pick another time.",
            tz.name(),
            date.format("%-d %b %Y")
        )),
    }
}

/// `2 h`, `1 h 30 min`, `45 min`, `1 d 2 h`.
pub fn human(d: Duration) -> String {
    // To the nearest minute: a window of 2 h that the scheduler closed a few
    // seconds after its end still took "2 h".
    let mins = (d.as_secs() + 30) / 60;
    let (days, hours, m) = (mins / 1_440, (mins / 60) % 24, mins % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} d"));
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if m > 0 || parts.is_empty() {
        parts.push(format!("{m} min"));
    }
    parts.join(" ")
}

/// `Wed 2 Dec 02:00` in `tz`.
pub fn local_text(ms: i64, tz: Tz) -> String {
    match Utc.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(t) => {
            t.with_timezone(&tz).format("%a %-d %b %H:%M").to_string()
        }
        _ => ms.to_string(),
    }
}

/// A window's span for people in the team's zone, with UTC beside it when that
/// zone is not UTC: `Wed 2 Dec 02:00–04:00 Europe/Berlin (01:00–03:00 UTC)`.
pub fn span_text(starts_ms: i64, ends_ms: i64, tz: Tz) -> String {
    let day = |ms: i64, z: Tz| -> (String, String) {
        let t = Utc
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or_default()
            .with_timezone(&z);
        (
            t.format("%a %-d %b").to_string(),
            t.format("%H:%M").to_string(),
        )
    };
    let piece = |z: Tz| {
        let (d1, t1) = day(starts_ms, z);
        let (d2, t2) = day(ends_ms, z);
        if d1 == d2 {
            format!("{d1} {t1}–{t2}")
        } else {
            format!("{d1} {t1} – {d2} {t2}")
        }
    };
    if tz == Tz::UTC {
        format!("{} UTC", piece(Tz::UTC))
    } else {
        let (_, u1) = day(starts_ms, Tz::UTC);
        let (d2u, u2) = day(ends_ms, Tz::UTC);
        let (d1u, _) = day(starts_ms, Tz::UTC);
        let utc = if d1u == d2u {
            format!("{u1}–{u2} UTC")
        } else {
            format!("{d1u} {u1} – {d2u} {u2} UTC")
        };
        format!("{} {} ({utc})", piece(tz), tz.name())
    }
}

/// A time of day in the zone, with UTC beside it: `04:00 Europe/Berlin (03:00 UTC)`;
/// with the day in front when it is not today (`now_ms`).
pub fn time_text(ms: i64, now_ms: i64, tz: Tz) -> String {
    let at = |ms: i64, z: Tz| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or_default()
            .with_timezone(&z)
    };
    let here = at(ms, tz);
    let today = here.date_naive() == at(now_ms, tz).date_naive();
    let fmt = if today { "%H:%M" } else { "%a %-d %b %H:%M" };
    if tz == Tz::UTC {
        format!("{} UTC", here.format(fmt))
    } else {
        format!(
            "{} {} ({} UTC)",
            here.format(fmt),
            tz.name(),
            at(ms, Tz::UTC).format("%H:%M")
        )
    }
}

/// Discord renders `<t:unix:R>` in every reader's own words ("in 2 hours").
pub fn relative(ms: i64) -> String {
    format!("<t:{}:R>", ms.div_euclid(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h", DAY), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("1h30m", DAY), Ok(Duration::from_secs(5_400)));
        assert_eq!(
            parse_duration("90 minutes", DAY),
            Ok(Duration::from_secs(5_400))
        );
        assert_eq!(
            parse_duration("2 hours 30 min", DAY),
            Ok(Duration::from_secs(9_000))
        );
        assert!(parse_duration("0m", DAY).unwrap_err().contains("zero"));
        assert!(parse_duration("-1h", DAY).unwrap_err().contains("negative"));
        assert!(parse_duration("25h", DAY).unwrap_err().contains("longest"));
        assert!(parse_duration("soon", DAY)
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("", DAY).is_err());
    }

    #[test]
    fn starts_in_utc() {
        let now = at("2026-12-01T23:00:00Z");
        let tz = Tz::UTC;
        assert_eq!(
            parse_start("in 2h", now, tz),
            Ok(at("2026-12-02T01:00:00Z"))
        );
        assert_eq!(
            parse_start("in 90 minutes", now, tz),
            Ok(at("2026-12-02T00:30:00Z"))
        );
        assert_eq!(
            parse_start("tomorrow 02:00", now, tz),
            Ok(at("2026-12-02T02:00:00Z"))
        );
        assert_eq!(
            parse_start("tomorrow at 2am", now, tz),
            Ok(at("2026-12-02T02:00:00Z"))
        );
        assert_eq!(
            parse_start("today 23:30", now, tz),
            Ok(at("2026-12-01T23:30:00Z"))
        );
        // A bare time already past today means tomorrow's.
        assert_eq!(
            parse_start("02:00", now, tz),
            Ok(at("2026-12-02T02:00:00Z"))
        );
        assert_eq!(
            parse_start("23:30", now, tz),
            Ok(at("2026-12-01T23:30:00Z"))
        );
        assert_eq!(
            parse_start("2026-12-05 14:00", now, tz),
            Ok(at("2026-12-05T14:00:00Z"))
        );
        assert_eq!(
            parse_start("2026-12-05T14:00:00+01:00", now, tz),
            Ok(at("2026-12-05T13:00:00Z"))
        );
        assert_eq!(
            parse_start("tomorrow noon", now, tz),
            Ok(at("2026-12-02T12:00:00Z"))
        );
        assert_eq!(
            parse_start("tomorrow 2:30pm", now, tz),
            Ok(at("2026-12-02T14:30:00Z"))
        );
        for bad in [
            "",
            "soon",
            "tomorrow",
            "tomorrow 25:00",
            "2",
            "in forever",
            "13pm",
        ] {
            let e = parse_start(bad, now, tz).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn starts_in_a_zone() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let now = at("2026-12-01T23:30:00Z"); // 00:30 on 2 Dec in Berlin
                                              // "tomorrow" is Berlin's tomorrow: 3 Dec.
        assert_eq!(
            parse_start("tomorrow 02:00", now, tz),
            Ok(at("2026-12-03T01:00:00Z"))
        );
        assert_eq!(
            parse_start("today 02:00", now, tz),
            Ok(at("2026-12-02T01:00:00Z"))
        );
        // The skipped hour when clocks go forward (29 March 2026, 02:00-03:00).
        let spring = at("2026-03-28T12:00:00Z");
        assert!(parse_start("tomorrow 02:30", spring, tz)
            .unwrap_err()
            .contains("does not exist"));
        assert_eq!(
            span_text(
                at("2026-12-03T01:00:00Z").timestamp_millis(),
                at("2026-12-03T03:00:00Z").timestamp_millis(),
                tz
            ),
            "Thu 3 Dec 02:00–04:00 Europe/Berlin (01:00–03:00 UTC)"
        );
    }

    #[test]
    fn spans_and_durations_read_well() {
        let s = at("2026-12-03T23:00:00Z").timestamp_millis();
        assert_eq!(
            span_text(s, s + 7_200_000, Tz::UTC),
            "Thu 3 Dec 23:00 – Fri 4 Dec 01:00 UTC"
        );
        assert_eq!(human(Duration::from_secs(5_400)), "1 h 30 min");
        assert_eq!(human(Duration::from_secs(7_200)), "2 h");
        assert_eq!(human(Duration::from_secs(90_000)), "1 d 1 h");
        assert_eq!(human(Duration::from_secs(30)), "1 min");
        assert_eq!(human(Duration::from_secs(7_205)), "2 h");
    }
}
