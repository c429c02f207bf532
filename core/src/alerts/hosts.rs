//! `DockerHostDown`: an engine that does not answer is ONE critical alert for the
//! host, listing the services on it, resolved when the engine answers again.
//!
//! Why one alert per host: when an engine goes away every container on it looks
//! dead at once, and a page per container buries the one fact that matters (the
//! machine or its dockerd is gone). So the event watcher of a host asks this
//! module whether the host is down, or just came back, and drops the container
//! alerts of that time ([`HostState::suppresses`]).

use std::sync::Mutex;
use std::time::Duration;

use tracing::{info, warn};

use super::{Alert, AlertStatus, Source};
use crate::app::App;
use crate::docker::DockerClient;
use crate::events::{AlertChange, Event};

/// How often each engine is asked `/_ping`.
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// Failed pings in a row that make the host down (one lost answer is not an outage).
const FAILURES_TO_DOWN: u32 = 2;
/// After the engine answers again, container events this close to its return
/// (its start-up restoring containers) are still the outage's, not alerts.
const SETTLE_SECS: i64 = 5;

/// The alert of `host` (an engine name), `status`, naming its services.
pub fn host_alert(
    host: &str,
    address: &str,
    services: &[String],
    status: AlertStatus,
    why: &str,
) -> Alert {
    let listed = if services.is_empty() {
        "no services".to_string()
    } else {
        services.join(", ")
    };
    // Short enough to show whole on an alert card: the services first, the
    // address and the engine's error in the description.
    let summary = match status {
        AlertStatus::Firing => {
            format!("Docker host `{host}` does not answer; services on it: {listed}")
        }
        AlertStatus::Resolved => {
            format!("Docker host `{host}` answers again; services on it: {listed}")
        }
    };
    let mut a = Alert::own(
        Source::Docker,
        &format!("docker host {host}"),
        "DockerHostDown",
        status,
        "critical",
        summary,
    );
    a.labels.insert("host".into(), host.to_string());
    if status == AlertStatus::Firing {
        a.annotations
            .insert("description".into(), format!("{address}: {why}"));
    }
    a
}

/// Whether a host is down, and when its last outage was, shared by the host's
/// ping loop and its event stream.
#[derive(Debug, Default)]
pub struct HostState {
    inner: Mutex<Outage>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Outage {
    down: bool,
    /// Unix seconds: the first failed ping of the last outage, and its end.
    started: Option<i64>,
    ended: Option<i64>,
}

impl HostState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outage> {
        // A poisoned lock only means another loop panicked: its data is still sound.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    fn went_down(&self, first_failure: i64) {
        let mut o = self.lock();
        o.down = true;
        o.started = Some(first_failure);
        o.ended = None;
    }

    fn came_back(&self, at: i64) {
        let mut o = self.lock();
        o.down = false;
        o.ended = Some(at);
    }

    /// Whether a container event at `time` (unix seconds) belongs to an outage of
    /// the host: while it is down, or within the last outage (a replay after the
    /// reconnect) up to a few seconds after its return.
    pub fn suppresses(&self, time: Option<i64>) -> bool {
        let o = *self.lock();
        if o.down {
            return true;
        }
        match (o.started, o.ended, time) {
            (Some(start), Some(end), Some(t)) => {
                t >= start - PING_EVERY.as_secs() as i64 && t <= end + SETTLE_SECS
            }
            _ => false,
        }
    }
}

/// Pings `engine` every [`PING_EVERY`] for ever; raises and resolves the host's
/// alert. Cancelled by dropping it.
pub async fn watch_host(
    app: &App,
    host: &str,
    engine: &DockerClient,
    services: Vec<String>,
    state: &HostState,
) {
    let mut failures = 0u32;
    let mut first_failure = 0i64;
    // Resolves an alert left firing by an earlier run once the engine answers.
    let mut reported_up = false;
    loop {
        let answer = match tokio::time::timeout(engine.timeout(), ping(engine)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", engine.timeout())),
        };
        let now = chrono::Utc::now().timestamp();
        match answer {
            Ok(()) => {
                failures = 0;
                if state.is_down() || !reported_up {
                    if state.is_down() {
                        info!(host, "Docker host answers again");
                        state.came_back(now);
                    }
                    reported_up = true;
                    let a = host_alert(host, engine.host(), &services, AlertStatus::Resolved, "");
                    ingest(app, a, host).await;
                }
            }
            Err(why) => {
                if failures == 0 {
                    first_failure = now;
                }
                failures += 1;
                if failures == FAILURES_TO_DOWN && !state.is_down() {
                    // INFO: the alert is the news, and the event watcher already
                    // logs the engine's failure once at WARN.
                    info!(host, error = %why, "Docker host does not answer");
                    state.went_down(first_failure);
                    reported_up = true;
                    let a = host_alert(host, engine.host(), &services, AlertStatus::Firing, &why);
                    ingest(app, a, host).await;
                }
            }
        }
        tokio::time::sleep(PING_EVERY).await;
    }
}

async fn ping(engine: &DockerClient) -> Result<(), String> {
    engine.ping().await.map_err(|e| e.to_string())
}

async fn ingest(app: &App, alert: Alert, host: &str) {
    let now = app.clock.now_ms();
    let alerts = [alert];
    match super::intake::ingest(&app.store, &app.alerts, app.alerts_channel, &alerts, now).await {
        Ok(done) => {
            let changed = AlertChange::picked(&alerts, &done.changed);
            if !changed.is_empty() {
                app.publish(Event::AlertsChanged(changed)).await;
            }
        }
        Err(e) => warn!(error = %e, host, "DockerHostDown not stored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_host_naming_its_services() {
        let a = host_alert(
            "edge",
            "tcp://10.0.0.2:2376",
            &["api".into(), "web".into()],
            AlertStatus::Firing,
            "connection refused",
        );
        assert_eq!(a.name(), "DockerHostDown");
        assert_eq!(
            a.labels.get("severity").map(String::as_str),
            Some("critical")
        );
        assert_eq!(a.labels.get("host").map(String::as_str), Some("edge"));
        assert_eq!(
            a.summary(),
            "Docker host `edge` does not answer; services on it: api, web"
        );
        assert_eq!(
            a.annotations.get("description").map(String::as_str),
            Some("tcp://10.0.0.2:2376: connection refused")
        );
        let r = host_alert("edge", "x", &["api".into()], AlertStatus::Resolved, "");
        assert_eq!(r.fingerprint, a.fingerprint);
    }

    #[test]
    fn container_events_of_an_outage_are_dropped() {
        let s = HostState::default();
        assert!(!s.suppresses(Some(100)));
        s.went_down(100);
        assert!(s.suppresses(Some(50)), "while down, everything");
        s.came_back(160);
        assert!(s.suppresses(Some(99)));
        assert!(s.suppresses(Some(163)), "the engine's start-up restore");
        assert!(!s.suppresses(Some(90)));
        assert!(!s.suppresses(Some(170)));
    }
}
