//! What other areas add to incidents: command runs and alerts of a service with an
//! open incident land on its timeline, and an alert can open an incident.

use tracing::warn;

use super::db;
use super::db::EntryKind;
use super::db::NewEntry;
use super::lifecycle::open;
use super::lifecycle::OpenRequest;
use super::lifecycle::Opened;
use super::model::Who;
use super::model::MAX_TEXT;
use super::IncidentError;

use crate::app::App;
use crate::audit::AuditEntry;
use crate::audit::Outcome;
use crate::chat;
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
                &Who {
                    id: e.user_id,
                    name: e.user_name.clone(),
                },
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
    alerts: &[&crate::alerts::Alert],
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
pub async fn record_alerts(app: &App, alerts: &[&crate::alerts::Alert]) -> Result<(), StoreError> {
    for a in alerts {
        let Some(service) = a.label("service") else {
            continue;
        };
        let Ok(svc) = app.service(service) else {
            continue;
        };
        for i in db::open_for_service(&app.store, &svc.name).await? {
            let text = format!(
                "Alert {} {} ({}): {}",
                a.name(),
                a.status.as_str(),
                a.source.as_str(),
                a.summary()
            );
            db::add_entry(
                &app.store,
                i.id,
                &NewEntry::new(
                    EntryKind::Alert,
                    app.clock.now_ms(),
                    &Who::klaxon(),
                    chat::truncate(&text, 1_000),
                ),
            )
            .await?;
        }
    }
    Ok(())
}
