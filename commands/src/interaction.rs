//! The one pipeline every interaction goes through, whatever started it: a slash
//! command or context menu (through poise and `hooks`), a button click or
//! a form submit (through the registry in `components`).
//!
//! Here, once: who acted ([`Actor`]), the permission check against the config's
//! policy, the audit row, and the private answer. Command families only say what
//! their custom ids mean ([`Target`]) and what an allowed member's action does, so
//! a new button cannot forget its permission check. This module imports no command
//! family: the families and the registry import it.

use klaxon_core::actor::Actor;
use klaxon_core::audit::{AuditEntry, Outcome};
use klaxon_core::permissions::Denied;
use tracing::info;

use crate::serenity::{
    self, ComponentInteraction, CreateInteractionResponse, CreateInteractionResponseMessage,
    ModalInteraction,
};
use crate::{Data, Error};

/// The acting member as core names them.
pub fn actor(
    user: &serenity::User,
    guild: Option<serenity::GuildId>,
    channel: serenity::ChannelId,
) -> Actor {
    Actor {
        user_id: user.id.get(),
        name: user.name.clone(),
        guild_id: guild.map(|g| g.get()),
        channel_id: Some(channel.get()),
    }
}

/// The actor as the incident timeline names them.
pub fn who(actor: &Actor) -> klaxon_core::incidents::Who {
    klaxon_core::incidents::Who {
        id: actor.user_id,
        name: actor.name.clone(),
    }
}

/// The member's role ids; `None` outside the server (a direct message).
pub fn member_roles(member: Option<&serenity::Member>) -> Option<Vec<u64>> {
    member.map(|m| m.roles.iter().map(|r| r.get()).collect())
}

/// The one permission check: may a member with these roles run `command`? Levels
/// come from the config's `[permissions]` over each command's default; Discord's
/// own per-command settings are never trusted.
pub fn permit(app: &Data, command: &str, roles: &[u64]) -> Result<(), Denied> {
    app.policy.check(command, roles).map(|_| ())
}

/// One interaction's audit row (table and channel), and its log line.
pub async fn record(
    app: &Data,
    by: &Actor,
    command: &str,
    arguments: String,
    outcome: Outcome,
    detail: String,
    duration_ms: i64,
) {
    let entry = AuditEntry {
        at_ms: chrono::Utc::now().timestamp_millis(),
        guild_id: by.guild_id,
        channel_id: by.channel_id,
        user_id: by.user_id,
        user_name: by.name.clone(),
        command: command.to_string(),
        arguments,
        outcome,
        detail,
        duration_ms,
    };
    app.audit(entry).await;
}

/// Logs a finished slash command as every command's log line reads.
pub fn log_finished(command: &str, user_id: u64, outcome: Outcome, duration_ms: i64) {
    info!(
        command = %command,
        user_id,
        outcome = outcome.as_str(),
        duration_ms,
        "command finished"
    );
}

/// What a button's or form's custom id asks for, as the family owning its prefix
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The action (`ack`, `stop`, `confirm`, `m-note`…).
    pub verb: String,
    /// The command whose level the action needs; it names the audit row too.
    pub command: String,
    /// What the audit row shows as the arguments.
    pub arguments: String,
}

/// A click or submit by a member whose level allows it.
pub struct Allowed<'a, I> {
    pub ctx: &'a serenity::Context,
    pub app: &'a Data,
    pub interaction: &'a I,
    pub by: Actor,
    pub roles: Vec<u64>,
    pub target: Target,
}

impl<I> Allowed<'_, I> {
    /// The audit row for this action.
    pub async fn audit(&self, outcome: Outcome, detail: String) {
        self.audit_with(self.target.arguments.clone(), outcome, detail)
            .await;
    }

    /// The audit row, with arguments learnt while acting.
    pub async fn audit_with(&self, arguments: String, outcome: Outcome, detail: String) {
        record(
            self.app,
            &self.by,
            &self.target.command,
            arguments,
            outcome,
            detail,
            0,
        )
        .await;
    }
}

/// A private answer, which pings nobody.
pub fn private_message(text: &str) -> CreateInteractionResponse {
    CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(klaxon_core::chat::truncate(
                text,
                klaxon_core::chat::limits::CONTENT,
            ))
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    )
}

/// An ephemeral answer to a click.
pub async fn reply_private(
    ctx: &serenity::Context,
    click: &ComponentInteraction,
    text: &str,
) -> Result<(), Error> {
    click.create_response(ctx, private_message(text)).await?;
    Ok(())
}

/// An ephemeral answer to a form.
pub async fn reply_private_form(
    ctx: &serenity::Context,
    form: &ModalInteraction,
    text: &str,
) -> Result<(), Error> {
    form.create_response(ctx, private_message(text)).await?;
    Ok(())
}
