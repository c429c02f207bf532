//! Incidents in the database. Every change is one transaction that updates the
//! incident row first (taking its row lock on PostgreSQL and the write lock on
//! SQLite, so concurrent changes queue instead of failing) and then appends its
//! timeline entry: nothing is ever half written, and entries keep their order.
//!
//! All SQL of incidents and their timelines is here; the queries are portable and
//! read the same on SQLite and PostgreSQL (the only difference that shows, a unique
//! violation on a double capture, is caught by sqlx's portable check). The records
//! and their vocabulary are in [`record`].

pub mod record;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

pub use record::*;

use crate::actor::Actor;
use crate::severity::Severity;
use crate::store::{Store, StoreError};

pub(super) const COLUMNS: &str =
    "id, title, severity, status, service, summary, guild_id, channel_id, \
     card_message_id, commander_id, commander_name, comms_id, comms_name, scribe_id, \
     scribe_name, opened_ms, acked_ms, acked_by_name, first_page_ms, resolved_ms, last_update_ms, \
     next_page_ms, next_update_ms, root_cause, resolution, impact, lessons, postmortem";

fn u(v: Option<i64>) -> Option<u64> {
    v.map(|v| v as u64)
}

fn who(id: Option<i64>, name: Option<String>) -> Option<Actor> {
    Some(Actor::member(id? as u64, name.unwrap_or_default()))
}

pub(super) fn incident_from(r: &AnyRow) -> Result<Incident, StoreError> {
    let severity: String = r.try_get("severity")?;
    let status: String = r.try_get("status")?;
    Ok(Incident {
        id: IncidentId(r.try_get("id")?),
        title: r.try_get("title")?,
        severity: severity.parse().unwrap_or(Severity::P1),
        status: status.parse().unwrap_or(Status::Investigating),
        service: r.try_get("service")?,
        summary: r.try_get("summary")?,
        guild_id: u(r.try_get("guild_id")?),
        channel_id: u(r.try_get("channel_id")?),
        card_message_id: u(r.try_get("card_message_id")?),
        commander: Actor::member(
            r.try_get::<i64, _>("commander_id")? as u64,
            r.try_get::<String, _>("commander_name")?,
        ),
        comms: who(r.try_get("comms_id")?, r.try_get("comms_name")?),
        scribe: who(r.try_get("scribe_id")?, r.try_get("scribe_name")?),
        opened_ms: r.try_get("opened_ms")?,
        acked_ms: r.try_get("acked_ms")?,
        acked_by: r.try_get("acked_by_name")?,
        first_page_ms: r.try_get("first_page_ms")?,
        resolved_ms: r.try_get("resolved_ms")?,
        last_update_ms: r.try_get("last_update_ms")?,
        next_page_ms: r.try_get("next_page_ms")?,
        next_update_ms: r.try_get("next_update_ms")?,
        root_cause: r.try_get("root_cause")?,
        resolution: r.try_get("resolution")?,
        impact: r.try_get("impact")?,
        lessons: r.try_get("lessons")?,
        postmortem: r.try_get("postmortem")?,
    })
}

fn entry_from(r: &AnyRow) -> Result<Entry, StoreError> {
    let kind: String = r.try_get("kind")?;
    let attachments: String = r.try_get("attachments")?;
    Ok(Entry {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        kind: EntryKind::parse(&kind),
        actor_id: u(r.try_get("actor_id")?),
        actor_name: r.try_get("actor_name")?,
        text: r.try_get("text")?,
        message_id: u(r.try_get("message_id")?),
        permalink: r.try_get("permalink")?,
        attachments: attachments
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        edited_ms: r.try_get("edited_ms")?,
        deleted: r.try_get::<i64, _>("deleted")? != 0,
    })
}

fn action_from(r: &AnyRow) -> Result<Action, StoreError> {
    Ok(Action {
        number: r.try_get("number")?,
        text: r.try_get("text")?,
        created_ms: r.try_get("created_ms")?,
        created_by: r.try_get("created_by")?,
        done_ms: r.try_get("done_ms")?,
        done_by: r.try_get("done_by")?,
    })
}

async fn insert_entry(
    tx: &mut Transaction<'_, Any>,
    id: IncidentId,
    e: &NewEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO incident_timeline (incident_id, at_ms, kind, actor_id, actor_name, text) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.0)
    .bind(e.at_ms)
    .bind(e.kind.unwrap_or(EntryKind::Note).as_str())
    .bind((e.actor.user_id != 0).then_some(e.actor.user_id as i64))
    .bind(&e.actor.name)
    .bind(&e.text)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates the incident and its first timeline entry; the id is its number.
pub async fn insert(store: &Store, n: &NewIncident) -> Result<Incident, StoreError> {
    let mut tx = store.pool().begin().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO incidents (title, severity, status, service, summary, guild_id, \
         commander_id, commander_name, opened_ms, last_update_ms, next_page_ms, next_update_ms, \
         is_public) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         RETURNING {COLUMNS}"
    ))
    .bind(&n.title)
    .bind(n.severity.as_str())
    .bind(Status::Investigating.as_str())
    .bind(n.service.as_deref())
    .bind(&n.summary)
    .bind(n.guild_id.map(|g| g as i64))
    .bind(n.commander.user_id as i64)
    .bind(&n.commander.name)
    .bind(n.opened_ms)
    .bind(n.opened_ms)
    .bind(n.next_page_ms)
    .bind(n.next_update_ms)
    .bind(i64::from(n.public))
    .fetch_one(&mut *tx)
    .await?;
    let incident = incident_from(&row)?;
    let mut text = format!("Opened as {}: {}", n.severity, n.title);
    if let Some(s) = &n.service {
        text.push_str(&format!(" (service {s})"));
    }
    insert_entry(
        &mut tx,
        incident.id,
        &NewEntry::new(EntryKind::Opened, n.opened_ms, &n.commander, text),
    )
    .await?;
    tx.commit().await?;
    Ok(incident)
}

/// One change: `set` is the SQL after `SET` (its binds start at `$2`; `$1` is the
/// id), applied only to an open incident unless `allow_resolved`. Returns the
/// incident as it is after the change, or `None` when it does not exist or was
/// already resolved (the caller reads it again to say which).
pub struct Change<'a> {
    pub set: &'a str,
    pub binds: Vec<Bind>,
    pub entry: Option<NewEntry>,
    pub allow_resolved: bool,
    /// Only while nobody acknowledged it.
    pub only_unacked: bool,
}

#[derive(Debug, Clone)]
pub enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(Some(v))
    }
}
impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::Int(v)
    }
}
impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(Some(v.to_string()))
    }
}
impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(Some(v))
    }
}
impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::Text(v)
    }
}

pub async fn change(
    store: &Store,
    id: IncidentId,
    c: Change<'_>,
) -> Result<Option<Incident>, StoreError> {
    let mut tx = store.pool().begin().await?;
    let mut guard = String::new();
    if !c.allow_resolved {
        guard.push_str(" AND status <> 'resolved'");
    }
    if c.only_unacked {
        guard.push_str(" AND acked_ms IS NULL");
    }
    let sql = format!(
        "UPDATE incidents SET {} WHERE id = $1{guard} RETURNING {COLUMNS}",
        c.set
    );
    let mut q = sqlx::query(&sql).bind(id.0);
    for b in &c.binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.clone()),
        };
    }
    let Some(row) = q.fetch_optional(&mut *tx).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let incident = incident_from(&row)?;
    if let Some(e) = &c.entry {
        insert_entry(&mut tx, id, e).await?;
    }
    tx.commit().await?;
    Ok(Some(incident))
}

/// Appends an entry to an incident's timeline (open or not).
pub async fn add_entry(store: &Store, id: IncidentId, e: &NewEntry) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    insert_entry(&mut tx, id, e).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get(store: &Store, id: IncidentId) -> Result<Option<Incident>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM incidents WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(incident_from).transpose()
}

/// The incident whose thread (or channel) this is.
pub async fn by_channel(store: &Store, channel_id: u64) -> Result<Option<Incident>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE channel_id = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind(channel_id as i64)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(incident_from).transpose()
}

/// Open incidents, newest first.
pub async fn list_open(store: &Store) -> Result<Vec<Incident>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE status <> 'resolved' ORDER BY id DESC"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(incident_from).collect()
}

/// Open incidents about one service.
pub async fn open_for_service(store: &Store, service: &str) -> Result<Vec<Incident>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE status <> 'resolved' AND service = $1 ORDER BY id"
    ))
    .bind(service)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(incident_from).collect()
}

/// Open incidents whose re-page (`page`) or update reminder is due.
pub async fn due(store: &Store, now_ms: i64, page: bool) -> Result<Vec<Incident>, StoreError> {
    let column = if page {
        "next_page_ms"
    } else {
        "next_update_ms"
    };
    // An acknowledged incident is never re-paged, whatever its page column says.
    let acked = if page { " AND acked_ms IS NULL" } else { "" };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE status <> 'resolved' AND {column} IS NOT NULL \
         AND {column} <= $1{acked} ORDER BY id"
    ))
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(incident_from).collect()
}

/// Moves a due reminder from `was` to `next`, only if nobody (another replica, or an
/// acknowledgement) changed it first: true when this caller owns the reminder.
pub async fn move_reminder(
    store: &Store,
    id: IncidentId,
    page: bool,
    was: i64,
    next: Option<i64>,
) -> Result<bool, StoreError> {
    let (column, acked) = if page {
        ("next_page_ms", " AND acked_ms IS NULL")
    } else {
        ("next_update_ms", "")
    };
    let done = sqlx::query(&format!(
        "UPDATE incidents SET {column} = $1 WHERE id = $2 AND {column} = $3 \
         AND status <> 'resolved'{acked}"
    ))
    .bind(next)
    .bind(id.0)
    .bind(was)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(done > 0)
}

pub async fn timeline(store: &Store, id: IncidentId) -> Result<Vec<Entry>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at_ms, kind, actor_id, actor_name, text, message_id, permalink, \
         attachments, edited_ms, deleted FROM incident_timeline WHERE incident_id = $1 \
         ORDER BY at_ms, id",
    )
    .bind(id.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(entry_from).collect()
}

pub async fn actions(store: &Store, id: IncidentId) -> Result<Vec<Action>, StoreError> {
    let rows = sqlx::query(
        "SELECT number, text, created_ms, created_by, done_ms, done_by FROM incident_actions \
         WHERE incident_id = $1 ORDER BY number",
    )
    .bind(id.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(action_from).collect()
}

/// Adds a follow-up action; returns its number within the incident.
pub async fn add_action(
    store: &Store,
    id: IncidentId,
    text: &str,
    by: &Actor,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let mut tx = store.pool().begin().await?;
    // The touch takes the incident's lock first, so two responders adding actions
    // at once get numbers one after the other.
    let found = sqlx::query("UPDATE incidents SET last_update_ms = last_update_ms WHERE id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if found == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT COALESCE(MAX(number), 0) + 1 AS n FROM incident_actions WHERE incident_id = $1",
    )
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await?;
    let number: i64 = row.try_get("n")?;
    sqlx::query(
        "INSERT INTO incident_actions (incident_id, number, text, created_ms, created_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(number)
    .bind(text)
    .bind(now_ms)
    .bind(&by.name)
    .execute(&mut *tx)
    .await?;
    insert_entry(
        &mut tx,
        id,
        &NewEntry::new(
            EntryKind::Action,
            now_ms,
            by,
            format!("Action #{number} added: {text}"),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(number))
}

/// Marks an action done; `None` when there is no such action (or it was done).
pub async fn finish_action(
    store: &Store,
    id: IncidentId,
    number: i64,
    by: &Actor,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let mut tx = store.pool().begin().await?;
    let row = sqlx::query(
        "UPDATE incident_actions SET done_ms = $1, done_by = $2 \
         WHERE incident_id = $3 AND number = $4 AND done_ms IS NULL RETURNING text",
    )
    .bind(now_ms)
    .bind(&by.name)
    .bind(id.0)
    .bind(number)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let text: String = row.try_get("text")?;
    insert_entry(
        &mut tx,
        id,
        &NewEntry::new(
            EntryKind::Action,
            now_ms,
            by,
            format!("Action #{number} done: {text}"),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(text))
}

/// A chat message captured into the timeline.
#[derive(Debug, Clone)]
pub struct Captured {
    pub message_id: u64,
    pub at_ms: i64,
    pub author: Actor,
    pub text: String,
    pub permalink: String,
    pub attachments: Vec<String>,
}

/// Adds a captured message; false when this message is already in the timeline.
pub async fn capture(store: &Store, id: IncidentId, c: &Captured) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO incident_timeline (incident_id, at_ms, kind, actor_id, actor_name, text, \
         message_id, permalink, attachments) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE NOT EXISTS \
         (SELECT 1 FROM incident_timeline WHERE incident_id = $10 AND message_id = $11)",
    )
    .bind(id.0)
    .bind(c.at_ms)
    .bind(EntryKind::Message.as_str())
    .bind(c.author.user_id as i64)
    .bind(&c.author.name)
    .bind(&c.text)
    .bind(c.message_id as i64)
    .bind(&c.permalink)
    .bind(c.attachments.join("\n"))
    .bind(id.0)
    .bind(c.message_id as i64)
    .execute(store.pool())
    .await;
    match result {
        Ok(r) => Ok(r.rows_affected() > 0),
        // Two captures of one message at the same moment: the unique index keeps one.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// An edit of a captured message: its entry follows. Returns how many entries changed.
pub async fn message_edited(
    store: &Store,
    message_id: u64,
    text: &str,
    now_ms: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE incident_timeline SET text = $1, edited_ms = $2 WHERE message_id = $3 AND deleted = 0",
    )
    .bind(text)
    .bind(now_ms)
    .bind(message_id as i64)
    .execute(store.pool())
    .await?
    .rows_affected())
}

/// A captured message was deleted: its entry stays, marked.
pub async fn message_deleted(
    store: &Store,
    message_id: u64,
    now_ms: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE incident_timeline SET deleted = 1, edited_ms = $1 WHERE message_id = $2",
    )
    .bind(now_ms)
    .bind(message_id as i64)
    .execute(store.pool())
    .await?
    .rows_affected())
}

/// Keeps the generated post-mortem, so it can be fetched again.
pub async fn store_postmortem(
    store: &Store,
    id: IncidentId,
    markdown: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE incidents SET postmortem = $1, postmortem_ms = $2 WHERE id = $3")
        .bind(markdown)
        .bind(now_ms)
        .bind(id.0)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The incident's role holder columns.
pub fn role_columns(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Commander => ("commander_id", "commander_name"),
        Role::Comms => ("comms_id", "comms_name"),
        Role::Scribe => ("scribe_id", "scribe_name"),
    }
}
