//! The engine's container events (`docker events`), for the alert watcher.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures::{Stream, StreamExt};

use super::{DockerClient, DockerError};

/// One container event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerEvent {
    /// `die`, `oom`, `start`, `health_status: unhealthy`...
    pub action: Option<String>,
    /// Unix seconds.
    pub time: Option<i64>,
    /// Unix nanoseconds, to tell events of the same second apart.
    pub time_nano: Option<i64>,
    /// The container's attributes: `name`, `exitCode`, its labels...
    pub attributes: HashMap<String, String>,
}

impl DockerClient {
    /// Events of the named containers (every container when `containers` is
    /// empty) with one of `actions`, from `since` (unix seconds) on. The stream
    /// ends or fails when the engine goes away.
    pub async fn container_events(
        &self,
        containers: Vec<String>,
        actions: &[&str],
        since: Option<i64>,
    ) -> Result<impl Stream<Item = Result<ContainerEvent, DockerError>> + '_, DockerError> {
        let docker = self.client().await?;
        let mut filters: HashMap<&str, Vec<String>> = HashMap::new();
        filters.insert("type", vec!["container".into()]);
        if !containers.is_empty() {
            filters.insert("container", containers);
        }
        filters.insert("event", actions.iter().map(|s| s.to_string()).collect());
        let mut options = EventsOptionsBuilder::new().filters(&filters);
        if let Some(s) = since {
            options = options.since(&s.to_string());
        }
        Ok(docker.events(Some(options.build())).map(move |r| {
            r.map(|ev| ContainerEvent {
                action: ev.action,
                time: ev.time,
                time_nano: ev.time_nano,
                attributes: ev.actor.and_then(|a| a.attributes).unwrap_or_default(),
            })
            .map_err(|e| self.classify(e, "events"))
        }))
    }
}
