//! Compose services seen from the domain: which engine holds a service's replicas,
//! which replicas it has now, the start-up warning for a compose service that
//! matches nothing, and the start-up look at a rolling operation a previous Klaxon
//! left half done.
//!
//! [`engine`] is the one place that picks the Docker engine of a service for the
//! replica code (rollouts, `/scale`, `/health`, `/logs`): with several engines it
//! becomes a look-up in the host registry, and nothing else changes.

use tracing::{info, warn};

use crate::app::App;
use crate::docker::compose::is_kept_name;
use crate::docker::{DockerClient, DockerError, Replica};
use crate::settings::services::ServiceConfig;
use crate::store::deployments::Deployment;

use super::model::RolloutError;
use super::recover::{recover_one, Recovery};
use super::spec::is_running;

/// The Docker engine that runs `service`.
pub fn engine<'a>(app: &'a App, service: &str) -> &'a DockerClient {
    match app.service(service) {
        Ok(svc) => app.engine_of(svc),
        Err(_) => app.engines.first(),
    }
}

/// The replicas of a compose service, by number; refused when there is none.
pub async fn of_service(app: &App, svc: &ServiceConfig) -> Result<Vec<Replica>, RolloutError> {
    let compose = svc.compose.clone().unwrap_or_default();
    let Some((project, service)) = svc.compose_parts() else {
        return Err(RolloutError::NotScalable(svc.name.clone()));
    };
    let replicas = engine(app, &svc.name).replicas(project, service).await?;
    if replicas.is_empty() {
        return Err(RolloutError::NoReplicas {
            service: svc.name.clone(),
            compose,
        });
    }
    Ok(replicas)
}

/// One line per compose service that matches no container now: logged as warnings
/// at start-up (not refused: containers come and go). An engine that does not
/// answer is a warning too, said as such.
pub async fn unmatched(app: &App) -> Vec<String> {
    let mut out = Vec::new();
    for (i, svc) in app.services.iter().enumerate() {
        let Some((project, service)) = svc.compose_parts() else {
            continue;
        };
        let key = format!("services[{i}].compose");
        match engine(app, &svc.name).replicas(project, service).await {
            Ok(r) if r.is_empty() => out.push(format!(
                "{key}: `{project}/{service}` (service `{}`) matches no container on the engine yet",
                svc.name
            )),
            Ok(_) => {}
            Err(e) => out.push(format!(
                "{key}: could not look for `{project}/{service}`: {e}"
            )),
        }
    }
    for line in &out {
        warn!("{line}");
    }
    out
}

/// The rows of a rolling operation (or `/scale`) on a compose service: every
/// replica that a previous Klaxon left stopped beside a kept original is put back
/// as [`recover_one`] does for one container; the summary always says how many
/// replicas run, so nothing half done goes unreported.
pub(super) async fn recover_compose(
    engine: &DockerClient,
    row: &Deployment,
    project: &str,
    service: &str,
) -> Result<Recovery, DockerError> {
    let all = engine.compose_containers(project, service).await?;
    let suffix = "-klaxon-";
    let mut lines = Vec::new();
    for kept in all.iter().filter(|r| is_kept_name(&r.name)) {
        let Some((name, _)) = kept.name.rsplit_once(suffix) else {
            continue;
        };
        let mut one = row.clone();
        one.container = name.to_string();
        one.kept_container = kept.name.clone();
        let r = recover_one(engine, &one).await?;
        lines.push(r.summary);
    }
    let now: Vec<Replica> = engine.replicas(project, service).await?;
    let mut running = 0;
    for r in &now {
        if let Ok(i) = engine.inspect(&r.name).await {
            if is_running(&i) {
                running += 1;
            }
        }
    }
    lines.push(format!(
        "{running} of {} replicas of compose `{project}/{service}` are running now ({}).",
        now.len(),
        now.iter()
            .map(|r| format!("`{}` on `{}`", r.name, r.image))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let summary = lines.join(" ");
    info!(service = %row.service, deployment = row.id, running, "{summary}");
    Ok(Recovery {
        deployment: row.id,
        service: row.service.clone(),
        running: running > 0,
        summary,
    })
}
