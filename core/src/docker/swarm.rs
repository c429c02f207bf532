//! Docker Swarm services (issue #16): the service, its tasks, the nodes they run
//! on, updating the service's spec, and the service's log (all tasks).
//!
//! Only the engine calls live here, each through the client's one deadline and
//! error mapping; what a service's tasks mean for `/health`, and following an
//! update until it converges, are the domain's (the top-level `swarm` module).
//!
//! A 404 of a service call names the service, not a container: the mapping's
//! [`DockerError::NotFound`] text ("no container named") would mislead, so it is
//! turned into an API error saying "no Swarm service named".

use std::collections::HashMap;

use bollard::models::{Service, ServiceSpec, Task};
use bollard::query_parameters::{
    InspectServiceOptions, ListNodesOptions, ListTasksOptionsBuilder, LogsOptionsBuilder,
    UpdateServiceOptions,
};
use futures::{Stream, StreamExt};

use super::{DockerClient, DockerError, LogFrame, LogRequest};

fn not_a_service(e: DockerError, name: &str) -> DockerError {
    match e {
        DockerError::NotFound(_) => DockerError::Api(format!("no Swarm service named `{name}`")),
        other => other,
    }
}

impl DockerClient {
    /// The service: its spec, its version (needed to update it) and the state of
    /// its last update.
    pub async fn inspect_service(&self, name: &str) -> Result<Service, DockerError> {
        let docker = self.client().await?;
        self.call(
            name,
            self.request_timeout(),
            docker.inspect_service(name, None::<InspectServiceOptions>),
        )
        .await
        .map_err(|e| not_a_service(e, name))
    }

    /// Every task of the service the manager still remembers (running ones and the
    /// recent history Swarm keeps per slot: failed, shut down, rejected).
    pub async fn service_tasks(&self, name: &str) -> Result<Vec<Task>, DockerError> {
        let docker = self.client().await?;
        let mut filters: HashMap<&str, Vec<&str>> = HashMap::new();
        filters.insert("service", vec![name]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        self.call(
            name,
            self.request_timeout(),
            docker.list_tasks(Some(options)),
        )
        .await
        .map_err(|e| not_a_service(e, name))
    }

    /// Node ids to their host names, to show where a task runs. Empty when the
    /// engine cannot list nodes (a worker node): the ids are shown then.
    pub async fn node_names(&self) -> HashMap<String, String> {
        let Ok(docker) = self.client().await else {
            return HashMap::new();
        };
        let nodes = self
            .call(
                "nodes",
                self.request_timeout(),
                docker.list_nodes(None::<ListNodesOptions>),
            )
            .await
            .unwrap_or_default();
        nodes
            .into_iter()
            .filter_map(|n| {
                let id = n.id?;
                let host = n.description.and_then(|d| d.hostname).unwrap_or_default();
                Some((id, host))
            })
            .collect()
    }

    /// Updates the service to `spec` (written against `version`, which the engine
    /// checks so that a concurrent change is refused rather than overwritten). With
    /// `rollback`, Swarm's own rollback to the spec before its last update instead
    /// (`spec` must then be the current one). Returns the engine's warnings.
    pub async fn update_service(
        &self,
        name: &str,
        spec: ServiceSpec,
        version: u64,
        rollback: bool,
    ) -> Result<Vec<String>, DockerError> {
        let docker = self.client().await?;
        let version = i32::try_from(version)
            .map_err(|_| DockerError::Api(format!("service version {version} out of range")))?;
        let options = UpdateServiceOptions {
            version,
            rollback: rollback.then(|| "previous".to_string()),
            ..Default::default()
        };
        self.call(
            name,
            self.request_timeout(),
            docker.update_service(name, spec, options, None),
        )
        .await
        .map(|r| r.warnings.unwrap_or_default())
        .map_err(|e| not_a_service(e, name))
    }

    /// The service's log: the lines of all its tasks, as `docker service logs`.
    /// Frames are the same as a container's ([`LogFrame`]).
    pub async fn service_logs(
        &self,
        name: &str,
        req: &LogRequest,
    ) -> Result<impl Stream<Item = Result<LogFrame, DockerError>> + '_, DockerError> {
        let docker = self.client().await?;
        let mut b = LogsOptionsBuilder::default()
            .follow(req.follow)
            .timestamps(true)
            .stdout(req.stdout)
            .stderr(req.stderr);
        if let Some(s) = req.since {
            b = b.since(s);
        }
        if let Some(u) = req.until {
            b = b.until(u);
        }
        let options = b.tail(&req.tail).build();
        let owned = name.to_string();
        Ok(docker.service_logs(name, Some(options)).map(move |r| {
            r.map(LogFrame::from_output)
                .map_err(|e| not_a_service(self.classify(e, &owned), &owned))
        }))
    }
}
