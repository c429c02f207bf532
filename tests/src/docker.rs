//! Containers in the private test engine, removed when the test ends.

use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptionsBuilder};
use bollard::Docker;

use crate::env;

pub struct Containers {
    pub docker: Docker,
    host: String,
    /// The client certificates of a TLS engine (`docker --tlsverify`).
    tls: Option<std::path::PathBuf>,
    names: Vec<String>,
}

/// What to run: busybox-based test images, no network unless asked.
#[derive(Debug, Clone)]
pub struct Spec {
    pub image_tag: String,
    pub cmd: Option<Vec<String>>,
    /// A shell command for Docker's health check, run every 500 ms.
    pub health_cmd: Option<String>,
    /// How often the health check runs (default 500 ms).
    pub health_every: Duration,
    pub network: String,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub labels: Vec<(String, String)>,
}

impl Spec {
    pub fn new(tag: &str) -> Self {
        Spec {
            image_tag: tag.into(),
            cmd: None,
            health_cmd: None,
            health_every: Duration::from_millis(500),
            network: "none".into(),
            env: Vec::new(),
            labels: Vec::new(),
        }
    }
    pub fn cmd(mut self, sh: &str) -> Self {
        self.cmd = Some(vec!["sh".into(), "-c".into(), sh.into()]);
        self
    }
    pub fn health(mut self, sh: &str) -> Self {
        self.health_cmd = Some(sh.into());
        self
    }
    /// The health check's interval (many containers: less often).
    pub fn health_every(mut self, every: Duration) -> Self {
        self.health_every = every;
        self
    }
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }
}

impl Containers {
    pub async fn new() -> Self {
        Self::on(&env::docker_host(), None).await
    }

    /// The second private test engine, over TCP with TLS.
    pub async fn second() -> Self {
        Self::on(&env::docker_host2(), Some(env::docker_tls_dir())).await
    }

    /// Containers on the engine at `host` (`unix://` or, with `tls`, `tcp://`).
    pub async fn on(host: &str, tls: Option<std::path::PathBuf>) -> Self {
        let docker = match &tls {
            None => Docker::connect_with_unix(
                host.trim_start_matches("unix://"),
                30,
                bollard::API_DEFAULT_VERSION,
            ),
            Some(dir) => Docker::connect_with_ssl(
                host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                30,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .unwrap_or_else(|e| panic!("cannot use the test engine at {host}: {e}"));
        let docker = docker.negotiate_version().await.unwrap_or_else(|e| {
            panic!("the test engine at {host} does not answer: {e}; is scripts/test.sh running it?")
        });
        Containers {
            docker,
            host: host.to_string(),
            tls,
            names: Vec::new(),
        }
    }

    /// The `docker` CLI's flags for this engine (`-H`, and TLS).
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["-H".to_string(), self.host.clone()];
        if let Some(dir) = &self.tls {
            args.push("--tlsverify".into());
            for (flag, file) in [
                ("--tlscacert", "ca.pem"),
                ("--tlscert", "cert.pem"),
                ("--tlskey", "key.pem"),
            ] {
                args.push(flag.into());
                args.push(dir.join(file).display().to_string());
            }
        }
        args
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Creates and starts a container; returns its (unique) name.
    pub async fn run(&mut self, prefix: &str, spec: Spec) -> String {
        let name = env::unique(prefix).replace('_', "-");
        let image = env::image(&spec.image_tag);
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: spec.cmd.clone(),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: (!spec.labels.is_empty()).then(|| spec.labels.iter().cloned().collect()),
            healthcheck: spec.health_cmd.as_ref().map(|c| HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), c.clone()]),
                interval: Some(spec.health_every.as_nanos() as i64),
                timeout: Some(1_000_000_000),
                retries: Some(1),
                start_period: None,
                start_interval: None,
            }),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .unwrap_or_else(|e| {
                panic!("creating {name} from {image}: {e} (images are built by scripts/test.sh)")
            });
        self.names.push(name.clone());
        self.docker
            .start_container(&name, None)
            .await
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        name
    }

    async fn inspect(&self, name: &str) -> bollard::models::ContainerState {
        self.docker
            .inspect_container(name, None)
            .await
            .unwrap_or_else(|e| panic!("inspecting {name}: {e}"))
            .state
            .unwrap_or_default()
    }

    /// Waits until Docker reports the health status (`healthy`, `unhealthy`).
    pub async fn wait_health(&self, name: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.inspect(name).await;
            let status = state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .unwrap_or_default();
            if status == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {want} (last: {status})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_exited(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.inspect(name).await.running.unwrap_or(false) {
            assert!(Instant::now() < deadline, "{name} never exited");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn cleanup(&mut self) {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        for name in self.names.drain(..) {
            let _ = self
                .docker
                .remove_container(&name, Some(opts.clone()))
                .await;
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        // A failed test skips `cleanup`; don't leave its containers running.
        if !self.names.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(self.cli_args())
                .args(["rm", "-f"])
                .args(&self.names)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
