//! Who leads, and what leading means. On SQLite the one process allowed on the file
//! leads; on PostgreSQL whoever holds the lease ([`klaxon_core::leader`]), renewed
//! by [`lease_loop`], which steps down when it cannot renew and takes over when the
//! leader goes away.
//!
//! The leader's duties are the gateway session (slash commands and events), the
//! workers ([`super::workers`]) and crash recovery of a half-done rollback; they
//! start together in [`become_leader`] and stop together in [`stop_duties`], so a
//! replica never sends anything without the lease. Apart from start-up because a
//! take-over runs the same steps long after start-up is over.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use klaxon_core::leader;
use klaxon_core::store::lease::Lease;
use klaxon_core::App;
use poise::serenity_prelude as serenity;
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{error, info, info_span, warn, Instrument};

use super::{stopped, FLUSH_ON_SHUTDOWN};
use crate::config::Config;
use crate::discord::proxy::{DiscordRest, Reach};

/// How long start-up waits for the gateway READY and command registration.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two tries while Discord does not answer at start-up.
const DISCORD_RETRY_MAX: Duration = Duration::from_secs(30);

/// What only the leader runs; started on becoming leader, stopped on stepping down.
/// Dropped without [`stop_duties`] (a take-over cut short), it still stops all of it.
pub(super) struct Duties {
    /// `true` asks the workers to finish (the outbox flushes); dropped unsent, they
    /// stop at once.
    pub(super) stop: watch::Sender<bool>,
    /// Set before the gateway is closed on purpose: not a failure of the bot.
    pub(super) deliberate: Arc<AtomicBool>,
    pub(super) shard_manager: Arc<serenity::ShardManager>,
    pub(super) client_task: JoinHandle<()>,
    pub(super) workers: Vec<JoinHandle<()>>,
}

impl Drop for Duties {
    fn drop(&mut self) {
        self.deliberate.store(true, Ordering::SeqCst);
        for w in &self.workers {
            w.abort();
        }
        self.client_task.abort();
        // The shard runners are tasks of their own: close them too.
        let shards = Arc::clone(&self.shard_manager);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { shards.shutdown_all().await });
        }
    }
}

/// What decides and carries out who leads; shared by start-up, the lease loop and
/// [`Bot`](super::Bot).
pub(super) struct Leadership {
    pub(super) app: Arc<App>,
    /// Discord's REST API behind Klaxon's limiter: start-up's checks.
    pub(super) rest: Arc<DiscordRest>,
    pub(super) config: Config,
    pub(super) token: String,
    pub(super) proxy_addr: SocketAddr,
    pub(super) duties: Mutex<Option<Duties>>,
    /// PostgreSQL only.
    pub(super) lease: Option<Lease>,
    /// The lease is ours (set and cleared by the lease task).
    pub(super) holding: AtomicBool,
    /// The gateway stopped by itself: [`Bot::wait`] returns it.
    pub(super) fatal: watch::Sender<Option<Result<(), String>>>,
}

/// Waits until Discord answers, with back-off (1 s doubling, at most
/// [`DISCORD_RETRY_MAX`]); each wait is logged once with its cause, and `/readyz`
/// says `unreachable (retrying)` meanwhile. A refusal (401, not Discord) ends it
/// with an error.
pub(super) async fn wait_for_discord(l: &Leadership) -> anyhow::Result<()> {
    let mut wait = Duration::from_secs(1);
    loop {
        match l.rest.reach(&l.token).await {
            Ok((gateway, user)) => {
                info!(%gateway, %user, "Discord answers again");
                *l.app
                    .discord_outage
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                return Ok(());
            }
            Err(Reach::Refused(e)) => return Err(super::startup::refused(e)),
            Err(Reach::NotYet(cause)) => {
                warn!(cause = %cause, retry_in_secs = wait.as_secs(), "Discord is not answering; retrying");
                *l.app
                    .discord_outage
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(cause);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(DISCORD_RETRY_MAX);
            }
        }
    }
}

/// After Discord answered: the leader lease (PostgreSQL), then the leader's work.
/// Returns the lease loop's task, when there is a lease.
pub(super) async fn go_live(
    leadership: &Arc<Leadership>,
    lease_stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let app = &leadership.app;
    let leads_now = match &leadership.lease {
        None => true,
        Some(lease) => lease
            .try_acquire(&app.store)
            .await
            .map_err(|e| anyhow!(e).context("taking the leader lease in PostgreSQL"))?,
    };
    leadership.holding.store(leads_now, Ordering::SeqCst);
    let lease_task = leadership.lease.is_some().then(|| {
        tokio::spawn(
            lease_loop(Arc::clone(leadership), stopped(lease_stop_rx))
                .instrument(info_span!("lease")),
        )
    });
    if !leads_now {
        let holder = match Lease::current(&app.store).await {
            Ok(Some((h, _))) => h,
            _ => "another replica".into(),
        };
        info!(leader = %holder, "following: another replica leads; taking alerts over HTTP and standing by");
        return Ok(lease_task);
    }
    match become_leader(leadership).await {
        Ok(()) => {
            info!("slash commands registered; Klaxon is up");
            Ok(lease_task)
        }
        Err(e) => {
            if let Some(t) = lease_task {
                t.abort();
            }
            Err(e)
        }
    }
}

/// Takes up the leader's work: recovery of a half-done rollback, the workers, then
/// the gateway session, returning once commands are registered.
async fn become_leader(l: &Arc<Leadership>) -> anyhow::Result<()> {
    let app = &l.app;
    let config = &l.config;
    let (stop, stop_rx) = watch::channel(false);
    // Until the gateway is up (or this fails), `/readyz` says `leader (connecting)`.
    struct Connecting<'a>(&'a App);
    impl Drop for Connecting<'_> {
        fn drop(&mut self) {
            self.0.leader_connecting.store(false, Ordering::SeqCst);
        }
    }
    app.leader_connecting.store(true, Ordering::SeqCst);
    let _connecting = Connecting(app);

    // A leader taking over during a Discord outage waits it out (holding the lease)
    // instead of failing and handing the lease around.
    wait_for_discord(l).await?;

    // A rollback a previous run left half done: make sure the service runs, and say
    // so in the alerts channel, before any new command can touch it.
    klaxon_core::rollout::recover(app, config.channels.alerts).await;

    // Until they belong to a `Duties`, the workers stop when this future is dropped.
    struct Pending(Vec<JoinHandle<()>>);
    impl Drop for Pending {
        fn drop(&mut self) {
            for w in &self.0 {
                w.abort();
            }
        }
    }
    let workers = super::workers::spawn_all(app, &stop_rx);
    let mut workers = Pending(workers);

    let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
    let ready_tx = std::sync::Mutex::new(Some(ready_tx));
    let guild = serenity::GuildId::new(config.discord.guild_id);
    let mut options = klaxon_commands::hooks::framework_options(klaxon_commands::all());
    options.event_handler = |framework, event| {
        Box::pin(super::routing::on_event(
            framework.serenity_context,
            event,
            framework.user_data,
        ))
    };
    let setup_app = Arc::clone(app);
    let framework = poise::Framework::builder()
        .options(options)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                info!(user = %ready.user.name, "gateway ready");
                setup_app.chat_connected.store(true, Ordering::Relaxed);
                let result =
                    poise::builtins::register_in_guild(ctx, &framework.options().commands, guild)
                        .await
                        .with_context(|| {
                            format!(
                                "registering slash commands in guild {guild} (discord.guild_id)"
                            )
                        });
                if let Some(tx) = ready_tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(result.map(|_| ()));
                }
                Ok(setup_app)
            })
        })
        .build();

    // Messages and their content: a pinned (📌) message's text goes to the incident
    // timeline, and its later edits and deletion follow it there.
    let intents = serenity::GatewayIntents::GUILDS
        | serenity::GatewayIntents::GUILD_MESSAGE_REACTIONS
        | serenity::GatewayIntents::GUILD_MESSAGES
        | serenity::GatewayIntents::MESSAGE_CONTENT;
    let built = serenity::ClientBuilder::new_with_http(
        super::startup::build_http(&l.token, l.proxy_addr),
        intents,
    )
    .framework(crate::discord::traced::Traced(framework))
    .await
    .context("building the Discord client");
    let mut client = built?;
    let shard_manager = Arc::clone(&client.shard_manager);
    let (done_tx, done_rx) = oneshot::channel::<Result<(), String>>();
    let fatal = l.fatal.clone();
    let deliberate = Arc::new(AtomicBool::new(false));
    let on_purpose = Arc::clone(&deliberate);
    let client_task = tokio::spawn(
        async move {
            let result = client.start().await.map_err(|e| format!("{e}"));
            // Stopped on purpose (step-down, shutdown): not a failure of the bot.
            if !on_purpose.load(Ordering::SeqCst) {
                fatal.send_replace(Some(result.clone()));
            }
            let _ = done_tx.send(result);
        }
        .instrument(info_span!("gateway")),
    );
    let duties = Duties {
        stop,
        deliberate,
        shard_manager,
        client_task,
        workers: std::mem::take(&mut workers.0),
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(STARTUP_TIMEOUT, ready_rx) => match r {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) | Err(_) => Err(anyhow!(
                "the Discord gateway did not become ready within {}s",
                STARTUP_TIMEOUT.as_secs()
            )),
        },
        // The gateway refused the session (bad token, bad intents): say so now
        // rather than after the timeout.
        r = done_rx => Err(match r {
            Ok(Ok(())) | Err(_) => anyhow!("the Discord client stopped during start-up"),
            // Close code 4014: a privileged intent is not switched on for the bot.
            Ok(Err(e)) if e.to_lowercase().contains("intents") => anyhow!(e).context(
                "the Discord gateway refused the session: switch on the Message Content intent \
                 (Developer Portal → Bot → Privileged Gateway Intents); Klaxon reads pinned \
                 messages into incident timelines",
            ),
            Ok(Err(e)) => anyhow!(e).context("the Discord gateway refused the session"),
        }),
    };
    // The lease may have been lost while the gateway came up: never act without it.
    // Checked and installed under the duties lock, which a step-down takes too.
    let mut slot = l.duties.lock().await;
    let outcome = outcome.and_then(|()| {
        if l.lease.is_none() || l.holding.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(anyhow!("the leader lease was lost while connecting"))
        }
    });
    match outcome {
        Ok(()) => {
            app.leader.store(true, Ordering::SeqCst);
            *slot = Some(duties);
            Ok(())
        }
        Err(e) => {
            drop(slot);
            stop_duties(app, duties, false).await;
            Err(e)
        }
    }
}

/// Stops the leader's work. `flush`: a graceful shutdown, where the outbox gets
/// [`FLUSH_ON_SHUTDOWN`] to drain; otherwise (the lease is gone) everything stops
/// at once, because another replica may already be sending.
pub(super) async fn stop_duties(app: &App, mut d: Duties, flush: bool) {
    app.leader.store(false, Ordering::SeqCst);
    app.metrics.unstamp("klaxon_leader_lease_age_seconds");
    d.deliberate.store(true, Ordering::SeqCst);
    if !flush {
        // Not ours any more: nothing more may be sent from here, not even while the
        // gateway closes.
        for w in &d.workers {
            w.abort();
        }
    }
    // First no more commands: the gateway session closes.
    d.shard_manager.shutdown_all().await;
    app.chat_connected.store(false, Ordering::Relaxed);
    if flush {
        let _ = d.stop.send(true);
        for w in d.workers.drain(..) {
            let _ = tokio::time::timeout(FLUSH_ON_SHUTDOWN + Duration::from_secs(2), w).await;
        }
    }
    // Drop aborts what is left.
}

/// PostgreSQL: renews the lease while leading (stepping down when it cannot), and
/// tries to take it over while following.
async fn lease_loop(l: Arc<Leadership>, stop: impl std::future::Future<Output = ()>) {
    let Some(lease) = &l.lease else { return };
    let app = &l.app;
    tokio::pin!(stop);
    let mut last_renewed = Instant::now();
    // A take-over in progress; aborted with this loop (a dropped handle would let it
    // run on).
    struct Starting(JoinHandle<()>);
    impl Drop for Starting {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut starting: Option<Starting> = None;
    loop {
        tokio::select! {
            _ = &mut stop => {
                drop(starting.take());
                return;
            }
            _ = tokio::time::sleep(leader::RENEW) => {}
        }
        if l.holding.load(Ordering::SeqCst) {
            // A renewal that hangs (a partition) must not outlast the step-down point.
            let asked = Instant::now();
            let left = leader::STEP_DOWN_AFTER
                .saturating_sub(last_renewed.elapsed())
                .max(Duration::from_millis(200));
            let renewed = match tokio::time::timeout(left, lease.renew(&app.store)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", left.as_millis())),
            };
            let lost = match renewed {
                Ok(true) => {
                    last_renewed = asked;
                    app.metrics.stamp("klaxon_leader_lease_age_seconds");
                    None
                }
                Ok(false) => Some("another replica holds the lease now".to_string()),
                Err(e) if last_renewed.elapsed() >= leader::STEP_DOWN_AFTER => Some(format!(
                    "the lease could not be renewed for {}s ({e})",
                    last_renewed.elapsed().as_secs()
                )),
                Err(e) => {
                    warn!(error = %e, "leader lease not renewed; retrying");
                    None
                }
            };
            if let Some(why) = lost {
                error!(reason = %why, "stepping down as leader: no more gateway, schedulers or deliveries here");
                // A take-over still connecting: its duties stop as it is dropped.
                drop(starting.take());
                let taken = {
                    let mut slot = l.duties.lock().await;
                    l.holding.store(false, Ordering::SeqCst);
                    slot.take()
                };
                if let Some(d) = taken {
                    stop_duties(app, d, false).await;
                }
            }
        } else {
            match lease.try_acquire(&app.store).await {
                Ok(true) => {
                    info!(
                        holder = lease.holder(),
                        "took the leader lease: connecting to Discord"
                    );
                    l.holding.store(true, Ordering::SeqCst);
                    last_renewed = Instant::now();
                    app.metrics.stamp("klaxon_leader_lease_age_seconds");
                    let l2 = Arc::clone(&l);
                    starting = Some(Starting(tokio::spawn(
                        async move {
                            match become_leader(&l2).await {
                                Ok(()) => info!("leading: slash commands registered"),
                                Err(e) => {
                                    error!(
                                        error = format!("{e:#}"),
                                        "could not take up the leader's work; giving the lease up"
                                    );
                                    l2.holding.store(false, Ordering::SeqCst);
                                    if let Some(lease) = &l2.lease {
                                        let _ = lease.release(&l2.app.store).await;
                                    }
                                }
                            }
                        }
                        .instrument(info_span!("takeover")),
                    )));
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader lease not readable; retrying"),
            }
        }
    }
}
