//! Changing a Swarm service and following the change until it converges.
//!
//! Swarm does the rolling itself (its `UpdateConfig`: parallelism, order, monitor
//! period, failure action); Klaxon changes the spec and then watches, like `docker
//! service update --detach=false`: a change has converged when every replica asked
//! for runs a task of the service's current spec (image and force-update counter),
//! no task of an older spec is still meant to run, and Swarm's update (if this
//! change started one) is no longer in progress. Swarm's health checks gate a
//! task's `running` state (a task with a health check is `starting` until healthy),
//! so "running" here already means "healthy" where the image has a check.
//!
//! A paused update (Swarm's default failure action when a new task fails) ends
//! the wait at once with Swarm's message: waiting out the timeout would only
//! delay the revert.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::docker::models::{Service, ServiceUpdateStatusStateEnum as U, Task, TaskState};
use crate::docker::{DockerClient, DockerError};

use super::status::{desired, task_error};

/// The task spec's parts that make a task "of the current spec".
fn spec_key(image: Option<&String>, force: Option<u64>) -> (String, u64) {
    (image.cloned().unwrap_or_default(), force.unwrap_or(0))
}

fn service_key(svc: &Service) -> (String, u64) {
    let t = svc.spec.as_ref().and_then(|s| s.task_template.as_ref());
    spec_key(
        t.and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.as_ref()),
        t.and_then(|t| t.force_update),
    )
}

fn task_key(t: &Task) -> (String, u64) {
    let s = t.spec.as_ref();
    spec_key(
        s.and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.image.as_ref()),
        s.and_then(|s| s.force_update),
    )
}

/// The service's spec version, which an update must name.
pub(crate) fn version(svc: &Service) -> u64 {
    svc.version.as_ref().and_then(|v| v.index).unwrap_or(0)
}

/// One look at a change in progress.
#[derive(Debug, Clone, PartialEq)]
pub enum Look {
    Converged,
    /// Still going; the text says how far.
    Waiting(String),
    /// Swarm gave up on it (paused, or rolled back by its own failure action).
    Failed(String),
}

/// Judges one look at the service and its tasks (pure, tested without an engine).
/// `since`: when the change was made; an update status older than that is of an
/// earlier change. `reverting`: the change is Swarm's own rollback.
pub fn look(svc: &Service, tasks: &[Task], since: DateTime<Utc>, reverting: bool) -> Look {
    let want = service_key(svc);
    let asked = desired(svc, tasks);
    let current: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .collect();
    let fresh = |t: &Task| {
        t.created_at
            .as_deref()
            .and_then(crate::timefmt::parse_time)
            .is_none_or(|c| c >= since - chrono::Duration::seconds(1))
    };
    let new_running = current
        .iter()
        .filter(|t| task_key(t) == want)
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .count() as u64;
    let old = current.iter().filter(|t| task_key(t) != want).count();
    let status = svc.update_status.as_ref().filter(|u| {
        u.started_at
            .as_deref()
            .and_then(crate::timefmt::parse_time)
            .is_some_and(|s| s >= since - chrono::Duration::seconds(1))
    });
    let message = status.and_then(|u| u.message.clone()).unwrap_or_default();
    let mut in_progress = false;
    if let Some(state) = status.and_then(|u| u.state) {
        match state {
            U::PAUSED | U::ROLLBACK_PAUSED => {
                return Look::Failed(format!("Swarm paused the update: {message}"))
            }
            U::ROLLBACK_STARTED | U::ROLLBACK_COMPLETED if !reverting => {
                return Look::Failed(format!("Swarm rolled the update back: {message}"))
            }
            U::UPDATING | U::ROLLBACK_STARTED => in_progress = true,
            _ => {}
        }
    }
    if new_running == asked && old == 0 && !in_progress {
        return Look::Converged;
    }
    let mut text = format!("{new_running} of {asked} tasks running the new spec");
    if old > 0 {
        text.push_str(&format!(", {old} old"));
    }
    // The newest failure of a task of this change says why it is slow.
    let failed = tasks
        .iter()
        .filter(|t| task_key(t) == want && fresh(t))
        .filter(|t| {
            matches!(
                t.status.as_ref().and_then(|s| s.state),
                Some(TaskState::FAILED | TaskState::REJECTED)
            )
        })
        .max_by_key(|t| t.created_at.clone().unwrap_or_default());
    if let Some(e) = failed.and_then(task_error) {
        text.push_str(&format!("; a task failed: {e}"));
    }
    Look::Waiting(text)
}

/// Follows the change until it converges, at most `timeout`; `on(waited, text)`
/// after every look that did not end it (the progress the message shows).
/// `Err` says what was seen last.
pub async fn follow(
    engine: &DockerClient,
    name: &str,
    since: DateTime<Utc>,
    timeout: Duration,
    reverting: bool,
    on: &mut (dyn FnMut(Duration, &str) + Send),
) -> Result<Duration, String> {
    let begin = Instant::now();
    let mut last: String;
    loop {
        let (svc, tasks) = tokio::join!(engine.inspect_service(name), engine.service_tasks(name));
        match (svc, tasks) {
            (Ok(svc), Ok(tasks)) => match look(&svc, &tasks, since, reverting) {
                Look::Converged => return Ok(begin.elapsed()),
                Look::Failed(why) => return Err(why),
                Look::Waiting(text) => last = text,
            },
            (Err(e), _) | (_, Err(e)) => last = e.to_string(),
        }
        let waited = begin.elapsed();
        if waited >= timeout {
            return Err(format!(
                "did not converge within {} s ({last})",
                timeout.as_secs()
            ));
        }
        on(waited, &last);
        tokio::time::sleep(Duration::from_millis(250).min(timeout - waited)).await;
    }
}

/// The change a member asked for, applied to the service's current spec.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Image(&'a str),
    /// A forced rolling update: every task replaced, same spec.
    Restart,
    Replicas(u64),
}

/// Applies `change` to the service as it is now; returns the service as read
/// before the change (its spec is what a revert puts back) and when it was made.
pub async fn apply(
    engine: &DockerClient,
    name: &str,
    change: Change<'_>,
) -> Result<(Service, DateTime<Utc>), DockerError> {
    let before = engine.inspect_service(name).await?;
    let mut spec = before.spec.clone().unwrap_or_default();
    match change {
        Change::Image(image) => {
            let t = spec.task_template.get_or_insert_with(Default::default);
            t.container_spec.get_or_insert_with(Default::default).image = Some(image.to_string());
        }
        Change::Restart => {
            let t = spec.task_template.get_or_insert_with(Default::default);
            t.force_update = Some(t.force_update.unwrap_or(0) + 1);
        }
        Change::Replicas(n) => {
            let replicated = spec
                .mode
                .as_mut()
                .and_then(|m| m.replicated.as_mut())
                .ok_or_else(|| {
                    DockerError::Api(format!(
                        "`{name}` is a global Swarm service: it runs one task per node and cannot be scaled"
                    ))
                })?;
            replicated.replicas = Some(n as i64);
        }
    }
    let at = Utc::now();
    let warnings = engine
        .update_service(name, spec, version(&before), false)
        .await?;
    for w in warnings {
        tracing::info!(service = name, warning = %w, "Swarm update warning");
    }
    Ok((before, at))
}

/// Puts the spec before a change back: Swarm's own rollback (`docker service
/// rollback`, to the spec before its last update), falling back to writing the
/// saved spec when the engine refuses (an older engine, or a change in between).
pub async fn revert(
    engine: &DockerClient,
    name: &str,
    before: &Service,
) -> Result<DateTime<Utc>, DockerError> {
    let now = engine.inspect_service(name).await?;
    let at = Utc::now();
    let swarm = engine
        .update_service(
            name,
            now.spec.clone().unwrap_or_default(),
            version(&now),
            true,
        )
        .await;
    match swarm {
        Ok(_) => Ok(at),
        Err(e) => {
            tracing::warn!(service = name, error = %e, "Swarm rollback refused; writing the previous spec");
            let now = engine.inspect_service(name).await?;
            let at = Utc::now();
            engine
                .update_service(
                    name,
                    before.spec.clone().unwrap_or_default(),
                    version(&now),
                    false,
                )
                .await?;
            Ok(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::models::{
        ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceUpdateStatus, TaskSpec,
        TaskSpecContainerSpec, TaskStatus,
    };

    fn spec(image: &str) -> TaskSpec {
        TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn svc(image: &str, replicas: i64, update: Option<(U, &str)>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                task_template: Some(spec(image)),
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated {
                        replicas: Some(replicas),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_status: update.map(|(s, at)| ServiceUpdateStatus {
                state: Some(s),
                started_at: Some(at.into()),
                message: Some("update paused due to failure or early termination of task x".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(image: &str, state: TaskState, desired: TaskState) -> Task {
        Task {
            spec: Some(spec(image)),
            created_at: Some("2026-12-07T10:00:01Z".into()),
            desired_state: Some(desired),
            status: Some(TaskStatus {
                state: Some(state),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converges_when_every_replica_runs_the_new_spec() {
        let since = crate::timefmt::parse_time("2026-12-07T10:00:00Z").unwrap_or_default();
        let run = TaskState::RUNNING;
        let tasks = vec![task("app:v2", run, run), task("app:v1", run, run)];
        let s = svc("app:v2", 2, Some((U::UPDATING, "2026-12-07T10:00:00Z")));
        assert_eq!(
            look(&s, &tasks, since, false),
            Look::Waiting("1 of 2 tasks running the new spec, 1 old".into())
        );
        let tasks = vec![
            task("app:v2", run, run),
            task("app:v2", run, run),
            task("app:v1", TaskState::SHUTDOWN, TaskState::SHUTDOWN),
        ];
        let done = svc("app:v2", 2, Some((U::COMPLETED, "2026-12-07T10:00:00Z")));
        assert_eq!(look(&done, &tasks, since, false), Look::Converged);
        // An update status of an earlier change does not count.
        let stale = svc("app:v2", 2, Some((U::PAUSED, "2026-12-01T10:00:00Z")));
        assert_eq!(look(&stale, &tasks, since, false), Look::Converged);
    }

    #[test]
    fn a_paused_update_fails_at_once() {
        let since = crate::timefmt::parse_time("2026-12-07T10:00:00Z").unwrap_or_default();
        let s = svc("app:v3", 2, Some((U::PAUSED, "2026-12-07T10:00:00Z")));
        match look(&s, &[], since, false) {
            Look::Failed(why) => assert!(why.starts_with("Swarm paused the update"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
