//! The resolver against a brute-force reference, minute by minute over a year.
//!
//! The reference shares no code with the resolver: it walks UTC minute by minute,
//! keeps the highest local wall-clock time seen so far, and counts how many
//! scheduled local hand-off times that wall clock has reached. A hand-off has
//! happened once the wall clock has shown its time, which is the documented rule,
//! stated without time-zone arithmetic. Overrides are checked one by one.

use super::*;
use crate::settings::oncall::{Name, Shift};

const MIN: i64 = 60_000;

fn schedule(tz: Tz, shift: &str, start: &str) -> Schedule {
    Schedule {
        name: Name::parse("t").expect("name"),
        tz,
        members: vec![1, 2, 3],
        shift: Shift::parse(shift).expect("shift"),
        start: crate::settings::oncall::parse_local(start).expect("start"),
        sync_role: None,
        announce: None,
    }
}

fn utc(s: &str) -> i64 {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .expect("time")
        .and_utc()
        .timestamp_millis()
}

/// Overrides that overlap, nest (older inside newer and newer inside older), cross
/// hand-offs, end just before or start just after a DST night (the nights themselves
/// stay visible: Berlin 2027-03-28 01:00 UTC and 2027-10-31 01:00 UTC), one that gives
/// the shift to its own member, one empty, and one before a late-starting rotation.
fn overrides() -> Vec<Override> {
    let o = |id, member, a: &str, b: &str| Override {
        id,
        member,
        start_ms: utc(a),
        end_ms: utc(b),
    };
    vec![
        o(1, 901, "2027-03-20 00:00", "2027-03-27 00:00"),
        o(2, 902, "2027-03-27 12:00", "2027-03-28 00:07"),
        o(7, 907, "2027-03-25 00:00", "2027-03-28 00:29"),
        o(3, 903, "2027-03-28 03:00", "2027-03-30 03:00"),
        o(4, 904, "2027-10-29 20:00", "2027-10-30 10:00"),
        o(5, 905, "2027-10-29 23:00", "2027-10-30 01:13"),
        o(11, 911, "2027-10-30 09:00", "2027-10-30 09:30"),
        o(6, 1, "2027-06-01 00:00", "2027-06-09 00:00"),
        o(8, 908, "2027-01-10 00:00", "2027-01-12 00:00"),
        o(9, 2, "2027-07-01 08:59", "2027-07-01 21:01"),
        o(10, 909, "2027-09-05 00:00", "2027-09-05 00:00"),
    ]
}

/// `(member, override id, until)` at each minute of `[from, to)`.
fn reference(
    s: &Schedule,
    ovs: &[Override],
    from: i64,
    to: i64,
) -> Vec<(Option<u64>, Option<i64>, Option<i64>)> {
    let start_local = s.start.and_utc().timestamp() / 60;
    let shift = s.shift.minutes();
    // Walk from well before, so the highest wall-clock time seen is settled.
    let walk_from = from - 40 * 1_440 * MIN;
    let walk_to = to + 40 * 1_440 * MIN;
    let mut seen_max = i64::MIN;
    let mut at = Vec::with_capacity(((walk_to - walk_from) / MIN) as usize);
    let mut t = walk_from;
    while t < walk_to {
        let utc_min = t / MIN;
        let off = i64::from(
            s.tz.offset_from_utc_datetime(
                &DateTime::<Utc>::from_timestamp(utc_min * 60, 0)
                    .expect("t")
                    .naive_utc(),
            )
            .fix()
            .local_minus_utc(),
        ) / 60;
        seen_max = seen_max.max(utc_min + off);
        let rotation = (seen_max >= start_local).then(|| {
            let k = (seen_max - start_local) / shift;
            s.members[(k % s.members.len() as i64) as usize]
        });
        let mut best: Option<&Override> = None;
        for o in ovs {
            if o.start_ms <= t && t < o.end_ms && best.is_none_or(|b| o.id > b.id) {
                best = Some(o);
            }
        }
        let who = best.map(|o| o.member).or(rotation);
        at.push((t, who, best.map(|o| o.id)));
        t += MIN;
    }
    // Until: the next minute with another member, walking backwards.
    let mut out = vec![(None, None, None); at.len()];
    let mut until: Option<i64> = None;
    for i in (0..at.len()).rev() {
        if i + 1 < at.len() && at[i + 1].1 != at[i].1 {
            until = Some(at[i + 1].0);
        }
        out[i] = (at[i].1, at[i].2, until);
    }
    let skip = ((from - walk_from) / MIN) as usize;
    let n = ((to - from) / MIN) as usize;
    out.into_iter().skip(skip).take(n).collect()
}

fn compare(s: &Schedule) -> usize {
    let ovs = overrides();
    let (from, to) = (utc("2027-01-01 00:00"), utc("2028-01-01 00:00"));
    let want = reference(s, &ovs, from, to);
    let mut differences = 0;
    for (i, w) in want.iter().enumerate() {
        let t = from + i as i64 * MIN;
        let got = resolve(s, &ovs, t);
        let got_override = match got.source {
            Source::Override(id) => Some(id),
            _ => None,
        };
        if (got.member, got_override, got.until_ms) != *w {
            if differences < 5 {
                eprintln!(
                    "{} {:?} {} at {}: got {:?}, want {:?}",
                    s.tz,
                    s.shift,
                    s.start,
                    crate::timefmt::date_time(t),
                    (
                        got.member,
                        got_override,
                        got.until_ms.map(crate::timefmt::date_time)
                    ),
                    (w.0, w.1, w.2.map(crate::timefmt::date_time)),
                );
            }
            differences += 1;
        }
    }
    differences
}

/// Every minute of 2027 in three zones with DST, with 1h, 12h, 1d and 1w shifts
/// whose hand-offs fall into the hour the clocks skip and the hour they repeat.
#[test]
fn a_year_minute_by_minute_matches_the_reference() {
    use chrono_tz::{America, Australia, Europe};
    let cases = [
        // Berlin skips 02:00-03:00 on 2027-03-28 and repeats it on 2027-10-31.
        schedule(Europe::Berlin, "12h", "2026-12-06T02:30"),
        schedule(Europe::Berlin, "1d", "2026-12-06T02:30"),
        schedule(Europe::Berlin, "1w", "2026-12-06T02:30"),
        schedule(Europe::Berlin, "1h", "2027-03-20T00:00"),
        // New York skips 02:00-03:00 on 2027-03-14 and repeats 01:00-02:00 on 2027-11-07.
        schedule(America::New_York, "12h", "2026-12-06T01:30"),
        schedule(America::New_York, "1d", "2027-02-14T02:30"),
        schedule(America::New_York, "1w", "2026-12-06T01:30"),
        // Sydney repeats 02:00-03:00 on 2027-04-04 and skips it on 2027-10-03.
        schedule(Australia::Sydney, "12h", "2026-12-06T02:30"),
        schedule(Australia::Sydney, "1d", "2026-12-06T02:30"),
        schedule(Australia::Sydney, "1w", "2026-12-06T02:30"),
    ];
    let differences: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|s| scope.spawn(move || compare(s)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum()
    });
    assert_eq!(differences, 0);
}

#[test]
fn a_daily_handoff_keeps_its_wall_clock_time_and_documented_dst_rules() {
    let s = schedule(chrono_tz::Europe::Berlin, "1d", "2027-03-26T09:00");
    // 09:00 CET is 08:00 UTC; after the change 09:00 CEST is 07:00 UTC.
    assert_eq!(handoff_ms(&s, 1), utc("2027-03-27 08:00"));
    assert_eq!(handoff_ms(&s, 2), utc("2027-03-28 07:00"));
    // 02:30 does not exist on 2027-03-28: the hand-off is when the clocks jump.
    let gap = schedule(chrono_tz::Europe::Berlin, "1d", "2027-03-27T02:30");
    assert_eq!(handoff_ms(&gap, 1), utc("2027-03-28 01:00"));
    // 02:30 exists twice on 2027-10-31: the first one counts.
    let twice = schedule(chrono_tz::Europe::Berlin, "1d", "2027-10-30T02:30");
    assert_eq!(handoff_ms(&twice, 1), utc("2027-10-31 00:30"));
}

#[test]
fn one_member_without_overrides_is_on_call_forever() {
    let mut s = schedule(chrono_tz::UTC, "1d", "2027-01-01T00:00");
    s.members = vec![5];
    let at = resolve(&s, &[], utc("2027-02-01 00:00"));
    assert_eq!((at.member, at.until_ms), (Some(5), None));
    let before = resolve(&s, &[], utc("2026-12-31 12:00"));
    assert_eq!(
        (before.member, before.until_ms),
        (None, Some(utc("2027-01-01 00:00")))
    );
}

#[test]
fn segments_mark_overrides() {
    let s = schedule(chrono_tz::UTC, "1d", "2027-01-01T00:00");
    let o = [Override {
        id: 4,
        member: 77,
        start_ms: utc("2027-01-02 12:00"),
        end_ms: utc("2027-01-03 06:00"),
    }];
    let got = segments(&s, &o, utc("2027-01-01 06:00"), utc("2027-01-04 00:00"));
    let shown: Vec<_> = got
        .iter()
        .map(|g| (g.member, g.source, crate::timefmt::date_time(g.from_ms)))
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                Some(1),
                Source::Rotation(0),
                "2027-01-01 06:00 UTC".to_string()
            ),
            (
                Some(2),
                Source::Rotation(1),
                "2027-01-02 00:00 UTC".to_string()
            ),
            (
                Some(77),
                Source::Override(4),
                "2027-01-02 12:00 UTC".to_string()
            ),
            (
                Some(3),
                Source::Rotation(2),
                "2027-01-03 06:00 UTC".to_string()
            ),
        ]
    );
    assert_eq!(
        got.last().map(|g| g.until_ms),
        Some(utc("2027-01-04 00:00"))
    );
}
