//! Maintenance windows in the database: one row per window, with one column per
//! step still to do, so a restart picks up where the last run stopped.
//!
//! All SQL of maintenance windows is here. The queries are portable (`$n` in
//! increasing order, integers for booleans) and read the same on SQLite and
//! PostgreSQL; where the two differ in what they allow, the difference is noted at
//! the query.

use serde::Serialize;
use sqlx::Row;

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowState {
    Scheduled,
    Active,
    Ended,
    Cancelled,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Scheduled => "scheduled",
            WindowState::Active => "active",
            WindowState::Ended => "ended",
            WindowState::Cancelled => "cancelled",
        }
    }
    pub(crate) fn parse(s: &str) -> WindowState {
        match s {
            "active" => WindowState::Active,
            "ended" => WindowState::Ended,
            "cancelled" => WindowState::Cancelled,
            _ => WindowState::Scheduled,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub id: i64,
    pub services: Vec<String>,
    pub all_services: bool,
    pub reason: String,
    pub flag: bool,
    pub created_by: String,
    pub created_ms: i64,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub state: WindowState,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub ended_by: Option<String>,
    pub late: bool,
    pub(crate) leads_done: Vec<u64>,
    pub(crate) scheduled_announced: bool,
    pub(crate) start_announced: bool,
    pub(crate) end_announced: bool,
    pub(crate) summary_posted: bool,
    /// '' | on | off | failed-on | failed-off
    pub flag_state: String,
    pub flag_detail: String,
    pub(crate) flag_tried_ms: i64,
    pub held: i64,
    pub(crate) retry_ms: i64,
    pub(crate) extended_from_ms: Option<i64>,
}

impl Window {
    /// `api, web` or `all services`, for messages.
    pub fn services_text(&self) -> String {
        if self.all_services {
            "all services".into()
        } else {
            self.services.join(", ")
        }
    }

    pub(crate) fn covers(&self, service: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.eq_ignore_ascii_case(service))
    }

    pub(crate) fn held_key(&self) -> String {
        format!("maintenance:{}", self.id)
    }
}

const COLUMNS: &str = "id, services, all_services, reason, flag, created_by, created_ms, \
    starts_ms, ends_ms, state, started_ms, ended_ms, ended_by, late, leads_done, \
    scheduled_announced, start_announced, end_announced, summary_posted, flag_state, \
    flag_detail, flag_tried_ms, held, retry_ms, extended_from_ms";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Window, StoreError> {
    let services: String = r.try_get("services")?;
    let leads: String = r.try_get("leads_done")?;
    let state: String = r.try_get("state")?;
    let b = |c: &str| -> Result<bool, StoreError> { Ok(r.try_get::<i64, _>(c)? != 0) };
    Ok(Window {
        id: r.try_get("id")?,
        services: serde_json::from_str(&services).unwrap_or_default(),
        all_services: b("all_services")?,
        reason: r.try_get("reason")?,
        flag: b("flag")?,
        created_by: r.try_get("created_by")?,
        created_ms: r.try_get("created_ms")?,
        starts_ms: r.try_get("starts_ms")?,
        ends_ms: r.try_get("ends_ms")?,
        state: WindowState::parse(&state),
        started_ms: r.try_get("started_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        ended_by: r.try_get("ended_by")?,
        late: b("late")?,
        leads_done: leads.split(',').filter_map(|s| s.parse().ok()).collect(),
        scheduled_announced: b("scheduled_announced")?,
        start_announced: b("start_announced")?,
        end_announced: b("end_announced")?,
        summary_posted: b("summary_posted")?,
        flag_state: r.try_get("flag_state")?,
        flag_detail: r.try_get("flag_detail")?,
        flag_tried_ms: r.try_get("flag_tried_ms")?,
        held: r.try_get("held")?,
        retry_ms: r.try_get("retry_ms")?,
        extended_from_ms: r.try_get("extended_from_ms")?,
    })
}

pub async fn get(store: &Store, id: i64) -> Result<Option<Window>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Scheduled and active windows, the soonest first.
pub async fn list(store: &Store) -> Result<Vec<Window>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE state IN ('scheduled', 'active') \
         ORDER BY starts_ms, id"
    ))
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Windows in force at `now_ms`: by the clock, not by the scheduler's progress, so
/// alerts are held from the planned start even if the scheduler is a tick behind.
pub async fn in_force(store: &Store, now_ms: i64) -> Result<Vec<Window>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE state IN ('scheduled', 'active') \
         AND starts_ms <= $1 AND ends_ms > $2 ORDER BY id"
    ))
    .bind(now_ms)
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// [`in_force`] inside the intake's transaction, as (window id, services).
pub(crate) async fn in_force_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    now_ms: i64,
) -> Result<Vec<(i64, Vec<String>)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, services FROM maintenance_windows WHERE state IN ('scheduled', 'active') \
         AND starts_ms <= $1 AND ends_ms > $2 ORDER BY id",
    )
    .bind(now_ms)
    .bind(now_ms)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let s: String = r.try_get("services")?;
            Ok((
                r.try_get("id")?,
                serde_json::from_str(&s).unwrap_or_default(),
            ))
        })
        .collect()
}

/// Scheduled or active windows of the span `starts..ends`, other than `except`
/// (0: none), the earliest first: what a new or longer window must not overlap.
pub async fn overlapping<'e, E>(
    db: E,
    except: Option<i64>,
    starts: i64,
    ends: i64,
) -> Result<Vec<Window>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE state IN ('scheduled', 'active') \
         AND id <> $1 AND starts_ms < $2 AND ends_ms > $3 ORDER BY starts_ms"
    ))
    .bind(except.unwrap_or(0))
    .bind(ends)
    .bind(starts)
    .fetch_all(db)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// A new window, scheduled; its id.
pub struct Insert<'a> {
    pub services: &'a [String],
    pub all: bool,
    pub reason: &'a str,
    pub flag: bool,
    pub by_name: &'a str,
    pub by_id: u64,
    pub created_ms: i64,
    pub starts_ms: i64,
    pub ends_ms: i64,
}

pub async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    n: &Insert<'_>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO maintenance_windows (services, all_services, reason, flag, created_by, \
         created_by_id, created_ms, starts_ms, ends_ms, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'scheduled') RETURNING id",
    )
    .bind(serde_json::to_string(n.services).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(n.all))
    .bind(n.reason)
    .bind(i64::from(n.flag))
    .bind(n.by_name)
    .bind(n.by_id as i64)
    .bind(n.created_ms)
    .bind(n.starts_ms)
    .bind(n.ends_ms)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?)
}

/// `/maintenance end`: ends a running window (active, or scheduled with its start
/// come); false when it is not running any more.
pub async fn end_now(store: &Store, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'ended', ended_ms = $1, ended_by = $2, \
         started_ms = COALESCE(started_ms, starts_ms) \
         WHERE id = $3 AND (state = 'active' OR (state = 'scheduled' AND starts_ms <= $4))",
    )
    .bind(now_ms)
    .bind(by)
    .bind(id)
    .bind(now_ms)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// A later end; `told`: stakeholders were told about the window, so the scheduler
/// announces the new end (it keeps the first end it has not announced yet).
pub async fn extend_to(store: &Store, id: i64, ends_ms: i64, told: bool) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE maintenance_windows SET ends_ms = $1, \
         extended_from_ms = CASE WHEN $2 = 1 THEN COALESCE(extended_from_ms, ends_ms) ELSE NULL END \
         WHERE id = $3",
    )
    .bind(ends_ms)
    .bind(i64::from(told))
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Calls off a window that has not started; `told`: somebody was told about it,
/// so its cancellation is announced. False when it has started meanwhile.
pub async fn cancel(
    store: &Store,
    id: i64,
    by: &str,
    told: bool,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'cancelled', ended_ms = $1, ended_by = $2, \
         end_announced = $3, summary_posted = 1 WHERE id = $4 AND state = 'scheduled' \
         AND starts_ms > $5",
    )
    .bind(now_ms)
    .bind(by)
    .bind(i64::from(!told))
    .bind(id)
    .bind(now_ms)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Windows with something due at `now_ms`, the earliest first; a flag that failed
/// to clear counts while its window ended after `flag_retry_since_ms`.
pub async fn due(
    store: &Store,
    now_ms: i64,
    flag_retry_since_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query(
        "SELECT id FROM maintenance_windows WHERE retry_ms <= $1 AND \
         (state IN ('scheduled', 'active') OR end_announced = 0 OR summary_posted = 0 \
          OR flag_state IN ('on', 'failed-on') \
          OR (flag_state = 'failed-off' AND ended_ms > $2)) ORDER BY starts_ms, id",
    )
    .bind(now_ms)
    .bind(flag_retry_since_ms)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| r.try_get::<i64, _>("id"))
    .collect::<Result<_, _>>()?)
}

/// Windows over (ended after `since_ms`) whose summary is posted but which still
/// hold alerts: an intake transaction read the window just before its end was
/// committed (PostgreSQL reads committed data; SQLite's single writer never
/// leaves any).
pub async fn stranded(store: &Store, since_ms: i64) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query(
        "SELECT w.id FROM maintenance_windows w WHERE w.summary_posted = 1 \
         AND w.state IN ('ended', 'cancelled') AND w.ended_ms > $1 AND EXISTS \
         (SELECT 1 FROM alerts a WHERE a.held_by = 'maintenance:' || CAST(w.id AS TEXT))",
    )
    .bind(since_ms)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| r.try_get::<i64, _>("id"))
    .collect::<Result<_, _>>()?)
}

/// A step the scheduler finished: the column that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    ScheduledAnnounced,
    StartAnnounced,
    EndAnnounced,
    /// The extension was announced (or there is nobody to tell any more).
    ExtensionAnnounced,
}

pub async fn mark(store: &Store, id: i64, done: Mark) -> Result<(), StoreError> {
    let sql = match done {
        Mark::ScheduledAnnounced => {
            "UPDATE maintenance_windows SET scheduled_announced = 1 WHERE id = $1"
        }
        Mark::StartAnnounced => "UPDATE maintenance_windows SET start_announced = 1 WHERE id = $1",
        Mark::EndAnnounced => "UPDATE maintenance_windows SET end_announced = 1 WHERE id = $1",
        Mark::ExtensionAnnounced => {
            "UPDATE maintenance_windows SET extended_from_ms = NULL WHERE id = $1"
        }
    };
    sqlx::query(sql).bind(id).execute(store.pool()).await?;
    Ok(())
}

/// The lead-time reminders done (seconds before the start).
pub async fn set_leads_done(store: &Store, id: i64, leads: &[u64]) -> Result<(), StoreError> {
    let text = leads
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    sqlx::query("UPDATE maintenance_windows SET leads_done = $1 WHERE id = $2")
        .bind(text)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// A scheduled window that passed entirely while Klaxon was down: closed, late,
/// without a start notice. False when it is not scheduled any more.
pub async fn close_missed(store: &Store, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'ended', started_ms = starts_ms, \
         ended_ms = $1, ended_by = 'schedule', late = 1, start_announced = 1 \
         WHERE id = $2 AND state = 'scheduled'",
    )
    .bind(now_ms)
    .bind(id)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// A scheduled window starts. False when it is not scheduled any more.
pub async fn start(store: &Store, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'active', started_ms = $1 \
         WHERE id = $2 AND state = 'scheduled'",
    )
    .bind(now_ms)
    .bind(id)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// An active window ends on schedule. False when it is not active any more.
pub async fn end_on_schedule(
    store: &Store,
    id: i64,
    late: bool,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'ended', ended_ms = $1, ended_by = $2, \
         late = $3 WHERE id = $4 AND state = 'active'",
    )
    .bind(now_ms)
    .bind("schedule")
    .bind(i64::from(late))
    .bind(id)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// What the last switch of the window's flag did.
pub async fn set_flag_state(
    store: &Store,
    id: i64,
    state: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE maintenance_windows SET flag_state = $1, flag_detail = $2, \
         flag_tried_ms = $3 WHERE id = $4",
    )
    .bind(state)
    .bind(detail)
    .bind(now_ms)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A step failed: the scheduler looks at the window again at `at_ms`.
pub async fn retry_at(store: &Store, id: i64, at_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE maintenance_windows SET retry_ms = $1 WHERE id = $2")
        .bind(at_ms)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// An alert a window held back, for its summary.
#[derive(Debug, Clone)]
pub struct HeldAlert {
    pub name: String,
    pub service: String,
    pub status: String,
}

/// The alerts held by `key` (`maintenance:<id>`), by status and name.
pub async fn held_alerts(store: &Store, key: &str) -> Result<Vec<HeldAlert>, StoreError> {
    sqlx::query(
        "SELECT name, service, status, received FROM alerts WHERE held_by = $1 \
         ORDER BY status, name, id",
    )
    .bind(key)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(HeldAlert {
            name: r.try_get("name")?,
            service: r.try_get("service")?,
            status: r.try_get("status")?,
        })
    })
    .collect()
}

/// The summary of the held alerts is posted, in the transaction that gives them back.
pub async fn summary_posted(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE maintenance_windows SET summary_posted = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
