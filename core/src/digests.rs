//! The daily and weekly digests (`[digests]`, issue #15): the runbooks' morning
//! health check (every service's state, open incidents, firing alerts, today's
//! maintenance) and the week's review (incidents by severity with MTTA/MTTR, the
//! ten noisiest alerts, who was on call).
//!
//! Why a claimed row per period: the leader's [`tick`] may run on any replica,
//! be restarted, or be taken over between two ticks. Each digest is claimed by a
//! row (kind, period) in the same transaction that stores its post in the posts
//! outbox (keyed by the period, so the post is also its own nonce): the one claim
//! that commits posts, every other tick sees the row and does nothing.
//!
//! Why only the latest period: a Klaxon that was down at 09:00 posts that
//! morning's digest when it is back (once), but one that was down for a week
//! posts only the latest daily digest, not seven stale ones. A digest enabled for
//! the first time posts the latest period at once.

use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use tracing::info;

use crate::app::App;
use crate::chat::{self, ChatMessage, Span, Text};
use crate::oncall::resolve::local_to_ms;
use crate::posts::{self, Kind, Post, To};
use crate::store::digests as db;
use crate::store::maintenance::WindowState;
use crate::store::StoreError;

/// How often the leader looks: a digest goes out within this of its time.
pub const TICK: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 86_400_000;
/// Entries of one list in a digest (the message must fit Discord's 2,000 characters).
const LIST: usize = 10;
/// How long the health check may take before the digest goes without it.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    Daily,
    Weekly,
}

impl DigestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestKind::Daily => "daily",
            DigestKind::Weekly => "weekly",
        }
    }
}

/// One digest's occurrence: the local date it is for and when it was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub kind: DigestKind,
    /// The local date of its time (`2026-12-08`): the row's period.
    pub date: NaiveDate,
    pub due_ms: i64,
}

impl Due {
    pub fn period(&self) -> String {
        self.date.format("%Y-%m-%d").to_string()
    }
}

fn local_date(tz: Tz, ms: i64) -> NaiveDate {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&tz).date_naive())
        .unwrap_or_default()
}

/// The latest daily occurrence at or before `now_ms`.
pub fn latest_daily(tz: Tz, at: NaiveTime, now_ms: i64) -> Due {
    let mut date = local_date(tz, now_ms);
    let mut due = local_to_ms(tz, date.and_time(at));
    if due > now_ms {
        date = date.pred_opt().unwrap_or(date);
        due = local_to_ms(tz, date.and_time(at));
    }
    Due {
        kind: DigestKind::Daily,
        date,
        due_ms: due,
    }
}

/// The latest weekly occurrence at or before `now_ms`.
pub fn latest_weekly(tz: Tz, day: Weekday, at: NaiveTime, now_ms: i64) -> Due {
    let today = local_date(tz, now_ms);
    let back = (7 + today.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
    let mut date = today - chrono::Days::new(u64::from(back));
    let mut due = local_to_ms(tz, date.and_time(at));
    if due > now_ms {
        date = date - chrono::Days::new(7);
        due = local_to_ms(tz, date.and_time(at));
    }
    Due {
        kind: DigestKind::Weekly,
        date,
        due_ms: due,
    }
}

/// Where digests go: `[digests] channel`, else the incidents channel, else the
/// alerts channel.
pub fn channel(app: &App) -> Option<u64> {
    app.digests
        .channel
        .or(app.incidents_channel)
        .or(app.alerts_channel)
}

/// The digests due now that nobody posted yet: at most one per kind, the latest.
pub fn due(app: &App, now_ms: i64) -> Vec<Due> {
    let tz = app.maintenance.tz;
    let mut out = Vec::new();
    if let Some(at) = app.digests.daily {
        out.push(latest_daily(tz, at, now_ms));
    }
    if let Some((day, at)) = app.digests.weekly {
        out.push(latest_weekly(tz, day, at, now_ms));
    }
    out
}

/// Posts the digests that are due and not yet claimed. Returns how many it posted.
pub async fn tick(app: &App) -> Result<usize, StoreError> {
    let Some(to) = channel(app) else {
        return Ok(0);
    };
    let now = app.clock.now_ms();
    let mut posted = 0;
    for d in due(app, now) {
        let kind = d.kind.as_str();
        let period = d.period();
        if db::claimed(&app.store, kind, &period).await? {
            continue;
        }
        let message = match d.kind {
            DigestKind::Daily => daily(app, &d).await?,
            DigestKind::Weekly => weekly(app, &d).await?,
        };
        let post = Post::new(
            Kind::Digest,
            To::Channel(to),
            message,
            format!("digest {kind}"),
        )
        .keyed(format!("digest {kind} {period}"));
        let mut tx = app.store.begin_write().await?;
        if !db::claim(&mut tx, kind, &period, now).await? {
            tx.rollback().await?;
            continue;
        }
        posts::store_in(&mut tx, &post, now).await?;
        tx.commit().await?;
        posts::wake(app);
        info!(digest = kind, %period, late_ms = now - d.due_ms, "digest posted");
        posted += 1;
    }
    Ok(posted)
}

fn line(text: &mut Text, s: impl Into<Span>) {
    text.push("\n");
    text.push(s);
}

fn untrusted(s: &str, max: usize) -> String {
    chat::neutralize(&chat::truncate(s, max))
}

/// The morning health check.
pub async fn daily(app: &App, d: &Due) -> Result<ChatMessage, StoreError> {
    let mut text = Text::new().with(format!(
        "☀️ **Morning health check** · {}",
        d.date.format("%a %-d %b %Y")
    ));
    line(&mut text, "**Services**");
    match tokio::time::timeout(HEALTH_TIMEOUT, app.health(None)).await {
        Ok(Ok(report)) if !report.services.is_empty() => {
            for s in report.services.iter().take(3 * LIST) {
                line(
                    &mut text,
                    format!(
                        "{} {} · {}",
                        s.state.emoji(),
                        untrusted(&s.name, 60),
                        s.state.as_str()
                    ),
                );
            }
            if report.services.len() > 3 * LIST {
                line(
                    &mut text,
                    format!("… and {} more", report.services.len() - 3 * LIST),
                );
            }
        }
        Ok(Ok(_)) => line(&mut text, "No services are configured."),
        Ok(Err(_)) | Err(_) => line(&mut text, "The health check did not answer in time."),
    }
    let incidents = crate::store::incidents::list_open(&app.store).await?;
    if incidents.is_empty() {
        line(&mut text, "**No open incidents.**");
    } else {
        line(
            &mut text,
            format!("**Open incidents ({})**", incidents.len()),
        );
        for i in incidents.iter().take(LIST) {
            line(
                &mut text,
                format!(
                    "• {} {} {} · {}",
                    i.id,
                    i.severity,
                    untrusted(&i.title, 80),
                    i.status.title()
                ),
            );
        }
    }
    let firing = crate::store::alerts::firing(&app.store).await?;
    if firing.is_empty() {
        line(&mut text, "**No alerts firing.**");
    } else {
        line(&mut text, format!("**Alerts firing ({})**", firing.len()));
        for a in firing.iter().take(LIST) {
            let service = if a.service.is_empty() {
                String::new()
            } else {
                format!(" · {}", untrusted(&a.service, 40))
            };
            line(
                &mut text,
                format!("• {} {}{service}", a.severity, untrusted(&a.name, 80)),
            );
        }
    }
    let day_start = local_to_ms(app.maintenance.tz, d.date.and_time(NaiveTime::MIN));
    let day_end = d
        .date
        .succ_opt()
        .map(|n| local_to_ms(app.maintenance.tz, n.and_time(NaiveTime::MIN)))
        .unwrap_or(day_start + DAY_MS);
    let windows: Vec<_> = crate::store::maintenance::list(&app.store)
        .await?
        .into_iter()
        .filter(|w| matches!(w.state, WindowState::Scheduled | WindowState::Active))
        .filter(|w| w.starts_ms < day_end && w.ends_ms > day_start)
        .collect();
    if windows.is_empty() {
        line(&mut text, "**No maintenance today.**");
    } else {
        line(
            &mut text,
            format!("**Maintenance today ({})**", windows.len()),
        );
        for w in windows.iter().take(LIST) {
            let services = if w.all_services {
                "all services".to_string()
            } else {
                untrusted(&w.services.join(", "), 80)
            };
            line(
                &mut text,
                format!(
                    "• {}–{} {} · {services} · {}",
                    local_hhmm(app.maintenance.tz, w.starts_ms),
                    local_hhmm(app.maintenance.tz, w.ends_ms),
                    app.maintenance.tz,
                    untrusted(&w.reason, 80)
                ),
            );
        }
    }
    Ok(ChatMessage::text(text))
}

fn local_hhmm(tz: Tz, ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&tz).format("%H:%M").to_string())
        .unwrap_or_default()
}

/// The week's review: the seven days before its time.
pub async fn weekly(app: &App, d: &Due) -> Result<ChatMessage, StoreError> {
    let (from, to) = (d.due_ms - 7 * DAY_MS, d.due_ms);
    let first = local_date(app.maintenance.tz, from);
    let last = d.date.pred_opt().unwrap_or(d.date);
    let mut text = Text::new().with(format!(
        "📅 **The week in review** · {} – {}",
        first.format("%a %-d %b"),
        last.format("%a %-d %b %Y")
    ));
    let stats = crate::incidents::stats::between(app, from, to).await?;
    let total: usize = stats.iter().map(|s| s.opened).sum();
    line(&mut text, format!("**Incidents: {total} opened**"));
    if total > 0 {
        for l in crate::incidents::stats::render_lines(&stats) {
            line(&mut text, l);
        }
    }
    let noisy = db::noisiest(&app.store, from, to, LIST as i64).await?;
    if noisy.is_empty() {
        line(&mut text, "**No alerts this week.**");
    } else {
        line(&mut text, "**Noisiest alerts**");
        for (k, n) in noisy.iter().enumerate() {
            line(
                &mut text,
                format!(
                    "{}. {} · {} notification{} ({} alert{})",
                    k + 1,
                    untrusted(&n.name, 80),
                    n.notifications,
                    if n.notifications == 1 { "" } else { "s" },
                    n.alerts,
                    if n.alerts == 1 { "" } else { "s" }
                ),
            );
        }
    }
    if !app.oncall.schedules.is_empty() {
        line(&mut text, "**On call**");
        for s in &app.oncall.schedules {
            text.push(format!("\n{}: ", untrusted(s.name.as_str(), 40)));
            let overrides: Vec<_> = crate::store::oncall::active(&app.store, s.name.as_str(), from)
                .await?
                .iter()
                .map(|r| crate::oncall::resolve::Override {
                    id: r.id,
                    member: r.member_id,
                    start_ms: r.starts_ms,
                    end_ms: r.ends_ms,
                })
                .collect();
            let mut members: Vec<u64> = Vec::new();
            for seg in crate::oncall::resolve::segments(s, &overrides, from, to) {
                if let Some(m) = seg.member.filter(|m| !members.contains(m)) {
                    members.push(m);
                }
            }
            if members.is_empty() {
                text.push("nobody");
            }
            for (k, m) in members.iter().enumerate() {
                if k > 0 {
                    text.push(", ");
                }
                // Shown by name; a digest pings nobody.
                text.push(Span::User(*m));
            }
        }
    }
    Ok(ChatMessage::text(text))
}

#[cfg(test)]
mod tests;
