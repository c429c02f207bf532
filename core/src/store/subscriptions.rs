//! The SQL of the status page's subscriptions (issue #15): confirmed email
//! subscribers, the public updates the page showed, and the outbox of their
//! deliveries. What an update says and when it goes out is decided in the
//! `subscriptions` module; this file only stores and reads rows.
//!
//! At most once per subscriber and update: `status_deliveries` has a unique
//! (target, update) key and every insert is `ON CONFLICT DO NOTHING`, so seeing an
//! update again (every refresh of the page, a new leader) queues nothing twice.
//! Portable SQL only: every statement serves SQLite and PostgreSQL alike.

use sqlx::Row;

use super::{Store, StoreError};

/// The signing key named `name`, made from `fresh` the first time (a second
/// replica racing for it gets the one stored first).
pub async fn key(store: &Store, name: &str, fresh: &str) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO status_keys (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(fresh)
    .execute(store.pool())
    .await?;
    Ok(
        sqlx::query_scalar("SELECT secret FROM status_keys WHERE name = $1")
            .bind(name)
            .fetch_one(store.pool())
            .await?,
    )
}

/// Stores a confirmed subscriber; `false` when the address was subscribed already.
pub async fn add_subscriber(
    store: &Store,
    email: &str,
    token: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO status_subscribers (email, token, confirmed_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(token)
    .bind(now_ms)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether an unsubscribe token belongs to a subscriber.
pub async fn token_known(store: &Store, token: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT id FROM status_subscribers WHERE token = $1")
            .bind(token)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}

/// Forgets the subscriber of `token` and drops what was still queued for them.
/// `false`: no such subscriber (already gone).
pub async fn remove_subscriber(store: &Store, token: &str) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM status_subscribers WHERE token = $1")
        .bind(token)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM status_deliveries WHERE subscriber_id = $1 AND state = 'pending'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM status_subscribers WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Confirmed subscribers.
pub async fn subscriber_count(store: &Store) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM status_subscribers")
            .fetch_one(store.pool())
            .await?,
    )
}

/// Whether a subscriber with this address exists (tests, `check`).
pub async fn has_address(store: &Store, email: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT id FROM status_subscribers WHERE email = $1")
            .bind(email)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}

/// Records a public update once and queues it for every confirmed subscriber (when
/// `emails`) and every webhook in `webhooks`, in one transaction. Returns whether
/// the update was new.
pub async fn record_update(
    store: &Store,
    ukey: &str,
    body: &str,
    at_ms: i64,
    emails: bool,
    webhooks: &[String],
    now_ms: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO status_updates (ukey, body, at_ms, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ukey) DO NOTHING RETURNING id",
    )
    .bind(ukey)
    .bind(body)
    .bind(at_ms)
    .bind(now_ms)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    if emails {
        sqlx::query(
            "INSERT INTO status_deliveries (update_id, target, subscriber_id, next_try_ms, \
             created_ms) SELECT $1, 'email:' || CAST(id AS TEXT), id, $2, $2 \
             FROM status_subscribers WHERE confirmed_ms <= $2 ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    {
        for name in webhooks {
            sqlx::query(
                "INSERT INTO status_deliveries (update_id, target, next_try_ms, created_ms) \
                 VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(format!("webhook:{name}"))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// A delivery that is due.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub target: String,
    pub attempts: i64,
    pub created_ms: i64,
    pub ukey: String,
    pub body: String,
    /// The subscriber's address and unsubscribe token (email deliveries).
    pub email: Option<(String, String)>,
}

/// Pending deliveries due by `now_ms`, the oldest first.
pub async fn due(store: &Store, now_ms: i64, limit: i64) -> Result<Vec<Due>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.id, d.target, d.attempts, d.created_ms, u.ukey, u.body, s.email, s.token \
         FROM status_deliveries d JOIN status_updates u ON u.id = d.update_id \
         LEFT JOIN status_subscribers s ON s.id = d.subscriber_id \
         WHERE d.state = 'pending' AND d.next_try_ms <= $1 ORDER BY d.id LIMIT $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let email: Option<String> = r.try_get("email")?;
            let token: Option<String> = r.try_get("token")?;
            Ok(Due {
                id: r.try_get("id")?,
                target: r.try_get("target")?,
                attempts: r.try_get("attempts")?,
                created_ms: r.try_get("created_ms")?,
                ukey: r.try_get("ukey")?,
                body: r.try_get("body")?,
                email: email.zip(token),
            })
        })
        .collect()
}

/// When the next pending delivery is due (`None`: nothing pending).
pub async fn next_due_ms(store: &Store) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar(
            "SELECT MIN(next_try_ms) FROM status_deliveries WHERE state = 'pending'",
        )
        .fetch_one(store.pool())
        .await?,
    )
}

/// Closes a delivery: `sent` or `parked` (with why).
pub async fn close(
    store: &Store,
    id: i64,
    state: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE status_deliveries SET state = $1, detail = $2, sent_ms = $3, \
         attempts = attempts + 1 WHERE id = $4 AND state = 'pending'",
    )
    .bind(state)
    .bind(detail)
    .bind(now_ms)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// One more failed attempt: the delivery waits until `until_ms`.
pub async fn retry_later(
    store: &Store,
    id: i64,
    until_ms: i64,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE status_deliveries SET attempts = attempts + 1, next_try_ms = $1, detail = $2 \
         WHERE id = $3 AND state = 'pending'",
    )
    .bind(until_ms)
    .bind(why)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Deliveries by state (tests, metrics).
pub async fn count(store: &Store, state: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM status_deliveries WHERE state = $1")
            .bind(state)
            .fetch_one(store.pool())
            .await?,
    )
}

/// The keys of every update recorded (what the publisher has seen).
pub async fn ukeys(store: &Store) -> Result<std::collections::HashSet<String>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT ukey FROM status_updates")
        .fetch_all(store.pool())
        .await?;
    Ok(rows.into_iter().collect())
}

/// Holds back every pending delivery of a receiver that is down until `until_ms`
/// (not counted as attempts): `email` = every mail (one SMTP server), else the
/// webhook `target`.
pub async fn defer(
    store: &Store,
    email: bool,
    target: &str,
    until_ms: i64,
) -> Result<(), StoreError> {
    let sql = if email {
        "UPDATE status_deliveries SET next_try_ms = $1 WHERE state = 'pending' \
         AND subscriber_id IS NOT NULL AND next_try_ms < $1 AND target <> $2"
    } else {
        "UPDATE status_deliveries SET next_try_ms = $1 WHERE state = 'pending' \
         AND target = $2 AND next_try_ms < $1"
    };
    sqlx::query(sql)
        .bind(until_ms)
        .bind(target)
        .execute(store.pool())
        .await?;
    Ok(())
}
