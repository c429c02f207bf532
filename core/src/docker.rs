//! The Docker engine, through bollard.
//!
//! Every call has a deadline: a hung engine must turn into a line in the reply,
//! never a command that hangs past Discord's interaction window.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerStatsResponse, HealthStatusEnum};
use bollard::query_parameters::{InspectContainerOptions, StatsOptionsBuilder};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::OnceCell;

#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerError {
    #[error("Docker is unreachable at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("no container named `{0}`")]
    NotFound(String),
    #[error("Docker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Docker error: {0}")]
    Api(String),
}

/// What `/health` shows of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    /// created, running, paused, restarting, removing, exited, dead.
    pub state: String,
    pub running: bool,
    /// The Docker health check, when the image or container has one.
    pub health: Option<HealthState>,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From one stats sample; None when the container is not running.
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

/// A lazily negotiated connection: the engine may be down when Klaxon starts and
/// come up later, so version negotiation happens on first use and is retried.
#[derive(Clone)]
pub struct DockerClient {
    host: String,
    timeout: Duration,
    negotiated: Arc<OnceCell<Docker>>,
}

impl std::fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerClient")
            .field("host", &self.host)
            .finish()
    }
}

impl DockerClient {
    /// `host` as in the config: `unix:///var/run/docker.sock`, or `tcp://` / `http://`.
    pub fn new(host: &str, timeout: Duration) -> Self {
        DockerClient {
            host: host.to_string(),
            timeout,
            negotiated: Arc::new(OnceCell::new()),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn unreachable(&self, reason: impl ToString) -> DockerError {
        DockerError::Unreachable {
            host: self.host.clone(),
            reason: reason.to_string(),
        }
    }

    /// The bollard client, speaking the engine's API version.
    pub async fn client(&self) -> Result<&Docker, DockerError> {
        self.negotiated
            .get_or_try_init(|| async {
                let secs = self.timeout.as_secs().max(1);
                let docker = if let Some(path) = self.host.strip_prefix("unix://") {
                    Docker::connect_with_unix(path, secs, bollard::API_DEFAULT_VERSION)
                } else {
                    let addr = self.host.replacen("tcp://", "http://", 1);
                    Docker::connect_with_http(&addr, secs, bollard::API_DEFAULT_VERSION)
                }
                .map_err(|e| self.unreachable(e))?;
                // bollard defaults to a newer API than many engines speak (1.53 vs
                // Debian's 1.41); negotiate down to what the engine supports.
                match tokio::time::timeout(self.timeout, docker.negotiate_version()).await {
                    Ok(Ok(d)) => Ok(d),
                    Ok(Err(e)) => Err(self.unreachable(e)),
                    Err(_) => Err(DockerError::Timeout(self.timeout)),
                }
            })
            .await
    }

    async fn deadline<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
        name: &str,
    ) -> Result<T, DockerError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(DockerError::Timeout(self.timeout)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e, name)),
        }
    }

    fn classify(&self, e: bollard::errors::Error, name: &str) -> DockerError {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code: 404, ..
            } => DockerError::NotFound(name.to_string()),
            E::DockerResponseServerError { message, .. } => DockerError::Api(message),
            E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::SocketNotFoundError(_) => self.unreachable(e),
            other => DockerError::Api(other.to_string()),
        }
    }

    /// Inspects a container and, when it runs, takes one stats sample for CPU and
    /// memory. The sample waits for the engine's second reading, which is what makes
    /// a CPU percentage possible at all: 1 to 2 s on Docker 20.10 (streaming the
    /// readings was measured no faster through bollard).
    pub async fn status(&self, name: &str) -> Result<ContainerStatus, DockerError> {
        let docker = self.client().await?;
        let info = self
            .deadline(
                docker.inspect_container(name, None::<InspectContainerOptions>),
                name,
            )
            .await?;
        let state = info.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let mut status = ContainerStatus {
            name: name.to_string(),
            image: info.config.and_then(|c| c.image).unwrap_or_default(),
            state: state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            running,
            health: state.health.and_then(|h| h.status).and_then(|s| match s {
                HealthStatusEnum::STARTING => Some(HealthState::Starting),
                HealthStatusEnum::HEALTHY => Some(HealthState::Healthy),
                HealthStatusEnum::UNHEALTHY => Some(HealthState::Unhealthy),
                HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
            }),
            restart_count: info.restart_count.unwrap_or(0),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            started_at: state.started_at.as_deref().and_then(parse_time),
            finished_at: state.finished_at.as_deref().and_then(parse_time),
            cpu_percent: None,
            memory_percent: None,
            memory_bytes: None,
        };
        if running {
            let opts = StatsOptionsBuilder::default()
                .stream(false)
                .one_shot(false)
                .build();
            let mut stream = docker.stats(name, Some(opts));
            if let Ok(Some(Ok(sample))) = tokio::time::timeout(self.timeout, stream.next()).await {
                let (cpu, mem_pct, mem) = usage(&sample);
                status.cpu_percent = cpu;
                status.memory_percent = mem_pct;
                status.memory_bytes = mem;
            }
        }
        Ok(status)
    }
}

/// What a command run inside a container printed (stdout and stderr, trimmed) and
/// how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub output: String,
}

impl DockerClient {
    /// Runs `argv` inside a running container (as `docker exec`), within the
    /// client's deadline. Output past 4 KiB is cut: it only goes into messages.
    pub async fn exec(&self, container: &str, argv: &[String]) -> Result<ExecOutput, DockerError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let docker = self.client().await?;
        let run = async {
            let created = docker
                .create_exec(
                    container,
                    CreateExecOptions {
                        cmd: Some(argv.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await?;
            let mut output = String::new();
            if let StartExecResults::Attached {
                output: mut stream, ..
            } = docker.start_exec(&created.id, None).await?
            {
                while let Some(chunk) = stream.next().await {
                    if output.len() < 4_096 {
                        output.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
                    }
                }
            }
            let inspected = docker.inspect_exec(&created.id).await?;
            Ok(ExecOutput {
                exit_code: inspected.exit_code.unwrap_or(-1),
                output: crate::chat::truncate(output.trim(), 4_096),
            })
        };
        self.deadline(run, container).await
    }
}

/// Docker's zero time (`0001-01-01T00:00:00Z`) means "never".
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
}

/// CPU percent as `docker stats` shows it (100 % = one core fully busy), memory as
/// usage minus page cache against the container's limit (the host's without one).
pub fn usage(s: &ContainerStatsResponse) -> (Option<f64>, Option<f64>, Option<u64>) {
    let cpu = (|| {
        let now = s.cpu_stats.as_ref()?;
        let pre = s.precpu_stats.as_ref()?;
        let total = now.cpu_usage.as_ref()?.total_usage? as f64;
        let pre_total = pre.cpu_usage.as_ref()?.total_usage? as f64;
        let system = now.system_cpu_usage? as f64;
        let pre_system = pre.system_cpu_usage? as f64;
        let cpus = now
            .online_cpus
            .map(f64::from)
            .or_else(|| {
                now.cpu_usage
                    .as_ref()?
                    .percpu_usage
                    .as_ref()
                    .map(|v| v.len() as f64)
            })
            .unwrap_or(1.0);
        let dsys = system - pre_system;
        if dsys <= 0.0 {
            return None;
        }
        Some((total - pre_total).max(0.0) / dsys * cpus * 100.0)
    })();
    let (mem_pct, mem) = s
        .memory_stats
        .as_ref()
        .map(|m| {
            let usage = m.usage.unwrap_or(0);
            // cgroup v2 reports "inactive_file", v1 "total_inactive_file": page cache
            // the kernel can drop, which `docker stats` leaves out too.
            let cache = m
                .stats
                .as_ref()
                .and_then(|st| {
                    st.get("inactive_file")
                        .or_else(|| st.get("total_inactive_file"))
                        .copied()
                })
                .unwrap_or(0);
            let used = usage.saturating_sub(cache);
            let pct = m
                .limit
                .filter(|l| *l > 0)
                .map(|l| used as f64 / l as f64 * 100.0);
            (pct, Some(used))
        })
        .unwrap_or((None, None));
    (cpu, mem_pct, mem)
}
