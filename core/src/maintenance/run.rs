//! The executor: performs the steps [`plan`](super::plan) decides for a window (chat
//! posts, flag switches, database writes, audit rows and incident timeline lines),
//! and the scheduler's [`tick`] that runs it for every window with something due.
//!
//! Posts go through the posts outbox ([`crate::posts`]): stored here, keyed by
//! their nonce (a step run again after a crash stores nothing twice), delivered by
//! the leader's worker in the order stored. A step that does not go as planned (a
//! post not stored, a window that changed under the step) makes the executor plan again from the next stage with
//! the window as it is; a failed step is tried again [`RETRY_MS`] later.

use tracing::{info, warn};

use super::flag;
use super::plan::{plan, Planned, Stage, Step, FLAG_RETRY_FOR_MS, RETRY_MS};
use super::{MaintenanceError, Window, WindowState};
use crate::actor::Actor;
use crate::audit::{AuditEntry, Outcome};
use crate::chat::{self, ChatMessage};
use crate::events::{Event, MaintenanceKind, MaintenanceStep};
use crate::posts::{self, Kind, Post, To};
use crate::store::maintenance as store;
use crate::store::StoreError;
use crate::App;

/// The scheduler: moves on every window with something due. Returns how many it
/// looked at.
pub async fn tick(app: &App) -> Result<usize, StoreError> {
    let now = app.clock.now_ms();
    let ids = store::due(&app.store, now, now - FLAG_RETRY_FOR_MS).await?;
    let _guard = app.maintenance_lock.lock().await;
    // An alert held by an intake transaction that read the window just before its
    // end was committed (PostgreSQL reads committed data): given back like the rest.
    let stranded = store::stranded(&app.store, now - 3_600_000).await?;
    for id in stranded {
        let mut tx = app.store.begin_write().await?;
        let n = crate::alerts::intake::release_held(
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
        match advance(app, id, &Actor::klaxon(), true).await {
            Ok(_) => n += 1,
            Err(MaintenanceError::Store(e)) => return Err(e),
            Err(MaintenanceError::Invalid(e)) => warn!(window = id, error = %e, "maintenance step"),
        }
    }
    Ok(n)
}

/// How a step went.
enum Went {
    AsPlanned,
    /// A post could not be stored: no more posts this pass, and the window is
    /// tried again. (Delivery is the posts worker's: a Discord outage delays the
    /// post, it does not stop the window.)
    ChatFailed,
    /// The window was no longer in the state the step changes: nothing changed.
    Unchanged,
}

/// Does what is due for one window, in order (see [`plan`]): the announcement of a
/// scheduled window, lead-time reminders, the start (flag on, announcement), the
/// end (flag off, held alerts released and summarised, announcement). The caller
/// holds `maintenance_lock`. `by` is who caused it (Klaxon for the scheduler);
/// `post`: whether to post (commands leave posting to the scheduler, woken at once,
/// so that a reply never waits behind the channel's rate limit).
pub(super) async fn advance(
    app: &App,
    id: i64,
    by: &Actor,
    post: bool,
) -> Result<Vec<String>, MaintenanceError> {
    let mut notes = Vec::new();
    let now = app.clock.now_ms();
    let Some(mut w) = store::get(&app.store, id).await? else {
        return Ok(notes);
    };
    let mut chat = post;
    let mut retry = false;
    let mut steps = plan(&w, now, &app.maintenance, chat, Stage::FIRST).into_iter();
    while let Some(Planned { stage, step }) = steps.next() {
        match perform(app, &mut w, step, by, now, &mut notes).await? {
            Went::AsPlanned => continue,
            Went::ChatFailed => {
                chat = false;
                retry = true;
            }
            Went::Unchanged => {}
        }
        // What follows was planned for a window that is not what it is now.
        steps = match stage.after() {
            Some(next) => plan(&w, now, &app.maintenance, chat, next),
            None => Vec::new(),
        }
        .into_iter();
    }
    if retry {
        store::retry_at(&app.store, w.id, now + RETRY_MS).await?;
    }
    Ok(notes)
}

/// Performs one step, keeping `w` as the database has it.
async fn perform(
    app: &App,
    w: &mut Window,
    step: Step,
    by: &Actor,
    now: i64,
    notes: &mut Vec<String>,
) -> Result<Went, MaintenanceError> {
    match step {
        Step::Announce { notice, key, text } => {
            if let Err(e) = announce(app, w.id, &key, ChatMessage::text(text)).await {
                warn!(error = %e, window = w.id, "{}", notice.failed());
                return Ok(Went::ChatFailed);
            }
        }
        Step::Mark(mark) => {
            store::mark(&app.store, w.id, mark).await?;
            match mark {
                store::Mark::ScheduledAnnounced => w.scheduled_announced = true,
                store::Mark::StartAnnounced => w.start_announced = true,
                store::Mark::EndAnnounced | store::Mark::ExtensionAnnounced => {}
            }
        }
        Step::LeadsDone(done) => store::set_leads_done(&app.store, w.id, &done).await?,
        Step::CloseMissed { detail } => {
            if !store::close_missed(&app.store, w.id, now).await? {
                return Ok(Went::Unchanged);
            }
            w.state = WindowState::Ended;
            w.started_ms = Some(w.starts_ms);
            w.ended_ms = Some(now);
            w.late = true;
            audit(app, w, "end", by, Outcome::Ok, detail.clone()).await;
            publish_step(
                app,
                w.id,
                MaintenanceKind::Missed,
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
        Step::Start {
            detail,
            timeline: text,
        } => {
            if !store::start(&app.store, w.id, now).await? {
                return Ok(Went::Unchanged);
            }
            w.state = WindowState::Active;
            w.started_ms = Some(now);
            audit(app, w, "start", by, Outcome::Ok, detail).await;
            publish_step(app, w.id, MaintenanceKind::Started, &w.services, by, text).await;
            info!(window = w.id, "maintenance window started");
        }
        Step::FlagOn => {
            let (ok, detail) = switch_all(app, w, true).await;
            notes.extend(detail.iter().cloned());
            let state = if ok { "on" } else { "failed-on" };
            store::set_flag_state(&app.store, w.id, state, &detail.join("\n"), now).await?;
            w.flag_state = state.into();
            let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
            audit(app, w, "flag on", by, outcome, detail.join("; ")).await;
            publish_step(
                app,
                w.id,
                MaintenanceKind::FlagOn,
                &w.services,
                by,
                format!("Maintenance #{} flag on: {}", w.id, detail.join("; ")),
            )
            .await;
            if !ok && by.user_id == Actor::klaxon().user_id {
                // Nobody typed a command to read the failure in its reply.
                warn_ops(
                    app,
                    w.id,
                    format!(
                        "⚠️ Maintenance #{} started, but the maintenance flag is not set: {}",
                        w.id,
                        chat::neutralize(&detail.join("; "))
                    ),
                )
                .await;
            }
        }
        Step::End {
            late,
            detail,
            timeline: text,
        } => {
            if !store::end_on_schedule(&app.store, w.id, late, now).await? {
                return Ok(Went::Unchanged);
            }
            w.state = WindowState::Ended;
            w.ended_ms = Some(now);
            w.ended_by = Some("schedule".into());
            w.late = late;
            audit(app, w, "end", by, Outcome::Ok, detail).await;
            publish_step(app, w.id, MaintenanceKind::Ended, &w.services, by, text).await;
            info!(window = w.id, late, "maintenance window ended");
        }
        Step::FlagOff { retry } => {
            let (ok, detail) = switch_all(app, w, false).await;
            if retry && ok {
                warn_ops(
                    app,
                    w.id,
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
            store::set_flag_state(&app.store, w.id, state, &detail.join("\n"), now).await?;
            w.flag_state = state.into();
            w.flag_detail = detail.join("\n");
            let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
            audit(app, w, "flag off", by, outcome, detail.join("; ")).await;
            publish_step(
                app,
                w.id,
                MaintenanceKind::FlagOff,
                &w.services,
                by,
                format!("Maintenance #{} flag off: {}", w.id, detail.join("; ")),
            )
            .await;
        }
        Step::Summary => {
            // A flag left on makes the service answer 503 after the work: the
            // engineers hear about it with the summary.
            let warnings: Vec<String> = if w.flag_state == "failed-off" {
                vec![format!(
                    "⚠️ The maintenance flag could not be cleared, so the service may still \
                     answer 503: {}",
                    w.flag_detail.replace('\n', "; ")
                )]
            } else {
                Vec::new()
            };
            summarize_and_release(app, w, &warnings, now).await?;
            w.summary_posted = true;
        }
    }
    Ok(Went::AsPlanned)
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
        let engine = match app.engine_for(svc) {
            Ok(e) => e,
            Err(e) => return Err(format!("{name}: {e}")),
        };
        match flag::switch(engine, container, &cfg, on).await {
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

/// Stores the post of what the window held back (alerts channel), and gives the
/// alerts back: those still firing join their groups and are posted; those that
/// resolved update any message that showed them firing. The post, the release and
/// the mark commit together.
async fn summarize_and_release(
    app: &App,
    w: &Window,
    warnings: &[String],
    now: i64,
) -> Result<(), StoreError> {
    let key = w.held_key();
    let rows = store::held_alerts(&app.store, &key).await?;
    let channel = app.alerts_channel.or(app.incidents_channel);
    let mut summary = None;
    if let (Some(channel), true) = (channel, !rows.is_empty() || !warnings.is_empty()) {
        let mut lines = Vec::new();
        let firing = rows.iter().filter(|r| r.status == "firing").count();
        for r in &rows {
            lines.push(format!(
                "{} {} ({}){}",
                if r.status == "firing" { "🔴" } else { "✅" },
                chat::neutralize(&r.name),
                chat::neutralize(&r.service),
                if r.status == "firing" {
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
        summary = Some(Post::new(
            Kind::Maintenance,
            To::Channel(channel),
            msg,
            subject(w.id),
        ));
    }
    // The summary is stored with the release and the mark, in one transaction: a
    // crash leaves all three undone or all three done.
    let mut tx = app.store.begin_write().await?;
    crate::alerts::intake::release_held(&mut tx, &app.alerts, app.alerts_channel, &key, now)
        .await?;
    if let Some(p) = &summary {
        posts::store_in(&mut tx, p, now).await?;
    }
    store::summary_posted(&mut tx, w.id).await?;
    tx.commit().await?;
    posts::wake(app);
    Ok(())
}

/// The same post always carries the same nonce: Discord shows a retried one once.
fn nonce(id: i64, what: &str) -> String {
    // Discord takes nonces of up to 25 characters.
    chat::truncate(&format!("m{id}-{what}"), 25)
}

/// The subject of a window's posts: they go out in the order they were stored.
fn subject(id: i64) -> String {
    format!("maintenance {id}")
}

/// A notice for stakeholders in the incidents channel (no channel: nothing to do),
/// through the posts outbox. Keyed by its nonce: a step run again after a crash
/// stores it once.
async fn announce(app: &App, id: i64, what: &str, msg: ChatMessage) -> Result<(), StoreError> {
    let Some(channel) = app.incidents_channel else {
        return Ok(());
    };
    let p =
        Post::new(Kind::Maintenance, To::Channel(channel), msg, subject(id)).keyed(nonce(id, what));
    posts::post_with(app, p).await.map(|_| ())
}

/// A warning for the engineers (alerts channel), through the posts outbox.
async fn warn_ops(app: &App, id: i64, text: String) {
    let Some(channel) = app.alerts_channel.or(app.incidents_channel) else {
        return;
    };
    let p = Post::new(
        Kind::Ops,
        To::Channel(channel),
        ChatMessage::text(text),
        subject(id),
    );
    if let Err(e) = posts::post_with(app, p).await {
        warn!(error = %e, "maintenance warning not stored");
    }
}

/// An audit row for what the window did by itself or as a consequence of a command.
async fn audit(app: &App, w: &Window, verb: &str, by: &Actor, outcome: Outcome, detail: String) {
    app.audit(AuditEntry {
        at_ms: app.clock.now_ms(),
        guild_id: None,
        channel_id: None,
        user_id: by.user_id,
        user_name: by.name.clone(),
        command: format!("maintenance {verb}"),
        arguments: format!("id={} services={}", w.id, w.services.join(",")),
        outcome,
        detail,
        duration_ms: 0,
    })
    .await;
}

/// Publishes a step of window `w` (the incident timelines record it).
pub(super) async fn publish_step(
    app: &App,
    window: i64,
    kind: MaintenanceKind,
    services: &[String],
    by: &Actor,
    text: String,
) {
    app.publish(Event::Maintenance(MaintenanceStep {
        window,
        kind,
        services: services.to_vec(),
        by: by.clone(),
        text,
    }))
    .await;
}
