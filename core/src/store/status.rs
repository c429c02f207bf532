//! What the public status page reads (issue #15): the incidents of its history
//! window. Portable SQL, SQLite and PostgreSQL.

use sqlx::Row;

use super::incidents::{incident_from, Incident, IncidentId, COLUMNS};
use crate::store::{Store, StoreError};

/// Public incidents open now or opened or resolved since `since_ms`, newest
/// first, at most `limit`. An incident opened with `public:false` is never read.
pub async fn incidents_since(
    store: &Store,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<Incident>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE is_public <> 0 AND (status <> 'resolved' \
         OR opened_ms >= $1 OR resolved_ms >= $1) ORDER BY id DESC LIMIT $2"
    ))
    .bind(since_ms)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(incident_from).collect()
}

/// Whether an incident is shown on the public page (false for `public:false` and
/// for an incident that does not exist). For whatever publishes beyond the page
/// (subscriptions): one place that says what is public.
pub async fn is_public(store: &Store, id: IncidentId) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT is_public FROM incidents WHERE id = $1")
        .bind(id.0)
        .fetch_optional(store.pool())
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<i64, _>("is_public")? != 0,
        None => false,
    })
}
