//! `/incident ...`, the incident card's buttons and modals ([`card`]), and the
//! "Add to timeline" message command and 📌 reaction ([`capture`]).
//!
//! The lifecycle lives in `klaxon_core::incidents`; this module reads arguments and
//! renders replies. Clicks and modal submits (prefix `incident:`) reach [`card`]
//! through the interaction pipeline, which checks the member's level.

mod capture;
mod card;
mod stats;

pub use capture::{add_to_timeline, capture_text, on_reaction, permalink, ADD_TO_TIMELINE, PIN};
use card::resolve_modal;
pub use card::{on_click, on_modal, read};

use klaxon_core::actor::Actor;
use klaxon_core::chat::{self, Embed};
use klaxon_core::incidents::{
    self, postmortem, Entry, EntryKind, Incident, IncidentError, IncidentId, Role, Severity,
    Status, MAX_TEXT, MAX_TITLE,
};
use poise::CreateReply;

use crate::serenity::{
    self, AutocompleteChoice, CreateAttachment, CreateAutocompleteResponse,
    CreateInteractionResponse,
};
use crate::{Context, Data, Error, UserError};

fn user_error(e: IncidentError) -> Error {
    crate::interaction::user_error(e, "incident store")
}

fn who(ctx: Context<'_>) -> Actor {
    crate::interaction::who(&crate::interaction::actor(
        ctx.author(),
        ctx.guild_id(),
        ctx.channel_id(),
    ))
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum SeverityChoice {
    #[name = "P1 · service down"]
    P1,
    #[name = "P2 · major feature broken"]
    P2,
    #[name = "P3 · minor"]
    P3,
    #[name = "P4 · non-urgent"]
    P4,
}

impl From<SeverityChoice> for Severity {
    fn from(s: SeverityChoice) -> Self {
        match s {
            SeverityChoice::P1 => Severity::P1,
            SeverityChoice::P2 => Severity::P2,
            SeverityChoice::P3 => Severity::P3,
            SeverityChoice::P4 => Severity::P4,
        }
    }
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum StatusChoice {
    #[name = "investigating"]
    Investigating,
    #[name = "identified"]
    Identified,
    #[name = "monitoring"]
    Monitoring,
    #[name = "resolved"]
    Resolved,
}

impl From<StatusChoice> for Status {
    fn from(s: StatusChoice) -> Self {
        match s {
            StatusChoice::Investigating => Status::Investigating,
            StatusChoice::Identified => Status::Identified,
            StatusChoice::Monitoring => Status::Monitoring,
            StatusChoice::Resolved => Status::Resolved,
        }
    }
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum RoleChoice {
    #[name = "commander"]
    Commander,
    #[name = "comms"]
    Comms,
    #[name = "scribe"]
    Scribe,
}

impl From<RoleChoice> for Role {
    fn from(r: RoleChoice) -> Self {
        match r {
            RoleChoice::Commander => Role::Commander,
            RoleChoice::Comms => Role::Comms,
            RoleChoice::Scribe => Role::Scribe,
        }
    }
}

/// Run the incident lifecycle
#[poise::command(
    slash_command,
    rename = "incident",
    subcommands(
        "open",
        "ack",
        "status",
        "severity",
        "assign",
        "note",
        "action",
        "resolve",
        "list",
        "show",
        "timeline",
        "postmortem_cmd",
        "stats::stats_cmd"
    ),
    subcommand_required
)]
pub async fn incident(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Autocomplete for `id`: open incidents, newest first, answered from the database.
async fn autocomplete_open(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let open = tokio::time::timeout(
        std::time::Duration::from_millis(2_000),
        incidents::list_open(ctx.data()),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let p = partial.trim().to_lowercase();
    let choices = open
        .iter()
        .filter(|i| {
            p.is_empty()
                || i.id.to_string().to_lowercase().contains(&p)
                || i.title.to_lowercase().contains(&p)
        })
        .take(25)
        .map(|i| {
            AutocompleteChoice::new(
                chat::truncate(&format!("{} {} · {}", i.id, i.severity, i.title), 100),
                i.id.to_string(),
            )
        })
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}

async fn target(ctx: Context<'_>, id: Option<&str>) -> Result<IncidentId, Error> {
    incidents::resolve_id(ctx.data(), id, ctx.channel_id().get())
        .await
        .map_err(user_error)
}

/// The incident, which must still be open: checked before a public defer, so that a
/// refusal stays private.
async fn open_target(ctx: Context<'_>, id: Option<&str>) -> Result<Incident, Error> {
    let id = target(ctx, id).await?;
    match incidents::get(ctx.data(), id).await.map_err(user_error)? {
        i if i.is_open() => Ok(i),
        _ => Err(user_error(IncidentError::Resolved(id))),
    }
}

/// The member's roles, for the checks a command makes beyond its own level.
fn roles(ctx: Context<'_>) -> Vec<u64> {
    match ctx {
        poise::Context::Application(a) => a
            .interaction
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
        poise::Context::Prefix(_) => Vec::new(),
    }
}

/// Resolving through `status resolved` needs what `/incident resolve` needs.
fn may_resolve(app: &Data, roles: &[u64]) -> Result<(), String> {
    app.policy
        .check("incident resolve", roles)
        .map(|_| ())
        .map_err(|d| d.to_string())
}

/// Open an incident: its thread, the card, the stakeholder notice and the page
#[poise::command(slash_command)]
async fn open(
    ctx: Context<'_>,
    #[description = "What is broken, in a few words"]
    #[max_length = 80]
    title: String,
    #[description = "P1 service down · P2 major feature · P3 minor · P4 non-urgent"]
    severity: SeverityChoice,
    #[description = "The affected service"]
    #[autocomplete = "crate::choices::autocomplete_service"]
    service: Option<String>,
    #[description = "What users see; the impact"]
    #[max_length = 1000]
    summary: Option<String>,
    #[description = "Show it on the public status page (default: yes)"] public: Option<bool>,
) -> Result<(), Error> {
    if title.chars().count() > MAX_TITLE {
        return Err(
            UserError::new(format!("The title is longer than {MAX_TITLE} characters.")).into(),
        );
    }
    let req = incidents::OpenRequest {
        title,
        severity: severity.into(),
        service,
        summary,
        guild_id: ctx.guild_id().map(|g| g.get()),
        by: who(ctx),
        public: public.unwrap_or(true),
    };
    // Refusals stay private: checked before the public "thinking…".
    incidents::check_open(ctx.data(), &req).map_err(user_error)?;
    // A thread, a card and a notice: several requests, more than Discord's 3 s may allow.
    ctx.defer().await?;
    let opened = incidents::open(ctx.data(), req).await.map_err(user_error)?;
    let i = &opened.incident;
    let mut text = format!(
        "🚨 Opened **{}** ({}): {}. You are the commander.",
        i.id,
        i.severity,
        chat::neutralize(&i.title)
    );
    if let Some(t) = i.channel_id {
        text.push_str(&format!("\nWork it in <#{t}>."));
    }
    for w in &opened.warnings {
        text.push_str(&format!("\n⚠️ {}", chat::neutralize(w)));
    }
    say(ctx, text).await
}

async fn say(ctx: Context<'_>, text: String) -> Result<(), Error> {
    ctx.send(CreateReply::default().content(chat::truncate(&text, chat::limits::CONTENT)))
        .await?;
    Ok(())
}

/// Acknowledge an incident (stops the re-paging)
#[poise::command(slash_command)]
async fn ack(
    ctx: Context<'_>,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let current = open_target(ctx, id.as_deref()).await?;
    if let Some(by) = current.acked_by {
        return Err(user_error(IncidentError::AlreadyAcked(current.id, by)));
    }
    ctx.defer().await?;
    let i = incidents::ack(ctx.data(), current.id, &who(ctx))
        .await
        .map_err(user_error)?;
    say(ctx, ack_text(&i)).await
}

fn ack_text(i: &Incident) -> String {
    format!(
        "✅ {} acknowledged by {} after {}.",
        i.id,
        chat::neutralize(i.acked_by.as_deref().unwrap_or_default()),
        klaxon_core::timefmt::duration_text(i.acked_ms.unwrap_or(i.opened_ms) - i.opened_ms)
    )
}

/// Post a status update (thread and stakeholders)
#[poise::command(slash_command)]
async fn status(
    ctx: Context<'_>,
    #[description = "investigating · identified · monitoring · resolved"] status: StatusChoice,
    #[description = "What changed, for the team and the stakeholders"]
    #[max_length = 4000]
    message: String,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = open_target(ctx, id.as_deref()).await?.id;
    let status: Status = status.into();
    if status == Status::Resolved {
        may_resolve(ctx.data(), &roles(ctx)).map_err(UserError)?;
    }
    incidents::check_text("status message", &message, MAX_TEXT).map_err(user_error)?;
    ctx.defer().await?;
    let i = incidents::set_status(
        ctx.data(),
        id,
        status,
        &message,
        &who(ctx),
        ctx.channel_id().get(),
    )
    .await
    .map_err(user_error)?;
    say(ctx, status_text(&i, &message)).await
}

fn status_text(i: &Incident, message: &str) -> String {
    if i.status == Status::Resolved {
        return resolved_text(i);
    }
    let mut s = format!(
        "📣 {} is **{}**: {}",
        i.id,
        i.status.title(),
        chat::neutralize(message)
    );
    if let Some(next) = i.next_update_ms {
        s.push_str(&format!(
            "\nNext update due by {}.",
            klaxon_core::timefmt::hhmm(next)
        ));
    }
    s
}

fn resolved_text(i: &Incident) -> String {
    format!(
        "✅ {} resolved after {}. `/incident postmortem` writes the post-mortem.",
        i.id,
        klaxon_core::timefmt::duration_text(i.resolved_ms.unwrap_or(i.opened_ms) - i.opened_ms)
    )
}

/// Change an incident's severity
#[poise::command(slash_command)]
async fn severity(
    ctx: Context<'_>,
    #[description = "The new severity"] severity: SeverityChoice,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let current = open_target(ctx, id.as_deref()).await?;
    let severity: Severity = severity.into();
    if current.severity == severity {
        return Err(UserError::new(format!("{} is already {severity}.", current.id)).into());
    }
    ctx.defer().await?;
    let i = incidents::set_severity(ctx.data(), current.id, severity, &who(ctx))
        .await
        .map_err(user_error)?;
    say(ctx, format!("🔺 {} is now {}.", i.id, i.severity)).await
}

/// Give a member an incident role
#[poise::command(slash_command)]
async fn assign(
    ctx: Context<'_>,
    #[description = "commander · comms · scribe"] role: RoleChoice,
    #[description = "Who takes it"] member: serenity::User,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = open_target(ctx, id.as_deref()).await?.id;
    // A card edit before the reply: more than Discord's 3 s on a slow day.
    ctx.defer().await?;
    let holder = Actor::member(member.id.get(), member.name.clone());
    let role: Role = role.into();
    let i = incidents::assign(ctx.data(), id, role, &holder, &who(ctx))
        .await
        .map_err(user_error)?;
    say(
        ctx,
        format!(
            "👤 {} is now {} of {}.",
            chat::neutralize(&holder.name),
            role.as_str(),
            i.id
        ),
    )
    .await
}

/// Add a note to the timeline
#[poise::command(slash_command)]
async fn note(
    ctx: Context<'_>,
    #[description = "The note"]
    #[max_length = 4000]
    text: String,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    let i = incidents::note(ctx.data(), id, &text, &who(ctx))
        .await
        .map_err(user_error)?;
    say(ctx, format!("📝 Noted in {}'s timeline.", i.id)).await
}

/// Follow-up actions
#[poise::command(
    slash_command,
    subcommands("action_add", "action_done"),
    subcommand_required
)]
async fn action(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Add a follow-up action
#[poise::command(slash_command, rename = "add")]
async fn action_add(
    ctx: Context<'_>,
    #[description = "What must be done"]
    #[max_length = 1000]
    text: String,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    let n = incidents::add_action(ctx.data(), id, &text, &who(ctx))
        .await
        .map_err(user_error)?;
    say(
        ctx,
        format!("📌 Action #{n} of {id}: {}", chat::neutralize(&text)),
    )
    .await
}

/// Mark a follow-up action done
#[poise::command(slash_command, rename = "done")]
async fn action_done(
    ctx: Context<'_>,
    #[description = "The action's number (#2) or words from it"]
    #[max_length = 1000]
    text: String,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    let (n, what) = incidents::finish_action(ctx.data(), id, &text, &who(ctx))
        .await
        .map_err(user_error)?;
    say(
        ctx,
        format!("☑️ Action #{n} of {id} done: {}", chat::neutralize(&what)),
    )
    .await
}

/// Resolve an incident (asks for summary, root cause, resolution and impact)
#[poise::command(slash_command)]
async fn resolve(
    ctx: Context<'_>,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    let i = incidents::get(ctx.data(), id).await.map_err(user_error)?;
    if !i.is_open() {
        return Err(user_error(IncidentError::Resolved(id)));
    }
    let poise::Context::Application(a) = ctx else {
        return Err(UserError::new("Resolve works as a slash command.").into());
    };
    a.interaction
        .create_response(ctx, CreateInteractionResponse::Modal(resolve_modal(&i)))
        .await?;
    Ok(())
}

/// Open incidents, newest first
#[poise::command(slash_command)]
async fn list(ctx: Context<'_>) -> Result<(), Error> {
    let open = incidents::list_open(ctx.data()).await.map_err(user_error)?;
    let now = ctx.data().clock.now_ms();
    let lines: Vec<String> = open
        .iter()
        .map(|i| {
            let mut l = format!(
                "**{}** {} · {} · {} · {} ago",
                i.id,
                i.severity,
                chat::neutralize(&i.title),
                i.status.title(),
                klaxon_core::timefmt::duration_text(now - i.opened_ms)
            );
            if i.acked_ms.is_none() {
                l.push_str(" · ⚠️ not acknowledged");
            }
            if let Some(t) = i.channel_id {
                l.push_str(&format!(" · <#{t}>"));
            }
            l
        })
        .collect();
    let description = if lines.is_empty() {
        "No open incidents. 🎉".to_string()
    } else {
        fit_lines(&lines, chat::limits::EMBED_DESCRIPTION)
    };
    let embed = Embed {
        title: format!("{} open incident(s)", open.len()),
        description,
        color: if open.is_empty() {
            chat::GREEN
        } else {
            chat::RED
        },
        ..Default::default()
    };
    ctx.send(
        CreateReply::default()
            .embed(crate::discord::embed(&embed))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Lines joined up to `max` characters, with a note of how many did not fit.
fn fit_lines(lines: &[String], max: usize) -> String {
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        let more = format!("\n… and {} more", lines.len() - n);
        if chat::chars(&out) + chat::chars(l) + 1 + chat::chars(&more) > max {
            out.push_str(&more);
            return out;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(l);
    }
    out
}

/// One incident's state
#[poise::command(slash_command)]
async fn show(
    ctx: Context<'_>,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    let i = incidents::get(ctx.data(), id).await.map_err(user_error)?;
    let card = incidents::card(ctx.data(), &i);
    let mut reply = CreateReply::default().ephemeral(true);
    for e in &card.embeds {
        reply = reply.embed(crate::discord::embed(e));
    }
    ctx.send(reply).await?;
    Ok(())
}

/// One timeline line, as the timeline reply and the file show it.
fn entry_line(e: &Entry) -> String {
    let mut text = chat::neutralize(&e.text.replace('\n', " "));
    if e.kind == EntryKind::Message {
        if e.deleted {
            text = format!("~~{text}~~ (deleted)");
        } else if e.edited_ms.is_some() {
            text.push_str(" (edited)");
        }
    }
    format!(
        "`{}` **{}** {}",
        klaxon_core::timefmt::hhmm(e.at_ms).trim_end_matches(" UTC"),
        chat::neutralize(&e.actor_name),
        text
    )
}

/// The incident's timeline
#[poise::command(slash_command)]
async fn timeline(
    ctx: Context<'_>,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    ctx.defer().await?;
    let (i, entries) = incidents::timeline(ctx.data(), id)
        .await
        .map_err(user_error)?;
    let lines: Vec<String> = entries.iter().map(entry_line).collect();
    let all = lines.join("\n");
    let title = chat::truncate(
        &format!("{} timeline · {} entries (UTC)", i.id, entries.len()),
        chat::limits::EMBED_TITLE,
    );
    let mut reply = CreateReply::default();
    if chat::chars(&all) <= chat::limits::EMBED_DESCRIPTION {
        let embed = Embed {
            title,
            description: all,
            color: chat::GREY,
            ..Default::default()
        };
        reply = reply.embed(crate::discord::embed(&embed));
    } else {
        // Too long for one embed: the newest entries inline, the whole of it attached.
        let tail: Vec<String> = lines.iter().rev().take(200).rev().cloned().collect();
        let mut shown = String::new();
        for l in tail.iter().rev() {
            if chat::chars(&shown) + chat::chars(l) + 1 > chat::limits::EMBED_DESCRIPTION - 80 {
                break;
            }
            shown = if shown.is_empty() {
                l.clone()
            } else {
                format!("{l}\n{shown}")
            };
        }
        let embed = Embed {
            title,
            description: shown,
            color: chat::GREY,
            footer: "The newest entries; the whole timeline is attached.".into(),
            ..Default::default()
        };
        let file: String = entries
            .iter()
            .map(|e| {
                format!(
                    "{} {} [{}] {}\n",
                    klaxon_core::timefmt::date_time(e.at_ms),
                    e.actor_name,
                    e.kind.as_str(),
                    e.text.replace('\n', " ")
                )
            })
            .collect();
        reply = reply
            .embed(crate::discord::embed(&embed))
            .attachment(CreateAttachment::bytes(
                file.into_bytes(),
                format!("{}-timeline.txt", i.id),
            ));
    }
    ctx.send(reply).await?;
    Ok(())
}

/// Write the post-mortem from the timeline (Markdown, attached)
#[poise::command(slash_command, rename = "postmortem")]
async fn postmortem_cmd(
    ctx: Context<'_>,
    #[description = "The incident (implied inside its thread)"]
    #[autocomplete = "autocomplete_open"]
    id: Option<String>,
) -> Result<(), Error> {
    let id = target(ctx, id.as_deref()).await?;
    // Reads the whole timeline and stores the document: defer, to be safe.
    ctx.defer().await?;
    let (i, markdown) = postmortem::generate(ctx.data(), id)
        .await
        .map_err(user_error)?;
    let mut text = format!(
        "📄 Post-mortem for {} · {}: fill in the _TODO_ prompts and share it.",
        i.id,
        chat::neutralize(&i.title)
    );
    if i.is_open() {
        text.push_str("\n⚠️ The incident is still open: this is a draft.");
    }
    ctx.send(
        CreateReply::default()
            .content(text)
            .attachment(CreateAttachment::bytes(
                markdown.into_bytes(),
                postmortem::file_name(i.id),
            )),
    )
    .await?;
    Ok(())
}
