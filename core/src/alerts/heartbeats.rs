//! Heartbeats: dead-man's switches for cron jobs. A job pings `/heartbeat/NAME`
//! after each run (or `/heartbeat/NAME/fail`); a heartbeat not pinged within
//! `period + grace` raises `HeartbeatMissed`, a failed run `HeartbeatFailed`, and the
//! next successful ping resolves either. They go through the same intake as any
//! other alert (Klaxon's own source `heartbeat`): grouped, routed, silenceable, held
//! in maintenance.
//!
//! Why deadlines live in the database: a restart must neither forget one nor call
//! Klaxon's own downtime a missed run. At start-up ([`start`]) every waiting
//! heartbeat gets at least one grace period from now; a deadline that passed while
//! Klaxon was down therefore fires one grace period after start-up. Pings are taken
//! on every replica (they write the row); the checker ([`check`]) runs on the leader.

use super::{Alert, AlertStatus, Source};
use crate::app::App;
use crate::events::{AlertChange, Event};
use crate::settings::heartbeats::Heartbeat;
use crate::store::heartbeats::{self as rows, BeatRow, BeatState};
use crate::store::StoreError;

pub const MISSED: &str = "HeartbeatMissed";
pub const FAILED: &str = "HeartbeatFailed";

/// A heartbeat's alert: one per heartbeat and alert name, labelled with the
/// heartbeat's name and its service.
fn alert(hb: &Heartbeat, name: &str, status: AlertStatus, summary: String) -> Alert {
    let mut a = Alert::own(
        Source::Heartbeat,
        hb.service_label(),
        name,
        status,
        "critical",
        summary,
    );
    a.labels.insert("heartbeat".into(), hb.name.clone());
    a.fingerprint = format!("{}:{name}:{}", Source::Heartbeat.as_str(), hb.name);
    a
}

async fn raise(app: &App, alerts: &[Alert]) -> Result<(), StoreError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let now = app.clock.now_ms();
    let done =
        super::intake::ingest(&app.store, &app.alerts, app.alerts_channel, alerts, now).await?;
    let changed = AlertChange::picked(alerts, &done.changed);
    app.publish(Event::AlertsChanged(changed)).await;
    Ok(())
}

/// The configured heartbeat called `name` (exactly as configured).
pub fn find<'a>(app: &'a App, name: &str) -> Option<&'a Heartbeat> {
    app.heartbeats.iter().find(|h| h.name == name)
}

/// At start-up (of the leader's checker): rows for new heartbeats, and at least
/// one grace period for every waiting one.
pub async fn start(app: &App) -> Result<(), StoreError> {
    let now = app.clock.now_ms();
    for hb in &app.heartbeats {
        let deadline = now
            .saturating_add(hb.period_ms())
            .saturating_add(hb.grace_ms());
        rows::start(
            &app.store,
            &hb.name,
            deadline,
            now.saturating_add(hb.grace_ms()),
            now,
        )
        .await?;
    }
    Ok(())
}

/// A successful run: the next deadline is `now + period + grace`; what was raised
/// resolves.
pub async fn ran(app: &App, hb: &Heartbeat) -> Result<i64, StoreError> {
    let now = app.clock.now_ms();
    let deadline = now
        .saturating_add(hb.period_ms())
        .saturating_add(hb.grace_ms());
    let before = rows::ran(&app.store, &hb.name, now, deadline).await?;
    let resolve = match before {
        BeatState::Ok => vec![],
        BeatState::Missed => vec![alert(
            hb,
            MISSED,
            AlertStatus::Resolved,
            format!("{} ran again", hb.name),
        )],
        BeatState::Failed => vec![alert(
            hb,
            FAILED,
            AlertStatus::Resolved,
            format!("{} ran successfully again", hb.name),
        )],
    };
    raise(app, &resolve).await?;
    Ok(deadline)
}

/// A failed run: `HeartbeatFailed` fires at once (and a missed alert, replaced by
/// it, resolves: the job did run).
pub async fn failed(app: &App, hb: &Heartbeat) -> Result<(), StoreError> {
    let now = app.clock.now_ms();
    let before = rows::get(&app.store, &hb.name).await?.map(|r| r.state);
    let deadline = now
        .saturating_add(hb.period_ms())
        .saturating_add(hb.grace_ms());
    rows::failed(&app.store, &hb.name, now, deadline).await?;
    let mut out = vec![alert(
        hb,
        FAILED,
        AlertStatus::Firing,
        format!("{} reported a failed run", hb.name),
    )];
    if before == Some(BeatState::Missed) {
        out.push(alert(
            hb,
            MISSED,
            AlertStatus::Resolved,
            format!("{} ran again (and failed)", hb.name),
        ));
    }
    raise(app, &out).await
}

/// One check: every waiting heartbeat past its deadline raises `HeartbeatMissed`
/// (once). Returns how many fired.
pub async fn check(app: &App) -> Result<usize, StoreError> {
    let now = app.clock.now_ms();
    let mut out = Vec::new();
    for row in rows::list(&app.store).await? {
        let Some(hb) = find(app, &row.name) else {
            continue; // No longer configured.
        };
        if row.state == BeatState::Ok
            && row.deadline_ms <= now
            && rows::mark_missed(&app.store, &hb.name, now).await?
        {
            let last = match row.last_ok_ms {
                Some(ms) => format!(
                    "last run {} ago",
                    crate::timefmt::duration_text(now.saturating_sub(ms))
                ),
                None => "no run recorded yet".into(),
            };
            out.push(alert(
                hb,
                MISSED,
                AlertStatus::Firing,
                format!(
                    "{} did not run within {} + {} grace ({last})",
                    hb.name,
                    crate::timefmt::human_duration(hb.period),
                    crate::timefmt::human_duration(hb.grace)
                ),
            ));
        }
    }
    let fired = out.len();
    raise(app, &out).await?;
    Ok(fired)
}

/// A heartbeat as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub service: Option<String>,
    pub state: BeatState,
    pub last_ok_ms: Option<i64>,
    pub last_fail_ms: Option<i64>,
    pub deadline_ms: Option<i64>,
}

/// Every configured heartbeat with its row (in configured order); one without a
/// row yet shows as waiting, never run.
pub async fn statuses(app: &App) -> Result<Vec<Status>, StoreError> {
    if app.heartbeats.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<BeatRow> = rows::list(&app.store).await?;
    Ok(app
        .heartbeats
        .iter()
        .map(|hb| {
            let r = rows.iter().find(|r| r.name == hb.name);
            Status {
                name: hb.name.clone(),
                service: hb.service.clone(),
                state: r.map_or(BeatState::Ok, |r| r.state),
                last_ok_ms: r.and_then(|r| r.last_ok_ms),
                last_fail_ms: r.and_then(|r| r.last_fail_ms),
                deadline_ms: r.map(|r| r.deadline_ms),
            }
        })
        .collect())
}
