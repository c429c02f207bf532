//! Start-up, in an order that matters: the SQLite instance lock before anything
//! touches the database, then the database (migrated), the Discord proxy, one
//! reachability check of Discord (a refusal stops start-up, an outage does not),
//! the [`App`], and the HTTP server, so that every replica takes alerts before it
//! knows whether it leads. Leading is [`super::leadership`]'s job. Every failure
//! names the config key that causes it.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use klaxon_core::chat::ChatSink;
use klaxon_core::clock::Clock;
use klaxon_core::leader::{self, InstanceLock};
use klaxon_core::metrics::Metrics;
use klaxon_core::permissions::Policy;
use klaxon_core::store::lease::Lease;
use klaxon_core::store::{redact_url, Backend, Store};
use klaxon_core::App;
use poise::serenity_prelude as serenity;
use tokio::sync::{watch, Mutex};
use tracing::{error, info, info_span, warn, Instrument};

use super::leadership::{go_live, wait_for_discord, Leadership};
use super::{stopped, Bot};
use crate::config::Config;
use crate::discord::chat::DiscordChat;
use crate::discord::limiter::Limiter;
use crate::discord::proxy::{self, DiscordRest, Reach};

/// Opens the database and brings its schema up to date; the shell tools
/// (`klaxon migrate`, `klaxon postmortem`) open it this way too.
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

/// What [`super::start_with_clock`] does: the order matters (see the module docs).
pub(super) async fn start(config: Config, clock: Clock) -> anyhow::Result<Bot> {
    // One process per SQLite file: checked before anything touches the database.
    let instance = match leader::sqlite_file(&config.database.url) {
        Some(file) => Some(InstanceLock::acquire(&file).context("database.url")?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config).await?;
    // A SQLite file from before [retention] cannot give freed pages back until one
    // VACUUM switches it to incremental auto-vacuum: done once, here, before
    // anything else uses the database.
    let started = std::time::Instant::now();
    if klaxon_core::store::retention::ensure_incremental_vacuum(&store)
        .await
        .context("database.url: switching the SQLite file to incremental auto-vacuum")?
    {
        info!(
            took_ms = started.elapsed().as_millis() as u64,
            "switched the SQLite file to incremental auto-vacuum (one VACUUM)"
        );
    }
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

    let app = Arc::new(build_app(
        &config,
        store,
        metrics,
        chat,
        clock,
        outage.clone(),
    )?);

    // A compose service that matches no container is a warning, not an error:
    // containers come and go. Looked at in the background (the engine may be slow).
    if app.services.iter().any(|s| s.compose.is_some()) {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            klaxon_core::rollout::replicas::unmatched(&app).await;
        });
    }

    // Every replica takes alerts: they are stored, and the leader delivers them.
    let (http_addr, http_server) = crate::server::spawn(
        &config.http,
        Arc::clone(&app),
        config.intake.clone(),
        stopped(stop_rx.clone()),
    )
    .await?;
    info!(%http_addr, "HTTP server listening");
    let status_page = crate::status_page::spawn(
        &config.status_page,
        &config.http,
        Arc::clone(&app),
        stop_rx.clone(),
    )
    .await?;
    let (status_page_addr, status_page) = status_page.unzip();

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
        status_page_addr,
        status_page,
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

/// The [`App`] every part of Klaxon works on, from the config and what start-up
/// opened. The one place the bot assembles it.
pub(super) fn build_app(
    config: &Config,
    store: Store,
    metrics: Arc<Metrics>,
    chat: Arc<dyn ChatSink>,
    clock: Clock,
    outage: Option<String>,
) -> anyhow::Result<App> {
    let commands = klaxon_commands::all();
    let policy = Policy::new(
        config.roles.clone(),
        klaxon_commands::default_levels(&commands),
        &config.permissions,
    );
    let mut builder = App::builder();
    for (name, client) in config.docker.clients() {
        builder = builder.engine(&name, client);
    }
    Ok(builder
        .prober(config.prober().map_err(anyhow::Error::msg)?)
        .services(config.services.clone())
        .thresholds(config.health.clone())
        .heartbeats(crate::config::heartbeats::to_core(
            &config.heartbeats,
            &config.services,
        ))
        .logs(config.logs.clone())
        .log_reads(klaxon_core::log_reads::ReadQueue::new(
            config.logs.max_concurrent_reads,
        ))
        .rollout(config.rollback.clone())
        .policy(policy)
        .metrics(metrics)
        .chat(chat)
        .audit_channel(config.channels.audit)
        .incidents_channel(config.channels.incidents)
        .incidents(config.incidents.clone())
        .clock(clock)
        .alerts(
            klaxon_core::routing::Router::new(&config.alerts)
                .map_err(|e| anyhow!("alerts: {}", e.join("; ")))?,
        )
        .alerts_channel(config.channels.alerts)
        .maintenance(
            klaxon_core::maintenance::Settings::new(&config.maintenance)
                .map_err(|e| anyhow!("maintenance: {}", e.join("; ")))?,
        )
        .digests(
            klaxon_core::settings::digests::Digests::new(&config.digests)
                .map_err(|e| anyhow!("digests: {}", e.join("; ")))?,
        )
        .oncall(
            config
                .oncall_settings()
                .map_err(|e| anyhow!("oncall: {}", e.join("; ")))?,
        )
        .guild_id(Some(config.discord.guild_id))
        .retention(config.retention.clone())
        .discord_outage(outage)
        .build(store))
}

/// The error for a Discord that refused Klaxon, with the key to fix.
pub(super) fn refused(e: anyhow::Error) -> anyhow::Error {
    if format!("{e}").contains("401") {
        e.context("discord token")
    } else {
        e.context("discord.api_url: this is not a Discord API that Klaxon can use")
    }
}

/// serenity's own limiter must be off: the proxy setting only works that way, and
/// Klaxon's limiter (behind the proxy) does the job properly.
///
/// No `default_allowed_mentions` here: serenity would also put it on deferred
/// interaction responses, where Discord allows only flags. Mentions are off instead
/// in poise's options (every reply) and in `DiscordChat` (every post).
pub(super) fn build_http(token: &str, proxy_addr: SocketAddr) -> serenity::Http {
    serenity::HttpBuilder::new(token)
        .proxy(format!("http://{proxy_addr}"))
        .ratelimiter_disabled(true)
        .build()
}
