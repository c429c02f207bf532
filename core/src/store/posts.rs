//! The SQL of the posts outbox (everything Klaxon posts on its own initiative that is
//! not an alert group: incident cards, notices, pages, reminders, maintenance
//! announcements). What goes in a post and when it is delivered is decided in
//! the `posts` and `delivery` modules; this file only stores and reads rows.
//!
//! Portable SQL only: every statement serves SQLite and PostgreSQL alike.

use sqlx::Row;

use super::{Store, StoreError};

/// A post to store.
#[derive(Debug, Clone)]
pub struct NewPost<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    /// `None`: the subject's room (an incident's thread or channel, once it exists).
    pub channel_id: Option<u64>,
    /// The rendered message, JSON.
    pub body: String,
    /// The caller's key: a post with a key already stored is not stored again.
    pub key: Option<String>,
    /// Edits the message the subject's earlier post of this kind created.
    pub edit: bool,
}

/// Stores a post (inside the caller's transaction, so it commits with the state
/// change it reports). Returns its id, or `None` when its key was stored already.
pub async fn insert(
    conn: &mut sqlx::AnyConnection,
    p: &NewPost<'_>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    if let Some(key) = &p.key {
        let seen = sqlx::query("SELECT id FROM posts WHERE nonce = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        if seen.is_some() {
            return Ok(None);
        }
    }
    let row = sqlx::query(
        "INSERT INTO posts (kind, subject, channel_id, body, nonce, edit, next_try_ms, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(p.kind)
    .bind(p.subject)
    .bind(p.channel_id.map(|c| c as i64))
    .bind(&p.body)
    .bind(p.key.clone())
    .bind(i64::from(p.edit))
    .bind(now_ms)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(row.try_get("id")?))
}

/// A post waiting to be delivered.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub channel_id: Option<u64>,
    pub body: String,
    pub key: Option<String>,
    pub edit: bool,
    pub attempts: i64,
    pub created_ms: i64,
}

/// The first pending post of each subject, when it is due by `now_ms`, the oldest
/// first. A later post of a subject waits for the ones before it.
pub async fn due_heads(store: &Store, now_ms: i64, limit: i64) -> Result<Vec<Pending>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, kind, subject, channel_id, body, nonce, edit, attempts, created_ms \
         FROM posts p WHERE state = 'pending' AND next_try_ms <= $1 \
         AND NOT EXISTS (SELECT 1 FROM posts q WHERE q.state = 'pending' \
         AND q.subject = p.subject AND q.id < p.id) ORDER BY id LIMIT $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Pending {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                channel_id: r.try_get::<Option<i64>, _>("channel_id")?.map(|c| c as u64),
                body: r.try_get("body")?,
                key: r.try_get("nonce")?,
                edit: r.try_get::<i64, _>("edit")? != 0,
                attempts: r.try_get("attempts")?,
                created_ms: r.try_get("created_ms")?,
            })
        })
        .collect()
}

/// When the next pending post is due (`None`: nothing pending).
pub async fn next_due_ms(store: &Store) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT MIN(next_try_ms) FROM posts WHERE state = 'pending'")
            .fetch_one(store.pool())
            .await?,
    )
}

/// Whether a newer edit of the same message is pending (this one need not go out).
pub async fn has_newer_edit(store: &Store, p: &Pending) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT id FROM posts WHERE kind = $1 AND subject = $2 AND edit = 1 \
         AND state = 'pending' AND id > $3 LIMIT 1",
    )
    .bind(&p.kind)
    .bind(&p.subject)
    .bind(p.id)
    .fetch_optional(store.pool())
    .await?
    .is_some())
}

/// The channel and id of the message the subject's latest delivered create of
/// `kind` made.
pub async fn created_message(
    store: &Store,
    kind: &str,
    subject: &str,
) -> Result<Option<(u64, u64)>, StoreError> {
    let row = sqlx::query(
        "SELECT channel_id, message_id FROM posts WHERE kind = $1 AND subject = $2 \
         AND edit = 0 AND state = 'sent' AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(kind)
    .bind(subject)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok((
            r.try_get::<Option<i64>, _>("channel_id")?
                .unwrap_or_default() as u64,
            r.try_get::<i64, _>("message_id")? as u64,
        ))
    })
    .transpose()
}

/// A post went out: sent, where, and (a create) Discord's id of the message.
pub async fn record_sent(
    store: &Store,
    id: i64,
    channel_id: u64,
    message_id: Option<u64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE posts SET state = 'sent', sent_ms = $1, channel_id = $2, message_id = $3, \
         attempts = attempts + 1 WHERE id = $4",
    )
    .bind(now_ms)
    .bind(channel_id as i64)
    .bind(message_id.map(|m| m as i64))
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Closes a post as `superseded` or `parked`, with why.
pub async fn close(
    store: &Store,
    id: i64,
    state: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE posts SET state = $1, detail = $2, sent_ms = $3 WHERE id = $4")
        .bind(state)
        .bind(detail)
        .bind(now_ms)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// One more failed attempt: the post waits until `until_ms`.
pub async fn retry_later(
    store: &Store,
    id: i64,
    until_ms: i64,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE posts SET attempts = attempts + 1, next_try_ms = $1, detail = $2 WHERE id = $3",
    )
    .bind(until_ms)
    .bind(why)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Counts by state, for tests and `/readyz`-style questions.
pub async fn count(store: &Store, state: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM posts WHERE state = $1")
            .bind(state)
            .fetch_one(store.pool())
            .await?,
    )
}
