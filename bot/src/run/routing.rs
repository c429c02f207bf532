//! Gateway events to the code that handles them: a click or a modal goes to the
//! commands' dispatchers, a 📌 reaction and message edits and deletions to the
//! incident timeline, and connection stages to `/readyz`. Slash commands and
//! autocompletes do not come through here: poise routes them itself (see
//! `klaxon_commands::hooks`).
//!
//! Apart from leadership so that what an event calls can change without touching
//! the gateway session's life cycle.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use klaxon_core::App;
use poise::serenity_prelude as serenity;
use tracing::{error, info, warn};

/// poise's event handler: every gateway event the leader's session receives.
pub(super) async fn on_event(
    ctx: &serenity::Context,
    event: &serenity::FullEvent,
    app: &Arc<App>,
) -> anyhow::Result<()> {
    match event {
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Component(click),
        } => {
            let _busy = klaxon_core::app::in_flight(app);
            if let Err(e) = klaxon_commands::components::dispatch(ctx, app, click).await {
                error!(error = format!("{e:#}"), custom_id = %click.data.custom_id, "button handler failed");
            }
        }
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Modal(modal),
        } => {
            let _busy = klaxon_core::app::in_flight(app);
            if let Err(e) = klaxon_commands::components::dispatch_modal(ctx, app, modal).await {
                error!(error = format!("{e:#}"), custom_id = %modal.data.custom_id, "modal handler failed");
            }
        }
        serenity::FullEvent::ReactionAdd { add_reaction } => {
            klaxon_commands::incident::on_reaction(ctx, app, add_reaction).await;
        }
        serenity::FullEvent::MessageUpdate { event, .. } => {
            if let Some(content) = &event.content {
                if let Err(e) =
                    klaxon_core::incidents::message_edited(app, event.id.get(), content).await
                {
                    warn!(error = %e, message_id = %event.id, "timeline entry not updated");
                }
            }
        }
        serenity::FullEvent::MessageDelete {
            deleted_message_id, ..
        } => {
            if let Err(e) =
                klaxon_core::incidents::message_deleted(app, deleted_message_id.get()).await
            {
                warn!(error = %e, message_id = %deleted_message_id, "timeline entry not marked");
            }
        }
        serenity::FullEvent::Resume { .. } => app.chat_connected.store(true, Ordering::Relaxed),
        serenity::FullEvent::ShardStageUpdate { event } => {
            let up = matches!(event.new, serenity::ConnectionStage::Connected);
            app.chat_connected.store(up, Ordering::Relaxed);
            info!(old = ?event.old, new = ?event.new, "gateway stage");
        }
        _ => {}
    }
    Ok(())
}
