//! `/health [service]`.

use poise::CreateReply;

pub use crate::choices::autocomplete_service;
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
    ctx.send(CreateReply::default().embed(render::embed(&render::health(&report))))
        .await?;
    Ok(())
}
