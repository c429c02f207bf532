//! The pruner: deletes rows older than `[retention]` allows, on the leader, without
//! getting in the way of alert intake.
//!
//! Why paced: SQLite has one write lock, and an alert is answered 2xx only once it
//! is committed; a long delete would stall every sender. So the pruner deletes in
//! batches ([`crate::store::retention::delete_batch`]), each one short write
//! transaction. [`Pacer`] measures how long each batch held the lock and sizes the
//! next one to stay near [`TARGET_HOLD`] (well under the 50 ms ceiling, since a
//! batch's time varies), and pauses after each batch at least as long as the batch
//! took, so intake gets the lock at least half of the time. On SQLite the freed
//! pages then go back to the file system in small `incremental_vacuum` steps paced
//! the same way; PostgreSQL is left to autovacuum.
//!
//! Runs on the leader only (`bot/src/run/workers.rs`), every [`EVERY`]; a run cut
//! short (stepping down) rolls back only its current batch.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{info, info_span, Instrument};

use crate::settings::retention::{RetentionConfig, DAY_MS};
use crate::store::retention::{self as sql, Target};
use crate::store::{Store, StoreError};

/// How often the leader prunes (and once shortly after it starts leading).
pub const EVERY: Duration = Duration::from_secs(3_600);
/// The lock time a batch aims at.
pub const TARGET_HOLD: Duration = Duration::from_millis(10);
/// The lock time no batch may exceed; [`Pacer`] shrinks hard when one comes near.
pub const MAX_HOLD: Duration = Duration::from_millis(50);
const MIN_BATCH: i64 = 10;
const MAX_BATCH: i64 = 2_000;
const FIRST_BATCH: i64 = 50;
const MIN_PAGES: i64 = 16;
const MAX_PAGES: i64 = 1_024;
const FIRST_PAGES: i64 = 64;
/// The shortest pause between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(5);

/// Sizes batches from how long the last ones held the write lock.
#[derive(Debug, Clone)]
pub struct Pacer {
    batch: i64,
    pages: i64,
    /// The longest lock any batch or vacuum step held, over this pacer's life.
    pub longest: Duration,
    /// Batches and vacuum steps run.
    pub steps: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            batch: FIRST_BATCH,
            pages: FIRST_PAGES,
            longest: Duration::ZERO,
            steps: 0,
        }
    }
}

/// The next size: proportional to how far `held` was from the target, halved at
/// least when it came near the ceiling, grown by half at most when well under.
fn next_size(size: i64, held: Duration, min: i64, max: i64) -> i64 {
    let held_us = held.as_micros().max(1) as i64;
    let target_us = TARGET_HOLD.as_micros() as i64;
    let next = if held > TARGET_HOLD {
        let scaled = size.saturating_mul(target_us) / held_us;
        if held * 2 > MAX_HOLD {
            scaled.min(size / 2)
        } else {
            scaled
        }
    } else if held * 2 < TARGET_HOLD {
        size.saturating_mul(3) / 2 + 1
    } else {
        size
    };
    next.clamp(min, max)
}

impl Pacer {
    /// Rows the next batch may delete.
    pub fn batch(&self) -> i64 {
        self.batch
    }

    fn after_batch(&mut self, held: Duration) -> Duration {
        self.note(held);
        self.batch = next_size(self.batch, held, MIN_BATCH, MAX_BATCH);
        held.max(MIN_PAUSE)
    }

    fn after_vacuum(&mut self, held: Duration) -> Duration {
        self.note(held);
        self.pages = next_size(self.pages, held, MIN_PAGES, MAX_PAGES);
        held.max(MIN_PAUSE)
    }

    fn note(&mut self, held: Duration) {
        self.steps += 1;
        self.longest = self.longest.max(held);
    }
}

/// What one run deleted.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub deleted: BTreeMap<Target, u64>,
    /// SQLite pages given back to the file system.
    pub vacuumed_pages: i64,
}

impl Report {
    pub fn total(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// The cut-off of each target at `now_ms`: rows older than it go. `None`: kept.
pub fn cutoffs(settings: &RetentionConfig, now_ms: i64) -> Vec<(Target, i64)> {
    let before = |days: i64| now_ms.saturating_sub(days.saturating_mul(DAY_MS));
    Target::ALL
        .iter()
        .filter_map(|&t| {
            let days = match t {
                Target::Outbox | Target::Posts | Target::StatusDeliveries => {
                    Some(settings.outbox_days)
                }
                // As long as the page's history (90 days by default).
                Target::StatusUpdates => Some(settings.alerts_days),
                Target::Alerts
                | Target::AlertGroups
                | Target::Silences
                | Target::MaintenanceWindows => Some(settings.alerts_days),
                Target::Audit => Some(settings.audit_days),
                Target::Deployments => Some(settings.deployments_days),
                Target::Incidents => settings.incidents_days,
                Target::StatusDays => Some(sql::STATUS_DAYS_KEPT),
            }?;
            Some((t, before(days)))
        })
        .collect()
}

/// One full run: every target until nothing is older than its cut-off, then (on
/// SQLite) the freed pages back to the file system.
pub async fn prune(
    store: &Store,
    settings: &RetentionConfig,
    now_ms: i64,
    pacer: &mut Pacer,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    for (target, cutoff) in cutoffs(settings, now_ms) {
        let mut total = 0u64;
        let span = info_span!("prune", table = target.table(), cutoff_ms = cutoff);
        async {
            loop {
                let limit = pacer.batch();
                let batch = sql::delete_batch(store, target, cutoff, limit).await?;
                total += batch.deleted;
                let pause = pacer.after_batch(batch.held);
                if (batch.deleted as i64) < limit {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            Ok::<(), StoreError>(())
        }
        .instrument(span)
        .await?;
        if total > 0 {
            report.deleted.insert(target, total);
        }
    }
    if report.total() > 0 {
        report.vacuumed_pages = vacuum(store, pacer).await?;
        sql::checkpoint(store).await?;
    }
    if report.total() > 0 {
        info!(
            deleted = report.total(),
            vacuumed_pages = report.vacuumed_pages,
            longest_ms = pacer.longest.as_secs_f64() * 1e3,
            "old rows pruned ({})",
            report
                .deleted
                .iter()
                .map(|(t, n)| format!("{}: {n}", t.table()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(report)
}

/// SQLite: gives every free page back, a paced step at a time.
async fn vacuum(store: &Store, pacer: &mut Pacer) -> Result<i64, StoreError> {
    let start = sql::free_pages(store).await?;
    let mut free = start;
    while free > 0 {
        let held = sql::incremental_vacuum(store, pacer.pages).await?;
        let pause = pacer.after_vacuum(held);
        let now = sql::free_pages(store).await?;
        if now >= free {
            // Nothing more could be given back (a reader holds an old snapshot).
            break;
        }
        free = now;
        tokio::time::sleep(pause).await;
    }
    Ok(start - free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_shrink_when_slow_and_grow_when_fast() {
        // Near the ceiling: at least halved.
        assert!(next_size(1_000, Duration::from_millis(40), 10, 5_000) <= 250);
        // Over the target: proportionally smaller.
        assert_eq!(next_size(1_000, Duration::from_millis(20), 10, 5_000), 500);
        // Well under: grows by half.
        assert_eq!(next_size(1_000, Duration::from_millis(2), 10, 5_000), 1_501);
        // Near the target: kept.
        assert_eq!(next_size(1_000, Duration::from_millis(8), 10, 5_000), 1_000);
        // Bounds hold.
        assert_eq!(next_size(10, Duration::from_secs(1), 10, 5_000), 10);
        assert_eq!(next_size(5_000, Duration::ZERO, 10, 5_000), 5_000);
    }

    #[test]
    fn incidents_are_kept_unless_configured() {
        let now = 1_000 * DAY_MS;
        let c = cutoffs(&RetentionConfig::default(), now);
        assert!(!c.iter().any(|(t, _)| *t == Target::Incidents));
        assert!(c.contains(&(Target::Alerts, now - 90 * DAY_MS)));
        assert!(c.contains(&(Target::Outbox, now - 7 * DAY_MS)));
        assert!(c.contains(&(Target::StatusDays, now - 400 * DAY_MS)));
        let c = cutoffs(
            &RetentionConfig {
                incidents_days: Some(730),
                ..RetentionConfig::default()
            },
            now,
        );
        assert!(c.contains(&(Target::Incidents, now - 730 * DAY_MS)));
    }
}
