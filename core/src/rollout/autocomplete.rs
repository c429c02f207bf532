//! The `to` choices of `/rollback`: images of the service's repository on the
//! engine and in Klaxon's history, answered within Discord's autocomplete window.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::docker::images::repository;
use crate::store::deployments;
use crate::timefmt::human_duration;

/// One autocomplete choice for `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageChoice {
    pub reference: String,
    pub label: String,
}

/// Images of the service's repository known to the engine and to Klaxon's history,
/// newest first, each with its age; the running one left out.
pub async fn image_choices(
    app: &App,
    service: &str,
    partial: &str,
    limit: usize,
) -> Vec<ImageChoice> {
    let Ok(svc) = app.service(service) else {
        return Vec::new();
    };
    // A Swarm service (issue #16): the image its spec names stands in for the container's.
    let swarm = svc.swarm_service.clone();
    let Some(container) = svc.container.clone().or_else(|| swarm.clone()) else {
        return Vec::new();
    };
    let history = deployments::recent(&app.store, &svc.name, 50)
        .await
        .unwrap_or_default();
    let mut current_id = String::new();
    let mut engine_images = Vec::new();
    // The engine's images when it answers; Klaxon's history either way.
    let engine = match app.engine_for(svc) {
        Ok(engine) if engine.ready().await.is_ok() => Some(engine),
        _ => None,
    };
    if let Some(sw) = engine.filter(|_| swarm.is_some()) {
        if let Ok(service) = sw.inspect_service(&container).await {
            let configured = service
                .spec
                .and_then(|s| s.task_template)
                .and_then(|t| t.container_spec)
                .and_then(|c| c.image)
                .unwrap_or_default();
            let local = configured.split('@').next().unwrap_or_default();
            if let Ok(img) = sw.inspect_image(local).await {
                current_id = img.id.unwrap_or_default();
            }
            engine_images = sw.candidates(repository(local)).await.unwrap_or_default();
        }
    } else if let Some(engine) = engine {
        if let Ok(info) = engine.inspect(&container).await {
            current_id = info.image.clone().unwrap_or_default();
            let configured = info
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let repo = repository(&configured).to_string();
            engine_images = engine.candidates(&repo).await.unwrap_or_default();
        }
    }
    let now = Utc::now();
    let age = |t: DateTime<Utc>| human_duration((now - t).to_std().unwrap_or_default());
    let p = partial.trim().to_lowercase();
    // (sort key, choice)
    let mut out: Vec<(i64, ImageChoice)> = Vec::new();
    let mut seen = HashSet::new();
    for img in engine_images {
        if img.id == current_id || !seen.insert(img.reference.clone()) {
            continue;
        }
        let mut label = img.reference.clone();
        if let Some(c) = img.created {
            label.push_str(&format!(" · built {} ago", age(c)));
        }
        if history
            .iter()
            .any(|d| d.from_image_id == img.id || d.to_image_id == img.id)
        {
            label.push_str(" · deployed before");
        }
        let when = img.created.map(|c| c.timestamp_millis()).unwrap_or(0);
        out.push((
            when,
            ImageChoice {
                reference: img.reference,
                label,
            },
        ));
    }
    for d in &history {
        for (reference, id) in [
            (&d.from_image, &d.from_image_id),
            (&d.to_image, &d.to_image_id),
        ] {
            if *id == current_id || reference.is_empty() || !seen.insert(reference.clone()) {
                continue;
            }
            let ran = DateTime::from_timestamp_millis(d.started_ms).unwrap_or(now);
            out.push((
                d.started_ms,
                ImageChoice {
                    reference: reference.clone(),
                    label: format!("{reference} · ran {} ago · not on the engine", age(ran)),
                },
            ));
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    out.into_iter()
        .map(|(_, c)| c)
        // Discord refuses choices longer than 100 characters.
        .filter(|c| c.reference.len() <= 100 && c.reference.to_lowercase().contains(&p))
        .map(|c| ImageChoice {
            label: crate::chat::truncate(&c.label, 100),
            ..c
        })
        .take(limit)
        .collect()
}
