//! The Docker engine, through bollard: the one adapter every area of core talks to.
//!
//! Every call has a deadline: a hung engine must turn into a line in the reply,
//! never a command that hangs past Discord's interaction window. There is one
//! deadline wrapper ([`DockerClient::call`]) and one error mapping ([`error`]);
//! health, logs, rollouts, maintenance flags and the event watcher use them all
//! alike, so the same engine failure reads the same everywhere.
//!
//! - [`containers`]: status (inspect + a stats sample), exec, and the container
//!   operations of `/rollback` and `/restart` (stop, rename, create, ...);
//! - [`images`]: image inspection, the tags of a repository, reference parsing;
//! - [`logs`]: a container's log as a stream of frames;
//! - [`events`]: the engine's container events;
//! - [`compose`]: the replicas of a compose service, by their labels.
//! - [`swarm`]: Docker Swarm services, their tasks and nodes (issue #16).
//! - [`engines`]: the configured engines by name (`[[docker.hosts]]`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use tokio::sync::OnceCell;

pub mod compose;
pub mod containers;
pub mod engines;
pub mod error;
pub mod events;
pub mod images;
pub mod logs;
pub mod swarm;

pub use compose::Replica;
pub use containers::{usage, ContainerStatus, ExecOutput, HealthState};
pub use engines::{Engines, UnknownHost, DEFAULT_HOST};
pub use error::DockerError;
pub use events::ContainerEvent;
pub use images::ImageInfo;
pub use logs::{LogFrame, LogRequest};

/// The engine's data types (inspect answers, create bodies), for the code that
/// reads or builds them (rollout's spec copy). Calls go through [`DockerClient`].
pub use bollard::models;

/// A lazily negotiated connection: the engine may be down when Klaxon starts and
/// come up later, so version negotiation happens on first use and is retried.
#[derive(Clone)]
pub struct DockerClient {
    host: String,
    timeout: Duration,
    tls: Option<Tls>,
    negotiated: Arc<OnceCell<Docker>>,
}

impl std::fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerClient")
            .field("host", &self.host)
            .finish()
    }
}

/// The PEM files of a `tcp://` engine that requires TLS (`dockerd --tlsverify`):
/// the CA that signed the engine's certificate, and Klaxon's client certificate
/// and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl DockerClient {
    /// `host` as in the config: `unix:///var/run/docker.sock`, or `tcp://` / `http://`.
    pub fn new(host: &str, timeout: Duration) -> Self {
        DockerClient {
            host: host.to_string(),
            timeout,
            tls: None,
            negotiated: Arc::new(OnceCell::new()),
        }
    }

    /// Speaks TLS to a `tcp://` host, with a client certificate.
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The deadline of one call, `[[docker.hosts]] timeout_secs`.
    pub fn timeout(&self) -> Duration {
        self.timeout
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
    async fn client(&self) -> Result<&Docker, DockerError> {
        self.negotiated
            .get_or_try_init(|| async {
                let secs = self.timeout.as_secs().max(1);
                let docker = if let Some(path) = self.host.strip_prefix("unix://") {
                    Docker::connect_with_unix(path, secs, bollard::API_DEFAULT_VERSION)
                } else if let Some(tls) = &self.tls {
                    Docker::connect_with_ssl(
                        &self.host,
                        &tls.key,
                        &tls.cert,
                        &tls.ca,
                        secs,
                        bollard::API_DEFAULT_VERSION,
                    )
                } else {
                    let addr = self.host.replacen("tcp://", "http://", 1);
                    Docker::connect_with_http(&addr, secs, bollard::API_DEFAULT_VERSION)
                }
                .map_err(|e| self.unreachable(e))?;
                // bollard defaults to a newer API than many engines speak (1.53 vs
                // Debian's 1.41); negotiate down to what the engine supports.
                match tokio::time::timeout(self.timeout, docker.negotiate_version()).await {
                    Ok(Ok(d)) => Ok(d),
                    Ok(Err(e)) => Err(error::unreachable(e, &self.host)),
                    Err(_) => Err(DockerError::Timeout(self.timeout)),
                }
            })
            .await
    }

    /// Connects (negotiates the API version) if that has not happened yet: whether
    /// the engine answers at all.
    pub async fn ready(&self) -> Result<(), DockerError> {
        self.client().await.map(|_| ())
    }

    /// Whether the engine answers now (`/_ping`), for `/readyz`.
    pub async fn ping(&self) -> Result<(), DockerError> {
        let docker = self.client().await?;
        self.call("the engine", self.request_timeout(), docker.ping())
            .await
            .map(|_| ())
    }

    /// bollard's own per-request timeout (whole seconds, at least one), which is
    /// also the deadline of the container operations.
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.as_secs().max(1))
    }

    fn classify(&self, e: bollard::errors::Error, what: &str) -> DockerError {
        error::classify(e, what, &self.host, self.request_timeout())
    }

    /// The one deadline: `fut` (a bollard call about `what`) gets `limit`, and its
    /// error goes through the one mapping.
    async fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        match tokio::time::timeout(limit, fut).await {
            Err(_) => Err(DockerError::Timeout(limit)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e, what)),
        }
    }
}
