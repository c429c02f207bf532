//! Retention: the SQL that deletes old rows, one small batch per call, and the
//! SQLite housekeeping that gives the freed pages back to the file system.
//!
//! Why batches: on SQLite a write holds the one write lock, and alert intake waits
//! for it; one `DELETE` of a year of alerts would hold it for seconds. Every batch
//! here is one short write transaction deleting at most `limit` rows, chosen oldest
//! first through an index on the rule's time column (migration `…0101_retention`),
//! so its cost is the rows it deletes. The pacing (batch size, pauses) is the
//! pruner's (`retention.rs` at the crate root).
//!
//! What is prunable ([`Target`]), portable SQL for both databases:
//! - closed rows of the posts outbox (`sent`, `superseded`, `parked`), by `sent_ms`;
//! - delivered (`sent`) and `superseded` outbox rows, by `sent_ms`; pending and
//!   parked rows are never deleted;
//! - resolved alerts, by `resolved_ms`; firing alerts never;
//! - alert groups that are resolved, not due, untouched since the cut-off and left
//!   with no alert and no outbox row (so a group's message is never forgotten while
//!   something may still edit it);
//! - silences past their end that hold no alert any more;
//! - maintenance windows that ended or were cancelled, past their end, holding no
//!   alert;
//! - audit rows, by `at_ms`;
//! - finished deployments with their steps (never one in progress);
//! - resolved incidents with their timelines and actions, only when
//!   `incidents_days` is set;
//! - closed status page deliveries (`sent`, `parked`), by `sent_ms`, and the
//!   public updates no delivery refers to any more, by `created_ms`.
//!
//! Each batch must find its rows through the time column's index, never through
//! an index on the state column (which would scan every row of that state, a
//! million alerts, per batch: SQLite picks an equality index over a range one).
//! So a state test is written `state || '' = …` and a NULL test `x + 0 IS NULL`:
//! the same result on both databases, but not usable as an index key.
//!
//! Adding a table (such as a second outbox): one more [`Target`] variant, its
//! `DELETE … WHERE id IN (SELECT id … ORDER BY <time> LIMIT $2)` in
//! [`delete_batch`], an index on the time column, and its place in
//! [`Target::ALL`] (before anything that its rows keep alive).

use std::time::{Duration, Instant};

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// One kind of prunable row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Outbox,
    /// The posts outbox (incident, maintenance, on-call posts): closed rows only.
    Posts,
    Alerts,
    AlertGroups,
    Silences,
    MaintenanceWindows,
    Audit,
    Deployments,
    Incidents,
    /// The status page's daily roll-ups (kept a fixed [`STATUS_DAYS_KEPT`]).
    StatusDays,
    /// Status page deliveries (email, webhooks): closed rows only.
    StatusDeliveries,
    /// Public updates the status page showed, once no delivery refers to them.
    StatusUpdates,
}

/// Days of status page roll-ups kept: more than the page's longest history (365).
pub const STATUS_DAYS_KEPT: i64 = 400;

impl Target {
    /// In pruning order: the outbox before the groups its rows keep, the alerts
    /// before the groups, silences and windows they keep.
    pub const ALL: [Target; 12] = [
        Target::Outbox,
        Target::Posts,
        Target::Alerts,
        Target::AlertGroups,
        Target::Silences,
        Target::MaintenanceWindows,
        Target::Audit,
        Target::Deployments,
        Target::Incidents,
        Target::StatusDays,
        Target::StatusDeliveries,
        Target::StatusUpdates,
    ];

    /// The table whose rows are counted as deleted.
    pub fn table(self) -> &'static str {
        match self {
            Target::Outbox => "outbox",
            Target::Posts => "posts",
            Target::Alerts => "alerts",
            Target::AlertGroups => "alert_groups",
            Target::Silences => "silences",
            Target::MaintenanceWindows => "maintenance_windows",
            Target::Audit => "audit_log",
            Target::Deployments => "deployments",
            Target::Incidents => "incidents",
            Target::StatusDays => "status_days",
            Target::StatusDeliveries => "status_deliveries",
            Target::StatusUpdates => "status_updates",
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Rows of [`Target::table`] deleted (dependent rows not counted).
    pub deleted: u64,
    /// From the start of the write transaction to its commit: how long the write
    /// lock was held.
    pub held: Duration,
}

/// Deletes at most `limit` rows of `target` older than `cutoff_ms`, in one write
/// transaction.
pub async fn delete_batch(
    store: &Store,
    target: Target,
    cutoff_ms: i64,
    limit: i64,
) -> Result<Batch, StoreError> {
    let mut tx = store.begin_write().await?;
    let started = Instant::now();
    let deleted = match target {
        Target::Outbox => sqlx::query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                 WHERE sent_ms < $1 AND state || '' IN ('sent', 'superseded') \
                 ORDER BY sent_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        // Closed posts (sent, superseded, parked: `sent_ms` is when they were
        // closed); pending ones are kept whatever their age. The incident card is
        // edited through the id stored on the incident, not through its post row.
        Target::Posts => sqlx::query(
            "DELETE FROM posts WHERE id IN (SELECT id FROM posts \
                 WHERE sent_ms < $1 AND state || '' IN ('sent', 'superseded', 'parked') \
                 ORDER BY sent_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        // Closed status page deliveries (sent, parked); pending ones are kept.
        Target::StatusDeliveries => sqlx::query(
            "DELETE FROM status_deliveries WHERE id IN (SELECT id FROM status_deliveries \
                 WHERE sent_ms < $1 AND state || '' IN ('sent', 'parked') \
                 ORDER BY sent_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        // An update seen again after it was pruned is recorded again but not sent
        // (it is no longer fresh), so pruning never repeats a mail.
        Target::StatusUpdates => sqlx::query(
            "DELETE FROM status_updates WHERE id IN (SELECT u.id FROM status_updates u \
                 WHERE u.created_ms < $1 AND NOT EXISTS (SELECT 1 FROM status_deliveries d \
                 WHERE d.update_id = u.id) ORDER BY u.created_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::Alerts => sqlx::query(
            "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts \
                 WHERE resolved_ms < $1 AND status || '' = 'resolved' \
                 ORDER BY resolved_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::AlertGroups => sqlx::query(
            "DELETE FROM alert_groups WHERE id IN (SELECT g.id FROM alert_groups g \
                 WHERE g.updated_ms < $1 AND g.status = 'resolved' AND g.due_ms + 0 IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.group_id = g.id) \
                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.group_id = g.id) \
                 ORDER BY g.updated_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::Silences => sqlx::query(
            "DELETE FROM silences WHERE id IN (SELECT s.id FROM silences s \
                 WHERE s.ends_ms < $1 AND (s.ended_ms IS NULL OR s.ended_ms < $1) \
                 AND NOT EXISTS (SELECT 1 FROM alerts a \
                     WHERE a.held_by = 'silence:' || CAST(s.id AS TEXT)) \
                 ORDER BY s.ends_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::MaintenanceWindows => sqlx::query(
            "DELETE FROM maintenance_windows WHERE id IN (SELECT w.id \
                 FROM maintenance_windows w \
                 WHERE w.ends_ms < $1 AND w.state || '' IN ('ended', 'cancelled') \
                 AND (w.ended_ms IS NULL OR w.ended_ms < $1) \
                 AND NOT EXISTS (SELECT 1 FROM alerts a \
                     WHERE a.held_by = 'maintenance:' || CAST(w.id AS TEXT)) \
                 ORDER BY w.ends_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::StatusDays => sqlx::query(
            "DELETE FROM status_days WHERE id IN (SELECT id FROM status_days \
                 WHERE day_ms < $1 ORDER BY day_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::Audit => sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
                 WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Target::Deployments => {
            // The same oldest ids twice in one transaction: their steps, then them.
            const PICK: &str = "SELECT id FROM deployments WHERE finished_ms < $1 \
                 AND status <> 'in_progress' ORDER BY finished_ms, id LIMIT $2";
            sqlx::query(&format!(
                "DELETE FROM deployment_steps WHERE deployment_id IN ({PICK})"
            ))
            .bind(cutoff_ms)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!("DELETE FROM deployments WHERE id IN ({PICK})"))
                .bind(cutoff_ms)
                .bind(limit)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
        Target::Incidents => {
            const PICK: &str = "SELECT id FROM incidents WHERE resolved_ms < $1 \
                 AND status || '' = 'resolved' ORDER BY resolved_ms, id LIMIT $2";
            for child in ["incident_timeline", "incident_actions"] {
                sqlx::query(&format!(
                    "DELETE FROM {child} WHERE incident_id IN ({PICK})"
                ))
                .bind(cutoff_ms)
                .bind(limit)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(&format!("DELETE FROM incidents WHERE id IN ({PICK})"))
                .bind(cutoff_ms)
                .bind(limit)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
    };
    tx.commit().await?;
    Ok(Batch {
        deleted,
        held: started.elapsed(),
    })
}

/// SQLite: `PRAGMA auto_vacuum` of the open database (0 none, 1 full, 2
/// incremental); `None` on PostgreSQL. A connection reads the file's mode at its
/// next transaction: right after another connection's VACUUM it may still say 0.
pub async fn auto_vacuum_mode(store: &Store) -> Result<Option<i64>, StoreError> {
    if store.backend() != Backend::Sqlite {
        return Ok(None);
    }
    let row = sqlx::query("PRAGMA auto_vacuum")
        .fetch_one(store.pool())
        .await?;
    Ok(Some(row.try_get::<i64, _>(0)?))
}

/// SQLite: switches an existing database to incremental auto-vacuum, which takes
/// one full `VACUUM` (it rewrites the file: seconds per gigabyte, once). Returns
/// whether it did; a database already incremental (every one created since the
/// connect options set it) is left alone, and PostgreSQL is never touched.
pub async fn ensure_incremental_vacuum(store: &Store) -> Result<bool, StoreError> {
    if auto_vacuum_mode(store).await? != Some(0) {
        return Ok(false);
    }
    // The pragma is per connection until VACUUM writes it into the file: both on
    // one connection, outside a transaction.
    let mut conn = store.pool().acquire().await?;
    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
        .execute(&mut *conn)
        .await?;
    sqlx::query("VACUUM").execute(&mut *conn).await?;
    Ok(true)
}

/// SQLite: free pages in the file (0 on PostgreSQL).
pub async fn free_pages(store: &Store) -> Result<i64, StoreError> {
    if store.backend() != Backend::Sqlite {
        return Ok(0);
    }
    let row = sqlx::query("PRAGMA freelist_count")
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// SQLite: gives back at most `pages` free pages to the file system; returns how
/// long it held the write lock. Each freed page is a result row of the pragma:
/// `fetch_all` steps through all of them.
pub async fn incremental_vacuum(store: &Store, pages: i64) -> Result<Duration, StoreError> {
    if store.backend() != Backend::Sqlite {
        return Ok(Duration::ZERO);
    }
    let started = Instant::now();
    sqlx::query(&format!("PRAGMA incremental_vacuum({})", pages.max(1)))
        .fetch_all(store.pool())
        .await?;
    Ok(started.elapsed())
}

/// SQLite in WAL mode: the main file shrinks only once the log is written back;
/// a passive checkpoint first (never blocks), then a truncating one (little left
/// to copy) so the log file shrinks too.
pub async fn checkpoint(store: &Store) -> Result<(), StoreError> {
    if store.backend() != Backend::Sqlite {
        return Ok(());
    }
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_all(store.pool())
        .await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_all(store.pool())
        .await?;
    Ok(())
}
