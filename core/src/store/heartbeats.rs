//! Heartbeats in the database: one row per configured heartbeat with its last run,
//! its deadline and whether an alert is raised, so a restart (or another replica
//! taking the lead) carries on from the same deadlines.
//!
//! All SQL of heartbeats is here; the queries are portable (`$n` in increasing
//! order, `ON CONFLICT` upserts that SQLite and PostgreSQL both take, no NULL binds).
//! State changes are conditional updates, so a ping racing the checker either
//! lands before the check (no alert) or after it (the alert resolves).

use sqlx::Row;

use crate::store::{Store, StoreError};

/// What an alert a heartbeat has raised, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatState {
    /// Waiting for the next run; nothing raised.
    Ok,
    /// `HeartbeatMissed` is raised.
    Missed,
    /// `HeartbeatFailed` is raised.
    Failed,
}

impl BeatState {
    pub fn as_str(self) -> &'static str {
        match self {
            BeatState::Ok => "ok",
            BeatState::Missed => "missed",
            BeatState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> BeatState {
        match s {
            "missed" => BeatState::Missed,
            "failed" => BeatState::Failed,
            _ => BeatState::Ok,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeatRow {
    pub name: String,
    pub state: BeatState,
    pub last_ok_ms: Option<i64>,
    pub last_fail_ms: Option<i64>,
    pub deadline_ms: i64,
}

fn row(r: &sqlx::any::AnyRow) -> Result<BeatRow, sqlx::Error> {
    Ok(BeatRow {
        name: r.try_get("name")?,
        state: BeatState::parse(&r.try_get::<String, _>("state")?),
        last_ok_ms: r.try_get("last_ok_ms")?,
        last_fail_ms: r.try_get("last_fail_ms")?,
        deadline_ms: r.try_get("deadline_ms")?,
    })
}

const COLUMNS: &str = "name, state, last_ok_ms, last_fail_ms, deadline_ms";

pub async fn get(store: &Store, name: &str) -> Result<Option<BeatRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM heartbeats WHERE name = $1");
    let r = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    Ok(r.as_ref().map(row).transpose()?)
}

pub async fn list(store: &Store) -> Result<Vec<BeatRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM heartbeats ORDER BY name");
    let rows = sqlx::query(&sql).fetch_all(store.pool()).await?;
    Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
}

/// At start-up: a heartbeat new to the database waits until `deadline_ms`; one
/// that is waiting gets at least until `at_least_ms` (Klaxon's own downtime is
/// no missed run). Raised alerts stay raised.
pub async fn start(
    store: &Store,
    name: &str,
    deadline_ms: i64,
    at_least_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO heartbeats (name, state, last_ok_ms, last_fail_ms, deadline_ms, updated_ms) \
         VALUES ($1, 'ok', NULL, NULL, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(deadline_ms)
    .bind(now_ms)
    .execute(store.pool())
    .await?;
    sqlx::query(
        "UPDATE heartbeats SET deadline_ms = $1, updated_ms = $2 \
         WHERE name = $3 AND state = 'ok' AND deadline_ms < $4",
    )
    .bind(at_least_ms)
    .bind(now_ms)
    .bind(name)
    .bind(at_least_ms)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A successful run at `now_ms`: waiting again until `deadline_ms`. Returns the
/// state before, so the caller resolves what was raised.
pub async fn ran(
    store: &Store,
    name: &str,
    now_ms: i64,
    deadline_ms: i64,
) -> Result<BeatState, StoreError> {
    let before = get(store, name).await?.map_or(BeatState::Ok, |r| r.state);
    sqlx::query(
        "INSERT INTO heartbeats (name, state, last_ok_ms, last_fail_ms, deadline_ms, updated_ms) \
         VALUES ($1, 'ok', $2, NULL, $3, $4) ON CONFLICT (name) DO UPDATE SET state = 'ok', \
         last_ok_ms = excluded.last_ok_ms, deadline_ms = excluded.deadline_ms, \
         updated_ms = excluded.updated_ms",
    )
    .bind(name)
    .bind(now_ms)
    .bind(deadline_ms)
    .bind(now_ms)
    .execute(store.pool())
    .await?;
    Ok(before)
}

/// A failed run at `now_ms`: `failed` until the next successful one. The deadline
/// is kept (it only matters once a run succeeds again).
pub async fn failed(
    store: &Store,
    name: &str,
    now_ms: i64,
    deadline_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO heartbeats (name, state, last_ok_ms, last_fail_ms, deadline_ms, updated_ms) \
         VALUES ($1, 'failed', NULL, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
         state = 'failed', last_fail_ms = excluded.last_fail_ms, updated_ms = excluded.updated_ms",
    )
    .bind(name)
    .bind(now_ms)
    .bind(deadline_ms)
    .bind(now_ms)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Marks a waiting heartbeat whose deadline has passed as missed; `true` when this
/// call did (so exactly one caller raises the alert).
pub async fn mark_missed(store: &Store, name: &str, now_ms: i64) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE heartbeats SET state = 'missed', updated_ms = $1 \
         WHERE name = $2 AND state = 'ok' AND deadline_ms <= $3",
    )
    .bind(now_ms)
    .bind(name)
    .bind(now_ms)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(changed > 0)
}
