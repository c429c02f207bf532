//! Compose replicas: the containers of one compose service, found by the labels
//! `docker compose` puts on them, numbered as compose numbers them.
//!
//! Klaxon never runs `docker compose` itself (it needs neither the compose file
//! nor the CLI): the labels are the whole contract. A container that a rollout
//! keeps aside (`<name>-klaxon-<plan id>`) keeps its labels, so it is told apart
//! by its name and never counted as a replica.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;

use super::{DockerClient, DockerError};

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const NUMBER_LABEL: &str = "com.docker.compose.container-number";

/// One container of a compose service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// `com.docker.compose.container-number` (0 when the label is missing).
    pub number: u32,
    pub name: String,
    pub id: String,
    /// The image as configured (`Config.Image`).
    pub image: String,
    pub running: bool,
}

/// Whether `name` is a container a rollout kept aside (`<name>-klaxon-<digits>`).
pub fn is_kept_name(name: &str) -> bool {
    name.rsplit_once("-klaxon-")
        .is_some_and(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The name a new replica gets, as `docker compose` names them.
pub fn replica_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

impl DockerClient {
    /// Every container (running or not) labelled with the compose project and
    /// service, the ones a rollout kept aside included; ordered by number.
    pub async fn compose_containers(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Vec<Replica>, DockerError> {
        let docker = self.client().await?;
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![
                    format!("{PROJECT_LABEL}={project}"),
                    format!("{SERVICE_LABEL}={service}"),
                ],
            )])),
            ..Default::default()
        };
        let what = format!("compose {project}/{service}");
        let found = self
            .call(&what, self.timeout, docker.list_containers(Some(opts)))
            .await?;
        let mut out: Vec<Replica> = found
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                Replica {
                    number: labels
                        .get(NUMBER_LABEL)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    id: c.id.unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    running: c.state.map(|s| s.to_string()).as_deref() == Some("running"),
                }
            })
            .collect();
        out.sort_by(|a, b| a.number.cmp(&b.number).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// The replicas of a compose service (what rollouts keep aside left out),
    /// ordered by number.
    pub async fn replicas(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Vec<Replica>, DockerError> {
        let mut all = self.compose_containers(project, service).await?;
        all.retain(|r| !is_kept_name(&r.name));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_names_are_told_apart() {
        assert!(is_kept_name("shop-api-2-klaxon-17"));
        assert!(!is_kept_name("shop-api-2"));
        assert!(!is_kept_name("shop-klaxon-api"));
        assert!(!is_kept_name("x-klaxon-"));
        assert_eq!(replica_name("shop", "api", 4), "shop-api-4");
    }
}
