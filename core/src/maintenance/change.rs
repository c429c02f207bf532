//! The changes members make: create (`/maintenance start` and `schedule`), end,
//! extend and cancel a window, each with its check that commands run before they
//! defer, so a mistake gets a private answer at once.
//!
//! A change writes the window, a line on the incident timelines, and then lets
//! [`run`](super::run) do what became due (without posting: the scheduler, woken
//! at once, posts the announcements).

use std::time::Duration;

use tracing::info;

use super::run::{advance, publish_step};
use super::{invalid, when, Done, MaintenanceError, NewWindow, Window, WindowState};
use crate::actor::Actor;
use crate::events::MaintenanceKind;
use crate::store::maintenance as store;
use crate::App;

/// How far before now a "scheduled" start may be and still count as now: the time
/// a member takes to type `in 0m`.
const PAST_GRACE_MS: i64 = 60_000;

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
    for w in store::overlapping(db, except, starts, ends).await? {
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
    let id = store::insert(
        &mut tx,
        &store::Insert {
            services: &n.services,
            all: n.all,
            reason: &reason,
            flag: n.flag,
            by_name: &n.by.name,
            by_id: n.by.user_id,
            created_ms: now,
            starts_ms: starts,
            ends_ms: ends,
        },
    )
    .await?;
    tx.commit().await?;
    info!(window = id, services = ?n.services, starts, ends, "maintenance window created");
    if starts > now {
        publish_step(
            app,
            id,
            MaintenanceKind::Scheduled,
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
    let window = store::get(&app.store, id)
        .await?
        .ok_or_else(|| MaintenanceError::Invalid(format!("Maintenance #{id} vanished.")))?;
    Ok(Done { window, notes })
}

/// The window `/maintenance end [id]` would end, or why there is none: commands
/// ask before deferring, so a mistake gets a private answer.
pub async fn ending(app: &App, id: Option<i64>) -> Result<Window, MaintenanceError> {
    let w = match id {
        Some(id) => match store::get(&app.store, id).await? {
            None => return invalid(format!("There is no maintenance window #{id}.")),
            Some(w) => w,
        },
        None => {
            let active: Vec<Window> = store::list(&app.store)
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
pub async fn end(app: &App, id: Option<i64>, by: &Actor) -> Result<Done, MaintenanceError> {
    let _guard = app.maintenance_lock.lock().await;
    let now = app.clock.now_ms();
    let w = ending(app, id).await?;
    if !store::end_now(&app.store, w.id, &by.name, now).await? {
        return invalid(format!("Maintenance #{} is already over.", w.id));
    }
    publish_step(
        app,
        w.id,
        MaintenanceKind::EndedEarly,
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
    let window = store::get(&app.store, w.id).await?.unwrap_or(w);
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
    let Some(w) = store::get(&app.store, id).await? else {
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
    by: &Actor,
) -> Result<Done, MaintenanceError> {
    let _guard = app.maintenance_lock.lock().await;
    let now = app.clock.now_ms();
    let (w, ends) = check_extend(app, id, more).await?;
    // Stakeholders who were told about the window hear about the new end too (from
    // the scheduler, like every announcement).
    let told = w.scheduled_announced || w.start_announced;
    store::extend_to(&app.store, id, ends, told).await?;
    let text = format!(
        "Maintenance #{id} extended by {} to {} by {}",
        when::human(more),
        when::time_text(ends, now, app.maintenance.tz),
        by.name
    );
    publish_step(app, w.id, MaintenanceKind::Extended, &w.services, by, text).await;
    app.maintenance_wake.notify_one();
    let notes = Vec::new();
    let window = store::get(&app.store, id).await?.unwrap_or(w);
    Ok(Done { window, notes })
}

/// Why `/maintenance cancel` would be refused (see [`check_extend`]).
pub async fn check_cancel(app: &App, id: i64) -> Result<Window, MaintenanceError> {
    let Some(w) = store::get(&app.store, id).await? else {
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
pub async fn cancel(app: &App, id: i64, by: &Actor) -> Result<Done, MaintenanceError> {
    let _guard = app.maintenance_lock.lock().await;
    let now = app.clock.now_ms();
    let w = check_cancel(app, id).await?;
    // Nobody was told about a window announced nowhere: nothing to take back.
    let told = w.scheduled_announced || !w.leads_done.is_empty();
    if !store::cancel(&app.store, id, &by.name, told, now).await? {
        return invalid(format!("Maintenance #{id} has just started or ended."));
    }
    publish_step(
        app,
        id,
        MaintenanceKind::Cancelled,
        &w.services,
        by,
        format!("Maintenance #{id} cancelled by {}", by.name),
    )
    .await;
    let notes = advance(app, id, by, false).await?;
    app.maintenance_wake.notify_one();
    let window = store::get(&app.store, id).await?.unwrap_or(w);
    Ok(Done { window, notes })
}
