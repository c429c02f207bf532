//! Subscriptions to the public status page (issue #15): one email per public update
//! to every confirmed subscriber, one JSON POST per update to every configured
//! webhook.
//!
//! - **What an update is** is decided by the page: [`notices`] reads the same
//!   [`Snapshot`] the page renders (an incident's public updates, the maintenance
//!   windows it shows), so whatever the page keeps off (a non-public incident, the
//!   timeline's notes) never reaches a subscriber either.
//! - **The hook**: the page's refresher (`bot/src/status_page.rs`) calls
//!   [`Publisher::publish`] with each new snapshot, on the leader; it is woken by
//!   the domain events (`status_page::on_event`), so a notice reaches the outbox
//!   within a second or two.
//! - **Durable, at most once**: a new update is stored with one delivery row per
//!   subscriber and webhook in one transaction; a unique (target, update) key makes
//!   seeing it again a no-op. The leader's worker ([`deliver::deliver_due`]) sends
//!   them with retries and back-off. A send whose answer is lost may be repeated:
//!   mails carry a stable `Message-ID` and webhooks an `X-Klaxon-Delivery` id, so
//!   the receiver can drop the copy.
//! - **Fresh only**: an update older than [`FRESH_MS`] when first seen (the first
//!   start with subscriptions, or a row pruned and seen again) is recorded but not
//!   sent, so turning the feature on never mails the whole history.

pub mod deliver;
pub mod mail;
pub mod token;

use std::collections::HashSet;

use serde::Serialize;

use crate::app::App;
use crate::settings::status_page::StatusPageConfig;
use crate::status_page::model::Snapshot;
use crate::store::subscriptions as db;
use crate::store::StoreError;
use crate::timefmt::date_time;

/// Updates first seen later than this after they happened are not sent.
pub const FRESH_MS: i64 = 3_600_000;

/// One public update, as webhooks receive it (JSON) and mails show it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Notice {
    /// `incident.opened`, `incident.updated`, `incident.resolved`,
    /// `maintenance.scheduled`, `maintenance.started`.
    pub event: String,
    /// `INC-7`; empty for maintenance.
    pub incident: String,
    pub title: String,
    /// `P1` … `P4`; empty for maintenance.
    pub severity: String,
    /// `Investigating`, `Identified`, `Monitoring`, `Resolved`, `Scheduled`,
    /// `In progress`.
    pub status: String,
    pub text: String,
    pub components: Vec<String>,
    pub at_ms: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// Where the page shows it.
    pub url: String,
    /// Once-only key (not sent).
    #[serde(skip)]
    pub key: String,
}

impl Notice {
    /// A mail's subject, in the words of the Discord notices.
    pub fn subject(&self) -> String {
        let line = match self.event.as_str() {
            "incident.opened" => format!("[{} INCIDENT] {}", self.severity, self.title),
            "incident.resolved" => format!("[RESOLVED] {}", self.title),
            "incident.updated" => format!("[{} UPDATE] {}", self.severity, self.title),
            "maintenance.started" => format!("[MAINTENANCE] In progress: {}", self.title),
            _ => format!("[MAINTENANCE] Scheduled: {}", self.title),
        };
        line.chars().filter(|c| !c.is_control()).collect()
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn short_hash(s: &str) -> String {
    use sha2::Digest;
    token::hex(&sha2::Sha256::digest(s.as_bytes())[..6])
}

/// Every public update the snapshot shows. Pure.
pub fn notices(s: &Snapshot) -> Vec<Notice> {
    let base = s.base_url.trim_end_matches('/');
    let mut out = Vec::new();
    for i in s.open.iter().chain(&s.history) {
        for (k, u) in i.updates.iter().enumerate() {
            let event = if u.status == "Resolved" {
                "incident.resolved"
            } else if k == 0 {
                "incident.opened"
            } else {
                "incident.updated"
            };
            out.push(Notice {
                event: event.into(),
                incident: i.id.clone(),
                title: i.title.clone(),
                severity: i.severity.clone(),
                status: u.status.clone(),
                text: u.text.clone(),
                components: i.components.clone(),
                at_ms: u.at_ms,
                at: rfc3339(u.at_ms),
                url: format!("{base}/incidents/{}", i.id),
                key: format!("{}@{}/{}", i.id, u.at_ms, u.status),
            });
        }
    }
    for w in &s.maintenance {
        let (event, status, at_ms) = if w.active {
            (
                "maintenance.started",
                "In progress",
                w.starts_ms.min(s.generated_ms),
            )
        } else {
            ("maintenance.scheduled", "Scheduled", s.generated_ms)
        };
        let what = w.components.join(", ");
        out.push(Notice {
            event: event.into(),
            incident: String::new(),
            title: what.clone(),
            severity: String::new(),
            status: status.into(),
            text: format!(
                "{}\nFrom {} to {}.",
                w.reason,
                date_time(w.starts_ms),
                date_time(w.ends_ms)
            ),
            components: w.components.clone(),
            at_ms,
            at: rfc3339(at_ms),
            url: format!("{base}/"),
            key: format!(
                "maintenance/{}-{}/{}/{}",
                w.starts_ms,
                w.ends_ms,
                short_hash(&format!("{what}\n{}", w.reason)),
                if w.active { "started" } else { "scheduled" }
            ),
        });
    }
    out
}

/// Records the updates of each snapshot once and queues their deliveries. Keeps
/// the keys it has seen, so a refresh with nothing new writes nothing.
#[derive(Debug, Default)]
pub struct Publisher {
    seen: Option<HashSet<String>>,
}

impl Publisher {
    /// Whether anyone is subscribed by config: mails offered or webhooks named.
    pub fn wanted(cfg: &StatusPageConfig) -> bool {
        cfg.smtp.is_some() || !cfg.webhooks.is_empty()
    }

    /// Stores what is new in `s`; returns how many updates were new.
    pub async fn publish(
        &mut self,
        app: &App,
        cfg: &StatusPageConfig,
        s: &Snapshot,
    ) -> Result<usize, StoreError> {
        if !Self::wanted(cfg) {
            return Ok(0);
        }
        let seen = match &mut self.seen {
            Some(seen) => seen,
            None => self.seen.insert(db::ukeys(&app.store).await?),
        };
        let now = app.clock.now_ms();
        let hooks: Vec<String> = cfg.webhooks.iter().map(|w| w.name.clone()).collect();
        let mut new = 0;
        for n in notices(s) {
            if seen.contains(&n.key) {
                continue;
            }
            let fresh = now - n.at_ms <= FRESH_MS;
            let body = serde_json::to_string(&n).unwrap_or_default();
            let none: &[String] = &[];
            let stored = db::record_update(
                &app.store,
                &n.key,
                &body,
                n.at_ms,
                fresh && cfg.smtp.is_some(),
                if fresh { &hooks } else { none },
                now,
            )
            .await?;
            if stored {
                new += 1;
                tracing::info!(update = %n.key, event = %n.event, fresh, "status page update queued for subscribers");
            }
            seen.insert(n.key);
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests;
