//! Recovery at start-up: an operation a previous Klaxon left `in_progress` (it
//! stopped or crashed in the middle) is checked, the service's container put back
//! if need be, and what was found is posted.

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::app::App;
use crate::audit::{AuditEntry, Outcome};
use crate::chat::{ChatMessage, Embed};
use crate::docker::models::ContainerInspectResponse;
use crate::docker::{DockerClient, DockerError};
use crate::posts::{self, Kind, Post, To};
use crate::store::deployments::{self, Deployment, Status};

use super::spec::{container_name, is_running, state_text};

/// What start-up found for one operation a previous Klaxon left `in_progress`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub deployment: i64,
    pub service: String,
    /// Whether the service's container runs now.
    pub running: bool,
    pub summary: String,
}

/// Fixes up operations a previous Klaxon left half done (it stopped or crashed in the
/// middle): makes sure one of the service's containers runs — the old one, put back,
/// if neither does — marks the rows `interrupted`, and posts what it found to
/// `alerts`. Every Docker call has its deadline, so a dead engine delays start-up by
/// seconds, not forever; its rows stay `in_progress` for the next start.
pub async fn recover(app: &App, alerts: Option<u64>) -> Vec<Recovery> {
    let rows = match deployments::in_progress(&app.store, None).await {
        Ok(rows) => rows,
        Err(e) => {
            error!(error = %e, "cannot read unfinished rollbacks");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for row in rows {
        // The engine of the row's service (`default` for one no longer configured);
        // a Swarm service (issue #16) is checked through its tasks, a compose
        // service through its replicas.
        let svc = app.service(&row.service).ok();
        let host = svc.map_or(crate::docker::DEFAULT_HOST, |s| s.host_name());
        let swarm = svc.and_then(|s| s.swarm_service.clone());
        let compose = svc
            .and_then(|s| s.compose_parts())
            .filter(|_| row.container.contains('/'));
        let recovery = match app.engines.get(host) {
            Err(e) => Err(DockerError::Api(e.to_string())),
            Ok(engine) => match (engine.ready().await, swarm, compose) {
                (_, Some(name), _) => super::swarm::recover_one(engine, &row, &name).await,
                (Ok(()), None, Some((project, service))) => {
                    super::replicas::recover_compose(engine, &row, project, service).await
                }
                (Ok(()), None, None) => recover_one(engine, &row).await,
                (Err(e), None, _) => Err(e),
            },
        };
        let (recovery, checked) = match recovery {
            Ok(r) => (r, true),
            Err(e) => {
                warn!(error = %e, deployment = row.id, "cannot check an unfinished {}", row.action);
                let summary = format!(
                    "Klaxon could not check `{}` ({e}); it will look again at its next start.",
                    row.container
                );
                let r = Recovery {
                    deployment: row.id,
                    service: row.service.clone(),
                    running: false,
                    summary,
                };
                (r, false)
            }
        };
        let now = Utc::now().timestamp_millis();
        if checked {
            let _ = deployments::add_step(&app.store, row.id, now, "recovered", &recovery.summary)
                .await;
            if let Err(e) = deployments::finish(
                &app.store,
                row.id,
                Status::Interrupted,
                now,
                &recovery.summary,
            )
            .await
            {
                error!(error = %e, deployment = row.id, "cannot close an unfinished deployment row");
            }
        }
        app.audit(AuditEntry {
            at_ms: now,
            guild_id: None,
            channel_id: alerts,
            user_id: 0,
            user_name: "klaxon".into(),
            command: row.action.clone(),
            arguments: format!("service={} recovery", row.service),
            outcome: if recovery.running {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            detail: recovery.summary.clone(),
            duration_ms: 0,
        })
        .await;
        if let Some(channel) = alerts {
            let started = DateTime::from_timestamp_millis(row.started_ms)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            let message = ChatMessage {
                embeds: vec![Embed {
                    title: format!(
                        "⚠️ Klaxon restarted during a {} of {}",
                        row.action, row.service
                    ),
                    description: recovery.summary.clone(),
                    color: if recovery.running {
                        crate::chat::YELLOW
                    } else {
                        crate::chat::RED
                    },
                    fields: Vec::new(),
                    footer: format!(
                        "{} → {} · started by {} at {started}",
                        row.from_image, row.to_image, row.requested_by_name
                    ),
                }
                .fit()],
                ..Default::default()
            };
            // Through the posts outbox: Discord may well be what is down after the
            // restart; keyed, so recovering again after a crash stores it once.
            let post = Post::new(
                Kind::Recovery,
                To::Channel(channel),
                message,
                format!("deployment {}", row.id),
            )
            .keyed(format!("kd{}", row.id));
            if let Err(e) = posts::post_with(app, post).await {
                warn!(error = %e, channel, "recovery report not stored");
            }
        }
        out.push(recovery);
    }
    out
}

pub(super) async fn recover_one(
    engine: &DockerClient,
    row: &Deployment,
) -> Result<Recovery, DockerError> {
    let name = row.container.as_str();
    let kept = (!row.kept_container.is_empty()).then_some(row.kept_container.as_str());
    let main = engine.inspect_opt(name).await?;
    let old = match kept {
        Some(k) => engine.inspect_opt(k).await?,
        None => None,
    };
    let image_of = |i: &ContainerInspectResponse| {
        i.config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| "?".into())
    };
    let (running, summary) = match (&main, &old, kept) {
        (Some(m), old, _) if is_running(m) => {
            let mut s = format!("`{name}` is running `{}`.", image_of(m));
            if let (Some(o), Some(k)) = (old, kept) {
                s.push_str(&format!(
                    " The container it replaced (`{}`) is kept, {}, as `{k}`: remove it once `{name}` is fine, or put it back by hand.",
                    image_of(o),
                    state_text(o)
                ));
            }
            (true, s)
        }
        (main, Some(o), Some(k)) => {
            // Neither runs: the old container is the known good one.
            if let Some(m) = main {
                engine.remove(&container_name(m), true).await?;
            }
            engine.rename(k, name).await?;
            engine.start(name).await?;
            let running = engine
                .inspect(name)
                .await
                .map(|i| is_running(&i))
                .unwrap_or(false);
            (
                running,
                format!(
                    "Neither container was running: Klaxon removed the new one{} and put the old `{name}` (`{}`) back{}.",
                    main.as_ref().map(|m| format!(" (`{}`)", image_of(m))).unwrap_or_default(),
                    image_of(o),
                    if running { "; it is running" } else { ", but it does not stay up: look at it now" }
                ),
            )
        }
        (Some(m), _, _) => {
            engine.start(name).await?;
            let running = engine
                .inspect(name)
                .await
                .map(|i| is_running(&i))
                .unwrap_or(false);
            (
                running,
                format!(
                    "`{name}` (`{}`) was {}; Klaxon started it{}.",
                    image_of(m),
                    state_text(m),
                    if running {
                        ""
                    } else {
                        ", but it does not stay up: look at it now"
                    }
                ),
            )
        }
        (None, _, _) => (
            false,
            format!(
                "Neither `{name}`{} exists any more: nothing to start. Look at the engine now.",
                kept.map(|k| format!(" nor `{k}`")).unwrap_or_default()
            ),
        ),
    };
    info!(service = %row.service, deployment = row.id, running, "{summary}");
    Ok(Recovery {
        deployment: row.id,
        service: row.service.clone(),
        running,
        summary,
    })
}
