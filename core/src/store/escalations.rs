//! Escalations in the database (issue #14): one row per run of an escalation policy
//! (or a page by hand), with its next step, round and due time, and the webhook
//! sends its steps made. What a step sends is decided in `oncall::escalate`; this
//! file only stores and reads rows.
//!
//! Every change of a row is guarded by its state (and, for a step, by the step it
//! expects), so an acknowledgement and a firing step never both win, and two
//! leaders for a moment never fire one step twice. Portable SQL only: every
//! statement serves SQLite and PostgreSQL alike.

use sqlx::Row;

use super::{Store, StoreError};

/// One escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRow {
    pub id: i64,
    pub start_key: String,
    /// `incident`, `group` or `page`.
    pub subject_kind: String,
    pub subject_id: i64,
    /// The policy's name; empty for a page by hand.
    pub policy: String,
    /// The one target of a page by hand (`user:ID`, `schedule:NAME`).
    pub target: String,
    pub title: String,
    pub severity: String,
    pub channel_id: u64,
    pub link: String,
    pub started_ms: i64,
    pub round: i64,
    pub step: i64,
    pub next_ms: Option<i64>,
    /// `active`, `acked`, `stopped` or `done`.
    pub state: String,
    pub why: String,
    pub first_page_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// The user ids paged so far, comma separated.
    pub paged: String,
}

impl EscalationRow {
    /// Whether `user` was paged by this escalation.
    pub fn paged(&self, user: u64) -> bool {
        self.paged
            .split(',')
            .any(|p| p.parse::<u64>().ok() == Some(user))
    }
}

/// A new escalation.
#[derive(Debug, Clone)]
pub struct NewEscalation<'a> {
    pub start_key: &'a str,
    pub subject_kind: &'a str,
    pub subject_id: i64,
    pub policy: &'a str,
    pub target: &'a str,
    pub title: &'a str,
    pub severity: &'a str,
    pub channel_id: u64,
    pub link: &'a str,
    pub started_ms: i64,
    /// The first step's due time.
    pub next_ms: i64,
}

const COLUMNS: &str = "id, start_key, subject_kind, subject_id, policy, target, title, \
    severity, channel_id, link, started_ms, round, step, next_ms, state, why, \
    first_page_ms, ended_ms, paged";

fn from_row(r: &sqlx::any::AnyRow) -> Result<EscalationRow, StoreError> {
    Ok(EscalationRow {
        id: r.try_get("id")?,
        start_key: r.try_get("start_key")?,
        subject_kind: r.try_get("subject_kind")?,
        subject_id: r.try_get("subject_id")?,
        policy: r.try_get("policy")?,
        target: r.try_get("target")?,
        title: r.try_get("title")?,
        severity: r.try_get("severity")?,
        channel_id: u64::try_from(r.try_get::<i64, _>("channel_id")?).unwrap_or(0),
        link: r.try_get("link")?,
        started_ms: r.try_get("started_ms")?,
        round: r.try_get("round")?,
        step: r.try_get("step")?,
        next_ms: r.try_get("next_ms")?,
        state: r.try_get("state")?,
        why: r.try_get("why")?,
        first_page_ms: r.try_get("first_page_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        paged: r.try_get("paged")?,
    })
}

/// Stores a new escalation; `None` when one with the same start key exists already
/// (a group fires once, an incident starts its policy once).
pub async fn insert(store: &Store, e: &NewEscalation<'_>) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO escalations (start_key, subject_kind, subject_id, policy, target, title, \
         severity, channel_id, link, started_ms, next_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (start_key) DO NOTHING RETURNING id",
    )
    .bind(e.start_key)
    .bind(e.subject_kind)
    .bind(e.subject_id)
    .bind(e.policy)
    .bind(e.target)
    .bind(e.title)
    .bind(e.severity)
    .bind(e.channel_id as i64)
    .bind(e.link)
    .bind(e.started_ms)
    .bind(e.next_ms)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.try_get("id").map_err(StoreError::from))
        .transpose()
}

pub async fn get(store: &Store, id: i64) -> Result<Option<EscalationRow>, StoreError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM escalations WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The escalations of a subject, oldest first.
pub async fn of_subject(
    store: &Store,
    kind: &str,
    subject_id: i64,
) -> Result<Vec<EscalationRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM escalations WHERE subject_kind = $1 AND subject_id = $2 ORDER BY id"
    ))
    .bind(kind)
    .bind(subject_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Active escalations whose next step is due by `now_ms`, the most overdue first.
pub async fn due(store: &Store, now_ms: i64, limit: i64) -> Result<Vec<EscalationRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM escalations WHERE state = 'active' AND next_ms <= $1 \
         ORDER BY next_ms, id LIMIT $2"
    ))
    .bind(now_ms)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// When the next active step is due (`None`: nothing pending).
/// The alert groups whose escalation still runs.
pub async fn active_groups(store: &Store) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT subject_id FROM escalations \
         WHERE state = 'active' AND subject_kind = 'group' ORDER BY subject_id",
    )
    .fetch_all(store.pool())
    .await?)
}

pub async fn next_due_ms(store: &Store) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT MIN(next_ms) FROM escalations WHERE state = 'active'")
            .fetch_one(store.pool())
            .await?,
    )
}

/// How many escalations still have steps to fire (the gauge).
pub async fn pending(store: &Store) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM escalations WHERE state = 'active'")
            .fetch_one(store.pool())
            .await?,
    )
}

/// What firing a step changes on the row.
#[derive(Debug, Clone)]
pub struct Advance {
    pub id: i64,
    /// The step being fired, as read: the guard.
    pub round: i64,
    pub step: i64,
    /// The step after it; `None`: the chain is over (`done`).
    pub next: Option<(i64, i64, i64)>,
    /// A user paged by this step, added to `paged`.
    pub paged: Option<u64>,
    pub now_ms: i64,
}

/// Moves an escalation past the step it fires, inside the caller's transaction (the
/// step's posts are stored in the same one). `false`: the escalation was
/// acknowledged or stopped, or another leader fired the step; nothing may be sent.
pub async fn advance(conn: &mut sqlx::AnyConnection, a: &Advance) -> Result<bool, StoreError> {
    let paged = a.paged.map(|u| format!("{u},")).unwrap_or_default();
    let (round, step, next, state, ended) = match a.next {
        Some((r, s, at)) => (r, s, Some(at), "active", None),
        None => (a.round, a.step + 1, None, "done", Some(a.now_ms)),
    };
    let done = sqlx::query(
        "UPDATE escalations SET round = $1, step = $2, next_ms = $3, state = $4, ended_ms = $5, \
         first_page_ms = COALESCE(first_page_ms, $6), paged = paged || $7 \
         WHERE id = $8 AND state = 'active' AND round = $9 AND step = $10",
    )
    .bind(round)
    .bind(step)
    .bind(next)
    .bind(state)
    .bind(ended)
    .bind(a.now_ms)
    .bind(paged)
    .bind(a.id)
    .bind(a.round)
    .bind(a.step)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The incident's first page (MTTA counts from it), kept once.
pub async fn first_page(
    conn: &mut sqlx::AnyConnection,
    incident: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE incidents SET first_page_ms = COALESCE(first_page_ms, $1) WHERE id = $2")
        .bind(now_ms)
        .bind(incident)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The incident's first page, as stored.
pub async fn incident_first_page(store: &Store, incident: i64) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT first_page_ms FROM incidents WHERE id = $1")
            .bind(incident)
            .fetch_optional(store.pool())
            .await?
            .flatten(),
    )
}

/// Makes the escalation's next step due now, if it is still at `(round, step)`
/// (a refused DM or a target that resolved to nobody falls through at once).
pub async fn due_now(
    store: &Store,
    id: i64,
    round: i64,
    step: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE escalations SET next_ms = $1 WHERE id = $2 AND state = 'active' \
         AND round = $3 AND step = $4 AND next_ms > $5",
    )
    .bind(now_ms)
    .bind(id)
    .bind(round)
    .bind(step)
    .bind(now_ms)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Ends the active escalations of a subject (`acked` or `stopped`, with why).
/// Returns the ones it ended.
pub async fn stop_subject(
    store: &Store,
    kind: &str,
    subject_id: i64,
    state: &str,
    why: &str,
    now_ms: i64,
) -> Result<Vec<EscalationRow>, StoreError> {
    let mut ended = Vec::new();
    for e in of_subject(store, kind, subject_id).await? {
        if (e.state == "active" || (e.state == "done" && state == "acked"))
            && stop(store, e.id, state, why, now_ms).await?
        {
            ended.push(e);
        }
    }
    Ok(ended)
}

/// Ends one escalation if it is still active. An acknowledgement also closes one
/// whose steps are all done (the page was answered, for the record).
pub async fn stop(
    store: &Store,
    id: i64,
    state: &str,
    why: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE escalations SET state = $1, why = $2, ended_ms = $3, next_ms = NULL \
         WHERE id = $4 AND (state = 'active' OR (state = 'done' AND $5 = 'acked'))",
    )
    .bind(state)
    .bind(why)
    .bind(now_ms)
    .bind(id)
    .bind(state)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// An alert group as an escalation sees it: still firing (not silenced), and who
/// acknowledged it. `None`: no such group.
pub async fn group_state(
    store: &Store,
    group: i64,
) -> Result<Option<(bool, Option<String>)>, StoreError> {
    let Some(r) = sqlx::query("SELECT status, acked_by FROM alert_groups WHERE id = $1")
        .bind(group)
        .fetch_optional(store.pool())
        .await?
    else {
        return Ok(None);
    };
    let status: String = r.try_get("status")?;
    let firing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM alerts WHERE group_id = $1 AND status = 'firing' \
         AND held_by IS NULL",
    )
    .bind(group)
    .fetch_one(store.pool())
    .await?;
    Ok(Some((
        status == "firing" && firing > 0,
        r.try_get("acked_by")?,
    )))
}

/// A group's key (its route is its first part).
pub async fn group_key(store: &Store, group: i64) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT group_key FROM alert_groups WHERE id = $1")
            .bind(group)
            .fetch_optional(store.pool())
            .await?,
    )
}

/// A group's first message, for the DM's link (`None` before it is posted).
pub async fn group_message(store: &Store, group: i64) -> Result<Option<u64>, StoreError> {
    let ids: Option<String> =
        sqlx::query_scalar("SELECT message_ids FROM alert_groups WHERE id = $1")
            .bind(group)
            .fetch_optional(store.pool())
            .await?;
    Ok(ids.and_then(|s| s.split(',').next().and_then(|m| m.parse().ok())))
}

/// A webhook send a step stores (in the step's transaction). `false`: stored already.
pub async fn insert_webhook(
    conn: &mut sqlx::AnyConnection,
    key: &str,
    webhook: &str,
    body: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO escalation_webhooks (send_key, webhook, body, next_try_ms, created_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (send_key) DO NOTHING",
    )
    .bind(key)
    .bind(webhook)
    .bind(body)
    .bind(now_ms)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// A webhook send waiting for delivery.
#[derive(Debug, Clone)]
pub struct WebhookSend {
    pub id: i64,
    pub key: String,
    pub webhook: String,
    pub body: String,
    pub attempts: i64,
}

/// Webhook sends due by `now_ms`, oldest first.
pub async fn due_webhooks(store: &Store, now_ms: i64) -> Result<Vec<WebhookSend>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, send_key, webhook, body, attempts FROM escalation_webhooks \
         WHERE state = 'pending' AND next_try_ms <= $1 ORDER BY id LIMIT 50",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WebhookSend {
                id: r.try_get("id")?,
                key: r.try_get("send_key")?,
                webhook: r.try_get("webhook")?,
                body: r.try_get("body")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// A webhook send's outcome: `sent`, `failed` (given up), or `pending` again at
/// `next_try_ms`.
pub async fn webhook_done(
    store: &Store,
    id: i64,
    state: &str,
    next_try_ms: i64,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE escalation_webhooks SET state = $1, next_try_ms = $2, detail = $3, \
         attempts = attempts + 1, sent_ms = $4 WHERE id = $5",
    )
    .bind(state)
    .bind(next_try_ms)
    .bind(detail)
    .bind(now_ms)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// How many webhook sends are in `state` (tests).
pub async fn webhook_count(store: &Store, state: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM escalation_webhooks WHERE state = $1")
            .bind(state)
            .fetch_one(store.pool())
            .await?,
    )
}

/// One step's send as the posts outbox holds it, with its escalation's start: what
/// the bench measures lateness from (`key` is `esc<id>.<round>.<step>.<what>`).
#[derive(Debug, Clone)]
pub struct SendTimes {
    pub key: String,
    pub started_ms: i64,
    pub stored_ms: i64,
    pub sent_ms: Option<i64>,
    pub state: String,
}

/// Every escalation send in the posts outbox, with its escalation's start.
pub async fn send_times(store: &Store) -> Result<Vec<SendTimes>, StoreError> {
    let starts: std::collections::HashMap<i64, i64> =
        sqlx::query("SELECT id, started_ms FROM escalations")
            .fetch_all(store.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("started_ms")?)))
            .collect::<Result<_, StoreError>>()?;
    let rows = sqlx::query(
        "SELECT nonce, created_ms, sent_ms, state FROM posts WHERE nonce LIKE 'esc%' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let key: String = r.try_get("nonce")?;
        let id = key
            .strip_prefix("esc")
            .and_then(|k| k.split('.').next())
            .and_then(|k| k.parse::<i64>().ok());
        let Some(started_ms) = id.and_then(|id| starts.get(&id).copied()) else {
            continue;
        };
        out.push(SendTimes {
            key,
            started_ms,
            stored_ms: r.try_get("created_ms")?,
            sent_ms: r.try_get("sent_ms")?,
            state: r.try_get("state")?,
        });
    }
    Ok(out)
}
