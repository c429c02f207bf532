//! Poise's side of the interaction pipeline ([`crate::interaction`]): every slash
//! command and context menu gets the same permission check, audit row and metrics
//! as buttons and forms, and an answer when something goes wrong. Autocomplete
//! (the member typing an option) is answered too, and is not a command run.

use std::time::Instant;

use klaxon_core::audit::Outcome;
use klaxon_core::permissions::Denied;
use poise::{CreateReply, FrameworkError};
use tracing::{error, warn};

use crate::serenity::{self, CommandDataOption, CommandDataOptionValue};
use crate::{interaction, Context, Data, Error, UserError};

/// When the check started: the duration in the audit covers the whole invocation.
/// Also keeps the invocation counted as in flight (graceful shutdown waits for it)
/// until poise drops its invocation data at the end of the command.
struct Started(Instant, #[allow(dead_code)] klaxon_core::app::InFlight);

/// Shown for anything that is not a [`UserError`]: no internals leak to chat.
const GENERIC: &str = klaxon_core::user_facing::GENERIC;

/// The reply for an error that is not the member's: disk full is named, anything
/// else is generic.
pub fn generic_reply(error: &Error) -> &'static str {
    klaxon_core::user_facing::internal_reply(error)
}

/// An autocomplete request: the member typing an option, not running a command.
fn autocomplete(ctx: Context<'_>) -> Option<poise::ApplicationContext<'_, Data, Error>> {
    match ctx {
        poise::Context::Application(a)
            if a.interaction_type == poise::CommandInteractionType::Autocomplete =>
        {
            Some(a)
        }
        _ => None,
    }
}

/// Answers an autocomplete that may not run with no choices: without an answer
/// Discord shows "Loading options failed".
async fn no_choices(a: poise::ApplicationContext<'_, Data, Error>) {
    let answer = serenity::CreateInteractionResponse::Autocomplete(
        serenity::CreateAutocompleteResponse::new(),
    );
    if let Err(e) = a
        .interaction
        .create_response(a.serenity_context(), answer)
        .await
    {
        warn!(error = %e, command = %a.command().qualified_name, "could not answer the autocomplete");
    }
}

/// `command_check` for every command: members only (no DMs), at the command's
/// level. Discord's own per-command settings are never trusted.
pub async fn check(ctx: Context<'_>) -> Result<bool, Error> {
    ctx.set_invocation_data(Started(
        Instant::now(),
        klaxon_core::app::in_flight(ctx.data()),
    ))
    .await;
    let Some(roles) = member_roles(ctx) else {
        return Err(UserError::new(
            "Klaxon commands work only inside the server, not in direct messages.",
        )
        .into());
    };
    let name = &ctx.command().qualified_name;
    match interaction::permit(ctx.data(), name, &roles) {
        Ok(()) => Ok(true),
        Err(denied) => Err(denied.into()),
    }
}

/// The member's roles; `None` in a direct message.
fn member_roles(ctx: Context<'_>) -> Option<Vec<u64>> {
    match ctx {
        poise::Context::Application(a) => {
            interaction::member_roles(a.interaction.member.as_deref())
        }
        poise::Context::Prefix(p) => p
            .msg
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect()),
    }
}

pub async fn post_command(ctx: Context<'_>) {
    finish(ctx, Outcome::Ok, String::new()).await;
}

/// Records the invocation: audit table (and channel) plus metrics.
async fn finish(ctx: Context<'_>, outcome: Outcome, detail: String) {
    let started = ctx.invocation_data::<Started>().await.map(|s| s.0);
    let duration_ms = started.map(|s| s.elapsed().as_millis() as i64).unwrap_or(0);
    let command = ctx.command().qualified_name.to_string();
    let by = interaction::actor(ctx.author(), ctx.guild_id(), ctx.channel_id());
    interaction::log_finished(&command, by.user_id, outcome, duration_ms);
    let app = ctx.data();
    app.metrics.inc(
        "klaxon_commands_total",
        &[("command", &command), ("outcome", outcome.as_str())],
    );
    app.metrics.observe(
        "klaxon_command_duration_seconds",
        &[("command", &command), ("outcome", outcome.as_str())],
        started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0),
    );
    interaction::record(
        app,
        &by,
        &command,
        arguments(ctx),
        outcome,
        detail,
        duration_ms,
    )
    .await;
}

/// `name=value` pairs as the member typed them, subcommands included.
fn arguments(ctx: Context<'_>) -> String {
    fn walk(opts: &[CommandDataOption], out: &mut Vec<String>) {
        for o in opts {
            match &o.value {
                CommandDataOptionValue::SubCommand(inner)
                | CommandDataOptionValue::SubCommandGroup(inner) => walk(inner, out),
                v => out.push(format!("{}={}", o.name, value(v))),
            }
        }
    }
    fn value(v: &CommandDataOptionValue) -> String {
        match v {
            CommandDataOptionValue::String(s) => klaxon_core::chat::truncate(s, 200),
            CommandDataOptionValue::Integer(i) => i.to_string(),
            CommandDataOptionValue::Number(n) => n.to_string(),
            CommandDataOptionValue::Boolean(b) => b.to_string(),
            CommandDataOptionValue::User(u) => format!("<@{u}>"),
            CommandDataOptionValue::Role(r) => format!("<@&{r}>"),
            CommandDataOptionValue::Channel(c) => format!("<#{c}>"),
            CommandDataOptionValue::Mentionable(m) => m.to_string(),
            CommandDataOptionValue::Attachment(a) => format!("attachment:{a}"),
            _ => "?".into(),
        }
    }
    match ctx {
        poise::Context::Application(a) => {
            let mut out = Vec::new();
            walk(&a.interaction.data.options, &mut out);
            out.join(" ")
        }
        poise::Context::Prefix(p) => p.args.to_string(),
    }
}

async fn reply_private(ctx: Context<'_>, text: &str) {
    let reply = CreateReply::default()
        .content(klaxon_core::chat::truncate(text, 2_000))
        .ephemeral(true);
    if let Err(e) = ctx.send(reply).await {
        warn!(error = %e, command = %ctx.command().qualified_name, "could not send the error reply");
    }
}

/// Every failure gets an answer (poise's default would leave the member with
/// "The application did not respond") and an audit row.
pub async fn on_error(err: FrameworkError<'_, Data, Error>) {
    // Typing an option is not a command run: whatever went wrong (a refusal, an
    // option Klaxon does not know), the member gets no choices and no audit row.
    if let Some(a) = err.ctx().and_then(autocomplete) {
        tracing::debug!(command = %a.command().qualified_name, error = %err, "autocomplete not offered");
        no_choices(a).await;
        return;
    }
    match err {
        FrameworkError::Command { error, ctx, .. } => {
            if let Some(user) = error.downcast_ref::<UserError>() {
                reply_private(ctx, &user.0).await;
                finish(ctx, Outcome::UserError, user.0.clone()).await;
            } else {
                error!(
                    command = %ctx.command().qualified_name,
                    user_id = ctx.author().id.get(),
                    error = format!("{error:#}"),
                    "command failed"
                );
                reply_private(ctx, generic_reply(&error)).await;
                finish(
                    ctx,
                    Outcome::Failed,
                    klaxon_core::chat::truncate(&format!("{error:#}"), 500),
                )
                .await;
            }
        }
        FrameworkError::CommandCheckFailed { error, ctx, .. } => {
            let (text, outcome) = match &error {
                Some(e) if e.downcast_ref::<Denied>().is_some() => (e.to_string(), Outcome::Denied),
                Some(e) if e.downcast_ref::<UserError>().is_some() => {
                    (e.to_string(), Outcome::Denied)
                }
                Some(e) => {
                    error!(error = format!("{e:#}"), "permission check failed");
                    (GENERIC.to_string(), Outcome::Failed)
                }
                None => ("You may not run this command.".to_string(), Outcome::Denied),
            };
            reply_private(ctx, &text).await;
            finish(ctx, outcome, text).await;
        }
        FrameworkError::ArgumentParse {
            error, input, ctx, ..
        } => {
            let text = match input {
                Some(input) => format!(
                    "Could not read `{}`: {error}",
                    klaxon_core::chat::neutralize(&input)
                ),
                None => format!("Could not read the arguments: {error}"),
            };
            reply_private(ctx, &text).await;
            finish(ctx, Outcome::UserError, text).await;
        }
        FrameworkError::GuildOnly { ctx, .. } => {
            let text = "Klaxon commands work only inside the server, not in direct messages.";
            reply_private(ctx, text).await;
            finish(ctx, Outcome::Denied, text.into()).await;
        }
        FrameworkError::CommandStructureMismatch {
            description, ctx, ..
        } => {
            // Discord sent options that do not match the command as Klaxon knows it:
            // a registration from another version. Answer rather than time out.
            let ctx = poise::Context::Application(ctx);
            error!(command = %ctx.command().qualified_name, description, "command structure mismatch");
            let text = "Klaxon could not read this command's options; its commands may have just been updated. Try again in a minute.";
            reply_private(ctx, text).await;
            finish(ctx, Outcome::Failed, description.to_string()).await;
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                warn!(error = %e, "error while handling a framework error");
            }
        }
    }
}

/// Options for poise with Klaxon's hooks; the bot adds its event handler.
pub fn framework_options(commands: Vec<crate::Command>) -> poise::FrameworkOptions<Data, Error> {
    poise::FrameworkOptions {
        commands,
        command_check: Some(|ctx| Box::pin(check(ctx))),
        post_command: |ctx| Box::pin(post_command(ctx)),
        on_error: |err| Box::pin(on_error(err)),
        // Klaxon never pings from a reply; paging names roles explicitly.
        allowed_mentions: Some(serenity::CreateAllowedMentions::new()),
        // The owners lookup is one more REST call at start-up for a feature Klaxon
        // does not use: permissions come from roles.
        initialize_owners: false,
        skip_checks_for_owners: false,
        ..Default::default()
    }
}
