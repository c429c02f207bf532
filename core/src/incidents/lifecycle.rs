//! The incident lifecycle: open, acknowledge, status updates, severity, roles,
//! notes, actions, resolution, and captured chat messages. Each change is one
//! database transaction with its timeline entry; the card and the notices follow
//! through the posts outbox ([`crate::posts`]), delivered by the leader's worker.

use tracing::info;
use tracing::warn;

use super::apply;
use super::check_text;
use super::load;
use super::minutes;
use super::model::IncidentId;
use super::model::Role;
use super::model::Room;
use super::model::Severity;
use super::model::Status;
use super::model::MAX_TEXT;
use super::model::MAX_TITLE;
use super::render::card;
use super::render::notice;
use super::IncidentError;
use crate::actor::Actor;
use crate::store::incidents as db;
use crate::store::incidents::Action;
use crate::store::incidents::EntryKind;
use crate::store::incidents::Incident;
use crate::store::incidents::NewEntry;
use crate::timefmt::duration_text;

use crate::app::App;
use crate::chat;
use crate::chat::ChatMessage;
use crate::oncall::escalate::{self, Subject};
use crate::posts::{self, incident_subject, Kind, Post, To};
use crate::store::StoreError;

/// What `/incident open` asks for.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub summary: Option<String>,
    pub guild_id: Option<u64>,
    pub by: Actor,
    /// `false` (`public:false`): kept off the public status page, its feed and
    /// status.json; Discord's notices are unchanged.
    pub public: bool,
}

/// What opening did, for the reply.
#[derive(Debug, Clone)]
pub struct Opened {
    pub incident: Incident,
    /// Problems posting to chat (the incident exists regardless).
    pub warnings: Vec<String>,
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
        public: req.public,
    };
    let mut incident = db::insert(&app.store, &new).await?;
    info!(incident = %incident.id, severity = %incident.severity, public = req.public, "incident opened");
    let mut warnings = Vec::new();

    // The room is created now, so the reply can link to it; the card and the
    // notice go through the posts outbox (stored here, delivered by the worker, in
    // this order). Without a room (Discord down) the incident opens anyway and the
    // worker creates the room before the card (see `room`).
    match super::room::create_room(app, &incident).await {
        Ok(thread) => {
            super::room::record_room(app, incident.id, thread).await?;
            if let Some(i) = db::get(&app.store, incident.id).await? {
                incident = i;
            }
        }
        Err(e) => {
            warn!(incident = %incident.id, error = %e, "incident room not created; the posts worker retries");
            warnings.push(format!(
                "the incident's {} could not be created yet; Klaxon keeps trying and posts the card there (see Klaxon's logs)",
                match app.incidents.room {
                    Room::Thread => "thread",
                    Room::Channel => "channel",
                }
            ));
        }
    }
    let subject = incident_subject(incident.id);
    let card = Post::new(Kind::IncidentCard, To::Room, card(app, &incident), &subject);
    let notice = Post::new(
        Kind::IncidentNotice,
        To::Channel(parent),
        notice(app, &incident, None),
        &subject,
    );
    let now = app.clock.now_ms();
    let mut tx = app.store.begin_write().await?;
    posts::store_in(&mut tx, &card, now).await?;
    posts::store_in(&mut tx, &notice, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    posts::wake(app);
    if let Some(policy) = app.escalation(incident.severity) {
        let channel = incident.channel_id.unwrap_or(parent);
        escalate::start_incident(
            app,
            incident.id,
            policy,
            &incident.title,
            incident.severity.as_str(),
            channel,
        )
        .await;
    }
    // Every severity shows on the public page at once, not only those with a
    // stakeholder notice (P3 and below have none).
    app.status_page_wake.notify_one();
    Ok(Opened { incident, warnings })
}

/// Refreshes the card after a change (an edit post: only the newest pending one
/// goes out). The card is rendered from the database as it is now, so that of two
/// changes at once the later edit never shows the older state. A failure to store
/// it is logged, not fatal: the change is made.
async fn refresh_card(app: &App, changed: &Incident) {
    let i = match db::get(&app.store, changed.id).await {
        Ok(Some(i)) => i,
        _ => changed.clone(),
    };
    let edit = Post::new(
        Kind::IncidentCard,
        To::Room,
        card(app, &i),
        incident_subject(i.id),
    )
    .as_edit();
    if let Err(e) = posts::post_with(app, edit).await {
        warn!(incident = %i.id, error = %e, "incident card update not stored");
    }
}

/// Posts through the posts outbox (stored, then delivered by the worker, after the
/// incident's earlier posts), logging a failure to store it; true when stored.
pub(super) async fn post(
    app: &App,
    incident: IncidentId,
    kind: Kind,
    to: Option<To>,
    message: ChatMessage,
) -> bool {
    // A stakeholder notice is what the public page shows: render it again now,
    // whoever made the change (a command, a button, Klaxon itself).
    if kind == Kind::IncidentNotice {
        app.status_page_wake.notify_one();
    }
    let Some(to) = to else {
        return false;
    };
    match posts::post_with(
        app,
        Post::new(kind, to, message, incident_subject(incident)),
    )
    .await
    {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, incident = %incident, kind = kind.as_str(), "incident message not stored");
            false
        }
    }
}

pub async fn ack(app: &App, id: IncidentId, by: &Actor) -> Result<Incident, IncidentError> {
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
            super::stats::observe_ack(app, &i);
            // Every pending step of its escalation ends with the acknowledgement.
            let why = format!("acknowledged by {}", by.name);
            if let Err(e) = escalate::stop(app, Subject::Incident(id), true, &why, by).await {
                warn!(incident = %id, error = %e, "escalation not stopped; the worker stops it at its next step");
            }
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
    by: &Actor,
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
        post(
            app,
            i.id,
            Kind::IncidentUpdate,
            Some(To::Room),
            ChatMessage::text(text),
        )
        .await;
    }
    post(
        app,
        i.id,
        Kind::IncidentNotice,
        app.incidents_channel.map(To::Channel),
        notice(app, &i, Some(&message)),
    )
    .await;
    Ok(i)
}

pub async fn set_severity(
    app: &App,
    id: IncidentId,
    severity: Severity,
    by: &Actor,
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
    // Raised to a severity with an escalation policy: it starts (unless running).
    if severity < current.severity && i.acked_ms.is_none() {
        if let Some(policy) = app.escalation(severity) {
            let channel = i.channel_id.or(app.incidents_channel).unwrap_or_default();
            escalate::start_incident(app, i.id, policy, &i.title, severity.as_str(), channel).await;
        }
    }
    // Raised to a paging level: the on-call role hears about it now.
    if raised_page && i.acked_ms.is_none() {
        post(
            app,
            i.id,
            Kind::Page,
            app.incidents_channel.map(To::Channel),
            notice(app, &i, None),
        )
        .await;
    }
    Ok(i)
}

pub async fn assign(
    app: &App,
    id: IncidentId,
    role: Role,
    member: &Actor,
    by: &Actor,
) -> Result<Incident, IncidentError> {
    let now = app.clock.now_ms();
    let (id_col, name_col) = db::role_columns(role);
    let set = format!("{id_col} = $2, {name_col} = $3");
    let i = apply(
        app,
        id,
        db::Change {
            set: &set,
            binds: vec![(member.user_id as i64).into(), member.name.clone().into()],
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
    by: &Actor,
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
    by: &Actor,
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
    by: &Actor,
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
    by: &Actor,
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
    super::stats::observe_resolve(app, &i);
    if let Err(e) = escalate::stop(app, Subject::Incident(id), false, "resolved", by).await {
        warn!(incident = %id, error = %e, "escalation not stopped; the worker stops it at its next step");
    }
    refresh_card(app, &i).await;
    post(
        app,
        i.id,
        Kind::IncidentNotice,
        app.incidents_channel.map(To::Channel),
        notice(app, &i, None),
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
            author: Actor::member(message.author_id, message.author_name.clone()),
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
