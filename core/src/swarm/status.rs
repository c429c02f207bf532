//! What `/health` shows of a Swarm service: desired and running replicas, one
//! short line per task slot (state, node, last error), and the state of the last
//! update. Reading is [`read`]; [`summarize`] is pure, so the rules are tested
//! without an engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::docker::models::{Service, ServiceUpdateStatusStateEnum, Task, TaskState};
use crate::docker::{DockerClient, DockerError};

/// One task slot as `/health` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLine {
    /// The replica's slot (`.1`, `.2`...); for a global service, none.
    pub slot: Option<i64>,
    /// new, pending, starting, running, failed, rejected, shutdown...
    pub state: String,
    pub running: bool,
    /// The node's host name (its id when the engine does not say).
    pub node: String,
    /// Since when the task is in its state.
    pub since: Option<DateTime<Utc>>,
    /// The task's own error, or the last error of the slot's earlier tasks (a
    /// crash-looping replica shows why it keeps dying), with its time.
    pub error: Option<(String, Option<DateTime<Utc>>)>,
}

/// A Swarm service's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmStatus {
    pub service: String,
    /// The image of the service's spec.
    pub image: String,
    /// Replicas asked for (for a global service: its tasks meant to run).
    pub desired: u64,
    pub running: u64,
    /// One per slot, the current task, by slot.
    pub tasks: Vec<TaskLine>,
    /// An update not completed: `updating`, `paused: <message>`, ...
    pub update: Option<String>,
}

impl SwarmStatus {
    /// Why it is not healthy: `(down, text)` pairs, worst first; empty when every
    /// replica asked for runs.
    pub fn problems(&self) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        if self.running < self.desired {
            out.push((
                self.running == 0,
                format!("{} of {} tasks running", self.running, self.desired),
            ));
        }
        if let Some(u) = &self.update {
            out.push((false, format!("update {u}")));
        }
        out
    }
}

pub(crate) fn state_str(s: Option<TaskState>) -> String {
    s.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
}

fn time(v: &Option<String>) -> Option<DateTime<Utc>> {
    v.as_deref().and_then(crate::timefmt::parse_time)
}

/// The error of a task as Swarm words it ("task: non-zero exit (1)", "No such
/// image: ..."), or `None` for a task that ended well.
pub(crate) fn task_error(t: &Task) -> Option<String> {
    let st = t.status.as_ref()?;
    st.err.clone().filter(|e| !e.trim().is_empty()).or_else(|| {
        matches!(st.state, Some(TaskState::FAILED | TaskState::REJECTED))
            .then(|| st.message.clone().unwrap_or_else(|| state_str(st.state)))
    })
}

/// The state of an update that has not completed, as words.
pub(crate) fn update_text(svc: &Service) -> Option<String> {
    let u = svc.update_status.as_ref()?;
    let state = u.state?;
    let msg = u.message.clone().unwrap_or_default();
    match state {
        ServiceUpdateStatusStateEnum::COMPLETED
        | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED => None,
        ServiceUpdateStatusStateEnum::EMPTY => None,
        other if msg.is_empty() => Some(other.to_string()),
        other => Some(format!("{other}: {msg}")),
    }
}

/// Replicas asked for: the spec's count; for a global service, the tasks Swarm
/// means to run.
pub(crate) fn desired(svc: &Service, tasks: &[Task]) -> u64 {
    let replicated = svc
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .map(|r| r.replicas.unwrap_or(1).max(0) as u64);
    replicated.unwrap_or_else(|| {
        tasks
            .iter()
            .filter(|t| t.desired_state == Some(TaskState::RUNNING))
            .count() as u64
    })
}

/// The service and its tasks as `/health` shows them.
pub fn summarize(
    name: &str,
    svc: &Service,
    tasks: &[Task],
    nodes: &std::collections::HashMap<String, String>,
) -> SwarmStatus {
    let image = svc
        .spec
        .as_ref()
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    // Per slot (a global service: per node), newest first.
    let mut by_slot: BTreeMap<(i64, String), Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        let key = match t.slot {
            Some(s) => (s, String::new()),
            None => (0, t.node_id.clone().unwrap_or_default()),
        };
        by_slot.entry(key).or_default().push(t);
    }
    let mut lines = Vec::new();
    let mut running = 0;
    for (_, mut ts) in by_slot {
        ts.sort_by_key(|t| std::cmp::Reverse(t.created_at.clone().unwrap_or_default()));
        // The current task: the newest Swarm wants running; slots it is scaling
        // away (none wanted running) are not shown.
        let Some(cur) = ts
            .iter()
            .find(|t| t.desired_state == Some(TaskState::RUNNING))
        else {
            continue;
        };
        let st = cur.status.clone().unwrap_or_default();
        let is_running = st.state == Some(TaskState::RUNNING);
        if is_running {
            running += 1;
        }
        let error = task_error(cur)
            .map(|e| (e, time(&st.timestamp)))
            .or_else(|| {
                ts.iter().filter(|t| t.id != cur.id).find_map(|t| {
                    let at = t.status.as_ref().and_then(|s| time(&s.timestamp));
                    task_error(t).map(|e| (e, at))
                })
            });
        let node_id = cur.node_id.clone().unwrap_or_default();
        let node = nodes
            .get(&node_id)
            .filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| {
                if node_id.is_empty() {
                    "no node yet".into()
                } else {
                    node_id.chars().take(12).collect()
                }
            });
        lines.push(TaskLine {
            slot: cur.slot,
            state: state_str(st.state),
            running: is_running,
            node,
            since: time(&st.timestamp),
            error,
        });
    }
    SwarmStatus {
        service: name.to_string(),
        image,
        desired: desired(svc, tasks),
        running,
        tasks: lines,
        update: update_text(svc),
    }
}

/// Reads the service, its tasks and the node names.
pub async fn read(engine: &DockerClient, name: &str) -> Result<SwarmStatus, DockerError> {
    let (svc, tasks, nodes) = tokio::join!(
        engine.inspect_service(name),
        engine.service_tasks(name),
        engine.node_names()
    );
    Ok(summarize(name, &svc?, &tasks?, &nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::models::{
        ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskStatus,
    };

    fn task(
        id: &str,
        slot: i64,
        state: TaskState,
        desired: TaskState,
        err: Option<&str>,
        at: &str,
    ) -> Task {
        Task {
            id: Some(id.into()),
            slot: Some(slot),
            node_id: Some("n1".into()),
            created_at: Some(at.into()),
            desired_state: Some(desired),
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(String::from),
                timestamp: Some(at.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn service(replicas: i64) -> Service {
        Service {
            spec: Some(ServiceSpec {
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated {
                        replicas: Some(replicas),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_line_per_slot_with_the_slots_last_error() {
        let nodes = [("n1".to_string(), "node-a".to_string())].into();
        let tasks = vec![
            task(
                "a1",
                1,
                TaskState::RUNNING,
                TaskState::RUNNING,
                None,
                "2026-12-07T10:00:00Z",
            ),
            task(
                "b0",
                2,
                TaskState::FAILED,
                TaskState::SHUTDOWN,
                Some("task: non-zero exit (1)"),
                "2026-12-07T09:00:00Z",
            ),
            task(
                "b1",
                2,
                TaskState::STARTING,
                TaskState::RUNNING,
                None,
                "2026-12-07T10:00:01Z",
            ),
        ];
        let s = summarize("web", &service(2), &tasks, &nodes);
        assert_eq!((s.desired, s.running), (2, 1));
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(s.tasks[0].node, "node-a");
        assert!(s.tasks[0].error.is_none());
        assert_eq!(s.tasks[1].state, "starting");
        assert_eq!(
            s.tasks[1].error.as_ref().map(|e| e.0.as_str()),
            Some("task: non-zero exit (1)")
        );
        assert_eq!(
            s.problems(),
            vec![(false, "1 of 2 tasks running".to_string())]
        );
    }

    #[test]
    fn nothing_running_is_down() {
        let s = summarize("web", &service(2), &[], &Default::default());
        assert_eq!(
            s.problems(),
            vec![(true, "0 of 2 tasks running".to_string())]
        );
    }
}
