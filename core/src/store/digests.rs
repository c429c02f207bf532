//! The digests' rows (issue #15): one per (kind, period), claimed by the leader in
//! the transaction that stores the digest's post, and the reads only digests make
//! (the noisiest alerts of a week). Portable SQL, SQLite and PostgreSQL.

use sqlx::Row;

use super::{Store, StoreError};

/// Whether the digest of `period` was claimed (posted or being posted).
pub async fn claimed(store: &Store, kind: &str, period: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM digests WHERE kind = $1 AND period = $2")
            .bind(kind)
            .bind(period)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}

/// Claims the digest of `period` inside the caller's transaction: `true` for the
/// one claim that wins, `false` when it was claimed already (by this or another
/// replica). ON CONFLICT DO NOTHING reads the same on SQLite and PostgreSQL.
pub async fn claim(
    conn: &mut sqlx::AnyConnection,
    kind: &str,
    period: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO digests (kind, period, claimed_ms) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(kind)
    .bind(period)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One alert name's noise in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noise {
    pub name: String,
    /// Distinct alerts (source and fingerprint) of that name seen in the period.
    pub alerts: i64,
    /// Notifications that carried them (duplicates included, over each alert's life).
    pub notifications: i64,
}

/// The alert names seen in `[since_ms, until_ms)` with the most notifications,
/// at most `limit`, the noisiest first.
pub async fn noisiest(
    store: &Store,
    since_ms: i64,
    until_ms: i64,
    limit: i64,
) -> Result<Vec<Noise>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, COUNT(*) AS alerts, CAST(SUM(received) AS BIGINT) AS notifications \
         FROM alerts \
         WHERE last_seen_ms >= $1 AND first_seen_ms < $2 \
         GROUP BY name ORDER BY notifications DESC, alerts DESC, name LIMIT $3",
    )
    .bind(since_ms)
    .bind(until_ms)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Noise {
                name: r.try_get("name")?,
                alerts: r.try_get("alerts")?,
                notifications: r.try_get("notifications")?,
            })
        })
        .collect()
}
