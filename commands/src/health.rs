//! `/health [service]`: the services, then the heartbeats (all, or the service's).

use poise::CreateReply;

use crate::choices::autocomplete_service;
use crate::{render, Context, Error, UserError};

/// Health of every watched service, or of one
#[poise::command(slash_command, rename = "health")]
pub async fn health(
    ctx: Context<'_>,
    #[description = "Only this service"]
    #[autocomplete = "autocomplete_service"]
    service: Option<String>,
) -> Result<(), Error> {
    let app = ctx.data();
    // Validate before deferring, so a typo gets a private answer at once.
    if let Some(name) = &service {
        app.service(name).map_err(UserError::from)?;
    }
    if app.health_may_be_slow(service.as_deref()) {
        ctx.defer().await?;
    }
    let report = app
        .health(service.as_deref())
        .await
        .map_err(UserError::from)?;
    let mut embed = render::health(&report);
    // Heartbeats: all of them, or those of the one service asked for.
    let beats = match klaxon_core::alerts::heartbeats::statuses(app).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "heartbeats not read for /health");
            Vec::new()
        }
    };
    let beats: Vec<_> = beats
        .into_iter()
        .filter(|h| {
            service.as_deref().is_none_or(|want| {
                h.service
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(want.trim()))
            })
        })
        .collect();
    if let Some(field) = render::heartbeats(&beats) {
        if embed.fields.len() >= klaxon_core::chat::limits::EMBED_FIELDS {
            embed.fields.pop();
        }
        embed.fields.push(field);
    }
    ctx.send(CreateReply::default().embed(crate::discord::embed(&embed)))
        .await?;
    Ok(())
}
