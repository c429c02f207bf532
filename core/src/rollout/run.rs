//! Running a confirmed operation: the state machine of a rollback (stop, keep the
//! old container, create, start, wait for health, remove or revert) and of a
//! restart, each step shown, written to the deployment history and audited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::actor::Actor;
use crate::app::App;
use crate::audit::{AuditEntry, Outcome};
use crate::docker::images::{date_of, short_id};
use crate::docker::models::{ContainerInspectResponse, HealthStatusEnum, RestartPolicyNameEnum};
use crate::docker::{DockerClient, DockerError};
use crate::ops_locks::{Action, Confirmed, HealthWait, Holder, LockGuard, Plan};
use crate::store::deployments::{self, NewDeployment, Status};

use super::model::{Phase, Progress};
use super::spec::{extra_networks, recreate_body, state_text};

/// Starts a confirmed operation in its own task; progress arrives on the receiver,
/// which ends with a final phase (or closes, if the task was aborted).
pub fn start(app: Arc<App>, confirmed: Confirmed) -> watch::Receiver<Progress> {
    let (pending, guard) = confirmed.into_parts();
    let initial = Progress {
        phase: Phase::Confirmed,
        done: Vec::new(),
        elapsed: Duration::ZERO,
        health: pending.plan.health.clone(),
        last_check: None,
    };
    let (tx, rx) = watch::channel(initial);
    let abort = guard.abort_slot();
    let by = pending
        .approvals
        .last()
        .cloned()
        .unwrap_or_else(|| pending.requested_by.clone());
    let mut run = Run {
        app,
        plan: pending.plan,
        requested_by: pending.requested_by,
        approvals: pending.approvals,
        by,
        row: None,
        started: Instant::now(),
        progress: tx,
        _guard: guard,
    };
    let task = tokio::spawn(async move { run.run().await });
    abort.set(task.abort_handle());
    rx
}

pub(super) struct Run {
    pub(super) app: Arc<App>,
    pub(super) plan: Plan,
    requested_by: Actor,
    approvals: Vec<Actor>,
    /// Who confirmed last: the audit rows of the steps are theirs.
    by: Actor,
    pub(super) row: Option<i64>,
    started: Instant,
    progress: watch::Sender<Progress>,
    _guard: LockGuard,
}

/// How an operation ended.
pub(super) struct End {
    pub(super) status: Status,
    pub(super) phase: Phase,
}

impl Run {
    pub(super) fn phase(&self, phase: Phase) {
        let elapsed = self.started.elapsed();
        self.progress.send_modify(|p| {
            p.phase = phase;
            p.elapsed = elapsed;
        });
    }

    pub(super) fn waiting(&self, waited: Duration, last: Option<String>) {
        let elapsed = self.started.elapsed();
        self.progress.send_modify(|p| {
            p.phase = Phase::WaitingHealth { waited };
            p.elapsed = elapsed;
            p.last_check = last;
        });
    }

    /// A step done: shown, written to the history and to the audit log.
    pub(super) async fn step(&self, step: &str, line: String) {
        info!(service = %self.plan.service, action = self.plan.action.as_str(), step, "{line}");
        let elapsed = self.started.elapsed();
        self.progress.send_modify(|p| {
            p.done.push(line.clone());
            p.elapsed = elapsed;
        });
        self.record(step, &line, Outcome::Ok).await;
    }

    async fn record(&self, step: &str, detail: &str, outcome: Outcome) {
        let now = Utc::now().timestamp_millis();
        if let Some(id) = self.row {
            if let Err(e) = deployments::add_step(&self.app.store, id, now, step, detail).await {
                warn!(error = %e, deployment = id, step, "deployment step not recorded");
            }
        }
        self.app
            .audit(AuditEntry {
                at_ms: now,
                guild_id: self.by.guild_id,
                channel_id: self.by.channel_id,
                user_id: self.by.user_id,
                user_name: self.by.name.clone(),
                command: self.plan.action.as_str().to_string(),
                arguments: self.plan.arguments(),
                outcome,
                detail: format!("{step}: {detail}"),
                duration_ms: self.started.elapsed().as_millis() as i64,
            })
            .await;
    }

    async fn run(&mut self) {
        let end = match self.open_row().await {
            Err(phase) => End {
                status: Status::Failed,
                phase,
            },
            Ok(()) => {
                let app = Arc::clone(&self.app);
                match engine_of(&app, &self.plan.service).await {
                    Err(reason) => End {
                        status: Status::Failed,
                        phase: Phase::Failed {
                            reason: format!("{reason}; nothing was changed."),
                        },
                    },
                    // A Swarm service is updated, not replaced (`super::swarm`);
                    // replicas of a compose service go one at a time (`rolling`),
                    // and `/scale` adds or removes them (`scale`).
                    Ok(engine) => match (
                        self.plan.action,
                        self.swarm_service(),
                        self.plan.replicas.is_empty(),
                    ) {
                        (Action::Rollback, Some(sw), _) => self.swarm_rollback(&sw).await,
                        (Action::Restart, Some(sw), _) => self.swarm_restart(&sw).await,
                        (Action::Scale, Some(sw), _) => self.swarm_scale(&sw).await,
                        (Action::Scale, None, _) => self.scale(engine).await,
                        (Action::Rollback, None, false) => self.rolling_rollback(engine).await,
                        (Action::Restart, None, false) => self.rolling_restart(engine).await,
                        (Action::Rollback, None, true) => self.rollback(engine).await,
                        (Action::Restart, None, true) => self.restart(engine).await,
                    },
                }
            }
        };
        let (outcome, detail) = match &end.phase {
            Phase::Done => (
                Outcome::Ok,
                format!("done in {} s", self.started.elapsed().as_secs()),
            ),
            Phase::Reverted { reason } => (Outcome::Failed, reason.clone()),
            Phase::Failed { reason } => (Outcome::Failed, reason.clone()),
            other => (Outcome::Failed, format!("{other:?}")),
        };
        if let Some(id) = self.row {
            let now = Utc::now().timestamp_millis();
            if let Err(e) = deployments::finish(&self.app.store, id, end.status, now, &detail).await
            {
                error!(error = %e, deployment = id, "deployment row not closed; the next start-up will check the service");
            }
        }
        self.record(end.status.as_str(), &detail, outcome).await;
        self.phase(end.phase);
    }

    /// The durable half of the lock: refused while another replica's operation on
    /// the same service is in progress.
    async fn open_row(&mut self) -> Result<(), Phase> {
        let target = self.plan.target.as_ref().unwrap_or(&self.plan.current);
        let row = NewDeployment {
            service: self.plan.service.clone(),
            container: self.plan.container.clone(),
            action: self.plan.action.as_str().to_string(),
            from_image: self.plan.current.reference.clone(),
            from_image_id: self.plan.current.id.clone(),
            to_image: target.reference.clone(),
            to_image_id: target.id.clone(),
            requested_by: self.requested_by.user_id,
            requested_by_name: self.requested_by.name.clone(),
            approved_by: self
                .approvals
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            started_ms: Utc::now().timestamp_millis(),
        };
        match deployments::insert(&self.app.store, &row).await {
            Ok(id) => {
                self.row = Some(id);
                let approvers = row.approved_by.clone();
                self.record(
                    "confirmed",
                    &format!("confirmed by {approvers}"),
                    Outcome::Ok,
                )
                .await;
                Ok(())
            }
            Err(e) => {
                let holder = deployments::in_progress(&self.app.store, Some(&self.plan.service))
                    .await
                    .ok()
                    .and_then(|rows| rows.first().map(Holder::of_row));
                Err(Phase::Failed {
                    reason: match holder {
                        Some(h) => format!("{h} Nothing was changed."),
                        None => {
                            error!(error = %e, "deployment row not written");
                            "Klaxon could not write the deployment history, so it changed nothing."
                                .into()
                        }
                    },
                })
            }
        }
    }

    pub(super) fn stop_secs(&self, info: &ContainerInspectResponse) -> u64 {
        info.config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(self.app.rollout.stop_timeout_secs)
    }

    async fn rollback(&mut self, engine: &DockerClient) -> End {
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        let Some(target) = self.plan.target.clone() else {
            return failed("no target image; nothing was changed.".into());
        };
        let name = self.plan.container.clone();
        let kept = self.plan.kept_name();
        self.phase(Phase::Stopping);
        let info = match engine.inspect(&name).await {
            Ok(i) => i,
            Err(e) => return failed(format!("{e}; nothing was changed.")),
        };
        if info.image.as_deref() != Some(self.plan.current.id.as_str()) {
            return failed(format!(
                "`{name}` changed since the plan was shown (it now runs {}); nothing was changed. Run the command again.",
                short_id(info.image.as_deref().unwrap_or("?"))
            ));
        }
        // The old image's defaults, to tell them from what the container set itself.
        let old_image = engine.inspect_image(&self.plan.current.id).await.ok();
        if old_image.is_none() {
            warn!(image = %self.plan.current.id, "old image gone; copying the container's whole config");
        }
        let body = recreate_body(
            &info,
            old_image.as_ref().and_then(|i| i.config.as_ref()),
            &target.reference,
        );
        let networks = extra_networks(&info);

        if let Err(e) = engine.stop(&name, self.stop_secs(&info)).await {
            // A stop that failed half way must not leave the service down.
            let _ = engine.start(&name).await;
            return failed(format!(
                "could not stop `{name}`: {e}; it was left running."
            ));
        }
        self.step(
            "stopped",
            format!("Stopped `{name}` ({})", self.plan.current.reference),
        )
        .await;
        if let Some(id) = self.row {
            if let Err(e) = deployments::set_kept(&self.app.store, id, &kept).await {
                warn!(error = %e, "kept name not recorded");
            }
        }
        if let Err(e) = engine.rename(&name, &kept).await {
            let restarted = engine.start(&name).await;
            return failed(format!(
                "could not rename `{name}` out of the way: {e}; {}",
                match restarted {
                    Ok(()) => "it was started again.".to_string(),
                    Err(e2) => format!("starting it again failed too ({e2}): `{name}` is stopped!"),
                }
            ));
        }
        self.step("kept", format!("Kept the old container as `{kept}`"))
            .await;

        self.phase(Phase::Starting);
        let started = async {
            engine.create(&name, body).await?;
            for (network, endpoint) in networks {
                engine.connect(&network, &name, endpoint).await?;
            }
            engine.start(&name).await
        }
        .await;
        if let Err(e) = started {
            return self
                .revert(
                    engine,
                    &name,
                    &kept,
                    format!("`{}` did not start: {e}", target.reference),
                )
                .await;
        }
        self.step(
            "started",
            format!("Started `{name}` on `{}`", target.reference),
        )
        .await;

        match self.wait_healthy(engine, &name, None).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Healthy after {} s ({})",
                        waited.as_secs(),
                        self.plan.health.describe()
                    ),
                )
                .await;
                match engine.remove(&kept, false).await {
                    Ok(()) => {
                        self.step("removed", format!("Removed the old container `{kept}`"))
                            .await
                    }
                    Err(e) => {
                        warn!(error = %e, kept, "old container not removed");
                        self.step(
                            "kept",
                            format!("Could not remove the old container `{kept}` ({e}); remove it by hand"),
                        )
                        .await
                    }
                }
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => {
                let reason = format!("`{}` {reason}", target.reference);
                self.revert(engine, &name, &kept, reason).await
            }
        }
    }

    /// Puts the original back: new container removed, old one renamed back and started.
    async fn revert(
        &mut self,
        engine: &DockerClient,
        name: &str,
        kept: &str,
        reason: String,
    ) -> End {
        warn!(service = %self.plan.service, %reason, "reverting");
        self.phase(Phase::Reverting {
            reason: reason.clone(),
        });
        let result = async {
            engine.remove(name, true).await?;
            self.step("removed", format!("Removed the new `{name}`"))
                .await;
            engine.rename(kept, name).await?;
            engine.start(name).await?;
            Ok::<(), DockerError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.step(
                    "restored",
                    format!(
                        "Started the original `{name}` ({}) again",
                        self.plan.current.reference
                    ),
                )
                .await;
                End {
                    status: Status::Reverted,
                    phase: Phase::Reverted { reason },
                }
            }
            Err(e) => {
                error!(service = %self.plan.service, error = %e, kept, "revert failed");
                End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!(
                            "{reason}, and putting the original back failed: {e}. The old container is kept as `{kept}`: rename it to `{name}` and start it."
                        ),
                    },
                }
            }
        }
    }

    async fn restart(&mut self, engine: &DockerClient) -> End {
        let name = self.plan.container.clone();
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        self.phase(Phase::Restarting);
        let info = match engine.inspect(&name).await {
            Ok(i) => i,
            Err(e) => return failed(format!("{e}; nothing was changed.")),
        };
        let before = info.state.as_ref().and_then(|s| s.started_at.clone());
        if let Err(e) = engine.restart(&name, self.stop_secs(&info)).await {
            let state = engine
                .inspect(&name)
                .await
                .map(|i| state_text(&i))
                .unwrap_or_else(|_| "unknown".into());
            return failed(format!(
                "`docker restart {name}` failed: {e}; the container is {state} now."
            ));
        }
        self.step("restarted", format!("Restarted `{name}`")).await;
        match self.wait_healthy(engine, &name, before).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Healthy after {} s ({})",
                        waited.as_secs(),
                        self.plan.health.describe()
                    ),
                )
                .await;
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => failed(format!(
                "`{name}` restarted but {reason}. It was left as it is."
            )),
        }
    }

    /// Waits until the container counts as healthy (see [`HealthWait`]), at most the
    /// health timeout. `not_started_at` is the start time before a restart: only a
    /// health result of the new run counts. The error says what was seen last.
    pub(super) async fn wait_healthy(
        &self,
        engine: &DockerClient,
        name: &str,
        not_started_at: Option<String>,
    ) -> Result<Duration, String> {
        let begin = Instant::now();
        let timeout = self.plan.health_timeout;
        self.waiting(Duration::ZERO, None);
        // What the last look at the container saw, for the progress and the error.
        let mut last: String;
        // For `Running`: since when this run of the container was seen running.
        let mut running_since: Option<(String, Instant)> = None;
        loop {
            let waited = begin.elapsed();
            match engine.inspect(name).await {
                Err(DockerError::NotFound(_)) => return Err("disappeared".into()),
                Err(e) => last = e.to_string(),
                Ok(info) => {
                    let state = info.state.clone().unwrap_or_default();
                    let started_at = state.started_at.clone().unwrap_or_default();
                    let fresh = not_started_at.as_deref() != Some(started_at.as_str());
                    if !state.running.unwrap_or(false) {
                        let restarts = info
                            .host_config
                            .as_ref()
                            .and_then(|h| h.restart_policy.as_ref())
                            .and_then(|p| p.name)
                            .is_some_and(|n| {
                                !matches!(
                                    n,
                                    RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY
                                )
                            });
                        let status = state_text(&info);
                        let exited = matches!(status.as_str(), "exited" | "dead");
                        if exited && fresh && !restarts {
                            return Err(format!(
                                "exited with code {} instead of becoming healthy",
                                state.exit_code.unwrap_or(-1)
                            ));
                        }
                        last = format!("container {status}");
                        running_since = None;
                    } else if fresh {
                        match &self.plan.health {
                            HealthWait::Docker => {
                                let health = state.health.clone().unwrap_or_default();
                                let status = health
                                    .status
                                    .map(|s| s.to_string())
                                    .unwrap_or_else(|| "none".into());
                                // Only a check that ran in this run of the container counts.
                                let started = crate::timefmt::parse_time(&started_at);
                                let checked = health
                                    .log
                                    .as_ref()
                                    .and_then(|l| l.last())
                                    .and_then(|r| r.start.as_ref().and_then(date_of));
                                let current = match (started, checked) {
                                    (Some(s), Some(c)) => c >= s,
                                    _ => true,
                                };
                                let output = health
                                    .log
                                    .as_ref()
                                    .and_then(|l| l.last())
                                    .and_then(|r| r.output.clone())
                                    .map(|o| o.trim().to_string())
                                    .filter(|o| !o.is_empty());
                                last = match output {
                                    Some(o) => format!(
                                        "health: {status}, check said {}",
                                        crate::chat::truncate(&o, 120)
                                    ),
                                    None => format!("health: {status}"),
                                };
                                if health.status == Some(HealthStatusEnum::HEALTHY) && current {
                                    return Ok(begin.elapsed());
                                }
                            }
                            HealthWait::Http(url) => {
                                let left = timeout
                                    .saturating_sub(waited)
                                    .max(Duration::from_millis(100));
                                let probe_timeout =
                                    Duration::from_millis(self.app.thresholds.probe_timeout_ms)
                                        .min(left);
                                let result = self.app.prober.probe(url, probe_timeout).await;
                                if result.ok() {
                                    return Ok(begin.elapsed());
                                }
                                last = match (result.status, result.error) {
                                    (_, Some(e)) => format!("HTTP check: {e}"),
                                    (Some(s), None) => format!("HTTP check answered {s}"),
                                    (None, None) => "HTTP check: no answer".into(),
                                };
                            }
                            HealthWait::Running(needed) => {
                                let since = match &running_since {
                                    Some((s, at)) if *s == started_at => *at,
                                    _ => {
                                        let now = Instant::now();
                                        running_since = Some((started_at.clone(), now));
                                        now
                                    }
                                };
                                let up = since.elapsed();
                                if up >= *needed {
                                    return Ok(begin.elapsed());
                                }
                                last = format!("running for {} s", up.as_secs());
                            }
                            // Swarm services are followed by `super::swarm`, never here.
                            HealthWait::Swarm => {
                                return Err("is a Swarm service, not a container".into())
                            }
                        }
                    } else {
                        last = "not restarted yet".into();
                    }
                }
            }
            let waited = begin.elapsed();
            if waited >= timeout {
                return Err(format!(
                    "was not healthy within {} s ({last})",
                    timeout.as_secs()
                ));
            }
            self.waiting(waited, Some(last.clone()));
            // Short polls: the time from healthy to "done" is part of the rollback's
            // overhead against doing it by hand.
            let poll = match self.plan.health {
                HealthWait::Docker => Duration::from_millis(100),
                HealthWait::Running(_) => Duration::from_millis(250),
                HealthWait::Http(_) => Duration::from_millis(500),
                HealthWait::Swarm => Duration::from_millis(250),
            };
            tokio::time::sleep(poll.min(timeout - waited)).await;
        }
    }
}

/// The engine `service` runs on, once it answers; why not otherwise.
async fn engine_of<'a>(app: &'a App, service: &str) -> Result<&'a DockerClient, String> {
    let svc = app.service(service).map_err(|e| e.to_string())?;
    let engine = app.engine_for(svc).map_err(|e| e.to_string())?;
    engine.ready().await.map_err(|e| e.to_string())?;
    Ok(engine)
}
