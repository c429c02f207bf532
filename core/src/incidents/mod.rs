//! The incident lifecycle: open, acknowledge, status updates, roles, notes,
//! actions, resolution; the incident's thread, the stakeholder notices, reminders
//! from the database, and the timeline every step writes.
//!
//! What goes to chat goes through [`ChatSink`](crate::chat::ChatSink). A chat post
//! that fails never undoes the change in the database: the record is the truth, and
//! the failure is logged and said in the reply.

pub mod db;
pub mod model;
pub mod postmortem;

use chrono::{TimeZone, Utc};
use tracing::{info, warn};

pub use db::{Action, Entry, EntryKind, Incident, NewEntry};
pub use model::*;

use crate::app::App;
use crate::audit::{AuditEntry, Outcome};
use crate::chat::{self, Button, ButtonStyle, ChatMessage, Embed, Field};
use crate::store::StoreError;

/// Characters of one free-text field in a stakeholder notice (impact, root cause,
/// resolution, update): four of them and the fixed lines fit Discord's 2,000.
const NOTICE_FIELD: usize = 400;

/// The `custom_id` prefix of the incident card's buttons.
pub const PREFIX: &str = "incident";

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("There is no incident {0}.")]
    Unknown(IncidentId),
    #[error(
        "{0} is resolved; it takes no more changes. Open a new incident if the problem is back."
    )]
    Resolved(IncidentId),
    #[error("{0} was already acknowledged by {1}.")]
    AlreadyAcked(IncidentId, String),
    #[error("{0}")]
    Invalid(String),
    #[error("No incidents channel is configured (`channels.incidents`): Klaxon has nowhere to open the incident.")]
    NoChannel,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IncidentError {
    /// Whether the text is for the member (everything but a database failure).
    pub fn is_user_facing(&self) -> bool {
        !matches!(self, IncidentError::Store(_))
    }
}

/// `HH:MM UTC`.
pub fn hhmm(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `2026-12-01 14:03 UTC`.
pub fn date_time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `1h 12m`, from milliseconds.
pub fn duration_text(ms: i64) -> String {
    crate::health::human_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// A member's text, trimmed, not empty and at most `max` characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<String, IncidentError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(IncidentError::Invalid(format!("The {what} is empty.")));
    }
    let n = t.chars().count();
    if n > max {
        return Err(IncidentError::Invalid(format!(
            "The {what} is {n} characters long; at most {max} fit."
        )));
    }
    Ok(t.to_string())
}

/// What `/incident open` asks for.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub summary: Option<String>,
    pub guild_id: Option<u64>,
    pub by: Who,
}

/// What opening did, for the reply.
#[derive(Debug, Clone)]
pub struct Opened {
    pub incident: Incident,
    /// Problems posting to chat (the incident exists regardless).
    pub warnings: Vec<String>,
}

fn minutes(m: u64) -> i64 {
    (m as i64) * 60_000
}

impl App {
    fn severity_config(&self, s: Severity) -> SeverityRule {
        self.incidents.severity.get(s)
    }

    fn pages(&self, s: Severity) -> Option<u64> {
        self.incidents
            .on_call_role
            .filter(|_| self.severity_config(s).page)
    }

    fn next_update(&self, s: Severity, from_ms: i64) -> Option<i64> {
        match self.severity_config(s).update_minutes {
            0 => None,
            m => Some(from_ms + minutes(m)),
        }
    }
}

async fn load(app: &App, id: IncidentId) -> Result<Incident, IncidentError> {
    db::get(&app.store, id)
        .await?
        .ok_or(IncidentError::Unknown(id))
}

/// After `db::change` said nothing changed: why.
async fn why_unchanged(app: &App, id: IncidentId) -> IncidentError {
    match db::get(&app.store, id).await {
        Ok(Some(_)) => IncidentError::Resolved(id),
        Ok(None) => IncidentError::Unknown(id),
        Err(e) => e.into(),
    }
}

async fn apply(
    app: &App,
    id: IncidentId,
    change: db::Change<'_>,
) -> Result<Incident, IncidentError> {
    match db::change(&app.store, id, change).await? {
        Some(i) => Ok(i),
        None => Err(why_unchanged(app, id).await),
    }
}

/// The incident an invocation is about: the one given, else the one whose thread
/// the member is in.
pub async fn resolve_id(
    app: &App,
    given: Option<&str>,
    channel_id: u64,
) -> Result<IncidentId, IncidentError> {
    if let Some(g) = given.filter(|g| !g.trim().is_empty()) {
        return g.parse().map_err(IncidentError::Invalid);
    }
    match db::by_channel(&app.store, channel_id).await? {
        Some(i) => Ok(i.id),
        None => Err(IncidentError::Invalid(
            "Outside an incident thread, name the incident: `id:INC-7`.".into(),
        )),
    }
}

pub async fn get(app: &App, id: IncidentId) -> Result<Incident, IncidentError> {
    load(app, id).await
}

pub async fn list_open(app: &App) -> Result<Vec<Incident>, IncidentError> {
    Ok(db::list_open(&app.store).await?)
}

pub async fn timeline(app: &App, id: IncidentId) -> Result<(Incident, Vec<Entry>), IncidentError> {
    let incident = load(app, id).await?;
    Ok((incident, db::timeline(&app.store, id).await?))
}

/// An open request's arguments, checked.
pub struct Checked {
    title: String,
    summary: String,
    service: Option<String>,
    parent: u64,
}

/// Everything `open` refuses, checked without side effects, so the command can
/// refuse privately before it answers publicly.
pub fn check_open(app: &App, req: &OpenRequest) -> Result<Checked, IncidentError> {
    let title = check_text("title", &req.title, MAX_TITLE)?;
    let summary = match &req.summary {
        Some(s) if !s.trim().is_empty() => check_text("summary", s, MAX_TEXT)?,
        _ => String::new(),
    };
    let service = match &req.service {
        Some(s) if !s.trim().is_empty() => Some(
            app.service(s)
                .map_err(|e| IncidentError::Invalid(e.to_string()))?
                .name
                .clone(),
        ),
        _ => None,
    };
    let Some(parent) = app.incidents_channel else {
        return Err(IncidentError::NoChannel);
    };
    if app.incidents.room == Room::Channel && req.guild_id.is_none() {
        return Err(IncidentError::Invalid(
            "Incidents open inside the server, not in direct messages.".into(),
        ));
    }
    Ok(Checked {
        title,
        summary,
        service,
        parent,
    })
}

/// Opens an incident: the record, its thread with the card, the stakeholder notice
/// (paging the on-call role for P1/P2).
pub async fn open(app: &App, req: OpenRequest) -> Result<Opened, IncidentError> {
    let Checked {
        title,
        summary,
        service,
        parent,
    } = check_open(app, &req)?;
    let now = app.clock.now_ms();
    let new = db::NewIncident {
        title,
        severity: req.severity,
        service,
        summary,
        guild_id: req.guild_id,
        commander: req.by.clone(),
        opened_ms: now,
        next_page_ms: Some(now + minutes(app.severity_config(req.severity).ack_minutes)),
        next_update_ms: app.next_update(req.severity, now),
    };
    let mut incident = db::insert(&app.store, &new).await?;
    info!(incident = %incident.id, severity = %incident.severity, "incident opened");
    let mut warnings = Vec::new();

    let room = match (app.incidents.room, req.guild_id) {
        (Room::Channel, Some(guild)) => {
            let name = channel_name(incident.id, &incident.title);
            app.chat
                .create_channel(guild, &name, app.incidents.category_id)
                .await
        }
        _ => {
            let name = format!("{} {}", incident.id, incident.title);
            app.chat.create_thread(parent, &name).await
        }
    };
    match room {
        Ok(thread) => {
            let card = app.chat.send(thread, card(app, &incident)).await;
            let card_id = match card {
                Ok(id) => Some(id as i64),
                Err(e) => {
                    warn!(incident = %incident.id, error = %e, "incident card not posted");
                    warnings
                        .push("the incident card could not be posted (see Klaxon's logs)".into());
                    None
                }
            };
            let change = db::Change {
                set: "channel_id = $2, card_message_id = $3",
                binds: vec![Some(thread as i64).into(), card_id.into()],
                entry: None,
                allow_resolved: true,
                only_unacked: false,
            };
            if let Some(i) = db::change(&app.store, incident.id, change).await? {
                incident = i;
            }
        }
        Err(e) => {
            warn!(incident = %incident.id, error = %e, "incident room not created");
            warnings.push(format!(
                "the incident's {} could not be created (see Klaxon's logs)",
                match app.incidents.room {
                    Room::Thread => "thread",
                    Room::Channel => "channel",
                }
            ));
        }
    }
    if let Err(e) = app.chat.send(parent, notice(app, &incident, None)).await {
        warn!(incident = %incident.id, error = %e, "stakeholder notice not posted");
        warnings.push("the stakeholder notice could not be posted (see Klaxon's logs)".into());
    }
    Ok(Opened { incident, warnings })
}

/// A Discord text channel name: `inc-7-checkout-api-down`.
pub fn channel_name(id: IncidentId, title: &str) -> String {
    let mut out = format!("inc-{}", id.0);
    let mut dash = true;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash {
                out.push('-');
            }
            out.push(c);
            dash = false;
        } else {
            dash = true;
        }
        if out.chars().count() >= 90 {
            break;
        }
    }
    out
}

/// The card at the top of the incident's thread: the state now, and its buttons.
pub fn card(app: &App, i: &Incident) -> ChatMessage {
    let sev = app.severity_config(i.severity);
    let mut fields = vec![
        Field {
            name: "Severity".into(),
            value: format!("{} · {}", i.severity, chat::neutralize(&sev.description)),
            inline: true,
        },
        Field {
            name: "Status".into(),
            value: i.status.title().into(),
            inline: true,
        },
        Field {
            name: "Commander".into(),
            value: chat::neutralize(&i.commander.name),
            inline: true,
        },
    ];
    if let Some(s) = &i.service {
        fields.push(Field {
            name: "Service".into(),
            value: chat::neutralize(s),
            inline: true,
        });
    }
    for (name, holder) in [("Comms", &i.comms), ("Scribe", &i.scribe)] {
        if let Some(h) = holder {
            fields.push(Field {
                name: name.into(),
                value: chat::neutralize(&h.name),
                inline: true,
            });
        }
    }
    let ack = match (&i.acked_ms, &i.acked_by) {
        (Some(t), Some(by)) => format!("Acknowledged by {} at {}", chat::neutralize(by), hhmm(*t)),
        _ => format!("Not acknowledged yet (target {} min)", sev.ack_minutes),
    };
    fields.push(Field {
        name: "Acknowledged".into(),
        value: ack,
        inline: false,
    });
    let mut description = String::new();
    if !i.summary.is_empty() {
        description.push_str(&chat::neutralize(&i.summary));
        description.push_str("\n\n");
    }
    description.push_str(&format!("Started {}", hhmm(i.opened_ms)));
    if let Some(r) = i.resolved_ms {
        description.push_str(&format!(
            " · resolved {} after {}",
            hhmm(r),
            duration_text(r - i.opened_ms)
        ));
    }
    let color = match (i.status, i.severity) {
        (Status::Resolved, _) => chat::GREEN,
        (_, Severity::P1 | Severity::P2) => chat::RED,
        _ => chat::YELLOW,
    };
    let buttons = if i.is_open() {
        let b = |verb: &str, label: &str, style| Button {
            custom_id: format!("{PREFIX}:{verb}:{}", i.id.0),
            label: label.into(),
            style,
        };
        let mut v = Vec::new();
        if i.acked_ms.is_none() {
            v.push(b("ack", "Acknowledge", ButtonStyle::Primary));
        }
        v.push(b("update", "Post update", ButtonStyle::Secondary));
        v.push(b("note", "Add note", ButtonStyle::Secondary));
        v.push(b("resolve", "Resolve", ButtonStyle::Success));
        v
    } else {
        Vec::new()
    };
    ChatMessage {
        embeds: vec![Embed {
            title: format!("{} · {}", i.id, chat::neutralize(&i.title)),
            description,
            color,
            fields,
            footer: "Pin 📌 a message or use “Add to timeline” to record it".into(),
        }
        .fit()],
        buttons,
        ..Default::default()
    }
}

/// The stakeholder notice in the incidents channel: plain words, no internals.
/// `update` is the status message for an update; `None` for the opening notice.
pub fn notice(app: &App, i: &Incident, update: Option<&str>) -> ChatMessage {
    // Each free-text field has its own budget, so a long impact never pushes out the
    // root cause or the line that says where updates go.
    let field = |s: &str| chat::neutralize(&chat::truncate(s.trim(), NOTICE_FIELD));
    let tag = match (i.status, update) {
        (Status::Resolved, _) => "RESOLVED".to_string(),
        (_, None) => format!("{} INCIDENT", i.severity),
        (_, Some(_)) => format!("{} UPDATE", i.severity),
    };
    let mut lines = vec![format!(
        "**[{tag}] {}** ({})",
        chat::neutralize(&i.title),
        i.id
    )];
    lines.push(format!("Status: {}", i.status.title()));
    let impact = if !i.impact.is_empty() {
        i.impact.clone()
    } else if !i.summary.is_empty() {
        i.summary.clone()
    } else {
        "Being assessed".into()
    };
    match i.resolved_ms {
        Some(r) => {
            lines.push(format!(
                "Duration: {} ({} to {})",
                duration_text(r - i.opened_ms),
                hhmm(i.opened_ms),
                hhmm(r)
            ));
            lines.push(format!("Impact: {}", field(&impact)));
            if !i.root_cause.is_empty() {
                lines.push(format!("Root cause: {}", field(&i.root_cause)));
            }
            if !i.resolution.is_empty() {
                lines.push(format!("Resolution: {}", field(&i.resolution)));
            }
        }
        None => {
            lines.push(format!("Impact: {}", field(&impact)));
            if let Some(u) = update {
                lines.push(format!("Update: {}", field(u)));
            }
            lines.push(format!("Started: {}", hhmm(i.opened_ms)));
            if let Some(next) = i.next_update_ms {
                lines.push(format!("Next update by: {}", hhmm(next)));
            }
        }
    }
    if let Some(t) = i.channel_id {
        lines.push(format!("Updates: <#{t}>"));
    }
    let mut content = lines.join("\n");
    let mut ping_roles = Vec::new();
    if update.is_none() && i.is_open() {
        if let Some(role) = app.pages(i.severity) {
            content = format!("<@&{role}> {content}");
            ping_roles.push(role);
        }
    }
    ChatMessage {
        content: chat::truncate(&content, chat::limits::CONTENT),
        ping_roles,
        // P3/P4 updates inform without waking anybody.
        silent: matches!(i.severity, Severity::P3 | Severity::P4),
        ..Default::default()
    }
}

/// Refreshes the card after a change; a failure is logged, not fatal. The card is
/// rendered from the database as it is now, so that of two changes at once the later
/// edit never shows the older state.
async fn refresh_card(app: &App, changed: &Incident) {
    let i = match db::get(&app.store, changed.id).await {
        Ok(Some(i)) => i,
        _ => changed.clone(),
    };
    if let (Some(ch), Some(msg)) = (i.channel_id, i.card_message_id) {
        if let Err(e) = app.chat.edit(ch, msg, card(app, &i)).await {
            warn!(incident = %i.id, error = %e, "incident card not updated");
        }
    }
}

/// Posts, logging a failure; true when it was posted.
async fn post(app: &App, channel: Option<u64>, message: ChatMessage, what: &str) -> bool {
    let Some(ch) = channel else {
        return false;
    };
    match app.chat.send(ch, message).await {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, channel = ch, what, "incident message not posted");
            false
        }
    }
}

pub async fn ack(app: &App, id: IncidentId, by: &Who) -> Result<Incident, IncidentError> {
    let now = app.clock.now_ms();
    let current = load(app, id).await?;
    if !current.is_open() {
        return Err(IncidentError::Resolved(id));
    }
    let change = db::Change {
        set: "acked_ms = $2, acked_by_name = $3, next_page_ms = NULL",
        binds: vec![now.into(), by.name.clone().into()],
        entry: Some(NewEntry::new(
            EntryKind::Ack,
            now,
            by,
            format!(
                "Acknowledged by {} after {}",
                by.name,
                duration_text(now - current.opened_ms)
            ),
        )),
        allow_resolved: false,
        // Only the first acknowledgement counts: the guard is in the SQL, so two
        // clicks at the same moment cannot both win.
        only_unacked: true,
    };
    match db::change(&app.store, id, change).await? {
        Some(i) => {
            refresh_card(app, &i).await;
            Ok(i)
        }
        None => {
            let i = load(app, id).await?;
            match (i.is_open(), i.acked_by) {
                (false, _) => Err(IncidentError::Resolved(id)),
                (true, Some(by)) => Err(IncidentError::AlreadyAcked(id, by)),
                (true, None) => Err(IncidentError::Resolved(id)),
            }
        }
    }
}

/// A status update: the thread, the stakeholders, the timeline. `from_channel` is
/// where the member posted it: run anywhere but the incident's thread, the update is
/// also posted there, so the thread tells the whole story.
pub async fn set_status(
    app: &App,
    id: IncidentId,
    status: Status,
    message: &str,
    by: &Who,
    from_channel: u64,
) -> Result<Incident, IncidentError> {
    let message = check_text("status message", message, MAX_TEXT)?;
    if status == Status::Resolved {
        return resolve(
            app,
            id,
            Resolution {
                summary: message,
                ..Default::default()
            },
            by,
        )
        .await;
    }
    let now = app.clock.now_ms();
    let current = load(app, id).await?;
    let next = app.next_update(current.severity, now);
    let i = apply(
        app,
        id,
        db::Change {
            set: "status = $2, last_update_ms = $3, next_update_ms = $4",
            binds: vec![status.as_str().into(), now.into(), next.into()],
            entry: Some(NewEntry::new(
                EntryKind::Status,
                now,
                by,
                format!("Status {}: {message}", status.title()),
            )),
            allow_resolved: false,
            only_unacked: false,
        },
    )
    .await?;
    refresh_card(app, &i).await;
    if i.channel_id.is_some_and(|t| t != from_channel) {
        let text = format!(
            "📣 **{}** by {}: {}",
            i.status.title(),
            chat::neutralize(&by.name),
            chat::neutralize(&message)
        );
        post(app, i.channel_id, ChatMessage::text(text), "thread update").await;
    }
    post(
        app,
        app.incidents_channel,
        notice(app, &i, Some(&message)),
        "stakeholder update",
    )
    .await;
    Ok(i)
}

pub async fn set_severity(
    app: &App,
    id: IncidentId,
    severity: Severity,
    by: &Who,
) -> Result<Incident, IncidentError> {
    let now = app.clock.now_ms();
    let current = load(app, id).await?;
    if current.severity == severity {
        return Err(IncidentError::Invalid(format!(
            "{id} is already {severity}."
        )));
    }
    // A new severity brings its own targets; an unacknowledged incident is re-paged
    // on the new level's schedule (counted from now when raising pages now). The SQL
    // keeps it off if an acknowledgement lands in between.
    let raised_page = severity < current.severity && app.pages(severity).is_some();
    let ack = minutes(app.severity_config(severity).ack_minutes);
    let next_page = Some(if raised_page {
        now + ack
    } else {
        current.opened_ms + ack
    });
    let next_update = app.next_update(severity, current.last_update_ms);
    let i = apply(
        app,
        id,
        db::Change {
            set: "severity = $2, next_page_ms = CASE WHEN acked_ms IS NULL THEN $3 ELSE NULL END, \
                  next_update_ms = $4",
            binds: vec![
                severity.as_str().into(),
                next_page.into(),
                next_update.into(),
            ],
            entry: Some(NewEntry::new(
                EntryKind::Severity,
                now,
                by,
                format!("Severity {} → {severity}", current.severity),
            )),
            allow_resolved: false,
            only_unacked: false,
        },
    )
    .await?;
    refresh_card(app, &i).await;
    // Raised to a paging level: the on-call role hears about it now.
    if raised_page && i.acked_ms.is_none() {
        post(
            app,
            app.incidents_channel,
            notice(app, &i, None),
            "severity page",
        )
        .await;
    }
    Ok(i)
}

pub async fn assign(
    app: &App,
    id: IncidentId,
    role: Role,
    member: &Who,
    by: &Who,
) -> Result<Incident, IncidentError> {
    let now = app.clock.now_ms();
    let (id_col, name_col) = db::role_columns(role);
    let set = format!("{id_col} = $2, {name_col} = $3");
    let i = apply(
        app,
        id,
        db::Change {
            set: &set,
            binds: vec![(member.id as i64).into(), member.name.clone().into()],
            entry: Some(NewEntry::new(
                EntryKind::Role,
                now,
                by,
                format!("{} is now {}", member.name, role.as_str()),
            )),
            allow_resolved: false,
            only_unacked: false,
        },
    )
    .await?;
    refresh_card(app, &i).await;
    Ok(i)
}

pub async fn note(
    app: &App,
    id: IncidentId,
    text: &str,
    by: &Who,
) -> Result<Incident, IncidentError> {
    let text = check_text("note", text, MAX_TEXT)?;
    let now = app.clock.now_ms();
    apply(
        app,
        id,
        db::Change {
            set: "last_update_ms = last_update_ms",
            binds: Vec::new(),
            entry: Some(NewEntry::new(EntryKind::Note, now, by, text)),
            allow_resolved: false,
            only_unacked: false,
        },
    )
    .await
}

pub async fn add_action(
    app: &App,
    id: IncidentId,
    text: &str,
    by: &Who,
) -> Result<i64, IncidentError> {
    let text = check_text("action", text, 1_000)?;
    let now = app.clock.now_ms();
    // Follow-up actions may be added after resolution: the post-mortem collects them.
    db::add_action(&app.store, id, &text, by, now)
        .await?
        .ok_or(IncidentError::Unknown(id))
}

pub async fn finish_action(
    app: &App,
    id: IncidentId,
    number_or_text: &str,
    by: &Who,
) -> Result<(i64, String), IncidentError> {
    let now = app.clock.now_ms();
    load(app, id).await?;
    let wanted = number_or_text.trim().trim_start_matches('#');
    let number = match wanted.parse::<i64>() {
        Ok(n) => n,
        Err(_) => {
            // The member may type the action's text: pick the open one it names.
            let actions = db::actions(&app.store, id).await?;
            let lower = wanted.to_lowercase();
            let found: Vec<&Action> = actions
                .iter()
                .filter(|a| a.done_ms.is_none() && a.text.to_lowercase().contains(&lower))
                .collect();
            match found.as_slice() {
                [one] => one.number,
                [] => {
                    return Err(IncidentError::Invalid(format!(
                        "No open action of {id} matches `{}`.",
                        chat::neutralize(&chat::truncate(wanted, 100))
                    )))
                }
                _ => {
                    return Err(IncidentError::Invalid(format!(
                        "Several open actions match; give the number (`#{}`).",
                        found[0].number
                    )))
                }
            }
        }
    };
    match db::finish_action(&app.store, id, number, by, now).await? {
        Some(text) => Ok((number, text)),
        None => Err(IncidentError::Invalid(format!(
            "{id} has no open action #{number}."
        ))),
    }
}

/// What the Resolve modal asks.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub summary: String,
    pub root_cause: String,
    pub resolution: String,
    pub impact: String,
}

pub async fn resolve(
    app: &App,
    id: IncidentId,
    r: Resolution,
    by: &Who,
) -> Result<Incident, IncidentError> {
    let mut fields = Vec::new();
    for (what, v) in [
        ("summary", &r.summary),
        ("root cause", &r.root_cause),
        ("resolution", &r.resolution),
        ("impact", &r.impact),
    ] {
        let t = v.trim();
        if t.chars().count() > MAX_TEXT {
            return Err(IncidentError::Invalid(format!(
                "The {what} is {} characters long; at most {MAX_TEXT} fit.",
                t.chars().count()
            )));
        }
        fields.push(t.to_string());
    }
    let now = app.clock.now_ms();
    let current = load(app, id).await?;
    if !current.is_open() {
        return Err(IncidentError::Resolved(id));
    }
    let mut text = format!("Resolved after {}", duration_text(now - current.opened_ms));
    if !fields[0].is_empty() {
        text.push_str(&format!(": {}", fields[0]));
    }
    // Empty answers keep what was there (a summary given at open stays).
    let i = apply(
        app,
        id,
        db::Change {
            set: "status = 'resolved', resolved_ms = $2, last_update_ms = $3, \
                  next_page_ms = NULL, next_update_ms = NULL, \
                  summary = CASE WHEN $4 = '' THEN summary ELSE $5 END, \
                  root_cause = CASE WHEN $6 = '' THEN root_cause ELSE $7 END, \
                  resolution = CASE WHEN $8 = '' THEN resolution ELSE $9 END, \
                  impact = CASE WHEN $10 = '' THEN impact ELSE $11 END",
            binds: vec![
                now.into(),
                now.into(),
                fields[0].clone().into(),
                fields[0].clone().into(),
                fields[1].clone().into(),
                fields[1].clone().into(),
                fields[2].clone().into(),
                fields[2].clone().into(),
                fields[3].clone().into(),
                fields[3].clone().into(),
            ],
            entry: Some(NewEntry::new(EntryKind::Resolved, now, by, text)),
            allow_resolved: false,
            only_unacked: false,
        },
    )
    .await?;
    info!(incident = %i.id, "incident resolved");
    refresh_card(app, &i).await;
    post(
        app,
        app.incidents_channel,
        notice(app, &i, None),
        "resolved notice",
    )
    .await;
    Ok(i)
}

/// A chat message into the timeline (pin reaction or "Add to timeline"). Returns
/// the incident and whether the message was new to the timeline.
pub async fn capture(
    app: &App,
    channel_id: u64,
    message: &chat::PostedMessage,
    permalink: String,
) -> Result<Option<(Incident, bool)>, IncidentError> {
    let Some(i) = db::by_channel(&app.store, channel_id).await? else {
        return Ok(None);
    };
    let added = db::capture(
        &app.store,
        i.id,
        &db::Captured {
            message_id: message.id,
            at_ms: message.at_ms,
            author: Who {
                id: message.author_id,
                name: message.author_name.clone(),
            },
            text: message.content.clone(),
            permalink,
            attachments: message.attachment_urls.clone(),
        },
    )
    .await?;
    Ok(Some((i, added)))
}

pub async fn message_edited(app: &App, message_id: u64, text: &str) -> Result<u64, IncidentError> {
    Ok(db::message_edited(&app.store, message_id, text, app.clock.now_ms()).await?)
}

pub async fn message_deleted(app: &App, message_id: u64) -> Result<u64, IncidentError> {
    Ok(db::message_deleted(&app.store, message_id, app.clock.now_ms()).await?)
}

/// Commands whose runs against a service land in that service's open incidents.
const RECORDED: [&str; 4] = ["logs", "rollback", "restart", "maintenance"];

/// Called for every audit row: a command run for a service with an open incident
/// goes to that incident's timeline with its outcome.
pub async fn record_command(app: &App, e: &AuditEntry) -> Result<(), StoreError> {
    let top = e.command.split(' ').next().unwrap_or_default();
    if !RECORDED.contains(&top) || e.outcome == Outcome::Denied {
        return Ok(());
    }
    let Some(service) = e.service() else {
        return Ok(());
    };
    let Some(svc) = app.service(service).ok() else {
        return Ok(());
    };
    for i in db::open_for_service(&app.store, &svc.name).await? {
        let mut text = format!("/{} {}: {}", e.command, e.arguments, e.outcome.as_str());
        if !e.detail.is_empty() {
            text.push_str(&format!(" ({})", e.detail));
        }
        db::add_entry(
            &app.store,
            i.id,
            &NewEntry::new(
                EntryKind::Command,
                app.clock.now_ms(),
                &Who {
                    id: e.user_id,
                    name: e.user_name.clone(),
                },
                chat::truncate(&text, 1_000),
            ),
        )
        .await?;
    }
    Ok(())
}

/// A reminder whose message could not be posted is tried again this soon, instead
/// of a whole ack target later.
const REMINDER_RETRY_MS: i64 = 60_000;

/// Characters of an alert's summary kept on the timeline of the incident opened
/// from it (the summary field itself holds at most [`MAX_TEXT`]).
const FULL_SUMMARY: usize = 32_000;

/// Opens an incident from alerts ("Open incident" on an alert message): a summary
/// longer than an incident's takes is cut to fit, with an ellipsis, and kept whole
/// on the timeline; the alerts are linked to it.
pub async fn open_from_alerts(
    app: &App,
    mut req: OpenRequest,
    alerts: &[&crate::alerts::Alert],
) -> Result<Opened, IncidentError> {
    let full = req
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| s.chars().count() > MAX_TEXT)
        .map(String::from);
    if let Some(full) = &full {
        req.summary = Some(chat::truncate(full, MAX_TEXT));
    }
    let by = req.by.clone();
    let opened = open(app, req).await?;
    if let Some(full) = full {
        let entry = NewEntry::new(
            EntryKind::Alert,
            app.clock.now_ms(),
            &by,
            format!(
                "The alert's summary in full: {}",
                chat::truncate(&full, FULL_SUMMARY)
            ),
        );
        if let Err(e) = db::add_entry(&app.store, opened.incident.id, &entry).await {
            warn!(error = %e, incident = %opened.incident.id, "full summary not on the timeline");
        }
    }
    if let Err(e) = record_alerts(app, alerts).await {
        warn!(error = %e, "alerts not linked to the new incident");
    }
    Ok(opened)
}

/// Alerts that fired or resolved for a service with an open incident join that
/// incident's timeline.
pub async fn record_alerts(app: &App, alerts: &[&crate::alerts::Alert]) -> Result<(), StoreError> {
    for a in alerts {
        let Some(service) = a.label("service") else {
            continue;
        };
        let Ok(svc) = app.service(service) else {
            continue;
        };
        for i in db::open_for_service(&app.store, &svc.name).await? {
            let text = format!(
                "Alert {} {} ({}): {}",
                a.name(),
                a.status.as_str(),
                a.source.as_str(),
                a.summary()
            );
            db::add_entry(
                &app.store,
                i.id,
                &NewEntry::new(
                    EntryKind::Alert,
                    app.clock.now_ms(),
                    &Who::klaxon(),
                    chat::truncate(&text, 1_000),
                ),
            )
            .await?;
        }
    }
    Ok(())
}

/// One pass of the reminder worker: re-page unacknowledged incidents and nudge
/// commanders who owe an update. Safe on several replicas at once: each reminder is
/// claimed in the database (its due time moved on) before it is sent. A message that
/// cannot be posted gives the reminder back, due again in a minute, and the timeline
/// records only what was really sent.
pub async fn remind(app: &App) -> Result<usize, StoreError> {
    let now = app.clock.now_ms();
    let mut sent = 0;
    for page in [true, false] {
        for i in db::due(&app.store, now, page).await? {
            let (Some(was), next) = (if page {
                let ack = app.severity_config(i.severity).ack_minutes;
                (i.next_page_ms, Some(now + minutes(ack)))
            } else {
                (i.next_update_ms, app.next_update(i.severity, now))
            }) else {
                continue;
            };
            if !db::move_reminder(&app.store, i.id, page, was, next).await? {
                continue; // another replica took it, or it was acknowledged
            }
            let (channel, message, entry) = if page {
                repage(app, &i, now)
            } else {
                nudge(app, &i, now)
            };
            if post(app, channel, message, "reminder").await {
                db::add_entry(
                    &app.store,
                    i.id,
                    &NewEntry::new(EntryKind::Reminder, now, &Who::klaxon(), entry),
                )
                .await?;
                sent += 1;
            } else if let Some(next) = next {
                db::move_reminder(&app.store, i.id, page, next, Some(now + REMINDER_RETRY_MS))
                    .await?;
            }
        }
    }
    Ok(sent)
}

/// The re-page for an unacknowledged incident: where, what, and its timeline line.
fn repage(app: &App, i: &Incident, now: i64) -> (Option<u64>, ChatMessage, String) {
    let sev = app.severity_config(i.severity);
    let after = duration_text(now - i.opened_ms);
    let mut content = format!(
        "🔔 **{} ({}) is not acknowledged** after {after} (target {} min): {}",
        i.id,
        i.severity,
        sev.ack_minutes,
        chat::neutralize(&i.title)
    );
    if let Some(t) = i.channel_id {
        content.push_str(&format!("\nAcknowledge in <#{t}>."));
    }
    let mut message = ChatMessage::text(content);
    let entry = match app.pages(i.severity) {
        Some(role) => {
            message.content = chat::truncate(
                &format!("<@&{role}> {}", message.content),
                chat::limits::CONTENT,
            );
            message.ping_roles.push(role);
            format!("Not acknowledged after {after}: on-call paged again")
        }
        None => format!("Not acknowledged after {after}: reminder posted"),
    };
    (app.incidents_channel, message, entry)
}

/// The nudge to a commander who owes a status update.
fn nudge(app: &App, i: &Incident, now: i64) -> (Option<u64>, ChatMessage, String) {
    let since = duration_text(now - i.last_update_ms);
    let message = ChatMessage {
        content: format!(
            "⏰ <@{}> {} has had no status update for {since}. Post one with `/incident status` or the card's Post update button.",
            i.commander.id, i.id
        ),
        ping_users: vec![i.commander.id],
        ..Default::default()
    };
    (
        i.channel_id.or(app.incidents_channel),
        message,
        format!("No status update for {since}: commander reminded"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_utc() {
        // 2026-12-01 14:03:00 UTC
        let t = 1_796_133_780_000;
        assert_eq!(hhmm(t), "14:03 UTC");
        assert_eq!(date_time(t), "2026-12-01 14:03 UTC");
        assert_eq!(duration_text(72 * 60_000), "1h 12m");
    }

    #[test]
    fn channel_names_are_discord_style() {
        assert_eq!(
            channel_name(IncidentId(7), "Checkout API: down (EU)!"),
            "inc-7-checkout-api-down-eu"
        );
    }

    #[test]
    fn texts_are_checked() {
        assert!(check_text("note", "  ", 10).is_err());
        assert!(check_text("note", &"x".repeat(11), 10).is_err());
        assert_eq!(check_text("note", " ok ", 10).unwrap(), "ok");
    }
}
