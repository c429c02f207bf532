//! The reminder worker: re-pages incidents nobody acknowledged and nudges
//! commanders who owe a status update.

use super::lifecycle::post;
use super::minutes;
use crate::actor::Actor;
use crate::store::incidents as db;
use crate::store::incidents::EntryKind;
use crate::store::incidents::Incident;
use crate::store::incidents::NewEntry;
use crate::timefmt::duration_text;

use crate::app::App;
use crate::chat;
use crate::chat::ChatMessage;
use crate::chat::Span;
use crate::chat::Text;
use crate::posts::{Kind, To};
use crate::store::StoreError;

/// One pass of the reminder worker: re-page unacknowledged incidents and nudge
/// commanders who owe an update. Safe on several replicas at once: each reminder is
/// claimed in the database (its due time moved on) before it is stored. The message
/// goes through the posts outbox (after the incident's earlier posts, retried until
/// Discord takes it), so a reminder is never lost to a Discord outage.
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
            if post(app, i.id, Kind::Reminder, channel, message).await {
                db::add_entry(
                    &app.store,
                    i.id,
                    &NewEntry::new(EntryKind::Reminder, now, &Actor::klaxon(), entry),
                )
                .await?;
                sent += 1;
            } else if let Some(next) = next {
                // Not stored (the database failed): the reminder is due again.
                db::move_reminder(&app.store, i.id, page, next, Some(was)).await?;
            }
        }
    }
    Ok(sent)
}

/// The re-page for an unacknowledged incident: where, what, and its timeline line.
fn repage(app: &App, i: &Incident, now: i64) -> (Option<To>, ChatMessage, String) {
    let sev = app.severity_config(i.severity);
    let after = duration_text(now - i.opened_ms);
    let mut content = Text::from(format!(
        "🔔 **{} ({}) is not acknowledged** after {after} (target {} min): {}",
        i.id,
        i.severity,
        sev.ack_minutes,
        chat::neutralize(&i.title)
    ));
    if let Some(t) = i.channel_id {
        content.push("\nAcknowledge in ");
        content.push(Span::Channel(t));
        content.push(".");
    }
    let role = app.pages(i.severity);
    let message = ChatMessage::text(content).paging(role);
    let entry = match role {
        Some(_) => format!("Not acknowledged after {after}: on-call paged again"),
        None => format!("Not acknowledged after {after}: reminder posted"),
    };
    (app.incidents_channel.map(To::Channel), message, entry)
}

/// The nudge to a commander who owes a status update.
fn nudge(app: &App, i: &Incident, now: i64) -> (Option<To>, ChatMessage, String) {
    let since = duration_text(now - i.last_update_ms);
    let message = ChatMessage {
        content: Text::from("⏰ ").with(Span::User(i.commander.user_id)).with(format!(
            " {} has had no status update for {since}. Post one with `/incident status` or the card's Post update button.",
            i.id
        )),
        ping_users: vec![i.commander.user_id],
        ..Default::default()
    };
    (
        match i.channel_id {
            Some(_) => Some(To::Room),
            None => app.incidents_channel.map(To::Channel),
        },
        message,
        format!("No status update for {since}: commander reminded"),
    )
}
