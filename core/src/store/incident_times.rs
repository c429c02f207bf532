//! The times MTTA and MTTR are made of (issue #15), per incident, for
//! `/incident stats`, the weekly digest and anything else that reports them.
//! Portable SQL; the percentiles are computed in Rust (`incidents::stats`), since
//! SQLite has no `percentile_cont`.

use sqlx::Row;

use super::{Store, StoreError};
use crate::severity::Severity;

/// One incident's times, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Times {
    pub severity: Severity,
    pub opened_ms: i64,
    /// Time to acknowledge; `None` while nobody acknowledged it.
    pub to_ack_ms: Option<i64>,
    /// Time to resolve; `None` while it is open.
    pub to_resolve_ms: Option<i64>,
}

/// The times of every incident opened in `[since_ms, until_ms)`, oldest first.
pub async fn opened_between(
    store: &Store,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<Times>, StoreError> {
    // THE place MTTA's start is defined: the first page of its escalation (issue
    // #14), else the open. `incidents::stats::observe_ack` uses the same start.
    const TO_ACK: &str = "acked_ms - COALESCE(first_page_ms, opened_ms)";
    let rows = sqlx::query(&format!(
        "SELECT severity, opened_ms, {TO_ACK} AS to_ack_ms, \
         resolved_ms - opened_ms AS to_resolve_ms \
         FROM incidents WHERE opened_ms >= $1 AND opened_ms < $2 ORDER BY opened_ms, id"
    ))
    .bind(since_ms)
    .bind(until_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let severity: String = r.try_get("severity")?;
            Ok(Times {
                severity: severity.parse().unwrap_or(Severity::P1),
                opened_ms: r.try_get("opened_ms")?,
                // A clock stepping back must not make a negative duration.
                to_ack_ms: r.try_get::<Option<i64>, _>("to_ack_ms")?.map(|v| v.max(0)),
                to_resolve_ms: r
                    .try_get::<Option<i64>, _>("to_resolve_ms")?
                    .map(|v| v.max(0)),
            })
        })
        .collect()
}
