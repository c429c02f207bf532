//! Button clicks (and other message components), routed by `custom_id` prefix.
//!
//! Clicks are not slash commands, so poise does not dispatch them: the bot's event
//! handler hands every component interaction to [`dispatch`]. Each command family
//! owns a prefix (`logs:`, `rollback:`); a handler must answer within Discord's
//! 3 seconds and check the clicking member's level itself.

use poise::serenity_prelude as serenity;
use serenity::{ComponentInteraction, CreateInteractionResponse, CreateInteractionResponseMessage};
use tracing::warn;

pub use crate::render::reply_private;
use crate::{Data, Error};

pub async fn dispatch(
    ctx: &serenity::Context,
    app: &Data,
    click: &ComponentInteraction,
) -> Result<(), Error> {
    let custom_id = click.data.custom_id.as_str();
    let prefix = custom_id.split(':').next().unwrap_or_default();
    match prefix {
        crate::rollback::PREFIX => crate::rollback::on_click(ctx, app, click).await,
        crate::logs::PREFIX => crate::logs::on_click(ctx, app, click).await,
        klaxon_core::incidents::PREFIX => crate::incident::on_click(ctx, app, click).await,
        klaxon_core::alerts::deliver::PREFIX => crate::alerts::on_click(ctx, app, click).await,
        _ => {
            let _ = app;
            warn!(custom_id, "click on an unknown component");
            reply_private(ctx, click, "This button is no longer active.").await
        }
    }
}

/// A submitted modal, routed like clicks.
pub async fn dispatch_modal(
    ctx: &serenity::Context,
    app: &Data,
    modal: &serenity::ModalInteraction,
) -> Result<(), Error> {
    let custom_id = modal.data.custom_id.as_str();
    match custom_id.split(':').next().unwrap_or_default() {
        klaxon_core::incidents::PREFIX => crate::incident::on_modal(ctx, app, modal).await,
        _ => {
            warn!(custom_id, "submit of an unknown modal");
            let msg = CreateInteractionResponseMessage::new()
                .content("This form is no longer active.")
                .ephemeral(true);
            modal
                .create_response(ctx, CreateInteractionResponse::Message(msg))
                .await?;
            Ok(())
        }
    }
}
