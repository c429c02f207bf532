//! What the public status page reads (issue #15): the incidents of its history
//! window. Portable SQL, SQLite and PostgreSQL.

use super::incidents::{incident_from, Incident, COLUMNS};
use crate::store::{Store, StoreError};

/// Incidents open now or opened or resolved since `since_ms`, newest first, at
/// most `limit`.
pub async fn incidents_since(
    store: &Store,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<Incident>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE status <> 'resolved' OR opened_ms >= $1 \
         OR resolved_ms >= $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(since_ms)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(incident_from).collect()
}
