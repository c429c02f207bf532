//! From stored alerts to Discord: the grouper renders each due group into messages
//! that fit Discord's limits and queues them in the outbox; the sender delivers the
//! outbox, one channel at a time in order, editing a group's messages in place.
//!
//! Everything is in the database before it is sent, so a crash loses nothing; a
//! create carries a nonce Discord enforces, so a resend never shows a duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;
use tracing::{error, info, warn};

use super::route::Router;
use super::{Alert, AlertStatus};
use crate::app::App;
use crate::chat::{self, limits, Button, ButtonStyle, ChatError, ChatMessage, Embed, TextFile};
use crate::incidents::{hhmm, Severity};
use crate::store::{Store, StoreError};

/// What a message's embeds may hold together, with room for titles and footers.
const MESSAGE_BUDGET: usize = limits::EMBED_TOTAL - 100;

struct Line {
    firing: bool,
    text: String,
    /// The same, as plain text for the attached full list.
    plain: String,
}

fn color(severity: Severity, firing: bool) -> u32 {
    match (firing, severity) {
        (false, _) => chat::GREEN,
        (true, Severity::P1 | Severity::P2) => chat::RED,
        (true, _) => chat::YELLOW,
    }
}

/// A group's messages: the first with the title, the rest continuing it; every one
/// within Discord's embed and message limits.
/// The buttons under a firing group's first message, for a responder on a phone.
pub fn buttons(group_id: i64, logs: bool) -> Vec<Button> {
    let b = |verb: &str, label: &str, style| Button {
        custom_id: format!("{PREFIX}:{verb}:{group_id}"),
        label: label.into(),
        style,
    };
    let mut v = vec![
        b("ack", "Acknowledge", ButtonStyle::Primary),
        b("silence", "Silence 1 h", ButtonStyle::Secondary),
        b("incident", "Open incident", ButtonStyle::Danger),
    ];
    if logs {
        v.push(b("logs", "Logs", ButtonStyle::Secondary));
    }
    v
}

/// The `custom_id` prefix of alert message buttons.
pub const PREFIX: &str = "alerts";

/// How a group is shown besides its alerts.
pub struct Look {
    pub ping: Option<u64>,
    pub buttons: Vec<Button>,
    /// "👀 Acknowledged by bob at 14:05 UTC".
    pub note: Option<String>,
}

/// A group's messages from all its lines: past `limit`, the first `limit` lines,
/// the counts, and the full list attached to the first message.
fn render_group(
    title: &str,
    severity: Severity,
    mut lines: Vec<Line>,
    limit: usize,
    look: &Look,
) -> Vec<ChatMessage> {
    let firing = lines.iter().filter(|l| l.firing).count();
    let counts = (firing, lines.len() - firing);
    let file = (lines.len() > limit).then(|| TextFile {
        name: format!("{}-alerts.txt", file_slug(title)),
        content: lines.iter().map(|l| format!("{}\n", l.plain)).collect(),
    });
    let hidden = lines.len().saturating_sub(limit);
    lines.truncate(limit);
    let mut messages = render(title, severity, &lines, hidden, counts, look);
    if let (Some(f), Some(first)) = (file, messages.first_mut()) {
        first.attachment = Some(f);
    }
    messages
}

fn file_slug(title: &str) -> String {
    let s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    chat::truncate(if s.is_empty() { "group" } else { &s }, 60)
}

fn render(
    title: &str,
    severity: Severity,
    lines: &[Line],
    hidden: usize,
    (firing, resolved): (usize, usize),
    look: &Look,
) -> Vec<ChatMessage> {
    let head = if firing > 0 {
        format!(
            "🔥 {severity} FIRING · {} ({firing}{})",
            chat::neutralize(title),
            if resolved > 0 {
                format!(", {resolved} resolved")
            } else {
                String::new()
            }
        )
    } else {
        format!("✅ RESOLVED · {} ({resolved})", chat::neutralize(title))
    };
    let mut all: Vec<String> = lines.iter().map(|l| chat::truncate(&l.text, 500)).collect();
    if hidden > 0 {
        all.push(format!("… and {hidden} more in the attached list"));
    }
    // Fill each message up to Discord's 6,000 characters across up to 10 embeds (each
    // description at most 4,096): as few messages, and so requests, as the limits
    // allow.
    let title_len = chat::chars(&head);
    let mut messages: Vec<Vec<String>> = vec![Vec::new()];
    let mut current = String::new();
    let mut used = title_len; // characters the current message holds already
    for l in all {
        let room = limits::EMBED_DESCRIPTION.min(MESSAGE_BUDGET.saturating_sub(used));
        let need = chat::chars(&l) + usize::from(!current.is_empty());
        if need > room.saturating_sub(chat::chars(&current)) {
            if !current.is_empty() {
                used += chat::chars(&current);
                if let Some(m) = messages.last_mut() {
                    m.push(std::mem::take(&mut current));
                }
            }
            let full = messages.last().is_some_and(|m| m.len() >= limits::EMBEDS);
            let left = MESSAGE_BUDGET.saturating_sub(used);
            if full || left < chat::chars(&l) + 1 {
                messages.push(Vec::new());
                used = 0;
            }
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&l);
    }
    if let Some(m) = messages.last_mut() {
        if !current.is_empty() || m.is_empty() {
            m.push(current);
        }
    }
    let total: usize = messages.iter().map(Vec::len).sum();
    let mut index = 0;
    let messages: Vec<Vec<Embed>> = messages
        .into_iter()
        .map(|descriptions| {
            descriptions
                .into_iter()
                .map(|d| {
                    index += 1;
                    Embed {
                        title: if index == 1 {
                            head.clone()
                        } else {
                            String::new()
                        },
                        description: d,
                        color: color(severity, firing > 0),
                        // Short, and counted in the budget's margin.
                        footer: match (&look.note, total > 1 && index == total) {
                            (Some(n), _) if index == 1 => chat::neutralize(n),
                            (_, true) => format!("{total} parts"),
                            _ => String::new(),
                        },
                        ..Default::default()
                    }
                    .fit()
                })
                .collect()
        })
        .collect();
    messages
        .into_iter()
        .enumerate()
        .map(|(i, embeds)| {
            let mut m = ChatMessage {
                embeds,
                // Low severities inform without waking phones.
                silent: matches!(severity, Severity::P3 | Severity::P4),
                ..Default::default()
            };
            if let (0, Some(role), true) = (i, look.ping, firing > 0) {
                m.content = format!("<@&{role}>");
                m.ping_roles.push(role);
            }
            if i == 0 && firing > 0 {
                m.buttons = look.buttons.clone();
            }
            m
        })
        .collect()
}

/// One alert's line: who, what, since when.
fn line(a: &Alert, first_ms: i64, resolved_ms: Option<i64>) -> Line {
    let who = ["service", "instance", "host"]
        .iter()
        .find_map(|k| a.label(k).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| a.name());
    let plain = match a.status {
        AlertStatus::Firing => format!(
            "FIRING    {who}  {}  since {}",
            a.summary(),
            crate::incidents::date_time(first_ms)
        ),
        AlertStatus::Resolved => format!(
            "RESOLVED  {who}  {}  at {}",
            a.summary(),
            resolved_ms
                .map(crate::incidents::date_time)
                .unwrap_or_default()
        ),
    };
    let (who, what) = (chat::neutralize(who), chat::neutralize(a.summary()));
    match a.status {
        AlertStatus::Firing => Line {
            firing: true,
            text: format!("🔴 **{who}** {what} · since {}", hhmm(first_ms)),
            plain,
        },
        AlertStatus::Resolved => Line {
            firing: false,
            text: format!(
                "✅ **{who}** {what} · resolved {}",
                resolved_ms.map(hhmm).unwrap_or_default()
            ),
            plain,
        },
    }
}

/// What a notification would post, for `klaxon alerts test`: per group, the route
/// that matched and the exact messages of a new group made of these alerts.
#[derive(Debug, Clone)]
pub struct Preview {
    pub route: Option<usize>,
    pub channel: Option<u64>,
    pub severity: Severity,
    pub page: bool,
    pub group_key: String,
    pub messages: Vec<ChatMessage>,
}

pub fn preview(
    router: &Router,
    default_channel: Option<u64>,
    on_call_role: Option<u64>,
    alerts: &[Alert],
    now_ms: i64,
) -> Vec<Preview> {
    let mut groups: Vec<(Preview, String, Vec<Line>)> = Vec::new();
    for a in alerts {
        let routed = router.route(a);
        let (key, title) = router.group(a, &routed);
        let l = line(a, a.starts_ms.unwrap_or(now_ms), Some(now_ms));
        match groups.iter_mut().find(|(p, _, _)| p.group_key == key) {
            Some((_, _, lines)) => lines.push(l),
            None => groups.push((
                Preview {
                    route: routed.route,
                    channel: routed.channel.or(default_channel),
                    severity: routed.severity,
                    page: routed.page,
                    group_key: key,
                    messages: Vec::new(),
                },
                title,
                vec![l],
            )),
        }
    }
    groups
        .into_iter()
        .map(|(mut p, title, mut lines)| {
            // Firing first, as the grouper orders them.
            lines.sort_by_key(|l| !l.firing);
            let look = Look {
                ping: on_call_role.filter(|_| p.page),
                buttons: buttons(0, false),
                note: None,
            };
            p.messages = render_group(
                &title,
                p.severity,
                lines,
                router.config.summarize_over,
                &look,
            );
            p
        })
        .collect()
}

/// Renders every due group into the outbox. Returns how many groups it rendered.
pub async fn flush_due(app: &App, now_ms: i64) -> Result<usize, StoreError> {
    let store = &app.store;
    let due = sqlx::query(
        "SELECT id, channel_id, severity, page, title, message_ids, generation, acked_by, \
         acked_ms FROM alert_groups \
         WHERE due_ms IS NOT NULL AND due_ms <= $1 ORDER BY severity, due_ms, id LIMIT 200",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    let mut n = 0;
    for g in &due {
        let id: i64 = g.try_get("id")?;
        let severity: String = g.try_get("severity")?;
        let severity: Severity = severity.parse().unwrap_or(Severity::P3);
        let page: i64 = g.try_get("page")?;
        let title: String = g.try_get("title")?;
        let channel: i64 = g.try_get("channel_id")?;
        let ids: String = g.try_get("message_ids")?;
        let generation: i64 = g.try_get("generation")?;
        let alerts = sqlx::query(
            "SELECT status, service, name, annotations, labels, first_seen_ms, resolved_ms \
             FROM alerts WHERE group_id = $1 ORDER BY status, first_seen_ms, id",
        )
        .bind(id)
        .fetch_all(store.pool())
        .await?;
        let mut lines = Vec::new();
        for r in &alerts {
            let alert = super::db::from_row(r)?;
            lines.push(line(
                &alert,
                r.try_get("first_seen_ms")?,
                r.try_get("resolved_ms")?,
            ));
        }
        let any_firing = lines.iter().any(|l| l.firing);
        let acked_by: Option<String> = g.try_get("acked_by")?;
        let acked_ms: Option<i64> = g.try_get("acked_ms")?;
        let service = group_service(store, id).await?;
        let logs = service
            .as_deref()
            .and_then(|s| app.service(s).ok())
            .is_some_and(|s| s.container.is_some());
        let look = Look {
            ping: (page != 0).then_some(app.incidents.on_call_role).flatten(),
            buttons: buttons(id, logs),
            note: acked_by.map(|by| {
                format!(
                    "👀 Acknowledged by {by} at {}",
                    acked_ms.map(hhmm).unwrap_or_default()
                )
            }),
        };
        let mut messages = render_group(
            &title,
            severity,
            lines,
            app.alerts.config.summarize_over,
            &look,
        );
        // Messages the group had beyond what it needs now: say so, rather than
        // leave stale alerts on screen.
        let had = ids.split(',').filter(|s| !s.is_empty()).count();
        for _ in messages.len()..had {
            messages.push(ChatMessage::text("⤴️ Merged into the message above."));
        }
        let mut tx = store.begin_write().await?;
        for (part, m) in messages.iter().enumerate() {
            let mut m = m.clone();
            m.nonce = Some(chat::truncate(&format!("k{id}g{generation}p{part}"), 25));
            let body = serde_json::to_string(&m).unwrap_or_default();
            // A part that reads as it already does (or will) costs no request.
            let last: Option<String> = sqlx::query(
                "SELECT body FROM outbox WHERE group_id = $1 AND part = $2 \
                 AND state IN ('pending', 'sent') ORDER BY id DESC LIMIT 1",
            )
            .bind(id)
            .bind(part as i64)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("body"))
            .transpose()?;
            if last.as_deref() == Some(body.as_str()) {
                continue;
            }
            sqlx::query(
                "INSERT INTO outbox (group_id, part, channel_id, body, nonce, priority, \
                 created_ms, next_try_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
            )
            .bind(id)
            .bind(part as i64)
            .bind(channel)
            .bind(body)
            .bind(m.nonce.clone().unwrap_or_default())
            .bind(severity_rank(severity))
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE alert_groups SET due_ms = NULL, last_sent_ms = $1, status = $2 WHERE id = $3",
        )
        .bind(now_ms)
        .bind(if any_firing { "firing" } else { "resolved" })
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        n += 1;
    }
    Ok(n)
}

/// Re-announces groups still firing and not acknowledged after `repeat_interval`:
/// a short new message (an edit notifies nobody). Each is claimed in the database
/// first, so replicas do not both send it.
pub async fn repeat_due(app: &App, now_ms: i64) -> Result<usize, StoreError> {
    let every = app.alerts.config.repeat_interval_secs as i64 * 1_000;
    if every == 0 {
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT id, channel_id, severity, page, title, created_ms, repeat_ms FROM alert_groups \
         WHERE status = 'firing' AND acked_by IS NULL AND message_ids <> '' \
         AND COALESCE(repeat_ms, created_ms) <= $1 ORDER BY id LIMIT 50",
    )
    .bind(now_ms - every)
    .fetch_all(app.store.pool())
    .await?;
    let mut sent = 0;
    for g in &rows {
        let id: i64 = g.try_get("id")?;
        let was: Option<i64> = g.try_get("repeat_ms")?;
        let claimed = sqlx::query(
            "UPDATE alert_groups SET repeat_ms = $1 WHERE id = $2 \
             AND (repeat_ms = $3 OR (repeat_ms IS NULL AND $4 = 0))",
        )
        .bind(now_ms)
        .bind(id)
        .bind(was.unwrap_or(0))
        .bind(i64::from(was.is_some()))
        .execute(app.store.pool())
        .await?
        .rows_affected();
        if claimed == 0 {
            continue;
        }
        // Planned work: a group whose firing alerts all belong to services in a
        // maintenance window is not announced again (it comes due after the window).
        let services: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT service FROM alerts WHERE group_id = $1 AND status = 'firing'",
        )
        .bind(id)
        .fetch_all(app.store.pool())
        .await?;
        if !services.is_empty() {
            let windows = crate::maintenance::in_force(&app.store, now_ms).await?;
            let held = services.iter().all(|s| {
                windows
                    .iter()
                    .any(|w| w.services.iter().any(|x| x.eq_ignore_ascii_case(s)))
            });
            if held {
                continue;
            }
        }
        let severity: Severity = g
            .try_get::<String, _>("severity")?
            .parse()
            .unwrap_or(Severity::P3);
        let created: i64 = g.try_get("created_ms")?;
        let firing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM alerts WHERE group_id = $1 AND status = 'firing'",
        )
        .bind(id)
        .fetch_one(app.store.pool())
        .await?;
        let mut m = ChatMessage::text(format!(
            "🔁 Still firing after {}, not acknowledged: **{}** ({firing}) — its message above has the details and buttons.",
            crate::incidents::duration_text(now_ms - created),
            chat::neutralize(&g.try_get::<String, _>("title")?)
        ));
        m.silent = matches!(severity, Severity::P3 | Severity::P4);
        if g.try_get::<i64, _>("page")? != 0 {
            if let Some(role) = app.incidents.on_call_role {
                m.content = chat::truncate(&format!("<@&{role}> {}", m.content), limits::CONTENT);
                m.ping_roles.push(role);
            }
        }
        m.buttons = buttons(id, false);
        m.buttons.truncate(1); // Acknowledge only: the rest is on the group's message
        let channel = g.try_get::<i64, _>("channel_id")? as u64;
        match app.chat.send(channel, m).await {
            Ok(_) => sent += 1,
            Err(e) => warn!(error = %e, group = id, "repeat notification not sent"),
        }
    }
    Ok(sent)
}

/// The service a group's alerts are about, when they name one.
pub async fn group_service(store: &Store, group_id: i64) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT service FROM alerts WHERE group_id = $1 AND service <> '' ORDER BY id LIMIT 1",
    )
    .bind(group_id)
    .fetch_optional(store.pool())
    .await?
    .map(|r| r.try_get::<String, _>("service"))
    .transpose()?)
}

/// Acknowledge button: records who and shows it on the message (rendered again now).
pub async fn acknowledge(
    store: &Store,
    group_id: i64,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE alert_groups SET acked_by = $1, acked_ms = $2, due_ms = $3 WHERE id = $4",
    )
    .bind(by)
    .bind(now_ms)
    .bind(now_ms)
    .bind(group_id)
    .execute(store.pool())
    .await?
    .rows_affected()
        > 0)
}

/// A group's identity as silence matchers: its grouping labels, each with its
/// exact value (stored as structured matchers when the group was created). `None`
/// when there is no such group; no matchers for a group made by an older Klaxon
/// whose key cannot be read unambiguously.
pub async fn group_matchers(
    store: &Store,
    group_id: i64,
) -> Result<Option<(String, Vec<super::silence::Matcher>)>, StoreError> {
    let Some(r) = sqlx::query("SELECT group_key, title, matchers FROM alert_groups WHERE id = $1")
        .bind(group_id)
        .fetch_optional(store.pool())
        .await?
    else {
        return Ok(None);
    };
    let title: String = r.try_get("title")?;
    let stored: Option<String> = r.try_get("matchers")?;
    let matchers = match stored {
        Some(json) => serde_json::from_str(&json).unwrap_or_default(),
        None => legacy_matchers(&r.try_get::<String, _>("group_key")?),
    };
    Ok(Some((title, matchers)))
}

/// Matchers from a group key written before groups stored their matchers: only
/// when every part reads one way (no value held `|` or `=`).
fn legacy_matchers(key: &str) -> Vec<super::silence::Matcher> {
    let mut out = Vec::new();
    for part in key.split('|').skip(1) {
        match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('=') => {
                out.push(super::silence::Matcher {
                    label: k.to_string(),
                    op: super::silence::Op::Equal,
                    value: v.to_string(),
                })
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// A group's severity and the summaries of its firing alerts (Open incident).
pub async fn group_firing(
    store: &Store,
    group_id: i64,
) -> Result<(Severity, Vec<Alert>), StoreError> {
    let sev: String = sqlx::query("SELECT severity FROM alert_groups WHERE id = $1")
        .bind(group_id)
        .fetch_optional(store.pool())
        .await?
        .map(|r| r.try_get::<String, _>("severity"))
        .transpose()?
        .unwrap_or_default();
    let rows = sqlx::query(
        "SELECT source, fingerprint, status, labels, annotations FROM alerts \
         WHERE group_id = $1 AND status = 'firing' ORDER BY id",
    )
    .bind(group_id)
    .fetch_all(store.pool())
    .await?;
    let out = rows
        .iter()
        .map(super::db::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sev.parse().unwrap_or(Severity::P3), out))
}

fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::P1 => 1,
        Severity::P2 => 2,
        Severity::P3 => 3,
        Severity::P4 => 4,
    }
}

async fn mark(
    store: &Store,
    id: i64,
    state: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET state = $1, detail = $2, sent_ms = $3 WHERE id = $4")
        .bind(state)
        .bind(detail)
        .bind(now_ms)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Creates per channel per window that are not P1: one slot of Discord's 5 per 5 s
/// stays free, so a P1 goes out within about a second even behind a burst.
const NON_P1_PER_WINDOW: usize = 4;
const CHANNEL_WINDOW: Duration = Duration::from_secs(5);

type Recent = Arc<Mutex<HashMap<u64, VecDeque<Instant>>>>;

/// Delivers the outbox: one task per channel with something due, each sending its
/// channel's messages in priority order (re-read after every send, so a P1 that
/// arrives mid-burst goes next), channels independent of one another.
#[derive(Default)]
pub struct Sender {
    running: HashMap<u64, tokio::task::JoinHandle<()>>,
    recent: Recent,
}

impl Sender {
    /// Starts a task for every channel with due messages and none running.
    pub async fn tick(&mut self, app: &Arc<App>) -> Result<(), StoreError> {
        self.running.retain(|_, t| !t.is_finished());
        let rows = sqlx::query(
            "SELECT DISTINCT channel_id FROM outbox WHERE state = 'pending' AND next_try_ms <= $1",
        )
        .bind(app.clock.now_ms())
        .fetch_all(app.store.pool())
        .await?;
        for r in &rows {
            let channel = r.try_get::<i64, _>("channel_id")? as u64;
            if self.running.contains_key(&channel) {
                continue;
            }
            let (app, recent) = (Arc::clone(app), Arc::clone(&self.recent));
            let task = tokio::spawn(async move {
                if let Err(e) = deliver_channel(&app, channel, &recent).await {
                    warn!(error = %e, channel, "alert delivery stopped; retrying");
                }
            });
            self.running.insert(channel, task);
        }
        Ok(())
    }

    /// Waits for the running channel tasks (shutdown, tests).
    /// Cancelled (a shutdown's time is up), the tasks still being waited for stay
    /// here, so that dropping the sender aborts them rather than detaching them.
    pub async fn drain(&mut self) {
        for t in self.running.values_mut() {
            if !t.is_finished() {
                let _ = t.await;
            }
        }
        self.running.clear();
    }
}

/// A sender that goes away (the leader stepped down, the worker was stopped) takes
/// its channel tasks with it: another replica may be sending already.
impl Drop for Sender {
    fn drop(&mut self) {
        for (_, t) in self.running.drain() {
            t.abort();
        }
    }
}

/// What one channel task did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub superseded: usize,
    pub retrying: usize,
    pub parked: usize,
}

async fn deliver_channel(
    app: &App,
    channel: u64,
    recent: &Recent,
) -> Result<Delivered, StoreError> {
    let store = &app.store;
    let mut out = Delivered::default();
    loop {
        if app.chat_unauthorized.load(Ordering::Relaxed) {
            break; // kept pending: delivered after a restart with a good token
        }
        let now_ms = app.clock.now_ms();
        let Some(r) = sqlx::query(
            "SELECT id, group_id, part, body, attempts, priority FROM outbox WHERE channel_id = $1 \
             AND state = 'pending' AND next_try_ms <= $2 ORDER BY priority, id LIMIT 1",
        )
        .bind(channel as i64)
        .bind(now_ms)
        .fetch_optional(store.pool())
        .await?
        else {
            break;
        };
        let id: i64 = r.try_get("id")?;
        let group_id: i64 = r.try_get("group_id")?;
        let part: i64 = r.try_get("part")?;
        let attempts: i64 = r.try_get("attempts")?;
        let priority: i64 = r.try_get("priority")?;
        // Only the newest body of a message is worth sending.
        let newer = sqlx::query(
            "SELECT id FROM outbox WHERE group_id = $1 AND part = $2 AND state = 'pending' \
             AND id > $3 LIMIT 1",
        )
        .bind(group_id)
        .bind(part)
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
        if newer.is_some() {
            mark(store, id, "superseded", "", now_ms).await?;
            out.superseded += 1;
            continue;
        }
        let message: ChatMessage = match serde_json::from_str(&r.try_get::<String, _>("body")?) {
            Ok(m) => m,
            Err(e) => {
                mark(
                    store,
                    id,
                    "parked",
                    &format!("unreadable body: {e}"),
                    now_ms,
                )
                .await?;
                out.parked += 1;
                continue;
            }
        };
        let ids: String = sqlx::query("SELECT message_ids FROM alert_groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(store.pool())
            .await?
            .map(|r| r.try_get::<String, _>("message_ids"))
            .transpose()?
            .unwrap_or_default();
        let ids: Vec<u64> = ids.split(',').filter_map(|s| s.parse().ok()).collect();
        let index = part as usize;
        if index > ids.len() {
            // An earlier part is not created yet (it is retrying): wait for it.
            tokio::time::sleep(Duration::from_millis(250)).await;
            break;
        }
        let create = index == ids.len();
        if create && priority > 1 {
            let wait = {
                let mut map = recent.lock().unwrap_or_else(|p| p.into_inner());
                let q = map.entry(channel).or_default();
                while q.front().is_some_and(|t| t.elapsed() >= CHANNEL_WINDOW) {
                    q.pop_front();
                }
                (q.len() >= NON_P1_PER_WINDOW)
                    .then(|| {
                        q.front()
                            .map(|t| CHANNEL_WINDOW.saturating_sub(t.elapsed()))
                    })
                    .flatten()
            };
            if let Some(w) = wait {
                // Short naps: a P1 arriving meanwhile is picked up first.
                tokio::time::sleep(w.min(Duration::from_millis(200))).await;
                continue;
            }
        }
        let result = match ids.get(index) {
            Some(existing) => app
                .chat
                .edit(channel, *existing, message)
                .await
                .map(|_| None),
            None => app.chat.send(channel, message).await.map(Some),
        };
        match result {
            Ok(created) => {
                let mut tx = store.begin_write().await?;
                if let Some(new_id) = created {
                    recent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(channel)
                        .or_default()
                        .push_back(Instant::now());
                    let mut ids = ids.clone();
                    ids.push(new_id);
                    let joined: Vec<String> = ids.iter().map(u64::to_string).collect();
                    sqlx::query("UPDATE alert_groups SET message_ids = $1 WHERE id = $2")
                        .bind(joined.join(","))
                        .bind(group_id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE outbox SET state = 'sent', sent_ms = $1 WHERE id = $2")
                    .bind(now_ms)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                out.sent += 1;
            }
            Err(ChatError::UnknownChannel) => {
                // The channel is gone or hidden: park its messages and say so; the rest
                // of this channel's queue would only fail the same way.
                warn!(
                    channel,
                    "alert channel unknown to Discord; its messages are parked"
                );
                sqlx::query(
                    "UPDATE outbox SET state = 'parked', detail = 'unknown channel' \
                     WHERE channel_id = $1 AND state = 'pending'",
                )
                .bind(channel as i64)
                .execute(store.pool())
                .await?;
                out.parked += 1;
                break;
            }
            Err(ChatError::Unauthorized) => {
                error!("Discord refused Klaxon's token (401): alert delivery stopped; nothing is lost, restart Klaxon with a valid token");
                app.chat_unauthorized.store(true, Ordering::Relaxed);
                break;
            }
            Err(ChatError::Rejected(why)) => {
                warn!(channel, outbox = id, %why, "Discord refused an alert message; parked");
                mark(store, id, "parked", &why, now_ms).await?;
                out.parked += 1;
            }
            Err(ChatError::Unavailable(why)) => {
                // Backs off 1 s, 2 s, 4 s ... up to a minute, for the whole channel: a
                // Discord that is down is down for every message, and a new one must
                // not start its own back-off from a second (a burst of attempts). The
                // channel's order is kept by stopping here.
                let worst: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(attempts), 0) FROM outbox \
                     WHERE channel_id = $1 AND state = 'pending'",
                )
                .bind(channel as i64)
                .fetch_one(store.pool())
                .await?;
                let wait = (1_000_i64 << worst.max(attempts).clamp(0, 6)).min(60_000);
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, next_try_ms = $1, detail = $2 \
                     WHERE id = $3",
                )
                .bind(now_ms + wait)
                .bind(chat::truncate(&why, 300))
                .bind(id)
                .execute(store.pool())
                .await?;
                sqlx::query(
                    "UPDATE outbox SET next_try_ms = CASE WHEN next_try_ms < $1 THEN $2 \
                     ELSE next_try_ms END WHERE channel_id = $3 AND state = 'pending'",
                )
                .bind(now_ms + wait)
                .bind(now_ms + wait)
                .bind(channel as i64)
                .execute(store.pool())
                .await?;
                info!(channel, outbox = id, %why, "alert message will be retried");
                out.retrying += 1;
                break;
            }
        }
    }
    if out.sent + out.parked + out.retrying > 0 {
        info!(
            channel,
            sent = out.sent,
            superseded = out.superseded,
            retrying = out.retrying,
            parked = out.parked,
            "alert messages"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, len: usize) -> Vec<Line> {
        (0..n)
            .map(|i| Line {
                firing: i % 3 != 1,
                text: format!("{i} {}", "x".repeat(len)),
                plain: String::new(),
            })
            .collect()
    }

    #[test]
    fn every_message_fits_discord() {
        for (n, len) in [(1, 10), (40, 100), (200, 400), (200, 3000)] {
            let look = Look {
                ping: Some(7),
                buttons: buttons(1, true),
                note: None,
            };
            let ls = lines(n, len);
            let f = ls.iter().filter(|l| l.firing).count();
            let msgs = render("HighLatency · api", Severity::P2, &ls, 0, (f, n - f), &look);
            for m in &msgs {
                assert!(m.embeds.len() <= limits::EMBEDS);
                let total: usize = m.embeds.iter().map(Embed::size).sum();
                assert!(total <= limits::EMBED_TOTAL, "{n}x{len}: {total}");
                assert!(m
                    .embeds
                    .iter()
                    .all(|e| chat::chars(&e.description) <= limits::EMBED_DESCRIPTION));
            }
            let shown: usize = msgs
                .iter()
                .flat_map(|m| &m.embeds)
                .map(|e| e.description.lines().count())
                .sum();
            assert_eq!(shown, n, "every line shown once");
            assert_eq!(msgs[0].ping_roles, [7], "only the first message pages");
            assert!(msgs.iter().skip(1).all(|m| m.ping_roles.is_empty()));
            assert_eq!(
                msgs[0].buttons.len(),
                4,
                "buttons on the first message only"
            );
            assert!(msgs.iter().skip(1).all(|m| m.buttons.is_empty()));
        }
    }

    #[test]
    fn packing_is_close_to_the_minimum() {
        let ls = lines(200, 400);
        let chars: usize = ls.iter().map(|l| chat::chars(&l.text) + 1).sum();
        let look = Look {
            ping: None,
            buttons: Vec::new(),
            note: None,
        };
        let f = ls.iter().filter(|l| l.firing).count();
        let msgs = render("t", Severity::P3, &ls, 0, (f, ls.len() - f), &look);
        let minimum = chars.div_ceil(limits::EMBED_TOTAL);
        assert!(
            msgs.len() as f64 <= minimum as f64 * 1.25 + 1.0,
            "{} messages for a minimum of {minimum}",
            msgs.len()
        );
        assert!(msgs.iter().all(|m| m.silent), "P3 does not buzz phones");
    }
}
