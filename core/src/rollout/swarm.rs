//! `/rollback` and `/restart` of a Docker Swarm service (issue #16).
//!
//! The same plan, Confirm, lock, audit and deployment history as for a container
//! (the [`Plan`]'s `container` is the Swarm service's name, its health wait
//! [`HealthWait::Swarm`]); what differs is the operation. A rollback updates the
//! service's image and follows Swarm's rolling update until it converges
//! ([`crate::swarm::converge`]); when it does not (a task fails, Swarm pauses the
//! update, or the timeout passes) Klaxon reverts with Swarm's own rollback to the
//! previous spec and follows that too. A restart is a forced rolling update
//! (`ForceUpdate` + 1: every task replaced, nothing else changed).

use std::time::Duration;

use crate::app::App;
use crate::docker::images::{is_image_id, repository};
use crate::docker::{DockerClient, DockerError, ImageInfo};
use crate::ops_locks::{next_id, Action, HealthWait, Plan, TargetSource};
use crate::settings::rollout::MAX_HEALTH_TIMEOUT_SECS;
use crate::settings::services::ServiceConfig;
use crate::store::deployments::{Deployment, Status};
use crate::swarm::{converge, status, Change};

use super::model::{Phase, RolloutError};
use super::plan::{
    allowed_list, allowed_target, check_free, default_target, resolve, valid_reference,
};
use super::recover::Recovery;
use super::run::{End, Run};

/// The image a service spec names, without the digest `docker service create`
/// pins (`app:v1@sha256:...`): the engine knows the image by the tag.
fn spec_image(svc: &crate::docker::models::Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn without_digest(image: &str) -> &str {
    match image.split_once('@') {
        Some((named, _)) if !named.is_empty() && !is_image_id(image) => named,
        _ => image,
    }
}

/// The plan for a Swarm service: inspects the service (nothing changes).
pub(super) async fn plan(
    app: &App,
    action: Action,
    svc: &ServiceConfig,
    to: Option<&str>,
) -> Result<Plan, RolloutError> {
    let name = svc
        .swarm_service
        .clone()
        .ok_or_else(|| RolloutError::NoContainer(svc.name.clone()))?;
    if let Some(t) = to.map(str::trim) {
        if !valid_reference(t) {
            return Err(RolloutError::BadImage(t.to_string()));
        }
    }
    check_free(app, &svc.name).await?;
    let engine = crate::swarm::engine(app, svc);
    engine.ready().await?;
    let now = status::read(engine, &name).await?;
    let configured = now.image.clone();
    let local = without_digest(&configured).to_string();
    let current_image = engine.inspect_image(&local).await.ok();
    let current = match &current_image {
        Some(img) => ImageInfo::from_inspect(&configured, img),
        None => ImageInfo {
            repository: repository(&local).to_string(),
            reference: configured.clone(),
            id: String::new(),
            digest: None,
            created: None,
        },
    };
    let repo = repository(&local).to_string();
    let mut plan = Plan {
        id: next_id(),
        action,
        service: svc.name.clone(),
        container: name.clone(),
        current,
        container_state: format!("{}/{} tasks running", now.running, now.desired),
        started_at: None,
        target: None,
        target_source: TargetSource::Asked,
        health: HealthWait::Swarm,
        health_timeout: Duration::from_secs(
            app.rollout.health_timeout_secs.min(MAX_HEALTH_TIMEOUT_SECS),
        ),
        approvals_needed: app.rollout.approvals_for(&svc.name),
        replicas: Vec::new(),
        scale_to: None,
    };
    if action == Action::Rollback {
        let (target, target_img, source) = match to.map(str::trim) {
            Some(t) => {
                let (info, img) = resolve(engine, &repo, t).await?;
                (info, img, TargetSource::Asked)
            }
            None => default_target(app, engine, &svc.name, &plan.current, &repo).await?,
        };
        let names: Vec<String> = target_img
            .repo_tags
            .iter()
            .chain(target_img.repo_digests.iter())
            .flatten()
            .cloned()
            .collect();
        if let Err(image_repo) = allowed_target(
            &target.reference,
            &target.id,
            &names,
            &repo,
            &svc.allowed_images,
        ) {
            return Err(RolloutError::ForeignImage {
                service: svc.name.clone(),
                image: target.reference,
                image_repo,
                allowed: allowed_list(&repo, &svc.allowed_images),
            });
        }
        if target.id == plan.current.id {
            return Err(RolloutError::SameImage {
                container: name,
                image: target.reference,
            });
        }
        plan.target = Some(target);
        plan.target_source = source;
    }
    Ok(plan)
}

impl Run {
    /// The Swarm service this run changes, when the service is one.
    pub(super) fn swarm_service(&self) -> Option<String> {
        self.app
            .service(&self.plan.service)
            .ok()
            .and_then(|s| s.swarm_service.clone())
    }

    fn swarm_engine(&self) -> DockerClient {
        match self.app.service(&self.plan.service) {
            Ok(svc) => crate::swarm::engine(&self.app, svc).clone(),
            Err(_) => self.app.engines.first().clone(),
        }
    }

    /// Follows a change, showing its progress as the health wait.
    async fn follow(
        &self,
        engine: &DockerClient,
        name: &str,
        since: chrono::DateTime<chrono::Utc>,
        reverting: bool,
    ) -> Result<Duration, String> {
        self.waiting(Duration::ZERO, None);
        let mut on = |waited: Duration, last: &str| self.waiting(waited, Some(last.to_string()));
        converge::follow(
            engine,
            name,
            since,
            self.plan.health_timeout,
            reverting,
            &mut on,
        )
        .await
    }

    pub(super) async fn swarm_rollback(&mut self, name: &str) -> End {
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        let Some(target) = self.plan.target.clone() else {
            return failed("no target image; nothing was changed.".into());
        };
        let engine = self.swarm_engine();
        self.phase(Phase::Starting);
        match engine.inspect_service(name).await {
            Err(e) => return failed(format!("{e}; nothing was changed.")),
            Ok(svc) if spec_image(&svc) != self.plan.current.reference => {
                return failed(format!(
                    "`{name}` changed since the plan was shown (it now runs `{}`); nothing was changed. Run the command again.",
                    spec_image(&svc)
                ))
            }
            Ok(_) => {}
        }
        let (before, since) =
            match converge::apply(&engine, name, Change::Image(&target.reference)).await {
                Ok(x) => x,
                Err(e) => {
                    return failed(format!(
                        "Swarm refused the update: {e}; nothing was changed."
                    ))
                }
            };
        self.step(
            "updated",
            format!("Updated Swarm service `{name}` to `{}`", target.reference),
        )
        .await;
        match self.follow(&engine, name, since, false).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Converged after {} s: every task runs `{}`",
                        waited.as_secs(),
                        target.reference
                    ),
                )
                .await;
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => {
                let reason = format!("`{}` {reason}", target.reference);
                self.swarm_revert(&engine, name, &before, reason).await
            }
        }
    }

    /// Swarm's own rollback to the spec before the update, followed until it
    /// converges too.
    async fn swarm_revert(
        &mut self,
        engine: &DockerClient,
        name: &str,
        before: &crate::docker::models::Service,
        reason: String,
    ) -> End {
        tracing::warn!(service = %self.plan.service, %reason, "reverting the Swarm service");
        self.phase(Phase::Reverting {
            reason: reason.clone(),
        });
        let since = match converge::revert(engine, name, before).await {
            Ok(at) => at,
            Err(e) => return self.revert_failed(name, reason, e.to_string()),
        };
        self.step(
            "reverting",
            format!("Rolled `{name}` back to its previous spec"),
        )
        .await;
        match self.follow(engine, name, since, true).await {
            Ok(_) => {
                self.step(
                    "restored",
                    format!(
                        "Every task of `{name}` runs `{}` again",
                        self.plan.current.reference
                    ),
                )
                .await;
                End {
                    status: Status::Reverted,
                    phase: Phase::Reverted { reason },
                }
            }
            Err(e) => self.revert_failed(name, reason, e),
        }
    }

    fn revert_failed(&self, name: &str, reason: String, e: String) -> End {
        tracing::error!(service = %self.plan.service, error = %e, "Swarm revert failed");
        End {
            status: Status::Failed,
            phase: Phase::Failed {
                reason: format!(
                    "{reason}, and rolling back failed too: {e}. Check it with `docker service ps {name}`; `docker service rollback {name}` goes back to the previous spec."
                ),
            },
        }
    }

    pub(super) async fn swarm_restart(&mut self, name: &str) -> End {
        let engine = self.swarm_engine();
        self.phase(Phase::Restarting);
        let since = match converge::apply(&engine, name, Change::Restart).await {
            Ok((_, at)) => at,
            Err(e) => {
                return End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!(
                            "Swarm refused the forced update: {e}; nothing was changed."
                        ),
                    },
                }
            }
        };
        self.step(
            "restarted",
            format!("Forced a rolling update of `{name}` (every task replaced)"),
        )
        .await;
        match self.follow(&engine, name, since, false).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Converged after {} s: every task replaced and running",
                        waited.as_secs()
                    ),
                )
                .await;
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => End {
                status: Status::Failed,
                phase: Phase::Failed {
                    reason: format!("`{name}` restarted but {reason}. It was left as it is."),
                },
            },
        }
    }
}

/// `/scale` of a Swarm service: the service as `/rollback` shows it, with the
/// replica count asked (the range was checked by the caller).
pub(super) async fn plan_scale(
    app: &App,
    svc: &ServiceConfig,
    replicas: u32,
) -> Result<Plan, RolloutError> {
    let mut plan = plan(app, Action::Scale, svc, None).await?;
    let now = status::read(crate::swarm::engine(app, svc), &plan.container).await?;
    if now.desired == u64::from(replicas) {
        return Err(RolloutError::SameScale {
            service: svc.name.clone(),
            replicas,
        });
    }
    plan.scale_to = Some(replicas);
    Ok(plan)
}

impl Run {
    /// Sets a Swarm service's replica count and follows Swarm until it converges.
    pub(super) async fn swarm_scale(&mut self, name: &str) -> End {
        let engine = self.swarm_engine();
        let want = u64::from(self.plan.scale_to.unwrap_or(0));
        self.phase(Phase::Starting);
        let since = match converge::apply(&engine, name, Change::Replicas(want)).await {
            Ok((_, at)) => at,
            Err(e) => {
                return End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!("Swarm refused the scale: {e}; nothing was changed."),
                    },
                }
            }
        };
        self.step("scaled", format!("Set `{name}` to {want} replicas"))
            .await;
        match self.follow(&engine, name, since, false).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Converged after {} s: {want} tasks running",
                        waited.as_secs()
                    ),
                )
                .await;
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => End {
                status: Status::Failed,
                phase: Phase::Failed {
                    reason: format!("`{name}` was set to {want} replicas but {reason}."),
                },
            },
        }
    }
}

/// At start-up, an operation on a Swarm service a previous Klaxon left in progress:
/// Swarm went on rolling by itself, so there is nothing to put back; what runs now
/// is reported.
pub(super) async fn recover_one(
    engine: &DockerClient,
    row: &Deployment,
    name: &str,
) -> Result<Recovery, DockerError> {
    let now = status::read(engine, name).await?;
    let running = now.running >= now.desired && now.desired > 0;
    let mut summary = format!(
        "Swarm went on with the update by itself: {}/{} tasks of `{name}` run `{}`.",
        now.running, now.desired, now.image
    );
    if let Some(u) = &now.update {
        summary.push_str(&format!(" Its update is {u}."));
    }
    if !running {
        summary.push_str(&format!(
            " `docker service rollback {name}` goes back to the previous spec."
        ));
    }
    Ok(Recovery {
        deployment: row.id,
        service: row.service.clone(),
        running,
        summary,
    })
}
