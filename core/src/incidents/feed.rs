//! What other areas add to incidents: command runs, alert changes and maintenance
//! steps of a service with an open incident land on its timeline (the [`record_event`]
//! subscriber of the domain events, registered by `App::builder()`: the producers
//! publish and never call in here), and an alert can open an incident.

use std::collections::BTreeSet;

use tracing::warn;

use super::lifecycle::open;
use super::lifecycle::OpenRequest;
use super::lifecycle::Opened;
use super::model::MAX_TEXT;
use super::IncidentError;
use crate::actor::Actor;
use crate::store::incidents as db;
use crate::store::incidents::EntryKind;
use crate::store::incidents::NewEntry;

use crate::alert::Alert;
use crate::app::App;
use crate::audit::AuditEntry;
use crate::audit::Outcome;
use crate::chat;
use crate::events::{AlertChange, Event, Handling, MaintenanceStep};
use crate::store::StoreError;

/// Commands whose runs against a service land in that service's open incidents.
const RECORDED: [&str; 4] = ["logs", "rollback", "restart", "maintenance"];

/// Called for every audit row: a command run for a service with an open incident
/// goes to that incident's timeline with its outcome.
pub async fn record_command(app: &App, e: &AuditEntry) -> Result<(), StoreError> {
    let top = e.command.split(' ').next().unwrap_or_default();
    if !RECORDED.contains(&top) || e.outcome == Outcome::Denied {
        return Ok(());
    }
    let Some(service) = e.service() else {
        return Ok(());
    };
    let Some(svc) = app.service(service).ok() else {
        return Ok(());
    };
    for i in db::open_for_service(&app.store, &svc.name).await? {
        let mut text = format!("/{} {}: {}", e.command, e.arguments, e.outcome.as_str());
        if !e.detail.is_empty() {
            text.push_str(&format!(" ({})", e.detail));
        }
        db::add_entry(
            &app.store,
            i.id,
            &NewEntry::new(
                EntryKind::Command,
                app.clock.now_ms(),
                &Actor::member(e.user_id, e.user_name.clone()),
                chat::truncate(&text, 1_000),
            ),
        )
        .await?;
    }
    Ok(())
}

/// Characters of an alert's summary kept on the timeline of the incident opened
/// from it (the summary field itself holds at most [`MAX_TEXT`]).
const FULL_SUMMARY: usize = 32_000;

/// Opens an incident from alerts ("Open incident" on an alert message): a summary
/// longer than an incident's takes is cut to fit, with an ellipsis, and kept whole
/// on the timeline; the alerts are linked to it.
pub async fn open_from_alerts(
    app: &App,
    mut req: OpenRequest,
    alerts: &[&Alert],
) -> Result<Opened, IncidentError> {
    let full = req
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| s.chars().count() > MAX_TEXT)
        .map(String::from);
    if let Some(full) = &full {
        req.summary = Some(chat::truncate(full, MAX_TEXT));
    }
    let by = req.by.clone();
    let opened = open(app, req).await?;
    if let Some(full) = full {
        let entry = NewEntry::new(
            EntryKind::Alert,
            app.clock.now_ms(),
            &by,
            format!(
                "The alert's summary in full: {}",
                chat::truncate(&full, FULL_SUMMARY)
            ),
        );
        if let Err(e) = db::add_entry(&app.store, opened.incident.id, &entry).await {
            warn!(error = %e, incident = %opened.incident.id, "full summary not on the timeline");
        }
    }
    if let Err(e) = record_alerts(app, alerts).await {
        warn!(error = %e, "alerts not linked to the new incident");
    }
    Ok(opened)
}

/// Alerts that fired or resolved for a service with an open incident join that
/// incident's timeline.
pub async fn record_alerts(app: &App, alerts: &[&Alert]) -> Result<(), StoreError> {
    let changes: Vec<AlertChange> = alerts.iter().map(|a| AlertChange::of(a)).collect();
    record_alert_changes(app, &changes).await
}

/// [`record_alerts`], from the flattened alerts of an [`Event::AlertsChanged`].
pub async fn record_alert_changes(app: &App, alerts: &[AlertChange]) -> Result<(), StoreError> {
    for a in alerts {
        let Some(service) = a.service.as_deref() else {
            continue;
        };
        let Ok(svc) = app.service(service) else {
            continue;
        };
        for i in db::open_for_service(&app.store, &svc.name).await? {
            let text = format!(
                "Alert {} {} ({}): {}",
                a.name, a.status, a.source, a.summary
            );
            db::add_entry(
                &app.store,
                i.id,
                &NewEntry::new(
                    EntryKind::Alert,
                    app.clock.now_ms(),
                    &Actor::klaxon(),
                    chat::truncate(&text, 1_000),
                ),
            )
            .await?;
        }
    }
    Ok(())
}

/// A maintenance step: a line on the timeline of every open incident about one
/// of the window's services (once per incident).
pub async fn record_maintenance(app: &App, step: &MaintenanceStep) {
    let mut seen = BTreeSet::new();
    for s in &step.services {
        let open = match db::open_for_service(&app.store, s).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, service = %s, "maintenance not written to incident timelines");
                continue;
            }
        };
        for i in open {
            if !seen.insert(i.id) {
                continue;
            }
            let entry = NewEntry::new(
                EntryKind::Maintenance,
                app.clock.now_ms(),
                &step.by,
                chat::truncate(&step.text, 1_000),
            );
            if let Err(e) = db::add_entry(&app.store, i.id, &entry).await {
                warn!(error = %e, incident = %i.id, "maintenance timeline entry not written");
            }
        }
    }
}

/// The incident timeline's subscription to the [domain events](crate::events):
/// command runs, alert changes and maintenance steps of a service with an open
/// incident land on that incident's timeline.
pub fn record_event<'a>(app: &'a App, event: &'a Event) -> Handling<'a> {
    Box::pin(async move {
        match event {
            Event::CommandRun(entry) => {
                if let Err(e) = record_command(app, entry).await {
                    warn!(error = %e, command = %entry.command, "incident timeline entry not written");
                }
            }
            Event::AlertsChanged(alerts) => {
                if let Err(e) = record_alert_changes(app, alerts).await {
                    warn!(error = %e, "alerts not linked to incident timelines");
                }
            }
            Event::Maintenance(step) => record_maintenance(app, step).await,
        }
    })
}
