//! The status page's daily roll-ups (issue #15): one row per component and UTC
//! day with the worst state seen and the time spent degraded, in outage and in
//! maintenance. The leader adds to today's row each time it renders the page; the
//! history bar reads the rows. Portable SQL (`ON CONFLICT ... DO UPDATE` with
//! `excluded`, `CASE` for the maximum), SQLite and PostgreSQL.

use sqlx::Row;

use super::{Store, StoreError};

/// One component's state now, as a rank (0 operational, 1 maintenance, 2
/// degraded, 3 outage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample<'a> {
    pub component: &'a str,
    pub rank: i64,
}

/// The longest gap between two samples that is counted (longer: Klaxon was not
/// watching, and nothing is assumed).
pub const MAX_GAP_MS: i64 = 60_000;

/// One stored day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub component: String,
    pub day_ms: i64,
    pub worst: i64,
    pub degraded_ms: i64,
    pub outage_ms: i64,
    pub maintenance_ms: i64,
}

/// Adds the samples to the day `day_ms`, in one write transaction: the worst
/// state is kept, and the time since the row's last sample (at most
/// [`MAX_GAP_MS`]) is counted in the sample's state. The gap is measured in the
/// row itself, so a restart or a new leader counts no time twice.
pub async fn record(
    store: &Store,
    day_ms: i64,
    samples: &[Sample<'_>],
    now_ms: i64,
) -> Result<(), StoreError> {
    let gap = format!(
        "(CASE WHEN excluded.updated_ms - status_days.updated_ms > {MAX_GAP_MS} \
         THEN {MAX_GAP_MS} WHEN excluded.updated_ms < status_days.updated_ms THEN 0 \
         ELSE excluded.updated_ms - status_days.updated_ms END)"
    );
    let sql = format!(
        "INSERT INTO status_days (component, day_ms, worst, updated_ms) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (component, day_ms) DO UPDATE SET \
         worst = CASE WHEN excluded.worst > status_days.worst \
                 THEN excluded.worst ELSE status_days.worst END, \
         maintenance_ms = status_days.maintenance_ms \
                 + CASE WHEN excluded.worst = 1 THEN {gap} ELSE 0 END, \
         degraded_ms = status_days.degraded_ms \
                 + CASE WHEN excluded.worst = 2 THEN {gap} ELSE 0 END, \
         outage_ms = status_days.outage_ms \
                 + CASE WHEN excluded.worst = 3 THEN {gap} ELSE 0 END, \
         updated_ms = excluded.updated_ms"
    );
    let mut tx = store.begin_write().await?;
    for s in samples {
        sqlx::query(&sql)
            .bind(s.component)
            .bind(day_ms)
            .bind(s.rank)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every row of the days from `since_day_ms` on, oldest first.
pub async fn since(store: &Store, since_day_ms: i64) -> Result<Vec<DayRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT component, day_ms, worst, degraded_ms, outage_ms, maintenance_ms \
         FROM status_days WHERE day_ms >= $1 ORDER BY day_ms, component",
    )
    .bind(since_day_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DayRow {
                component: r.try_get("component")?,
                day_ms: r.try_get("day_ms")?,
                worst: r.try_get("worst")?,
                degraded_ms: r.try_get("degraded_ms")?,
                outage_ms: r.try_get("outage_ms")?,
                maintenance_ms: r.try_get("maintenance_ms")?,
            })
        })
        .collect()
}
