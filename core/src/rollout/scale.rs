//! `/scale`: a compose service's replicas added or removed, with the same Confirm,
//! lock, progress, history and audit as `/rollback` (it is an [`Action`] of the
//! same state machine).
//!
//! Adding clones the configuration of a running replica (image, environment,
//! labels, health check, mounts, network mode) onto the next compose numbers,
//! named as compose names them (`project-service-N`), and waits for each new
//! replica's health; a new replica that is not healthy removes every replica this
//! operation added. Removing stops and removes the highest-numbered replicas first.
//!
//! Kinds of service plug in at two places: [`plan_scale`] counts the replicas and
//! [`Run::scale`] changes them. A Swarm service (`swarm_service`) is a second arm
//! of both, calling the swarm module's own scale function; the command and the
//! Confirm/lock/audit around it stay as they are.

use std::time::Duration;

use crate::app::App;
use crate::docker::compose::{replica_name, NUMBER_LABEL};
use crate::docker::{DockerClient, ImageInfo, Replica};
use crate::ops_locks::{next_id, Action, Plan, TargetSource};
use crate::settings::rollout::MAX_HEALTH_TIMEOUT_SECS;
use crate::store::deployments::Status;

use super::model::{Phase, RolloutError};
use super::plan::{check_free, health_of};
use super::replicas::{self, engine};
use super::run::{End, Run};
use super::spec::{extra_networks, recreate_body, state_text};

/// What `/scale` would do; nothing changes on the engine. `replicas` is checked
/// against `[rollback] max_replicas` first, from memory (a private refusal).
pub async fn plan_scale(app: &App, service: &str, replicas: i64) -> Result<Plan, RolloutError> {
    let svc = app.service(service)?;
    check_range(app, &svc.name, replicas)?;
    if svc.swarm_service.is_some() {
        return super::swarm::plan_scale(app, svc, replicas as u32).await;
    }
    if svc.compose_parts().is_none() {
        return Err(RolloutError::NotScalable(svc.name.clone()));
    }
    check_free(app, &svc.name).await?;
    let engine = engine(app, &svc.name);
    engine.ready().await?;
    let now = replicas::of_service(app, svc).await?;
    let want = replicas as u32;
    if now.len() as u32 == want {
        return Err(RolloutError::SameScale {
            service: svc.name.clone(),
            replicas: want,
        });
    }
    // The template: the first running replica (any, for a scale-down).
    let template = now.iter().find(|r| r.running).or(now.first());
    let Some(template) = template else {
        return Err(RolloutError::NothingToClone(svc.name.clone()));
    };
    let info = engine.inspect(&template.name).await?;
    let image_id = info.image.clone().unwrap_or_default();
    let configured = info
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| image_id.clone());
    let current = match engine.inspect_image(&image_id).await {
        Ok(img) => ImageInfo::from_inspect(&configured, &img),
        Err(_) => ImageInfo {
            repository: String::new(),
            reference: configured,
            id: image_id,
            digest: None,
            created: None,
        },
    };
    let state = info.state.clone().unwrap_or_default();
    Ok(Plan {
        id: next_id(),
        action: Action::Scale,
        service: svc.name.clone(),
        container: svc.compose.clone().unwrap_or_default(),
        current,
        container_state: state_text(&info),
        started_at: state
            .started_at
            .as_deref()
            .and_then(crate::timefmt::parse_time),
        target: None,
        target_source: TargetSource::Asked,
        health: health_of(
            info.config.as_ref().and_then(|c| c.healthcheck.as_ref()),
            svc,
            &app.rollout,
        ),
        health_timeout: Duration::from_secs(
            app.rollout.health_timeout_secs.min(MAX_HEALTH_TIMEOUT_SECS),
        ),
        approvals_needed: app.rollout.approvals_for(&svc.name),
        replicas: now.into_iter().map(|r| r.name).collect(),
        scale_to: Some(want),
    })
}

/// 1 to `[rollback] max_replicas`, else the private refusal.
pub fn check_range(app: &App, service: &str, replicas: i64) -> Result<(), RolloutError> {
    if replicas < 1 || replicas > i64::from(app.rollout.max_replicas) {
        return Err(RolloutError::BadScale {
            service: service.to_string(),
            asked: replicas,
            max: app.rollout.max_replicas,
        });
    }
    Ok(())
}

/// Which replicas go when scaling `now` down to `want`: the highest numbers first.
pub fn to_remove(now: &[Replica], want: usize) -> Vec<Replica> {
    let mut by_number = now.to_vec();
    by_number.sort_by(|a, b| b.number.cmp(&a.number).then(b.name.cmp(&a.name)));
    by_number.truncate(now.len().saturating_sub(want));
    by_number
}

/// The numbers new replicas get: after the highest one in use.
pub fn next_numbers(now: &[Replica], add: usize) -> Vec<u32> {
    let top = now.iter().map(|r| r.number).max().unwrap_or(0);
    (1..=add as u32).map(|k| top + k).collect()
}

impl Run {
    pub(super) async fn scale(&mut self, _engine: &DockerClient) -> End {
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        let app = std::sync::Arc::clone(&self.app);
        let Ok(svc) = app.service(&self.plan.service) else {
            return failed("the service is no longer configured; nothing was changed.".into());
        };
        let Some((project, service)) = svc.compose_parts() else {
            return failed("the service has no compose replicas; nothing was changed.".into());
        };
        let engine = engine(&app, &svc.name);
        let want = self.plan.scale_to.unwrap_or(0) as usize;
        let now = match engine.replicas(project, service).await {
            Ok(r) => r,
            Err(e) => return failed(format!("{e}; nothing was changed.")),
        };
        if want < now.len() {
            return self.scale_down(engine, &now, want).await;
        }
        self.scale_up(engine, project, service, &now, want).await
    }

    async fn scale_down(&mut self, engine: &DockerClient, now: &[Replica], want: usize) -> End {
        self.phase(Phase::Stopping);
        for r in to_remove(now, want) {
            let secs = match engine.inspect(&r.name).await {
                Ok(info) => self.stop_secs(&info),
                Err(_) => self.app.rollout.stop_timeout_secs,
            };
            let gone = async {
                engine.stop(&r.name, secs).await?;
                engine.remove(&r.name, true).await
            }
            .await;
            if let Err(e) = gone {
                return End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!(
                            "could not remove `{}`: {e}; the replicas removed so far stay removed.",
                            r.name
                        ),
                    },
                };
            }
            self.step(
                "removed",
                format!("Stopped and removed `{}` (replica {})", r.name, r.number),
            )
            .await;
        }
        End {
            status: Status::Succeeded,
            phase: Phase::Done,
        }
    }

    async fn scale_up(
        &mut self,
        engine: &DockerClient,
        project: &str,
        service: &str,
        now: &[Replica],
        want: usize,
    ) -> End {
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        let Some(template) = now.iter().find(|r| r.running) else {
            return failed("no replica is running to clone; nothing was changed.".into());
        };
        let info = match engine.inspect(&template.name).await {
            Ok(i) => i,
            Err(e) => return failed(format!("{e}; nothing was changed.")),
        };
        let image = info
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let image_config = match &info.image {
            Some(id) => engine.inspect_image(id).await.ok().and_then(|i| i.config),
            None => None,
        };
        // The same image: by its tag while the tag still names it (as `docker ps`
        // shows it), by id once the tag has moved on.
        let id = info.image.clone().unwrap_or_default();
        let tag_still = !image.is_empty()
            && engine
                .inspect_image(&image)
                .await
                .ok()
                .and_then(|i| i.id)
                .is_some_and(|i| i == id);
        let run_image = if tag_still || id.is_empty() {
            image.clone()
        } else {
            id
        };
        let networks = extra_networks(&info);
        self.phase(Phase::Starting);
        let mut added: Vec<String> = Vec::new();
        let mut problem: Option<String> = None;
        for number in next_numbers(now, want - now.len()) {
            let name = replica_name(project, service, number);
            let mut body = recreate_body(&info, image_config.as_ref(), &run_image);
            body.labels
                .get_or_insert_with(Default::default)
                .insert(NUMBER_LABEL.to_string(), number.to_string());
            let started = async {
                engine.create(&name, body).await?;
                added.push(name.clone());
                for (network, endpoint) in networks.clone() {
                    engine.connect(&network, &name, endpoint).await?;
                }
                engine.start(&name).await
            }
            .await;
            if let Err(e) = started {
                problem = Some(format!("`{name}` did not start: {e}"));
                break;
            }
            self.step(
                "added",
                format!(
                    "Started `{name}` (replica {number}) on `{}`, cloned from `{}`",
                    run_image, template.name
                ),
            )
            .await;
        }
        if problem.is_none() {
            for name in &added {
                match self.wait_healthy(engine, name, None).await {
                    Ok(waited) => {
                        self.step(
                            "healthy",
                            format!("`{name}` healthy after {} s", waited.as_secs()),
                        )
                        .await
                    }
                    Err(reason) => {
                        problem = Some(format!("`{name}` {reason}"));
                        break;
                    }
                }
            }
        }
        let Some(reason) = problem else {
            return End {
                status: Status::Succeeded,
                phase: Phase::Done,
            };
        };
        // Put back: every replica this operation added goes again.
        self.phase(Phase::Reverting {
            reason: reason.clone(),
        });
        let mut left = Vec::new();
        for name in added.iter().rev() {
            match engine.remove(name, true).await {
                Ok(()) => {
                    self.step("removed", format!("Removed the new `{name}`"))
                        .await
                }
                Err(e) => left.push(format!("`{name}` ({e})")),
            }
        }
        if left.is_empty() {
            End {
                status: Status::Reverted,
                phase: Phase::Reverted {
                    reason: format!("{reason}; the replicas added were removed"),
                },
            }
        } else {
            failed(format!(
                "{reason}, and removing the new replicas failed: {}; remove them by hand.",
                left.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(number: u32) -> Replica {
        Replica {
            number,
            name: format!("shop-api-{number}"),
            id: String::new(),
            image: "app:v1".into(),
            running: true,
        }
    }

    #[test]
    fn the_highest_numbers_go_first_and_new_ones_come_after_them() {
        let now = vec![r(1), r(2), r(4), r(3)];
        let gone: Vec<u32> = to_remove(&now, 1).iter().map(|r| r.number).collect();
        assert_eq!(gone, vec![4, 3, 2]);
        assert!(to_remove(&now, 4).is_empty());
        assert_eq!(next_numbers(&now, 2), vec![5, 6]);
        assert_eq!(next_numbers(&[], 1), vec![1]);
    }
}
