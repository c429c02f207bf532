//! `/health`: every watched service's container and HTTP endpoint, judged against
//! thresholds.
//!
//! Services run on several engines (`[[docker.hosts]]`): every engine is asked at
//! once, each call bounded by its own engine's timeout, so an engine that does not
//! answer shows as such in the report without delaying the others' answers.

use std::cmp::Ordering;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::docker::{ContainerStatus, DockerClient, DockerError, Engines, HealthState};
use crate::probe::{ProbeResult, Prober};

use crate::settings::services::{ServiceConfig, Thresholds};

mod replicas;

/// Ordered from best to worst, so the overall state is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Healthy,
    Maintenance,
    Degraded,
    Unknown,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Maintenance => "in maintenance",
            State::Degraded => "degraded",
            State::Unknown => "unknown",
            State::Down => "down",
        }
    }

    pub fn emoji(self) -> &'static str {
        match self {
            State::Healthy => "🟢",
            State::Maintenance => "🔧",
            State::Degraded => "🟡",
            State::Unknown => "⚪",
            State::Down => "🔴",
        }
    }

    pub fn color(self) -> u32 {
        match self {
            State::Healthy => crate::chat::GREEN,
            State::Maintenance | State::Unknown => crate::chat::GREY,
            State::Degraded => crate::chat::YELLOW,
            State::Down => crate::chat::RED,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceHealth {
    pub name: String,
    /// The engine it runs on (`[[docker.hosts]]` name).
    pub host: String,
    pub state: State,
    /// Why the state is not healthy, most important first.
    pub problems: Vec<String>,
    /// The maintenance window it is in, when it is in one.
    pub maintenance: Option<String>,
    pub container: Option<Result<ContainerStatus, DockerError>>,
    /// A Swarm service's tasks (issue #16), when the service is one.
    pub swarm: Option<Result<crate::swarm::SwarmStatus, DockerError>>,
    pub probe: Option<ProbeResult>,
    /// A compose service: `n/m healthy` and the worst replica (whose container
    /// `container` is).
    pub replicas: Option<String>,
}

/// Whether one engine answered its ping, for the report's per-host heading.
#[derive(Debug, Clone)]
pub struct HostHealth {
    pub name: String,
    /// `Err`: why it did not answer (within its timeout).
    pub answer: Result<(), DockerError>,
}

#[derive(Debug, Clone)]
pub struct HealthReport {
    pub services: Vec<ServiceHealth>,
    /// The engines of the services in the report, in the config's order.
    pub hosts: Vec<HostHealth>,
    pub checked_at: chrono::DateTime<Utc>,
}

impl HealthReport {
    pub fn overall(&self) -> State {
        self.services
            .iter()
            .map(|s| s.state)
            .max()
            .unwrap_or(State::Unknown)
    }

    pub fn count(&self, state: State) -> usize {
        self.services.iter().filter(|s| s.state == state).count()
    }
}

/// A container check's deadline on an engine: its timeout plus the stats sample
/// (about a second) that `status` takes.
fn container_deadline(engine: &DockerClient) -> Duration {
    engine.timeout() + Duration::from_secs(1)
}

/// Checks the services concurrently, every engine at once; the report keeps the
/// configured order.
pub async fn check(
    engines: &Engines,
    prober: &Prober,
    thresholds: &Thresholds,
    services: &[&ServiceConfig],
) -> HealthReport {
    let mut host_names: Vec<&str> = Vec::new();
    for name in engines.names() {
        if services
            .iter()
            .any(|s| s.container.is_some() && s.host_name() == name)
        {
            host_names.push(name);
        }
    }
    let pings = host_names.iter().map(|name| async move {
        let answer = match engines.get(name) {
            Ok(engine) => match tokio::time::timeout(engine.timeout(), engine.ping()).await {
                Ok(r) => r,
                Err(_) => Err(DockerError::Timeout(engine.timeout())),
            },
            Err(e) => Err(DockerError::Api(e.to_string())),
        };
        HostHealth {
            name: name.to_string(),
            answer,
        }
    });
    let checks = services
        .iter()
        .map(|svc| check_one(engines, prober, thresholds, svc));
    let (hosts, services) = tokio::join!(
        futures::future::join_all(pings),
        futures::future::join_all(checks)
    );
    HealthReport {
        services,
        hosts,
        checked_at: Utc::now(),
    }
}

async fn check_one(
    engines: &Engines,
    prober: &Prober,
    thresholds: &Thresholds,
    svc: &ServiceConfig,
) -> ServiceHealth {
    let timeout = Duration::from_millis(thresholds.probe_timeout_ms);
    let engine = engines.get(svc.host_name());
    let container = async {
        let docker = match (&engine, svc.container.is_some() || svc.compose.is_some()) {
            (_, false) => return (None, None),
            (Err(e), true) => return (Some(Err(DockerError::Api(e.to_string()))), None),
            (Ok(docker), true) => *docker,
        };
        match (&svc.container, svc.compose_parts()) {
            (Some(name), _) => {
                let limit = container_deadline(docker);
                let status = match tokio::time::timeout(limit, docker.status(name)).await {
                    Ok(r) => r,
                    Err(_) => Err(DockerError::Timeout(limit)),
                };
                (Some(status), None)
            }
            (None, Some((project, service))) => {
                let (worst, line) = replicas::check(docker, project, service, thresholds).await;
                (worst, Some(line))
            }
            (None, None) => (None, None),
        }
    };
    let probe = async {
        match &svc.health_url {
            Some(url) => Some(prober.probe(url, timeout).await),
            None => None,
        }
    };
    // A Swarm service: its tasks instead of a container (see `crate::swarm`).
    let swarm = async {
        match &svc.swarm_service {
            Some(name) => Some(match &engine {
                Ok(docker) => crate::swarm::status::read(docker, name).await,
                Err(e) => Err(DockerError::Api(e.to_string())),
            }),
            None => None,
        }
    };
    let ((container, replicas), swarm, probe) = tokio::join!(container, swarm, probe);
    let mut health = judge(&svc.name, container, probe, thresholds);
    if let Some(line) = replicas {
        if line.starts_with("0 replicas") {
            health.problems.retain(|p| !p.starts_with("container `"));
            health.problems.insert(
                0,
                format!(
                    "no container of compose `{}` found",
                    svc.compose.as_deref().unwrap_or_default()
                ),
            );
        }
        health.replicas = Some(line);
    }
    if swarm.is_some() {
        judge_swarm(&mut health, swarm);
    }
    health.host = svc.host_name().to_string();
    health
}

/// Adds a Swarm service's findings (replicas not running, an update paused, the
/// service missing) to what [`judge`] found; pure, like it.
pub fn judge_swarm(
    health: &mut ServiceHealth,
    swarm: Option<Result<crate::swarm::SwarmStatus, DockerError>>,
) {
    let mut findings: Vec<(State, String)> = Vec::new();
    match &swarm {
        None => return,
        Some(Err(e)) => findings.push((State::Unknown, e.to_string())),
        Some(Ok(s)) => {
            for (down, text) in s.problems() {
                findings.push((if down { State::Down } else { State::Degraded }, text));
            }
        }
    }
    // "nothing to check" was said for want of a container or probe: the tasks are.
    if health.container.is_none() && health.probe.is_none() {
        health.problems.clear();
        health.state = State::Healthy;
    }
    for (state, text) in findings {
        if state > health.state {
            health.problems.insert(0, text);
        } else {
            health.problems.push(text);
        }
        health.state = health.state.max(state);
    }
    health.swarm = swarm;
}

/// The rules, kept pure so they are tested without Docker.
pub fn judge(
    name: &str,
    container: Option<Result<ContainerStatus, DockerError>>,
    probe: Option<ProbeResult>,
    t: &Thresholds,
) -> ServiceHealth {
    let mut findings: Vec<(State, String)> = Vec::new();
    match &container {
        None => {}
        Some(Err(DockerError::NotFound(c))) => {
            findings.push((State::Down, format!("container `{c}` not found")))
        }
        Some(Err(e)) => findings.push((State::Unknown, e.to_string())),
        Some(Ok(c)) => {
            if !c.running {
                let mut why = format!("container {}", c.state);
                if let Some(code) = c.exit_code.filter(|_| c.state == "exited") {
                    why.push_str(&format!(" (exit code {code})"));
                }
                if c.oom_killed {
                    why.push_str(", killed: out of memory");
                }
                findings.push((State::Down, why));
            } else {
                match c.health {
                    Some(HealthState::Unhealthy) => {
                        findings.push((State::Down, "Docker health check failing".into()))
                    }
                    Some(HealthState::Starting) => {
                        findings.push((State::Degraded, "Docker health check starting".into()))
                    }
                    _ => {}
                }
                if let Some(cpu) = c.cpu_percent.filter(|v| *v > t.cpu_percent) {
                    findings.push((
                        State::Degraded,
                        format!("CPU {cpu:.0}% > {:.0}%", t.cpu_percent),
                    ));
                }
                if let Some(mem) = c.memory_percent.filter(|v| *v > t.memory_percent) {
                    findings.push((
                        State::Degraded,
                        format!("memory {mem:.0}% > {:.0}%", t.memory_percent),
                    ));
                }
            }
        }
    }
    if let Some(p) = &probe {
        match (p.status, &p.error) {
            (_, Some(err)) => findings.push((State::Down, format!("HTTP check: {err}"))),
            (Some(s), None) if !(200..300).contains(&s) => {
                findings.push((State::Down, format!("HTTP check answered {s}")))
            }
            _ if p.latency > Duration::from_millis(t.response_time_ms) => findings.push((
                State::Degraded,
                format!(
                    "HTTP check slow: {} ms > {} ms",
                    p.latency.as_millis(),
                    t.response_time_ms
                ),
            )),
            _ => {}
        }
    }
    if container.is_none() && probe.is_none() {
        findings.push((State::Unknown, "nothing to check".into()));
    }
    findings.sort_by(|a, b| b.0.cmp(&a.0).then(Ordering::Equal));
    ServiceHealth {
        name: name.to_string(),
        host: crate::docker::DEFAULT_HOST.to_string(),
        state: findings.first().map(|f| f.0).unwrap_or(State::Healthy),
        problems: findings.into_iter().map(|f| f.1).collect(),
        maintenance: None,
        container,
        swarm: None,
        probe,
        replicas: None,
    }
}

impl crate::app::App {
    // Here rather than in `app`: a report consults the maintenance windows, and
    // `app` imports no domain module.
    /// Health of one service or of all of them.
    pub async fn health(
        &self,
        only: Option<&str>,
    ) -> Result<HealthReport, crate::settings::services::UnknownService> {
        let services: Vec<&ServiceConfig> = match only {
            Some(name) => vec![self.service(name)?],
            None => self.services.iter().collect(),
        };
        let (mut report, notes) = tokio::join!(
            check(&self.engines, &self.prober, &self.thresholds, &services),
            crate::maintenance::health_notes(self)
        );
        // A service under planned work is "in maintenance", not failing: its
        // findings stay listed, but they do not make it (or the summary) red.
        for s in &mut report.services {
            if let Some((_, line)) = notes.iter().find(|(n, _)| n.eq_ignore_ascii_case(&s.name)) {
                s.state = State::Maintenance;
                s.maintenance = Some(line.clone());
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> ContainerStatus {
        ContainerStatus {
            name: "api".into(),
            image: "app:v1".into(),
            state: "running".into(),
            running: true,
            health: Some(HealthState::Healthy),
            restart_count: 0,
            exit_code: Some(0),
            oom_killed: false,
            started_at: None,
            finished_at: None,
            cpu_percent: Some(1.0),
            memory_percent: Some(10.0),
            memory_bytes: Some(1 << 20),
        }
    }

    fn probe(status: Option<u16>, ms: u64, error: Option<&str>) -> ProbeResult {
        ProbeResult {
            url: "http://x".into(),
            status,
            latency: Duration::from_millis(ms),
            error: error.map(String::from),
        }
    }

    #[test]
    fn healthy_when_all_good() {
        let h = judge(
            "api",
            Some(Ok(running())),
            Some(probe(Some(200), 20, None)),
            &Thresholds::default(),
        );
        assert_eq!(h.state, State::Healthy);
        assert!(h.problems.is_empty());
    }

    #[test]
    fn thresholds_degrade() {
        let mut c = running();
        c.cpu_percent = Some(95.0);
        c.memory_percent = Some(81.0);
        let h = judge(
            "api",
            Some(Ok(c)),
            Some(probe(Some(200), 6_000, None)),
            &Thresholds::default(),
        );
        assert_eq!(h.state, State::Degraded);
        assert_eq!(h.problems.len(), 3);
    }

    #[test]
    fn worst_finding_wins_and_comes_first() {
        let mut c = running();
        c.cpu_percent = Some(95.0);
        c.health = Some(HealthState::Unhealthy);
        let h = judge("api", Some(Ok(c)), None, &Thresholds::default());
        assert_eq!(h.state, State::Down);
        assert_eq!(h.problems[0], "Docker health check failing");
    }

    #[test]
    fn stopped_and_unreachable() {
        let mut c = running();
        c.running = false;
        c.state = "exited".into();
        c.exit_code = Some(137);
        let h = judge("api", Some(Ok(c)), None, &Thresholds::default());
        assert_eq!(
            h.problems,
            vec!["container exited (exit code 137)".to_string()]
        );
        let h = judge(
            "api",
            Some(Err(DockerError::Unreachable {
                host: "unix:///x".into(),
                reason: "no socket".into(),
            })),
            Some(probe(None, 10, Some("connection refused"))),
            &Thresholds::default(),
        );
        assert_eq!(h.state, State::Down);
        assert_eq!(h.problems.len(), 2);
    }
}
