//! Alerts in the database: one row per (source, fingerprint).

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

/// Stores a whole notification in one transaction: either every alert of it is
/// recorded, or none is (and the sender, getting no 2xx, retries).
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
    let silenced: Vec<Option<i64>> = alerts
        .iter()
        .map(|a| {
            silences
                .iter()
                .find(|s| s.compiled.matches(a))
                .map(|s| s.id)
        })
        .collect();
    let mut tx = store.begin_write().await?;
    let live = if silenced.iter().any(Option::is_some) {
        super::silence::active_ids_in(&mut tx, now_ms).await?
    } else {
        Default::default()
    };
    let windows = crate::maintenance::in_force_in(&mut tx, now_ms).await?;
    for (position, a) in alerts.iter().enumerate() {
        let labels = serde_json::to_string(&a.labels).unwrap_or_else(|_| "{}".into());
        let annotations = serde_json::to_string(&a.annotations).unwrap_or_else(|_| "{}".into());
        let before =
            sqlx::query("SELECT status FROM alerts WHERE source = $1 AND fingerprint = $2")
                .bind(a.source.as_str())
                .bind(&a.fingerprint)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<String, _>("status"))
                .transpose()?;
        let before = before.as_deref().and_then(AlertStatus::parse);
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
        let resolved_ms = (a.status == AlertStatus::Resolved).then_some(now_ms);
        sqlx::query(
            "INSERT INTO alerts (source, fingerprint, status, name, severity, service, labels, \
             annotations, url, starts_ms, ends_ms, first_seen_ms, last_seen_ms, resolved_ms, received) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1) \
             ON CONFLICT (source, fingerprint) DO UPDATE SET status = excluded.status, \
             name = excluded.name, severity = excluded.severity, service = excluded.service, \
             labels = excluded.labels, annotations = excluded.annotations, url = excluded.url, \
             starts_ms = COALESCE(excluded.starts_ms, alerts.starts_ms), ends_ms = excluded.ends_ms, \
             last_seen_ms = excluded.last_seen_ms, \
             resolved_ms = CASE WHEN excluded.status = 'resolved' \
                 THEN COALESCE(alerts.resolved_ms, excluded.resolved_ms) ELSE NULL END, \
             received = alerts.received + 1",
        )
        .bind(a.source.as_str())
        .bind(&a.fingerprint)
        .bind(a.status.as_str())
        .bind(a.name())
        .bind(a.label("severity").unwrap_or_default())
        .bind(a.label("service").unwrap_or_default())
        .bind(labels)
        .bind(annotations)
        .bind(a.url.as_deref().unwrap_or_default())
        .bind(a.starts_ms)
        .bind(a.ends_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(resolved_ms)
        .execute(&mut *tx)
        .await?;
        // A silence that ended while this notification was matched holds nothing.
        let silenced = silenced[position].filter(|id| live.contains(id));
        let window = crate::maintenance::holding(&windows, a.label("service"));
        if let (true, Some(w)) = (news, window) {
            // Planned work: held for the window's end-of-maintenance summary.
            out.held += 1;
            sqlx::query("UPDATE alerts SET held_by = $1 WHERE source = $2 AND fingerprint = $3")
                .bind(format!("maintenance:{w}"))
                .bind(a.source.as_str())
                .bind(&a.fingerprint)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE maintenance_windows SET held = held + 1 WHERE id = $1")
                .bind(w)
                .execute(&mut *tx)
                .await?;
        } else if let (true, Some(silence)) = (news, silenced) {
            out.held += 1;
            sqlx::query("UPDATE alerts SET held_by = $1 WHERE source = $2 AND fingerprint = $3")
                .bind(format!("silence:{silence}"))
                .bind(a.source.as_str())
                .bind(&a.fingerprint)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE silences SET held = held + 1 WHERE id = $1")
                .bind(silence)
                .execute(&mut *tx)
                .await?;
        } else if news {
            out.changed.push(position);
            let routed = router.route(a);
            if let Some(channel) = routed.channel.or(default_channel) {
                let (key, title) = router.group(a, &routed);
                let group =
                    join_group(&mut tx, router, &key, &title, channel, &routed, a, now_ms).await?;
                sqlx::query(
                    "UPDATE alerts SET group_id = $1, held_by = NULL \
                     WHERE source = $2 AND fingerprint = $3",
                )
                .bind(group)
                .bind(a.source.as_str())
                .bind(&a.fingerprint)
                .execute(&mut *tx)
                .await?;
            }
        }
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
                group =
                    Some(join_group(tx, router, &key, &title, channel, &routed, &a, now_ms).await?);
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
) -> Result<i64, StoreError> {
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
        return Ok(id);
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
    Ok(id)
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
