//! On-call: who is on call for a schedule (the pure resolver in [`resolve`]), and
//! overrides (`/oncall override`, `/oncall cover`) kept as rows in the database.
//!
//! A domain module: it takes `&App` as its context. The settings it reads are
//! validated at start-up in `settings::oncall`.

pub mod escalate;
pub mod handoff;
pub mod page;
pub mod resolve;
pub mod webhook;

use crate::actor::Actor;
use crate::app::App;
use crate::chat::ChatError;
use crate::settings::oncall::Schedule;
use crate::store::oncall::{self as rows, NewOverride, OverrideRow};
use crate::store::StoreError;

use resolve::{OnCallAt, Override, Segment};

/// The longest override and cover: a longer absence is a change of the schedule.
pub const MAX_OVERRIDE_MS: i64 = 4 * 7 * 86_400_000;
/// The furthest ahead an override may start.
pub const MAX_AHEAD_MS: i64 = 366 * 86_400_000;
/// `/oncall shifts` looks at most this many days ahead.
pub const MAX_DAYS: i64 = 28;

#[derive(Debug, thiserror::Error)]
pub enum OncallError {
    /// Bad input or a refused change; the text is written for the member.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Discord: {0}")]
    Chat(#[from] ChatError),
}

impl crate::user_facing::UserFacing for OncallError {
    fn user_text(&self) -> Option<String> {
        matches!(self, OncallError::Invalid(_)).then(|| self.to_string())
    }
}

fn invalid<T>(text: impl Into<String>) -> Result<T, OncallError> {
    Err(OncallError::Invalid(text.into()))
}

/// The configured schedule by name (any case), or an error listing the known ones.
pub fn schedule<'a>(app: &'a App, name: &str) -> Result<&'a Schedule, OncallError> {
    if app.oncall.schedules.is_empty() {
        return invalid("No on-call schedules are configured (`[[oncall.schedules]]`).");
    }
    app.oncall.schedule(name).ok_or_else(|| {
        let known: Vec<&str> = app
            .oncall
            .schedules
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        OncallError::Invalid(format!(
            "No on-call schedule `{}`. Known: {}.",
            crate::chat::neutralize(&crate::chat::truncate(name, 40)),
            known.join(", ")
        ))
    })
}

fn as_override(r: &OverrideRow) -> Override {
    Override {
        id: r.id,
        member: r.member_id,
        start_ms: r.starts_ms,
        end_ms: r.ends_ms,
    }
}

/// The schedule's overrides that matter from `from_ms` on.
pub async fn overrides(
    app: &App,
    s: &Schedule,
    from_ms: i64,
) -> Result<Vec<OverrideRow>, OncallError> {
    Ok(rows::active(&app.store, s.name.as_str(), from_ms).await?)
}

/// Who is on call on `s` now, and until when.
pub async fn now(app: &App, s: &Schedule) -> Result<OnCallAt, OncallError> {
    let now = app.clock.now_ms();
    let ovs: Vec<Override> = overrides(app, s, now)
        .await?
        .iter()
        .map(as_override)
        .collect();
    Ok(resolve::resolve(s, &ovs, now))
}

/// The shifts of the next `days` days, overrides marked by their source.
pub async fn shifts(app: &App, s: &Schedule, days: i64) -> Result<Vec<Segment>, OncallError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return invalid(format!("`days` must be from 1 to {MAX_DAYS}."));
    }
    let now = app.clock.now_ms();
    let ovs: Vec<Override> = overrides(app, s, now)
        .await?
        .iter()
        .map(as_override)
        .collect();
    Ok(resolve::segments(s, &ovs, now, now + days * 86_400_000))
}

/// A new override, as a command asks for it.
#[derive(Debug, Clone)]
pub struct OverrideRequest {
    pub member: u64,
    pub starts_ms: i64,
    pub duration_ms: i64,
    /// Who asked; their guild is where `member` must be.
    pub by: Actor,
}

/// Checks and stores an override; returns its row.
pub async fn add_override(
    app: &App,
    s: &Schedule,
    req: OverrideRequest,
) -> Result<OverrideRow, OncallError> {
    let now = app.clock.now_ms();
    if req.duration_ms <= 0 || req.duration_ms > MAX_OVERRIDE_MS {
        return invalid("The duration must be more than 0 and at most 4 weeks (4w).");
    }
    // A minute of grace: "now" typed a moment ago is not in the past.
    if req.starts_ms + req.duration_ms <= now || req.starts_ms < now - 60_000 {
        return invalid(format!(
            "That override starts in the past ({}); give a start from now on.",
            crate::timefmt::date_time(req.starts_ms)
        ));
    }
    if req.starts_ms > now + MAX_AHEAD_MS {
        return invalid("An override may start at most a year ahead.");
    }
    let Some(guild) = req.by.guild_id else {
        return invalid("Overrides are made in the server, not in a direct message.");
    };
    if !app.chat.is_member(guild, req.member).await? {
        return invalid(format!(
            "User {} is not a member of this server, so they cannot be on call.",
            req.member
        ));
    }
    let starts_ms = req.starts_ms.max(now);
    let new = NewOverride {
        schedule: s.name.as_str(),
        member_id: req.member,
        starts_ms,
        ends_ms: req.starts_ms + req.duration_ms,
        created_by: &req.by.name,
        created_by_id: req.by.user_id,
        created_ms: now,
    };
    let id = rows::insert(&app.store, &new).await?;
    tracing::info!(schedule = %s.name, override_id = id, member = req.member, starts_ms, ends_ms = new.ends_ms, by = req.by.user_id, "on-call override");
    match rows::get(&app.store, id).await? {
        Some(r) => Ok(r),
        None => Err(OncallError::Store(StoreError::Query(
            sqlx::Error::RowNotFound,
        ))),
    }
}

/// Cancels an override by id.
pub async fn cancel_override(app: &App, id: i64, by: &Actor) -> Result<OverrideRow, OncallError> {
    let Some(row) = rows::get(&app.store, id).await? else {
        return invalid(format!("There is no override #{id}."));
    };
    if row.cancelled_ms.is_some() {
        return invalid(format!("Override #{id} was already cancelled."));
    }
    let now = app.clock.now_ms();
    if row.ends_ms <= now {
        return invalid(format!("Override #{id} has already ended."));
    }
    rows::cancel(&app.store, id, &by.name, now).await?;
    tracing::info!(
        override_id = id,
        by = by.user_id,
        "on-call override cancelled"
    );
    Ok(row)
}
