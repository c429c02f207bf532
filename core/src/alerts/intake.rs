//! The intake: a notification's alerts stored in one transaction, each joining its
//! group, or held by a silence or a maintenance window; and held alerts given back
//! when those end. The decisions are made here; the SQL is [`crate::store::alerts`].

use std::collections::{BTreeMap, HashMap};

use super::silence::{Matcher, Op};
use super::{Alert, AlertStatus};
use crate::incidents::Severity;
use crate::routing::{AlertsConfig, Routed, Router};
use crate::store::alerts::Place;
use crate::store::{self, Store, StoreError, Tx};

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
        store::alerts::active_silence_ids(&mut tx, now_ms).await?
    } else {
        Default::default()
    };
    let windows = crate::maintenance::in_force_in(&mut tx, now_ms).await?;
    let mut status = store::alerts::stored_statuses(&mut tx, alerts).await?;
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
    store::alerts::upsert_alerts(&mut tx, alerts, &places, now_ms).await?;
    for (id, n) in held_by_window {
        store::alerts::add_held_to_window(&mut tx, id, n).await?;
    }
    for (id, n) in held_by_silence {
        store::alerts::add_held_to_silence(&mut tx, id, n).await?;
    }
    store::alerts::end_silences_resolved(&mut tx, now_ms).await?;
    tx.commit().await?;
    Ok(out)
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
    for id in store::alerts::finished_unreleased(store, now_ms).await? {
        let mut tx = store.begin_write().await?;
        released += release_held(
            &mut tx,
            router,
            default_channel,
            &format!("silence:{id}"),
            now_ms,
        )
        .await?;
        store::alerts::mark_silence_released(&mut tx, id).await?;
        tx.commit().await?;
    }
    Ok(released)
}

/// Gives back the alerts held under `held_by` (a silence or a maintenance window):
/// those still firing join their groups and are posted; those that resolved while
/// held update the message that showed them firing, if there was one. Returns how
/// many firing alerts were released.
pub(crate) async fn release_held(
    tx: &mut Tx,
    router: &Router,
    default_channel: Option<u64>,
    held_by: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut released = 0;
    for held in store::alerts::held(tx, held_by).await? {
        let a = held.alert;
        let mut group = None;
        if a.status == AlertStatus::Firing || held.shown_in.is_some() {
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
        store::alerts::unhold(tx, group, &held.source, &a.fingerprint).await?;
    }
    Ok(released)
}

/// Puts an alert's change into its group and makes the group due: a new group after
/// `group_wait`, an existing one no sooner than `group_interval` after its last
/// message; P1 at once.
#[allow(clippy::too_many_arguments)]
async fn join_group(
    tx: &mut Tx,
    router: &Router,
    key: &str,
    title: &str,
    channel: u64,
    routed: &Routed,
    a: &Alert,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    let cfg = &router.config;
    let p1 = routed.severity == Severity::P1;
    let Some(g) = store::alerts::find_group(tx, key).await? else {
        let due = if p1 {
            now_ms
        } else {
            now_ms + cfg.group_wait_secs as i64 * 1_000
        };
        // The identity as structured matchers, for "Silence 1 h" on its message.
        let matchers: Vec<Matcher> = crate::routing::group_labels(&cfg.group_by, a)
            .into_iter()
            .map(|(label, value)| Matcher {
                label: label.to_string(),
                op: Op::Equal,
                value: value.to_string(),
            })
            .collect();
        let new = store::alerts::NewGroup {
            key,
            channel,
            severity: routed.severity.as_str(),
            page: routed.page,
            title,
            now_ms,
            due_ms: due,
            matchers: serde_json::to_string(&matchers).unwrap_or_else(|_| "[]".into()),
        };
        return Ok((store::alerts::insert_group(tx, &new).await?, true));
    };
    let refiring = g.status == "resolved" && a.status == AlertStatus::Firing;
    let next = next_due(cfg, p1 || refiring, g.due_ms, g.last_sent_ms, now_ms);
    if refiring {
        // Back after resolving: a new message (with new nonces), not an edit of the
        // old, resolved one.
        store::alerts::refire_group(tx, g.id, now_ms, next).await?;
    } else {
        store::alerts::touch_group(tx, g.id, now_ms, next).await?;
    }
    Ok((g.id, g.status == "firing" || refiring))
}

/// When an existing group that changed is due: at once (P1, or firing again), at
/// the time it was due already, else `group_interval` after its last message.
fn next_due(
    cfg: &AlertsConfig,
    at_once: bool,
    due_ms: Option<i64>,
    last_sent_ms: Option<i64>,
    now_ms: i64,
) -> i64 {
    match (due_ms, last_sent_ms) {
        _ if at_once => now_ms,
        (Some(d), _) => d,
        (None, Some(l)) => (l + cfg.group_interval_secs as i64 * 1_000).max(now_ms),
        (None, None) => now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_group_waits_for_its_interval_unless_urgent() {
        let cfg = AlertsConfig {
            group_interval_secs: 120,
            ..Default::default()
        };
        assert_eq!(next_due(&cfg, true, Some(9_000), Some(1_000), 5_000), 5_000);
        assert_eq!(
            next_due(&cfg, false, Some(9_000), Some(1_000), 5_000),
            9_000
        );
        assert_eq!(next_due(&cfg, false, None, Some(1_000), 5_000), 121_000);
        assert_eq!(next_due(&cfg, false, None, Some(1_000), 500_000), 500_000);
        assert_eq!(next_due(&cfg, false, None, None, 5_000), 5_000);
    }
}
