//! `/alerts list | silence | unsilence`.

use klaxon_core::alerts::{db, silence};
use klaxon_core::chat::{self, Embed};
use klaxon_core::incidents::{duration_text, hhmm};
use poise::CreateReply;

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
        description: fit(&lines),
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
            description: fit(&s),
            color: chat::GREY,
            ..Default::default()
        });
    }
    let mut reply = CreateReply::default().ephemeral(true);
    for e in &embeds {
        reply = reply.embed(render::embed(e));
    }
    ctx.send(reply).await?;
    Ok(())
}

/// Lines within one embed description, with a count of what did not fit.
fn fit(lines: &[String]) -> String {
    let max = chat::limits::EMBED_DESCRIPTION - 40;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if chat::chars(&out) + chat::chars(l) + 1 > max {
            out.push_str(&format!("\n… and {} more", lines.len() - i));
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(l);
    }
    out
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
) -> Result<(), Error> {
    let matchers = silence::parse_matchers(&matcher).map_err(UserError)?;
    let secs = klaxon_core::logs::parse_duration(&duration)
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
    let id = silence::create(
        &app.store,
        &matchers,
        reason.trim(),
        &ctx.author().name,
        now,
        ends,
    )
    .await?;
    ctx.say(format!(
        "🔕 Silence #{id}: `{}` until {} ({}). Matching alerts are recorded but not posted; `/alerts unsilence id:{id}` ends it.",
        chat::neutralize(&silence::describe(&matchers)),
        hhmm(ends),
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
