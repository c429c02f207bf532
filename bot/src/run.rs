//! Start-up and shutdown: the order matters and every failure names its cause.
//!
//! Every replica serves HTTP (alert intake, health, metrics). Only the leader holds
//! the Discord gateway session, runs the schedulers and drains the outbox: on SQLite
//! the one process allowed on the file, on PostgreSQL whoever holds the lease
//! ([`klaxon_core::leader`]). Followers take over when the leader goes away.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use klaxon_core::chat::ChatSink;
use klaxon_core::docker::DockerClient;
use klaxon_core::leader::{self, InstanceLock, Lease};
use klaxon_core::metrics::Metrics;
use klaxon_core::permissions::Policy;
use klaxon_core::probe::Prober;
use klaxon_core::store::{redact_url, Backend, Store};
use klaxon_core::App;
use poise::serenity_prelude as serenity;
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::discord::chat::DiscordChat;
use crate::discord::limiter::Limiter;
use crate::discord::proxy::{self, DiscordRest, Reach};

/// How long start-up waits for the gateway READY and command registration.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two tries while Discord does not answer at start-up.
const DISCORD_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a graceful shutdown keeps delivering the outbox.
pub const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(10);

/// A running bot. Dropping it does not stop it: call [`Bot::shutdown`].
pub struct Bot {
    pub app: Arc<App>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http_addr: SocketAddr,
    /// The loopback proxy every Discord REST call goes through.
    pub proxy_addr: SocketAddr,
    /// The bot's own serenity client, for code that must talk to Discord directly.
    pub http: Arc<serenity::Http>,
    stop: watch::Sender<bool>,
    http_server: JoinHandle<()>,
    proxy_stop: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    lease_stop: watch::Sender<bool>,
    leadership: Arc<Leadership>,
    lease_task: Option<JoinHandle<()>>,
    _instance: Option<InstanceLock>,
}

/// What only the leader runs; started on becoming leader, stopped on stepping down.
/// Dropped without [`stop_duties`] (a take-over cut short), it still stops all of it.
struct Duties {
    /// `true` asks the workers to finish (the outbox flushes); dropped unsent, they
    /// stop at once.
    stop: watch::Sender<bool>,
    /// Set before the gateway is closed on purpose: not a failure of the bot.
    deliberate: Arc<AtomicBool>,
    shard_manager: Arc<serenity::ShardManager>,
    client_task: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
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

struct Leadership {
    app: Arc<App>,
    /// Discord's REST API behind Klaxon's limiter: start-up's checks.
    rest: Arc<DiscordRest>,
    config: Config,
    token: String,
    proxy_addr: SocketAddr,
    duties: Mutex<Option<Duties>>,
    /// PostgreSQL only.
    lease: Option<Lease>,
    /// The lease is ours (set and cleared by the lease task).
    holding: AtomicBool,
    /// The gateway stopped by itself: [`Bot::wait`] returns it.
    fatal: watch::Sender<Option<Result<(), String>>>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = &config.database.url;
    let store = Store::connect(url)
        .await
        .with_context(|| format!("database.url: cannot open {}", redact_url(url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("database.url: migrating {} failed", redact_url(url)))?;
    Ok(store)
}

/// Starts everything and returns once Klaxon is serving: as the leader, once it is
/// connected and its commands are registered; as a follower (another replica leads),
/// once its HTTP server takes alerts. Any failure before that is an error, never a
/// half-started bot.
pub async fn start(config: Config) -> anyhow::Result<Bot> {
    start_with_clock(config, Default::default()).await
}

/// [`start`] on a given clock: tests move time forward across a restart, as if the
/// bot had been down for a while.
pub async fn start_with_clock(
    config: Config,
    clock: klaxon_core::clock::Clock,
) -> anyhow::Result<Bot> {
    let span = info_span!("startup", guild_id = config.discord.guild_id);
    start_inner(config, clock).instrument(span).await
}

async fn start_inner(config: Config, clock: klaxon_core::clock::Clock) -> anyhow::Result<Bot> {
    // One process per SQLite file: checked before anything touches the database.
    let instance = match leader::sqlite_file(&config.database.url) {
        Some(file) => Some(InstanceLock::acquire(&file).context("database.url")?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config).await?;
    info!(backend = ?store.backend(), "database ready");

    let (stop, stop_rx) = watch::channel(false);
    let token = config.discord.token.expose().to_string();
    let rest = Arc::new(DiscordRest::new(
        &config.discord.api_url,
        Duration::from_secs(config.discord.request_timeout_secs),
        Limiter::new(config.discord.global_rate_per_sec, Arc::clone(&metrics)),
    )?);
    // The proxy stops last: the outbox drains through it during shutdown.
    let (proxy_stop, proxy_stop_rx) = watch::channel(false);
    // The lease is renewed until the outbox has drained at shutdown.
    let (lease_stop, lease_stop_rx) = watch::channel(false);
    let (proxy_addr, proxy_task) = proxy::spawn(Arc::clone(&rest), stopped(proxy_stop_rx)).await?;
    // A wrong token or api_url stops start-up now; an outage does not: Klaxon takes
    // alerts over HTTP meanwhile and connects once Discord answers.
    let outage = match rest.reach(&token).await {
        Ok((gateway, user)) => {
            info!(%gateway, %user, "Discord reachable");
            None
        }
        Err(Reach::Refused(e)) => return Err(refused(e)),
        Err(Reach::NotYet(cause)) => Some(cause),
    };

    let chat_http = Arc::new(build_http(&token, proxy_addr));
    let chat: Arc<dyn ChatSink> = Arc::new(DiscordChat {
        http: Arc::clone(&chat_http),
    });

    let commands = klaxon_commands::all();
    let policy = Policy::new(
        config.roles.clone(),
        klaxon_commands::default_levels(&commands),
        &config.permissions,
    );
    let app = Arc::new(App {
        store,
        docker: DockerClient::new(
            &config.docker.host,
            Duration::from_secs(config.docker.timeout_secs),
        ),
        prober: Prober::new(),
        services: config.services.clone(),
        thresholds: config.health.clone(),
        logs: config.logs.clone(),
        log_reads: klaxon_core::log_reads::ReadQueue::new(config.logs.max_concurrent_reads),
        follows: Default::default(),
        rollout: config.rollback.clone(),
        ops_locks: Default::default(),
        policy,
        metrics,
        chat,
        audit_channel: config.channels.audit,
        incidents_channel: config.channels.incidents,
        incidents: config.incidents.clone(),
        clock,
        alerts: klaxon_core::alerts::route::Router::new(&config.alerts)
            .map_err(|e| anyhow!("alerts: {}", e.join("; ")))?,
        alerts_channel: config.channels.alerts,
        maintenance: klaxon_core::maintenance::Settings::new(&config.maintenance)
            .map_err(|e| anyhow!("maintenance: {}", e.join("; ")))?,
        maintenance_lock: Default::default(),
        maintenance_wake: Default::default(),
        chat_connected: Default::default(),
        chat_unauthorized: Default::default(),
        leader: Default::default(),
        in_flight: Default::default(),
        discord_outage: std::sync::Mutex::new(outage.clone()),
    });

    // Every replica takes alerts: they are stored, and the leader delivers them.
    let (http_addr, http_server) = crate::server::spawn(
        &config.http,
        Arc::clone(&app),
        config.intake.clone(),
        stopped(stop_rx.clone()),
    )
    .await?;
    info!(%http_addr, "HTTP server listening");

    let lease =
        (app.store.backend() == Backend::Postgres).then(|| Lease::new(leader::holder_name()));
    let (fatal, _) = watch::channel(None);
    let leadership = Arc::new(Leadership {
        app: Arc::clone(&app),
        rest: Arc::clone(&rest),
        config,
        token,
        proxy_addr,
        duties: Mutex::new(None),
        lease,
        holding: AtomicBool::new(false),
        fatal,
    });
    let mut bot = Bot {
        app: Arc::clone(&app),
        http_addr,
        proxy_addr,
        http: chat_http,
        stop,
        http_server,
        proxy_stop,
        proxy_task,
        lease_stop,
        leadership: Arc::clone(&leadership),
        lease_task: None,
        _instance: instance,
    };

    if let Some(cause) = outage {
        warn!(cause = %cause, "Discord is not answering yet: taking alerts over HTTP and connecting once it does");
        // Leadership and the gateway come once Discord answers; a refusal then (or a
        // failure to take up the work) stops Klaxon as a gateway failure would.
        let l = Arc::clone(&leadership);
        let stop = stopped(stop_rx.clone());
        bot.lease_task = Some(tokio::spawn(
            async move {
                let connect = async {
                    let live = match wait_for_discord(&l).await {
                        Ok(()) => go_live(&l, lease_stop_rx).await,
                        Err(e) => Err(e),
                    };
                    match live {
                        Ok(Some(lease_task)) => {
                            let _ = lease_task.await;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            error!(
                                error = format!("{e:#}"),
                                "could not start after waiting for Discord"
                            );
                            l.fatal.send_replace(Some(Err(format!("{e:#}"))));
                        }
                    }
                };
                // A shutdown while waiting ends the wait (the lease loop, if it
                // started, stops with the lease at the end of the shutdown).
                tokio::select! {
                    _ = stop => {}
                    _ = connect => {}
                }
            }
            .instrument(info_span!("connecting")),
        ));
        return Ok(bot);
    }
    match go_live(&leadership, lease_stop_rx).await {
        Ok(lease_task) => {
            bot.lease_task = lease_task;
            Ok(bot)
        }
        Err(e) => {
            bot.shutdown().await;
            Err(e)
        }
    }
}

/// The error for a Discord that refused Klaxon, with the key to fix.
fn refused(e: anyhow::Error) -> anyhow::Error {
    if format!("{e}").contains("401") {
        e.context("discord token")
    } else {
        e.context("discord.api_url: this is not a Discord API that Klaxon can use")
    }
}

/// Waits until Discord answers, with back-off (1 s doubling, at most
/// [`DISCORD_RETRY_MAX`]); each wait is logged once with its cause, and `/readyz`
/// says `unreachable (retrying)` meanwhile. A refusal (401, not Discord) ends it
/// with an error.
async fn wait_for_discord(l: &Leadership) -> anyhow::Result<()> {
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
            Err(Reach::Refused(e)) => return Err(refused(e)),
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
async fn go_live(
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

/// serenity's own limiter must be off: the proxy setting only works that way, and
/// Klaxon's limiter (behind the proxy) does the job properly.
///
/// No `default_allowed_mentions` here: serenity would also put it on deferred
/// interaction responses, where Discord allows only flags. Mentions are off instead
/// in poise's options (every reply) and in `DiscordChat` (every post).
fn build_http(token: &str, proxy_addr: SocketAddr) -> serenity::Http {
    serenity::HttpBuilder::new(token)
        .proxy(format!("http://{proxy_addr}"))
        .ratelimiter_disabled(true)
        .build()
}

/// Takes up the leader's work: recovery of a half-done rollback, the workers, then
/// the gateway session, returning once commands are registered.
async fn become_leader(l: &Arc<Leadership>) -> anyhow::Result<()> {
    let app = &l.app;
    let config = &l.config;
    let (stop, stop_rx) = watch::channel(false);

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
    let mut workers = vec![
        tokio::spawn(
            alert_worker(Arc::clone(app), stopped(stop_rx.clone()))
                .instrument(info_span!("alerts")),
        ),
        tokio::spawn(
            probe_worker(Arc::clone(app), stopped(stop_rx.clone()))
                .instrument(info_span!("probes")),
        ),
        tokio::spawn(
            reminder_worker(Arc::clone(app), stopped(stop_rx.clone()))
                .instrument(info_span!("reminders")),
        ),
        tokio::spawn(
            maintenance_worker(Arc::clone(app), stopped(stop_rx.clone()))
                .instrument(info_span!("maintenance")),
        ),
    ];
    let events_app = Arc::clone(app);
    let events_stop = stopped(stop_rx.clone());
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
    let mut workers = Pending(workers);

    let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
    let ready_tx = std::sync::Mutex::new(Some(ready_tx));
    let guild = serenity::GuildId::new(config.discord.guild_id);
    let mut options = klaxon_commands::hooks::framework_options(klaxon_commands::all());
    options.event_handler = |framework, event| {
        Box::pin(on_event(
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
    let built = serenity::ClientBuilder::new_with_http(build_http(&l.token, l.proxy_addr), intents)
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
async fn stop_duties(app: &App, mut d: Duties, flush: bool) {
    app.leader.store(false, Ordering::SeqCst);
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

async fn on_event(
    ctx: &serenity::Context,
    event: &serenity::FullEvent,
    app: &Arc<App>,
) -> anyhow::Result<()> {
    match event {
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Component(click),
        } => {
            let _busy = klaxon_core::app::in_flight(app);
            if let Err(e) = klaxon_commands::components::dispatch(ctx, app, click).await {
                error!(error = format!("{e:#}"), custom_id = %click.data.custom_id, "button handler failed");
            }
        }
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Modal(modal),
        } => {
            let _busy = klaxon_core::app::in_flight(app);
            if let Err(e) = klaxon_commands::components::dispatch_modal(ctx, app, modal).await {
                error!(error = format!("{e:#}"), custom_id = %modal.data.custom_id, "modal handler failed");
            }
        }
        serenity::FullEvent::ReactionAdd { add_reaction } => {
            klaxon_commands::incident::on_reaction(ctx, app, add_reaction).await;
        }
        serenity::FullEvent::MessageUpdate { event, .. } => {
            if let Some(content) = &event.content {
                if let Err(e) =
                    klaxon_core::incidents::message_edited(app, event.id.get(), content).await
                {
                    warn!(error = %e, message_id = %event.id, "timeline entry not updated");
                }
            }
        }
        serenity::FullEvent::MessageDelete {
            deleted_message_id, ..
        } => {
            if let Err(e) =
                klaxon_core::incidents::message_deleted(app, deleted_message_id.get()).await
            {
                warn!(error = %e, message_id = %deleted_message_id, "timeline entry not marked");
            }
        }
        serenity::FullEvent::Resume { .. } => app.chat_connected.store(true, Ordering::Relaxed),
        serenity::FullEvent::ShardStageUpdate { event } => {
            let up = matches!(event.new, serenity::ConnectionStage::Connected);
            app.chat_connected.store(up, Ordering::Relaxed);
            info!(old = ?event.old, new = ?event.new, "gateway stage");
        }
        _ => {}
    }
    Ok(())
}

/// Probes every service's health_url on `[alerts] probe_interval_secs`.
async fn probe_worker(app: Arc<App>, stop: impl std::future::Future<Output = ()>) {
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

/// Renders due alert groups into the outbox and starts delivery of what is due, a
/// few times a second; everything it works from is in the database.
async fn alert_worker(app: Arc<App>, stop: impl std::future::Future<Output = ()>) {
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
        if let Err(e) = klaxon_core::alerts::db::release_silenced(
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
async fn maintenance_worker(app: Arc<App>, stop: impl std::future::Future<Output = ()>) {
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
async fn reminder_worker(app: Arc<App>, stop: impl std::future::Future<Output = ()>) {
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

impl Bot {
    /// Waits until the Discord client stops on its own (a fatal gateway error).
    /// A follower waits until it has led and its gateway failed.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        let mut rx = self.leadership.fatal.subscribe();
        let result = rx.wait_for(|f| f.is_some()).await;
        match result.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(anyhow!("Discord client stopped: {e}")),
            _ => Err(anyhow!("Discord client task failed")),
        }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.app.leader.load(Ordering::SeqCst)
    }

    /// Graceful: stops taking commands (the gateway closes), stops the HTTP server,
    /// lets the outbox drain for up to [`FLUSH_ON_SHUTDOWN`], gives the lease up so
    /// a follower takes over at once, then closes the database.
    pub async fn shutdown(self) {
        info!("shutting down");
        let duties = self.leadership.duties.lock().await.take();
        if let Some(d) = &duties {
            d.deliberate.store(true, Ordering::SeqCst);
            d.shard_manager.shutdown_all().await;
        }
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http_server).await;
        // Commands already running finish (their replies go through the proxy, their
        // audit rows to the database), for a bounded time.
        let deadline = Instant::now() + FLUSH_ON_SHUTDOWN;
        while self.app.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The lease is still renewed while the outbox drains: a follower must not
        // take over and send the same rows meanwhile.
        if let Some(d) = duties {
            stop_duties(&self.app, d, true).await;
        }
        let _ = self.lease_stop.send(true);
        if let Some(t) = self.lease_task {
            let _ = t.await;
        }
        if let Some(lease) = &self.leadership.lease {
            if self.leadership.holding.swap(false, Ordering::SeqCst) {
                if let Err(e) = lease.release(&self.app.store).await {
                    warn!(error = %e, "leader lease not released; it expires by itself");
                }
            }
        }
        let _ = self.proxy_stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.proxy_task).await;
        self.app.store.close().await;
    }

    /// As if the process were killed (tests): everything stops at once, nothing is
    /// flushed or released; the lease expires by itself.
    pub async fn kill(self) {
        if let Some(t) = &self.lease_task {
            t.abort();
        }
        if let Some(d) = self.leadership.duties.lock().await.take() {
            stop_duties(&self.app, d, false).await;
        }
        self.http_server.abort();
        self.proxy_task.abort();
        self.app.store.close().await;
    }
}

/// `klaxon run`: start, then run until SIGINT/SIGTERM or a fatal error.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut bot = start(config).await?;
    let result = tokio::select! {
        r = bot.wait() => r,
        _ = shutdown_signal() => Ok(()),
    };
    if let Err(e) = &result {
        error!(error = %e, "stopping");
    }
    bot.shutdown().await;
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
