//! Start-up and shutdown: the order matters and every failure names its cause.
//!
//! Every replica serves HTTP (alert intake, health, metrics). Only the leader holds
//! the Discord gateway session, runs the schedulers and drains the outbox: on SQLite
//! the one process allowed on the file, on PostgreSQL whoever holds the lease
//! ([`klaxon_core::leader`]). Followers take over when the leader goes away.
//!
//! - `startup`: from a config to a serving replica (database, proxy, `App`, HTTP);
//! - `leadership`: the lease, and taking up and giving up the leader's duties;
//! - `routing`: the gateway's events to their handlers;
//! - `workers`: the leader's background work;
//! - here: the [`Bot`] handle, and the order of a shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use klaxon_core::leader::InstanceLock;
use klaxon_core::App;
use poise::serenity_prelude as serenity;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::Config;
use leadership::{stop_duties, Leadership};

mod leadership;
mod routing;
mod startup;
mod workers;

pub use startup::open_store;

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
    /// Where the public status page is served, when `[status_page] listen` is set.
    pub status_page_addr: Option<SocketAddr>,
    status_page: Option<JoinHandle<()>>,
    proxy_stop: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    lease_stop: watch::Sender<bool>,
    leadership: Arc<Leadership>,
    lease_task: Option<JoinHandle<()>>,
    _instance: Option<InstanceLock>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
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
    startup::start(config, clock).instrument(span).await
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
        if let Some(t) = self.status_page {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
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
        if let Some(t) = &self.status_page {
            t.abort();
        }
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
