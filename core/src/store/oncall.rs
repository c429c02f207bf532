//! On-call overrides in the database: one row per override, cancelled rows kept for
//! the record. All SQL of on-call is here; the queries are portable (`$n` in
//! increasing order, BIGINT milliseconds) and read the same on SQLite and
//! PostgreSQL. Discord ids are stored as BIGINT (`i64`): snowflakes fit in 63 bits.

use sqlx::Row;

use crate::store::{Store, StoreError};

/// One override row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub id: i64,
    pub schedule: String,
    pub member_id: u64,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub created_by: String,
    pub created_by_id: u64,
    pub created_ms: i64,
    pub cancelled_ms: Option<i64>,
}

/// A new override.
#[derive(Debug, Clone)]
pub struct NewOverride<'a> {
    pub schedule: &'a str,
    pub member_id: u64,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub created_by: &'a str,
    pub created_by_id: u64,
    pub created_ms: i64,
}

const COLUMNS: &str = "id, schedule, member_id, starts_ms, ends_ms, created_by, \
    created_by_id, created_ms, cancelled_ms";

fn id_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<OverrideRow, StoreError> {
    Ok(OverrideRow {
        id: r.try_get("id")?,
        schedule: r.try_get("schedule")?,
        member_id: id_of(r.try_get("member_id")?),
        starts_ms: r.try_get("starts_ms")?,
        ends_ms: r.try_get("ends_ms")?,
        created_by: r.try_get("created_by")?,
        created_by_id: id_of(r.try_get("created_by_id")?),
        created_ms: r.try_get("created_ms")?,
        cancelled_ms: r.try_get("cancelled_ms")?,
    })
}

/// Stores an override; returns its id.
pub async fn insert(store: &Store, o: &NewOverride<'_>) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO oncall_overrides (schedule, member_id, starts_ms, ends_ms, created_by, \
         created_by_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(o.schedule)
    .bind(o.member_id as i64)
    .bind(o.starts_ms)
    .bind(o.ends_ms)
    .bind(o.created_by)
    .bind(o.created_by_id as i64)
    .bind(o.created_ms)
    .fetch_one(store.pool())
    .await?;
    Ok(row.try_get("id")?)
}

/// The schedule's overrides (not cancelled) that end after `after_ms`, oldest id
/// first. The schedule is matched without regard to case, as config names are.
pub async fn active(
    store: &Store,
    schedule: &str,
    after_ms: i64,
) -> Result<Vec<OverrideRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM oncall_overrides WHERE LOWER(schedule) = LOWER($1) \
         AND ends_ms > $2 AND cancelled_ms IS NULL ORDER BY id"
    ))
    .bind(schedule)
    .bind(after_ms)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn get(store: &Store, id: i64) -> Result<Option<OverrideRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM oncall_overrides WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Cancels an override that is not cancelled yet; false if there was none.
pub async fn cancel(store: &Store, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oncall_overrides SET cancelled_ms = $1, cancelled_by = $2 \
         WHERE id = $3 AND cancelled_ms IS NULL",
    )
    .bind(now_ms)
    .bind(by)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}
