//! Containers: what `/health` shows of one (inspect and a stats sample), commands
//! run inside one (maintenance flags), and the operations `/rollback` and
//! `/restart` are made of. Every call goes through the client's one deadline.

use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStatsResponse, EndpointSettings,
    HealthStatusEnum, NetworkConnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
    RenameContainerOptions, RestartContainerOptions, StatsOptionsBuilder, StopContainerOptions,
};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{DockerClient, DockerError};

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

impl DockerClient {
    /// Inspects a container and, when it runs, takes one stats sample for CPU and
    /// memory. The sample waits for the engine's second reading, which is what makes
    /// a CPU percentage possible at all: 1 to 2 s on Docker 20.10 (streaming the
    /// readings was measured no faster through bollard).
    pub async fn status(&self, name: &str) -> Result<ContainerStatus, DockerError> {
        let docker = self.client().await?;
        let info = self
            .call(
                name,
                self.timeout,
                docker.inspect_container(name, None::<InspectContainerOptions>),
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
            started_at: state
                .started_at
                .as_deref()
                .and_then(crate::timefmt::parse_time),
            finished_at: state
                .finished_at
                .as_deref()
                .and_then(crate::timefmt::parse_time),
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
        self.call(container, self.timeout, run).await
    }
}

/// The operations of `/rollback` and `/restart`, each within the client's request
/// timeout (stop and restart also get the time the container has to stop).
impl DockerClient {
    /// A client whose own timeout leaves room for calls that wait on purpose
    /// (stop, restart), which bollard would otherwise cut at docker.timeout_secs.
    async fn patient(&self, extra: Duration) -> Result<Docker, DockerError> {
        let mut d = self.client().await?.clone();
        d.set_timeout(self.request_timeout() + extra);
        Ok(d)
    }

    pub async fn inspect(&self, name: &str) -> Result<ContainerInspectResponse, DockerError> {
        let docker = self.client().await?;
        self.call(
            name,
            self.request_timeout(),
            docker.inspect_container(name, None::<InspectContainerOptions>),
        )
        .await
    }

    /// `None` when there is no such container.
    pub async fn inspect_opt(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.inspect(name).await {
            Ok(i) => Ok(Some(i)),
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn stop(&self, name: &str, secs: u64) -> Result<(), DockerError> {
        let wait = Duration::from_secs(secs);
        let opts = StopContainerOptions {
            t: Some(secs.min(i32::MAX as u64) as i32),
            ..Default::default()
        };
        let docker = self.patient(wait).await?;
        self.call(
            name,
            self.request_timeout() + wait,
            docker.stop_container(name, Some(opts)),
        )
        .await
    }

    pub async fn restart(&self, name: &str, secs: u64) -> Result<(), DockerError> {
        let wait = Duration::from_secs(secs);
        let opts = RestartContainerOptions {
            t: Some(secs.min(i32::MAX as u64) as i32),
            ..Default::default()
        };
        let docker = self.patient(wait).await?;
        self.call(
            name,
            self.request_timeout() + wait,
            docker.restart_container(name, Some(opts)),
        )
        .await
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let opts = RenameContainerOptions {
            name: to.to_string(),
        };
        self.call(
            from,
            self.request_timeout(),
            docker.rename_container(from, opts),
        )
        .await
    }

    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        self.call(
            name,
            self.request_timeout(),
            docker.start_container(name, None),
        )
        .await
    }

    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        self.call(
            name,
            self.request_timeout(),
            docker.create_container(Some(opts), body),
        )
        .await
        .map(|_| ())
    }

    /// Removing a container that is gone already succeeds.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let opts = RemoveContainerOptions {
            force,
            ..Default::default()
        };
        match self
            .call(
                name,
                self.request_timeout(),
                docker.remove_container(name, Some(opts)),
            )
            .await
        {
            Err(DockerError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    pub async fn connect(
        &self,
        network: &str,
        container: &str,
        endpoint: EndpointSettings,
    ) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let req = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(endpoint),
        };
        self.call(
            network,
            self.request_timeout(),
            docker.connect_network(network, req),
        )
        .await
    }
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
