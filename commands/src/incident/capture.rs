//! Messages into an incident's timeline: the "Add to timeline" message command and
//! the 📌 reaction.

use klaxon_core::chat::PostedMessage;
use klaxon_core::incidents;
use poise::CreateReply;
use tracing::warn;

use super::user_error;
use crate::serenity;
use crate::{Context, Data, Error, UserError};

pub fn permalink(guild_id: Option<u64>, channel_id: u64, message_id: u64) -> String {
    format!(
        "https://discord.com/channels/{}/{channel_id}/{message_id}",
        guild_id.map_or_else(|| "@me".to_string(), |g| g.to_string())
    )
}

/// What capturing a message said, for the member.
pub async fn capture_text(
    app: &Data,
    guild_id: Option<u64>,
    m: &PostedMessage,
) -> Result<String, Error> {
    let link = permalink(guild_id, m.channel_id, m.id);
    match incidents::capture(app, m.channel_id, m, link)
        .await
        .map_err(user_error)?
    {
        None => Err(UserError::new("This message is not in an incident's thread.").into()),
        Some((i, true)) => Ok(format!("📌 Added to {}'s timeline.", i.id)),
        Some((i, false)) => Ok(format!("This message is already in {}'s timeline.", i.id)),
    }
}

/// The message command's name in `[permissions]` (its menu label is "Add to timeline").
pub const ADD_TO_TIMELINE: &str = "add-to-timeline";

/// The emoji that pins a message to its incident's timeline.
pub const PIN: &str = "📌";

/// A 📌 reaction in an incident thread: the message goes to the timeline. Reactions
/// are not commands, so the member's level is checked here, like a click.
pub async fn on_reaction(ctx: &serenity::Context, app: &Data, r: &serenity::Reaction) {
    let _ = ctx;
    if !matches!(&r.emoji, serenity::ReactionType::Unicode(e) if e == PIN) {
        return;
    }
    let roles: Vec<u64> = r
        .member
        .as_ref()
        .map(|m| m.roles.iter().map(|x| x.get()).collect())
        .unwrap_or_default();
    let user = r.user_id.map(|u| u.get()).unwrap_or_default();
    if let Err(denied) = crate::interaction::permit(app, ADD_TO_TIMELINE, &roles) {
        tracing::info!(user, %denied, "pin reaction ignored");
        return;
    }
    // Only messages in an incident's thread or channel: no fetch for every 📌 elsewhere.
    match incidents::db::by_channel(&app.store, r.channel_id.get()).await {
        Ok(Some(_)) => {}
        Ok(None) => return,
        Err(e) => {
            warn!(error = %e, "pin reaction: incident lookup failed");
            return;
        }
    }
    let message = match app.chat.fetch(r.channel_id.get(), r.message_id.get()).await {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, message_id = %r.message_id, "pinned message not readable");
            return;
        }
    };
    let guild = r.guild_id.map(|g| g.get());
    match capture_text(app, guild, &message).await {
        Ok(text) => tracing::info!(user, message_id = %r.message_id, "{text}"),
        Err(e) => tracing::debug!(error = %e, "pin reaction outside an incident"),
    }
}

/// Add a message to its incident's timeline
#[poise::command(context_menu_command = "Add to timeline", rename = "add-to-timeline")]
pub async fn add_to_timeline(ctx: Context<'_>, message: serenity::Message) -> Result<(), Error> {
    let m = crate::discord::posted(&message);
    let text = capture_text(ctx.data(), ctx.guild_id().map(|g| g.get()), &m).await?;
    ctx.send(CreateReply::default().content(text).ephemeral(true))
        .await?;
    Ok(())
}
