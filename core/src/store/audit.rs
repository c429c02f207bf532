//! The audit log's rows: every invocation, allowed or denied. Portable SQL; the
//! same statements serve SQLite and PostgreSQL.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};
use crate::audit::{AuditEntry, Outcome};

impl Store {
    pub async fn insert_audit(&self, e: &AuditEntry) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO audit_log (at_ms, guild_id, channel_id, user_id, user_name, command, \
             arguments, outcome, detail, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(e.at_ms)
        .bind(e.guild_id.map(|v| v as i64))
        .bind(e.channel_id.map(|v| v as i64))
        .bind(e.user_id as i64)
        .bind(&e.user_name)
        .bind(&e.command)
        .bind(&e.arguments)
        .bind(e.outcome.as_str())
        .bind(&e.detail)
        .bind(e.duration_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// The newest audit entries first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, guild_id, channel_id, user_id, user_name, command, arguments, \
             outcome, detail, duration_ms FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}

fn audit_from_row(r: &AnyRow) -> Result<AuditEntry, StoreError> {
    let outcome: String = r.try_get("outcome")?;
    Ok(AuditEntry {
        at_ms: r.try_get("at_ms")?,
        guild_id: r.try_get::<Option<i64>, _>("guild_id")?.map(|v| v as u64),
        channel_id: r.try_get::<Option<i64>, _>("channel_id")?.map(|v| v as u64),
        user_id: r.try_get::<i64, _>("user_id")? as u64,
        user_name: r.try_get("user_name")?,
        command: r.try_get("command")?,
        arguments: r.try_get("arguments")?,
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failed),
        detail: r.try_get("detail")?,
        duration_ms: r.try_get("duration_ms")?,
    })
}
