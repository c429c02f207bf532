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

/// One hand-off the leader saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRow {
    pub id: i64,
    pub schedule: String,
    /// 0: nobody.
    pub from_member: u64,
    pub to_member: u64,
    pub at_ms: i64,
    pub announced_ms: Option<i64>,
    pub role_moved_ms: Option<i64>,
}

const HANDOFF_COLUMNS: &str =
    "id, schedule, from_member, to_member, at_ms, announced_ms, role_moved_ms";

fn handoff_from_row(r: &sqlx::any::AnyRow) -> Result<HandoffRow, StoreError> {
    Ok(HandoffRow {
        id: r.try_get("id")?,
        schedule: r.try_get("schedule")?,
        from_member: id_of(r.try_get("from_member")?),
        to_member: id_of(r.try_get("to_member")?),
        at_ms: r.try_get("at_ms")?,
        announced_ms: r.try_get("announced_ms")?,
        role_moved_ms: r.try_get("role_moved_ms")?,
    })
}

/// The schedule's latest hand-off.
pub async fn last_handoff(store: &Store, schedule: &str) -> Result<Option<HandoffRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {HANDOFF_COLUMNS} FROM oncall_handoffs WHERE schedule = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind(schedule)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(handoff_from_row)
    .transpose()
}

/// Records a hand-off; `None` when this one is already recorded (the unique index
/// on schedule and time keeps it once).
pub async fn insert_handoff(
    store: &Store,
    schedule: &str,
    from_member: u64,
    to_member: u64,
    at_ms: i64,
) -> Result<Option<i64>, StoreError> {
    // ON CONFLICT DO NOTHING is the same on SQLite and PostgreSQL.
    let row = sqlx::query(
        "INSERT INTO oncall_handoffs (schedule, from_member, to_member, at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(schedule)
    .bind(from_member as i64)
    .bind(to_member as i64)
    .bind(at_ms)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
}

/// Hand-offs whose announcement or role move is still to do, oldest first.
pub async fn pending_handoffs(store: &Store) -> Result<Vec<HandoffRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {HANDOFF_COLUMNS} FROM oncall_handoffs \
         WHERE announced_ms IS NULL OR role_moved_ms IS NULL ORDER BY id"
    ))
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(handoff_from_row)
    .collect()
}

/// Marks the announcement (`announced`) or the role move done.
pub async fn mark_handoff(
    store: &Store,
    id: i64,
    announced: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    let column = if announced {
        "announced_ms"
    } else {
        "role_moved_ms"
    };
    sqlx::query(&format!(
        "UPDATE oncall_handoffs SET {column} = $1 WHERE id = $2 AND {column} IS NULL"
    ))
    .bind(now_ms)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}
