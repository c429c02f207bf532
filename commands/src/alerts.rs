//! `/alerts list | silence | unsilence`, and the buttons under alert messages.

use klaxon_core::alerts::{deliver, silence};
use klaxon_core::audit::Outcome;
use klaxon_core::chat::{self, Embed};
use klaxon_core::incidents;
use klaxon_core::store::alerts as db;
use klaxon_core::timefmt::{duration_text, hhmm};
use klaxon_core::user_facing::UserFacing;
use poise::CreateReply;
use tracing::warn;

use crate::interaction::{self, Allowed, Target};
use crate::serenity::{
    self, ComponentInteraction, CreateAttachment, CreateInteractionResponse,
    CreateInteractionResponseMessage, EditInteractionResponse,
};
use crate::{render, Context, Error, UserError};

/// The longest silence Klaxon takes: longer quiet belongs in the alert rules.
const MAX_SILENCE_SECS: u64 = 7 * 86_400;

/// Firing alerts and silences
#[poise::command(
    slash_command,
    rename = "alerts",
    subcommands("list", "silence_cmd", "unsilence"),
    subcommand_required
)]
pub async fn alerts(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// What is firing now, and the silences in force
#[poise::command(slash_command)]
async fn list(ctx: Context<'_>) -> Result<(), Error> {
    let app = ctx.data();
    let now = app.clock.now_ms();
    let firing = db::firing(&app.store).await?;
    let silences = silence::active(&app.store, now).await?;
    let mut lines: Vec<String> = firing
        .iter()
        .map(|a| {
            let who = if a.service.is_empty() {
                String::new()
            } else {
                format!("**{}** ", chat::neutralize(&a.service))
            };
            format!(
                "{} {who}{} · {} · for {}",
                if a.held { "🔕" } else { "🔴" },
                chat::neutralize(&a.name),
                chat::neutralize(&chat::truncate(&a.summary, 120)),
                duration_text(now - a.first_seen_ms)
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("Nothing is firing. 🎉".into());
    }
    let mut embeds = vec![Embed {
        title: format!("{} firing", firing.len()),
        description: render::fit(&lines),
        color: if firing.is_empty() {
            chat::GREEN
        } else {
            chat::RED
        },
        ..Default::default()
    }];
    if !silences.is_empty() {
        let s: Vec<String> = silences
            .iter()
            .map(|s| {
                format!(
                    "#{} `{}` until {} · {} held · {} ({})",
                    s.id,
                    chat::neutralize(&silence::describe(&s.matchers)),
                    hhmm(s.ends_ms),
                    s.held,
                    chat::neutralize(&s.reason),
                    chat::neutralize(&s.created_by)
                )
            })
            .collect();
        embeds.push(Embed {
            title: format!("{} silence(s)", silences.len()),
            description: render::fit(&s),
            color: chat::GREY,
            ..Default::default()
        });
    }
    let mut reply = CreateReply::default().ephemeral(true);
    for e in &embeds {
        reply = reply.embed(crate::discord::embed(e));
    }
    ctx.send(reply).await?;
    Ok(())
}

/// Hold matching alerts back for a while (they are still recorded)
#[poise::command(slash_command, rename = "silence")]
async fn silence_cmd(
    ctx: Context<'_>,
    #[description = "Labels: service=api alertname=~High.*"]
    #[max_length = 300]
    matcher: String,
    #[description = "How long: 30m, 2h, 1d (at most 7d)"] duration: String,
    #[description = "Why, for the others"]
    #[max_length = 300]
    reason: String,
    #[description = "Also end it once the alerts it holds have resolved"] until_resolved: Option<
        bool,
    >,
) -> Result<(), Error> {
    let matchers = silence::parse_matchers(&matcher).map_err(UserError)?;
    let secs = klaxon_core::timefmt::parse_duration(&duration)
        .map(|d| d.as_secs())
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            UserError::new(format!(
                "`{}` is not a duration: write 30m, 2h or 1d.",
                chat::neutralize(&duration)
            ))
        })?;
    if secs > MAX_SILENCE_SECS {
        return Err(UserError::new("A silence lasts at most 7 days.").into());
    }
    if reason.trim().is_empty() {
        return Err(UserError::new("Say why, so the others know.").into());
    }
    let app = ctx.data();
    let now = app.clock.now_ms();
    let ends = now + (secs as i64) * 1_000;
    let until_resolved = until_resolved.unwrap_or(false);
    let id = silence::create(
        &app.store,
        &matchers,
        reason.trim(),
        &ctx.author().name,
        now,
        ends,
        until_resolved,
    )
    .await?;
    // Paging stops for the groups it holds, as with the alert's Silence button.
    let by = klaxon_core::actor::Actor::member(ctx.author().id.get(), ctx.author().name.clone());
    silence::stop_escalations(app, id, &matchers, &by).await?;
    ctx.say(format!(
        "🔕 Silence #{id}: `{}` until {}{} ({}). Matching alerts are recorded but not posted; `/alerts unsilence id:{id}` ends it.",
        chat::neutralize(&silence::describe(&matchers)),
        hhmm(ends),
        if until_resolved {
            " or until its alerts resolve"
        } else {
            ""
        },
        chat::neutralize(reason.trim())
    ))
    .await?;
    Ok(())
}

/// End a silence early
#[poise::command(slash_command)]
async fn unsilence(
    ctx: Context<'_>,
    #[description = "The silence's number (from /alerts list)"] id: i64,
) -> Result<(), Error> {
    let app = ctx.data();
    let now = app.clock.now_ms();
    if !silence::end(&app.store, id, &ctx.author().name, now).await? {
        return Err(UserError::new(format!("There is no active silence #{id}.")).into());
    }
    ctx.say(format!(
        "🔔 Silence #{id} ended. Alerts it held that still fire are posted now."
    ))
    .await?;
    Ok(())
}

// ----- the buttons under an alert group's message ---------------------------------

/// Reads a click on an alert message (`alerts:<ack|silence|incident|logs>:<group>`):
/// each needs the level of the command it stands for.
pub fn read_click(custom_id: &str) -> Option<Target> {
    let mut parts = custom_id.split(':').skip(1);
    let verb = parts.next().unwrap_or_default();
    let group = parts.next().and_then(|s| s.parse::<i64>().ok())?;
    let command = match verb {
        "ack" | "silence" => "alerts silence",
        "incident" => "incident open",
        _ => "logs",
    };
    Some(Target {
        verb: verb.to_string(),
        command: command.to_string(),
        arguments: format!("group={group} click={verb}"),
    })
}

/// A click on an alert message by a member whose level allows it.
pub async fn on_click(a: Allowed<'_, ComponentInteraction>) -> Result<(), Error> {
    let (app, click) = (a.app, a.interaction);
    let group = click
        .data
        .custom_id
        .split(':')
        .nth(2)
        .and_then(|s| s.parse::<i64>().ok());
    let Some(group) = group else {
        return a.reply_private("This button is no longer active.").await;
    };
    let verb = a.target.verb.as_str();
    let by = a.by.name.clone();
    let now = app.clock.now_ms();
    let (text, outcome) = match verb {
        "ack" => {
            deliver::acknowledge(&app.store, group, &by, now).await?;
            // Every pending step of the group's escalation ends with it.
            let why = format!("acknowledged by {by}");
            klaxon_core::oncall::escalate::stop(
                app,
                klaxon_core::oncall::escalate::Subject::Group(group),
                true,
                &why,
                &a.by,
            )
            .await?;
            // The message itself shows who acknowledged, at the next render.
            a.respond(CreateInteractionResponse::Acknowledge).await?;
            a.audit(Outcome::Ok, "acknowledged".into()).await;
            return Ok(());
        }
        "silence" => match deliver::group_matchers(&app.store, group).await? {
            Some((title, matchers)) if !matchers.is_empty() => {
                let ends = now + 3_600_000;
                let reason = format!("from the alert message ({title})");
                let id =
                    silence::create(&app.store, &matchers, &reason, &by, now, ends, false).await?;
                klaxon_core::oncall::escalate::stop(
                    app,
                    klaxon_core::oncall::escalate::Subject::Group(group),
                    false,
                    &format!("silenced by {by}"),
                    &a.by,
                )
                .await?;
                (
                    format!(
                        "🔕 Silence #{id}: `{}` until {}. `/alerts unsilence id:{id}` ends it.",
                        chat::neutralize(&silence::describe(&matchers)),
                        hhmm(ends)
                    ),
                    Outcome::Ok,
                )
            }
            _ => (
                "This alert group has no labels to silence by.".into(),
                Outcome::UserError,
            ),
        },
        "incident" => return open_incident(&a, group).await,
        _ => return show_logs(&a, group).await,
    };
    a.reply_private(&text).await?;
    a.audit(outcome, text).await;
    Ok(())
}

/// Open incident: pre-filled from the group, its alerts linked to the timeline.
async fn open_incident(a: &Allowed<'_, ComponentInteraction>, group: i64) -> Result<(), Error> {
    let (ctx, app, click) = (a.ctx, a.app, a.interaction);
    let (severity, firing) = deliver::group_firing(&app.store, group).await?;
    let Some((title, _)) = deliver::group_matchers(&app.store, group).await? else {
        return a.reply_private("This alert group is gone.").await;
    };
    let service = firing
        .iter()
        .find_map(|a| a.label("service"))
        .filter(|s| app.service(s).is_ok())
        .map(String::from);
    let req = incidents::OpenRequest {
        title: chat::truncate(&title, incidents::MAX_TITLE),
        severity,
        service,
        summary: firing.first().map(|a| a.summary().to_string()),
        guild_id: click.guild_id.map(|g| g.get()),
        by: interaction::who(&a.by),
        public: true,
    };
    // The summary is cut to fit by `open_from_alerts`: only the rest is checked here.
    let check = incidents::OpenRequest {
        summary: None,
        ..req.clone()
    };
    if let Err(e) = incidents::check_open(app, &check) {
        let text = e.to_string();
        a.reply_private(&text).await?;
        a.audit(Outcome::UserError, text).await;
        return Ok(());
    }
    a.respond(CreateInteractionResponse::Defer(
        CreateInteractionResponseMessage::new().ephemeral(true),
    ))
    .await?;
    let refs: Vec<&klaxon_core::alerts::Alert> = firing.iter().collect();
    let (text, outcome) = match incidents::open_from_alerts(app, req, &refs).await {
        Ok(opened) => {
            let i = &opened.incident;
            let mut t = format!("🚨 Opened **{}** ({}) from these alerts.", i.id, i.severity);
            if let Some(ch) = i.channel_id {
                t.push_str(&format!(" Work it in <#{ch}>."));
            }
            (t, Outcome::Ok)
        }
        Err(e) => match e.user_text() {
            Some(text) => (text, Outcome::UserError),
            None => {
                warn!(error = %e, "incident from alerts failed");
                (
                    klaxon_core::user_facing::GENERIC.to_string(),
                    Outcome::Failed,
                )
            }
        },
    };
    click
        .edit_response(
            ctx,
            EditInteractionResponse::new()
                .content(text.clone())
                .allowed_mentions(serenity::CreateAllowedMentions::new()),
        )
        .await?;
    a.audit(outcome, text).await;
    Ok(())
}

/// Logs: the service's last 15 minutes, privately.
async fn show_logs(a: &Allowed<'_, ComponentInteraction>, group: i64) -> Result<(), Error> {
    let (ctx, app, click) = (a.ctx, a.app, a.interaction);
    let service = deliver::group_service(&app.store, group).await?;
    let svc = service.as_deref().and_then(|s| app.service(s).ok());
    let Some((name, Some(container))) = svc.map(|s| (s.name.clone(), s.container.clone())) else {
        return a
            .reply_private("These alerts name no service with a container.")
            .await;
    };
    a.respond(CreateInteractionResponse::Defer(
        CreateInteractionResponseMessage::new().ephemeral(true),
    ))
    .await?;
    let now = chrono::Utc::now();
    let q = crate::logs::parse_query(&container, None, Some("15m"), None, None, None, None, now)
        .map_err(|e| UserError(e.to_string()))?;
    let result = match app.logs.redactor() {
        Ok(r) => match crate::logs::engine(app, &name) {
            Ok(engine) => klaxon_core::logs::read(&engine, r, &q, app.logs.read_timeout())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.0),
        },
        Err(e) => Err(e.to_string()),
    };
    let mut edit =
        EditInteractionResponse::new().allowed_mentions(serenity::CreateAllowedMentions::new());
    let outcome = match result {
        Ok(snap) => {
            let out = crate::logs::render(&name, &q, &snap, now);
            edit = edit.content(out.content);
            if let Some((filename, data)) = out.file {
                edit = edit.new_attachment(CreateAttachment::bytes(data, filename));
            }
            Outcome::Ok
        }
        Err(e) => {
            edit = edit.content(chat::truncate(&format!("⚠️ {e}"), chat::limits::CONTENT));
            Outcome::UserError
        }
    };
    click.edit_response(ctx, edit).await?;
    a.audit_with(format!("service={name} since=15m"), outcome, String::new())
        .await;
    Ok(())
}
