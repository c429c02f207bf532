//! Builds the public [`Snapshot`] from what Klaxon keeps: the health checks, the
//! incidents with their timelines, the maintenance windows.
//!
//! [`build`] is pure and picks the public fields only: an incident's title, its
//! severity and status, the words of its stakeholder notices (the opening impact,
//! each status update's message, the resolution) under component names. Notes,
//! member names, alert labels, log lines and container names are never read.

use chrono::{TimeZone, Utc};

use super::model::{
    CompState, Component, Day, PublicIncident, PublicUpdate, PublicWindow, Snapshot,
};
use crate::app::App;
use crate::health::State;
use crate::settings::status_page::StatusPageConfig;
use crate::severity::Severity;
use crate::store::incidents::{Entry, EntryKind, Incident};
use crate::store::maintenance::{Window, WindowState};
use crate::store::StoreError;

const DAY_MS: i64 = 86_400_000;
/// Incidents read for the history (the page shows fewer).
const INCIDENTS_READ: i64 = 200;

/// Every service's state, by name.
pub type Health = Vec<(String, State)>;

/// The services' states from the live checks (Docker, probes), before
/// maintenance: the slow part of a snapshot (a stats sample, probe timeouts), so
/// the refresher reuses a fresh one when an incident or notice wakes it.
pub async fn live_health(app: &App) -> Health {
    let services: Vec<_> = app.services.iter().collect();
    crate::health::check(&app.engines, &app.prober, &app.thresholds, &services)
        .await
        .services
        .into_iter()
        .map(|s| (s.name, s.state))
        .collect()
}

/// Reads everything and builds the snapshot at the clock's now.
pub async fn snapshot(app: &App, cfg: &StatusPageConfig) -> Result<Snapshot, StoreError> {
    let health = live_health(app).await;
    snapshot_with(app, cfg, &health).await
}

/// [`snapshot`] with the checks' states already known; the maintenance windows
/// in force are read now (a window that starts shows at once).
pub async fn snapshot_with(
    app: &App,
    cfg: &StatusPageConfig,
    checked: &[(String, State)],
) -> Result<Snapshot, StoreError> {
    let notes = crate::maintenance::health_notes(app).await;
    let health: Health = checked
        .iter()
        .map(|(name, state)| {
            let planned = notes.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            (
                name.clone(),
                if planned { State::Maintenance } else { *state },
            )
        })
        .collect();
    let now = app.clock.now_ms();
    let since = now - i64::from(cfg.history_days) * DAY_MS;
    let incidents =
        crate::store::status::incidents_since(&app.store, since, INCIDENTS_READ).await?;
    let mut with_updates = Vec::with_capacity(incidents.len());
    for i in incidents {
        let timeline = crate::store::incidents::timeline(&app.store, i.id).await?;
        with_updates.push((i, timeline));
    }
    let windows = crate::store::maintenance::list(&app.store).await?;
    let mut s = build(cfg, now, &health, &with_updates, &windows);
    // The history bar from the daily roll-ups (see `rollup`).
    super::rollup::read_into(app, &mut s, i64::from(cfg.history_days.max(1))).await?;
    Ok(s)
}

fn from_health(s: State) -> CompState {
    match s {
        // No data is no evidence of trouble for the public page.
        State::Healthy | State::Unknown => CompState::Operational,
        State::Maintenance => CompState::Maintenance,
        State::Degraded => CompState::Degraded,
        State::Down => CompState::Outage,
    }
}

fn from_severity(s: Severity) -> CompState {
    match s {
        Severity::P1 | Severity::P2 => CompState::Outage,
        Severity::P3 | Severity::P4 => CompState::Degraded,
    }
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The public updates of one incident: what its stakeholder notices said.
fn updates(i: &Incident, timeline: &[Entry]) -> Vec<PublicUpdate> {
    // The resolve summary, from `Resolved after 5m: the summary` as
    // `incidents::resolve` writes it; it also replaces the incident's summary.
    let resolved_summary = timeline
        .iter()
        .rfind(|e| e.kind == EntryKind::Resolved && !e.deleted)
        .and_then(|e| e.text.strip_prefix("Resolved after "))
        .and_then(|r| r.split_once(": "))
        .map(|(_, summary)| summary.to_string());
    let summary_at_open = match &resolved_summary {
        Some(r) if *r == i.summary => "",
        _ => i.summary.as_str(),
    };
    let opening = [i.impact.as_str(), summary_at_open]
        .into_iter()
        .find(|t| !t.trim().is_empty())
        .map(String::from)
        .unwrap_or_else(|| "We are investigating.".into());
    let mut out = vec![PublicUpdate {
        at_ms: i.opened_ms,
        status: "Investigating".into(),
        text: opening,
    }];
    // `Status Identified: the message`, as `incidents::set_status` writes it; the
    // message is the notice's `Update:` line.
    for e in timeline
        .iter()
        .filter(|e| e.kind == EntryKind::Status && !e.deleted)
    {
        let Some(rest) = e.text.strip_prefix("Status ") else {
            continue;
        };
        let Some((status, message)) = rest.split_once(": ") else {
            continue;
        };
        if status.contains(' ') {
            continue;
        }
        out.push(PublicUpdate {
            at_ms: e.at_ms,
            status: status.to_string(),
            text: message.to_string(),
        });
    }
    if let Some(r) = i.resolved_ms {
        let mut lines: Vec<String> = resolved_summary.into_iter().collect();
        if !i.resolution.trim().is_empty() {
            lines.push(format!("Resolution: {}", i.resolution.trim()));
        }
        if lines.is_empty() {
            lines.push("This incident has been resolved.".into());
        }
        out.push(PublicUpdate {
            at_ms: r,
            status: "Resolved".into(),
            text: lines.join("\n"),
        });
    }
    out
}

/// The snapshot from what was read. Pure.
pub fn build(
    cfg: &StatusPageConfig,
    now_ms: i64,
    health: &[(String, State)],
    incidents: &[(Incident, Vec<Entry>)],
    windows: &[Window],
) -> Snapshot {
    let comps_of = |service: Option<&str>| -> Vec<String> {
        let Some(svc) = service else {
            return Vec::new();
        };
        cfg.components
            .iter()
            .filter(|c| c.services.iter().any(|s| s.eq_ignore_ascii_case(svc)))
            .map(|c| c.name.clone())
            .collect()
    };
    let public = |(i, t): &(Incident, Vec<Entry>)| PublicIncident {
        id: i.id.to_string(),
        title: i.title.clone(),
        severity: i.severity.to_string(),
        status: i.status.title().to_string(),
        components: comps_of(i.service.as_deref()),
        opened_ms: i.opened_ms,
        resolved_ms: i.resolved_ms,
        updates: updates(i, t),
    };
    let show_until = now_ms + cfg.show_before().as_millis() as i64;
    let maintenance: Vec<PublicWindow> = windows
        .iter()
        .filter(|w| matches!(w.state, WindowState::Scheduled | WindowState::Active))
        .filter(|w| w.starts_ms <= show_until && w.ends_ms > now_ms)
        .filter_map(|w| {
            let components: Vec<String> = cfg
                .components
                .iter()
                .filter(|c| {
                    w.all_services
                        || c.services
                            .iter()
                            .any(|s| w.services.iter().any(|x| x.eq_ignore_ascii_case(s)))
                })
                .map(|c| c.name.clone())
                .collect();
            (!components.is_empty()).then(|| PublicWindow {
                components,
                reason: w.reason.clone(),
                starts_ms: w.starts_ms,
                ends_ms: w.ends_ms,
                active: w.state == WindowState::Active || w.starts_ms <= now_ms,
            })
        })
        .collect();
    let today = day_of(now_ms);
    let days = i64::from(cfg.history_days.max(1));
    let components = cfg
        .components
        .iter()
        .map(|c| {
            let mine = |svc: &Option<String>| {
                svc.as_deref()
                    .is_some_and(|s| c.services.iter().any(|x| x.eq_ignore_ascii_case(s)))
            };
            let mut state = health
                .iter()
                .filter(|(n, _)| c.services.iter().any(|s| s.eq_ignore_ascii_case(n)))
                .map(|(_, s)| from_health(*s))
                .max()
                .unwrap_or(CompState::Operational);
            for (i, _) in incidents
                .iter()
                .filter(|(i, _)| i.is_open() && mine(&i.service))
            {
                state = state.max(from_severity(i.severity));
            }
            if state == CompState::Operational
                && maintenance
                    .iter()
                    .any(|w| w.active && w.components.contains(&c.name))
            {
                state = CompState::Maintenance;
            }
            let bar = (0..days)
                .map(|k| {
                    let d = today - (days - 1) + k;
                    let worst = incidents
                        .iter()
                        .filter(|(i, _)| mine(&i.service))
                        .filter(|(i, _)| {
                            day_of(i.opened_ms) <= d && i.resolved_ms.is_none_or(|r| day_of(r) >= d)
                        })
                        .map(|(i, _)| from_severity(i.severity))
                        .max()
                        .unwrap_or(CompState::Operational);
                    Day {
                        date: Utc
                            .timestamp_millis_opt(d * DAY_MS)
                            .single()
                            .map(|t| t.format("%Y-%m-%d").to_string())
                            .unwrap_or_default(),
                        state: worst,
                    }
                })
                .collect();
            Component {
                name: c.name.clone(),
                description: c.description.clone(),
                state,
                days: bar,
            }
        })
        .collect();
    let mut open: Vec<PublicIncident> = incidents
        .iter()
        .filter(|(i, _)| i.is_open())
        .map(public)
        .collect();
    open.sort_by_key(|i| std::cmp::Reverse(i.opened_ms));
    let mut history: Vec<PublicIncident> = incidents
        .iter()
        .filter(|(i, _)| !i.is_open())
        .map(public)
        .collect();
    history.sort_by_key(|i| std::cmp::Reverse(i.opened_ms));
    Snapshot {
        title: cfg.title.clone(),
        base_url: cfg.base_url.clone(),
        generated_ms: now_ms,
        components,
        open,
        history,
        maintenance,
        subscribe: cfg.smtp.is_some(),
    }
}
