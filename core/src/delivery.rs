//! The posts worker: delivers what [`crate::posts`] stored, on the leader only (the
//! bot runs [`deliver_due`] from its leader's workers, woken by
//! [`App::posts_wake`](crate::app::App) when a post is stored, so a healthy post is
//! not delayed; between wakes it waits for the next retry).
//!
//! - **Order.** Only the first pending post of a subject is due; the rest of that
//!   subject waits behind it (the card before the notice, the notice before the
//!   reminder). Subjects are independent.
//! - **Retries.** Discord unavailable (5xx, a timeout): the post waits 1 s, 2 s, 4 s,
//!   8 s, then every [`MAX_BACKOFF_MS`], and the pass ends (Discord down is down for
//!   every post; the next post is tried when the back-off is over or a new post
//!   arrives). Refused (4xx) or an unknown channel: the post is parked with why and
//!   the subject goes on. A 401 stops delivery until a restart, as for alerts.
//! - **Creates** carry a nonce Discord enforces (`enforce_nonce`), the caller's key
//!   or `kp` + the post's id, so a retry after a timeout shows one message.
//! - **Edits** edit the message the subject's earlier create of the same kind made
//!   (the incident card: the id stored on the incident); only the newest pending
//!   edit of a message goes out.
//! - **After the nonce window.** Discord remembers a nonce for "a few minutes"
//!   (shared/discord-facts.md); a post whose first attempt is older than
//!   [`App::nonce_window`](crate::app::App) (default [`NONCE_WINDOW`]) may have been
//!   created while its answer was lost, and its nonce no longer protects it. Before
//!   such a create is sent again, the worker reads the channel's latest
//!   [`LOOKBACK`] messages by Klaxon and takes a match as the post. Discord does not
//!   return a message's nonce when messages are listed (only in the create's answer
//!   and the gateway's MESSAGE_CREATE), so the match is on what Klaxon can rely on:
//!   the author is Klaxon, and the content as Discord shows it and the embeds'
//!   titles are the post's. A post Klaxon made twice on purpose with the same text
//!   (two identical reminders) could be taken for one another only if the earlier
//!   one is among those latest messages and the later one's first attempt failed
//!   after the window: it is then not repeated, which is the safe side.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::app::App;
use crate::chat::{self, ChatError, ChatMessage, PostedMessage};
use crate::incidents::room;
use crate::posts::{subject_incident, Kind};
use crate::store::posts::{self as db, Pending};
use crate::store::StoreError;

/// How long Discord is trusted to remember a nonce by default: well inside its "few
/// minutes".
pub const NONCE_WINDOW: Duration = Duration::from_secs(120);
/// How many of a channel's latest messages are searched for a post after the window.
pub const LOOKBACK: u8 = 50;
/// The longest wait between two attempts of a post.
pub const MAX_BACKOFF_MS: i64 = 10_000;
/// Posts read per query.
const BATCH: i64 = 50;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub superseded: usize,
    pub parked: usize,
    /// A post found in the channel after the nonce window, not sent again.
    pub found: usize,
    pub retrying: usize,
}

enum Step {
    /// Closed (sent, superseded, parked, found): the subject goes on.
    Done,
    /// Discord is unavailable: the pass ends.
    Retry,
    /// Discord refused the token: delivery stops until a restart.
    Stop,
}

/// Delivers every due post, subject by subject in order, until nothing is due or
/// Discord fails.
pub async fn deliver_due(app: &App) -> Result<Delivered, StoreError> {
    let mut out = Delivered::default();
    // Bounded: a pass never runs forever, whatever keeps arriving.
    for _ in 0..100 {
        if app.chat_unauthorized.load(Ordering::Relaxed) {
            break; // kept pending: delivered after a restart with a good token
        }
        let heads = db::due_heads(&app.store, app.clock.now_ms(), BATCH).await?;
        if heads.is_empty() {
            break;
        }
        for p in &heads {
            match deliver_one(app, p, &mut out).await? {
                Step::Done => {}
                Step::Retry => {
                    out.retrying += 1;
                    return Ok(log(out));
                }
                Step::Stop => return Ok(log(out)),
            }
        }
    }
    Ok(log(out))
}

fn log(out: Delivered) -> Delivered {
    if out != Delivered::default() {
        info!(
            sent = out.sent,
            superseded = out.superseded,
            parked = out.parked,
            found = out.found,
            retrying = out.retrying,
            "posts delivered"
        );
    }
    out
}

/// How long the worker may sleep before the next pass: until the next retry is
/// due, at most `idle` (a new post wakes it sooner).
pub async fn next_pass_in(app: &App, idle: Duration) -> Duration {
    match db::next_due_ms(&app.store).await {
        Ok(Some(due)) => {
            let ms = (due - app.clock.now_ms()).clamp(50, idle.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        Ok(None) => idle,
        Err(e) => {
            warn!(error = %e, "posts: next retry unknown; trying again soon");
            Duration::from_secs(1)
        }
    }
}

async fn deliver_one(app: &App, p: &Pending, out: &mut Delivered) -> Result<Step, StoreError> {
    let now = app.clock.now_ms();
    let mut message: ChatMessage = match serde_json::from_str(&p.body) {
        Ok(m) => m,
        Err(e) => {
            db::close(
                &app.store,
                p.id,
                "parked",
                &format!("unreadable body: {e}"),
                now,
            )
            .await?;
            out.parked += 1;
            return Ok(Step::Done);
        }
    };
    if p.edit && db::has_newer_edit(&app.store, p).await? {
        db::close(&app.store, p.id, "superseded", "", now).await?;
        out.superseded += 1;
        return Ok(Step::Done);
    }
    let incident = subject_incident(&p.subject);
    let is_card = p.kind == Kind::IncidentCard.as_str();

    // Where it goes.
    let channel = match (p.channel_id, incident) {
        (Some(c), _) => c,
        (None, Some(id)) => match room::ensure_room(app, id).await? {
            Ok(c) => c,
            Err(e) => return failed(app, p, None, e, out).await,
        },
        (None, None) => {
            db::close(&app.store, p.id, "parked", "no channel", now).await?;
            out.parked += 1;
            return Ok(Step::Done);
        }
    };

    if p.edit {
        let target = match (is_card, incident) {
            (true, Some(id)) => room::card_message(app, id).await?,
            _ => db::created_message(&app.store, &p.kind, &p.subject).await?,
        };
        let Some((at, message_id)) = target else {
            db::close(&app.store, p.id, "parked", "no message to edit", now).await?;
            out.parked += 1;
            return Ok(Step::Done);
        };
        return match app.chat.edit(at, message_id, message).await {
            Ok(()) => {
                db::record_sent(&app.store, p.id, at, None, now).await?;
                crate::observe::delivered(app, "post", p.created_ms, None).await;
                out.sent += 1;
                Ok(Step::Done)
            }
            Err(e) => failed(app, p, Some(at), e, out).await,
        };
    }

    // A create.
    message.nonce = Some(chat::truncate(
        &p.key.clone().unwrap_or_else(|| format!("kp{}", p.id)),
        25,
    ));
    let window = app.nonce_window.as_millis() as i64;
    if p.attempts > 0 && now - p.created_ms > window {
        match app.chat.recent_own(channel, LOOKBACK).await {
            Ok(recent) => {
                if let Some(m) = recent.iter().find(|m| same(m, &message)) {
                    info!(post = p.id, kind = %p.kind, message = m.id, "post found in the channel after the nonce window; not sent again");
                    created(app, p, channel, m.id, is_card, incident, now).await?;
                    out.found += 1;
                    return Ok(Step::Done);
                }
            }
            Err(e) => return failed(app, p, Some(channel), e, out).await,
        }
    }
    match app.chat.send(channel, message).await {
        Ok(id) => {
            created(app, p, channel, id, is_card, incident, now).await?;
            out.sent += 1;
            Ok(Step::Done)
        }
        Err(e) => failed(app, p, Some(channel), e, out).await,
    }
}

/// Whether a message Klaxon posted is this post: the content as Discord shows it
/// and the embeds' titles (Discord does not list nonces back).
fn same(posted: &PostedMessage, m: &ChatMessage) -> bool {
    let content = chat::truncate(&chat::discord::content(m), chat::limits::CONTENT);
    let titles: Vec<&str> = m.embeds.iter().map(|e| e.title.as_str()).collect();
    let posted_titles: Vec<&str> = posted.embed_titles.iter().map(String::as_str).collect();
    posted.content == content && posted_titles == titles
}

async fn created(
    app: &App,
    p: &Pending,
    channel: u64,
    message: u64,
    is_card: bool,
    incident: Option<crate::store::incidents::record::IncidentId>,
    now: i64,
) -> Result<(), StoreError> {
    db::record_sent(&app.store, p.id, channel, Some(message), now).await?;
    crate::observe::delivered(app, "post", p.created_ms, None).await;
    if let (true, Some(id)) = (is_card, incident) {
        room::record_card(app, id, message).await?;
    }
    Ok(())
}

async fn failed(
    app: &App,
    p: &Pending,
    channel: Option<u64>,
    e: ChatError,
    out: &mut Delivered,
) -> Result<Step, StoreError> {
    let now = app.clock.now_ms();
    match e {
        ChatError::Unavailable(why) => {
            let wait = (1_000_i64 << p.attempts.clamp(0, 4)).min(MAX_BACKOFF_MS);
            db::retry_later(&app.store, p.id, now + wait, &chat::truncate(&why, 300)).await?;
            info!(post = p.id, kind = %p.kind, subject = %p.subject, attempts = p.attempts + 1, %why, "post will be retried");
            Ok(Step::Retry)
        }
        ChatError::Unauthorized => {
            error!("Discord refused Klaxon's token (401): delivery of posts stopped; nothing is lost, restart Klaxon with a valid token");
            app.chat_unauthorized.store(true, Ordering::Relaxed);
            Ok(Step::Stop)
        }
        ChatError::UnknownChannel => {
            warn!(post = p.id, kind = %p.kind, channel, "post's channel unknown to Discord; parked");
            db::close(&app.store, p.id, "parked", "unknown channel", now).await?;
            out.parked += 1;
            Ok(Step::Done)
        }
        ChatError::Rejected(why) => {
            warn!(post = p.id, kind = %p.kind, channel, %why, "Discord refused a post; parked");
            db::close(&app.store, p.id, "parked", &chat::truncate(&why, 300), now).await?;
            out.parked += 1;
            // A page by DM refused (DMs closed): the escalation goes on at once.
            if let Some(key) = p.key.as_deref().filter(|_| p.kind == Kind::OnCall.as_str()) {
                crate::oncall::escalate::dm_refused(app, key, &why).await;
            }
            Ok(Step::Done)
        }
    }
}
