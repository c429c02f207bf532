//! The history bar's daily roll-ups (issue #15): each time the leader renders the
//! page it adds every component's state to today's row (`store::status_days`),
//! and the bar is read from those rows, so it shows what stakeholders saw each
//! day (health checks, incidents, maintenance) rather than being rebuilt from the
//! incidents alone. Kept apart from the renderers: a read per rendering, never per
//! request.
//!
//! A day without a row (before roll-ups existed, or Klaxon down all day) keeps
//! the state `gather::build` derived from that day's incidents. Today also shows
//! the state right now, so a new outage is on the bar before the next sample.

use super::model::{CompState, Snapshot};
use crate::app::App;
use crate::store::status_days::{self as db, DayRow, Sample};
use crate::store::StoreError;

pub const DAY_MS: i64 = 86_400_000;

pub fn rank(s: CompState) -> i64 {
    match s {
        CompState::Operational => 0,
        CompState::Maintenance => 1,
        CompState::Degraded => 2,
        CompState::Outage => 3,
    }
}

pub fn from_rank(r: i64) -> CompState {
    match r {
        i64::MIN..=0 => CompState::Operational,
        1 => CompState::Maintenance,
        2 => CompState::Degraded,
        _ => CompState::Outage,
    }
}

/// The first day (UTC midnight, ms) of a bar of `days` days ending today.
pub fn first_day_ms(now_ms: i64, days: i64) -> i64 {
    (now_ms.div_euclid(DAY_MS) - (days - 1)) * DAY_MS
}

/// Adds the snapshot's component states to today's rows.
pub async fn record(app: &App, s: &Snapshot) -> Result<(), StoreError> {
    let samples: Vec<Sample<'_>> = s
        .components
        .iter()
        .map(|c| Sample {
            component: &c.name,
            rank: rank(c.state),
        })
        .collect();
    if samples.is_empty() {
        return Ok(());
    }
    let day = s.generated_ms.div_euclid(DAY_MS) * DAY_MS;
    db::record(&app.store, day, &samples, s.generated_ms).await
}

/// The bar's days from the roll-ups. Pure.
pub fn apply(s: &mut Snapshot, rows: &[DayRow]) {
    let today = s.generated_ms.div_euclid(DAY_MS);
    for c in &mut s.components {
        let n = c.days.len() as i64;
        let now_state = c.state;
        for (k, day) in c.days.iter_mut().enumerate() {
            let d = today - (n - 1) + k as i64;
            if let Some(r) = rows
                .iter()
                .find(|r| r.component == c.name && r.day_ms.div_euclid(DAY_MS) == d)
            {
                day.state = from_rank(r.worst);
            }
            if d == today {
                day.state = day.state.max(now_state);
            }
        }
    }
}

/// Reads the roll-ups of the snapshot's bar and applies them.
pub async fn read_into(app: &App, s: &mut Snapshot, days: i64) -> Result<(), StoreError> {
    let rows = db::since(&app.store, first_day_ms(s.generated_ms, days)).await?;
    apply(s, &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_page::model::{Component, Day};

    fn snapshot(now: i64, state: CompState) -> Snapshot {
        Snapshot {
            title: String::new(),
            base_url: String::new(),
            generated_ms: now,
            components: vec![Component {
                name: "API".into(),
                description: String::new(),
                state,
                days: (0..5)
                    .map(|_| Day {
                        date: String::new(),
                        state: CompState::Operational,
                    })
                    .collect(),
            }],
            open: vec![],
            history: vec![],
            maintenance: vec![],
            subscribe: false,
        }
    }

    fn row(day: i64, worst: CompState) -> DayRow {
        DayRow {
            component: "API".into(),
            day_ms: day * DAY_MS,
            worst: rank(worst),
            degraded_ms: 0,
            outage_ms: 0,
            maintenance_ms: 0,
        }
    }

    #[test]
    fn the_bar_comes_from_the_rollups_and_today_from_now() {
        let today = 20_000;
        let now = today * DAY_MS + 3_600_000;
        let mut s = snapshot(now, CompState::Degraded);
        s.components[0].days[0].state = CompState::Outage; // from incidents, no row
        apply(
            &mut s,
            &[
                row(today - 3, CompState::Outage),
                row(today - 2, CompState::Maintenance),
                row(today, CompState::Operational),
            ],
        );
        let bar: Vec<CompState> = s.components[0].days.iter().map(|d| d.state).collect();
        assert_eq!(
            bar,
            vec![
                CompState::Outage,
                CompState::Outage,
                CompState::Maintenance,
                CompState::Operational,
                CompState::Degraded,
            ]
        );
    }

    #[test]
    fn ranks_round_trip() {
        for s in [
            CompState::Operational,
            CompState::Maintenance,
            CompState::Degraded,
            CompState::Outage,
        ] {
            assert_eq!(from_rank(rank(s)), s);
        }
    }
}
