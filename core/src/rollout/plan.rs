//! Planning: which image a rollback may run (the service's own repository or
//! those the config allows, judged by the names the engine has for the image),
//! and the [`Plan`] the member confirms. Nothing changes on the engine here.

use std::time::Duration;

use crate::app::App;
use crate::docker::images::{is_id_of, is_image_id, normalize_repository, repository};
use crate::docker::models::{HealthConfig, ImageInspect};
use crate::docker::{DockerClient, DockerError, ImageInfo};
use crate::ops_locks::{next_id, Action, HealthWait, Holder, Plan, TargetSource};
use crate::settings::rollout::{RolloutConfig, MAX_HEALTH_TIMEOUT_SECS};
use crate::settings::services::ServiceConfig;
use crate::store::deployments::{self, Status};

use super::model::RolloutError;
use super::spec::{recreate_body, state_text};

/// A reference as Docker lists it: repository normalized, `:latest` when it names
/// neither tag nor digest.
fn normalize_reference(reference: &str) -> String {
    let repo = repository(reference);
    let rest = &reference[repo.len()..];
    let rest = if rest.is_empty() { ":latest" } else { rest };
    format!("{}{rest}", normalize_repository(repo))
}

/// Whether a rollback may run this image: its repository must be the service's own
/// (`own`, from the running container) or one of `allowed`. The image is judged by
/// the names the engine has for it (`names`: its repo tags and repo digests), never
/// by the typed text alone: Docker finds `own/app@sha256:<id>` for any image whose
/// id that is, whatever repository stands in front. A target named by tag or digest
/// must be one of those names; one named by image id (or an id prefix) needs one of
/// them in an allowed repository. `Err` carries the image's repository.
pub(super) fn allowed_target(
    reference: &str,
    image_id: &str,
    names: &[String],
    own: &str,
    allowed: &[String],
) -> Result<(), String> {
    let ok = |repo: &str| {
        let repo = normalize_repository(repo);
        (!own.is_empty() && repo == normalize_repository(own))
            || allowed.iter().any(|a| normalize_repository(a) == repo)
    };
    let engine_repo = || match names.first() {
        Some(n) => repository(n).to_string(),
        None => "no repository (an untagged image)".to_string(),
    };
    if is_id_of(reference, image_id) {
        return if names.iter().any(|n| ok(repository(n))) {
            Ok(())
        } else {
            Err(engine_repo())
        };
    }
    let typed = normalize_reference(reference);
    if !names.iter().any(|n| normalize_reference(n) == typed) {
        // The engine does not know the image by the name typed.
        return Err(engine_repo());
    }
    let repo = repository(reference);
    if ok(repo) {
        Ok(())
    } else {
        Err(repo.to_string())
    }
}

/// The repositories a service may run, as the refusal names them.
pub(super) fn allowed_list(own: &str, allowed: &[String]) -> String {
    let mut names: Vec<String> = Vec::new();
    for r in std::iter::once(own).chain(allowed.iter().map(String::as_str)) {
        if !r.is_empty() && !names.iter().any(|n| n == normalize_repository(r)) {
            names.push(normalize_repository(r).to_string());
        }
    }
    match names.as_slice() {
        [] => "no repository (none is known or allowed)".to_string(),
        [one] => format!("`{one}`"),
        many => many
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Image references as the member may type them; anything else never reaches the
/// engine's URL paths.
pub(super) fn valid_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.contains("..")
        && !s.starts_with(['/', '-', '.', ':'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

/// A repository as `allowed_images` names it: a reference without tag or digest.
pub fn valid_repository(s: &str) -> bool {
    valid_reference(s) && !s.contains('@') && repository(s) == s && !s.ends_with('/')
}

pub(super) fn health_of(
    check: Option<&HealthConfig>,
    svc: &ServiceConfig,
    cfg: &RolloutConfig,
) -> HealthWait {
    let has_check = check
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|first| first != "NONE");
    match (&svc.health_url, has_check) {
        (_, true) => HealthWait::Docker,
        (Some(url), false) => HealthWait::Http(url.clone()),
        (None, false) => HealthWait::Running(Duration::from_secs(cfg.running_secs)),
    }
}

/// Refuses when another operation holds the service: in this process, or (the
/// deployment row) in another replica.
pub async fn check_free(app: &App, service: &str) -> Result<(), RolloutError> {
    if let Some(h) = app.ops_locks.holder(service) {
        return Err(RolloutError::Busy(h));
    }
    if let Some(row) = deployments::in_progress(&app.store, Some(service))
        .await?
        .first()
    {
        return Err(RolloutError::Busy(Holder::of_row(row)));
    }
    Ok(())
}

/// Inspects the service's container and picks the target: what the member
/// confirms. Nothing changes on the engine.
pub async fn plan(
    app: &App,
    action: Action,
    service: &str,
    to: Option<&str>,
) -> Result<Plan, RolloutError> {
    let svc = app.service(service)?;
    if svc.swarm_service.is_some() {
        return super::swarm::plan(app, action, svc, to).await;
    }
    if !svc.has_containers() {
        return Err(RolloutError::NoContainer(svc.name.clone()));
    }
    if let Some(t) = to.map(str::trim) {
        if !valid_reference(t) {
            return Err(RolloutError::BadImage(t.to_string()));
        }
    }
    check_free(app, &svc.name).await?;
    let engine = app.engine_for(svc)?;
    engine.ready().await?;
    // A compose service: the replicas, one at a time; the first one stands for
    // them in the plan (image, state, health check).
    let replicas: Vec<String> = match &svc.container {
        Some(_) => Vec::new(),
        None => super::replicas::of_service(app, svc)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect(),
    };
    let container = match (&svc.container, replicas.first()) {
        (Some(c), _) => c.clone(),
        (None, Some(first)) => first.clone(),
        (None, None) => return Err(RolloutError::NoContainer(svc.name.clone())),
    };
    let info = engine.inspect(&container).await?;
    let current_id = info.image.clone().unwrap_or_default();
    let configured = info
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| current_id.clone());
    let current_image = engine.inspect_image(&current_id).await.ok();
    let current = match &current_image {
        Some(img) => ImageInfo::from_inspect(&configured, img),
        None => ImageInfo {
            repository: if is_image_id(&configured) {
                String::new()
            } else {
                repository(&configured).to_string()
            },
            reference: configured.clone(),
            id: current_id.clone(),
            digest: None,
            created: None,
        },
    };
    let repo = if is_image_id(&configured) {
        current_image
            .as_ref()
            .and_then(|i| i.repo_tags.as_ref())
            .and_then(|t| t.first())
            .map(|t| repository(t).to_string())
            .unwrap_or_default()
    } else {
        repository(&configured).to_string()
    };
    let state = info.state.clone().unwrap_or_default();
    let mut plan = Plan {
        id: next_id(),
        action,
        service: svc.name.clone(),
        container: container.clone(),
        current,
        container_state: state_text(&info),
        started_at: state
            .started_at
            .as_deref()
            .and_then(crate::timefmt::parse_time),
        target: None,
        target_source: TargetSource::Asked,
        health: HealthWait::Running(Duration::from_secs(app.rollout.running_secs)),
        health_timeout: Duration::from_secs(
            app.rollout.health_timeout_secs.min(MAX_HEALTH_TIMEOUT_SECS),
        ),
        approvals_needed: app.rollout.approvals_for(&svc.name),
        replicas: replicas.clone(),
        scale_to: None,
    };
    if !replicas.is_empty() {
        plan.container = svc.compose.clone().unwrap_or_default();
    }
    match action {
        Action::Restart | Action::Scale => {
            plan.health = health_of(
                info.config.as_ref().and_then(|c| c.healthcheck.as_ref()),
                svc,
                &app.rollout,
            );
        }
        Action::Rollback => {
            if info
                .host_config
                .as_ref()
                .and_then(|h| h.auto_remove)
                .unwrap_or(false)
            {
                return Err(RolloutError::AutoRemove(container));
            }
            let (target, target_img, source) = match to.map(str::trim) {
                Some(t) => {
                    let (info, img) = resolve(engine, &repo, t).await?;
                    (info, img, TargetSource::Asked)
                }
                None => default_target(app, engine, &svc.name, &plan.current, &repo).await?,
            };
            // The new container gets the service's environment, mounts and networks:
            // only images of its own repository (or those the config allows) may run.
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
            let target_config = target_img.config.clone();
            if target.id == plan.current.id {
                return Err(RolloutError::SameImage {
                    container,
                    image: target.reference,
                });
            }
            let body = recreate_body(
                &info,
                current_image.as_ref().and_then(|i| i.config.as_ref()),
                &target.reference,
            );
            let check = body
                .healthcheck
                .as_ref()
                .or(target_config.as_ref().and_then(|c| c.healthcheck.as_ref()));
            plan.health = health_of(check, svc, &app.rollout);
            plan.target = Some(target);
            plan.target_source = source;
        }
    }
    Ok(plan)
}

/// The member's `to`: a full reference, an image id, or a bare tag of the
/// service's repository.
pub(super) async fn resolve(
    engine: &DockerClient,
    repo: &str,
    to: &str,
) -> Result<(ImageInfo, ImageInspect), RolloutError> {
    let mut tries = Vec::new();
    if !repo.is_empty() && !to.contains([':', '/', '@']) {
        tries.push(format!("{repo}:{to}"));
    }
    tries.push(to.to_string());
    for reference in tries {
        match engine.inspect_image(&reference).await {
            Ok(img) => return Ok((ImageInfo::from_inspect(&reference, &img), img)),
            Err(DockerError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RolloutError::ImageNotFound(to.to_string()))
}

/// The image that ran before the current one according to the history, else the
/// newest image of the same repository older than the current one. (Rolling back to
/// a newer build by default would be a surprise; `to` can still name one.)
pub(super) async fn default_target(
    app: &App,
    engine: &DockerClient,
    service: &str,
    current: &ImageInfo,
    repo: &str,
) -> Result<(ImageInfo, ImageInspect, TargetSource), RolloutError> {
    let history = deployments::recent(&app.store, service, 50).await?;
    if let Some(row) = history.iter().find(|d| {
        d.status == Status::Succeeded
            && d.action == Action::Rollback.as_str()
            && d.to_image_id == current.id
            && d.from_image_id != current.id
    }) {
        // The tag may have moved since: run exactly the image that ran, by id if need be.
        let by_tag = engine.inspect_image(&row.from_image).await.ok();
        let found = match by_tag {
            Some(img) if img.id.as_deref() == Some(row.from_image_id.as_str()) => {
                Some((row.from_image.clone(), img))
            }
            _ => engine
                .inspect_image(&row.from_image_id)
                .await
                .ok()
                .map(|img| (row.from_image_id.clone(), img)),
        };
        if let Some((reference, img)) = found {
            let info = ImageInfo::from_inspect(&reference, &img);
            return Ok((info, img, TargetSource::History));
        }
    }
    let older = engine
        .candidates(repo)
        .await?
        .into_iter()
        .filter(|c| c.id != current.id)
        .find(|c| match (c.created, current.created) {
            (Some(c), Some(cur)) => c < cur,
            _ => true,
        });
    match older {
        Some(c) => {
            let img = engine.inspect_image(&c.reference).await?;
            Ok((c, img, TargetSource::NewestOlder))
        }
        None => Err(RolloutError::NoPrevious {
            repo: if repo.is_empty() {
                current.reference.clone()
            } else {
                repo.to_string()
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        assert_eq!(repository("klaxon-test/app:v2"), "klaxon-test/app");
        assert_eq!(
            repository("registry:5000/team/app:v2"),
            "registry:5000/team/app"
        );
        assert_eq!(
            repository("registry:5000/team/app"),
            "registry:5000/team/app"
        );
        assert_eq!(repository("app@sha256:abc"), "app");
        assert_eq!(repository("app"), "app");
        assert!(is_image_id("sha256:725427537889aa"));
        assert!(!is_image_id("app:v1"));
        assert!(valid_reference("klaxon-test/app:v1"));
        assert!(valid_reference("sha256:725427537889"));
        assert!(!valid_reference("../containers/x"));
        assert!(!valid_reference("app v1"));
        assert!(!valid_reference(""));
    }

    #[test]
    fn rollback_to_a_foreign_image_is_refused() {
        let own = "klaxon-test/app";
        let none: &[String] = &[];
        let id = "sha256:0123456789abcdef0123456789abcdef";
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let v1 = names(&["klaxon-test/app:v1"]);
        // The service's own repository, by tag, in any spelling Docker accepts.
        assert_eq!(
            allowed_target("klaxon-test/app:v1", id, &v1, own, none),
            Ok(())
        );
        assert_eq!(
            allowed_target("docker.io/klaxon-test/app:v1", id, &v1, own, none),
            Ok(())
        );
        // Another repository: refused, naming it.
        let evil = names(&["evil/dump:1"]);
        assert_eq!(
            allowed_target("evil/dump:1", id, &evil, own, none),
            Err("evil/dump".to_string())
        );
        // A tag that merely looks like the repository is still another repository.
        assert_eq!(
            allowed_target(
                "klaxon-test/app-evil:1",
                id,
                &names(&["klaxon-test/app-evil:1"]),
                own,
                none
            ),
            Err("klaxon-test/app-evil".to_string())
        );
        // The own repository in front of a foreign image's digest: Docker resolves
        // it by id, so the engine's names decide.
        assert_eq!(
            allowed_target(
                "klaxon-test/app@sha256:0123456789abcdef0123456789abcdef",
                id,
                &evil,
                own,
                none
            ),
            Err("evil/dump".to_string())
        );
        // A real registry digest of the own repository is fine.
        let digested = names(&["klaxon-test/app:v1", "klaxon-test/app@sha256:feed"]);
        assert_eq!(
            allowed_target("klaxon-test/app@sha256:feed", id, &digested, own, none),
            Ok(())
        );
        // A repository the config allows.
        let allowed = vec!["registry:5000/team/app".to_string()];
        assert_eq!(
            allowed_target(
                "registry:5000/team/app:v9",
                id,
                &names(&["registry:5000/team/app:v9"]),
                own,
                &allowed
            ),
            Ok(())
        );
        // By image id: judged by the engine's names for it.
        assert_eq!(
            allowed_target("sha256:0123456789ab", id, &v1, own, none),
            Ok(())
        );
        assert_eq!(
            allowed_target("0123456789abcdef", id, &v1, own, none),
            Ok(())
        );
        assert_eq!(
            allowed_target("sha256:0123456789ab", id, &evil, own, none),
            Err("evil/dump".to_string())
        );
        assert!(allowed_target("sha256:0123456789ab", id, &[], own, none).is_err());
        // A container that runs an untagged image has no own repository.
        assert!(allowed_target("klaxon-test/app:v1", id, &v1, "", none).is_err());
        assert_eq!(
            allowed_list(own, &allowed),
            "`klaxon-test/app`, `registry:5000/team/app`"
        );
        assert!(valid_repository("registry:5000/team/app"));
        assert!(!valid_repository("team/app:v1"));
        assert!(!valid_repository("team/app@sha256:abc"));
    }

    #[test]
    fn health_wait_prefers_docker_then_url_then_running() {
        let cfg = RolloutConfig::default();
        let mut svc = ServiceConfig {
            name: "api".into(),
            container: Some("api".into()),
            health_url: Some("http://127.0.0.1:1/h".into()),
            maintenance_flag: None,
            allowed_images: Vec::new(),
            compose: None,
            swarm_service: None,
            host: None,
        };
        let check = HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), "true".into()]),
            ..Default::default()
        };
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(health_of(Some(&check), &svc, &cfg), HealthWait::Docker);
        assert!(matches!(
            health_of(Some(&none), &svc, &cfg),
            HealthWait::Http(_)
        ));
        svc.health_url = None;
        assert_eq!(
            health_of(None, &svc, &cfg),
            HealthWait::Running(Duration::from_secs(10))
        );
    }
}
