//! Klaxon's own Prometheus series, on the official client (`prometheus-client`):
//! typed counter, gauge and histogram families, rendered as OpenMetrics text.
//!
//! Why a name-keyed API over typed families: call sites stay one line
//! (`metrics.inc("klaxon_commands_total", &[("command", c), ("outcome", o)])`), the
//! series a dashboard depends on are listed once, in [`SERIES`], with their help
//! text, kind and buckets, and every branch that already calls `inc`/`add` merges
//! unchanged. A name not in the table still works (registered on first use, as
//! a counter when it ends in `_total`, with [`DEFAULT_BUCKETS`] for `observe`).
//!
//! Names: the client appends `_total` to a counter's samples itself, so a
//! counter is registered without it and its samples read exactly as before
//! (`klaxon_commands_total{...} 2`); the `# TYPE` line names the family
//! (`klaxon_commands`), as OpenMetrics wants.
//!
//! Labels must stay bounded (the scrape renders every series, every time): a
//! command name, a source, a status code, a route family, a severity, a channel
//! that is configured. Never a user id, an incident id or an alert name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// One series' labels, in the order the call site gives them (and renders them).
pub type Labels = Vec<(&'static str, String)>;

/// What `Content-Type` the rendered text is.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets for a histogram not in [`SERIES`]: 5 ms to 60 s.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// A request answered by Klaxon itself: a millisecond to the 5 s store deadline.
const FAST: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A round trip to Discord: 10 ms to its 30 s request timeout.
const DISCORD: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// A queue wait: nothing, to a 60 s rate-limit reset.
const WAIT: &[f64] = &[0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];
/// From an alert's arrival to a message: group_wait is seconds to minutes; an
/// outage makes it an hour.
const DELIVERY: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Alerts in one notification: Alertmanager batches up to a few hundred.
const BATCH: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// Incident times (MTTA, MTTR): 30 s to a week.
const INCIDENT: &[f64] = &[
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
    259200.0, 604800.0,
];

/// What a series is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole-number counter (name ends in `_total`).
    Counter,
    /// A counter of seconds or other fractions (name ends in `_total`).
    CounterF,
    /// A whole-number gauge.
    Gauge,
    /// A gauge of seconds or other fractions.
    GaugeF,
    Histogram(&'static [f64]),
}

/// Every series Klaxon itself declares: name, kind, help. Those with no labels
/// show from the first scrape (0), so dashboards and alert rules find them.
pub const SERIES: &[(&str, Kind, &str)] = &[
    // Counters (names as before #19: dashboards depend on them).
    (
        "klaxon_commands_total",
        Kind::Counter,
        "Slash commands by name and outcome",
    ),
    (
        "klaxon_alert_intake_total",
        Kind::Counter,
        "Alert notifications by source and result",
    ),
    (
        "klaxon_alerts_received_total",
        Kind::Counter,
        "Alerts received, by source",
    ),
    (
        "klaxon_discord_requests_total",
        Kind::Counter,
        "Discord REST responses by status",
    ),
    (
        "klaxon_discord_invalid_requests_total",
        Kind::Counter,
        "Discord responses of 401, 403 or 429 (Cloudflare bans at 10,000 in 10 minutes)",
    ),
    (
        "klaxon_limiter_waits_total",
        Kind::Counter,
        "Times the Discord limiter held a request back",
    ),
    (
        "klaxon_limiter_wait_seconds_total",
        Kind::CounterF,
        "Seconds requests spent waiting in the Discord limiter",
    ),
    (
        "klaxon_discord_retries_total",
        Kind::Counter,
        "Discord requests retried after a 429 or a 5xx",
    ),
    (
        "klaxon_http_connections_evicted_total",
        Kind::Counter,
        "Idle or slow connections closed at the cap for a new one",
    ),
    (
        "klaxon_http_connections_refused_total",
        Kind::Counter,
        "Connections refused (503) at the cap, every slot in a request",
    ),
    (
        "klaxon_status_deliveries_total",
        Kind::Counter,
        "Status page subscription deliveries by channel (email, webhook) and outcome (sent, retry, parked)",
    ),
    // Histograms.
    (
        "klaxon_intake_request_duration_seconds",
        Kind::Histogram(FAST),
        "Alert intake requests, from the body read to the answer, by source and HTTP status",
    ),
    (
        "klaxon_intake_alerts_per_request",
        Kind::Histogram(BATCH),
        "Alerts in one stored notification, by source",
    ),
    (
        "klaxon_command_duration_seconds",
        Kind::Histogram(DISCORD),
        "Slash commands, buttons and forms, from arrival to done, by command and outcome",
    ),
    (
        "klaxon_discord_request_duration_seconds",
        Kind::Histogram(DISCORD),
        "Discord REST round trips (each attempt), by route family and status class",
    ),
    (
        "klaxon_limiter_wait_duration_seconds",
        Kind::Histogram(WAIT),
        "Each wait in the Discord limiter (bucket reset or global pacing)",
    ),
    (
        "klaxon_alert_first_message_seconds",
        Kind::Histogram(DELIVERY),
        "From a group's first alert at intake to its first Discord message, by severity",
    ),
    (
        "klaxon_outbox_delivery_age_seconds",
        Kind::Histogram(DELIVERY),
        "Age of an outbox row when Discord accepted it, by kind",
    ),
    (
        "klaxon_incident_ack_seconds",
        Kind::Histogram(INCIDENT),
        "Incidents, from open to the first acknowledgement (MTTA), by severity",
    ),
    (
        "klaxon_incident_resolve_seconds",
        Kind::Histogram(INCIDENT),
        "Incidents, from open to resolved (MTTR), by severity",
    ),
    // Gauges.
    (
        "klaxon_leader",
        Kind::Gauge,
        "1 while this replica leads (gateway, schedulers, outbox)",
    ),
    (
        "klaxon_leader_lease_age_seconds",
        Kind::GaugeF,
        "Seconds since this leader last renewed its lease (0 on SQLite: a file lock, held)",
    ),
    (
        "klaxon_gateway_connected",
        Kind::Gauge,
        "1 while the Discord gateway session is up",
    ),
    (
        "klaxon_discord_token_valid",
        Kind::Gauge,
        "0 once Discord refused the bot token (401): delivery stopped until a restart",
    ),
    (
        "klaxon_http_connections_open",
        Kind::Gauge,
        "HTTP connections held now",
    ),
    (
        "klaxon_http_connections_max",
        Kind::Gauge,
        "The cap on HTTP connections (http.max_connections, within the descriptor limit)",
    ),
    (
        "klaxon_outbox_pending",
        Kind::Gauge,
        "Outbox rows waiting for Discord, by kind and channel",
    ),
    (
        "klaxon_outbox_oldest_pending_age_seconds",
        Kind::GaugeF,
        "Age of the oldest outbox row waiting for Discord, by kind and channel",
    ),
    (
        "klaxon_alerts",
        Kind::Gauge,
        "Alerts firing now, by state: posted (firing) or held (silenced, maintenance)",
    ),
    (
        "klaxon_incidents_open",
        Kind::Gauge,
        "Incidents not resolved, by severity",
    ),
    (
        "klaxon_reminders_pending",
        Kind::Gauge,
        "Incident reminders scheduled: re-pages (no ack) and update nudges",
    ),
    (
        "klaxon_docker_engine_up",
        Kind::Gauge,
        "1 when the Docker engine answered its last ping, by host (absent: no service uses one)",
    ),
    (
        "klaxon_db_pool_connections",
        Kind::Gauge,
        "Database pool connections, by state (in_use, idle)",
    ),
    (
        "klaxon_scrape_refresh_seconds",
        Kind::GaugeF,
        "How long the last refresh of the database-derived gauges took",
    ),
];

enum Fam {
    Counter(Family<Labels, Counter<u64>>),
    CounterF(Family<Labels, Counter<f64, AtomicU64>>),
    Gauge(Family<Labels, Gauge<i64, AtomicI64>>),
    GaugeF(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(Family<Labels, Histogram, Buckets>),
}

/// Makes each new histogram series of a family with the family's buckets.
#[derive(Clone)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    families: RwLock<HashMap<&'static str, Fam>>,
    help: Mutex<HashMap<&'static str, &'static str>>,
    /// Ages shown as gauges: the name, and since when ([`Metrics::stamp`]).
    stamps: Mutex<HashMap<&'static str, Instant>>,
    /// When the database-derived gauges were last refreshed (the `observe` module of the domain decides when).
    refreshed: Mutex<Option<Instant>>,
    /// The label sets [`Metrics::set_all`] has set, per gauge: bounded (channels).
    seen: Mutex<HashMap<&'static str, Vec<Labels>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            families: RwLock::new(HashMap::new()),
            help: Mutex::new(HashMap::new()),
            stamps: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
        };
        for (name, kind, help) in SERIES {
            m.register(name, *kind, help);
        }
        // Unlabelled series show 0 before anything happens.
        for name in [
            "klaxon_discord_invalid_requests_total",
            "klaxon_limiter_waits_total",
            "klaxon_discord_retries_total",
            "klaxon_http_connections_evicted_total",
            "klaxon_http_connections_refused_total",
        ] {
            m.add(name, &[], 0.0);
        }
        m.set("klaxon_leader", &[], 0.0);
        m.set("klaxon_leader_lease_age_seconds", &[], 0.0);
        m
    }

    /// Help text for a series registered later (by its first use).
    pub fn describe(&self, name: &'static str, help: &'static str) {
        if let Ok(mut h) = self.help.lock() {
            h.insert(name, help);
        }
    }

    fn register(&self, name: &'static str, kind: Kind, help: &str) {
        let mut families = self.families.write().unwrap_or_else(|p| p.into_inner());
        if families.contains_key(name) {
            return;
        }
        let help = help.trim_end_matches('.');
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // The client appends `_total` to a counter's samples.
        let family_name = name.strip_suffix("_total").unwrap_or(name);
        let fam = match kind {
            Kind::Counter => {
                let f = Family::<Labels, Counter<u64>>::default();
                registry.register(family_name, help, f.clone());
                Fam::Counter(f)
            }
            Kind::CounterF => {
                let f = Family::<Labels, Counter<f64, AtomicU64>>::default();
                registry.register(family_name, help, f.clone());
                Fam::CounterF(f)
            }
            Kind::Gauge => {
                let f = Family::<Labels, Gauge<i64, AtomicI64>>::default();
                registry.register(name, help, f.clone());
                Fam::Gauge(f)
            }
            Kind::GaugeF => {
                let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
                registry.register(name, help, f.clone());
                Fam::GaugeF(f)
            }
            Kind::Histogram(buckets) => {
                let f = Family::new_with_constructor(Buckets(buckets));
                registry.register(name, help, f.clone());
                Fam::Histogram(f)
            }
        };
        families.insert(name, fam);
    }

    /// Registers a series first seen at a call site (not in [`SERIES`]).
    fn ensure(&self, name: &'static str, kind: Kind) {
        let known = self
            .families
            .read()
            .map(|f| f.contains_key(name))
            .unwrap_or(false);
        if !known {
            let help = self
                .help
                .lock()
                .ok()
                .and_then(|h| h.get(name).copied())
                .unwrap_or("Klaxon series");
            self.register(name, kind, help);
        }
    }

    fn with<R>(&self, name: &'static str, kind: Kind, f: impl FnOnce(&Fam) -> R) -> Option<R> {
        self.ensure(name, kind);
        let families = self.families.read().ok()?;
        families.get(name).map(f)
    }

    /// Adds to a counter (a whole-number counter adds the value rounded).
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let kind = if name.ends_with("_total") {
            Kind::Counter
        } else {
            Kind::Gauge
        };
        let labels = owned(labels);
        self.with(name, kind, |fam| match fam {
            Fam::Counter(f) => {
                f.get_or_create(&labels)
                    .inc_by(value.max(0.0).round() as u64);
            }
            Fam::CounterF(f) => {
                f.get_or_create(&labels).inc_by(value.max(0.0));
            }
            Fam::Gauge(f) => {
                f.get_or_create(&labels).inc_by(value.round() as i64);
            }
            Fam::GaugeF(f) => {
                f.get_or_create(&labels).inc_by(value);
            }
            Fam::Histogram(f) => f.get_or_create(&labels).observe(value),
        });
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Raises a counter kept elsewhere (a monotonic total) to `total`.
    pub fn raise_to(&self, name: &'static str, labels: &[(&'static str, &str)], total: u64) {
        let labels = owned(labels);
        self.with(name, Kind::Counter, |fam| {
            if let Fam::Counter(f) = fam {
                let c = f.get_or_create(&labels);
                let now = c.get();
                if total > now {
                    c.inc_by(total - now);
                }
            }
        });
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = owned(labels);
        self.with(name, Kind::GaugeF, |fam| match fam {
            Fam::Gauge(f) => {
                f.get_or_create(&labels).set(value.round() as i64);
            }
            Fam::GaugeF(f) => {
                f.get_or_create(&labels).set(value);
            }
            _ => {}
        });
    }

    /// Sets a gauge family to exactly these series: any other series it had (a
    /// channel whose backlog is gone) reads 0 rather than its last value.
    pub fn set_all(&self, name: &'static str, series: &[(Labels, f64)]) {
        let gone: Vec<Labels> = {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            let before = seen.entry(name).or_default();
            let gone = before
                .iter()
                .filter(|l| !series.iter().any(|(s, _)| s == *l))
                .cloned()
                .collect();
            before.extend(series.iter().map(|(l, _)| l.clone()));
            before.sort();
            before.dedup();
            gone
        };
        self.with(name, Kind::GaugeF, |fam| {
            let values = gone
                .iter()
                .map(|l| (l, 0.0))
                .chain(series.iter().map(|(l, v)| (l, *v)));
            match fam {
                Fam::Gauge(f) => values.for_each(|(l, v)| {
                    f.get_or_create(l).set(v.round() as i64);
                }),
                Fam::GaugeF(f) => values.for_each(|(l, v)| {
                    f.get_or_create(l).set(v);
                }),
                _ => {}
            }
        });
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = owned(labels);
        self.with(name, Kind::Histogram(DEFAULT_BUCKETS), |fam| {
            if let Fam::Histogram(f) = fam {
                f.get_or_create(&labels).observe(value);
            }
        });
    }

    /// Starts (or restarts) an age: at every render, gauge `name` reads the
    /// seconds since the last stamp. [`Metrics::unstamp`] sets it back to 0.
    pub fn stamp(&self, name: &'static str) {
        if let Ok(mut s) = self.stamps.lock() {
            s.insert(name, Instant::now());
        }
    }

    pub fn unstamp(&self, name: &'static str) {
        if let Ok(mut s) = self.stamps.lock() {
            s.remove(name);
        }
        self.set(name, &[], 0.0);
    }

    /// The current value of one counter or gauge series (0 when never touched).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let labels = owned(labels);
        let Ok(families) = self.families.read() else {
            return 0.0;
        };
        match families.get(name) {
            Some(Fam::Counter(f)) => f.get(&labels).map(|c| c.get() as f64),
            Some(Fam::CounterF(f)) => f.get(&labels).map(|c| c.get()),
            Some(Fam::Gauge(f)) => f.get(&labels).map(|g| g.get() as f64),
            Some(Fam::GaugeF(f)) => f.get(&labels).map(|g| g.get()),
            // Read a histogram from the scrape: the client keeps its count private.
            Some(Fam::Histogram(_)) | None => None,
        }
        .unwrap_or(0.0)
    }

    /// Whether the database-derived gauges are older than `ttl`; if so the caller
    /// refreshes them, and other scrapes meanwhile render the values they have.
    pub fn claim_refresh(&self, ttl: std::time::Duration) -> bool {
        let Ok(mut at) = self.refreshed.lock() else {
            return false;
        };
        match *at {
            Some(t) if t.elapsed() < ttl => false,
            _ => {
                *at = Some(Instant::now());
                true
            }
        }
    }

    /// OpenMetrics text (served as [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let stamps: Vec<(&'static str, f64)> = self
            .stamps
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(n, t)| (*n, t.elapsed().as_secs_f64()))
                    .collect()
            })
            .unwrap_or_default();
        for (name, age) in stamps {
            self.set(name, &[], age);
        }
        let mut out = String::with_capacity(16 * 1024);
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &registry).is_err() {
            return String::new();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every series name `/metrics` showed before prometheus-client, as a scrape
    /// line's start: dashboards and alert rules written then must keep working.
    #[test]
    fn every_series_name_from_before_renders_unchanged() {
        let m = Metrics::new();
        m.inc(
            "klaxon_commands_total",
            &[("command", "health"), ("outcome", "ok")],
        );
        m.inc(
            "klaxon_alert_intake_total",
            &[("source", "generic"), ("result", "stored")],
        );
        m.add(
            "klaxon_alerts_received_total",
            &[("source", "generic")],
            3.0,
        );
        m.inc("klaxon_discord_requests_total", &[("status", "200")]);
        m.add("klaxon_limiter_wait_seconds_total", &[], 0.25);
        m.set("klaxon_http_connections_open", &[], 2.0);
        m.set("klaxon_http_connections_max", &[], 192.0);
        let text = m.render();
        for line in [
            "klaxon_commands_total{command=\"health\",outcome=\"ok\"} 1\n",
            "klaxon_alert_intake_total{source=\"generic\",result=\"stored\"} 1\n",
            "klaxon_alerts_received_total{source=\"generic\"} 3\n",
            "klaxon_discord_requests_total{status=\"200\"} 1\n",
            "klaxon_discord_invalid_requests_total 0\n",
            "klaxon_discord_retries_total 0\n",
            "klaxon_limiter_waits_total 0\n",
            "klaxon_limiter_wait_seconds_total 0.25\n",
            "klaxon_http_connections_open 2\n",
            "klaxon_http_connections_max 192\n",
            "klaxon_http_connections_evicted_total 0\n",
            "klaxon_http_connections_refused_total 0\n",
            "klaxon_leader 0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn labels_keep_their_order_and_are_escaped() {
        let m = Metrics::new();
        m.inc(
            "klaxon_commands_total",
            &[("command", "a\"b"), ("outcome", "denied")],
        );
        m.inc(
            "klaxon_commands_total",
            &[("command", "a\"b"), ("outcome", "denied")],
        );
        let text = m.render();
        assert!(
            text.contains("klaxon_commands_total{command=\"a\\\"b\",outcome=\"denied\"} 2"),
            "{text}"
        );
        assert_eq!(
            m.get(
                "klaxon_commands_total",
                &[("command", "a\"b"), ("outcome", "denied")]
            ),
            2.0
        );
    }

    #[test]
    fn histograms_use_their_buckets_and_unknown_names_still_work() {
        let m = Metrics::new();
        m.observe(
            "klaxon_intake_alerts_per_request",
            &[("source", "generic")],
            7.0,
        );
        m.describe("klaxon_something_new_total", "A branch's own counter.");
        m.inc("klaxon_something_new_total", &[("kind", "x")]);
        let text = m.render();
        assert!(
            text.contains(
                "klaxon_intake_alerts_per_request_bucket{le=\"5.0\",source=\"generic\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "klaxon_intake_alerts_per_request_bucket{le=\"10.0\",source=\"generic\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("klaxon_intake_alerts_per_request_count{source=\"generic\"} 1\n"));
        assert!(text.contains("# HELP klaxon_something_new A branch's own counter.\n"));
        assert!(
            text.contains("klaxon_something_new_total{kind=\"x\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn set_all_zeroes_the_series_that_went_away() {
        let m = Metrics::new();
        let ch = |c: &str| vec![("kind", "alert".to_string()), ("channel", c.to_string())];
        m.set_all("klaxon_outbox_pending", &[(ch("1"), 3.0), (ch("2"), 1.0)]);
        m.set_all("klaxon_outbox_pending", &[(ch("2"), 5.0)]);
        let text = m.render();
        assert!(
            text.contains("klaxon_outbox_pending{kind=\"alert\",channel=\"1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("klaxon_outbox_pending{kind=\"alert\",channel=\"2\"} 5\n"),
            "{text}"
        );
    }

    #[test]
    fn stamps_render_as_ages() {
        let m = Metrics::new();
        m.stamp("klaxon_leader_lease_age_seconds");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = m.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("klaxon_leader_lease_age_seconds "))
            .unwrap_or_default();
        let age: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!((0.02..5.0).contains(&age), "{line}");
        m.unstamp("klaxon_leader_lease_age_seconds");
        assert!(m.render().contains("klaxon_leader_lease_age_seconds 0.0\n"));
    }
}
