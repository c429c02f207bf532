//! `/health` of a compose service: every replica's container judged alone, then
//! one line a phone shows whole (`2/3 healthy · worst: #3 ...`), and the worst
//! replica's container standing for the service.

use futures::future::join_all;

use crate::docker::{ContainerStatus, DockerClient, DockerError};
use crate::settings::services::Thresholds;

use super::{judge, State};

/// The replicas' summary line and the worst replica's container (`None` when the
/// service has no replica at all).
pub(super) async fn check(
    docker: &DockerClient,
    project: &str,
    service: &str,
    t: &Thresholds,
) -> (Option<Result<ContainerStatus, DockerError>>, String) {
    let replicas = match docker.replicas(project, service).await {
        Ok(r) => r,
        Err(e) => return (Some(Err(e)), String::new()),
    };
    let statuses = join_all(replicas.iter().map(|r| docker.status(&r.name))).await;
    let numbered: Vec<(u32, Result<ContainerStatus, DockerError>)> =
        replicas.iter().map(|r| r.number).zip(statuses).collect();
    summarize(&format!("{project}/{service}"), numbered, t)
}

/// The rules, pure: how many replicas are healthy, and which is the worst (the
/// first of the worst state, by number).
pub(super) fn summarize(
    compose: &str,
    replicas: Vec<(u32, Result<ContainerStatus, DockerError>)>,
    t: &Thresholds,
) -> (Option<Result<ContainerStatus, DockerError>>, String) {
    if replicas.is_empty() {
        return (
            Some(Err(DockerError::NotFound(format!(
                "any replica of compose {compose}"
            )))),
            format!("0 replicas of compose `{compose}`"),
        );
    }
    let total = replicas.len();
    let mut healthy = 0;
    let mut worst: Option<(State, u32, String, Result<ContainerStatus, DockerError>)> = None;
    for (number, status) in replicas {
        let judged = judge("", Some(status.clone()), None, t);
        if judged.state == State::Healthy {
            healthy += 1;
        }
        let why = judged.problems.first().cloned().unwrap_or_default();
        if worst.as_ref().is_none_or(|(s, ..)| judged.state > *s) {
            worst = Some((judged.state, number, why, status));
        }
    }
    let mut line = format!("{healthy}/{total} healthy");
    let Some((state, number, why, status)) = worst else {
        return (None, line);
    };
    if state != State::Healthy {
        let name = status
            .as_ref()
            .map(|c| format!(" `{}`", c.name))
            .unwrap_or_default();
        line.push_str(&format!(" · worst: #{number}{name}"));
        if !why.is_empty() {
            line.push_str(&format!(" ({why})"));
        }
    }
    (Some(status), line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::HealthState;

    fn replica(name: &str, health: HealthState) -> Result<ContainerStatus, DockerError> {
        Ok(ContainerStatus {
            name: name.into(),
            image: "app:v1".into(),
            state: "running".into(),
            running: true,
            health: Some(health),
            restart_count: 0,
            exit_code: None,
            oom_killed: false,
            started_at: None,
            finished_at: None,
            cpu_percent: None,
            memory_percent: None,
            memory_bytes: None,
        })
    }

    #[test]
    fn counts_healthy_replicas_and_names_the_worst() {
        let t = Thresholds::default();
        let (worst, line) = summarize(
            "shop/api",
            vec![
                (1, replica("shop-api-1", HealthState::Healthy)),
                (2, replica("shop-api-2", HealthState::Starting)),
                (3, replica("shop-api-3", HealthState::Unhealthy)),
            ],
            &t,
        );
        assert_eq!(
            line,
            "1/3 healthy · worst: #3 `shop-api-3` (Docker health check failing)"
        );
        assert_eq!(worst.unwrap().unwrap().name, "shop-api-3");
        let (_, line) = summarize(
            "shop/api",
            vec![(1, replica("shop-api-1", HealthState::Healthy))],
            &t,
        );
        assert_eq!(line, "1/1 healthy");
        let (worst, line) = summarize("shop/api", Vec::new(), &t);
        assert!(matches!(worst, Some(Err(DockerError::NotFound(_)))));
        assert_eq!(line, "0 replicas of compose `shop/api`");
    }
}
