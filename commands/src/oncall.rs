//! `/oncall now | shifts | override | cover | overrides | override-cancel | page`: who
//! is on call, the coming shifts, overrides of the rotation, and a page by hand
//! (through the escalation runtime, `core::oncall::escalate`).
//!
//! The command reads arguments and renders; who is on call is `core::oncall` (the
//! pure resolver over the config's schedule and the override rows). Replies name
//! members with mentions that never ping (`allowed_mentions` empty) and give times
//! in the schedule's zone and as Discord's relative timestamp, short lines for a
//! phone rather than tables.

use klaxon_core::actor::Actor;
use klaxon_core::chat;
use klaxon_core::maintenance::when;
use klaxon_core::oncall::resolve::{Segment, Source};
use klaxon_core::oncall::{self, OncallError, OverrideRequest};
use klaxon_core::settings::oncall::Schedule;
use poise::serenity_prelude::{self as serenity, AutocompleteChoice, CreateAutocompleteResponse};
use poise::CreateReply;

use crate::{Context, Error, UserError};

fn user_error(e: OncallError) -> Error {
    crate::interaction::user_error(e, "on-call")
}

fn who(ctx: Context<'_>) -> Actor {
    Actor {
        user_id: ctx.author().id.get(),
        name: ctx.author().name.clone(),
        guild_id: ctx.guild_id().map(|g| g.get()),
        channel_id: Some(ctx.channel_id().get()),
    }
}

/// A reply that shows members without pinging anyone.
async fn say(ctx: Context<'_>, text: String, ephemeral: bool) -> Result<(), Error> {
    ctx.send(
        CreateReply::default()
            .content(chat::truncate(&text, chat::limits::CONTENT))
            .allowed_mentions(serenity::CreateAllowedMentions::new())
            .ephemeral(ephemeral),
    )
    .await?;
    Ok(())
}

/// Who is on call, and overrides of the rotation
#[poise::command(
    slash_command,
    rename = "oncall",
    subcommands(
        "now",
        "shifts",
        "override_",
        "cover",
        "overrides",
        "override_cancel",
        "page"
    ),
    subcommand_required
)]
pub async fn oncall(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Autocomplete for `schedule`: configured names, from memory.
async fn autocomplete_schedule(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let choices = ctx
        .data()
        .oncall
        .schedule_names_matching(partial, 25)
        .into_iter()
        .map(|n| AutocompleteChoice::new(n.clone(), n))
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}

fn member_text(m: Option<u64>) -> String {
    match m {
        Some(id) => chat::discord::span(&chat::Span::User(id)),
        None => "nobody".into(),
    }
}

/// `until Mon 14 Dec 09:00 Europe/Berlin (08:00 UTC), <t:…:R>`.
fn until_text(until: Option<i64>, now: i64, s: &Schedule) -> String {
    match until {
        Some(ms) => format!(
            "until {}, {}",
            when::time_text(ms, now, s.tz),
            chat::discord::span(&when::relative(ms))
        ),
        None => "with no hand-off ahead".into(),
    }
}

/// Who is on call now, and until when
#[poise::command(slash_command)]
async fn now(
    ctx: Context<'_>,
    #[description = "Which schedule (default: all)"]
    #[autocomplete = "autocomplete_schedule"]
    #[max_length = 32]
    schedule: Option<String>,
) -> Result<(), Error> {
    let app = ctx.data();
    let picked: Vec<&Schedule> = match &schedule {
        Some(name) => vec![oncall::schedule(app, name).map_err(user_error)?],
        None if app.oncall.schedules.is_empty() => {
            return Err(UserError::new(
                "No on-call schedules are configured (`[[oncall.schedules]]`).",
            )
            .into())
        }
        None => app.oncall.schedules.iter().collect(),
    };
    let now_ms = app.clock.now_ms();
    let mut lines = Vec::new();
    for s in picked {
        let at = oncall::now(app, s).await.map_err(user_error)?;
        let why = match at.source {
            Source::Override(id) => format!(" (override #{id})"),
            _ => String::new(),
        };
        lines.push(format!(
            "📟 **{}**: {}{why} {}",
            s.name,
            member_text(at.member),
            until_text(at.until_ms, now_ms, s)
        ));
    }
    say(ctx, lines.join("\n"), false).await
}

fn segment_line(seg: &Segment, now: i64, s: &Schedule) -> String {
    let mark = match seg.source {
        Source::Override(id) => format!(" ✋ override #{id}"),
        _ => String::new(),
    };
    format!(
        "• {} → {}: {}{mark}",
        when::time_text(seg.from_ms, now, s.tz),
        when::time_text(seg.until_ms, now, s.tz),
        member_text(seg.member)
    )
}

/// The coming shifts of a schedule, overrides marked
#[poise::command(slash_command)]
async fn shifts(
    ctx: Context<'_>,
    #[description = "Which schedule"]
    #[autocomplete = "autocomplete_schedule"]
    #[max_length = 32]
    schedule: String,
    #[description = "How many days ahead (default 7, at most 28)"]
    #[min = 1]
    #[max = 28]
    days: Option<i64>,
) -> Result<(), Error> {
    let app = ctx.data();
    let s = oncall::schedule(app, &schedule).map_err(user_error)?;
    let days = days.unwrap_or(7);
    let segs = oncall::shifts(app, s, days).await.map_err(user_error)?;
    let now_ms = app.clock.now_ms();
    let mut text = format!(
        "🗓️ **{}**, next {days} day{} ({}):",
        s.name,
        if days == 1 { "" } else { "s" },
        s.tz.name()
    );
    for (shown, seg) in segs.iter().enumerate() {
        let line = segment_line(seg, now_ms, s);
        // Discord's 2,000 characters: say how many more rather than cut a line.
        if chat::chars(&text) + chat::chars(&line) + 40 > chat::limits::CONTENT {
            text.push_str(&format!("\n… and {} more", segs.len() - shown));
            break;
        }
        text.push('\n');
        text.push_str(&line);
    }
    say(ctx, text, false).await
}

fn parse_duration(text: &str) -> Result<i64, Error> {
    klaxon_core::timefmt::parse_duration(text.trim())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            UserError::new(format!(
                "`{}` is not a duration such as 8h, 1d or 1w.",
                chat::neutralize(&chat::truncate(text, 40))
            ))
            .into()
        })
}

fn override_done(o: &klaxon_core::store::oncall::OverrideRow, s: &Schedule, now: i64) -> String {
    format!(
        "✋ Override #{} on **{}**: {} is on call {} → {} ({}). `/oncall override-cancel id:{}` undoes it.",
        o.id,
        s.name,
        member_text(Some(o.member_id)),
        when::time_text(o.starts_ms, now, s.tz),
        when::time_text(o.ends_ms, now, s.tz),
        chat::discord::span(&when::relative(o.starts_ms)),
        o.id
    )
}

/// Put a member on call for a while, over the rotation
#[poise::command(slash_command, rename = "override")]
async fn override_(
    ctx: Context<'_>,
    #[description = "Which schedule"]
    #[autocomplete = "autocomplete_schedule"]
    #[max_length = 32]
    schedule: String,
    #[description = "Who takes the shift"] member: serenity::User,
    #[description = "When: now, in 2h, tomorrow 09:00, 2026-12-24 18:00 (schedule's zone)"]
    #[max_length = 60]
    start: String,
    #[description = "How long: 8h, 1d, 1w"]
    #[max_length = 40]
    duration: String,
) -> Result<(), Error> {
    let app = ctx.data();
    let s = oncall::schedule(app, &schedule).map_err(user_error)?;
    let duration_ms = parse_duration(&duration)?;
    let now_ms = app.clock.now_ms();
    let starts_ms = if start.trim().eq_ignore_ascii_case("now") {
        now_ms
    } else {
        let now_utc = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        when::parse_start(&start, now_utc, s.tz)
            .map_err(|e| UserError(chat::neutralize(&e)))?
            .timestamp_millis()
    };
    let req = OverrideRequest {
        member: member.id.get(),
        starts_ms,
        duration_ms,
        by: who(ctx),
    };
    let o = oncall::add_override(app, s, req)
        .await
        .map_err(user_error)?;
    say(ctx, override_done(&o, s, now_ms), false).await
}

/// Take the shift yourself, from now
#[poise::command(slash_command)]
async fn cover(
    ctx: Context<'_>,
    #[description = "Which schedule"]
    #[autocomplete = "autocomplete_schedule"]
    #[max_length = 32]
    schedule: String,
    #[description = "How long: 2h, 8h, 1d"]
    #[max_length = 40]
    duration: String,
) -> Result<(), Error> {
    let app = ctx.data();
    let s = oncall::schedule(app, &schedule).map_err(user_error)?;
    let duration_ms = parse_duration(&duration)?;
    let now_ms = app.clock.now_ms();
    let req = OverrideRequest {
        member: ctx.author().id.get(),
        starts_ms: now_ms,
        duration_ms,
        by: who(ctx),
    };
    let o = oncall::add_override(app, s, req)
        .await
        .map_err(user_error)?;
    say(ctx, override_done(&o, s, now_ms), false).await
}

/// The overrides of a schedule, current and coming, with their ids
#[poise::command(slash_command)]
async fn overrides(
    ctx: Context<'_>,
    #[description = "Which schedule"]
    #[autocomplete = "autocomplete_schedule"]
    #[max_length = 32]
    schedule: String,
) -> Result<(), Error> {
    let app = ctx.data();
    let s = oncall::schedule(app, &schedule).map_err(user_error)?;
    let now_ms = app.clock.now_ms();
    let rows = oncall::overrides(app, s, now_ms)
        .await
        .map_err(user_error)?;
    if rows.is_empty() {
        return say(ctx, format!("No overrides on **{}**.", s.name), true).await;
    }
    let mut text = format!(
        "✋ Overrides on **{}** ({}), newest wins:",
        s.name,
        s.tz.name()
    );
    for (i, o) in rows.iter().enumerate().rev() {
        let line = format!(
            "\n• #{} {}: {} → {}, by {}",
            o.id,
            member_text(Some(o.member_id)),
            when::time_text(o.starts_ms, now_ms, s.tz),
            when::time_text(o.ends_ms, now_ms, s.tz),
            chat::neutralize(&chat::truncate(&o.created_by, 40))
        );
        if chat::chars(&text) + chat::chars(&line) + 40 > chat::limits::CONTENT {
            text.push_str(&format!("\n… and {} older", i + 1));
            break;
        }
        text.push_str(&line);
    }
    say(ctx, text, true).await
}

/// Remove an override by its id
#[poise::command(slash_command, rename = "override-cancel")]
async fn override_cancel(
    ctx: Context<'_>,
    #[description = "The override's id (/oncall overrides lists them)"]
    #[min = 1]
    id: i64,
) -> Result<(), Error> {
    let app = ctx.data();
    let o = oncall::cancel_override(app, id, &who(ctx))
        .await
        .map_err(user_error)?;
    say(
        ctx,
        format!(
            "🗑️ Override #{} cancelled ({} on **{}**).",
            o.id,
            member_text(Some(o.member_id)),
            chat::neutralize(&o.schedule)
        ),
        false,
    )
    .await
}

/// Page a member, a schedule's on-call member, a role or a webhook by hand
#[poise::command(slash_command)]
async fn page(
    ctx: Context<'_>,
    #[description = "A schedule's name, a member (@name), user:ID, role:ID or webhook:NAME"]
    #[autocomplete = "autocomplete_schedule"]
    #[max_length = 64]
    target: String,
    #[description = "What it is about (shown in the DM and the channel)"]
    #[max_length = 200]
    message: String,
) -> Result<(), Error> {
    let app = ctx.data();
    let by = who(ctx);
    let channel = ctx.channel_id().get();
    let id = klaxon_core::oncall::page::page(app, &target, &message, &by, channel)
        .await
        .map_err(user_error)?;
    say(
        ctx,
        format!(
            "📟 Page #{id} sent to `{}`: they get a DM with an Acknowledge button and a mention here.",
            chat::neutralize(&chat::truncate(target.trim(), 64))
        ),
        true,
    )
    .await
}

/// Reads a click on a page's Acknowledge button (`oncall:ack:<escalation>`): it
/// needs the level of `/oncall page` (responder), as acknowledging elsewhere does.
pub fn read_click(custom_id: &str) -> Option<crate::interaction::Target> {
    let mut parts = custom_id.split(':').skip(1);
    let verb = parts.next()?;
    let id = parts.next().and_then(|s| s.parse::<i64>().ok())?;
    (verb == "ack").then(|| crate::interaction::Target {
        verb: verb.to_string(),
        command: "oncall page".to_string(),
        arguments: format!("escalation={id} click=ack"),
    })
}

/// The Acknowledge button of a page's DM: acknowledges what was paged for (the
/// incident, the alert group) and so ends every pending step of its escalation.
pub async fn on_click(
    a: crate::interaction::Allowed<'_, serenity::ComponentInteraction>,
) -> Result<(), Error> {
    use klaxon_core::audit::Outcome;
    use klaxon_core::oncall::escalate::{self, Subject};
    let app = a.app;
    let id = a
        .interaction
        .data
        .custom_id
        .split(':')
        .nth(2)
        .and_then(|s| s.parse::<i64>().ok());
    let Some(e) = (match id {
        Some(id) => escalate::get(app, id).await?,
        None => None,
    }) else {
        return a.reply_private("This button is no longer active.").await;
    };
    let why = format!("acknowledged by {}", a.by.name);
    let text = match escalate::subject(&e) {
        Subject::Incident(i) => match klaxon_core::incidents::ack(app, i, &a.by).await {
            Ok(_) => format!("👀 You acknowledged {i}; the escalation is stopped."),
            Err(klaxon_core::incidents::IncidentError::AlreadyAcked(_, by)) => {
                escalate::stop_one(app, e.id, &why, &a.by).await?;
                format!("{i} was already acknowledged by {}.", chat::neutralize(&by))
            }
            Err(klaxon_core::incidents::IncidentError::Resolved(_)) => {
                format!("{i} is resolved; nothing to acknowledge.")
            }
            Err(err) => return Err(user_error_incident(err)),
        },
        Subject::Group(g) => {
            let now = app.clock.now_ms();
            klaxon_core::alerts::deliver::acknowledge(&app.store, g, &a.by.name, now).await?;
            escalate::stop(app, Subject::Group(g), true, &why, &a.by).await?;
            "👀 You acknowledged the alert; the escalation is stopped.".to_string()
        }
        Subject::Page => {
            if escalate::stop_one(app, e.id, &why, &a.by).await? {
                "👀 Acknowledged; the page is stopped.".to_string()
            } else {
                "This page was already acknowledged or is over.".to_string()
            }
        }
    };
    a.reply_private(&text).await?;
    a.audit(Outcome::Ok, why).await;
    Ok(())
}

fn user_error_incident(e: klaxon_core::incidents::IncidentError) -> Error {
    crate::interaction::user_error(e, "incident")
}
