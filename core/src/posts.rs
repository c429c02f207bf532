//! Posting on Klaxon's own initiative, durably: every message Klaxon posts without a
//! member asking (incident cards, stakeholder notices and pages, reminders,
//! maintenance announcements, the rollout-recovery notice; digests and on-call pages
//! when they exist) is stored here first and delivered by the leader's worker
//! (the `delivery` module), retried with back-off and created with `enforce_nonce`.
//! A Discord 5xx or a timeout at the moment of the change delays a post; it never
//! loses it. Alert groups have their own outbox (`alerts::deliver`), and replies to
//! interactions stay direct (Discord's 3-second deadline rules them).
//!
//! A post names its **subject** (an incident, a maintenance window): the posts of one
//! subject go out in the order they were stored (the card before the notice, the
//! notice before the reminder). An update of a message (the incident card) is an
//! **edit** post: it edits the message the subject's earlier create of the same kind
//! made, and only the newest pending edit is sent.
//!
//! To post something new (a digest, an on-call page):
//!
//! ```ignore
//! posts::post(app, Kind::Digest, channel, message, "digest 2026-12-08").await?;
//! ```
//!
//! This module imports no domain module, so every domain module may post.

use crate::app::App;
use crate::chat::ChatMessage;
use crate::store::incidents::record::IncidentId;
use crate::store::posts::{self as db, NewPost};
use crate::store::StoreError;

/// What a post is, for the order of a subject's posts, edits and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An incident's card in its room: created once, edited in place.
    IncidentCard,
    /// A stakeholder notice in the incidents channel (open, update, resolve).
    IncidentNotice,
    /// A status update repeated in the incident's room.
    IncidentUpdate,
    /// A page of the on-call role (severity raised).
    Page,
    /// A re-page or a commander's nudge.
    Reminder,
    /// A maintenance announcement or summary.
    Maintenance,
    /// A warning for the engineers.
    Ops,
    /// Klaxon restarted during a rollout.
    Recovery,
    /// An alert group announced again.
    AlertRepeat,
    /// A digest (not yet written).
    Digest,
    /// An on-call hand-off notice (and, later, on-call pages).
    OnCall,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IncidentCard => "incident.card",
            Kind::IncidentNotice => "incident.notice",
            Kind::IncidentUpdate => "incident.update",
            Kind::Page => "incident.page",
            Kind::Reminder => "reminder",
            Kind::Maintenance => "maintenance",
            Kind::Ops => "ops",
            Kind::Recovery => "recovery",
            Kind::AlertRepeat => "alert.repeat",
            Kind::Digest => "digest",
            Kind::OnCall => "oncall",
        }
    }
}

/// Where a post goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Channel(u64),
    /// The subject's room: an incident's thread or channel. When it could not be
    /// created when the incident opened (Discord down), the worker creates it first.
    Room,
}

/// One post, as [`post_with`] takes it.
#[derive(Debug, Clone)]
pub struct Post {
    pub kind: Kind,
    pub to: To,
    pub message: ChatMessage,
    pub subject: String,
    /// A key that makes storing idempotent (a step retried after a crash stores the
    /// post once) and that is the post's nonce. Without one the nonce is `kp` + id.
    pub key: Option<String>,
    /// Edits the message the subject's earlier create of this kind made.
    pub edit: bool,
}

impl Post {
    pub fn new(kind: Kind, to: To, message: ChatMessage, subject: impl Into<String>) -> Post {
        Post {
            kind,
            to,
            message,
            subject: subject.into(),
            key: None,
            edit: false,
        }
    }

    pub fn keyed(mut self, key: impl Into<String>) -> Post {
        self.key = Some(crate::chat::truncate(&key.into(), 25));
        self
    }

    pub fn as_edit(mut self) -> Post {
        self.edit = true;
        self
    }

    fn row(&self) -> NewPost<'_> {
        NewPost {
            kind: self.kind.as_str(),
            subject: &self.subject,
            channel_id: match self.to {
                To::Channel(c) => Some(c),
                To::Room => None,
            },
            body: serde_json::to_string(&self.message).unwrap_or_default(),
            key: self.key.clone(),
            edit: self.edit,
        }
    }
}

/// The subject of an incident's posts.
pub fn incident_subject(id: IncidentId) -> String {
    format!("incident {id}")
}

/// The incident a subject names, if it names one.
pub fn subject_incident(subject: &str) -> Option<IncidentId> {
    subject.strip_prefix("incident ")?.parse().ok()
}

/// Stores a new message to `channel` and wakes the worker. Returns the post's id.
pub async fn post(
    app: &App,
    kind: Kind,
    channel: u64,
    message: ChatMessage,
    subject: &str,
) -> Result<Option<i64>, StoreError> {
    post_with(app, Post::new(kind, To::Channel(channel), message, subject)).await
}

/// Stores a post and wakes the worker. `None`: its key was stored already.
pub async fn post_with(app: &App, p: Post) -> Result<Option<i64>, StoreError> {
    let mut tx = app.store.begin_write().await?;
    let id = db::insert(&mut tx, &p.row(), app.clock.now_ms()).await?;
    tx.commit().await?;
    wake(app);
    Ok(id)
}

/// Stores a post inside the caller's transaction, so it commits with the change it
/// reports; call [`wake`] after the commit.
pub async fn store_in(
    conn: &mut sqlx::AnyConnection,
    p: &Post,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    db::insert(conn, &p.row(), now_ms).await
}

/// Tells the worker a post is waiting.
pub fn wake(app: &App) {
    app.posts_wake.notify_one();
}
