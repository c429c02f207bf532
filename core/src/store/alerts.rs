//! The alerts aggregate's SQL: stored alerts (one row per source and fingerprint),
//! their groups, and silences. What to do with them (routing, holding, due times)
//! is decided in the `alerts` domain; this file only reads and writes.
//!
//! Portable SQL only: every statement here serves SQLite and PostgreSQL alike
//! (`ON CONFLICT ... DO UPDATE`, `RETURNING`, `||` and `CAST(... AS TEXT)` exist in
//! both). A statement that must differ is written here with both forms side by side.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::{Store, StoreError, Tx};
use crate::alert::{Alert, AlertStatus, Source};

/// Alerts per multi-row statement (16 parameters each). Measured with
/// `bench-silences`: the cost per row grows with the statement's size on SQLite
/// (2,000 alerts: 180 ms in statements of 200 rows, 55 ms in statements of 25),
/// while PostgreSQL mostly pays per round trip.
const ROWS_PER_STATEMENT: usize = 25;

/// What an upsert does to an alert's `group_id` and `held_by`.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// A duplicate or a change with nowhere to go: both stay as they are.
    Keep,
    /// Joined this group (and is no longer held).
    Group(i64),
    /// Held back by a silence or a maintenance window (`silence:<id>`, ...).
    Held(String),
}

/// The stored status of every alert of the notification, read in a few queries.
pub async fn stored_statuses(
    tx: &mut Tx,
    alerts: &[Alert],
) -> Result<HashMap<(String, String), AlertStatus>, StoreError> {
    let mut by_source: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in alerts {
        by_source
            .entry(a.source.as_str())
            .or_default()
            .push(a.fingerprint.as_str());
    }
    let mut out = HashMap::with_capacity(alerts.len());
    for (source, fingerprints) in by_source {
        for chunk in fingerprints.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT fingerprint, status FROM alerts WHERE source = $1 AND fingerprint IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(source);
            for f in chunk {
                q = q.bind(*f);
            }
            for r in q.fetch_all(&mut **tx).await? {
                let fingerprint: String = r.try_get("fingerprint")?;
                let status: String = r.try_get("status")?;
                if let Some(s) = AlertStatus::parse(&status) {
                    out.insert((source.to_string(), fingerprint), s);
                }
            }
        }
    }
    Ok(out)
}

/// Writes the alerts in order, many per statement. A statement holds alerts of one
/// kind (placed or not) and each alert once, so every row is written exactly as
/// one statement per alert would have written it.
pub async fn upsert_alerts(
    tx: &mut Tx,
    alerts: &[Alert],
    places: &[Place],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < alerts.len() {
        let placed = places[start] != Place::Keep;
        let mut seen = HashSet::new();
        let mut end = start;
        while end < alerts.len()
            && end - start < ROWS_PER_STATEMENT
            && (places[end] != Place::Keep) == placed
            && seen.insert((
                alerts[end].source.as_str(),
                alerts[end].fingerprint.as_str(),
            ))
        {
            end += 1;
        }
        upsert_chunk(tx, &alerts[start..end], &places[start..end], placed, now_ms).await?;
        start = end;
    }
    Ok(())
}

async fn upsert_chunk(
    tx: &mut Tx,
    alerts: &[Alert],
    places: &[Place],
    placed: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    const COLUMNS: usize = 16;
    let mut values = Vec::with_capacity(alerts.len());
    for i in 0..alerts.len() {
        let marks: Vec<String> = (1..=COLUMNS)
            .map(|c| format!("${}", i * COLUMNS + c))
            .collect();
        values.push(format!("({}, 1)", marks.join(", ")));
    }
    let placement = if placed {
        // A held alert keeps the group it was shown in (its release updates it).
        ", group_id = COALESCE(excluded.group_id, alerts.group_id), held_by = excluded.held_by"
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO alerts (source, fingerprint, status, name, severity, service, labels, \
         annotations, url, starts_ms, ends_ms, first_seen_ms, last_seen_ms, resolved_ms, \
         group_id, held_by, received) VALUES {} \
         ON CONFLICT (source, fingerprint) DO UPDATE SET status = excluded.status, \
         name = excluded.name, severity = excluded.severity, service = excluded.service, \
         labels = excluded.labels, annotations = excluded.annotations, url = excluded.url, \
         starts_ms = COALESCE(excluded.starts_ms, alerts.starts_ms), ends_ms = excluded.ends_ms, \
         last_seen_ms = excluded.last_seen_ms, \
         resolved_ms = CASE WHEN excluded.status = 'resolved' \
             THEN COALESCE(alerts.resolved_ms, excluded.resolved_ms) ELSE NULL END, \
         received = alerts.received + 1{placement}",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for (a, place) in alerts.iter().zip(places) {
        let (group, held): (Option<i64>, Option<String>) = match place {
            Place::Keep => (None, None),
            Place::Group(g) => (Some(*g), None),
            Place::Held(h) => (None, Some(h.clone())),
        };
        q = q
            .bind(a.source.as_str())
            .bind(a.fingerprint.clone())
            .bind(a.status.as_str())
            .bind(a.name().to_string())
            .bind(a.label("severity").unwrap_or_default().to_string())
            .bind(a.label("service").unwrap_or_default().to_string())
            .bind(serde_json::to_string(&a.labels).unwrap_or_else(|_| "{}".into()))
            .bind(serde_json::to_string(&a.annotations).unwrap_or_else(|_| "{}".into()))
            .bind(a.url.clone().unwrap_or_default())
            .bind(a.starts_ms)
            .bind(a.ends_ms)
            .bind(now_ms)
            .bind(now_ms)
            .bind((a.status == AlertStatus::Resolved).then_some(now_ms))
            .bind(group)
            .bind(held);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// An alert as stored, from a row with `status`, `labels` and `annotations` (and
/// `fingerprint` when selected): enough to route, group and render it again.
pub fn from_row(r: &sqlx::any::AnyRow) -> Result<Alert, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(Alert {
        source: Source::Generic,
        fingerprint: r.try_get("fingerprint").unwrap_or_default(),
        status: AlertStatus::parse(&status).unwrap_or(AlertStatus::Firing),
        labels: serde_json::from_str(&r.try_get::<String, _>("labels")?).unwrap_or_default(),
        annotations: serde_json::from_str(&r.try_get::<String, _>("annotations")?)
            .unwrap_or_default(),
        starts_ms: None,
        ends_ms: None,
        url: None,
    })
}

/// Counts alerts newly held by a maintenance window.
pub async fn add_held_to_window(tx: &mut Tx, id: i64, n: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE maintenance_windows SET held = held + $1 WHERE id = $2")
        .bind(n)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Counts alerts newly held by a silence.
pub async fn add_held_to_silence(tx: &mut Tx, id: i64, n: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE silences SET held = held + $1 WHERE id = $2")
        .bind(n)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Silences that end with their alerts: ended once none they held still fires.
pub async fn end_silences_resolved(tx: &mut Tx, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE silences SET ended_ms = $1, ended_by = 'its alerts resolved' \
         WHERE until_resolved = 1 AND ended_ms IS NULL AND held > 0 AND NOT EXISTS \
         (SELECT 1 FROM alerts WHERE alerts.held_by = 'silence:' || CAST(silences.id AS TEXT) \
          AND alerts.status = 'firing')",
    )
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An alert held back by a silence or a maintenance window.
pub struct Held {
    pub source: String,
    /// The group whose message showed it before it was held, if any.
    pub shown_in: Option<i64>,
    pub alert: Alert,
}

/// The alerts held under `held_by` (`silence:<id>`, `maintenance:<id>`).
pub async fn held(tx: &mut Tx, held_by: &str) -> Result<Vec<Held>, StoreError> {
    let rows = sqlx::query(
        "SELECT source, fingerprint, status, labels, annotations, group_id FROM alerts \
         WHERE held_by = $1",
    )
    .bind(held_by)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Held {
                source: r.try_get("source")?,
                shown_in: r.try_get("group_id")?,
                alert: from_row(r)?,
            })
        })
        .collect()
}

/// No longer held; in `group` when one was joined.
pub async fn unhold(
    tx: &mut Tx,
    group: Option<i64>,
    source: &str,
    fingerprint: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE alerts SET held_by = NULL, group_id = COALESCE($1, group_id) \
         WHERE source = $2 AND fingerprint = $3",
    )
    .bind(group)
    .bind(source)
    .bind(fingerprint)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A group as the intake finds it when an alert joins.
pub struct GroupState {
    pub id: i64,
    pub status: String,
    pub due_ms: Option<i64>,
    pub last_sent_ms: Option<i64>,
}

pub async fn find_group(tx: &mut Tx, key: &str) -> Result<Option<GroupState>, StoreError> {
    let row = sqlx::query(
        "SELECT id, status, due_ms, last_sent_ms FROM alert_groups WHERE group_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(GroupState {
            id: row.try_get("id")?,
            status: row.try_get("status")?,
            due_ms: row.try_get("due_ms")?,
            last_sent_ms: row.try_get("last_sent_ms")?,
        })
    })
    .transpose()
}

/// A new group, firing.
pub struct NewGroup<'a> {
    pub key: &'a str,
    pub channel: u64,
    pub severity: &'a str,
    pub page: bool,
    pub title: &'a str,
    pub now_ms: i64,
    pub due_ms: i64,
    /// Its identity as silence matchers, JSON.
    pub matchers: String,
}

pub async fn insert_group(tx: &mut Tx, g: &NewGroup<'_>) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO alert_groups (group_key, channel_id, severity, page, title, status, \
         created_ms, updated_ms, due_ms, matchers) \
         VALUES ($1, $2, $3, $4, $5, 'firing', $6, $7, $8, $9) RETURNING id",
    )
    .bind(g.key)
    .bind(g.channel as i64)
    .bind(g.severity)
    .bind(i64::from(g.page))
    .bind(g.title)
    .bind(g.now_ms)
    .bind(g.now_ms)
    .bind(g.due_ms)
    .bind(&g.matchers)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?)
}

/// A resolved group firing again: a new message (new nonces), not an edit.
pub async fn refire_group(
    tx: &mut Tx,
    id: i64,
    now_ms: i64,
    due_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE alert_groups SET status = 'firing', updated_ms = $1, due_ms = $2, \
         message_ids = '', generation = generation + 1 WHERE id = $3",
    )
    .bind(now_ms)
    .bind(due_ms)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A group changed: due at `due_ms`.
pub async fn touch_group(tx: &mut Tx, id: i64, now_ms: i64, due_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE alert_groups SET updated_ms = $1, due_ms = $2 WHERE id = $3")
        .bind(now_ms)
        .bind(due_ms)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The service a group's alerts are about, when they name one.
pub async fn group_service(store: &Store, group_id: i64) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT service FROM alerts WHERE group_id = $1 AND service <> '' ORDER BY id LIMIT 1",
    )
    .bind(group_id)
    .fetch_optional(store.pool())
    .await?
    .map(|r| r.try_get::<String, _>("service"))
    .transpose()?)
}

/// Records who acknowledged a group and makes it due now (its message shows it).
pub async fn acknowledge(
    store: &Store,
    group_id: i64,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE alert_groups SET acked_by = $1, acked_ms = $2, due_ms = $3 WHERE id = $4",
    )
    .bind(by)
    .bind(now_ms)
    .bind(now_ms)
    .bind(group_id)
    .execute(store.pool())
    .await?
    .rows_affected()
        > 0)
}

/// A group's identity: (key, title, matchers as stored JSON: `None` for a group
/// made by an older Klaxon).
pub async fn group_identity(
    store: &Store,
    group_id: i64,
) -> Result<Option<(String, String, Option<String>)>, StoreError> {
    let Some(r) = sqlx::query("SELECT group_key, title, matchers FROM alert_groups WHERE id = $1")
        .bind(group_id)
        .fetch_optional(store.pool())
        .await?
    else {
        return Ok(None);
    };
    let title: String = r.try_get("title")?;
    let stored: Option<String> = r.try_get("matchers")?;
    let key = match stored {
        Some(_) => String::new(),
        None => r.try_get::<String, _>("group_key")?,
    };
    Ok(Some((key, title, stored)))
}

/// A group's severity as stored (empty: no such group) and its firing alerts.
pub async fn group_firing(
    store: &Store,
    group_id: i64,
) -> Result<(String, Vec<Alert>), StoreError> {
    let sev: String = sqlx::query("SELECT severity FROM alert_groups WHERE id = $1")
        .bind(group_id)
        .fetch_optional(store.pool())
        .await?
        .map(|r| r.try_get::<String, _>("severity"))
        .transpose()?
        .unwrap_or_default();
    let rows = sqlx::query(
        "SELECT source, fingerprint, status, labels, annotations FROM alerts \
         WHERE group_id = $1 AND status = 'firing' ORDER BY id",
    )
    .bind(group_id)
    .fetch_all(store.pool())
    .await?;
    let out = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((sev, out))
}

/// A silence as stored.
pub struct SilenceRow {
    pub id: i64,
    /// JSON.
    pub matchers: String,
    pub reason: String,
    pub created_by: String,
    pub created_ms: i64,
    pub ends_ms: i64,
    pub held: i64,
}

fn silence_from_row(r: &sqlx::any::AnyRow) -> Result<SilenceRow, StoreError> {
    Ok(SilenceRow {
        matchers: r.try_get("matchers")?,
        id: r.try_get("id")?,
        reason: r.try_get("reason")?,
        created_by: r.try_get("created_by")?,
        created_ms: r.try_get("created_ms")?,
        ends_ms: r.try_get("ends_ms")?,
        held: r.try_get("held")?,
    })
}

/// A new silence (`matchers` as JSON).
pub async fn insert_silence(
    store: &Store,
    matchers: String,
    reason: &str,
    by: &str,
    now_ms: i64,
    ends_ms: i64,
    until_resolved: bool,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO silences (matchers, reason, created_by, created_ms, ends_ms, until_resolved) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(matchers)
    .bind(reason)
    .bind(by)
    .bind(now_ms)
    .bind(ends_ms)
    .bind(i64::from(until_resolved))
    .fetch_one(store.pool())
    .await?;
    Ok(row.try_get("id")?)
}

/// Silences in force now, the newest first.
pub async fn active_silences(store: &Store, now_ms: i64) -> Result<Vec<SilenceRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, matchers, reason, created_by, created_ms, ends_ms, held FROM silences \
         WHERE ended_ms IS NULL AND ends_ms > $1 ORDER BY id DESC",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(silence_from_row).collect()
}

/// The ids of the silences in force, inside a transaction.
pub async fn active_silence_ids(tx: &mut Tx, now_ms: i64) -> Result<HashSet<i64>, StoreError> {
    let rows = sqlx::query("SELECT id FROM silences WHERE ended_ms IS NULL AND ends_ms > $1")
        .bind(now_ms)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>("id").map_err(Into::into))
        .collect()
}

/// Ends a silence early; false when there is no such active silence.
pub async fn end_silence(
    store: &Store,
    id: i64,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE silences SET ended_ms = $1, ended_by = $2 WHERE id = $3 AND ended_ms IS NULL \
         AND ends_ms > $4",
    )
    .bind(now_ms)
    .bind(by)
    .bind(id)
    .bind(now_ms)
    .execute(store.pool())
    .await?
    .rows_affected()
        > 0)
}

/// Silences that are over but whose held alerts were not given back yet.
pub async fn finished_unreleased(store: &Store, now_ms: i64) -> Result<Vec<i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT id FROM silences WHERE released = 0 AND (ended_ms IS NOT NULL OR ends_ms <= $1)",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>("id").map_err(Into::into))
        .collect()
}

/// A silence's held alerts were given back.
pub async fn mark_silence_released(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE silences SET released = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A stored alert, as `/alerts list` and the grouper read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: i64,
    pub source: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub name: String,
    pub severity: String,
    pub service: String,
    pub summary: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub received: i64,
    /// Held back by a silence.
    pub held: bool,
}

/// Alerts firing now, the oldest first.
pub async fn firing(store: &Store) -> Result<Vec<Stored>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, source, fingerprint, status, name, severity, service, annotations, \
         first_seen_ms, last_seen_ms, received, held_by FROM alerts WHERE status = 'firing' \
         ORDER BY first_seen_ms, id",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let annotations: String = r.try_get("annotations")?;
            let ann: BTreeMap<String, String> =
                serde_json::from_str(&annotations).unwrap_or_default();
            let name: String = r.try_get("name")?;
            let summary = ["summary", "description", "message"]
                .iter()
                .find_map(|k| ann.get(*k).filter(|v| !v.is_empty()).cloned())
                .unwrap_or_else(|| name.clone());
            let status: String = r.try_get("status")?;
            Ok(Stored {
                id: r.try_get("id")?,
                source: r.try_get("source")?,
                fingerprint: r.try_get("fingerprint")?,
                status: AlertStatus::parse(&status).unwrap_or(AlertStatus::Firing),
                name,
                severity: r.try_get("severity")?,
                service: r.try_get("service")?,
                summary,
                first_seen_ms: r.try_get("first_seen_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
                received: r.try_get("received")?,
                held: r.try_get::<Option<String>, _>("held_by")?.is_some(),
            })
        })
        .collect()
}
