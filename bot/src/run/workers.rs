//! The leader's background work: health probes, alert grouping and delivery (the
//! outbox), delivery of the other posts (`klaxon_core::delivery`), maintenance windows,
//! incident reminders, on-call hand-offs and escalations, missed heartbeats, the
//! digests, Docker events and pruning of old rows (`[retention]`).
//!
//! Each worker reads everything it works from out of the database, so a new leader
//! (after a restart or a take-over) carries on where the last one stopped. Each one
//! runs until its `stop` future completes; only the alert worker does more then: it
//! flushes the outbox for up to [`FLUSH_ON_SHUTDOWN`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use klaxon_core::App;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, info_span, warn, Instrument};

use super::{stopped, FLUSH_ON_SHUTDOWN};

/// Spawns every worker; they finish once `stop` says `true` (the alert worker
/// flushes the outbox first). The caller owns the handles: dropping them does not
/// stop the workers.
pub(super) fn spawn_all(app: &Arc<App>, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut workers = vec![
        tokio::spawn(
            alert_worker(Arc::clone(app), stopped(stop.clone())).instrument(info_span!("alerts")),
        ),
        tokio::spawn(
            posts_worker(Arc::clone(app), stopped(stop.clone())).instrument(info_span!("posts")),
        ),
        tokio::spawn(
            probe_worker(Arc::clone(app), stopped(stop.clone())).instrument(info_span!("probes")),
        ),
        tokio::spawn(
            reminder_worker(Arc::clone(app), stopped(stop.clone()))
                .instrument(info_span!("reminders")),
        ),
        tokio::spawn(
            maintenance_worker(Arc::clone(app), stopped(stop.clone()))
                .instrument(info_span!("maintenance")),
        ),
        tokio::spawn(
            oncall_worker(Arc::clone(app), stopped(stop.clone())).instrument(info_span!("oncall")),
        ),
        tokio::spawn(
            escalation_worker(Arc::clone(app), stopped(stop.clone()))
                .instrument(info_span!("escalations")),
        ),
        tokio::spawn(
            retention_worker(Arc::clone(app), stopped(stop.clone()))
                .instrument(info_span!("retention")),
        ),
        tokio::spawn(
            heartbeat_worker(Arc::clone(app), stopped(stop.clone()))
                .instrument(info_span!("heartbeats")),
        ),
        tokio::spawn(
            digest_worker(Arc::clone(app), stopped(stop.clone())).instrument(info_span!("digests")),
        ),
    ];
    let events_app = Arc::clone(app);
    let events_stop = stopped(stop.clone());
    workers.push(tokio::spawn(
        async move {
            if events_app.alerts.config.docker_events {
                klaxon_core::alerts::events::watch(&events_app, events_stop).await;
            } else {
                events_stop.await;
            }
        }
        .instrument(info_span!("docker_events")),
    ));
    // Swarm task failures (issue #16), with the Docker events switch.
    let swarm_app = Arc::clone(app);
    let swarm_stop = stopped(stop.clone());
    workers.push(tokio::spawn(
        async move {
            if swarm_app.alerts.config.docker_events {
                klaxon_core::alerts::swarm_tasks::watch(&swarm_app, swarm_stop).await;
            } else {
                swarm_stop.await;
            }
        }
        .instrument(info_span!("swarm_tasks")),
    ));
    workers
}

/// Delivers the posts outbox (incident cards, notices, pages, reminders, maintenance
/// announcements): at once when a post is stored (`posts_wake`), else when the next
/// retry is due. At shutdown, what is due goes out for a bounded time; the rest is
/// the next leader's.
async fn posts_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        if let Err(e) = klaxon_core::delivery::deliver_due(&app).await {
            warn!(error = %e, "post delivery failed; retrying");
        }
        let wait = klaxon_core::delivery::next_pass_in(&app, Duration::from_secs(5)).await;
        tokio::select! {
            _ = &mut stop => {
                let flush = klaxon_core::delivery::deliver_due(&app);
                if tokio::time::timeout(FLUSH_ON_SHUTDOWN, flush).await.is_err() {
                    warn!("posts did not drain within {}s; the rest is sent after the restart", FLUSH_ON_SHUTDOWN.as_secs());
                }
                return;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = app.posts_wake.notified() => {}
        }
    }
}

/// Probes every service's health_url on `[alerts] probe_interval_secs`.
async fn probe_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    let every = app.alerts.config.probe_interval_secs;
    tokio::pin!(stop);
    if every == 0 || !app.services.iter().any(|s| s.health_url.is_some()) {
        return stop.await;
    }
    let mut state = klaxon_core::alerts::probes::ProbeState::default();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
        }
        if let Err(e) = klaxon_core::alerts::probes::round(&app, &mut state).await {
            warn!(error = %e, "probe results not stored; probing again next round");
        }
    }
}

/// How often the leader looks for missed heartbeats: well inside the promised 60 s.
const HEARTBEAT_TICK: Duration = Duration::from_secs(1);

/// Raises `HeartbeatMissed` for heartbeats past their deadline. At start (of this
/// leader) every waiting heartbeat gets one grace period first: Klaxon's own
/// downtime is no missed run.
async fn heartbeat_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    if app.heartbeats.is_empty() {
        return stop.await;
    }
    use klaxon_core::alerts::heartbeats;
    loop {
        match heartbeats::start(&app).await {
            Ok(()) => break,
            Err(e) => warn!(error = %e, "heartbeat deadlines not read; retrying"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(HEARTBEAT_TICK) => {}
        }
    }
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(HEARTBEAT_TICK) => {}
        }
        match heartbeats::check(&app).await {
            Ok(0) => {}
            Ok(n) => info!(missed = n, "heartbeats missed"),
            Err(e) => warn!(error = %e, "heartbeat check failed; retrying next tick"),
        }
    }
}

/// Renders due alert groups into the outbox and starts delivery of what is due, a
/// few times a second; everything it works from is in the database.
async fn alert_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut sender = klaxon_core::alerts::deliver::Sender::default();
    loop {
        tokio::select! {
            _ = &mut stop => {
                // Shutting down: what is due goes out now, for a bounded time; the
                // rest stays in the outbox for the next leader.
                let flush = async {
                    let now = app.clock.now_ms();
                    if let Err(e) = klaxon_core::alerts::deliver::flush_due(&app, now).await {
                        warn!(error = %e, "alert grouping at shutdown failed");
                    }
                    if let Err(e) = sender.tick(&app).await {
                        warn!(error = %e, "alert delivery at shutdown failed");
                    }
                    sender.drain().await;
                };
                if tokio::time::timeout(FLUSH_ON_SHUTDOWN, flush).await.is_err() {
                    warn!("the outbox did not drain within {}s; the rest is sent after the restart", FLUSH_ON_SHUTDOWN.as_secs());
                }
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let now = app.clock.now_ms();
        if let Err(e) = klaxon_core::alerts::intake::release_silenced(
            &app.store,
            &app.alerts,
            app.alerts_channel,
            now,
        )
        .await
        {
            warn!(error = %e, "releasing silenced alerts failed; retrying");
        }
        if let Err(e) = klaxon_core::alerts::deliver::flush_due(&app, now).await {
            warn!(error = %e, "alert grouping failed; retrying");
        }
        if let Err(e) = klaxon_core::alerts::deliver::repeat_due(&app, now).await {
            warn!(error = %e, "repeat notifications failed; retrying");
        }
        if let Err(e) = sender.tick(&app).await {
            warn!(error = %e, "alert delivery failed; retrying");
        }
    }
}

/// Starts, ends and announces maintenance windows on time, from the database: the
/// first tick after a restart applies whatever was missed while Klaxon was down.
async fn maintenance_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    let tick = app.maintenance.tick;
    tokio::pin!(stop);
    loop {
        match klaxon_core::maintenance::tick(&app).await {
            Ok(_) => {}
            Err(e) => warn!(error = %e, "maintenance scheduler failed; retrying next tick"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(tick) => {}
            _ = app.maintenance_wake.notified() => {}
        }
    }
}

/// Re-pages unacknowledged incidents and reminds commanders, from the database, so a
/// restart loses no reminder.
async fn reminder_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    let tick = Duration::from_secs(app.incidents.reminder_tick_secs.max(1));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(tick) => {}
        }
        match klaxon_core::incidents::remind(&app).await {
            Ok(0) => {}
            Ok(n) => info!(sent = n, "incident reminders sent"),
            Err(e) => warn!(error = %e, "incident reminders failed; retrying next tick"),
        }
    }
}

/// Announces on-call hand-offs and moves each schedule's `sync_role`, from the
/// database's hand-off rows, so a new leader finishes what the last one started.
async fn oncall_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    if !app
        .oncall
        .schedules
        .iter()
        .any(|s| s.sync_role.is_some() || s.announce.is_some())
    {
        return stop.await;
    }
    loop {
        match klaxon_core::oncall::handoff::tick(&app).await {
            Ok(0) => {}
            Ok(n) => info!(steps = n, "on-call hand-off steps done"),
            Err(e) => warn!(error = %e, "on-call hand-offs failed; retrying next tick"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(klaxon_core::oncall::handoff::TICK) => {}
        }
    }
}

/// Posts `[digests]` when due (and the latest one missed while Klaxon was down),
/// each once: the claim is a row, so a new leader never posts one again.
async fn digest_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    if !app.digests.any() {
        return stop.await;
    }
    if klaxon_core::digests::channel(&app).is_none() {
        warn!("[digests] is set but no channel is: set digests.channel or channels.incidents");
        return stop.await;
    }
    loop {
        match klaxon_core::digests::tick(&app).await {
            Ok(0) => {}
            Ok(n) => info!(posted = n, "digests posted"),
            Err(e) => warn!(error = %e, "digests failed; retrying next tick"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(klaxon_core::digests::TICK) => {}
        }
    }
}

/// Fires due escalation steps (issue #14) from the database's escalation rows, so
/// a new leader continues a chain where the last one stopped: woken when one
/// starts or a step falls through, else when the next step is due (at most
/// [`klaxon_core::oncall::escalate::TICK`], so the controllable clock drives it).
async fn escalation_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    use klaxon_core::oncall::escalate;
    tokio::pin!(stop);
    loop {
        match escalate::tick(&app).await {
            Ok(0) => {}
            Ok(n) => info!(steps = n, "escalation steps fired"),
            Err(e) => warn!(error = %e, "escalation steps failed; retrying next tick"),
        }
        let wait = escalate::next_pass_in(&app).await;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
            _ = app.escalations_wake.notified() => {}
        }
    }
}

/// The first pruning run waits this long after becoming leader: start-up's own
/// work (catching up on the outbox, maintenance) goes first.
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(60);

/// Deletes rows older than `[retention]` allows: once shortly after becoming
/// leader, then every [`klaxon_core::retention::EVERY`]. A run is paced so that
/// alert intake keeps its turn at the database (see [`klaxon_core::retention`]);
/// stepping down stops it between two batches or inside one (rolled back).
async fn retention_worker(app: Arc<App>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut wait = FIRST_PRUNE_AFTER;
    let mut pacer = klaxon_core::retention::Pacer::default();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = klaxon_core::retention::EVERY;
        let now = app.clock.now_ms();
        let run = klaxon_core::retention::prune(&app.store, &app.retention, now, &mut pacer);
        tokio::select! {
            _ = &mut stop => return,
            result = run => if let Err(e) = result {
                warn!(error = %e, "pruning old rows failed; trying again next hour");
            },
        }
    }
}
