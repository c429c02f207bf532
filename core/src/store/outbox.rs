//! The outbox's SQL: groups due for a message, the rendered messages waiting to be
//! sent (one row per body, in the order the sender must deliver them), and the
//! message ids Discord gave a group. What goes in a message is decided in
//! `alerts::render`; when and how it is sent, in `alerts::sender`.
//!
//! Portable SQL only: every statement serves SQLite and PostgreSQL alike.

use sqlx::Row;

use super::{Store, StoreError};
use crate::alert::Alert;

/// A group whose message is due.
pub struct DueGroup {
    pub id: i64,
    pub channel_id: i64,
    pub severity: String,
    pub page: i64,
    pub title: String,
    /// Discord's ids of its messages so far, comma-separated.
    pub message_ids: String,
    pub generation: i64,
    pub acked_by: Option<String>,
    pub acked_ms: Option<i64>,
}

/// Groups due by `now_ms`, the most severe and the longest due first.
pub async fn due_groups(store: &Store, now_ms: i64) -> Result<Vec<DueGroup>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, channel_id, severity, page, title, message_ids, generation, acked_by, \
         acked_ms FROM alert_groups \
         WHERE due_ms IS NOT NULL AND due_ms <= $1 ORDER BY severity, due_ms, id LIMIT 200",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|g| {
            Ok(DueGroup {
                id: g.try_get("id")?,
                severity: g.try_get("severity")?,
                page: g.try_get("page")?,
                title: g.try_get("title")?,
                channel_id: g.try_get("channel_id")?,
                message_ids: g.try_get("message_ids")?,
                generation: g.try_get("generation")?,
                acked_by: g.try_get("acked_by")?,
                acked_ms: g.try_get("acked_ms")?,
            })
        })
        .collect()
}

/// A group's alerts as its message lists them (resolved last, the oldest first),
/// each with its first-seen and resolved times.
pub async fn group_alerts(
    store: &Store,
    group_id: i64,
) -> Result<Vec<(Alert, i64, Option<i64>)>, StoreError> {
    let rows = sqlx::query(
        "SELECT status, service, name, annotations, labels, first_seen_ms, resolved_ms \
         FROM alerts WHERE group_id = $1 ORDER BY status, first_seen_ms, id",
    )
    .bind(group_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                super::alerts::from_row(r)?,
                r.try_get("first_seen_ms")?,
                r.try_get("resolved_ms")?,
            ))
        })
        .collect()
}

/// One message of a group, rendered.
pub struct Part {
    pub body: String,
    pub nonce: String,
}

/// Queues a group's messages (part by part; a part whose body is the one pending or
/// sent already is skipped) and marks the group sent, in one transaction.
pub async fn enqueue(
    store: &Store,
    group_id: i64,
    channel_id: i64,
    parts: &[Part],
    priority: i64,
    firing: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    for (part, p) in parts.iter().enumerate() {
        // A part that reads as it already does (or will) costs no request.
        let last: Option<String> = sqlx::query(
            "SELECT body FROM outbox WHERE group_id = $1 AND part = $2 \
             AND state IN ('pending', 'sent') ORDER BY id DESC LIMIT 1",
        )
        .bind(group_id)
        .bind(part as i64)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<String, _>("body"))
        .transpose()?;
        if last.as_deref() == Some(p.body.as_str()) {
            continue;
        }
        sqlx::query(
            "INSERT INTO outbox (group_id, part, channel_id, body, nonce, priority, \
             created_ms, next_try_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
        )
        .bind(group_id)
        .bind(part as i64)
        .bind(channel_id)
        .bind(&p.body)
        .bind(&p.nonce)
        .bind(priority)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE alert_groups SET due_ms = NULL, last_sent_ms = $1, status = $2 WHERE id = $3",
    )
    .bind(now_ms)
    .bind(if firing { "firing" } else { "resolved" })
    .bind(group_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A group that may be announced again.
pub struct RepeatGroup {
    pub id: i64,
    pub channel_id: i64,
    pub severity: String,
    pub page: i64,
    pub title: String,
    pub created_ms: i64,
    pub repeat_ms: Option<i64>,
}

/// Groups firing, not acknowledged, shown, and not announced since `before_ms`.
pub async fn repeat_candidates(
    store: &Store,
    before_ms: i64,
) -> Result<Vec<RepeatGroup>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, channel_id, severity, page, title, created_ms, repeat_ms FROM alert_groups \
         WHERE status = 'firing' AND acked_by IS NULL AND message_ids <> '' \
         AND COALESCE(repeat_ms, created_ms) <= $1 ORDER BY id LIMIT 50",
    )
    .bind(before_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|g| {
            Ok(RepeatGroup {
                id: g.try_get("id")?,
                repeat_ms: g.try_get("repeat_ms")?,
                severity: g.try_get("severity")?,
                created_ms: g.try_get("created_ms")?,
                title: g.try_get("title")?,
                page: g.try_get("page")?,
                channel_id: g.try_get("channel_id")?,
            })
        })
        .collect()
}

/// Claims a repeat: false when another replica (or an earlier tick) did already.
pub async fn claim_repeat(
    store: &Store,
    group_id: i64,
    was: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE alert_groups SET repeat_ms = $1 WHERE id = $2 \
         AND (repeat_ms = $3 OR (repeat_ms IS NULL AND $4 = 0))",
    )
    .bind(now_ms)
    .bind(group_id)
    .bind(was.unwrap_or(0))
    .bind(i64::from(was.is_some()))
    .execute(store.pool())
    .await?
    .rows_affected()
        != 0)
}

/// The services of a group's firing alerts.
pub async fn firing_services(store: &Store, group_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT service FROM alerts WHERE group_id = $1 AND status = 'firing'",
    )
    .bind(group_id)
    .fetch_all(store.pool())
    .await?)
}

/// How many of a group's alerts fire.
pub async fn firing_count(store: &Store, group_id: i64) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE group_id = $1 AND status = 'firing'")
            .bind(group_id)
            .fetch_one(store.pool())
            .await?,
    )
}

/// Channels with a message due.
pub async fn due_channels(store: &Store, now_ms: i64) -> Result<Vec<u64>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT channel_id FROM outbox WHERE state = 'pending' AND next_try_ms <= $1",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<i64, _>("channel_id")? as u64))
        .collect()
}

/// A message waiting in the outbox.
pub struct Pending {
    pub id: i64,
    pub group_id: i64,
    pub part: i64,
    pub body: String,
    pub attempts: i64,
    pub priority: i64,
    /// When it was queued (the outbox delivery age starts here).
    pub created_ms: i64,
}

/// A channel's next message: the most urgent, then the oldest.
pub async fn next_pending(
    store: &Store,
    channel: u64,
    now_ms: i64,
) -> Result<Option<Pending>, StoreError> {
    let row = sqlx::query(
        "SELECT id, group_id, part, body, attempts, priority, created_ms FROM outbox \
         WHERE channel_id = $1 \
         AND state = 'pending' AND next_try_ms <= $2 ORDER BY priority, id LIMIT 1",
    )
    .bind(channel as i64)
    .bind(now_ms)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(Pending {
            id: r.try_get("id")?,
            group_id: r.try_get("group_id")?,
            part: r.try_get("part")?,
            attempts: r.try_get("attempts")?,
            priority: r.try_get("priority")?,
            body: r.try_get("body")?,
            created_ms: r.try_get("created_ms")?,
        })
    })
    .transpose()
}

/// Whether a newer body of the same message is pending.
pub async fn has_newer(
    store: &Store,
    group_id: i64,
    part: i64,
    id: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT id FROM outbox WHERE group_id = $1 AND part = $2 AND state = 'pending' \
         AND id > $3 LIMIT 1",
    )
    .bind(group_id)
    .bind(part)
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .is_some())
}

/// Closes a message as `superseded` or `parked`, with why.
pub async fn mark(
    store: &Store,
    id: i64,
    state: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET state = $1, detail = $2, sent_ms = $3 WHERE id = $4")
        .bind(state)
        .bind(detail)
        .bind(now_ms)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Discord's ids of a group's messages, comma-separated (empty: none yet).
pub async fn message_ids(store: &Store, group_id: i64) -> Result<String, StoreError> {
    Ok(
        sqlx::query("SELECT message_ids FROM alert_groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(store.pool())
            .await?
            .map(|r| r.try_get::<String, _>("message_ids"))
            .transpose()?
            .unwrap_or_default(),
    )
}

/// A message went out: marked sent, and the group's ids updated when it was
/// created (`message_ids`), in one transaction.
pub async fn record_sent(
    store: &Store,
    id: i64,
    group_id: i64,
    message_ids: Option<String>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    if let Some(ids) = message_ids {
        sqlx::query("UPDATE alert_groups SET message_ids = $1 WHERE id = $2")
            .bind(ids)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE outbox SET state = 'sent', sent_ms = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Parks every pending message of a channel Discord does not know.
pub async fn park_channel(store: &Store, channel: u64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET state = 'parked', detail = 'unknown channel' \
         WHERE channel_id = $1 AND state = 'pending'",
    )
    .bind(channel as i64)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The most attempts any pending message of a channel has had.
pub async fn worst_attempts(store: &Store, channel: u64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(MAX(attempts), 0) FROM outbox \
         WHERE channel_id = $1 AND state = 'pending'",
    )
    .bind(channel as i64)
    .fetch_one(store.pool())
    .await?)
}

/// One more failed attempt of message `id`: it, and every pending message of its
/// channel, waits until `until_ms` at least.
pub async fn retry_later(
    store: &Store,
    channel: u64,
    id: i64,
    until_ms: i64,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, next_try_ms = $1, detail = $2 \
         WHERE id = $3",
    )
    .bind(until_ms)
    .bind(why)
    .bind(id)
    .execute(store.pool())
    .await?;
    sqlx::query(
        "UPDATE outbox SET next_try_ms = CASE WHEN next_try_ms < $1 THEN $2 \
         ELSE next_try_ms END WHERE channel_id = $3 AND state = 'pending'",
    )
    .bind(until_ms)
    .bind(until_ms)
    .bind(channel as i64)
    .execute(store.pool())
    .await?;
    Ok(())
}
