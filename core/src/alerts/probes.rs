//! Klaxon's own probes: each service's `health_url` on an interval. N consecutive
//! failures raise a `ServiceDown` alert, a response slower than the threshold a
//! `ServiceSlow` one; a good answer resolves them. They go through the same store,
//! grouping and delivery as any other alert.

use std::collections::HashMap;
use std::time::Duration;

use super::{Alert, AlertStatus, Source};
use crate::app::App;
use crate::store::StoreError;

/// Consecutive failures per service, between probe rounds.
#[derive(Debug, Default)]
pub struct ProbeState {
    failures: HashMap<String, u32>,
}

fn alert(service: &str, name: &str, status: AlertStatus, severity: &str, summary: String) -> Alert {
    Alert::own(Source::Probe, service, name, status, severity, summary)
}

/// One round: probes every service with a `health_url` and stores what changed.
/// Returns the alerts it produced (firing and resolved).
pub async fn round(app: &App, state: &mut ProbeState) -> Result<Vec<Alert>, StoreError> {
    let cfg = &app.alerts.config;
    let timeout = Duration::from_millis(app.thresholds.probe_timeout_ms);
    let slow = Duration::from_millis(app.thresholds.response_time_ms);
    let services: Vec<(String, String)> = app
        .services
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.health_url.clone()?)))
        .collect();
    let results =
        futures::future::join_all(services.iter().map(|(name, url)| async move {
            (name.clone(), app.prober.probe(url, timeout).await)
        }))
        .await;
    let mut out = Vec::new();
    for (name, r) in results {
        let failures = state.failures.entry(name.clone()).or_default();
        if r.ok() {
            *failures = 0;
            out.push(alert(
                &name,
                "ServiceDown",
                AlertStatus::Resolved,
                "critical",
                format!("{name} answers again"),
            ));
            let slow_now = r.latency > slow;
            out.push(alert(
                &name,
                "ServiceSlow",
                if slow_now {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                },
                "warning",
                format!(
                    "{name}'s health endpoint took {} ms (threshold {} ms)",
                    r.latency.as_millis(),
                    slow.as_millis()
                ),
            ));
        } else {
            *failures += 1;
            if *failures >= cfg.probe_failures {
                let why = match (&r.error, r.status) {
                    (Some(e), _) => e.clone(),
                    (None, Some(s)) => format!("HTTP {s}"),
                    (None, None) => "no answer".into(),
                };
                out.push(alert(
                    &name,
                    "ServiceDown",
                    AlertStatus::Firing,
                    "critical",
                    format!(
                        "{name}'s health endpoint failed {} times in a row: {why}",
                        *failures
                    ),
                ));
            }
        }
    }
    if !out.is_empty() {
        let now = app.clock.now_ms();
        let done =
            super::intake::ingest(&app.store, &app.alerts, app.alerts_channel, &out, now).await?;
        let changed: Vec<&Alert> = done.changed.iter().filter_map(|i| out.get(*i)).collect();
        crate::incidents::record_alerts(app, &changed).await?;
    }
    Ok(out)
}
