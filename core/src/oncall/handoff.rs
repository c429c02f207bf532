//! Hand-offs, run by the leader every few seconds: when a schedule's on-call member
//! changes (a rotation hand-off or an override edge), the change is recorded as a
//! row, then announced in the schedule's `announce` channel and the `sync_role`
//! moved from who hands over to who takes over.
//!
//! The row is the durable marker: it is written once per change (a unique index on
//! schedule and time), each step is marked done on the row, and the announcement
//! goes through the posts outbox keyed (and nonced) by the row's id, so a restart or a fail-over between the
//! post and the mark never shows a second notice.

use std::time::Duration;

use tracing::{error, info, warn};

use crate::app::App;
use crate::chat::{self, ChatError, ChatMessage, Span, Text};
use crate::posts::{self, Kind, Post, To};
use crate::settings::oncall::Schedule;
use crate::store::oncall::{self as rows, HandoffRow};

use super::OncallError;

/// How often the leader looks: well inside a minute of any hand-off.
pub const TICK: Duration = Duration::from_secs(5);

/// Records new hand-offs, then announces and moves roles for those not done yet.
/// Returns how many steps it did.
pub async fn tick(app: &App) -> Result<usize, OncallError> {
    let now = app.clock.now_ms();
    for s in &app.oncall.schedules {
        if s.sync_role.is_none() && s.announce.is_none() {
            continue;
        }
        let who = super::now(app, s).await?.member.unwrap_or(0);
        let last = rows::last_handoff(&app.store, s.name.as_str()).await?;
        let from = last.as_ref().map(|l| l.to_member);
        if from != Some(who) {
            rows::insert_handoff(&app.store, s.name.as_str(), from.unwrap_or(0), who, now).await?;
            info!(schedule = %s.name, from = from.unwrap_or(0), to = who, "on-call hand-off");
        }
    }
    let mut done = 0;
    for h in rows::pending_handoffs(&app.store).await? {
        let Some(s) = app.oncall.schedule(&h.schedule) else {
            // A schedule removed from the config: nothing left to do for it.
            rows::mark_handoff(&app.store, h.id, true, now).await?;
            rows::mark_handoff(&app.store, h.id, false, now).await?;
            continue;
        };
        if h.announced_ms.is_none() && step(announce(app, s, &h).await, &h, "announce")? {
            rows::mark_handoff(&app.store, h.id, true, app.clock.now_ms()).await?;
            done += 1;
        }
        if h.role_moved_ms.is_none() && step(move_role(app, s, &h).await, &h, "sync_role")? {
            rows::mark_handoff(&app.store, h.id, false, app.clock.now_ms()).await?;
            done += 1;
        }
    }
    Ok(done)
}

/// Whether a step is finished: done, or refused for good (logged; retrying a
/// refusal every tick would only collect 403s). Discord being away retries.
fn step(r: Result<(), ChatError>, h: &HandoffRow, what: &str) -> Result<bool, OncallError> {
    match r {
        Ok(()) => Ok(true),
        Err(ChatError::Unavailable(why)) => {
            warn!(handoff = h.id, schedule = %h.schedule, %why, "on-call {what} failed; retrying");
            Ok(false)
        }
        Err(e) => {
            error!(handoff = h.id, schedule = %h.schedule, error = %e, "on-call {what} refused by Discord; skipped (check the channel and the bot's Manage Roles permission and role position)");
            Ok(true)
        }
    }
}

fn person(id: u64) -> Span {
    if id == 0 {
        Span::Literal("nobody".into())
    } else {
        Span::User(id)
    }
}

/// `🔁 primary: @ann hands over to @bob (until …)`, with the open incidents and
/// the alerts still firing. Only the one taking over is pinged.
pub async fn message(app: &App, s: &Schedule, h: &HandoffRow) -> Result<ChatMessage, OncallError> {
    let at = super::now(app, s).await?;
    let mut text = Text::new()
        .with(format!("🔁 On-call hand-off, **{}**: ", s.name))
        .with(person(h.from_member))
        .with(" hands over to ")
        .with(person(h.to_member));
    if let Some(until) = at.until_ms.filter(|_| at.member == Some(h.to_member)) {
        text.push(" until ");
        text.push(Span::RelativeTime(until));
    }
    text.push(".");
    let incidents = crate::store::incidents::list_open(&app.store).await?;
    if incidents.is_empty() {
        text.push("\nNo open incidents.");
    } else {
        text.push(format!("\nOpen incidents ({}):", incidents.len()));
        for i in incidents.iter().take(10) {
            text.push(format!(
                "\n• {} {} {}",
                i.id,
                i.severity,
                chat::neutralize(&chat::truncate(&i.title, 80))
            ));
        }
    }
    let firing = crate::store::alerts::firing(&app.store).await?;
    if firing.is_empty() {
        text.push("\nNo alerts firing.");
    } else {
        text.push(format!("\nAlerts firing ({}):", firing.len()));
        for a in firing.iter().take(10) {
            let service = if a.service.is_empty() {
                String::new()
            } else {
                format!(" · {}", chat::neutralize(&chat::truncate(&a.service, 40)))
            };
            text.push(format!(
                "\n• {} {}{service}",
                a.severity,
                chat::neutralize(&chat::truncate(&a.name, 80))
            ));
        }
    }
    let mut m = ChatMessage::text(text);
    if h.to_member != 0 {
        m.ping_users = vec![h.to_member];
    }
    Ok(m)
}

async fn announce(app: &App, s: &Schedule, h: &HandoffRow) -> Result<(), ChatError> {
    let Some(channel) = s.announce else {
        return Ok(());
    };
    let m = match message(app, s, h).await {
        Ok(m) => m,
        Err(e) => return Err(ChatError::Unavailable(format!("reading the database: {e}"))),
    };
    // Through the posts outbox (issue #18): stored once under the hand-off's key
    // (also its nonce), delivered by the worker with back-off, so a Discord outage
    // at the hand-off delays the notice instead of losing it.
    let post = Post::new(
        Kind::OnCall,
        To::Channel(channel),
        m,
        format!("oncall {}", s.name),
    )
    .keyed(format!("oncall-handoff-{}", h.id));
    posts::post_with(app, post)
        .await
        .map(|_| ())
        .map_err(|e| ChatError::Unavailable(format!("storing the notice: {e}")))
}

async fn move_role(app: &App, s: &Schedule, h: &HandoffRow) -> Result<(), ChatError> {
    let (Some(role), Some(guild)) = (s.sync_role, app.guild_id) else {
        return Ok(());
    };
    let reason = format!("on-call hand-off on {}", s.name);
    if h.from_member != 0 && h.from_member != h.to_member {
        app.chat
            .remove_role(guild, h.from_member, role, &reason)
            .await?;
    }
    if h.to_member != 0 {
        app.chat.add_role(guild, h.to_member, role, &reason).await?;
    }
    Ok(())
}
