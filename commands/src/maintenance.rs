//! `/maintenance start | schedule | end | extend | cancel | list`.

use klaxon_core::chat;
use klaxon_core::incidents::Who;
use klaxon_core::maintenance::{self, when, MaintenanceError, NewWindow, Window, WindowState};
use poise::serenity_prelude::{AutocompleteChoice, CreateAutocompleteResponse};
use poise::CreateReply;

use crate::{render, Context, Error, UserError};

fn user_error(e: MaintenanceError) -> Error {
    if e.is_user_facing() {
        UserError(e.to_string()).into()
    } else {
        anyhow::Error::new(e).context("maintenance store")
    }
}

fn who(ctx: Context<'_>) -> Who {
    Who {
        id: ctx.author().id.get(),
        name: ctx.author().name.clone(),
    }
}

/// Planned work: announcements, held alerts, the maintenance flag
#[poise::command(
    slash_command,
    rename = "maintenance",
    subcommands("start", "schedule", "end", "extend", "cancel", "list"),
    subcommand_required
)]
pub async fn maintenance(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Autocomplete for `services`: the last name being typed, after those already
/// given (`api, we` -> `api, web`), and `all`.
async fn autocomplete_services(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let cut = partial.rfind([',', ' ']).map(|i| i + 1).unwrap_or(0);
    let (done, typing) = partial.split_at(cut);
    let done = done.trim_end_matches([',', ' ']);
    let mut choices: Vec<AutocompleteChoice> = ctx
        .data()
        .service_names_matching(typing, 24)
        .into_iter()
        .map(|name| {
            let value = if done.is_empty() {
                name
            } else {
                format!("{done}, {name}")
            };
            AutocompleteChoice::new(chat::truncate(&value, 100), chat::truncate(&value, 100))
        })
        .collect();
    if done.is_empty() && "all".starts_with(&typing.trim().to_lowercase()) {
        choices.insert(0, AutocompleteChoice::new("all", "all"));
        choices.truncate(25);
    }
    CreateAutocompleteResponse::new().set_choices(choices)
}

/// Autocomplete for `id`: scheduled and active windows.
async fn autocomplete_window(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let app = ctx.data();
    let windows = tokio::time::timeout(
        std::time::Duration::from_millis(2_000),
        maintenance::list(&app.store),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let p = partial.trim().trim_start_matches('#').to_lowercase();
    let choices = windows
        .iter()
        .filter(|w| {
            p.is_empty()
                || w.id.to_string().starts_with(&p)
                || w.services_text().to_lowercase().contains(&p)
        })
        .take(25)
        .map(|w| {
            AutocompleteChoice::new(
                chat::truncate(
                    &format!(
                        "#{} {} · {} · {}",
                        w.id,
                        w.state.as_str(),
                        w.services_text(),
                        when::span_text(w.starts_ms, w.ends_ms, app.maintenance.tz)
                    ),
                    100,
                ),
                w.id,
            )
        })
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}

fn duration(ctx: Context<'_>, text: &str) -> Result<std::time::Duration, Error> {
    when::parse_duration(text, ctx.data().maintenance.max)
        .map_err(|e| UserError(chat::neutralize(&e)).into())
}

/// Start a maintenance window now
#[poise::command(slash_command)]
async fn start(
    ctx: Context<'_>,
    #[description = "Services (api, web) or all"]
    #[max_length = 300]
    #[autocomplete = "autocomplete_services"]
    services: String,
    #[description = "How long: 30m, 2h, 1h30m"]
    #[max_length = 40]
    duration: String,
    #[description = "What the work is, for stakeholders"]
    #[max_length = 300]
    reason: String,
    #[description = "Switch the services' maintenance flag on (they answer 503)"] flag: Option<
        bool,
    >,
) -> Result<(), Error> {
    create(ctx, services, None, duration, reason, flag.unwrap_or(false)).await
}

/// Plan a maintenance window for later
#[poise::command(slash_command)]
async fn schedule(
    ctx: Context<'_>,
    #[description = "Services (api, web) or all"]
    #[max_length = 300]
    #[autocomplete = "autocomplete_services"]
    services: String,
    #[description = "When: in 2h, tomorrow 02:00, 2026-12-03 02:00, or RFC 3339"]
    #[max_length = 60]
    start: String,
    #[description = "How long: 30m, 2h, 1h30m"]
    #[max_length = 40]
    duration: String,
    #[description = "What the work is, for stakeholders"]
    #[max_length = 300]
    reason: String,
    #[description = "Switch the services' maintenance flag on while it runs"] flag: Option<bool>,
) -> Result<(), Error> {
    create(
        ctx,
        services,
        Some(start),
        duration,
        reason,
        flag.unwrap_or(false),
    )
    .await
}

async fn create(
    ctx: Context<'_>,
    services: String,
    start: Option<String>,
    duration_text: String,
    reason: String,
    flag: bool,
) -> Result<(), Error> {
    let app = ctx.data();
    let (names, all) = maintenance::resolve_services(app, &services).map_err(user_error)?;
    let length = duration(ctx, &duration_text)?;
    let now = app.clock.now_ms();
    let starts_ms = match &start {
        None => now,
        Some(text) => {
            let now_utc = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
            when::parse_start(text, now_utc, app.maintenance.tz)
                .map_err(|e| UserError(chat::neutralize(&e)))?
                .timestamp_millis()
        }
    };
    let new = NewWindow {
        services: names,
        all,
        reason,
        flag,
        starts_ms,
        duration: length,
        by: who(ctx),
    };
    // Mistakes get a private answer at once; then the reply is deferred, because
    // switching a flag runs commands in containers and the scheduler may hold the
    // windows' lock while it posts.
    maintenance::check_new(app, &new)
        .await
        .map_err(user_error)?;
    ctx.defer().await?;
    let done = maintenance::create(app, new).await.map_err(user_error)?;
    let w = &done.window;
    let tz = app.maintenance.tz;
    let mut text = if w.state == WindowState::Scheduled {
        format!(
            "🗓️ Maintenance #{} scheduled: **{}**, {} (starts {}).\n{}",
            w.id,
            chat::neutralize(&w.services_text()),
            when::span_text(w.starts_ms, w.ends_ms, tz),
            when::relative(w.starts_ms),
            announced_where(ctx, w)
        )
    } else {
        format!(
            "🔧 Maintenance #{} started: **{}** until {} ({}). Their alerts are held until it \
             ends; `/maintenance end id:{}` ends it early.",
            w.id,
            chat::neutralize(&w.services_text()),
            when::time_text(w.ends_ms, now, tz),
            when::human(length),
            w.id
        )
    };
    text.push_str(&notes(&done.notes, w));
    ctx.say(chat::truncate(&text, chat::limits::CONTENT))
        .await?;
    Ok(())
}

fn announced_where(ctx: Context<'_>, w: &Window) -> String {
    let app = ctx.data();
    let Some(channel) = app.incidents_channel else {
        return "No incidents channel is configured, so nobody is told.".into();
    };
    let leads: Vec<String> = app
        .maintenance
        .leads
        .iter()
        .filter(|d| w.starts_ms - w.created_ms > d.as_millis() as i64)
        .map(|d| when::human(*d))
        .collect();
    if leads.is_empty() {
        format!("Announced in <#{channel}>, and again when it starts and ends.")
    } else {
        format!(
            "Announced in <#{channel}> now, {} before, and when it starts and ends.",
            leads.join(" and ")
        )
    }
}

/// The flag's steps under the reply, with a warning when one failed.
fn notes(notes: &[String], w: &Window) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let failed = w.flag_state.starts_with("failed");
    let mut out = format!("\n{} Maintenance flag:", if failed { "⚠️" } else { "🚩" });
    for n in notes {
        out.push_str("\n• ");
        out.push_str(&chat::neutralize(n));
    }
    out
}

/// End an active maintenance window now
#[poise::command(slash_command)]
async fn end(
    ctx: Context<'_>,
    #[description = "Which window (default: the only active one)"]
    #[autocomplete = "autocomplete_window"]
    id: Option<i64>,
) -> Result<(), Error> {
    let app = ctx.data();
    // Checked first, so a mistake gets a private answer; then deferred (clearing a
    // flag runs commands in containers).
    maintenance::ending(app, id).await.map_err(user_error)?;
    ctx.defer().await?;
    let done = maintenance::end(app, id, &who(ctx))
        .await
        .map_err(user_error)?;
    let w = &done.window;
    let mut text = format!(
        "✅ Maintenance #{} ended: **{}**.",
        w.id,
        chat::neutralize(&w.services_text())
    );
    if w.held > 0 {
        text.push_str(&format!(
            " It held {} alert notification{}; the summary is in {}.",
            w.held,
            if w.held == 1 { "" } else { "s" },
            app.alerts_channel
                .or(app.incidents_channel)
                .map(|c| format!("<#{c}>"))
                .unwrap_or_else(|| "the logs".into())
        ));
    }
    text.push_str(&notes(&done.notes, w));
    ctx.say(chat::truncate(&text, chat::limits::CONTENT))
        .await?;
    Ok(())
}

/// Give a maintenance window more time
#[poise::command(slash_command)]
async fn extend(
    ctx: Context<'_>,
    #[description = "Which window"]
    #[autocomplete = "autocomplete_window"]
    id: i64,
    #[description = "How much longer: 30m, 1h"]
    #[max_length = 40]
    duration: String,
) -> Result<(), Error> {
    let more = self::duration(ctx, &duration)?;
    let app = ctx.data();
    maintenance::check_extend(app, id, more)
        .await
        .map_err(user_error)?;
    ctx.defer().await?;
    let done = maintenance::extend(app, id, more, &who(ctx))
        .await
        .map_err(user_error)?;
    let w = &done.window;
    let mut text = format!(
        "🔧 Maintenance #{} ({}) now ends at {}.",
        w.id,
        chat::neutralize(&w.services_text()),
        when::time_text(w.ends_ms, app.clock.now_ms(), app.maintenance.tz)
    );
    for n in &done.notes {
        text.push_str(&format!("\n⚠️ {}", chat::neutralize(n)));
    }
    ctx.say(text).await?;
    Ok(())
}

/// Call off a maintenance window that has not started
#[poise::command(slash_command)]
async fn cancel(
    ctx: Context<'_>,
    #[description = "Which window"]
    #[autocomplete = "autocomplete_window"]
    id: i64,
) -> Result<(), Error> {
    let app = ctx.data();
    maintenance::check_cancel(app, id)
        .await
        .map_err(user_error)?;
    ctx.defer().await?;
    let done = maintenance::cancel(app, id, &who(ctx))
        .await
        .map_err(user_error)?;
    let w = &done.window;
    ctx.say(format!(
        "❎ Maintenance #{} ({}, {}) cancelled.",
        w.id,
        chat::neutralize(&w.services_text()),
        when::span_text(w.starts_ms, w.ends_ms, app.maintenance.tz)
    ))
    .await?;
    Ok(())
}

/// Scheduled and active maintenance windows
#[poise::command(slash_command)]
async fn list(ctx: Context<'_>) -> Result<(), Error> {
    let app = ctx.data();
    let now = app.clock.now_ms();
    let windows = maintenance::list(&app.store).await?;
    let tz = app.maintenance.tz;
    let lines: Vec<String> = windows
        .iter()
        .map(|w| {
            let when_text = if w.state == WindowState::Active {
                format!("until {}", when::time_text(w.ends_ms, now, tz))
            } else {
                format!(
                    "{} (starts {})",
                    when::span_text(w.starts_ms, w.ends_ms, tz),
                    when::relative(w.starts_ms)
                )
            };
            let mut extra = Vec::new();
            if w.flag {
                extra.push(match w.flag_state.as_str() {
                    "on" => "flag on".to_string(),
                    "failed-on" => "⚠️ flag not set".to_string(),
                    _ => "flag when it starts".to_string(),
                });
            }
            if w.held > 0 {
                extra.push(format!("{} held", w.held));
            }
            format!(
                "{} **#{}** {} · {}\n{}{}",
                if w.state == WindowState::Active {
                    "🔧"
                } else {
                    "🗓️"
                },
                w.id,
                chat::neutralize(&w.services_text()),
                when_text,
                chat::neutralize(&chat::truncate(&w.reason, 200)),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", extra.join(" · "))
                }
            )
        })
        .collect();
    let description = if lines.is_empty() {
        "No maintenance is scheduled or running.".to_string()
    } else {
        render::fit(&lines)
    };
    let embed = chat::Embed {
        title: format!(
            "{} maintenance window{}",
            windows.len(),
            if windows.len() == 1 { "" } else { "s" }
        ),
        description,
        color: chat::GREY,
        footer: format!("Times in {}", tz.name()),
        ..Default::default()
    };
    ctx.send(
        CreateReply::default()
            .ephemeral(true)
            .embed(render::embed(&embed)),
    )
    .await?;
    Ok(())
}
