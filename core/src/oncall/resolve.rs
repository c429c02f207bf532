//! Who is on call at an instant, and until when: a pure function of the schedule,
//! its overrides and the instant. No clock, no database, no I/O, so the one rule is
//! tested exhaustively (a year, minute by minute, in three zones with DST).
//!
//! The rules:
//! - Hand-off `k` is scheduled at the local wall-clock time `start + k * shift`,
//!   counted on the schedule's wall clock (not in elapsed hours): a daily 09:00
//!   hand-off stays at 09:00 through DST changes, and a 1-week shift is 167 or 169
//!   hours long in the week the clocks change.
//! - It happens at the first instant whose local wall-clock time is at or after the
//!   scheduled time. So a time that exists twice (clocks set back) hands off at its
//!   first occurrence, and a time that does not exist (clocks jump forward over it)
//!   hands off the moment the clocks jump. When two hand-offs fall into one jump
//!   (only with shifts as short as the jump), the earlier shift has no length.
//! - Members take turns in order, from the first member at hand-off 0. Before
//!   `start` nobody is on call by rotation.
//! - An override (a member for `[start, end)`) wins over the rotation; of two
//!   overlapping overrides the newer (higher id) wins.
//! - A shift ends at the next instant the answer (the member) changes: a rotation
//!   hand-off or an override edge where someone else takes over.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::settings::oncall::Schedule;

/// One override: `member` is on call for `[start_ms, end_ms)`. Newer (higher id)
/// overrides win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub id: i64,
    pub member: u64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Why someone is (or nobody is) on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The rotation's shift number `k` (hand-off `k`).
    Rotation(i64),
    /// The override with this id.
    Override(i64),
    /// Before the rotation starts, with no override.
    Nobody,
}

/// The answer at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnCallAt {
    pub member: Option<u64>,
    pub source: Source,
    /// The next instant the member changes; `None` if it never does (one member
    /// and no override left).
    pub until_ms: Option<i64>,
}

/// A stretch of time with one answer, for listing shifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub member: Option<u64>,
    pub source: Source,
    pub from_ms: i64,
    pub until_ms: i64,
}

fn offset_secs(tz: Tz, utc_secs: i64) -> i64 {
    match DateTime::<Utc>::from_timestamp(utc_secs, 0) {
        Some(t) => i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        ),
        None => 0,
    }
}

/// The first instant (ms) whose local wall-clock time in `tz` is at or after `local`.
pub fn local_to_ms(tz: Tz, local: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
        LocalResult::None => {
            // In a jump forward: find the jump (the first second whose local time
            // is past `local`). Local time is increasing around a jump.
            let want = local.and_utc().timestamp();
            let (mut lo, mut hi) = (want - 18 * 3_600, want + 18 * 3_600);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if mid + offset_secs(tz, mid) >= want {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi * 1_000
        }
    }
}

/// The instant (ms) of hand-off `k`.
pub fn handoff_ms(s: &Schedule, k: i64) -> i64 {
    let local = s.start + Duration::minutes(s.shift.minutes().saturating_mul(k));
    local_to_ms(s.tz, local)
}

/// The rotation's shift at `at_ms` (the last hand-off at or before it), or `None`
/// before the first hand-off.
pub fn shift_index(s: &Schedule, at_ms: i64) -> Option<i64> {
    shift_and_next(s, at_ms).0
}

/// The shift at `at_ms` and the instant of the next hand-off.
fn shift_and_next(s: &Schedule, at_ms: i64) -> (Option<i64>, i64) {
    let secs = at_ms.div_euclid(1_000);
    let local = secs + offset_secs(s.tz, secs);
    let start = s.start.and_utc().timestamp();
    let shift = s.shift.minutes() * 60;
    // The estimate is off by at most one shift around a DST change.
    let mut k = (local - start).div_euclid(shift).max(-1);
    let mut next = handoff_ms(s, k + 1);
    while next <= at_ms {
        k += 1;
        next = handoff_ms(s, k + 1);
    }
    while k >= 0 {
        let this = handoff_ms(s, k);
        if this <= at_ms {
            break;
        }
        next = this;
        k -= 1;
    }
    ((k >= 0).then_some(k), next)
}

fn member(s: &Schedule, k: Option<i64>) -> Option<u64> {
    let k = k?;
    let n = i64::try_from(s.members.len()).ok().filter(|n| *n > 0)?;
    s.members
        .get(usize::try_from(k.rem_euclid(n)).ok()?)
        .copied()
}

/// The newest override covering `at_ms`. (Plain loops: this runs for every
/// minute of a year in the tests, unoptimized.)
fn newest(overrides: &[Override], at_ms: i64) -> Option<&Override> {
    let mut best: Option<&Override> = None;
    for o in overrides {
        if o.start_ms <= at_ms && at_ms < o.end_ms && best.is_none_or(|b| o.id > b.id) {
            best = Some(o);
        }
    }
    best
}

fn answer(
    s: &Schedule,
    overrides: &[Override],
    at_ms: i64,
    k: Option<i64>,
) -> (Option<u64>, Source) {
    match newest(overrides, at_ms) {
        Some(o) => (Some(o.member), Source::Override(o.id)),
        None => match k {
            Some(k) => (member(s, Some(k)), Source::Rotation(k)),
            None => (None, Source::Nobody),
        },
    }
}

/// The next override edge after `at_ms`.
fn next_override_edge(overrides: &[Override], at_ms: i64) -> Option<i64> {
    let mut next: Option<i64> = None;
    for o in overrides {
        if o.start_ms >= o.end_ms {
            continue;
        }
        for e in [o.start_ms, o.end_ms] {
            if e > at_ms && next.is_none_or(|n| e < n) {
                next = Some(e);
            }
        }
    }
    next
}

/// Walks the edges (hand-offs and override edges) after an instant, in order.
struct Edges<'a> {
    s: &'a Schedule,
    overrides: &'a [Override],
    at_ms: i64,
    /// The rotation's shift at `at_ms`.
    k: Option<i64>,
    /// When the next one starts.
    next_handoff: i64,
}

impl<'a> Edges<'a> {
    fn new(s: &'a Schedule, overrides: &'a [Override], at_ms: i64) -> Self {
        let (k, next_handoff) = shift_and_next(s, at_ms);
        Edges {
            s,
            overrides,
            at_ms,
            k,
            next_handoff,
        }
    }

    /// Moves to the next edge; returns whether it was a hand-off.
    fn advance(&mut self) -> bool {
        let ov = next_override_edge(self.overrides, self.at_ms);
        match ov {
            Some(e) if e < self.next_handoff => {
                self.at_ms = e;
                false
            }
            _ => {
                self.at_ms = self.next_handoff;
                let mut k = self.k.map_or(0, |k| k + 1);
                let mut next = handoff_ms(self.s, k + 1);
                // Hand-offs that fall into one jump of the clocks: the last wins.
                while next <= self.at_ms {
                    k += 1;
                    next = handoff_ms(self.s, k + 1);
                }
                self.k = Some(k);
                self.next_handoff = next;
                true
            }
        }
    }

    fn answer(&self) -> (Option<u64>, Source) {
        answer(self.s, self.overrides, self.at_ms, self.k)
    }
}

/// Who is on call at `at_ms`, why, and until when.
pub fn resolve(s: &Schedule, overrides: &[Override], at_ms: i64) -> OnCallAt {
    let mut edges = Edges::new(s, overrides, at_ms);
    let (who, source) = edges.answer();
    let mut last_override_edge = i64::MIN;
    for o in overrides {
        if o.start_ms < o.end_ms {
            last_override_edge = last_override_edge.max(o.end_ms);
        }
    }
    // After the last override edge only the rotation is left; it repeats every
    // `members.len()` hand-offs, so a member that keeps the turn that long keeps it.
    let mut quiet_handoffs = 0;
    let until_ms = loop {
        let was_handoff = edges.advance();
        if edges.answer().0 != who {
            break Some(edges.at_ms);
        }
        if was_handoff && edges.at_ms > last_override_edge {
            quiet_handoffs += 1;
            if quiet_handoffs > s.members.len() {
                break None;
            }
        }
    };
    OnCallAt {
        member: who,
        source,
        until_ms,
    }
}

/// The stretches of `[from_ms, to_ms)`, each with one member and one reason (a
/// rotation shift or an override), in order.
pub fn segments(s: &Schedule, overrides: &[Override], from_ms: i64, to_ms: i64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut edges = Edges::new(s, overrides, from_ms);
    let mut cur = edges.answer();
    let mut cur_from = from_ms;
    while edges.at_ms < to_ms {
        edges.advance();
        let next = edges.answer();
        if next != cur || edges.at_ms >= to_ms {
            out.push(Segment {
                member: cur.0,
                source: cur.1,
                from_ms: cur_from,
                until_ms: edges.at_ms.min(to_ms),
            });
            cur = next;
            cur_from = edges.at_ms;
        }
        if out.len() > 1_000 {
            break;
        }
    }
    out
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
