//! The leader lease on PostgreSQL: one row with an expiry in the database's own
//! clock, so replica clocks do not matter (see `leader` for the timing).
//! PostgreSQL only: SQLite runs one process per file, held by a file lock.

use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::Row;

use super::{Store, StoreError};

/// How long a lease lasts without renewal.
pub const TTL_MS: i64 = 10_000;

/// The database's clock, in milliseconds since the epoch.
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// This process's claim to leadership on PostgreSQL.
#[derive(Debug)]
pub struct Lease {
    holder: String,
    epoch: AtomicI64,
}

impl Lease {
    /// `holder` names this process in the lease row (host, pid): operators read it.
    pub fn new(holder: impl Into<String>) -> Lease {
        Lease {
            holder: holder.into(),
            epoch: AtomicI64::new(0),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease if nobody holds it or its holder let it expire. The epoch
    /// grows with every new holder.
    pub async fn try_acquire(&self, store: &Store) -> Result<bool, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO leader_lease (name, holder, epoch, expires_ms, renewed_ms) \
             VALUES ('leader', $1, 1, {DB_NOW} + $2, {DB_NOW}) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             epoch = leader_lease.epoch + 1, expires_ms = excluded.expires_ms, \
             renewed_ms = excluded.renewed_ms \
             WHERE leader_lease.expires_ms < {DB_NOW} \
             RETURNING epoch"
        ))
        .bind(&self.holder)
        .bind(TTL_MS)
        .fetch_optional(store.pool())
        .await?;
        match row {
            Some(r) => {
                self.epoch.store(r.try_get("epoch")?, Ordering::SeqCst);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Extends the lease; false when it is no longer ours.
    pub async fn renew(&self, store: &Store) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE leader_lease SET expires_ms = {DB_NOW} + $1, renewed_ms = {DB_NOW} \
             WHERE name = 'leader' AND holder = $2 AND epoch = $3"
        ))
        .bind(TTL_MS)
        .bind(&self.holder)
        .bind(self.epoch.load(Ordering::SeqCst))
        .execute(store.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up at once (graceful shutdown), so a follower need not wait
    /// for it to expire.
    pub async fn release(&self, store: &Store) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE leader_lease SET expires_ms = 0 WHERE name = 'leader' AND holder = $1 \
             AND epoch = $2",
        )
        .bind(&self.holder)
        .bind(self.epoch.load(Ordering::SeqCst))
        .execute(store.pool())
        .await?;
        Ok(())
    }

    /// Who holds the lease now, for messages: (holder, still valid).
    pub async fn current(store: &Store) -> Result<Option<(String, bool)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT holder, CASE WHEN expires_ms > {DB_NOW} THEN 1 ELSE 0 END AS valid \
             FROM leader_lease WHERE name = 'leader'"
        ))
        .fetch_optional(store.pool())
        .await?;
        row.map(|r| -> Result<_, StoreError> {
            Ok((r.try_get("holder")?, r.try_get::<i32, _>("valid")? == 1))
        })
        .transpose()
    }
}
