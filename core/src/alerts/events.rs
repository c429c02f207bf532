//! Docker events of the configured services' containers, as alerts: a container
//! that dies, is killed for memory, turns unhealthy, or restarts over and over.
//! One event stream per engine, each reconnecting by itself when its engine
//! restarts; an engine that does not answer is one `DockerHostDown` alert instead
//! (see [`super::hosts`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures::StreamExt as _;
use tracing::{debug, info, warn, Instrument as _};

use super::hosts::HostState;
use super::{Alert, AlertStatus, Source};
use crate::app::App;
use crate::docker::DockerClient;
use crate::events::{AlertChange, Event};

/// This many deaths within the window make a restart loop.
const LOOP_DEATHS: usize = 3;
const LOOP_WINDOW_MS: i64 = 5 * 60_000;

fn alert(service: &str, name: &str, status: AlertStatus, severity: &str, summary: String) -> Alert {
    Alert::own(Source::Docker, service, name, status, severity, summary)
}

/// What one event means, as alerts (usually one, sometimes none).
pub fn interpret(
    service: &str,
    action: &str,
    attributes: &HashMap<String, String>,
    deaths: &mut VecDeque<i64>,
    now_ms: i64,
) -> Vec<Alert> {
    let firing = AlertStatus::Firing;
    let resolved = AlertStatus::Resolved;
    match action {
        "die" => {
            let code = attributes
                .get("exitCode")
                .map(String::as_str)
                .unwrap_or("?");
            deaths.push_back(now_ms);
            while deaths.front().is_some_and(|t| now_ms - t > LOOP_WINDOW_MS) {
                deaths.pop_front();
            }
            let mut out = vec![alert(
                service,
                "ContainerDied",
                firing,
                "error",
                format!("{service}'s container exited with code {code}"),
            )];
            if deaths.len() >= LOOP_DEATHS {
                out.push(alert(
                    service,
                    "RestartLoop",
                    firing,
                    "critical",
                    format!(
                        "{service}'s container died {} times in {} minutes",
                        deaths.len(),
                        LOOP_WINDOW_MS / 60_000
                    ),
                ));
            }
            out
        }
        "oom" => vec![alert(
            service,
            "ContainerOOM",
            firing,
            "error",
            format!("{service}'s container ran out of memory and was killed"),
        )],
        "start" => {
            let mut out = vec![
                alert(
                    service,
                    "ContainerDied",
                    resolved,
                    "error",
                    format!("{service} started again"),
                ),
                alert(
                    service,
                    "ContainerOOM",
                    resolved,
                    "error",
                    format!("{service} started again"),
                ),
            ];
            if deaths.len() < LOOP_DEATHS {
                out.push(alert(
                    service,
                    "RestartLoop",
                    resolved,
                    "critical",
                    format!("{service} is stable"),
                ));
            }
            out
        }
        "health_status: unhealthy" => vec![alert(
            service,
            "ContainerUnhealthy",
            firing,
            "error",
            format!("{service}'s Docker health check fails"),
        )],
        "health_status: healthy" => {
            deaths.clear();
            vec![
                alert(
                    service,
                    "ContainerUnhealthy",
                    resolved,
                    "error",
                    format!("{service} is healthy again"),
                ),
                alert(
                    service,
                    "RestartLoop",
                    resolved,
                    "critical",
                    format!("{service} is healthy again"),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

/// Follows every engine's events until `stop`: one stream per engine a service's
/// container runs on, each reconnecting on its own, next to that engine's ping loop
/// ([`super::hosts`]), which raises `DockerHostDown` instead of container alerts.
pub async fn watch(app: &App, stop: impl std::future::Future<Output = ()>) {
    let hosts: Vec<(&str, &DockerClient, Watched)> = app
        .engines
        .iter()
        .filter_map(|(host, engine)| {
            let watched = Watched {
                by_container: app
                    .services_on(host)
                    .filter_map(|s| Some((s.container.clone()?, s.name.clone())))
                    .collect(),
                by_compose: app
                    .services_on(host)
                    .filter_map(|s| {
                        let (project, service) = s.compose_parts()?;
                        Some(((project.to_string(), service.to_string()), s.name.clone()))
                    })
                    .collect(),
            };
            (!watched.is_empty()).then_some((host, engine, watched))
        })
        .collect();
    tokio::pin!(stop);
    if hosts.is_empty() {
        return stop.await;
    }
    let all = futures::future::join_all(hosts.into_iter().map(|(host, engine, by_container)| {
        async move {
            let state = HostState::default();
            let mut services: Vec<String> = by_container
                .by_container
                .values()
                .chain(by_container.by_compose.values())
                .cloned()
                .collect();
            services.sort();
            tokio::join!(
                super::hosts::watch_host(app, host, engine, services, &state),
                watch_events(app, host, engine, by_container, &state)
            );
        }
        .instrument(tracing::info_span!("docker_host", host = %host))
    }));
    tokio::select! {
        _ = &mut stop => {}
        _ = all => {}
    }
}

/// The containers whose events are alerts on one engine: by name, and the
/// replicas of compose services by their labels (their names come and go).
struct Watched {
    by_container: HashMap<String, String>,
    /// (compose project, compose service) → Klaxon's service.
    by_compose: HashMap<(String, String), String>,
}

impl Watched {
    fn is_empty(&self) -> bool {
        self.by_container.is_empty() && self.by_compose.is_empty()
    }

    /// The names to ask the engine for; none (every container) when replicas are
    /// watched, since they are told apart by their labels.
    fn filter(&self) -> Vec<String> {
        if self.by_compose.is_empty() {
            self.by_container.keys().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// The service an event's container belongs to.
    fn service_of(&self, attributes: &HashMap<String, String>) -> Option<&String> {
        if let Some(s) = attributes
            .get("name")
            .and_then(|n| self.by_container.get(n.trim_start_matches('/')))
        {
            return Some(s);
        }
        let project = attributes.get("com.docker.compose.project")?;
        let service = attributes.get("com.docker.compose.service")?;
        self.by_compose.get(&(project.clone(), service.clone()))
    }

    fn len(&self) -> usize {
        self.by_container.len() + self.by_compose.len()
    }
}

/// One engine's container events, for ever (cancelled by dropping it); reconnects
/// with a growing pause (up to 30 s) whenever the stream or the engine goes away.
async fn watch_events(
    app: &App,
    host: &str,
    engine: &DockerClient,
    by_container: Watched,
    state: &HostState,
) {
    let mut deaths: HashMap<String, VecDeque<i64>> = HashMap::new();
    let mut pause = Duration::from_secs(1);
    // Where a reconnect picks up: events the engine recorded while the stream was
    // down (a container that died meanwhile) are replayed from here.
    let mut since: Option<i64> = None;
    let mut reconnecting = false;
    let mut last_nano: i64 = 0;
    // The same failure is logged once (at WARN), its repeats at DEBUG: a socket
    // this user may not open would otherwise fill the log every 30 s.
    let mut last_failure = String::new();
    loop {
        if let Err(e) = engine.ready().await {
            let text = e.to_string();
            if text != last_failure {
                warn!(host, error = %e, "Docker events: engine unreachable; retrying");
                last_failure = text;
            } else {
                debug!(host, error = %e, "Docker events: engine still unreachable");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
            continue;
        }
        if since.is_some() || reconnecting {
            // A broken stream: wait before asking again (growing), so an engine that
            // is down is not asked in a tight loop.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
        reconnecting = true;
        since = since.or_else(|| Some(chrono::Utc::now().timestamp()));
        let containers = by_container.filter();
        let actions = ["die", "oom", "start", "health_status"];
        let stream = match engine.container_events(containers, &actions, since).await {
            Ok(s) => s,
            Err(e) => {
                warn!(host, error = %e, "Docker events stream broke; reconnecting");
                continue;
            }
        };
        tokio::pin!(stream);
        info!(
            host,
            containers = by_container.len(),
            "following Docker events"
        );
        last_failure.clear();
        loop {
            let ev = match stream.next().await {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    warn!(host, error = %e, "Docker events stream broke; reconnecting");
                    break;
                }
                None => {
                    warn!(host, "Docker events stream ended; reconnecting");
                    break;
                }
            };
            pause = Duration::from_secs(1);
            // A replay after a reconnect starts at the last event's second: skip
            // what was already handled.
            let nano = ev.time_nano.unwrap_or_default();
            if nano != 0 && nano <= last_nano {
                continue;
            }
            last_nano = last_nano.max(nano);
            since = ev.time.or(since);
            // The engine's own outage is one DockerHostDown alert, not one per
            // container (see `hosts`).
            if state.suppresses(ev.time) {
                debug!(host, action = ?ev.action, "container event during the host's outage");
                continue;
            }
            let attributes = ev.attributes;
            let Some(service) = by_container.service_of(&attributes) else {
                continue;
            };
            // Klaxon's own /rollback and /restart stop and start containers: those
            // are planned, not alerts.
            if app.ops_locks.holder(service).is_some() {
                continue;
            }
            let action = ev.action.unwrap_or_default();
            let now = app.clock.now_ms();
            let alerts = interpret(
                service,
                &action,
                &attributes,
                deaths.entry(service.clone()).or_default(),
                now,
            );
            if alerts.is_empty() {
                continue;
            }
            match super::intake::ingest(&app.store, &app.alerts, app.alerts_channel, &alerts, now)
                .await
            {
                Ok(done) => {
                    let changed = AlertChange::picked(&alerts, &done.changed);
                    app.publish(Event::AlertsChanged(changed)).await;
                }
                Err(e) => warn!(host, error = %e, service, action, "Docker event not stored"),
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deaths_in_a_row_are_a_restart_loop() {
        let mut deaths = VecDeque::new();
        let attrs: HashMap<String, String> = [("exitCode".to_string(), "137".to_string())]
            .into_iter()
            .collect();
        let a = interpret("api", "die", &attrs, &mut deaths, 0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].summary(), "api's container exited with code 137");
        interpret("api", "die", &attrs, &mut deaths, 60_000);
        let c = interpret("api", "die", &attrs, &mut deaths, 120_000);
        assert!(c.iter().any(|a| a.name() == "RestartLoop"), "{c:?}");
        // Far apart, no loop.
        let mut deaths = VecDeque::new();
        for i in 0..3 {
            let x = interpret("api", "die", &attrs, &mut deaths, i * 600_000);
            assert!(!x.iter().any(|a| a.name() == "RestartLoop"));
        }
        let healthy = interpret("api", "health_status: healthy", &attrs, &mut deaths, 0);
        assert!(healthy.iter().all(|a| a.status == AlertStatus::Resolved));
    }
}
