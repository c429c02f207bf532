//! The one pipeline every interaction goes through, whatever started it: a slash
//! command or context menu (through poise and `hooks`), a button click or
//! a form submit (through the registry in `components`).
//!
//! Here, once: who acted ([`Actor`]), the permission check against the config's
//! policy, the audit row, and the private answer. Command families only say what
//! their custom ids mean ([`Target`]) and what an allowed member's action does, so
//! a new button cannot forget its permission check. This module imports no command
//! family: the families and the registry import it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use klaxon_core::actor::Actor;
use klaxon_core::audit::{AuditEntry, Outcome};
use klaxon_core::permissions::Denied;
use klaxon_core::user_facing::{internal_reply, UserFacing};
use tracing::{info, warn};

use crate::serenity::{
    self, ComponentInteraction, CreateInteractionResponse, CreateInteractionResponseFollowup,
    CreateInteractionResponseMessage, ModalInteraction,
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
pub fn who(actor: &Actor) -> Actor {
    Actor::member(actor.user_id, actor.name.clone())
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
///
/// Handlers answer through [`Allowed::respond`] (or [`Allowed::reply_private`]),
/// never through the interaction itself: the pipeline then knows whether the
/// initial response went out, so that a handler's failure is answered once, as
/// the initial response or as a follow-up ([`answer_failure`]).
pub struct Allowed<'a, I> {
    pub ctx: &'a serenity::Context,
    pub app: &'a Data,
    pub interaction: &'a I,
    pub by: Actor,
    pub roles: Vec<u64>,
    pub target: Target,
    pub(crate) answered: Answered,
}

/// Whether an interaction has had its initial response (a message, an update,
/// a defer or a modal), shared between the handler and the pipeline.
#[derive(Debug, Clone, Default)]
pub struct Answered(Arc<AtomicBool>);

impl Answered {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The interactions a member answers by clicking or submitting: both take an
/// initial response and ephemeral follow-ups the same way.
pub trait Respond: Sync {
    fn initial<'a>(
        &'a self,
        ctx: &'a serenity::Context,
        response: CreateInteractionResponse,
    ) -> BoxFuture<'a, serenity::Result<()>>;
    fn followup<'a>(
        &'a self,
        ctx: &'a serenity::Context,
        message: CreateInteractionResponseFollowup,
    ) -> BoxFuture<'a, serenity::Result<()>>;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

macro_rules! respond_for {
    ($ty:ty) => {
        impl Respond for $ty {
            fn initial<'a>(
                &'a self,
                ctx: &'a serenity::Context,
                response: CreateInteractionResponse,
            ) -> BoxFuture<'a, serenity::Result<()>> {
                Box::pin(self.create_response(ctx, response))
            }
            fn followup<'a>(
                &'a self,
                ctx: &'a serenity::Context,
                message: CreateInteractionResponseFollowup,
            ) -> BoxFuture<'a, serenity::Result<()>> {
                Box::pin(async move { self.create_followup(ctx, message).await.map(|_| ()) })
            }
        }
    };
}
respond_for!(ComponentInteraction);
respond_for!(ModalInteraction);

impl<I: Respond> Allowed<'_, I> {
    /// The initial response, recorded as sent (even when Discord refused it: a
    /// second initial response would be a protocol error).
    pub async fn respond(&self, response: CreateInteractionResponse) -> Result<(), Error> {
        self.answered.set();
        self.interaction.initial(self.ctx, response).await?;
        Ok(())
    }

    /// A private initial answer, which pings nobody.
    pub async fn reply_private(&self, text: &str) -> Result<(), Error> {
        self.respond(private_message(text)).await
    }
}

/// The text a member sees for a failure: an error written for them is shown as it
/// is ([`UserFacing`]), anything else gets the generic reply (a full disk named).
pub fn failure_text(error: &Error) -> String {
    fn user<E: UserFacing + Send + Sync + std::fmt::Debug + 'static>(
        error: &Error,
    ) -> Option<String> {
        error.downcast_ref::<E>().and_then(|e| e.user_text())
    }
    user::<crate::UserError>(error)
        .or_else(|| user::<klaxon_core::incidents::IncidentError>(error))
        .or_else(|| user::<klaxon_core::maintenance::MaintenanceError>(error))
        .or_else(|| user::<klaxon_core::rollout::RolloutError>(error))
        .unwrap_or_else(|| internal_reply(error).to_string())
}

/// A core error as commands return it: its text for the member when it is
/// written for them, otherwise an internal error with `context` (generic reply).
pub fn user_error<E>(e: E, context: &'static str) -> Error
where
    E: UserFacing + std::error::Error + Send + Sync + 'static,
{
    match e.user_text() {
        Some(text) => crate::UserError(text).into(),
        None => anyhow::Error::new(e).context(context),
    }
}

/// Answers a click or submit whose handler failed, as slash commands are answered
/// (poise's hooks): privately, as the initial response when the handler sent
/// none, otherwise as an ephemeral follow-up. The caller logs the error.
pub async fn answer_failure<I: Respond>(
    ctx: &serenity::Context,
    interaction: &I,
    answered: &Answered,
    error: &Error,
) {
    let text = failure_text(error);
    let sent = if answered.get() {
        let message = CreateInteractionResponseFollowup::new()
            .content(klaxon_core::chat::truncate(
                &text,
                klaxon_core::chat::limits::CONTENT,
            ))
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new());
        interaction.followup(ctx, message).await
    } else {
        answered.set();
        interaction.initial(ctx, private_message(&text)).await
    };
    if let Err(e) = sent {
        warn!(error = %e, "could not answer the failed interaction");
    }
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

/// An ephemeral answer to an interaction no handler has taken (an unknown id, a
/// refusal).
pub async fn reply_private<I: Respond>(
    ctx: &serenity::Context,
    interaction: &I,
    text: &str,
) -> Result<(), Error> {
    interaction.initial(ctx, private_message(text)).await?;
    Ok(())
}
