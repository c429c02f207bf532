//! Domain events: what happened, said once by the area where it happened, heard by
//! every area that keeps a record of it.
//!
//! Why: a command run, an alert that fired or resolved, a maintenance step each
//! matter to several readers (the incident timeline, the audit channel; later the
//! status page and on-call). When each producer called each reader itself, four
//! alert intakes called `incidents::record_alerts` by hand, `App::audit` reached
//! into incidents, and maintenance wrote timeline rows through the incident
//! store: every new reader meant editing every producer, and the calls made the
//! import circle app / incidents / maintenance / alerts. Now a producer publishes
//! one [`Event`] on the [`Bus`] that `App` holds, and a reader subscribes in one
//! line in the composition root (`App::builder()`).
//!
//! A leaf: an event carries plain data (the audit record, names and texts), never
//! a domain type, so this module imports only leaves, and every domain module can
//! publish without importing any other.
//!
//! Delivery: [`Bus::publish`] awaits the subscribers one after the other, in the
//! order they subscribed, so what they write to the database is written (in the
//! same order as before) when the producer goes on. A subscriber that only talks
//! to chat (the audit mirror) spawns its post and returns at once. Subscribers do
//! not fail the producer: each logs its own errors.

use std::future::Future;
use std::pin::Pin;

use crate::actor::Actor;
use crate::alert::Alert;
use crate::audit::AuditEntry;

/// Something that happened, for whoever keeps a record of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A command, button or modal ran (or was refused): the audit row as written.
    CommandRun(AuditEntry),
    /// Alerts fired or resolved (only those whose state changed).
    AlertsChanged(Vec<AlertChange>),
    /// A maintenance window moved on.
    Maintenance(MaintenanceStep),
}

/// One alert that fired or resolved, flattened to what its readers show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertChange {
    /// The `alertname` label.
    pub name: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Where it came from: `alertmanager`, `grafana`, `docker`, `probe`...
    pub source: String,
    /// The `service` label, when the alert names one.
    pub service: Option<String>,
    pub summary: String,
}

impl AlertChange {
    pub fn of(a: &Alert) -> AlertChange {
        AlertChange {
            name: a.name().to_string(),
            status: a.status.as_str().to_string(),
            source: a.source.as_str().to_string(),
            service: a.label("service").map(String::from),
            summary: a.summary().to_string(),
        }
    }

    /// The changes among `alerts` at the positions `changed` (what intake reports).
    pub fn picked(alerts: &[Alert], changed: &[usize]) -> Vec<AlertChange> {
        changed
            .iter()
            .filter_map(|i| alerts.get(*i))
            .map(AlertChange::of)
            .collect()
    }
}

/// What a maintenance window did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceKind {
    Scheduled,
    Started,
    /// Ended on schedule (or late, after a restart).
    Ended,
    EndedEarly,
    /// Passed entirely while Klaxon was down.
    Missed,
    Extended,
    Cancelled,
    FlagOn,
    FlagOff,
}

/// One step of a maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceStep {
    pub window: i64,
    pub kind: MaintenanceKind,
    /// The services under the window.
    pub services: Vec<String>,
    /// Who made the step: a member, or Klaxon's scheduler.
    pub by: Actor,
    /// One line about the step, as people read it.
    pub text: String,
}

/// The future a subscriber returns; it borrows the context and the event.
pub type Handling<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

type Subscriber<C> = Box<dyn for<'a> Fn(&'a C, &'a Event) -> Handling<'a> + Send + Sync>;

/// The subscribers of a context `C` (the `App`), in the order they subscribed.
///
/// Generic over the context so this leaf needs no `App`: a subscriber receives the
/// `&App` of the publisher, and needs no handle of its own.
pub struct Bus<C> {
    subscribers: Vec<(&'static str, Subscriber<C>)>,
}

impl<C> Default for Bus<C> {
    fn default() -> Self {
        Bus {
            subscribers: Vec::new(),
        }
    }
}

impl<C> std::fmt::Debug for Bus<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.subscribers.iter().map(|(name, _)| name))
            .finish()
    }
}

impl<C> Bus<C> {
    /// Adds a subscriber, heard after those already there. `name` is for logs.
    pub fn subscribe<F>(&mut self, name: &'static str, subscriber: F)
    where
        F: for<'a> Fn(&'a C, &'a Event) -> Handling<'a> + Send + Sync + 'static,
    {
        self.subscribers.push((name, Box::new(subscriber)));
    }

    /// The names of the subscribers, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.subscribers.iter().map(|(name, _)| *name).collect()
    }

    /// Hands `event` to every subscriber in turn, waiting for each.
    pub async fn publish(&self, ctx: &C, event: &Event) {
        for (_, subscriber) in &self.subscribers {
            subscriber(ctx, event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn run(name: &'static str) -> Event {
        Event::AlertsChanged(vec![AlertChange {
            name: name.into(),
            status: "firing".into(),
            source: "probe".into(),
            service: None,
            summary: String::new(),
        }])
    }

    fn first<'a>(log: &'a Mutex<Vec<String>>, e: &'a Event) -> Handling<'a> {
        Box::pin(async move {
            if let Event::AlertsChanged(a) = e {
                log.lock().unwrap().push(format!("first {}", a[0].name));
            }
        })
    }

    fn second<'a>(log: &'a Mutex<Vec<String>>, e: &'a Event) -> Handling<'a> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if let Event::AlertsChanged(a) = e {
                log.lock().unwrap().push(format!("second {}", a[0].name));
            }
        })
    }

    #[tokio::test]
    async fn subscribers_hear_each_event_in_the_order_they_subscribed() {
        let mut bus = Bus::default();
        bus.subscribe("first", first);
        bus.subscribe("second", second);
        assert_eq!(bus.names(), ["first", "second"]);
        let log = Mutex::new(Vec::new());
        bus.publish(&log, &run("a")).await;
        bus.publish(&log, &run("b")).await;
        assert_eq!(
            *log.lock().unwrap(),
            ["first a", "second a", "first b", "second b"]
        );
    }
}
