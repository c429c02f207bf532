//! The counts `/metrics` shows about Klaxon's queues and state: read-only
//! snapshots across aggregates (outbox, alerts, incidents), each one cheap
//! aggregate query. Kept apart from the aggregates' own files so that what the
//! monitoring reads is in one place and costs are easy to see; the caller
//! (the domain module `observe`) runs them at most once every few seconds, never per scrape.
//!
//! Portable SQL only: `COUNT(CASE ...)` rather than `SUM` (PostgreSQL's `SUM` of a
//! BIGINT is NUMERIC, which the Any driver cannot read).

use sqlx::Row;

use super::{Store, StoreError};

/// Rows of one kind waiting for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// What the rows carry: `alert` (the alert outbox) or `post` (the posts
    /// outbox: incident, maintenance and on-call posts).
    pub kind: &'static str,
    pub channel: u64,
    pub pending: i64,
    pub oldest_created_ms: i64,
}

/// The outbox's pending rows per kind and channel (bounded: configured channels).
pub async fn outbox_backlog(store: &Store) -> Result<Vec<Backlog>, StoreError> {
    let rows = sqlx::query(
        "SELECT channel_id, COUNT(*) AS n, MIN(created_ms) AS oldest FROM outbox \
         WHERE state = 'pending' GROUP BY channel_id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Backlog {
                kind: "alert",
                channel: r.try_get::<i64, _>("channel_id")? as u64,
                pending: r.try_get("n")?,
                oldest_created_ms: r.try_get("oldest")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The posts outbox (incident, maintenance, on-call posts): one kind, channel 0
    // for posts into an incident's room (a thread per incident would make the
    // label set grow without bound).
    let posts = sqlx::query(
        "SELECT COALESCE(channel_id, 0) AS channel_id, COUNT(*) AS n, \
         MIN(created_ms) AS oldest FROM posts WHERE state = 'pending' \
         GROUP BY COALESCE(channel_id, 0)",
    )
    .fetch_all(store.pool())
    .await?;
    for r in &posts {
        out.push(Backlog {
            kind: "post",
            channel: r.try_get::<i64, _>("channel_id")? as u64,
            pending: r.try_get("n")?,
            oldest_created_ms: r.try_get("oldest")?,
        });
    }
    Ok(out)
}

/// Firing alerts: posted, held by a silence, held by a maintenance window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertCounts {
    pub firing: i64,
    pub silenced: i64,
    pub maintenance: i64,
}

pub async fn alert_counts(store: &Store) -> Result<AlertCounts, StoreError> {
    let r = sqlx::query(
        "SELECT COUNT(CASE WHEN held_by IS NULL THEN 1 END) AS firing, \
         COUNT(CASE WHEN held_by LIKE 'silence:%' THEN 1 END) AS silenced, \
         COUNT(CASE WHEN held_by LIKE 'maintenance:%' THEN 1 END) AS maintenance \
         FROM alerts WHERE status = 'firing'",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(AlertCounts {
        firing: r.try_get("firing")?,
        silenced: r.try_get("silenced")?,
        maintenance: r.try_get("maintenance")?,
    })
}

/// Open incidents by severity, and their scheduled reminders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentCounts {
    /// (severity, open incidents); severities with none are absent.
    pub open: Vec<(String, i64)>,
    /// Re-pages scheduled (not acknowledged yet).
    pub page_reminders: i64,
    /// Status-update nudges scheduled.
    pub update_reminders: i64,
}

pub async fn incident_counts(store: &Store) -> Result<IncidentCounts, StoreError> {
    let rows = sqlx::query(
        "SELECT severity, COUNT(*) AS n, \
         COUNT(CASE WHEN next_page_ms IS NOT NULL THEN 1 END) AS pages, \
         COUNT(CASE WHEN next_update_ms IS NOT NULL THEN 1 END) AS updates \
         FROM incidents WHERE status <> 'resolved' GROUP BY severity",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = IncidentCounts::default();
    for r in &rows {
        out.open.push((r.try_get("severity")?, r.try_get("n")?));
        out.page_reminders += r.try_get::<i64, _>("pages")?;
        out.update_reminders += r.try_get::<i64, _>("updates")?;
    }
    Ok(out)
}

/// Escalations with steps still to fire (`klaxon_reminders_pending{kind="escalation"}`).
pub async fn escalations_pending(store: &Store) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM escalations WHERE state = 'active'")
            .fetch_one(store.pool())
            .await?,
    )
}

/// When a group was created (its first alert's intake) and its severity, for
/// the intake-to-first-message histogram. `None`: no such alert group, or one
/// that fired again after resolving (its intake time is not kept, and its
/// creation time would read as a delay of days).
pub async fn group_origin(
    store: &Store,
    group_id: i64,
) -> Result<Option<(String, i64)>, StoreError> {
    let row = sqlx::query(
        "SELECT severity, created_ms FROM alert_groups WHERE id = $1 AND generation = 0",
    )
    .bind(group_id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| Ok((r.try_get("severity")?, r.try_get("created_ms")?)))
        .transpose()
}

/// Pool connections in use and idle (no query: the pool's own counts).
pub fn pool_connections(store: &Store) -> (u32, u32) {
    let size = store.pool().size();
    let idle = store.pool().num_idle() as u32;
    (size.saturating_sub(idle), idle)
}
