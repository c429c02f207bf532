//! Maintenance windows: planned work on services, announced to stakeholders ahead
//! of time, at the start and at the end; alerts for the services held back (and
//! summarised afterwards) while it runs; `/health` showing "in maintenance" rather
//! than "down"; and, when asked, the services' maintenance flag switched on and off.
//!
//! Windows live in the database with one column per step still to do. A window is
//! moved on by [`advance`], from the commands and from the scheduler's [`tick`], one
//! at a time (`App::maintenance_lock`), so a restart in the middle of a window picks
//! up exactly where the last run stopped, and an end that was missed while Klaxon
//! was down is applied (and announced as late) at the first tick.

pub mod flag;
pub mod when;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tracing::{info, warn};

use crate::audit::{AuditEntry, Outcome};
use crate::chat::{self, ChatMessage};
use crate::incidents::db::{EntryKind, NewEntry};
use crate::incidents::Who;
use crate::store::{Store, StoreError};
use crate::App;

/// `[maintenance]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// The IANA time zone the team plans in (`Europe/Berlin`); times typed without
    /// an offset are read in it, and announcements show it beside UTC.
    pub timezone: String,
    /// When to remind the incidents channel before a window starts.
    pub announce_before: Vec<String>,
    /// The longest window `/maintenance` accepts.
    pub max_duration: String,
    /// How often the scheduler looks for windows to start, end or announce.
    pub tick_secs: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            timezone: "UTC".into(),
            announce_before: vec!["48h".into(), "1h".into()],
            max_duration: "24h".into(),
            tick_secs: 5,
        }
    }
}

/// [`MaintenanceConfig`], parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub tz: Tz,
    /// Lead times, longest first.
    pub leads: Vec<Duration>,
    pub max: Duration,
    pub tick: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(&MaintenanceConfig::default()).unwrap_or(Settings {
            tz: Tz::UTC,
            leads: Vec::new(),
            max: Duration::from_secs(86_400),
            tick: Duration::from_secs(5),
        })
    }
}

impl Settings {
    /// Every problem of the section, named by its key.
    pub fn new(c: &MaintenanceConfig) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let tz = c.timezone.parse::<Tz>().unwrap_or_else(|_| {
            problems.push(format!(
                "maintenance.timezone: `{}` is not an IANA time zone (e.g. UTC, Europe/Berlin)",
                c.timezone
            ));
            Tz::UTC
        });
        let mut leads = Vec::new();
        for l in &c.announce_before {
            match crate::logs::parse_duration(l).filter(|d| !d.is_zero()) {
                Some(d) => leads.push(d),
                None => problems.push(format!(
                    "maintenance.announce_before: `{l}` is not a duration such as 48h or 1h"
                )),
            }
        }
        leads.sort_by(|a, b| b.cmp(a));
        leads.dedup();
        let max = match crate::logs::parse_duration(&c.max_duration).filter(|d| !d.is_zero()) {
            Some(d) => d,
            None => {
                problems.push(format!(
                    "maintenance.max_duration: `{}` is not a duration such as 24h",
                    c.max_duration
                ));
                Duration::from_secs(86_400)
            }
        };
        if c.tick_secs == 0 || c.tick_secs > 60 {
            problems.push("maintenance.tick_secs: between 1 and 60".into());
        }
        if problems.is_empty() {
            Ok(Settings {
                tz,
                leads,
                max,
                tick: Duration::from_secs(c.tick_secs),
            })
        } else {
            Err(problems)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// Bad input or a refused change; the text is written for the member.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MaintenanceError {
    fn from(e: sqlx::Error) -> Self {
        MaintenanceError::Store(e.into())
    }
}

impl MaintenanceError {
    pub fn is_user_facing(&self) -> bool {
        matches!(self, MaintenanceError::Invalid(_))
    }
}

fn invalid<T>(text: impl Into<String>) -> Result<T, MaintenanceError> {
    Err(MaintenanceError::Invalid(text.into()))
}

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
    fn parse(s: &str) -> WindowState {
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
    leads_done: Vec<u64>,
    scheduled_announced: bool,
    start_announced: bool,
    end_announced: bool,
    summary_posted: bool,
    /// '' | on | off | failed-on | failed-off
    pub flag_state: String,
    pub flag_detail: String,
    flag_tried_ms: i64,
    pub held: i64,
    retry_ms: i64,
    extended_from_ms: Option<i64>,
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

    fn covers(&self, service: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.eq_ignore_ascii_case(service))
    }

    fn held_key(&self) -> String {
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

/// The window (if any) that holds an alert for `service` back.
pub(crate) fn holding(windows: &[(i64, Vec<String>)], service: Option<&str>) -> Option<i64> {
    let service = service?;
    windows
        .iter()
        .find(|(_, s)| s.iter().any(|s| s.eq_ignore_ascii_case(service)))
        .map(|(id, _)| *id)
}

/// `services:` as typed: configured names separated by commas or spaces, or `all`.
pub fn resolve_services(app: &App, text: &str) -> Result<(Vec<String>, bool), MaintenanceError> {
    let words: Vec<&str> = text
        .split([',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return invalid("Name the services, e.g. `api, web`, or `all`.");
    }
    if words.iter().any(|w| w.eq_ignore_ascii_case("all")) {
        if words.len() > 1 {
            return invalid("`all` already means every service: give it alone.");
        }
        if app.services.is_empty() {
            return invalid("No services are configured.");
        }
        return Ok((app.services.iter().map(|s| s.name.clone()).collect(), true));
    }
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let svc = app
            .service(w)
            .map_err(|e| MaintenanceError::Invalid(e.to_string()))?;
        if !out.contains(&svc.name) {
            out.push(svc.name.clone());
        }
    }
    Ok((out, false))
}

/// A window to create: `/maintenance start` (starting now) or `schedule`.
#[derive(Debug, Clone)]
pub struct NewWindow {
    pub services: Vec<String>,
    pub all: bool,
    pub reason: String,
    pub flag: bool,
    pub starts_ms: i64,
    pub duration: Duration,
    pub by: Who,
}

/// What a command did, for its reply.
#[derive(Debug, Clone)]
pub struct Done {
    pub window: Window,
    /// What happened beyond the change itself (the flag's steps), one line each.
    pub notes: Vec<String>,
}

/// How far before now a "scheduled" start may be and still count as now: the time
/// a member takes to type `in 0m`.
const PAST_GRACE_MS: i64 = 60_000;
/// An end applied this much after its planned time was missed (Klaxon was down).
const LATE_AFTER_MS: i64 = 120_000;
/// A step that failed (Discord refused a post, a flag did not switch) is tried
/// again this much later.
const RETRY_MS: i64 = 30_000;
/// How long after a window's end Klaxon keeps trying to clear a stuck flag.
const FLAG_RETRY_FOR_MS: i64 = 600_000;

/// Everything that would make [`create`] refuse a window, checked without taking
/// the lock or writing: commands ask this before they defer, so a mistake gets a
/// private answer at once. Returns the reason, cleaned, and the window's span.
pub async fn check_new(app: &App, n: &NewWindow) -> Result<(String, i64, i64), MaintenanceError> {
    let now = app.clock.now_ms();
    let reason = crate::incidents::check_text("The reason", &n.reason, 300)
        .map_err(|e| MaintenanceError::Invalid(e.to_string()))?;
    if n.duration.is_zero() || n.duration > app.maintenance.max {
        return invalid(format!(
            "A window lasts between 1 minute and {}.",
            when::human(app.maintenance.max)
        ));
    }
    if n.starts_ms < now - PAST_GRACE_MS {
        return invalid(format!(
            "That start ({}) is in the past. Use `/maintenance start` for a window that begins now.",
            when::time_text(n.starts_ms, now, app.maintenance.tz)
        ));
    }
    if n.flag {
        for s in &n.services {
            if app
                .service(s)
                .ok()
                .and_then(|c| c.container.as_ref())
                .is_none()
            {
                return invalid(format!(
                    "`{s}` has no container, so Klaxon has no maintenance flag to set for it. \
                     Leave `flag` off, or give the service a `container` in the config."
                ));
            }
        }
    }
    // A start a few seconds ago (the time it took to type) is now.
    let starts = n.starts_ms.max(now);
    let ends = starts + n.duration.as_millis() as i64;
    overlap(app, app.store.pool(), None, &n.services, starts, ends).await?;
    Ok((reason, starts, ends))
}

/// Refuses a span that overlaps another scheduled or active window of one of the
/// services (`except`: the window being extended).
async fn overlap<'e, E>(
    app: &App,
    db: E,
    except: Option<i64>,
    services: &[String],
    starts: i64,
    ends: i64,
) -> Result<(), MaintenanceError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let others = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE state IN ('scheduled', 'active') \
         AND id <> $1 AND starts_ms < $2 AND ends_ms > $3 ORDER BY starts_ms"
    ))
    .bind(except.unwrap_or(0))
    .bind(ends)
    .bind(starts)
    .fetch_all(db)
    .await?;
    for r in &others {
        let w = from_row(r)?;
        if let Some(s) = services.iter().find(|s| w.covers(s)) {
            return invalid(format!(
                "`{s}` already has maintenance #{} {} ({}). Windows for the same service cannot \
                 overlap: extend #{} or pick another time.",
                w.id,
                if w.state == WindowState::Active || w.starts_ms <= app.clock.now_ms() {
                    "running"
                } else {
                    "scheduled"
                },
                when::span_text(w.starts_ms, w.ends_ms, app.maintenance.tz),
                w.id
            ));
        }
    }
    Ok(())
}

/// Creates a window, refusing overlaps; one that starts now starts at once.
pub async fn create(app: &App, n: NewWindow) -> Result<Done, MaintenanceError> {
    let now = app.clock.now_ms();
    let (reason, starts, ends) = check_new(app, &n).await?;
    let _guard = app.maintenance_lock.lock().await;
    // Checked again inside the write: two members scheduling at once.
    let mut tx = app.store.begin_write().await?;
    overlap(app, &mut *tx, None, &n.services, starts, ends).await?;
    let id: i64 = sqlx::query(
        "INSERT INTO maintenance_windows (services, all_services, reason, flag, created_by, \
         created_by_id, created_ms, starts_ms, ends_ms, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'scheduled') RETURNING id",
    )
    .bind(serde_json::to_string(&n.services).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(n.all))
    .bind(&reason)
    .bind(i64::from(n.flag))
    .bind(&n.by.name)
    .bind(n.by.id as i64)
    .bind(now)
    .bind(starts)
    .bind(ends)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    tx.commit().await?;
    info!(window = id, services = ?n.services, starts, ends, "maintenance window created");
    if starts > now {
        timeline(
            app,
            &n.services,
            &n.by,
            format!(
                "Maintenance #{id} scheduled for {}: {reason}",
                when::span_text(starts, ends, app.maintenance.tz)
            ),
        )
        .await;
    }
    let notes = advance(app, id, &n.by, false).await?;
    app.maintenance_wake.notify_one();
    let window = get(&app.store, id)
        .await?
        .ok_or_else(|| MaintenanceError::Invalid(format!("Maintenance #{id} vanished.")))?;
    Ok(Done { window, notes })
}

/// The window `/maintenance end [id]` would end, or why there is none: commands
/// ask before deferring, so a mistake gets a private answer.
pub async fn ending(app: &App, id: Option<i64>) -> Result<Window, MaintenanceError> {
    let w = match id {
        Some(id) => match get(&app.store, id).await? {
            None => return invalid(format!("There is no maintenance window #{id}.")),
            Some(w) => w,
        },
        None => {
            let active: Vec<Window> = list(&app.store)
                .await?
                .into_iter()
                .filter(|w| w.state == WindowState::Active)
                .collect();
            match active.as_slice() {
                [] => return invalid("No maintenance window is active."),
                [one] => one.clone(),
                many => {
                    return invalid(format!(
                        "{} windows are active ({}): say which one with `id`.",
                        many.len(),
                        many.iter()
                            .map(|w| format!("#{} {}", w.id, w.services_text()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    };
    match w.state {
        WindowState::Active => {}
        // Its start has come and the scheduler is a tick behind: it is running.
        WindowState::Scheduled if w.starts_ms <= app.clock.now_ms() => {}
        WindowState::Scheduled => {
            return invalid(format!(
                "Maintenance #{} has not started yet; `/maintenance cancel id:{}` calls it off.",
                w.id, w.id
            ))
        }
        WindowState::Ended | WindowState::Cancelled => {
            return invalid(format!(
                "Maintenance #{} is already over ({}).",
                w.id,
                w.state.as_str()
            ))
        }
    }
    Ok(w)
}

/// `/maintenance end [id]`: ends an active window now. Without an id, the only
/// active one.
pub async fn end(app: &App, id: Option<i64>, by: &Who) -> Result<Done, MaintenanceError> {
    let _guard = app.maintenance_lock.lock().await;
    let now = app.clock.now_ms();
    let w = ending(app, id).await?;
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'ended', ended_ms = $1, ended_by = $2, \
         started_ms = COALESCE(started_ms, starts_ms) \
         WHERE id = $3 AND (state = 'active' OR (state = 'scheduled' AND starts_ms <= $4))",
    )
    .bind(now)
    .bind(&by.name)
    .bind(w.id)
    .bind(now)
    .execute(app.store.pool())
    .await?
    .rows_affected();
    if changed == 0 {
        return invalid(format!("Maintenance #{} is already over.", w.id));
    }
    timeline(
        app,
        &w.services,
        by,
        format!(
            "Maintenance #{} ended early by {} (planned until {})",
            w.id,
            by.name,
            when::time_text(w.ends_ms, now, app.maintenance.tz)
        ),
    )
    .await;
    let notes = advance(app, w.id, by, false).await?;
    app.maintenance_wake.notify_one();
    let window = get(&app.store, w.id).await?.unwrap_or(w);
    Ok(Done { window, notes })
}

/// Why `/maintenance extend` would be refused, checked without the lock (commands
/// ask before they defer); the window and its new end otherwise.
pub async fn check_extend(
    app: &App,
    id: i64,
    more: Duration,
) -> Result<(Window, i64), MaintenanceError> {
    let now = app.clock.now_ms();
    let Some(w) = get(&app.store, id).await? else {
        return invalid(format!("There is no maintenance window #{id}."));
    };
    if !matches!(w.state, WindowState::Scheduled | WindowState::Active) {
        return invalid(format!(
            "Maintenance #{id} is already over ({}); start a new one.",
            w.state.as_str()
        ));
    }
    let ends = w.ends_ms.max(now) + more.as_millis() as i64;
    let total = Duration::from_millis((ends - w.starts_ms).max(0) as u64);
    if total > app.maintenance.max {
        return invalid(format!(
            "#{id} would then last {}; a window lasts at most {} (`[maintenance] max_duration`).",
            when::human(total),
            when::human(app.maintenance.max)
        ));
    }
    overlap(
        app,
        app.store.pool(),
        Some(id),
        &w.services,
        w.ends_ms,
        ends,
    )
    .await
    .map_err(|e| match e {
        MaintenanceError::Invalid(text) => {
            MaintenanceError::Invalid(format!("Extended, #{id} would overlap: {text}"))
        }
        other => other,
    })?;
    Ok((w, ends))
}

/// `/maintenance extend id duration`: a later end for a scheduled or active window.
pub async fn extend(
    app: &App,
    id: i64,
    more: Duration,
    by: &Who,
) -> Result<Done, MaintenanceError> {
    let _guard = app.maintenance_lock.lock().await;
    let now = app.clock.now_ms();
    let (w, ends) = check_extend(app, id, more).await?;
    // Stakeholders who were told about the window hear about the new end too (from
    // the scheduler, like every announcement).
    let told = w.scheduled_announced || w.start_announced;
    sqlx::query(
        "UPDATE maintenance_windows SET ends_ms = $1, \
         extended_from_ms = CASE WHEN $2 = 1 THEN COALESCE(extended_from_ms, ends_ms) ELSE NULL END \
         WHERE id = $3",
    )
    .bind(ends)
    .bind(i64::from(told))
    .bind(id)
    .execute(app.store.pool())
    .await?;
    let text = format!(
        "Maintenance #{id} extended by {} to {} by {}",
        when::human(more),
        when::time_text(ends, now, app.maintenance.tz),
        by.name
    );
    timeline(app, &w.services, by, text).await;
    app.maintenance_wake.notify_one();
    let notes = Vec::new();
    let window = get(&app.store, id).await?.unwrap_or(w);
    Ok(Done { window, notes })
}

/// Why `/maintenance cancel` would be refused (see [`check_extend`]).
pub async fn check_cancel(app: &App, id: i64) -> Result<Window, MaintenanceError> {
    let Some(w) = get(&app.store, id).await? else {
        return invalid(format!("There is no maintenance window #{id}."));
    };
    match w.state {
        // Its start has come (the scheduler is a tick behind): it is running.
        WindowState::Scheduled if w.starts_ms > app.clock.now_ms() => {}
        WindowState::Scheduled | WindowState::Active => {
            return invalid(format!(
                "Maintenance #{id} has already started; `/maintenance end id:{id}` ends it."
            ))
        }
        _ => {
            return invalid(format!(
                "Maintenance #{id} is already over ({}).",
                w.state.as_str()
            ))
        }
    }
    Ok(w)
}

/// `/maintenance cancel id`: calls off a window that has not started.
pub async fn cancel(app: &App, id: i64, by: &Who) -> Result<Done, MaintenanceError> {
    let _guard = app.maintenance_lock.lock().await;
    let now = app.clock.now_ms();
    let w = check_cancel(app, id).await?;
    // Nobody was told about a window announced nowhere: nothing to take back.
    let told = w.scheduled_announced || !w.leads_done.is_empty();
    let changed = sqlx::query(
        "UPDATE maintenance_windows SET state = 'cancelled', ended_ms = $1, ended_by = $2, \
         end_announced = $3, summary_posted = 1 WHERE id = $4 AND state = 'scheduled' \
         AND starts_ms > $5",
    )
    .bind(now)
    .bind(&by.name)
    .bind(i64::from(!told))
    .bind(id)
    .bind(now)
    .execute(app.store.pool())
    .await?
    .rows_affected();
    if changed == 0 {
        return invalid(format!("Maintenance #{id} has just started or ended."));
    }
    timeline(
        app,
        &w.services,
        by,
        format!("Maintenance #{id} cancelled by {}", by.name),
    )
    .await;
    let notes = advance(app, id, by, false).await?;
    app.maintenance_wake.notify_one();
    let window = get(&app.store, id).await?.unwrap_or(w);
    Ok(Done { window, notes })
}

/// The scheduler: moves on every window with something due. Returns how many it
/// looked at.
pub async fn tick(app: &App) -> Result<usize, StoreError> {
    let now = app.clock.now_ms();
    let ids: Vec<i64> = sqlx::query(
        "SELECT id FROM maintenance_windows WHERE retry_ms <= $1 AND \
         (state IN ('scheduled', 'active') OR end_announced = 0 OR summary_posted = 0 \
          OR flag_state IN ('on', 'failed-on') \
          OR (flag_state = 'failed-off' AND ended_ms > $2)) ORDER BY starts_ms, id",
    )
    .bind(now)
    .bind(now - FLAG_RETRY_FOR_MS)
    .fetch_all(app.store.pool())
    .await?
    .iter()
    .map(|r| r.try_get::<i64, _>("id"))
    .collect::<Result<_, _>>()?;
    let _guard = app.maintenance_lock.lock().await;
    // An alert held by an intake transaction that read the window just before its
    // end was committed (PostgreSQL reads committed data): given back like the rest.
    let stranded = sqlx::query(
        "SELECT w.id FROM maintenance_windows w WHERE w.summary_posted = 1 \
         AND w.state IN ('ended', 'cancelled') AND w.ended_ms > $1 AND EXISTS \
         (SELECT 1 FROM alerts a WHERE a.held_by = 'maintenance:' || CAST(w.id AS TEXT))",
    )
    .bind(now - 3_600_000)
    .fetch_all(app.store.pool())
    .await?;
    for r in &stranded {
        let id: i64 = r.try_get("id")?;
        let mut tx = app.store.begin_write().await?;
        let n = crate::alerts::db::release_held(
            &mut tx,
            &app.alerts,
            app.alerts_channel,
            &format!("maintenance:{id}"),
            now,
        )
        .await?;
        tx.commit().await?;
        info!(window = id, released = n, "late-held alerts given back");
    }
    let mut n = 0;
    for id in ids {
        match advance(app, id, &Who::klaxon(), true).await {
            Ok(_) => n += 1,
            Err(MaintenanceError::Store(e)) => return Err(e),
            Err(MaintenanceError::Invalid(e)) => warn!(window = id, error = %e, "maintenance step"),
        }
    }
    Ok(n)
}

async fn set_flags(db: &Store, id: i64, sets: &str, binds: &[i64]) -> Result<(), StoreError> {
    let mut q = sqlx::query(sets);
    for b in binds {
        q = q.bind(*b);
    }
    q.bind(id).execute(db.pool()).await?;
    Ok(())
}

/// Does what is due for one window, in order: the announcement of a scheduled
/// window, lead-time reminders, the start (flag on, announcement), the end (flag
/// off, held alerts released and summarised, announcement). The caller holds
/// `maintenance_lock`. `by` is who caused it (Klaxon for the scheduler).
async fn advance(
    app: &App,
    id: i64,
    by: &Who,
    post: bool,
) -> Result<Vec<String>, MaintenanceError> {
    let mut notes = Vec::new();
    let now = app.clock.now_ms();
    let tz = app.maintenance.tz;
    let Some(mut w) = get(&app.store, id).await? else {
        return Ok(notes);
    };
    // Commands change the window and switch flags; posting is the scheduler's (woken
    // at once), so that a reply never waits behind the channel's rate limit.
    let mut chat_failed = !post;
    let mut retry = false;

    if w.state == WindowState::Scheduled {
        if !w.scheduled_announced {
            // A window that starts now is announced by its start.
            if w.starts_ms > now && !chat_failed {
                let msg = ChatMessage::text(format!(
                    "🔧 **Planned maintenance: {}**\n{} · about {}\n{}\nThe service{} may be \
                     unavailable or slower than usual during this time. We will post here when \
                     the work starts and when it is over. · maintenance #{}",
                    chat::neutralize(&w.services_text()),
                    when::span_text(w.starts_ms, w.ends_ms, tz),
                    when::human(Duration::from_millis((w.ends_ms - w.starts_ms) as u64)),
                    chat::neutralize(&w.reason),
                    if w.services.len() == 1 { "" } else { "s" },
                    w.id
                ));
                match announce(app, w.id, "scheduled", msg).await {
                    Ok(()) => {}
                    Err(e) => {
                        warn!(error = %e, window = w.id, "scheduled window not announced");
                        chat_failed = true;
                        retry = true;
                    }
                }
            }
            if !chat_failed {
                set_flags(
                    &app.store,
                    w.id,
                    "UPDATE maintenance_windows SET scheduled_announced = 1 WHERE id = $1",
                    &[],
                )
                .await?;
                w.scheduled_announced = true;
            }
        }
        // Lead-time reminders: those that have come, and only those that were still
        // ahead when the window was scheduled (its first announcement covers the
        // rest). After downtime, one reminder for all missed leads.
        let due: Vec<u64> = app
            .maintenance
            .leads
            .iter()
            .map(|d| d.as_secs())
            .filter(|l| !w.leads_done.contains(l))
            .filter(|l| w.starts_ms - (*l as i64) * 1_000 <= now)
            .collect();
        if !due.is_empty() && w.starts_ms > now && !chat_failed {
            let ahead: Vec<u64> = due
                .iter()
                .copied()
                .filter(|l| w.starts_ms - w.created_ms > (*l as i64) * 1_000)
                .collect();
            if !ahead.is_empty() {
                let msg = ChatMessage::text(format!(
                    "⏰ **Reminder: maintenance on {} starts {}** ({}).\nPlanned until {}. {} · \
                     maintenance #{}",
                    chat::neutralize(&w.services_text()),
                    when::relative(w.starts_ms),
                    when::time_text(w.starts_ms, now, tz),
                    when::time_text(w.ends_ms, now, tz),
                    chat::neutralize(&w.reason),
                    w.id
                ));
                let smallest = ahead.iter().min().copied().unwrap_or_default();
                if let Err(e) = announce(app, w.id, &format!("lead-{smallest}"), msg).await {
                    warn!(error = %e, window = w.id, "maintenance reminder not posted");
                    chat_failed = true;
                    retry = true;
                }
            }
            if !chat_failed {
                let mut done = w.leads_done.clone();
                done.extend(due);
                let text = done
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                sqlx::query("UPDATE maintenance_windows SET leads_done = $1 WHERE id = $2")
                    .bind(text)
                    .bind(w.id)
                    .execute(app.store.pool())
                    .await?;
            }
        }
        if w.ends_ms <= now {
            // The whole window passed while Klaxon was down: no flag to switch on
            // (the service would answer 503 after the work), no "started" notice;
            // it is closed and announced as late.
            let changed = sqlx::query(
                "UPDATE maintenance_windows SET state = 'ended', started_ms = starts_ms, \
                 ended_ms = $1, ended_by = 'schedule', late = 1, start_announced = 1 \
                 WHERE id = $2 AND state = 'scheduled'",
            )
            .bind(now)
            .bind(w.id)
            .execute(app.store.pool())
            .await?
            .rows_affected();
            if changed > 0 {
                w.state = WindowState::Ended;
                w.started_ms = Some(w.starts_ms);
                w.ended_ms = Some(now);
                w.late = true;
                let detail = format!(
                    "missed: it was planned for {} while Klaxon was not running",
                    when::span_text(w.starts_ms, w.ends_ms, tz)
                );
                audit(app, &w, "end", by, Outcome::Ok, detail.clone()).await;
                timeline(
                    app,
                    &w.services,
                    by,
                    format!("Maintenance #{} {detail}", w.id),
                )
                .await;
                warn!(
                    window = w.id,
                    "maintenance window passed entirely while Klaxon was down"
                );
            }
        } else if w.starts_ms <= now {
            let changed = sqlx::query(
                "UPDATE maintenance_windows SET state = 'active', started_ms = $1 \
                 WHERE id = $2 AND state = 'scheduled'",
            )
            .bind(now)
            .bind(w.id)
            .execute(app.store.pool())
            .await?
            .rows_affected();
            if changed > 0 {
                w.state = WindowState::Active;
                w.started_ms = Some(now);
                let late = now - w.starts_ms > LATE_AFTER_MS;
                let detail = if late {
                    format!(
                        "started late, planned for {}",
                        when::time_text(w.starts_ms, now, tz)
                    )
                } else {
                    String::new()
                };
                audit(app, &w, "start", by, Outcome::Ok, detail).await;
                timeline(
                    app,
                    &w.services,
                    by,
                    format!(
                        "Maintenance #{} started on {} until {}: {}",
                        w.id,
                        w.services_text(),
                        when::time_text(w.ends_ms, now, tz),
                        w.reason
                    ),
                )
                .await;
                info!(window = w.id, "maintenance window started");
            }
        }
    }

    if w.state == WindowState::Active {
        // A failed switch is tried again, every RETRY_MS while the window runs.
        let retry_on = w.flag_state == "failed-on" && now - w.flag_tried_ms >= RETRY_MS;
        if w.flag && (w.flag_state.is_empty() || retry_on) {
            let (ok, detail) = switch_all(app, &w, true).await;
            notes.extend(detail.iter().cloned());
            let state = if ok { "on" } else { "failed-on" };
            sqlx::query(
                "UPDATE maintenance_windows SET flag_state = $1, flag_detail = $2, \
                 flag_tried_ms = $3 WHERE id = $4",
            )
            .bind(state)
            .bind(detail.join("\n"))
            .bind(now)
            .bind(w.id)
            .execute(app.store.pool())
            .await?;
            w.flag_state = state.into();
            let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
            audit(app, &w, "flag on", by, outcome, detail.join("; ")).await;
            timeline(
                app,
                &w.services,
                by,
                format!("Maintenance #{} flag on: {}", w.id, detail.join("; ")),
            )
            .await;
            if !ok && by.id == Who::klaxon().id {
                // Nobody typed a command to read the failure in its reply.
                warn_ops(
                    app,
                    format!(
                        "⚠️ Maintenance #{} started, but the maintenance flag is not set: {}",
                        w.id,
                        chat::neutralize(&detail.join("; "))
                    ),
                )
                .await;
            }
        }
        if !w.start_announced && !chat_failed {
            let msg = ChatMessage::text(format!(
                "🔧 **Maintenance has started: {}**\nPlanned until {} (about {}).\n{}\nThe \
                 service{} may be unavailable until then. We will post here when it is over. · \
                 maintenance #{}",
                chat::neutralize(&w.services_text()),
                when::time_text(w.ends_ms, now, tz),
                when::human(Duration::from_millis((w.ends_ms - now).max(0) as u64)),
                chat::neutralize(&w.reason),
                if w.services.len() == 1 { "" } else { "s" },
                w.id
            ));
            match announce(app, w.id, "start", msg).await {
                Ok(()) => {
                    set_flags(
                        &app.store,
                        w.id,
                        "UPDATE maintenance_windows SET start_announced = 1 WHERE id = $1",
                        &[],
                    )
                    .await?;
                    w.start_announced = true;
                }
                Err(e) => {
                    warn!(error = %e, window = w.id, "maintenance start not announced");
                    chat_failed = true;
                    retry = true;
                }
            }
        }
        if w.ends_ms <= now {
            let late = now - w.ends_ms > LATE_AFTER_MS;
            let changed = sqlx::query(
                "UPDATE maintenance_windows SET state = 'ended', ended_ms = $1, ended_by = $2, \
                 late = $3 WHERE id = $4 AND state = 'active'",
            )
            .bind(now)
            .bind("schedule")
            .bind(i64::from(late))
            .bind(w.id)
            .execute(app.store.pool())
            .await?
            .rows_affected();
            if changed > 0 {
                w.state = WindowState::Ended;
                w.ended_ms = Some(now);
                w.ended_by = Some("schedule".into());
                w.late = late;
                let detail = if late {
                    format!(
                        "ended late: planned for {}, Klaxon was not running then",
                        when::time_text(w.ends_ms, now, tz)
                    )
                } else {
                    String::new()
                };
                audit(app, &w, "end", by, Outcome::Ok, detail.clone()).await;
                timeline(
                    app,
                    &w.services,
                    by,
                    format!(
                        "Maintenance #{} ended{}",
                        w.id,
                        if late {
                            format!(" ({detail})")
                        } else {
                            String::new()
                        }
                    ),
                )
                .await;
                info!(window = w.id, late, "maintenance window ended");
            }
        }
    }

    // After the start notice, so stakeholders read them in order; a window that
    // ended meanwhile is covered by its end notice.
    if let (Some(from), false) = (w.extended_from_ms, chat_failed) {
        if matches!(w.state, WindowState::Scheduled | WindowState::Active) {
            let msg = ChatMessage::text(format!(
                "🔧 **Maintenance on {} extended** by {}: now until {}.\n{} · maintenance #{}",
                chat::neutralize(&w.services_text()),
                when::human(Duration::from_millis((w.ends_ms - from).max(0) as u64)),
                when::time_text(w.ends_ms, now, tz),
                chat::neutralize(&w.reason),
                w.id
            ));
            if let Err(e) = announce(app, w.id, &format!("extend{}", w.ends_ms / 1_000), msg).await
            {
                warn!(error = %e, window = w.id, "extension not announced");
                chat_failed = true;
                retry = true;
            }
        }
        if !chat_failed {
            sqlx::query("UPDATE maintenance_windows SET extended_from_ms = NULL WHERE id = $1")
                .bind(w.id)
                .execute(app.store.pool())
                .await?;
        }
    }

    if matches!(w.state, WindowState::Ended | WindowState::Cancelled) {
        // A flag that would not clear is tried again for a while: the service answers
        // 503 until it is.
        let retry_off = w.flag_state == "failed-off"
            && now - w.flag_tried_ms >= RETRY_MS
            && now - w.ended_ms.unwrap_or(now) < FLAG_RETRY_FOR_MS;
        if w.flag && (matches!(w.flag_state.as_str(), "on" | "failed-on") || retry_off) {
            let (ok, detail) = switch_all(app, &w, false).await;
            if retry_off && ok {
                warn_ops(
                    app,
                    format!(
                        "✅ The maintenance flag of #{} is cleared now: {}",
                        w.id,
                        chat::neutralize(&detail.join("; "))
                    ),
                )
                .await;
            }
            notes.extend(detail.iter().cloned());
            let state = if ok { "off" } else { "failed-off" };
            sqlx::query(
                "UPDATE maintenance_windows SET flag_state = $1, flag_detail = $2, \
                 flag_tried_ms = $3 WHERE id = $4",
            )
            .bind(state)
            .bind(detail.join("\n"))
            .bind(now)
            .bind(w.id)
            .execute(app.store.pool())
            .await?;
            w.flag_state = state.into();
            w.flag_detail = detail.join("\n");
            let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
            audit(app, &w, "flag off", by, outcome, detail.join("; ")).await;
            timeline(
                app,
                &w.services,
                by,
                format!("Maintenance #{} flag off: {}", w.id, detail.join("; ")),
            )
            .await;
        }
        // A flag left on makes the service answer 503 after the work: the engineers
        // hear about it with the summary.
        let warnings: Vec<String> = if w.flag_state == "failed-off" {
            vec![format!(
                "⚠️ The maintenance flag could not be cleared, so the service may still answer \
                 503: {}",
                w.flag_detail.replace('\n', "; ")
            )]
        } else {
            Vec::new()
        };
        if !w.summary_posted && !chat_failed {
            match summarize_and_release(app, &w, &warnings, now).await {
                Ok(()) => w.summary_posted = true,
                Err(Failure::Store(e)) => return Err(e.into()),
                Err(Failure::Chat(e)) => {
                    warn!(error = %e, window = w.id, "held alerts' summary not posted");
                    chat_failed = true;
                    retry = true;
                }
            }
        }
        if !w.end_announced && !chat_failed {
            let msg = if w.state == WindowState::Cancelled {
                ChatMessage::text(format!(
                    "❎ **Planned maintenance cancelled: {}**\nThe work planned for {} will not \
                     happen then. · maintenance #{}",
                    chat::neutralize(&w.services_text()),
                    when::span_text(w.starts_ms, w.ends_ms, tz),
                    w.id
                ))
            } else {
                let ended = w.ended_ms.unwrap_or(now);
                let took = Duration::from_millis(
                    (ended - w.started_ms.unwrap_or(w.starts_ms)).max(0) as u64,
                );
                let how = if w.late {
                    format!(
                        "It was planned to end at {}; Klaxon was offline then, so this notice \
                         comes late (recorded {}).",
                        when::time_text(w.ends_ms, now, tz),
                        when::time_text(ended, now, tz)
                    )
                } else if ended + 60_000 < w.ends_ms {
                    format!(
                        "Finished early, after {} (planned until {}).",
                        when::human(took),
                        when::time_text(w.ends_ms, now, tz)
                    )
                } else {
                    format!("It took {}.", when::human(took))
                };
                ChatMessage::text(format!(
                    "✅ **Maintenance is over: {}**{}\n{how}\nThe work on {} is finished; if \
                     something still looks wrong, tell us here. · maintenance #{}",
                    chat::neutralize(&w.services_text()),
                    if w.late { " (late notice)" } else { "" },
                    if w.services.len() == 1 { "it" } else { "them" },
                    w.id
                ))
            };
            match announce(app, w.id, "end", msg).await {
                Ok(()) => {
                    set_flags(
                        &app.store,
                        w.id,
                        "UPDATE maintenance_windows SET end_announced = 1 WHERE id = $1",
                        &[],
                    )
                    .await?;
                }
                Err(e) => {
                    warn!(error = %e, window = w.id, "maintenance end not announced");
                    retry = true;
                }
            }
        }
    }
    if retry {
        sqlx::query("UPDATE maintenance_windows SET retry_ms = $1 WHERE id = $2")
            .bind(now + RETRY_MS)
            .bind(w.id)
            .execute(app.store.pool())
            .await?;
    }
    Ok(notes)
}

/// Switches the flag of every service of the window; `(all worked, one line each)`.
async fn switch_all(app: &App, w: &Window, on: bool) -> (bool, Vec<String>) {
    // All services at once: each switch is one or two execs, each up to the
    // Docker timeout.
    let results = futures::future::join_all(w.services.iter().map(|name| async move {
        let Ok(svc) = app.service(name) else {
            return Err(format!("{name}: no longer configured"));
        };
        let Some(container) = &svc.container else {
            return Err(format!("{name}: no container"));
        };
        let cfg = svc.maintenance_flag.clone().unwrap_or_default();
        match flag::switch(&app.docker, container, &cfg, on).await {
            Ok(done) => Ok(format!("{name}: {done}")),
            Err(e) => {
                warn!(service = %name, container = %container, error = %e, on, "maintenance flag");
                Err(format!(
                    "{name}: {e} (by hand: `{}`)",
                    cfg.by_hand(container, on)
                ))
            }
        }
    }))
    .await;
    let ok = results.iter().all(Result::is_ok);
    (
        ok,
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| e))
            .collect(),
    )
}

enum Failure {
    Store(StoreError),
    Chat(chat::ChatError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Store(e.into())
    }
}

/// Posts what the window held back to the alerts channel, then gives the alerts
/// back: those still firing join their groups and are posted; those that resolved
/// update any message that showed them firing. The post carries a nonce, so a crash
/// between the post and the release does not show it twice.
async fn summarize_and_release(
    app: &App,
    w: &Window,
    warnings: &[String],
    now: i64,
) -> Result<(), Failure> {
    let key = w.held_key();
    let rows = sqlx::query(
        "SELECT name, service, status, received FROM alerts WHERE held_by = $1 \
         ORDER BY status, name, id",
    )
    .bind(&key)
    .fetch_all(app.store.pool())
    .await?;
    let channel = app.alerts_channel.or(app.incidents_channel);
    if let (Some(channel), true) = (channel, !rows.is_empty() || !warnings.is_empty()) {
        let mut lines = Vec::new();
        let firing = rows
            .iter()
            .filter(|r| {
                r.try_get::<String, _>("status")
                    .is_ok_and(|s| s == "firing")
            })
            .count();
        for r in &rows {
            let name: String = r.try_get("name")?;
            let service: String = r.try_get("service")?;
            let status: String = r.try_get("status")?;
            lines.push(format!(
                "{} {} ({}){}",
                if status == "firing" { "🔴" } else { "✅" },
                chat::neutralize(&name),
                chat::neutralize(&service),
                if status == "firing" {
                    " · still firing, posted now"
                } else {
                    " · resolved during the window"
                }
            ));
        }
        let mut text = if rows.is_empty() {
            format!(
                "🔧 Maintenance #{} ({}) is over.",
                w.id,
                chat::neutralize(&w.services_text())
            )
        } else {
            format!(
                "🔕 **Maintenance #{} ({}) held {} alert notification{}** from {} alert{}; {} still firing.",
                w.id,
                chat::neutralize(&w.services_text()),
                w.held,
                if w.held == 1 { "" } else { "s" },
                rows.len(),
                if rows.len() == 1 { "" } else { "s" },
                firing
            )
        };
        for warning in warnings {
            text.push('\n');
            text.push_str(&chat::neutralize(warning));
        }
        let budget = chat::limits::CONTENT - 40;
        for (i, l) in lines.iter().enumerate() {
            if chat::chars(&text) + chat::chars(l) + 1 > budget {
                text.push_str(&format!(
                    "\n… and {} more (`/alerts list`)",
                    lines.len() - i
                ));
                break;
            }
            text.push('\n');
            text.push_str(l);
        }
        let msg = ChatMessage {
            nonce: Some(nonce(w.id, "summary")),
            silent: firing == 0 && warnings.is_empty(),
            ..ChatMessage::text(text)
        };
        app.chat.send(channel, msg).await.map_err(Failure::Chat)?;
    }
    let mut tx = app.store.begin_write().await?;
    crate::alerts::db::release_held(&mut tx, &app.alerts, app.alerts_channel, &key, now).await?;
    sqlx::query("UPDATE maintenance_windows SET summary_posted = 1 WHERE id = $1")
        .bind(w.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The same post always carries the same nonce: Discord shows a retried one once.
fn nonce(id: i64, what: &str) -> String {
    // Discord takes nonces of up to 25 characters.
    chat::truncate(&format!("m{id}-{what}"), 25)
}

/// A notice for stakeholders in the incidents channel (no channel: nothing to do).
async fn announce(app: &App, id: i64, what: &str, msg: ChatMessage) -> Result<(), chat::ChatError> {
    let Some(channel) = app.incidents_channel else {
        return Ok(());
    };
    let msg = ChatMessage {
        nonce: Some(nonce(id, what)),
        ..msg
    };
    app.chat.send(channel, msg).await.map(|_| ())
}

/// A warning for the engineers (alerts channel), best effort.
async fn warn_ops(app: &App, text: String) {
    let Some(channel) = app.alerts_channel.or(app.incidents_channel) else {
        return;
    };
    if let Err(e) = app.chat.send(channel, ChatMessage::text(text)).await {
        warn!(error = %e, "maintenance warning not posted");
    }
}

/// An audit row for what the window did by itself or as a consequence of a command.
async fn audit(app: &App, w: &Window, verb: &str, by: &Who, outcome: Outcome, detail: String) {
    app.audit(AuditEntry {
        at_ms: app.clock.now_ms(),
        guild_id: None,
        channel_id: None,
        user_id: by.id,
        user_name: by.name.clone(),
        command: format!("maintenance {verb}"),
        arguments: format!("id={} services={}", w.id, w.services.join(",")),
        outcome,
        detail,
        duration_ms: 0,
    })
    .await;
}

/// A line on the timeline of every open incident about one of the services.
async fn timeline(app: &App, services: &[String], by: &Who, text: String) {
    let mut seen = BTreeSet::new();
    for s in services {
        let open = match crate::incidents::db::open_for_service(&app.store, s).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, service = %s, "maintenance not written to incident timelines");
                continue;
            }
        };
        for i in open {
            if !seen.insert(i.id) {
                continue;
            }
            let entry = NewEntry::new(
                EntryKind::Maintenance,
                app.clock.now_ms(),
                by,
                chat::truncate(&text, 1_000),
            );
            if let Err(e) = crate::incidents::db::add_entry(&app.store, i.id, &entry).await {
                warn!(error = %e, incident = %i.id, "maintenance timeline entry not written");
            }
        }
    }
}

/// Services in a window now, for `/health`: (service, one line about the window).
pub async fn health_notes(app: &App) -> Vec<(String, String)> {
    let now = app.clock.now_ms();
    match in_force(&app.store, now).await {
        Ok(windows) => windows
            .iter()
            .flat_map(|w| {
                let line = format!(
                    "🔧 maintenance #{} until {}: {}",
                    w.id,
                    when::time_text(w.ends_ms, now, app.maintenance.tz),
                    w.reason
                );
                w.services.iter().map(move |s| (s.clone(), line.clone()))
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "maintenance windows not read for /health");
            Vec::new()
        }
    }
}
