//! Swarm task failures as alerts, as container deaths are ([`super::events`]).
//!
//! Why polling the task list rather than the event stream: a task can fail without
//! a container ever dying. A *rejected* task (an image the node does not have, a
//! mount that does not exist, no node satisfying the constraints) never gets a
//! container, so no `die` event exists for it, and the engine's service events
//! say only that the service was updated, not which task failed or why. The task
//! list has all of it: state `failed` or `rejected`, the error ("task: non-zero exit
//! (1)", "No such image: ..."), the slot and the node. Swarm keeps a few past tasks
//! per slot, so a failure between two polls is still listed at the next one.
//!
//! Deduplicated per task: each failed task id raises the alert once (a restarting
//! replica makes a new task per attempt, so every new failure is one more firing
//! of `SwarmTaskFailed`, which the alert pipeline groups by its fingerprint per
//! service). It resolves when every replica asked for runs again. Failures during
//! Klaxon's own `/rollback` or `/restart` of the service are that operation's to
//! report (and to revert), not alerts, as for containers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::alert::{Alert, AlertStatus, Source};
use crate::app::App;
use crate::docker::models::{Task, TaskState};
use crate::events::{AlertChange, Event};

/// How often the task lists are read.
pub const POLL: Duration = Duration::from_secs(3);

/// The alert's name.
pub const ALERT: &str = "SwarmTaskFailed";

/// A failed or rejected task: its id and the alert text.
fn failure(service: &str, swarm: &str, t: &Task) -> Option<(String, String)> {
    let st = t.status.as_ref()?;
    if !matches!(st.state, Some(TaskState::FAILED | TaskState::REJECTED)) {
        return None;
    }
    let id = t.id.clone()?;
    let what = crate::swarm::status::state_str(st.state);
    let slot = t.slot.map(|s| format!(".{s}")).unwrap_or_default();
    let why = crate::swarm::status::task_error(t).unwrap_or_else(|| what.clone());
    Some((
        id,
        format!("{service}: Swarm task {swarm}{slot} {what}: {why}"),
    ))
}

/// Per service: the failed task ids already handled, and whether the alert fires.
#[derive(Default)]
struct Seen {
    tasks: HashSet<String>,
    primed: bool,
    firing: bool,
}

/// What one look at a service's tasks raises: new failures fire (once per task);
/// a service with every replica running again resolves a firing alert. The first
/// look only learns the history (failures from before Klaxon watched are old news).
fn judge(
    service: &str,
    swarm: &str,
    tasks: &[Task],
    desired: u64,
    seen: &mut Seen,
    quiet: bool,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for t in tasks {
        let Some((id, text)) = failure(service, swarm, t) else {
            continue;
        };
        if seen.tasks.insert(id) && seen.primed && !quiet {
            seen.firing = true;
            out.push(Alert::own(
                Source::Docker,
                service,
                ALERT,
                AlertStatus::Firing,
                "error",
                text,
            ));
        }
    }
    // Swarm forgets old tasks: keep only ids it still lists.
    let listed: HashSet<&str> = tasks.iter().filter_map(|t| t.id.as_deref()).collect();
    seen.tasks.retain(|id| listed.contains(id.as_str()));
    seen.primed = true;
    let running = tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .count() as u64;
    if seen.firing && out.is_empty() && running >= desired && desired > 0 {
        seen.firing = false;
        out.push(Alert::own(
            Source::Docker,
            service,
            ALERT,
            AlertStatus::Resolved,
            "error",
            format!("{service}: all {desired} Swarm tasks run again"),
        ));
    }
    out
}

/// Polls the Swarm services' tasks until `stop`, raising [`ALERT`]s. Returns at
/// once (after `stop`) when no service is a Swarm service.
pub async fn watch(app: &App, stop: impl std::future::Future<Output = ()>) {
    let services: Vec<_> = app
        .services
        .iter()
        .filter_map(|s| Some((s, s.swarm_service.clone()?)))
        .collect();
    tokio::pin!(stop);
    if services.is_empty() {
        return stop.await;
    }
    info!(services = services.len(), "following Swarm tasks");
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        for (svc, swarm) in &services {
            let engine = crate::swarm::engine(app, svc);
            let (service, tasks) =
                tokio::join!(engine.inspect_service(swarm), engine.service_tasks(swarm));
            let (service, tasks) = match (service, tasks) {
                (Ok(s), Ok(t)) => (s, t),
                (Err(e), _) | (_, Err(e)) => {
                    // A service that does not exist (yet) has no history to learn:
                    // its first failures, once it is created, are news.
                    if matches!(&e, crate::docker::DockerError::Api(m) if m.starts_with("no Swarm service named"))
                    {
                        seen.entry(svc.name.clone()).or_default().primed = true;
                    }
                    debug!(error = %e, service = %svc.name, "Swarm tasks not read");
                    continue;
                }
            };
            let desired = crate::swarm::status::desired(&service, &tasks);
            let quiet = app.ops_locks.holder(&svc.name).is_some();
            let alerts = judge(
                &svc.name,
                swarm,
                &tasks,
                desired,
                seen.entry(svc.name.clone()).or_default(),
                quiet,
            );
            if alerts.is_empty() {
                continue;
            }
            let now = app.clock.now_ms();
            match crate::alerts::intake::ingest(
                &app.store,
                &app.alerts,
                app.alerts_channel,
                &alerts,
                now,
            )
            .await
            {
                Ok(done) => {
                    let changed = AlertChange::picked(&alerts, &done.changed);
                    app.publish(Event::AlertsChanged(changed)).await;
                }
                Err(e) => warn!(error = %e, service = %svc.name, "Swarm task alert not stored"),
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::models::TaskStatus;

    fn task(id: &str, state: TaskState, desired: TaskState) -> Task {
        Task {
            id: Some(id.into()),
            slot: Some(1),
            desired_state: Some(desired),
            status: Some(TaskStatus {
                state: Some(state),
                err: Some("task: non-zero exit (3)".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_alert_per_failed_task_then_resolved() {
        let mut seen = Seen::default();
        let old = task("t0", TaskState::FAILED, TaskState::SHUTDOWN);
        // History before watching: nothing.
        assert!(judge(
            "web",
            "web_sw",
            std::slice::from_ref(&old),
            1,
            &mut seen,
            false
        )
        .is_empty());
        let failed = task("t1", TaskState::FAILED, TaskState::SHUTDOWN);
        let a = judge(
            "web",
            "web_sw",
            &[old.clone(), failed.clone()],
            1,
            &mut seen,
            false,
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].status, AlertStatus::Firing);
        assert_eq!(
            a[0].summary(),
            "web: Swarm task web_sw.1 failed: task: non-zero exit (3)"
        );
        // The same task again: no second alert.
        assert!(judge(
            "web",
            "web_sw",
            &[old.clone(), failed.clone()],
            1,
            &mut seen,
            false
        )
        .is_empty());
        let up = task("t2", TaskState::RUNNING, TaskState::RUNNING);
        let r = judge("web", "web_sw", &[failed, up], 1, &mut seen, false);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, AlertStatus::Resolved);
    }

    #[test]
    fn quiet_while_klaxon_itself_changes_the_service() {
        let mut seen = Seen::default();
        judge("web", "w", &[], 1, &mut seen, false);
        let failed = task("t1", TaskState::REJECTED, TaskState::SHUTDOWN);
        assert!(judge(
            "web",
            "w",
            std::slice::from_ref(&failed),
            1,
            &mut seen,
            true
        )
        .is_empty());
        assert!(judge("web", "w", &[failed], 1, &mut seen, false).is_empty());
    }
}
