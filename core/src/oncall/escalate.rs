//! The escalation runtime (issue #14): a policy's steps fired on time for an
//! incident, an alert group or a page by hand, until someone acknowledges.
//!
//! Why rows: an escalation must survive a restart and a fail-over like the
//! reminders do. Each escalation is a row (`store::escalations`) with its next step,
//! round and due time; the leader's worker ([`tick`]) fires what is due, with the App
//! clock, so the controllable clock drives it in tests.
//!
//! Firing a step is one transaction: the row moves past the step only if it is
//! still active and still at that step (an acknowledgement or a second leader makes
//! the update miss, and nothing is stored), and the step's messages are stored in
//! the posts outbox in the same transaction under keys made of (escalation, round,
//! step), which are also their nonces. So a step is sent once, whatever crashes.
//!
//! A step pages its target directly: a DM (with a link and an **Acknowledge**
//! button) and a mention in the subject's channel that pings exactly that user, or
//! a role mention, or a webhook POST ([`super::webhook`]). A DM Discord refuses
//! (50007) comes back from the posts worker to [`dm_refused`]: it is written to the
//! timeline and the audit log, and the next step fires at once. A target that
//! resolves to nobody fires the next step at once and says so in the channel.
//!
//! Only store modules and leaves are imported: incidents and alerts call in here
//! (start on open or first firing, stop on acknowledgement), never the reverse.

use std::time::Duration;

use tracing::{info, warn};

use crate::actor::Actor;
use crate::app::App;
use crate::audit::{AuditEntry, Outcome};
use crate::chat::{self, Button, ButtonStyle, ChatError, ChatMessage, Span, Text};
use crate::posts::{self, Kind, Post, To};
use crate::settings::oncall::{Policy, Step, Target};
use crate::store::escalations::{self as db, Advance, EscalationRow, NewEscalation};
use crate::store::incidents::record::IncidentId;
use crate::store::incidents::{self as incidents_db, EntryKind, NewEntry};
use crate::store::StoreError;

use super::OncallError;

/// The `custom_id` prefix of the DM's Acknowledge button: `oncall:ack:<escalation>`.
pub const PREFIX: &str = "oncall";
/// The longest the worker sleeps between two looks (a start or a stop wakes it).
pub const TICK: Duration = Duration::from_secs(1);
/// Escalations fired per pass.
const BATCH: i64 = 100;

/// What an escalation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Incident(IncidentId),
    /// An alert group, by id.
    Group(i64),
    /// A page by hand (`/oncall page`).
    Page,
}

impl Subject {
    fn kind(self) -> &'static str {
        match self {
            Subject::Incident(_) => "incident",
            Subject::Group(_) => "group",
            Subject::Page => "page",
        }
    }
    fn id(self) -> i64 {
        match self {
            Subject::Incident(i) => i.0,
            Subject::Group(g) => g,
            Subject::Page => 0,
        }
    }
    fn of(row: &EscalationRow) -> Subject {
        match row.subject_kind.as_str() {
            "incident" => Subject::Incident(IncidentId(row.subject_id)),
            "group" => Subject::Group(row.subject_id),
            _ => Subject::Page,
        }
    }
}

/// An escalation to start.
#[derive(Debug, Clone)]
pub struct Start {
    pub subject: Subject,
    /// Starts once per key (`incident 7`, `group 12 g0`).
    pub key: String,
    /// The policy; `None` with `target` for a page by hand.
    pub policy: Option<String>,
    pub target: Option<Target>,
    pub title: String,
    pub severity: String,
    /// Where the mentions go.
    pub channel: u64,
    /// What the DM links to.
    pub link: String,
}

/// Starts an escalation (once per key); its first step is due at once (or after
/// its `after`). Returns the new escalation's id.
pub async fn start(app: &App, s: Start) -> Result<Option<i64>, OncallError> {
    let now = app.clock.now_ms();
    let first_after = match (&s.policy, &s.target) {
        (Some(p), _) => match app.oncall.policy(p) {
            Some(p) => ms(p.steps[0].after),
            None => {
                warn!(policy = %p, "escalation policy unknown; nobody paged by it");
                return Ok(None);
            }
        },
        (None, Some(_)) => 0,
        (None, None) => return Ok(None),
    };
    let target = s.target.as_ref().map(target_text).unwrap_or_default();
    let id = db::insert(
        &app.store,
        &NewEscalation {
            start_key: &s.key,
            subject_kind: s.subject.kind(),
            subject_id: s.subject.id(),
            policy: s.policy.as_deref().unwrap_or(""),
            target: &target,
            title: &s.title,
            severity: &s.severity,
            channel_id: s.channel,
            link: &s.link,
            started_ms: now,
            next_ms: now + first_after,
        },
    )
    .await?;
    if let Some(id) = id {
        info!(
            escalation = id,
            subject = s.subject.kind(),
            subject_id = s.subject.id(),
            policy = s.policy.as_deref().unwrap_or(""),
            "escalation started"
        );
        app.escalations_wake.notify_one();
    }
    Ok(id)
}

/// The policy a paging alert group escalates with: its route's `escalation`.
pub async fn group_policy(app: &App, group: i64) -> Option<String> {
    if !app
        .alerts
        .config
        .routes
        .iter()
        .any(|r| r.escalation.is_some())
    {
        return None;
    }
    match db::group_key(&app.store, group).await {
        Ok(Some(key)) => app.alerts.escalation(&key).map(String::from),
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, group, "alert group's route not read; no escalation this time");
            None
        }
    }
}

/// Starts a paging group's policy when the group first fires (once per firing:
/// the group's generation is part of the key).
pub async fn start_group(
    app: &App,
    group: i64,
    generation: i64,
    policy: &str,
    channel: u64,
    title: &str,
    severity: &str,
) {
    let start = Start {
        subject: Subject::Group(group),
        key: format!("group {group} g{generation}"),
        policy: Some(policy.to_string()),
        target: None,
        title: title.to_string(),
        severity: severity.to_string(),
        channel,
        link: link(app, channel, None),
    };
    if let Err(e) = self::start(app, start).await {
        warn!(error = %e, group, "escalation of the alert group not started");
    }
}

/// Starts an incident's policy (on open, or on a raise to a severity that has
/// one), unless one is running for it already.
pub async fn start_incident(
    app: &App,
    incident: IncidentId,
    policy: &str,
    title: &str,
    severity: &str,
    channel: u64,
) {
    match db::of_subject(&app.store, "incident", incident.0).await {
        Ok(rows) if rows.iter().any(|r| r.state == "active") => return,
        Ok(_) => {}
        Err(e) => {
            warn!(error = %e, %incident, "escalations of the incident not read; not started");
            return;
        }
    }
    let start = Start {
        subject: Subject::Incident(incident),
        key: format!("incident {} {severity}", incident.0),
        policy: Some(policy.to_string()),
        target: None,
        title: format!("{incident} {title}"),
        severity: severity.to_string(),
        channel,
        link: link(app, channel, None),
    };
    if let Err(e) = self::start(app, start).await {
        warn!(error = %e, %incident, "escalation of the incident not started");
    }
}

/// Ends every pending step of a subject's escalations: `acked` (by someone) or
/// `stopped` (resolved, silenced). Each one ended is written to the incident's
/// timeline and the audit log. Returns how many it ended.
pub async fn stop(
    app: &App,
    subject: Subject,
    acked: bool,
    why: &str,
    by: &Actor,
) -> Result<usize, StoreError> {
    let now = app.clock.now_ms();
    let state = if acked { "acked" } else { "stopped" };
    let ended = db::stop_subject(&app.store, subject.kind(), subject.id(), state, why, now).await?;
    for e in &ended {
        record_stop(app, e, state, why, by, now).await;
    }
    Ok(ended.len())
}

/// Ends one escalation (the DM's Acknowledge button). `false`: it was over already.
pub async fn stop_one(app: &App, id: i64, why: &str, by: &Actor) -> Result<bool, StoreError> {
    let now = app.clock.now_ms();
    let Some(e) = db::get(&app.store, id).await? else {
        return Ok(false);
    };
    let done = db::stop(&app.store, id, "acked", why, now).await?;
    if done {
        record_stop(app, &e, "acked", why, by, now).await;
    }
    Ok(done)
}

async fn record_stop(app: &App, e: &EscalationRow, state: &str, why: &str, by: &Actor, now: i64) {
    info!(
        escalation = e.id,
        state,
        why,
        by = by.user_id,
        "escalation ended"
    );
    let text = format!("Escalation{} ended ({state}: {why})", policy_suffix(e));
    if let Subject::Incident(i) = Subject::of(e) {
        if let Err(err) = incidents_db::add_entry(
            &app.store,
            i,
            &NewEntry::new(EntryKind::Reminder, now, by, text.clone()),
        )
        .await
        {
            warn!(error = %err, escalation = e.id, "escalation end not on the timeline");
        }
    }
    audit(app, by, "oncall escalation", e, Outcome::Ok, text).await;
}

fn policy_suffix(e: &EscalationRow) -> String {
    if e.policy.is_empty() {
        String::new()
    } else {
        format!(" `{}`", e.policy)
    }
}

async fn audit(
    app: &App,
    by: &Actor,
    command: &str,
    e: &EscalationRow,
    outcome: Outcome,
    detail: String,
) {
    app.audit(AuditEntry {
        at_ms: app.clock.now_ms(),
        guild_id: app.guild_id,
        channel_id: Some(e.channel_id),
        user_id: by.user_id,
        user_name: by.name.clone(),
        command: command.into(),
        arguments: format!("escalation={} {}={}", e.id, e.subject_kind, e.subject_id),
        outcome,
        detail,
        duration_ms: 0,
    })
    .await;
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Schedule(n) => format!("schedule:{n}"),
        Target::User(u) => format!("user:{u}"),
        Target::Role(r) => format!("role:{r}"),
        Target::Webhook(n) => format!("webhook:{n}"),
    }
}

/// The steps an escalation runs: its policy's, or the one target of a page by hand.
/// `None`: the policy is no longer configured.
fn plan(app: &App, e: &EscalationRow) -> Option<Policy> {
    if e.policy.is_empty() {
        let target = Target::parse(&e.target).ok()?;
        return Some(Policy {
            name: crate::settings::oncall::Name::parse("page")?,
            steps: vec![Step {
                after: Duration::ZERO,
                target,
            }],
            repeat: 0,
        });
    }
    app.oncall.policy(&e.policy).cloned()
}

/// How long one run of the chain lasts before the next round starts: the last
/// step's `after` plus the first gap between steps (a one-step chain: 5 minutes).
pub fn period_ms(p: &Policy) -> i64 {
    let last = p.steps.last().map(|s| ms(s.after)).unwrap_or(0);
    let gap = match (p.steps.first(), p.steps.get(1)) {
        (Some(a), Some(b)) => ms(b.after) - ms(a.after),
        _ => 5 * 60_000,
    };
    last + gap.max(1_000)
}

/// The step after `(round, step)`, with when it is due: `None` when the chain
/// (with its repeats) is over.
pub fn next_step(p: &Policy, started_ms: i64, round: i64, step: i64) -> Option<(i64, i64, i64)> {
    let (r, s) = if (step + 1) < p.steps.len() as i64 {
        (round, step + 1)
    } else if round < i64::from(p.repeat) {
        (round + 1, 0)
    } else {
        return None;
    };
    let at = started_ms + r * period_ms(p) + ms(p.steps.get(s as usize)?.after);
    Some((r, s, at))
}

/// One pass of the worker: fires every due step, then delivers due webhook sends.
/// Returns how many steps it fired.
pub async fn tick(app: &App) -> Result<usize, OncallError> {
    let mut fired = 0;
    // Bounded: steps that fall through at once are fired in the same pass.
    for _ in 0..10 {
        let due = db::due(&app.store, app.clock.now_ms(), BATCH).await?;
        if due.is_empty() {
            break;
        }
        let mut any = false;
        for e in due {
            match fire(app, &e).await {
                Ok(true) => {
                    fired += 1;
                    any = true;
                }
                Ok(false) => {}
                Err(err) => {
                    warn!(escalation = e.id, error = %err, "escalation step not fired; retrying")
                }
            }
        }
        if !any {
            break;
        }
    }
    super::webhook::deliver_due(app).await?;
    Ok(fired)
}

/// How long the worker may sleep: until the next step is due, at most [`TICK`].
pub async fn next_pass_in(app: &App) -> Duration {
    match db::next_due_ms(&app.store).await {
        Ok(Some(due)) => {
            let ms = (due - app.clock.now_ms()).clamp(20, TICK.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        _ => TICK,
    }
}

/// Whether the subject still wants paging; `Some(why)` when the escalation is to
/// end instead (`acked` true when someone acknowledged it).
async fn over(app: &App, e: &EscalationRow) -> Result<Option<(bool, String)>, StoreError> {
    Ok(match Subject::of(e) {
        Subject::Incident(id) => match incidents_db::get(&app.store, id).await? {
            None => Some((false, "incident gone".into())),
            Some(i) if !i.is_open() => Some((false, "resolved".into())),
            Some(i) => i.acked_by.map(|by| (true, format!("acknowledged by {by}"))),
        },
        Subject::Group(g) => match db::group_state(&app.store, g).await? {
            None => Some((false, "alert group gone".into())),
            Some((_, Some(by))) => Some((true, format!("acknowledged by {by}"))),
            Some((false, None)) => Some((false, "resolved or silenced".into())),
            Some((true, None)) => None,
        },
        Subject::Page => None,
    })
}

/// Whom a step reaches, resolved when it fires.
enum Reach {
    User(u64),
    Role(u64),
    Webhook(crate::settings::oncall::Webhook),
    /// The schedule has nobody on call (or the target is gone): the name.
    Nobody(String),
}

async fn reach(app: &App, t: &Target) -> Result<Reach, OncallError> {
    Ok(match t {
        Target::User(u) => Reach::User(*u),
        Target::Role(r) => Reach::Role(*r),
        Target::Schedule(name) => match app.oncall.schedule(name.as_str()) {
            Some(s) => match super::now(app, s).await?.member {
                Some(m) => Reach::User(m),
                None => Reach::Nobody(format!("schedule `{name}`")),
            },
            None => Reach::Nobody(format!("schedule `{name}` (no longer configured)")),
        },
        Target::Webhook(name) => match app.oncall.webhook(name.as_str()) {
            Some(w) => Reach::Webhook(w.clone()),
            None => Reach::Nobody(format!("webhook `{name}` (no longer configured)")),
        },
    })
}

/// The key of a step's send: `esc<id>.<round>.<step>.<what>` (≤ 25 characters).
pub fn send_key(id: i64, round: i64, step: i64, what: &str) -> String {
    format!("esc{id}.{round}.{step}.{what}")
}

/// Reads a DM send's key back: (escalation, round, step).
pub fn read_dm_key(key: &str) -> Option<(i64, i64, i64)> {
    let rest = key.strip_prefix("esc")?.strip_suffix(".dm")?;
    let mut p = rest.split('.').map(|x| x.parse::<i64>().ok());
    Some((p.next()??, p.next()??, p.next()??))
}

fn subject_of_posts(e: &EscalationRow) -> String {
    match Subject::of(e) {
        Subject::Incident(i) => posts::incident_subject(i),
        _ => format!("escalation {}", e.id),
    }
}

/// Fires one due step. `false`: nothing was sent (ended, or another leader did it).
async fn fire(app: &App, e: &EscalationRow) -> Result<bool, OncallError> {
    let now = app.clock.now_ms();
    if let Some((acked, why)) = over(app, e).await? {
        let state = if acked { "acked" } else { "stopped" };
        if db::stop(&app.store, e.id, state, &why, now).await? {
            record_stop(app, e, state, &why, &Actor::klaxon(), now).await;
        }
        return Ok(false);
    }
    let Some(policy) = plan(app, e) else {
        db::stop(
            &app.store,
            e.id,
            "stopped",
            "policy no longer configured",
            now,
        )
        .await?;
        return Ok(false);
    };
    let Some(step) = policy.steps.get(e.step as usize) else {
        db::stop(
            &app.store,
            e.id,
            "stopped",
            "step no longer configured",
            now,
        )
        .await?;
        return Ok(false);
    };
    let reach = reach(app, &step.target).await?;
    // A group's message exists once the alert sender posted it: link to it then.
    let mut e = e.clone();
    if let Subject::Group(g) = Subject::of(&e) {
        if let Ok(Some(m)) = db::group_message(&app.store, g).await {
            e.link = link(app, e.channel_id, Some(m));
        }
    }
    let e = &e;
    let mut next = next_step(&policy, e.started_ms, e.round, e.step);
    let n = e.step + 1;
    let of = policy.steps.len();
    let label = if e.policy.is_empty() {
        "page by hand".to_string()
    } else {
        format!("`{}` step {n}/{of}", e.policy)
    };
    let title = chat::neutralize(&chat::truncate(&e.title, 120));
    let mut sends: Vec<Post> = Vec::new();
    let mut paged = None;
    let mut webhook = None;
    let timeline;
    match &reach {
        Reach::User(user) => {
            // The DM channel is opened first (the same user gives the same
            // channel); Discord away: the step stays due and is tried again.
            let dm = match app.chat.open_dm(*user).await {
                Ok(c) => Some(c),
                Err(ChatError::Unavailable(why)) => {
                    warn!(escalation = e.id, %why, "DM channel not opened; retrying");
                    return Ok(false);
                }
                Err(err) => {
                    warn!(escalation = e.id, user, error = %err, "DM channel refused; paging in the channel only");
                    // As a refused DM: the next step fires at once.
                    next = next.map(|(r, s, _)| (r, s, now));
                    None
                }
            };
            if let Some(dm) = dm {
                let mut text = Text::from(format!(
                    "🚨 **You are paged** ({label}): **{title}** ({})",
                    e.severity
                ));
                if !e.link.is_empty() {
                    text.push(format!("\n{}", e.link));
                }
                text.push("\nAcknowledge to stop the escalation.");
                let mut m = ChatMessage::text(text);
                m.buttons = vec![Button {
                    custom_id: format!("{PREFIX}:ack:{}", e.id),
                    label: "Acknowledge".into(),
                    style: ButtonStyle::Danger,
                }];
                sends.push(
                    Post::new(
                        Kind::OnCall,
                        To::Channel(dm),
                        m,
                        format!("escalation {} dm", e.id),
                    )
                    .keyed(send_key(e.id, e.round, e.step, "dm")),
                );
            }
            let m = ChatMessage {
                content: Text::from("📟 ")
                    .with(Span::User(*user))
                    .with(format!(" paged ({label}): **{title}** ({})", e.severity)),
                ping_users: vec![*user],
                ..Default::default()
            };
            sends.push(channel_post(e, m));
            paged = Some(*user);
            timeline = format!("Paged <@{user}> ({label})");
        }
        Reach::Role(role) => {
            let m = ChatMessage::text(format!(" paged ({label}): **{title}** ({})", e.severity))
                .paging(Some(*role));
            sends.push(channel_post(e, m));
            timeline = format!("Paged role {role} ({label})");
        }
        Reach::Webhook(w) => {
            let body =
                super::webhook::fill(&w.body, &e.title, &e.severity, &e.link, w.name.as_str());
            webhook = Some((w.name.to_string(), body));
            timeline = format!("Paged webhook `{}` ({label})", w.name);
        }
        Reach::Nobody(what) => {
            let then = if next.is_some() {
                "escalating to the next step now"
            } else {
                "that was the last step"
            };
            sends.push(channel_post(
                e,
                ChatMessage::text(format!(
                    "⚠️ {label} for **{title}**: {what} has nobody on call; {then}."
                )),
            ));
            next = next.map(|(r, s, _)| (r, s, now));
            timeline = format!("Nobody to page on {what} ({label}); next step at once");
        }
    }

    let mut tx = app.store.begin_write().await?;
    let moved = db::advance(
        &mut tx,
        &Advance {
            id: e.id,
            round: e.round,
            step: e.step,
            next,
            paged,
            now_ms: now,
        },
    )
    .await?;
    if !moved {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(false);
    }
    for p in &sends {
        posts::store_in(&mut tx, p, now).await?;
    }
    if let Some((name, body)) = &webhook {
        db::insert_webhook(
            &mut tx,
            &send_key(e.id, e.round, e.step, "wh"),
            name,
            body,
            now,
        )
        .await?;
    }
    if let Subject::Incident(i) = Subject::of(e) {
        db::first_page(&mut tx, i.0, now).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    posts::wake(app);
    info!(
        escalation = e.id,
        round = e.round,
        step = e.step,
        late_ms = now - e.next_ms.unwrap_or(now),
        "escalation step fired"
    );
    if let Subject::Incident(i) = Subject::of(e) {
        if let Err(err) = incidents_db::add_entry(
            &app.store,
            i,
            &NewEntry::new(EntryKind::Reminder, now, &Actor::klaxon(), timeline.clone()),
        )
        .await
        {
            warn!(error = %err, escalation = e.id, "page not on the timeline");
        }
    }
    audit(
        app,
        &Actor::klaxon(),
        "oncall page",
        e,
        Outcome::Ok,
        timeline,
    )
    .await;
    Ok(true)
}

fn channel_post(e: &EscalationRow, m: ChatMessage) -> Post {
    Post::new(
        Kind::OnCall,
        To::Channel(e.channel_id),
        m,
        subject_of_posts(e),
    )
    .keyed(send_key(e.id, e.round, e.step, "ch"))
}

/// The posts worker reports a DM Discord refused (50007, DMs closed). The channel
/// mention went out already; the refusal joins the timeline and the audit log, and
/// the next step fires at once. `key` is the DM's send key.
pub async fn dm_refused(app: &App, key: &str, why: &str) {
    let Some((id, round, step)) = read_dm_key(key) else {
        return;
    };
    let e = match db::get(&app.store, id).await {
        Ok(Some(e)) => e,
        Ok(None) => return,
        Err(err) => {
            warn!(error = %err, escalation = id, "refused DM not recorded");
            return;
        }
    };
    let now = app.clock.now_ms();
    let sooner = match plan(app, &e).and_then(|p| next_step(&p, e.started_ms, round, step)) {
        Some((r, s, _)) if e.state == "active" => db::due_now(&app.store, id, r, s, now)
            .await
            .unwrap_or(false),
        _ => false,
    };
    let text = format!(
        "DM refused by Discord ({}){}",
        chat::truncate(why, 120),
        if sooner { "; next step at once" } else { "" }
    );
    warn!(escalation = id, round, step, %why, "page by DM refused");
    if let Subject::Incident(i) = Subject::of(&e) {
        if let Err(err) = incidents_db::add_entry(
            &app.store,
            i,
            &NewEntry::new(EntryKind::Reminder, now, &Actor::klaxon(), text.clone()),
        )
        .await
        {
            warn!(error = %err, escalation = id, "refusal not on the timeline");
        }
    }
    audit(
        app,
        &Actor::klaxon(),
        "oncall page",
        &e,
        Outcome::Failed,
        text,
    )
    .await;
    if sooner {
        app.escalations_wake.notify_one();
    }
}

/// What an escalation is about.
pub fn subject(e: &EscalationRow) -> Subject {
    Subject::of(e)
}

/// The escalation behind a DM's Acknowledge button.
pub async fn get(app: &App, id: i64) -> Result<Option<EscalationRow>, StoreError> {
    db::get(&app.store, id).await
}

/// A message link: `https://discord.com/channels/<guild>/<channel>[/<message>]`.
pub fn link(app: &App, channel: u64, message: Option<u64>) -> String {
    let guild = app
        .guild_id
        .map(|g| g.to_string())
        .unwrap_or_else(|| "@me".into());
    match message {
        Some(m) => format!("https://discord.com/channels/{guild}/{channel}/{m}"),
        None => format!("https://discord.com/channels/{guild}/{channel}"),
    }
}
