//! [`App::builder`]: the one way to put an [`App`] together, for the bot, the
//! command-line tools, the benches and the tests.
//!
//! Why a builder: `App` has two dozen fields, most of them runtime state (locks,
//! flags, counters) nobody configures. A struct literal had to name every one of
//! them, so only `bot` could build an `App`, and each new field broke every other
//! place that tried. The builder starts from defaults that run without Discord,
//! Docker or a config file (a chat sink that drops everything, the real clock, no
//! services, each section's default settings); callers set what they have.
//!
//! It lives beside `app`, not in it: it is the composition root, where the domain
//! modules subscribe to the domain events (the incident timeline, the audit mirror;
//! see [`crate::events`]), and `app` imports only leaf modules.
//! The store is taken by [`AppBuilder::build`] because it is the one part with no
//! default: opening a database is async and can fail, so the caller does it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::chat::{ChatSink, NullSink};
use crate::clock::Clock;
use crate::docker::{DockerClient, Engines, DEFAULT_HOST};
use crate::events::{Bus, Event, Handling};
use crate::log_reads::ReadQueue;
use crate::metrics::Metrics;
use crate::permissions::{Policy, RoleMap};
use crate::probe::Prober;
use crate::routing::{AlertsConfig, Router};
use crate::settings::incidents::IncidentsConfig;
use crate::settings::logs::LogsConfig;
use crate::settings::rollout::RolloutConfig;
use crate::settings::services::{ServiceConfig, Thresholds};
use crate::store::Store;

/// The Docker host and request timeout when none is given: the config's defaults.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
const DEFAULT_DOCKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Collects the parts of an [`App`]; see [`App::builder`].
#[must_use]
pub struct AppBuilder {
    engines: Engines,
    prober: Option<Prober>,
    services: Vec<ServiceConfig>,
    thresholds: Thresholds,
    heartbeats: Vec<crate::settings::heartbeats::Heartbeat>,
    logs: LogsConfig,
    log_reads: Option<ReadQueue>,
    rollout: RolloutConfig,
    policy: Option<Policy>,
    metrics: Option<Arc<Metrics>>,
    chat: Option<Arc<dyn ChatSink>>,
    audit_channel: Option<u64>,
    incidents_channel: Option<u64>,
    incidents: IncidentsConfig,
    clock: Clock,
    alerts: Option<Router>,
    alerts_channel: Option<u64>,
    maintenance: Option<crate::settings::maintenance::Settings>,
    oncall: crate::settings::oncall::OnCall,
    guild_id: Option<u64>,
    retention: crate::settings::retention::RetentionConfig,
    digests: crate::settings::digests::Digests,
    discord_outage: Option<String>,
    nonce_window: Option<std::time::Duration>,
    events: Bus<App>,
}

impl App {
    /// An [`AppBuilder`] with every part at its default.
    pub fn builder() -> AppBuilder {
        AppBuilder {
            engines: Engines::default(),
            prober: None,
            services: Vec::new(),
            thresholds: Thresholds::default(),
            heartbeats: Vec::new(),
            logs: LogsConfig::default(),
            log_reads: None,
            rollout: RolloutConfig::default(),
            policy: None,
            metrics: None,
            chat: None,
            audit_channel: None,
            incidents_channel: None,
            incidents: IncidentsConfig::default(),
            clock: Clock::default(),
            alerts: None,
            alerts_channel: None,
            maintenance: None,
            oncall: Default::default(),
            guild_id: None,
            retention: Default::default(),
            digests: Default::default(),
            discord_outage: None,
            nonce_window: None,
            events: default_subscribers(),
        }
    }
}

/// Who hears the domain events (see [`crate::events`]), in this order: the
/// incident timeline writes to the database (the producer waits for it), the
/// audit mirror posts in the background. A new reader is one more line here.
fn default_subscribers() -> Bus<App> {
    let mut bus = Bus::default();
    bus.subscribe("incident timeline", crate::incidents::record_event);
    bus.subscribe("audit mirror", crate::mirror::audit_mirror);
    bus.subscribe("status page", crate::status_page::on_event);
    bus
}

/// The routes of an empty `[alerts]` section.
///
/// # Panics
/// Never: the default section passes every check of [`Router::new`] (a unit test
/// below holds it to that), and it is compiled only when no router was given.
fn default_router() -> Router {
    Router::new(&AlertsConfig::default()).expect("the default [alerts] section is valid")
}

impl AppBuilder {
    /// The engine named `default` (the `[docker] host`). Default: the config's
    /// default host (`unix:///var/run/docker.sock`), 5 s.
    pub fn docker(mut self, docker: DockerClient) -> Self {
        self.engines.insert(DEFAULT_HOST, docker);
        self
    }

    /// One more engine (`[[docker.hosts]]`), by name.
    pub fn engine(mut self, name: &str, docker: DockerClient) -> Self {
        self.engines.insert(name, docker);
        self
    }

    pub fn prober(mut self, prober: Prober) -> Self {
        self.prober = Some(prober);
        self
    }

    /// Default: none.
    pub fn services(mut self, services: Vec<ServiceConfig>) -> Self {
        self.services = services;
        self
    }

    /// `[[heartbeats]]`, validated by the config loader.
    pub fn heartbeats(mut self, heartbeats: Vec<crate::settings::heartbeats::Heartbeat>) -> Self {
        self.heartbeats = heartbeats;
        self
    }

    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Also sizes the `/logs` read queue unless [`Self::log_reads`] sets it.
    pub fn logs(mut self, logs: LogsConfig) -> Self {
        self.logs = logs;
        self
    }

    pub fn log_reads(mut self, log_reads: ReadQueue) -> Self {
        self.log_reads = Some(log_reads);
        self
    }

    pub fn rollout(mut self, rollout: RolloutConfig) -> Self {
        self.rollout = rollout;
        self
    }

    /// Default: no roles and no command levels, so every command needs admin and
    /// nobody has it.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Default: [`NullSink`], which drops every message.
    pub fn chat(mut self, chat: Arc<dyn ChatSink>) -> Self {
        self.chat = Some(chat);
        self
    }

    pub fn audit_channel(mut self, channel: Option<u64>) -> Self {
        self.audit_channel = channel;
        self
    }

    pub fn incidents_channel(mut self, channel: Option<u64>) -> Self {
        self.incidents_channel = channel;
        self
    }

    pub fn incidents(mut self, incidents: IncidentsConfig) -> Self {
        self.incidents = incidents;
        self
    }

    /// Default: the real time. Tests pass a clock they keep, to move it forward.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Default: the routes of an empty `[alerts]` section.
    pub fn alerts(mut self, router: Router) -> Self {
        self.alerts = Some(router);
        self
    }

    pub fn alerts_channel(mut self, channel: Option<u64>) -> Self {
        self.alerts_channel = channel;
        self
    }

    pub fn guild_id(mut self, guild: Option<u64>) -> Self {
        self.guild_id = guild;
        self
    }

    pub fn oncall(mut self, oncall: crate::settings::oncall::OnCall) -> Self {
        self.oncall = oncall;
        self
    }

    pub fn maintenance(mut self, settings: crate::settings::maintenance::Settings) -> Self {
        self.maintenance = Some(settings);
        self
    }

    /// `[digests]`, validated by the config loader. Default: no digests.
    pub fn digests(mut self, digests: crate::settings::digests::Digests) -> Self {
        self.digests = digests;
        self
    }

    /// Default: `[retention]`'s defaults (incidents kept forever).
    pub fn retention(mut self, retention: crate::settings::retention::RetentionConfig) -> Self {
        self.retention = retention;
        self
    }

    /// One more reader of the domain events, heard after the default ones (the
    /// incident timeline, the audit mirror).
    pub fn subscribe<F>(mut self, name: &'static str, subscriber: F) -> Self
    where
        F: for<'a> Fn(&'a App, &'a Event) -> Handling<'a> + Send + Sync + 'static,
    {
        self.events.subscribe(name, subscriber);
        self
    }

    /// Discord did not answer at start-up: the cause, for `/readyz`.
    pub fn discord_outage(mut self, cause: Option<String>) -> Self {
        self.discord_outage = cause;
        self
    }

    /// How long Discord is trusted to remember a nonce (default
    /// [`crate::delivery::NONCE_WINDOW`]).
    pub fn nonce_window(mut self, window: std::time::Duration) -> Self {
        self.nonce_window = Some(window);
        self
    }

    /// The application on `store`, with its runtime state fresh: no locks held,
    /// not connected, not leading, nothing in flight.
    pub fn build(self, store: Store) -> App {
        let log_reads = self
            .log_reads
            .unwrap_or_else(|| ReadQueue::new(self.logs.max_concurrent_reads));
        let mut engines = self.engines;
        if engines.get(DEFAULT_HOST).is_err() {
            // `default` always exists (first), as `[docker] host` always has a value.
            let mut all = Engines::default();
            all.insert(
                DEFAULT_HOST,
                DockerClient::new(DEFAULT_DOCKER_HOST, DEFAULT_DOCKER_TIMEOUT),
            );
            for (name, client) in engines.iter() {
                all.insert(name, client.clone());
            }
            engines = all;
        }
        App {
            store,
            engines,
            prober: self.prober.unwrap_or_default(),
            services: self.services,
            thresholds: self.thresholds,
            heartbeats: self.heartbeats,
            logs: self.logs,
            log_reads,
            follows: Default::default(),
            rollout: self.rollout,
            ops_locks: Default::default(),
            policy: self
                .policy
                .unwrap_or_else(|| Policy::new(RoleMap::default(), [], &BTreeMap::new())),
            metrics: self.metrics.unwrap_or_else(|| Arc::new(Metrics::new())),
            chat: self.chat.unwrap_or_else(|| Arc::new(NullSink)),
            audit_channel: self.audit_channel,
            audit_operations: Default::default(),
            incidents_channel: self.incidents_channel,
            incidents: self.incidents,
            clock: self.clock,
            alerts: self.alerts.unwrap_or_else(default_router),
            alerts_channel: self.alerts_channel,
            maintenance: self.maintenance.unwrap_or_default(),
            oncall: self.oncall,
            guild_id: self.guild_id,
            retention: self.retention,
            digests: self.digests,
            maintenance_lock: Default::default(),
            maintenance_wake: Default::default(),
            posts_wake: Default::default(),
            escalations_wake: Default::default(),
            nonce_window: self.nonce_window.unwrap_or(crate::delivery::NONCE_WINDOW),
            chat_connected: Default::default(),
            chat_unauthorized: Default::default(),
            leader: Default::default(),
            leader_connecting: Default::default(),
            in_flight: Default::default(),
            discord_outage: std::sync::Mutex::new(self.discord_outage),
            events: self.events,
            status_page_wake: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_alerts_section_compiles() {
        assert!(Router::new(&AlertsConfig::default()).is_ok());
    }
}
