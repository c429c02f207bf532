//! `/health [service]`.

use poise::CreateReply;

use crate::serenity::{AutocompleteChoice, CreateAutocompleteResponse};
use crate::{render, Context, Error, UserError};

/// Autocomplete: configured service names, from memory (no I/O inside the 3 s).
pub async fn autocomplete_service(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    // Discord refuses more than 25 choices, and poise does not cut the list.
    let choices = ctx
        .data()
        .service_names_matching(partial, 25)
        .into_iter()
        .map(|name| AutocompleteChoice::new(name.clone(), name))
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}

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
