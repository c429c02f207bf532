//! Start-up and shutdown: the order matters and every failure names its cause.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use klaxon_core::chat::ChatSink;
use klaxon_core::docker::DockerClient;
use klaxon_core::metrics::Metrics;
use klaxon_core::permissions::Policy;
use klaxon_core::probe::Prober;
use klaxon_core::store::{redact_url, Store};
use klaxon_core::App;
use poise::serenity_prelude as serenity;
use tokio::sync::{oneshot, watch};
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::discord::chat::DiscordChat;
use crate::discord::limiter::Limiter;
use crate::discord::proxy::{self, DiscordRest};

/// How long start-up waits for the gateway READY and command registration.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

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
    shard_manager: Arc<serenity::ShardManager>,
    client_task: tokio::task::JoinHandle<Result<(), serenity::Error>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
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

/// Starts everything and returns once Klaxon is connected and its commands are
/// registered; any failure before that is an error, never a half-started bot.
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
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config).await?;
    info!(backend = ?store.backend(), "database ready");

    let (stop, stop_rx) = watch::channel(false);
    let token = config.discord.token.expose().to_string();
    let rest = Arc::new(DiscordRest::new(
        &config.discord.api_url,
        Limiter::new(config.discord.global_rate_per_sec, Arc::clone(&metrics)),
    )?);
    let (proxy_addr, proxy_task) =
        proxy::spawn(Arc::clone(&rest), stopped(stop_rx.clone())).await?;
    let gateway = rest
        .check_gateway(&token)
        .await
        .context("discord.api_url: Discord is not reachable")?;
    let user = rest.check_token(&token).await.context("discord token")?;
    info!(%gateway, %user, "Discord reachable");

    // serenity's own limiter must be off: the proxy setting only works that way,
    // and Klaxon's limiter (behind the proxy) does the job properly.
    //
    // No `default_allowed_mentions` here: serenity would also put it on deferred
    // interaction responses, where Discord allows only flags. Mentions are off
    // instead in poise's options (every reply) and in `DiscordChat` (every post).
    let build_http = || {
        serenity::HttpBuilder::new(&token)
            .proxy(format!("http://{proxy_addr}"))
            .ratelimiter_disabled(true)
            .build()
    };
    let chat_http = Arc::new(build_http());
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
    });

    // A rollback a previous run left half done: make sure the service runs, and say
    // so in the alerts channel, before any new command can touch it.
    klaxon_core::rollout::recover(&app, config.channels.alerts).await;

    let alert_delivery = tokio::spawn(
        alert_worker(Arc::clone(&app), stopped(stop_rx.clone())).instrument(info_span!("alerts")),
    );
    let probes = tokio::spawn(
        probe_worker(Arc::clone(&app), stopped(stop_rx.clone())).instrument(info_span!("probes")),
    );
    let events_app = Arc::clone(&app);
    let events_stop = stopped(stop_rx.clone());
    let docker_events = tokio::spawn(
        async move {
            if events_app.alerts.config.docker_events {
                klaxon_core::alerts::events::watch(&events_app, events_stop).await;
            } else {
                events_stop.await;
            }
        }
        .instrument(info_span!("docker_events")),
    );
    let maintenance = tokio::spawn(
        maintenance_worker(Arc::clone(&app), stopped(stop_rx.clone()))
            .instrument(info_span!("maintenance")),
    );
    let reminders = tokio::spawn(
        reminder_worker(Arc::clone(&app), stopped(stop_rx.clone()))
            .instrument(info_span!("reminders")),
    );

    let (http_addr, http_task) = crate::server::spawn(
        config.http.listen,
        Arc::clone(&app),
        config.intake.clone(),
        stopped(stop_rx.clone()),
    )
    .await?;
    info!(%http_addr, "HTTP server listening");

    let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
    let ready_tx = std::sync::Mutex::new(Some(ready_tx));
    let guild = serenity::GuildId::new(config.discord.guild_id);
    let mut options = klaxon_commands::hooks::framework_options(commands);
    options.event_handler = |framework, event| {
        Box::pin(on_event(
            framework.serenity_context,
            event,
            framework.user_data,
        ))
    };
    let setup_app = Arc::clone(&app);
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
    let mut client = serenity::ClientBuilder::new_with_http(build_http(), intents)
        .framework(framework)
        .await
        .context("building the Discord client")?;
    let shard_manager = Arc::clone(&client.shard_manager);
    let http = Arc::clone(&client.http);
    let client_task =
        tokio::spawn(async move { client.start().await }.instrument(info_span!("gateway")));

    let mut bot = Bot {
        app,
        http_addr,
        proxy_addr,
        http,
        stop,
        shard_manager,
        client_task,
        servers: vec![
            proxy_task,
            http_task,
            reminders,
            maintenance,
            alert_delivery,
            probes,
            docker_events,
        ],
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
        r = bot.wait() => Err(match r {
            Ok(()) => anyhow!("the Discord client stopped during start-up"),
            // Close code 4014: a privileged intent is not switched on for the bot.
            Err(e) if format!("{e:#}").to_lowercase().contains("intents") => e.context(
                "the Discord gateway refused the session: switch on the Message Content intent \
                 (Developer Portal → Bot → Privileged Gateway Intents); Klaxon reads pinned \
                 messages into incident timelines",
            ),
            Err(e) => e.context("the Discord gateway refused the session"),
        }),
    };
    match outcome {
        Ok(()) => {
            info!("slash commands registered; Klaxon is up");
            Ok(bot)
        }
        Err(e) => {
            bot.shutdown().await;
            Err(e)
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
            if let Err(e) = klaxon_commands::components::dispatch(ctx, app, click).await {
                error!(error = format!("{e:#}"), custom_id = %click.data.custom_id, "button handler failed");
            }
        }
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Modal(modal),
        } => {
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
            _ = &mut stop => return,
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
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        match (&mut self.client_task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("Discord client stopped: {e}")),
            Err(e) => Err(anyhow!("Discord client task failed: {e}")),
        }
    }

    /// Stops taking commands, closes the gateway, stops the servers, closes the
    /// database.
    pub async fn shutdown(self) {
        info!("shutting down");
        self.shard_manager.shutdown_all().await;
        let _ = self.stop.send(true);
        for t in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.client_task.abort();
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
