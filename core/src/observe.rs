//! What `/metrics` reads at scrape time: the flags kept in memory (leader,
//! gateway, token, pool) on every scrape, and the queue and state gauges that
//! need the database (outbox backlog, alerts firing and held, open incidents,
//! reminders) or the Docker engine at most once every [`REFRESH_EVERY`].
//!
//! Why cached: Prometheus (or several of them, or a curl loop) may scrape as
//! often as it likes; the database and the engine must not see that. A refresh
//! that takes longer than [`REFRESH_WITHIN`] is left behind and the scrape renders
//! the values it has, so `/metrics` stays fast while the database is slow (the
//! stale values and `klaxon_scrape_refresh_seconds` say so).
//!
//! To add a gauge of another outbox (incident or maintenance posts): return its
//! rows from `store::observe::outbox_backlog` with their own `kind`; the series
//! here are labelled by kind and channel already.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::app::App;
use crate::metrics::Labels;
use crate::store::observe;

/// The database and the engine are asked at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// A scrape waits at most this long for a refresh.
pub const REFRESH_WITHIN: Duration = Duration::from_secs(1);

/// Severities always shown, so a dashboard's P1 panel reads 0, not "no data".
const SEVERITIES: [&str; 4] = ["P1", "P2", "P3", "P4"];

/// Brings the scrape-time gauges up to date (see the module docs).
pub async fn refresh(app: &App) {
    let m = &app.metrics;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    m.set(
        "klaxon_leader",
        &[],
        flag(app.leader.load(Ordering::Relaxed)),
    );
    m.set(
        "klaxon_gateway_connected",
        &[],
        flag(app.chat_connected.load(Ordering::Relaxed)),
    );
    m.set(
        "klaxon_discord_token_valid",
        &[],
        flag(!app.chat_unauthorized.load(Ordering::Relaxed)),
    );
    let (in_use, idle) = observe::pool_connections(&app.store);
    m.set(
        "klaxon_db_pool_connections",
        &[("state", "in_use")],
        f64::from(in_use),
    );
    m.set(
        "klaxon_db_pool_connections",
        &[("state", "idle")],
        f64::from(idle),
    );
    if !m.claim_refresh(REFRESH_EVERY) {
        return;
    }
    let started = Instant::now();
    tokio::join!(backlog(app), alerts(app), incidents(app), docker(app));
    m.set(
        "klaxon_scrape_refresh_seconds",
        &[],
        started.elapsed().as_secs_f64(),
    );
}

async fn within<T, E: std::fmt::Display>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(REFRESH_WITHIN, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            warn!(what, error = %e, "a /metrics gauge was not refreshed");
            None
        }
        Err(_) => {
            warn!(
                what,
                "a /metrics gauge was not refreshed: no answer within 1 s"
            );
            None
        }
    }
}

async fn backlog(app: &App) {
    let Some(rows) = within("outbox", observe::outbox_backlog(&app.store)).await else {
        return;
    };
    let now = app.clock.now_ms();
    let labels = |b: &observe::Backlog| -> Labels {
        vec![
            ("kind", b.kind.to_string()),
            ("channel", b.channel.to_string()),
        ]
    };
    let pending: Vec<(Labels, f64)> = rows.iter().map(|b| (labels(b), b.pending as f64)).collect();
    let oldest: Vec<(Labels, f64)> = rows
        .iter()
        .map(|b| {
            let age = (now - b.oldest_created_ms).max(0) as f64 / 1000.0;
            (labels(b), age)
        })
        .collect();
    app.metrics.set_all("klaxon_outbox_pending", &pending);
    app.metrics
        .set_all("klaxon_outbox_oldest_pending_age_seconds", &oldest);
}

async fn alerts(app: &App) {
    let Some(c) = within("alerts", observe::alert_counts(&app.store)).await else {
        return;
    };
    for (state, n) in [
        ("firing", c.firing),
        ("silenced", c.silenced),
        ("maintenance", c.maintenance),
    ] {
        app.metrics
            .set("klaxon_alerts", &[("state", state)], n as f64);
    }
}

async fn incidents(app: &App) {
    let Some(c) = within("incidents", observe::incident_counts(&app.store)).await else {
        return;
    };
    let mut open: Vec<(Labels, f64)> = SEVERITIES
        .iter()
        .map(|s| (vec![("severity", s.to_string())], 0.0))
        .collect();
    for (severity, n) in &c.open {
        match open.iter_mut().find(|(l, _)| l[0].1 == *severity) {
            Some((_, v)) => *v += *n as f64,
            None => open.push((vec![("severity", severity.clone())], *n as f64)),
        }
    }
    app.metrics.set_all("klaxon_incidents_open", &open);
    let m = &app.metrics;
    m.set(
        "klaxon_reminders_pending",
        &[("kind", "page")],
        c.page_reminders as f64,
    );
    m.set(
        "klaxon_reminders_pending",
        &[("kind", "update")],
        c.update_reminders as f64,
    );
    // Escalations (issue #14) with steps still to fire.
    if let Some(n) = within("escalations", observe::escalations_pending(&app.store)).await {
        m.set(
            "klaxon_reminders_pending",
            &[("kind", "escalation")],
            n as f64,
        );
    }
}

/// Docker reachability, per engine (all at once); only engines a service's
/// container runs on (an engine nobody uses should not alert).
async fn docker(app: &App) {
    let used: Vec<(&str, &crate::docker::DockerClient)> = app
        .engines
        .iter()
        .filter(|(name, _)| app.services_on(name).any(|s| s.container.is_some()))
        .collect();
    let pings = used.iter().map(|(name, engine)| async move {
        let up = matches!(
            tokio::time::timeout(REFRESH_WITHIN, engine.ping()).await,
            Ok(Ok(()))
        );
        (*name, up)
    });
    for (name, up) in futures::future::join_all(pings).await {
        app.metrics.set(
            "klaxon_docker_engine_up",
            &[("host", name)],
            if up { 1.0 } else { 0.0 },
        );
    }
}

/// An outbox row of `kind` went out: its age, and for a group's first message
/// the time from the group's first alert at intake (`first_of`: the group).
pub async fn delivered(app: &App, kind: &'static str, created_ms: i64, first_of: Option<i64>) {
    let now = app.clock.now_ms();
    let secs = |from: i64| (now - from).max(0) as f64 / 1000.0;
    app.metrics.observe(
        "klaxon_outbox_delivery_age_seconds",
        &[("kind", kind)],
        secs(created_ms),
    );
    let Some(group) = first_of else {
        return;
    };
    // One small read per new group message; a failure costs the sample only.
    if let Ok(Some((severity, created))) = observe::group_origin(&app.store, group).await {
        app.metrics.observe(
            "klaxon_alert_first_message_seconds",
            &[("severity", &severity)],
            secs(created),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::run_test;

    /// The gauges read what the database holds, and a second scrape within
    /// [`super::REFRESH_EVERY`] does not ask it again.
    #[test]
    fn gauges_come_from_the_store_and_are_cached() {
        run_test(|w| async move {
            let app = &w.app;
            super::refresh(app).await;
            let text = app.metrics.render();
            for line in [
                "klaxon_alerts{state=\"firing\"} 0\n",
                "klaxon_alerts{state=\"silenced\"} 0\n",
                "klaxon_incidents_open{severity=\"P1\"} 0\n",
                "klaxon_reminders_pending{kind=\"page\"} 0\n",
                "klaxon_gateway_connected 0\n",
                "klaxon_db_pool_connections{state=\"idle\"} ",
            ] {
                assert!(text.contains(line), "{line:?} missing:\n{text}");
            }
            assert!(!app.metrics.claim_refresh(super::REFRESH_EVERY));
            Ok(())
        });
    }
}
