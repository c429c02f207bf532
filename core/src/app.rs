//! The application: everything a command or a worker needs, built once at start-up.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tracing::warn;

use crate::audit::AuditEntry;
use crate::chat::ChatSink;
use crate::docker::{DockerClient, Engines, UnknownHost};
use crate::events::{Bus, Event};
use crate::metrics::Metrics;
use crate::permissions::Policy;
use crate::probe::Prober;
use crate::settings::services::UnknownService;
use crate::settings::services::{ServiceConfig, Thresholds};
use crate::store::Store;

pub struct App {
    pub store: Store,
    /// The Docker engines by name (`[[docker.hosts]]`; `default` is `[docker] host`).
    /// A service's engine is [`App::engine_for`].
    pub engines: Engines,
    pub prober: Prober,
    pub services: Vec<ServiceConfig>,
    pub thresholds: Thresholds,
    /// `[[heartbeats]]`: dead-man's switches cron jobs ping (see `alerts::heartbeats`).
    pub heartbeats: Vec<crate::settings::heartbeats::Heartbeat>,
    pub logs: crate::settings::logs::LogsConfig,
    /// `/logs` reads take turns: at most `[logs] max_concurrent_reads` at once.
    pub log_reads: crate::log_reads::ReadQueue,
    /// `/logs follow` runs in this process, for their Stop buttons.
    pub follows: crate::follows::Follows,
    pub rollout: crate::settings::rollout::RolloutConfig,
    /// One `/rollback` or `/restart` per service at a time, and the plans waiting
    /// for their Confirm clicks.
    pub ops_locks: crate::ops_locks::Locks,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    pub chat: Arc<dyn ChatSink>,
    /// The Discord server Klaxon serves (`discord.guild_id`), for member role moves.
    pub guild_id: Option<u64>,
    pub audit_channel: Option<u64>,
    /// Operations whose audit message is open (edited step by step).
    pub audit_operations: crate::audit::Operations,
    /// Where incidents get their threads and stakeholders read the notices.
    pub incidents_channel: Option<u64>,
    pub incidents: crate::settings::incidents::IncidentsConfig,
    pub clock: crate::clock::Clock,
    /// Alert routes and grouping, compiled at start-up.
    pub alerts: crate::routing::Router,
    pub alerts_channel: Option<u64>,
    /// `[maintenance]`: time zone, lead times, the longest window.
    pub maintenance: crate::settings::maintenance::Settings,
    /// `[oncall]`: schedules, escalation policies and webhooks, validated.
    pub oncall: crate::settings::oncall::OnCall,
    /// `[digests]`: the daily health check and the weekly review (see `digests`).
    pub digests: crate::settings::digests::Digests,
    /// `[retention]`: how long old rows are kept (see [`crate::retention`]).
    pub retention: crate::settings::retention::RetentionConfig,
    /// Windows change one at a time: the scheduler and the commands take turns.
    pub maintenance_lock: tokio::sync::Mutex<()>,
    /// Wakes the maintenance scheduler after a command changed a window: it posts
    /// the announcements, so replies never wait on the channel's rate limit.
    pub maintenance_wake: tokio::sync::Notify,
    /// Wakes the posts worker (`delivery`) when a post is stored, so a
    /// healthy post goes out at once rather than at the next tick.
    pub posts_wake: tokio::sync::Notify,
    /// Wakes the escalation worker: an escalation started or a step falls through.
    pub escalations_wake: tokio::sync::Notify,
    /// How long Discord is trusted to remember a create's nonce (`enforce_nonce`):
    /// a post first tried longer ago than this is looked for in the channel before
    /// it is sent again (see `delivery`).
    pub nonce_window: std::time::Duration,
    /// Whether the chat gateway session is up, for `/readyz`.
    pub chat_connected: AtomicBool,
    /// Discord answered 401: the token is no longer valid. Alert delivery stops
    /// (nothing is dropped) and `/readyz` says so until Klaxon restarts.
    pub chat_unauthorized: AtomicBool,
    /// This replica leads: it holds the gateway session, runs the schedulers and
    /// delivers the outbox (followers only take alerts over HTTP).
    pub leader: AtomicBool,
    /// This replica holds the leader lease (or needs none) and is taking up the
    /// leader's work, but its gateway session is not up yet: `/readyz` says
    /// `leader (connecting)` and answers 503 until it is.
    pub leader_connecting: AtomicBool,
    /// Commands, buttons and modals being handled now: a graceful shutdown waits
    /// for them before it closes the Discord transport and the database.
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// Discord did not answer at start-up (or at a take-over), and Klaxon is
    /// retrying: the cause, for `/readyz`. `None` once it answered.
    pub discord_outage: std::sync::Mutex<Option<String>>,
    /// Woken when the public status page should be rendered again.
    pub status_page_wake: Arc<tokio::sync::Notify>,
    /// Who hears of command runs, alert changes and maintenance steps: the
    /// subscribers registered by [`App::builder`] (see [`crate::events`]).
    pub events: Bus<App>,
}

/// Counts one interaction in [`App::in_flight`] while it lives.
pub struct InFlight(Arc<App>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Marks an interaction as being handled until the guard is dropped.
pub fn in_flight(app: &Arc<App>) -> InFlight {
    app.in_flight
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    InFlight(Arc::clone(app))
}

impl App {
    pub fn service(&self, name: &str) -> Result<&ServiceConfig, UnknownService> {
        self.services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownService {
                name: name.to_string(),
                known: self.services.iter().map(|s| s.name.clone()).collect(),
            })
    }

    /// The engine `svc` runs on (its `host`).
    pub fn engine_for(&self, svc: &ServiceConfig) -> Result<&DockerClient, UnknownHost> {
        self.engines.get(svc.host_name())
    }

    /// The engine `svc` runs on, else the first (`default`) one: check-config
    /// refuses an unknown host, so the fallback only serves callers that hold a
    /// service looked up before a config change.
    pub fn engine_of(&self, svc: &ServiceConfig) -> &DockerClient {
        match self.engine_for(svc) {
            Ok(engine) => engine,
            Err(_) => self.engines.first(),
        }
    }

    /// The configured services running on the engine called `host`.
    pub fn services_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a ServiceConfig> {
        self.services.iter().filter(move |s| s.host_name() == host)
    }

    /// Service names starting with (then containing) what the member typed, for
    /// autocomplete: at most `limit`, answered from memory.
    pub fn service_names_matching(&self, partial: &str, limit: usize) -> Vec<String> {
        let p = partial.trim().to_lowercase();
        let mut starts: Vec<&str> = Vec::new();
        let mut contains: Vec<&str> = Vec::new();
        for s in &self.services {
            let lower = s.name.to_lowercase();
            if lower.starts_with(&p) {
                starts.push(&s.name);
            } else if lower.contains(&p) {
                contains.push(&s.name);
            }
        }
        starts
            .into_iter()
            .chain(contains)
            .take(limit)
            .map(String::from)
            .collect()
    }

    /// Whether `/health` may take long enough that the reply must be deferred: a
    /// stats sample takes about a second, a probe up to its timeout.
    pub fn health_may_be_slow(&self, only: Option<&str>) -> bool {
        self.services
            .iter()
            .filter(|s| only.is_none_or(|n| s.name.eq_ignore_ascii_case(n)))
            .any(|s| {
                s.has_containers()
                    || s.swarm_service.is_some()
                    || (s.health_url.is_some() && self.thresholds.probe_timeout_ms > 1_500)
            })
    }

    /// Writes an invocation to the audit table, then publishes it as a
    /// [`Event::CommandRun`]: the incident timeline records it, and the audit
    /// mirror posts it to the audit channel in the background so the member's
    /// reply never waits on it.
    pub async fn audit(&self, entry: AuditEntry) {
        if let Err(e) = self.store.insert_audit(&entry).await {
            // The audit row is the record of who did what: losing one is worth a
            // loud log line, but not failing the member's command after the fact.
            warn!(error = %e, command = %entry.command, user_id = entry.user_id, "audit write failed");
        }
        self.publish(Event::CommandRun(entry)).await;
    }

    /// Hands `event` to the subscribers registered in [`App::builder`], in turn.
    pub async fn publish(&self, event: Event) {
        self.events.publish(self, &event).await;
    }
}
