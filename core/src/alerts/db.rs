//! Alerts in the database: one row per (source, fingerprint).

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::route::Router;
use super::{Alert, AlertStatus};
use crate::incidents::Severity;
use crate::store::{Store, StoreError};

/// What one notification did to the stored alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ingested {
    /// Firing alerts seen for the first time (or firing again after resolving).
    pub firing: usize,
    /// Firing alerts that closed.
    pub resolved: usize,
    /// The same alert with the same status as stored: nothing new to say.
    pub duplicates: usize,
    /// Resolved notifications for alerts Klaxon never saw firing.
    pub unknown_resolved: usize,
    /// Changes held back by a silence: stored and counted, not posted.
    pub held: usize,
    /// Positions (in the notification) of the alerts whose status changed.
    #[serde(skip)]
    pub changed: Vec<usize>,
}

/// Alerts per multi-row statement (16 parameters each). Measured with
/// `bench-silences`: the cost per row grows with the statement's size on SQLite
/// (2,000 alerts: 180 ms in statements of 200 rows, 55 ms in statements of 25),
/// while PostgreSQL mostly pays per round trip.
const ROWS_PER_STATEMENT: usize = 25;

/// What an upsert does to an alert's `group_id` and `held_by`.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    /// A duplicate or a change with nowhere to go: both stay as they are.
    Keep,
    /// Joined this group (and is no longer held).
    Group(i64),
    /// Held back by a silence or a maintenance window (`silence:<id>`, ...).
    Held(String),
}

/// Stores a whole notification in one transaction: either every alert of it is
/// recorded, or none is (and the sender, getting no 2xx, retries). The decisions
/// are made in order, alert by alert, as if each were stored alone; the writes are
/// batched: one read of what is stored, multi-row upserts, one write per group,
/// silence and window touched.
pub async fn ingest(
    store: &Store,
    router: &Router,
    default_channel: Option<u64>,
    alerts: &[Alert],
    now_ms: i64,
) -> Result<Ingested, StoreError> {
    let mut out = Ingested::default();
    // Matching runs before the transaction, against regexes compiled once: the
    // write lock is never held while a silence's regex runs.
    let silences = super::silence::active(store, now_ms).await?;
    // Every matching silence, newest first: one that ends before the transaction
    // leaves the others to hold the alert.
    let silenced: Vec<Vec<i64>> = alerts
        .iter()
        .map(|a| {
            silences
                .iter()
                .filter(|s| s.compiled.matches(a))
                .map(|s| s.id)
                .collect()
        })
        .collect();
    let mut tx = store.begin_write().await?;
    let live = if silenced.iter().any(|s| !s.is_empty()) {
        super::silence::active_ids_in(&mut tx, now_ms).await?
    } else {
        Default::default()
    };
    let windows = crate::maintenance::in_force_in(&mut tx, now_ms).await?;
    let mut status = stored_statuses(&mut tx, alerts).await?;
    // Groups joined by this notification: id and whether it is firing now. A group
    // already joined is written again only when that changes something (a P1 makes
    // it due now; a firing alert re-opens a resolved group).
    let mut joined: HashMap<String, (i64, bool)> = HashMap::new();
    let mut held_by_silence: BTreeMap<i64, i64> = BTreeMap::new();
    let mut held_by_window: BTreeMap<i64, i64> = BTreeMap::new();
    let mut places = Vec::with_capacity(alerts.len());
    for (position, a) in alerts.iter().enumerate() {
        let id = (a.source.as_str().to_string(), a.fingerprint.clone());
        let before = status.insert(id, a.status);
        // Only a change is news: a duplicate does not make its group's message due.
        let news = match (before, a.status) {
            (Some(b), s) if b == s => {
                out.duplicates += 1;
                false
            }
            (None, AlertStatus::Resolved) => {
                out.unknown_resolved += 1;
                false
            }
            (_, AlertStatus::Firing) => {
                out.firing += 1;
                true
            }
            (Some(AlertStatus::Firing), AlertStatus::Resolved) => {
                out.resolved += 1;
                true
            }
            (Some(AlertStatus::Resolved), AlertStatus::Resolved) => {
                out.duplicates += 1;
                false
            }
        };
        // A silence that ended while this notification was matched holds nothing.
        let silenced = silenced[position]
            .iter()
            .copied()
            .find(|id| live.contains(id));
        let window = crate::maintenance::holding(&windows, a.label("service"));
        let place = if let (true, Some(w)) = (news, window) {
            // Planned work: held for the window's end-of-maintenance summary.
            out.held += 1;
            *held_by_window.entry(w).or_default() += 1;
            Place::Held(format!("maintenance:{w}"))
        } else if let (true, Some(silence)) = (news, silenced) {
            out.held += 1;
            *held_by_silence.entry(silence).or_default() += 1;
            Place::Held(format!("silence:{silence}"))
        } else if news {
            out.changed.push(position);
            let routed = router.route(a);
            match routed.channel.or(default_channel) {
                Some(channel) => {
                    let (key, title) = router.group(a, &routed);
                    let p1 = routed.severity == Severity::P1;
                    let group = match joined.get(&key) {
                        Some(&(id, firing))
                            if !p1 && (firing || a.status != AlertStatus::Firing) =>
                        {
                            id
                        }
                        _ => {
                            let (id, firing) = join_group(
                                &mut tx, router, &key, &title, channel, &routed, a, now_ms,
                            )
                            .await?;
                            joined.insert(key, (id, firing));
                            id
                        }
                    };
                    Place::Group(group)
                }
                None => Place::Keep,
            }
        } else {
            Place::Keep
        };
        places.push(place);
    }
    upsert_alerts(&mut tx, alerts, &places, now_ms).await?;
    for (id, n) in held_by_window {
        sqlx::query("UPDATE maintenance_windows SET held = held + $1 WHERE id = $2")
            .bind(n)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (id, n) in held_by_silence {
        sqlx::query("UPDATE silences SET held = held + $1 WHERE id = $2")
            .bind(n)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    // Silences that end with their alerts: ended once none they held still fires.
    sqlx::query(
        "UPDATE silences SET ended_ms = $1, ended_by = 'its alerts resolved' \
         WHERE until_resolved = 1 AND ended_ms IS NULL AND held > 0 AND NOT EXISTS \
         (SELECT 1 FROM alerts WHERE alerts.held_by = 'silence:' || CAST(silences.id AS TEXT) \
          AND alerts.status = 'firing')",
    )
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// The stored status of every alert of the notification, read in a few queries.
async fn stored_statuses(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
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
async fn upsert_alerts(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    alerts: &[Alert],
    places: &[Place],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < alerts.len() {
        let placed = places[start] != Place::Keep;
        let mut seen = std::collections::HashSet::new();
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
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
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
pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Alert, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(Alert {
        source: super::Source::Generic,
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

/// Gives the alerts of finished silences back: those still firing join their groups
/// (and so show up); the rest stay quiet. Returns how many were released.
pub async fn release_silenced(
    store: &Store,
    router: &Router,
    default_channel: Option<u64>,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut released = 0;
    for id in super::silence::finished_unreleased(store, now_ms).await? {
        let mut tx = store.begin_write().await?;
        released += release_held(
            &mut tx,
            router,
            default_channel,
            &format!("silence:{id}"),
            now_ms,
        )
        .await?;
        sqlx::query("UPDATE silences SET released = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(released)
}

/// Gives back the alerts held under `held_by` (a silence or a maintenance window):
/// those still firing join their groups and are posted; those that resolved while
/// held update the message that showed them firing, if there was one. Returns how
/// many firing alerts were released.
pub(crate) async fn release_held(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    router: &Router,
    default_channel: Option<u64>,
    held_by: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut released = 0;
    let rows = sqlx::query(
        "SELECT source, fingerprint, status, labels, annotations, group_id FROM alerts \
         WHERE held_by = $1",
    )
    .bind(held_by)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        let source: String = r.try_get("source")?;
        let shown_in: Option<i64> = r.try_get("group_id")?;
        let a = from_row(r)?;
        let fingerprint = a.fingerprint.clone();
        let mut group = None;
        if a.status == AlertStatus::Firing || shown_in.is_some() {
            let routed = router.route(&a);
            if let Some(channel) = routed.channel.or(default_channel) {
                let (key, title) = router.group(&a, &routed);
                group = Some(
                    join_group(tx, router, &key, &title, channel, &routed, &a, now_ms)
                        .await?
                        .0,
                );
                if a.status == AlertStatus::Firing {
                    released += 1;
                }
            }
        }
        sqlx::query(
            "UPDATE alerts SET held_by = NULL, group_id = COALESCE($1, group_id) \
             WHERE source = $2 AND fingerprint = $3",
        )
        .bind(group)
        .bind(&source)
        .bind(&fingerprint)
        .execute(&mut **tx)
        .await?;
    }
    Ok(released)
}

/// Puts an alert's change into its group and makes the group due: a new group after
/// `group_wait`, an existing one no sooner than `group_interval` after its last
/// message; P1 at once.
#[allow(clippy::too_many_arguments)]
async fn join_group(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    router: &Router,
    key: &str,
    title: &str,
    channel: u64,
    routed: &super::route::Routed,
    a: &Alert,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    let cfg = &router.config;
    let p1 = routed.severity == Severity::P1;
    let row = sqlx::query(
        "SELECT id, status, due_ms, last_sent_ms FROM alert_groups WHERE group_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        let due = if p1 {
            now_ms
        } else {
            now_ms + cfg.group_wait_secs as i64 * 1_000
        };
        // The identity as structured matchers, for "Silence 1 h" on its message.
        let matchers: Vec<super::silence::Matcher> = super::route::group_labels(&cfg.group_by, a)
            .into_iter()
            .map(|(label, value)| super::silence::Matcher {
                label: label.to_string(),
                op: super::silence::Op::Equal,
                value: value.to_string(),
            })
            .collect();
        let id: i64 = sqlx::query(
            "INSERT INTO alert_groups (group_key, channel_id, severity, page, title, status, \
             created_ms, updated_ms, due_ms, matchers) \
             VALUES ($1, $2, $3, $4, $5, 'firing', $6, $7, $8, $9) RETURNING id",
        )
        .bind(key)
        .bind(channel as i64)
        .bind(routed.severity.as_str())
        .bind(i64::from(routed.page))
        .bind(title)
        .bind(now_ms)
        .bind(now_ms)
        .bind(due)
        .bind(serde_json::to_string(&matchers).unwrap_or_else(|_| "[]".into()))
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        return Ok((id, true));
    };
    let id: i64 = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let due: Option<i64> = row.try_get("due_ms")?;
    let last: Option<i64> = row.try_get("last_sent_ms")?;
    let refiring = status == "resolved" && a.status == AlertStatus::Firing;
    let next = match (due, last) {
        _ if p1 || refiring => now_ms,
        (Some(d), _) => d,
        (None, Some(l)) => (l + cfg.group_interval_secs as i64 * 1_000).max(now_ms),
        (None, None) => now_ms,
    };
    if refiring {
        // Back after resolving: a new message (with new nonces), not an edit of the
        // old, resolved one.
        sqlx::query(
            "UPDATE alert_groups SET status = 'firing', updated_ms = $1, due_ms = $2, \
             message_ids = '', generation = generation + 1 WHERE id = $3",
        )
        .bind(now_ms)
        .bind(next)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query("UPDATE alert_groups SET updated_ms = $1, due_ms = $2 WHERE id = $3")
            .bind(now_ms)
            .bind(next)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok((id, status == "firing" || refiring))
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
            let ann: std::collections::BTreeMap<String, String> =
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
